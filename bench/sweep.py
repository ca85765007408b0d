"""The Yosinski sweep two ways, same config and seeds: the engine against the standard way.

    .venv/bin/python bench/sweep.py [--per-class 300] [--epochs 4] [--seeds 0] [--datasets DIR] [--smoke]

Engine: `backend.studies.local.run_local` (data on the device as one tensor, sliced batches, frozen
prefixes computed once). Reference, written as one usually would: a torchvision MNIST dataset with
ToTensor/Normalize transforms, `DataLoader(batch_size=128)` over a seeded `RandomSampler`,
the frozen layers run forward every step, evaluation through a DataLoader. Same classes, per-class
subsets, normalisation, networks, initialisations, copied units, optimiser, schedule, epochs and
even batch order (a seeded sampler draws the same permutations as the engine). With channels_last
off the two give bit-identical base networks; what differences remain are float rounding
(channels_last kernels, reduction order) amplified by SGD, largest on short, noisy runs.

Prints wall seconds of each (data loading included), the ratio, the mean |accuracy difference| over
jobs, training images/s, and the engine's achieved training FLOP/s as a fraction of a measured
float32 `torch.mm` peak. --smoke: 20 training and test images per class, batches of 16, one epoch, layers
4 to 8 wide (what `make test` runs; its figures mean nothing). Last line:
RESULT speedup=<engine vs reference> acc_diff=<mean abs points> mfu=<fraction>
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.data import select_classes  # noqa: E402
from backend.data.split import cap_per_class  # noqa: E402
from backend.models import build_model  # noqa: E402
from backend.specs import PRESETS, TrainJobSpec, YosinskiSpec, parse  # noqa: E402
from backend.studies import yosinski  # noqa: E402
from backend.studies.local import run_local  # noqa: E402
from backend.studies.plan import PlannedJob  # noqa: E402
from backend.transfer import copy_units  # noqa: E402
from bench.reference import sgd_cosine, train_epoch  # noqa: E402

def mm_peak(n: int = 2048, repeats: int = 10) -> float:
    """float32 FLOP/s of a large matrix product on this machine: the practical ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - started)


def train_flops_per_image(job: PlannedJob) -> float:
    """FLOPs of one training step per image, forward and backward, as the engine runs it: only the
    units above a cached frozen prefix, or the whole net when nothing is frozen."""
    spec = job.spec
    model = build_model(spec.model, (1, 28, 28), 5)
    n = 0 if isinstance(spec, TrainJobSpec) or spec.transfer.fine_tune else spec.transfer.n
    model.freeze(n)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        h = model(x, stop=n)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = model(h, start=n).logsumexp(1).sum()
        loss.backward()
    return counter.get_total_flops() / len(x)


