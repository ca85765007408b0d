"""Sharpness of a trained network: the Hessian of its training loss on a fixed probe set.

Liu et al. 2019 measure flatness as the Hessian's top eigenvalue and its trace; this probe adds the
spectral density. The loss is the mean cross-entropy over the probe images (x, y) with the network in
eval mode (BatchNorm on its running statistics, no dropout), so it is a fixed function of the
parameters. The Hessian is taken w.r.t. all parameters or those of some transfer units (the first n
units vs the rest at the transfer cut) and reached only through Hessian-vector products.

Speed, measured on the default convnet on 512 MNIST images, 2 CPU cores (bench/hessian.py):
- Up to `batch_size` images: the gradient graphs are built once (create_graph) and every product
  differentiates them again (retain_graph), no forward pass per product. Larger probe sets rebuild
  them per product. On the CPU the graphs cover 128 images each (1.6x faster than one of 512).
- Eval BatchNorm is an affine map per channel, so it is folded into the convolution before it:
  conv(x, W) * s + t == conv(x, W * s, t), the same function of (W, gamma, beta), hence the same
  Hessian, without BatchNorm's double backward over whole activation maps (~40% of a product).
- Products one at a time: batching them (`is_grads_batched`, or torch.func's vmap of jvp over grad
  as curvlinops does) was slower per product here, the CPU being busy with one already.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from backend.models import UnitNet
from backend.probes.lanczos import hutch_plus_plus, hutchinson, lanczos, power_iteration, slq

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Sharpness:
    top_eigenvalues: list[float]          # descending
    trace: float
    trace_std_error: float | None
    density_grid: list[float] | None      # None when density was not asked for
    density: list[float] | None
    parameters: int                       # size of the parameter subset
    hvps: int                             # Hessian-vector products spent, all estimators together
    convergence: dict[str, list[float]]   # {"lanczos" or "power": top estimate per product, "trace": running}
    seconds: dict[str, float]             # setup (copy, fold, gradient graph), eigenvalues, trace, density


CPU_CHUNK = 128  # images per gradient graph on the CPU: 1.6x faster products than one graph of 512 there


class HessianOperator:
    """v -> H v, H the Hessian of the mean cross-entropy over (x, y) w.r.t. `params` of `model`,
    on flat vectors (n,) in the parameters' order. `products` counts the products spent.

    `model` should be an eval-mode probe copy (see `probe_network`); its other parameters are
    constants here. Probe sets of up to `batch_size` images keep their gradient graphs for every
    product; larger ones rebuild them chunk by chunk for each product (memory: one chunk's graph).
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, params: list[nn.Parameter], batch_size: int = 512,
                 on_product: Callable[[], None] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"need as many labels as probe images, got {len(x)} images and {len(y)} labels")
        self.model, self.params = model, params
        self.shapes = [p.shape for p in params]
        self.numels = [p.numel() for p in params]
        self.n = sum(self.numels)
        self.dtype, self.device = params[0].dtype, params[0].device
        # on the CPU, smaller graphs: their activation maps stay in cache (and out of fresh mmap pages)
        chunk = min(batch_size, CPU_CHUNK) if self.device.type == "cpu" else batch_size
        self.chunks = list(zip(x.split(chunk), y.split(chunk)))
        self.count = len(x)
        self.products = 0
        self.on_product = on_product
        self._graphs = [self._gradient(*c) for c in self.chunks] if len(x) <= batch_size else None

    def _gradient(self, xc: Tensor, yc: Tensor) -> list[Tensor]:
        """Gradient of the chunk's share of the mean loss, sum over the chunk / N, still
        differentiable (create_graph): the chunks' products add up to the product of the mean loss."""
        loss = F.cross_entropy(self.model(xc), yc, reduction="sum") / self.count
        return list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True,
                                        materialize_grads=True))

    def _hvp(self, grads: list[Tensor], vs: list[Tensor], retain: bool) -> Tensor:
        """d(g . v)/dtheta, flat (n,); a gradient block constant in theta adds nothing."""
        pairs = [(g, v) for g, v in zip(grads, vs, strict=True) if g.requires_grad]
        if not pairs:
            return torch.zeros(self.n, dtype=self.dtype, device=self.device)
        gs, ws = zip(*pairs)
        hv = torch.autograd.grad(gs, self.params, ws, retain_graph=retain, allow_unused=True, materialize_grads=True)
        return torch.cat([t.reshape(-1) for t in hv])

    def matvec(self, v: Tensor) -> Tensor:
        """(n,) -> (n,)"""
        vs = [chunk.view(shape) for chunk, shape in zip(v.contiguous().split(self.numels), self.shapes, strict=True)]
        hv = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        if self._graphs is not None:
            for grads in self._graphs:
                hv += self._hvp(grads, vs, retain=True)
        else:
            for xc, yc in self.chunks:
                hv += self._hvp(self._gradient(xc, yc), vs, retain=False)
        self.products += 1
        if self.on_product is not None:
            self.on_product()
        return hv


