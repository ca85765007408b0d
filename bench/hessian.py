"""Hessian sharpness probe (backend.probes.curvature) against PyHessian 0.1 and curvlinops 3.0.1.

    .venv/bin/python bench/hessian.py [--smoke] [--cuda]

1. Exact case: a tiny convnet (1,714 parameters, BatchNorm) trained on MNIST shrunk to 7x7; its exact
   Hessian on 128 probe images from torch.func.hessian. Each method's relative error on the top
   eigenvalue and the trace, and its seconds.
2. Speed: the default convnet (channels [32, 64, 128], hidden [128]; 241,770 parameters) trained for one
   epoch on 4,096 MNIST images (outside the timings), eval mode, Hessian on 512 probe images.
   Top eigenvalue: ours (Lanczos, tol 1e-3) vs PyHessian `eigenvalues()` at its defaults (power
   iteration, tol 1e-3, up to 100 products) vs curvlinops `HessianLinearOperator` + scipy
   `eigsh(k=1, which="LA", tol=1e-3)` (scipy's default tol=0 would only be slower).
   Trace: ours (Hutch++, 60 products) vs Hutchinson in PyHessian and curvlinops at 60 products (equal
   products), and at equal accuracy: the products a Hutchinson estimate needs for our standard error,
   (its per-sample std / our standard error)^2, times its measured seconds per product. PyHessian's
   trace() at its defaults is shown too: its stopping rule (the running mean moved < 0.1% in one
   step) ends it at a point that depends on the draws (4 to 100 products), not on its accuracy.
   Every time includes each library's set-up (gradient graph, operator); curvlinops runs with
   check_deterministic=False (it would otherwise spend 2 extra passes and 2 products). Each timing
   is the best of 2 interleaved rounds: this machine's speed drifts by up to 3x over tens of seconds.

--smoke: both parts at their smallest (a 4-8 wide convnet, 64 probe images, one round; what `make
test` runs, its figures mean nothing); a reference library that is not installed (bench/requirements.txt)
is skipped with the reason printed, and the figures needing it are nan.

Last line, machine-readable (speedups against the faster reference; errors on the exact case, for
our defaults, Lanczos and Hutch++ with 60 products):
RESULT eig_speedup=<x> eig_err=<rel> trace_speedup=<x at equal accuracy> trace_err=<rel>
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.models import UnitNet, build_model  # noqa: E402
from backend.probes.curvature import sharpness  # noqa: E402
from backend.probes.hessian import hessian_operator  # noqa: E402
from backend.probes.lanczos import hutch_plus_plus, hutchinson, lanczos, power_iteration  # noqa: E402
from backend.specs import ConvNetSpec, TrainSpec  # noqa: E402
from backend.train import fit  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TRACE_PRODUCTS = 60  # our default trace_samples, and the references' budget at equal products
ROUNDS = 2
REFERENCES = {"PyHessian": "pyhessian", "curvlinops": "curvlinops"}  # name -> module


def installed(reference: str) -> bool:
    return importlib.util.find_spec(REFERENCES[reference]) is not None


def without_missing(methods: dict[str, Any]) -> dict[str, Any]:
    """`methods` less those of a reference library that is not installed, saying so."""
    missing = [r for r in REFERENCES if not installed(r)]
    for reference in missing:
        print(f"   {reference} is not installed (pip install -r bench/requirements.txt): its rows are skipped")
    return {k: v for k, v in methods.items() if not any(k.startswith(r) for r in missing)}


def mnist(n: int, side: int = 28) -> tuple[Tensor, Tensor]:
    """The first n MNIST training images, (n, 1, side, side) normalised; random stand-ins if missing."""
    try:
        import torchvision

        ds = torchvision.datasets.MNIST(root=str(DATASETS), train=True, download=False)
        x, y = ds.data[:n].float().div(255).unsqueeze(1), ds.targets[:n]
    except (RuntimeError, OSError, ImportError) as e:
        print(f"note: MNIST not found under {DATASETS} ({e.__class__.__name__}); random images stand in")
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, 10, (n,), generator=g)
        protos = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        x = (protos[y] + 0.3 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    if side != 28:
        x = F.adaptive_avg_pool2d(x, side)  # (n, 1, 28, 28) -> (n, 1, side, side)
    return (x - x.mean()) / x.std(), y


def trained(spec: ConvNetSpec, x: Tensor, y: Tensor, epochs: int, device: str) -> UnitNet:
    """Trained on (x, y) minus its first 512 images (the probe set and test set), then eval mode in
    the contiguous layout (PyHessian is fastest there; ours is indifferent)."""
    torch.manual_seed(0)
    net = build_model(spec, tuple(x.shape[1:]), 10)
    fit(net, (x[512:].to(device), y[512:].to(device)), (x[:512].to(device), y[:512].to(device)),
        TrainSpec(epochs=epochs, batch_size=64 if len(x) < 10_000 else 128, amp=False, channels_last=False))
    return net.to(memory_format=torch.contiguous_format).eval()


def exact_hessian(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """(n, n) float64 Hessian of the eval-mode mean cross-entropy over all parameters, flattened."""
    from torch.func import functional_call

    names = [name for name, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    buffers = dict(net.named_buffers())

    def loss(flat: Tensor) -> Tensor:
        chunks = flat.split([s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return F.cross_entropy(functional_call(net, {**params, **buffers}, (x,)), y)

    h = torch.func.hessian(loss)(torch.cat([p.detach().reshape(-1) for p in net.parameters()])).double()
    return (h + h.T) / 2


# ---- each method: (value, products) ----

def ours(net: UnitNet, x: Tensor, y: Tensor, what: str) -> tuple[float, int]:
    op = hessian_operator(net, x, y)
    kw = dict(dtype=op.dtype, device=op.device)
    if what == "lanczos":
        r = lanczos(op.matvec, op.n, 1, **kw)
        return r.values[0], r.matvecs
    if what == "power":
        r = power_iteration(op.matvec, op.n, 1, **kw)
        return r.values[0], r.matvecs
    fn = hutch_plus_plus if what == "hutch++" else hutchinson
    t = fn(op.matvec, op.n, TRACE_PRODUCTS, seed=1, **kw)
    return t.value, t.matvecs


def _pyhessian_module() -> Any:
    """The module pyhessian.hessian (the package's `hessian` attribute is the class of that name)."""
    import importlib

    return importlib.import_module("pyhessian.hessian")


def _pyhessian(net: nn.Module, x: Tensor, y: Tensor, seed: int) -> Any:
    torch.manual_seed(seed)
    return _pyhessian_module().hessian(net, nn.CrossEntropyLoss(), data=(x, y), cuda=x.is_cuda)


def pyhessian_eig(net: nn.Module, x: Tensor, y: Tensor, seed: int = 0) -> tuple[float, int]:
    """eigenvalues() at its defaults; the products counted by wrapping its hessian_vector_product."""
    ph = _pyhessian_module()

    count = [0]
    original = ph.hessian_vector_product

    def counted(*args: Any) -> Any:
        count[0] += 1
        return original(*args)

    ph.hessian_vector_product = counted
    try:
        values, _ = _pyhessian(net, x, y, seed).eigenvalues()
    finally:
        ph.hessian_vector_product = original
        _drop_graphs(net)
    return values[0], count[0]


def pyhessian_trace(net: nn.Module, x: Tensor, y: Tensor, max_iter: int = 100, tol: float = 1e-3,
                    seed: int = 0) -> list[float]:
    """trace(): its per-sample v^T H v (the estimate is their mean); tol=0 runs all max_iter."""
    try:
        return list(_pyhessian(net, x, y, seed).trace(maxIter=max_iter, tol=tol))
    finally:
        _drop_graphs(net)


def _drop_graphs(net: nn.Module) -> None:
    """PyHessian leaves create_graph gradients in .grad (a reference cycle); free them."""
    for p in net.parameters():
        p.grad = None


def curvlinops_operator(net: nn.Module, x: Tensor, y: Tensor) -> Any:
    from curvlinops import HessianLinearOperator

    return HessianLinearOperator(net, nn.CrossEntropyLoss(), list(net.parameters()), [(x, y)],
                                 check_deterministic=False, num_data=len(x))


def curvlinops_eig(net: nn.Module, x: Tensor, y: Tensor, seed: int = 0) -> tuple[float, int]:
    from scipy.sparse.linalg import LinearOperator, eigsh

    h = curvlinops_operator(net, x, y)
    scipy_op = h.to_scipy()
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return scipy_op.matvec(v)

    counted = LinearOperator(scipy_op.shape, matvec=matvec, dtype=scipy_op.dtype)
    v0 = np.random.default_rng(seed).standard_normal(h.shape[0]).astype(np.float32)
    value = eigsh(counted, k=1, which="LA", tol=1e-3, v0=v0, return_eigenvectors=False)[0]
    return float(value), count[0]


def curvlinops_trace(net: nn.Module, x: Tensor, y: Tensor, products: int = TRACE_PRODUCTS,
                     seed: int = 0) -> tuple[float, int]:
    """hutchinson_trace, one product per call: it multiplies all its probes at once (vmap), and 60
    columns of this net need ~35 GB; one at a time is also its fastest per product here."""
    from curvlinops import hutchinson_trace

    h = curvlinops_operator(net, x, y)
    torch.manual_seed(seed)
    return sum(hutchinson_trace(h, 1).item() for _ in range(products)) / products, products


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# ---- the two parts ----

def exact_case(device: str, smoke: bool = False) -> dict[str, Any]:
    x, y = mnist(1024 if smoke else 6000, side=7)
    spec = ConvNetSpec(channels=[4, 4], hidden=[8]) if smoke else ConvNetSpec(channels=[8, 16], hidden=[16])
    net = trained(spec, x, y, epochs=1 if smoke else 3, device=device)
    probes = 64 if smoke else 128
    px, py = x[:probes].to(device), y[:probes].to(device)
    h, hessian_seconds = timed(lambda: exact_hessian(net, px, py), device)
    top, trace = torch.linalg.eigvalsh(h)[-1].item(), h.trace().item()
    print(f"\n1. exact case: convnet {spec.channels} + fc {spec.hidden} on 7x7 MNIST, {h.shape[0]:,} parameters, "
          f"{probes} probe images")
    print(f"   exact (torch.func.hessian, {hessian_seconds:.1f} s): top eigenvalue {top:.5f}, trace {trace:.4f}")
    rows = {
        "ours lanczos": ("eig", lambda: ours(net, px, py, "lanczos")),
        "ours power": ("eig", lambda: ours(net, px, py, "power")),
        "PyHessian eigenvalues()": ("eig", lambda: pyhessian_eig(net, px, py)),
        "curvlinops eigsh": ("eig", lambda: curvlinops_eig(net, px, py)),
        f"ours hutch++ {TRACE_PRODUCTS}": ("trace", lambda: ours(net, px, py, "hutch++")),
        f"ours hutchinson {TRACE_PRODUCTS}": ("trace", lambda: ours(net, px, py, "hutchinson")),
        "PyHessian trace() defaults": ("trace", lambda: _mean_count(pyhessian_trace(net, px, py))),
        f"curvlinops hutchinson {TRACE_PRODUCTS}": ("trace", lambda: curvlinops_trace(net, px, py)),
    }
    errors = {}
    for name, (kind, fn) in without_missing(rows).items():
        (value, products), seconds = timed(fn, device)
        errors[name] = rel(value, top if kind == "eig" else trace)
        print(f"   {name:<28} {kind:<5} {value:11.5f}  rel err {errors[name]:.2e}  {products:4d} products  {seconds:6.2f} s")
    return {"eig_err": errors["ours lanczos"], "trace_err": errors[f"ours hutch++ {TRACE_PRODUCTS}"],
            "exact_errors": errors}


def _mean_count(samples: list[float]) -> tuple[float, int]:
    return float(np.mean(samples)), len(samples)


def speed_case(device: str, smoke: bool = False) -> dict[str, Any]:
    probes = 64 if smoke else 512
    x, y = mnist((512 if smoke else 4096) + 512)
    spec = ConvNetSpec(channels=[4, 8], hidden=[8]) if smoke else ConvNetSpec()
    net = trained(spec, x, y, epochs=1, device=device)
    px, py = x[:probes].to(device), y[:probes].to(device)
    n = sum(p.numel() for p in net.parameters())
    print(f"\n2. speed: convnet {spec.channels} + fc {spec.hidden}, {n:,} parameters, {probes} probe images, "
          f"{torch.get_num_threads()} threads on {device}")
    methods: dict[str, Callable[[], Any]] = without_missing({
        "ours eig (lanczos)": lambda: ours(net, px, py, "lanczos"),
        "PyHessian eig": lambda: pyhessian_eig(net, px, py),
        "curvlinops eig": lambda: curvlinops_eig(net, px, py),
        f"ours trace (hutch++ {TRACE_PRODUCTS})": lambda: _hutchpp_with_error(net, px, py),
        "PyHessian trace defaults": lambda: pyhessian_trace(net, px, py),
        f"PyHessian trace {TRACE_PRODUCTS}": lambda: pyhessian_trace(net, px, py, TRACE_PRODUCTS, tol=0.0),
    })
    best: dict[str, float] = {}
    out: dict[str, Any] = {}
    for _ in range(1 if smoke else ROUNDS):
        for name, fn in methods.items():
            out[name], seconds = timed(fn, device)
            best[name] = min(best.get(name, math.inf), seconds)
    # curvlinops' trace once: ~4x PyHessian's seconds per product, it cannot be the faster reference
    name = f"curvlinops trace {TRACE_PRODUCTS}"
    if installed("curvlinops"):
        products = 4 if smoke else TRACE_PRODUCTS
        out[name], best[name] = timed(lambda: curvlinops_trace(net, px, py, products), device)
    full, best["ours sharpness() defaults"] = timed(lambda: sharpness(net, px, py), device)
    print(f"   ours sharpness() at its defaults: {best['ours sharpness() defaults']:.2f} s, {full.hvps} products "
          f"({', '.join(f'{k} {v:.2f} s' for k, v in full.seconds.items())})")

    eig, eig_products = out["ours eig (lanczos)"]
    print("   top eigenvalue (best of %d rounds)" % ROUNDS)
    for key in ("ours eig (lanczos)", "PyHessian eig", "curvlinops eig"):
        if key in out:
            value, products = out[key]
            print(f"   {key:<24} {value:10.4f}  {products:3d} products  {best[key]:6.2f} s"
                  + ("" if key.startswith("ours") else f"  ours differs by {rel(eig, value):.1e}"))
    ref_eig = min(best.get("PyHessian eig", math.inf), best.get("curvlinops eig", math.inf))
    eig_speedup = ref_eig / best["ours eig (lanczos)"] if ref_eig < math.inf else math.nan

    tr, tr_se = out[f"ours trace (hutch++ {TRACE_PRODUCTS})"]
    ours_trace_s = best[f"ours trace (hutch++ {TRACE_PRODUCTS})"]
    print(f"   trace (ours: best of {ROUNDS}; curvlinops: one run)")
    print(f"   ours hutch++             {tr:10.3f} +- {tr_se:.3f} (standard error)  {TRACE_PRODUCTS} products  "
          f"{ours_trace_s:6.2f} s")
    found: dict[str, Any] = {"eig_speedup": eig_speedup, "trace_speedup": math.nan,
                             "trace_speedup_equal_products": math.nan, "seconds": best, "trace_std_error": tr_se,
                             "eig_products_ours": eig_products,
                             "eig_products": {k: out[k][1] for k in out if k.endswith("eig") or "(lanczos)" in k},
                             "eig_agreement": {r: rel(eig, out[f"{r} eig"][0]) for r in REFERENCES
                                               if f"{r} eig" in out}}
    if not installed("PyHessian"):  # its per-sample spread sizes the equal-accuracy comparison
        return found
    defaults = out["PyHessian trace defaults"]
    samples = np.array(out[f"PyHessian trace {TRACE_PRODUCTS}"])
    sigma = samples.std(ddof=1)  # Hutchinson's per-sample standard deviation on this Hessian
    print(f"   PyHessian defaults       {np.mean(defaults):10.3f} +- {sigma / math.sqrt(len(defaults)):.3f}  "
          f"{len(defaults):3d} products  {best['PyHessian trace defaults']:6.2f} s  ours differs by "
          f"{rel(tr, float(np.mean(defaults))):.1e}")
    print(f"   PyHessian hutchinson     {samples.mean():10.3f} +- {sigma / math.sqrt(len(samples)):.3f}  "
          f"{len(samples):3d} products  {best[f'PyHessian trace {TRACE_PRODUCTS}']:6.2f} s  ours differs by "
          f"{rel(tr, samples.mean()):.1e}")
    per_product = {"PyHessian": best[f"PyHessian trace {TRACE_PRODUCTS}"] / TRACE_PRODUCTS}
    agreement = {"PyHessian": rel(tr, samples.mean())}
    if name in out:
        cl_value, cl_products = out[name]
        print(f"   curvlinops hutchinson    {cl_value:10.3f}  {cl_products:3d} products  "
              f"{best[name]:6.2f} s  ours differs by {rel(tr, cl_value):.1e}")
        per_product["curvlinops"] = best[name] / cl_products
        agreement["curvlinops"] = rel(tr, cl_value)
    equal_products = min(per_product.values()) * TRACE_PRODUCTS / ours_trace_s
    needed = math.ceil((sigma / tr_se) ** 2)  # Hutchinson products for our standard error
    equal_accuracy = min(per_product.values()) * needed / ours_trace_s
    print(f"   Hutchinson needs {needed:,} products for our standard error {tr_se:.3f} ({tr_se / tr:.2%}): "
          f"{min(per_product.values()) * needed:,.0f} s at the faster reference's "
          f"{min(per_product.values()):.3f} s per product")
    print(f"   trace speedup: {equal_products:.2f}x at equal products, {equal_accuracy:.1f}x at equal accuracy")
    return {**found, "trace_speedup": equal_accuracy, "trace_speedup_equal_products": equal_products,
            "trace_agreement": agreement, "hutchinson_products_for_equal_accuracy": needed}


def _hutchpp_with_error(net: UnitNet, x: Tensor, y: Tensor) -> tuple[float, float]:
    op = hessian_operator(net, x, y)
    t = hutch_plus_plus(op.matvec, op.n, TRACE_PRODUCTS, seed=1, dtype=op.dtype, device=op.device)
    return t.value, t.std_error


def bench_hessian(device: str = "cpu", smoke: bool = False) -> dict[str, Any]:
    """Both parts; returns eig_speedup, eig_err, trace_speedup (equal accuracy), trace_err and the raw
    seconds (see the module docstring for the settings)."""
    exact = exact_case(device, smoke)
    speed = speed_case(device, smoke)
    return {**speed, "eig_err": exact["eig_err"], "trace_err": exact["trace_err"],
            "exact_errors": exact["exact_errors"]}


if __name__ == "__main__":
    torch.set_num_threads(2)
    r = bench_hessian("cuda" if "--cuda" in sys.argv else "cpu", smoke="--smoke" in sys.argv)
    print(f"\nRESULT eig_speedup={r['eig_speedup']:.2f} eig_err={r['eig_err']:.1e} "
          f"trace_speedup={r['trace_speedup']:.1f} trace_err={r['trace_err']:.1e}")