def reference_sweep(plan: list[PlannedJob], root: str) -> tuple[dict[str, float], float, int]:
    """(final accuracy per job key, training seconds, training images) the standard way."""
    from torch.utils.data import DataLoader, RandomSampler, Subset
    from torchvision import datasets, transforms

    train_set = datasets.MNIST(root, train=True)
    test_set = datasets.MNIST(root, train=False)
    trained: dict[str, dict] = {}
    norms: dict[str, tuple[float, float]] = {}
    accuracy: dict[str, float] = {}
    seconds, images = 0.0, 0
    for job in plan:
        spec = job.spec
        kept = select_classes(10, spec.data.classes)
        relabel = {c: i for i, c in enumerate(kept)}

        def subset(ds, cap):
            mask = torch.isin(ds.targets, torch.tensor(kept))
            idx = mask.nonzero().squeeze(1)
            y = torch.tensor([relabel[int(t)] for t in ds.targets[idx]])
            return Subset(ds, idx[cap_per_class(y, cap, spec.data.seed)].tolist())

        train_subset = subset(train_set, spec.data.per_class)
        # Normalise as the engine does: by the training images' statistics, or for copied units
        # by their source network's.
        copies = not isinstance(spec, TrainJobSpec) and bool(job.depends_on)
        if copies:
            mean, std = norms[job.depends_on[0]]
        else:
            pixels = train_set.data[train_subset.indices].float() / 255
            mean, std = pixels.mean().item(), pixels.std().item()
        norms[job.key] = (mean, std)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
        train_set.transform = test_set.transform = tf
        order = RandomSampler(train_subset, generator=torch.Generator().manual_seed(spec.train.seed))
        train = DataLoader(train_subset, batch_size=spec.train.batch_size, sampler=order, drop_last=True)
        test = DataLoader(subset(test_set, spec.data.test_per_class), batch_size=1000)
        torch.manual_seed(spec.train.seed)
        model = build_model(spec.model, (1, 28, 28), len(kept))
        n = 0
        if not isinstance(spec, TrainJobSpec):
            if copies:
                copy_units(trained[job.depends_on[0]], model, spec.transfer.n)
            n = 0 if spec.transfer.fine_tune else spec.transfer.n
        model.freeze(n)
        opt, sched = sgd_cosine(model, spec.train, len(train))

        def target(y):
            return torch.tensor([relabel[int(t)] for t in y])

        for _ in range(spec.train.epochs):
            started = time.perf_counter()
            images += train_epoch(model, train, opt, sched, target)
            seconds += time.perf_counter() - started
            model.eval()
            correct = count = 0
            with torch.no_grad():
                for x, y in test:
                    correct += (model(x).argmax(1) == target(y)).sum().item()
                    count += len(y)
        accuracy[job.key] = correct / count
        trained[job.key] = copy.deepcopy(model.state_dict())
    return accuracy, seconds, images


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--smoke", action="store_true", help="the smallest size: checks the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.per_class, args.epochs = 20, 1
    if not (Path(args.datasets) / "MNIST" / "raw").is_dir():
        print(f"MNIST not found under {args.datasets}: nothing to compare (pass --datasets)")
        print("RESULT speedup=nan acc_diff=nan mfu=nan")
        return
    preset = PRESETS["yosinski-mnist"].spec_dict()
    preset["probes"] = {"sharpness": None, "similarity": None}  # training speed only
    preset["data"]["source"]["root"] = args.datasets
    preset["data"]["per_class"] = args.per_class
    preset["train"]["epochs"] = args.epochs
    if args.smoke:  # same depth (the study's transfer points), narrow layers
        preset["data"]["test_per_class"] = args.per_class
        preset["train"]["batch_size"] = 16
        preset["model"].update(channels=[4, 4, 4], hidden=[8, 8])
    preset["seeds"] = [int(s) for s in args.seeds.split(",")]
    study = parse(YosinskiSpec, preset)
    plan = yosinski.expand(study)
    print(f"sweep: MNIST halves, {args.per_class} images/class, {len(plan)} jobs, {args.epochs} epochs, "
          f"convnet {study.model.channels} + fc {study.model.hidden}, seeds {study.seeds}")

    started = time.perf_counter()
    outcomes = run_local(plan, "cpu")
    engine_wall = time.perf_counter() - started
    results = {o.job.key: o.output.scalars for o in outcomes}
    engine_acc = {k: r["final_accuracy"] for k, r in results.items()}
    engine_seconds = sum(r["train_seconds"] for r in results.values())
    engine_images = sum(r["images_seen"] for r in results.values())
    flops = sum(train_flops_per_image(o.job) * results[o.job.key]["images_seen"] for o in outcomes)

    started = time.perf_counter()
    ref_acc, ref_seconds, ref_images = reference_sweep(plan, args.datasets)
    ref_wall = time.perf_counter() - started

    worst = sorted(outcomes, key=lambda o: -abs(engine_acc[o.job.key] - ref_acc[o.job.key]))[:3]
    for o in worst:
        print(f"  largest differences: {o.job.labels}: engine {100 * engine_acc[o.job.key]:.2f}% "
              f"reference {100 * ref_acc[o.job.key]:.2f}%")
    peak = mm_peak(256 if args.smoke else 2048)
    diff = sum(abs(engine_acc[k] - ref_acc[k]) for k in engine_acc) / len(engine_acc) * 100
    mfu = flops / engine_seconds / peak
    print(f"engine     {engine_wall:7.1f} s wall  {engine_images / engine_seconds:9,.0f} train img/s")
    print(f"reference  {ref_wall:7.1f} s wall  {ref_images / ref_seconds:9,.0f} train img/s  "
          "(torchvision MNIST + DataLoader(batch_size=128), frozen layers run every step)")
    print(f"speedup {ref_wall / engine_wall:.2f}x wall; mean |final accuracy difference| {diff:.2f} points "
          f"over {len(engine_acc)} jobs")
    print(f"engine training: {flops / engine_seconds / 1e9:.1f} GFLOP/s achieved, torch.mm peak "
          f"{peak / 1e9:.1f} GFLOP/s, fraction {mfu:.3f}")
    print(f"RESULT speedup={ref_wall / engine_wall:.2f} acc_diff={diff:.2f} mfu={mfu:.3f}")


if __name__ == "__main__":
    main()