def probe_network(model: nn.Module) -> nn.Module:
    """An eval-mode copy without gradients anywhere, eval BatchNorm folded into the conv before it.
    The original model is left as it was (mode, flags, .grad)."""
    probe = copy.deepcopy(model).eval().requires_grad_(False)
    fold_batch_norm(probe)
    return probe


def fold_batch_norm(model: nn.Module) -> int:
    """In every nn.Sequential, a conv followed by an eval BatchNorm of its width computes
    conv(x, W * s, b * s + t) with s = gamma / sqrt(var + eps), t = beta - mean * s, and the BatchNorm
    passes its input through. Parameter names and tensors stay where they were, so the function of
    the parameters (and its Hessian) is unchanged. Returns how many pairs were folded."""
    folded = 0
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for conv, bn in zip(layers, layers[1:]):
            if (isinstance(conv, nn.Conv1d | nn.Conv2d | nn.Conv3d) and isinstance(bn, _BatchNorm)
                    and not bn.training and bn.running_var is not None and bn.num_features == conv.out_channels):
                conv.forward = partial(_conv_then_batch_norm, conv, bn)
                bn.forward = _identity
                folded += 1
    return folded


def _conv_then_batch_norm(conv: nn.Module, bn: _BatchNorm, x: Tensor) -> Tensor:
    scale = torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    weight = conv.weight * scale.view(-1, *[1] * (conv.weight.ndim - 1))  # (C_out, C_in/groups, *kernel)
    return conv._conv_forward(x, weight, shift)


def _identity(x: Tensor) -> Tensor:
    return x


def unit_parameters(model: UnitNet, units: list[str] | None) -> list[tuple[str, nn.Parameter]]:
    """Named parameters of the chosen units in network order (all of them for None)."""
    if units is None:
        chosen = model.unit_names
    else:
        unknown = [u for u in units if u not in model.body]
        if unknown:
            raise ValueError(f"unknown unit(s) {unknown}; this network has {model.unit_names}")
        if not units:
            raise ValueError(f"empty unit subset; choose among {model.unit_names}")
        chosen = [u for u in model.unit_names if u in units]
    named = [(f"body.{u}.{n}", p) for u in chosen for n, p in model.body[u].named_parameters()]
    if not named:
        raise ValueError(f"unit(s) {chosen} have no parameters")
    return named


def hessian_operator(model: UnitNet, x: Tensor, y: Tensor, *, units: list[str] | None = None,
                     batch_size: int = 512, on_product: Callable[[], None] | None = None) -> HessianOperator:
    """The Hessian of `model`'s eval-mode mean loss on (x, y) w.r.t. the units' parameters."""
    names = {name for name, _ in unit_parameters(model, units)}
    probe = probe_network(model)
    params = [p.requires_grad_(True) for name, p in probe.named_parameters() if name in names]
    device = params[0].device
    x = x.to(device, params[0].dtype) if x.is_floating_point() else x.to(device)
    return HessianOperator(probe, x, y.to(device), params, batch_size, on_product)


