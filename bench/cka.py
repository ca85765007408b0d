"""CKA speed and agreement: the engine's minibatch estimator against torch-cka 0.21 on the same networks,
images, layers and batches.

    .venv/bin/python bench/cka.py [--batch-size 256] [--images 2048] [--device cpu] [--smoke]

Two default convnets (ConvNetSpec(): conv 32-64-128, fc 128, classifier), seeds 0 and 1, each trained
for one epoch on 4,096 MNIST training images (outside the timings), compared on the first 2,048 MNIST test
images: every unit against every unit, linear kernel, unbiased HSIC summed over batches of 256. Without
MNIST under ../shared/datasets the networks stay at their random initialisation and the images are noise.

torch-cka runs as its README shows (hooks on the unit modules, `compare(loader)`), inside
`torch.no_grad()`, which only spares it building autograd graphs. Each side is warmed up once, then timed
`repeats` times, interleaved, with time.perf_counter; the best run counts. Also timed: the forward passes alone
(both networks, every unit, in our engine's CPU chunks), the part of either side no CKA code can remove.
Untimed: torch-cka's algorithm in float64, to tell rounding from disagreement (torch-cka works in float32
on uncentred Grams; on random-init networks it is off by up to ~0.06 where ours matches float64 to 1e-7).

--smoke: 128 images in batches of 64, networks trained on 512, one round (what `make test` runs; its
figures mean nothing). Without torch-cka installed (bench/requirements.txt) only our side runs, saying so.

Last line, machine-readable:
RESULT cka_speedup=<torch-cka s / ours s> cka_max_diff=<max |ours - torch-cka| over the matrix>
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-cka's progress bar; read when torch imports tqdm

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.models import UnitNet, build_model  # noqa: E402
from backend.probes.similarity import CPU_CHUNK, cka_matrix  # noqa: E402
from backend.specs import ConvNetSpec, TrainSpec  # noqa: E402
from backend.train import fit  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mnist(root: Path, n_test: int, n_train: int) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """(x_train, y_train, x_test, y_test), normalised (n, 1, 28, 28) float32; None when MNIST is missing."""
    from torchvision.datasets import MNIST

    try:
        train, test = MNIST(str(root), train=True, download=False), MNIST(str(root), train=False, download=False)
    except RuntimeError:
        return None

    def images(data: Tensor) -> Tensor:  # (n, 28, 28) uint8 -> (n, 1, 28, 28)
        return ((data.float() / 255 - MNIST_MEAN) / MNIST_STD)[:, None]

    return images(train.data[:n_train]), train.targets[:n_train], images(test.data[:n_test]), test.targets[:n_test]


def networks(data: tuple[Tensor, ...] | None, device: str) -> tuple[UnitNet, UnitNet]:
    """Two default convnets, seeds 0 and 1, briefly trained when there is data."""
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = build_model(ConvNetSpec(), (1, 28, 28), 10).to(device)
        if data is not None:
            x_train, y_train, x_test, y_test = (t.to(device) for t in data)
            result = fit(net, (x_train, y_train), (x_test, y_test), TrainSpec(epochs=1, seed=seed))
            print(f"net seed {seed}: 1 epoch on {len(x_train):,} images, "
                  f"test accuracy {100 * result.final_accuracy:.1f}%")
        nets.append(net.eval())
    return nets[0], nets[1]


def best_times(runs: dict[str, Callable[[], object]], device: str, repeats: int) -> tuple[dict, dict]:
    """Best wall seconds of each run over `repeats` rounds after one warm-up each, and its last result.
    Rounds interleave the runs, so a slow spell of a shared machine hits every one alike."""
    results = {name: fn() for name, fn in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            _sync(device)
            started = time.perf_counter()
            results[name] = fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - started)
    return best, results


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def bench_cka(device: str = "cpu", images: int = 2048, batch_size: int = 256, repeats: int = 5,
              root: Path = DATASETS, train_images: int = 4096) -> dict:
    """{"ours_s", "ref_s", "speedup", "max_diff"} for the unit x unit matrix of two convnets, plus
    "forward_s" (the forward passes alone) and "max_diff_float64_ref" (against torch-cka in float64);
    the reference's figures are nan when torch-cka is not installed."""
    from torch.utils.data import DataLoader, TensorDataset

    data = mnist(root, images, train_images)
    if data is None:
        print(f"note: no MNIST under {root}; random images and untrained networks instead")
        x = torch.randn(images, 1, 28, 28)
    else:
        x = data[2]
    net_a, net_b = networks(data, device)
    x = x.to(device)

    runs = {
        "ours": lambda: cka_matrix(net_a, x, net_b, kernel="linear", estimator="minibatch", batch_size=batch_size),
        "forward": lambda: forward_only((net_a, net_b), x, batch_size),
    }
    if importlib.util.find_spec("torch_cka") is None:
        print("torch-cka is not installed (pip install -r bench/requirements.txt): only our side runs")
        seconds, results = best_times(runs, device, repeats)
        print(f"units: {', '.join(results['ours'].units_a)}\nours:\n" + _table(results["ours"].matrix))
        nan = float("nan")
        return {"ours_s": seconds["ours"], "ref_s": nan, "speedup": nan, "max_diff": nan,
                "forward_s": seconds["forward"], "max_diff_float64_ref": nan}
    from torch_cka import CKA

    layers = [f"body.{u}" for u in net_a.unit_names]
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), device=device)), batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # copies: torch-cka leaves its hooks on the modules it is given
        ref = CKA(copy.deepcopy(net_a), copy.deepcopy(net_b), model1_name="A", model2_name="B",
                  model1_layers=layers, model2_layers=layers, device=device)

    def reference() -> Tensor:
        with torch.no_grad():
            ref.compare(loader, loader)
        return ref.export()["CKA"]

    seconds, results = best_times({**runs, "ref": reference}, device, repeats)
    ours, theirs = results["ours"], results["ref"]
    exact = float64_reference(net_a, net_b, x, layers, batch_size, device)
    diff = (ours.matrix - theirs.double().cpu()).abs()
    print(f"units: {', '.join(ours.units_a)}; {ours.images:,} images in {ours.batches} batches of {batch_size}")
    print("ours:\n" + _table(ours.matrix) + "\ntorch-cka:\n" + _table(theirs))
    return {"ours_s": seconds["ours"], "ref_s": seconds["ref"], "speedup": seconds["ref"] / seconds["ours"],
            "max_diff": diff.max().item(), "forward_s": seconds["forward"],
            "max_diff_float64_ref": (ours.matrix - exact).abs().max().item()}