class _Meter:
    """Turns products spent into progress(fraction, message), at most every `every` seconds."""

    def __init__(self, progress: ProgressFn | None, planned: int, every: float = 0.25):
        self.progress, self.planned, self.every = progress, max(planned, 1), every
        self.spent, self.phase, self.last = 0, "setup", float("-inf")

    def report(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress is not None and (force or now - self.last >= self.every):
            self.last = now
            self.progress(min(self.spent / self.planned, 1.0), f"{self.phase}: {self.spent} Hessian-vector products")

    def tick(self) -> None:
        self.spent += 1
        self.report()

    def start(self, phase: str) -> None:
        self.phase = phase
        self.report(force=True)

    def unplan(self, unspent: int) -> None:
        """An estimator stopped early: its unspent products leave the plan, so fractions never go back."""
        self.planned = max(self.planned - unspent, self.spent, 1)


def sharpness(model: UnitNet, x: Tensor, y: Tensor, *, units: list[str] | None = None,
              top_k: int = 1, eig_method: Literal["lanczos", "power"] = "lanczos",
              max_iterations: int = 100, tol: float = 1e-3,
              trace_method: Literal["hutchinson", "hutch++"] = "hutch++", trace_samples: int = 60,
              density: bool = False, density_runs: int = 1, density_iterations: int = 60,
              batch_size: int = 512, seed: int = 0,
              progress: ProgressFn | None = None) -> Sharpness:
    """Top-k Hessian eigenvalues, trace and optionally spectral density of the mean cross-entropy on
    the probe set (x, y), the network in eval mode, w.r.t. the parameters of `units` (all for None).

    Top eigenvalues: Lanczos (full reorthogonalisation) or power iteration with deflation, at most
    `max_iterations` products (per eigenvalue for power), until the top-k move by < `tol` relative.
    Trace: `trace_samples` products of Hutch++ or Hutchinson. Density: `density_runs` stochastic Lanczos
    quadrature runs of `density_iterations` products. Seeded: the same call gives the same numbers.
    `progress(fraction, message)` is called as products are spent; an exception from it stops the run.
    The model itself is not modified (the products run on an eval-mode copy).
    """
    if eig_method not in ("lanczos", "power"):
        raise ValueError(f"eig_method must be 'lanczos' or 'power', got {eig_method!r}")
    if trace_method not in ("hutchinson", "hutch++"):
        raise ValueError(f"trace_method must be 'hutchinson' or 'hutch++', got {trace_method!r}")
    if max_iterations < 1 or top_k < 1:
        raise ValueError(f"max_iterations and top_k must be >= 1, got {max_iterations} and {top_k}")
    if trace_samples < (3 if trace_method == "hutch++" else 1):
        raise ValueError(f"{trace_method} needs at least {3 if trace_method == 'hutch++' else 1} products, "
                         f"got trace_samples={trace_samples}")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    meter = _Meter(progress, 0)
    meter.start("setup")
    op = hessian_operator(model, x, y, units=units, batch_size=batch_size, on_product=meter.tick)
    n = op.n
    eig_budget = min(max_iterations, n) if eig_method == "lanczos" else max_iterations * top_k
    meter.planned = eig_budget + trace_samples + (density_runs * min(density_iterations, n) if density else 0)
    seconds["setup"] = time.perf_counter() - started
    common = dict(dtype=op.dtype, device=op.device)  # each estimator gets its own seed: independent probes

    started = time.perf_counter()
    meter.start(f"top {top_k} eigenvalue(s), {eig_method}")
    eig_fn = lanczos if eig_method == "lanczos" else power_iteration
    eig = eig_fn(op.matvec, n, top_k, max_iterations=max_iterations, tol=tol, seed=seed, **common)
    meter.unplan(eig_budget - eig.matvecs)
    seconds["eigenvalues"] = time.perf_counter() - started

    started = time.perf_counter()
    meter.start(f"trace, {trace_method}")
    trace_fn = hutch_plus_plus if trace_method == "hutch++" else hutchinson
    tr = trace_fn(op.matvec, n, trace_samples, seed=seed + 1, **common)
    seconds["trace"] = time.perf_counter() - started

    grid = dens = None
    if density:
        started = time.perf_counter()
        meter.start("spectral density, stochastic Lanczos quadrature")
        spectrum = slq(op.matvec, n, density_runs, density_iterations, seed=seed + 2, **common)
        meter.unplan(density_runs * min(density_iterations, n) - spectrum.matvecs)
        grid, dens = spectrum.grid, spectrum.density
        seconds["density"] = time.perf_counter() - started
    meter.phase = "done"
    meter.report(force=True)
    return Sharpness(
        top_eigenvalues=eig.values, trace=tr.value, trace_std_error=tr.std_error, density_grid=grid, density=dens,
        parameters=n, hvps=op.products, convergence={eig_method: eig.convergence, "trace": tr.convergence},
        seconds=seconds)