def float64_reference(net_a: UnitNet, net_b: UnitNet, x: Tensor, layers: list[str], batch_size: int,
                      device: str) -> Tensor:
    """torch-cka's own algorithm in float64 (untimed): which of two differing answers is the rounding."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch_cka import CKA

    loader = DataLoader(TensorDataset(x.double(), torch.zeros(len(x), device=device)), batch_size=batch_size)
    torch.set_default_dtype(torch.float64)  # torch-cka builds its ones vectors in the default dtype
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            ref = CKA(copy.deepcopy(net_a).double(), copy.deepcopy(net_b).double(), model1_name="A",
                      model2_name="B", model1_layers=layers, model2_layers=layers, device=device)
            ref.compare(loader, loader)
    finally:
        torch.set_default_dtype(torch.float32)
    return ref.export()["CKA"].double().cpu()


def forward_only(nets: tuple[UnitNet, ...], x: Tensor, batch_size: int) -> None:
    """Every unit's output for every image, nothing else: the floor under both timings."""
    chunk = batch_size if x.is_cuda else min(batch_size, CPU_CHUNK)
    with torch.inference_mode():
        for net in nets:
            for c in range(0, len(x), chunk):
                h = x[c:c + chunk]
                for i in range(len(net.unit_names)):
                    h = net(h, start=i, stop=i + 1)


def _table(m: Tensor) -> str:
    return "\n".join("  " + " ".join(f"{v:.4f}" for v in row) for row in m.tolist())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="the smallest size: checks the bench still runs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.smoke:
        args.images, args.batch_size, args.repeats = 128, 64, 1
    r = bench_cka(args.device, args.images, args.batch_size, args.repeats, train_images=512 if args.smoke else 4096)
    print(f"ours       {r['ours_s']:7.3f} s  (cka_matrix, minibatch estimator)")
    print(f"torch-cka  {r['ref_s']:7.3f} s  (CKA.compare)")
    print(f"speedup    {r['speedup']:7.1f} x   (target >= 5)")
    print(f"max |diff| {r['max_diff']:9.1e}   (target <= 0.01)")
    print(f"max |diff| {r['max_diff_float64_ref']:9.1e}   (against torch-cka's algorithm run in float64)")
    print(f"forward    {r['forward_s']:7.3f} s  (the two networks' forward passes alone: the bound on any speedup "
          f"is {r['ref_s'] / r['forward_s']:.1f}x)")
    beyond = (r["ref_s"] - r["forward_s"]) / max(r["ours_s"] - r["forward_s"], 1e-9)
    print(f"CKA work   {beyond:7.1f} x   (each side's time beyond the forward passes: "
          f"{r['ref_s'] - r['forward_s']:.3f} s against {r['ours_s'] - r['forward_s']:.3f} s)")
    print(f"RESULT cka_speedup={r['speedup']:.2f} cka_max_diff={r['max_diff']:.2e}")


if __name__ == "__main__":
    main()
