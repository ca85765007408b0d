"""Training speed and accuracy of the engine against the standard way, on the same config.

    .venv/bin/python bench/train.py [--epochs 2] [--datasets ../shared/datasets] [--smoke]

1. digits (bundled, 8x8): the default convnet, wall seconds and test accuracy.
2. MNIST (torchvision layout under --datasets): the engine (data on the device, sliced batches,
   channels_last) against a reference written the usual way (torchvision dataset + ToTensor/Normalize
   transforms + DataLoader(batch_size=128, shuffle=True), NCHW), same network, optimiser, schedule and
   epochs. Prints wall seconds (data loading included), images/s and accuracy of each.

--smoke: one epoch of digits, and one of 50 MNIST images per class both ways (what `make test` runs;
its figures mean nothing).

Last line, machine-readable:
RESULT digits_seconds=<s> digits_acc=<%> mnist_acc=<%> speedup=<reference wall / engine wall>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.models import build_model  # noqa: E402
from backend.specs import TrainJobSpec, parse  # noqa: E402
from backend.train import evaluate, train_job  # noqa: E402
from bench.reference import sgd_cosine, train_epoch  # noqa: E402


def engine(job: TrainJobSpec) -> tuple[float, float, float]:
    """(wall seconds including data loading, final test accuracy, training images/s)"""
    started = time.perf_counter()
    trained = train_job(job, "cpu")
    wall = time.perf_counter() - started
    r = trained.result
    return wall, r.final_accuracy, r.images_seen / r.train_seconds


def reference(job: TrainJobSpec, root: str, images: int | None = None) -> tuple[float, float, float]:
    """The same training written the standard way: per-sample transforms and a DataLoader (on the
    first `images` training and test images when given)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    started = time.perf_counter()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(root, train=True, transform=tf)
    test_set = datasets.MNIST(root, train=False, transform=tf)
    if images is not None:
        train_set, test_set = Subset(train_set, range(images)), Subset(test_set, range(images))
    loader = DataLoader(train_set, batch_size=128, shuffle=True, drop_last=True)
    torch.manual_seed(job.train.seed)
    model = build_model(job.model, (1, 28, 28), 10)
    spec = job.train
    opt, sched = sgd_cosine(model, spec, len(loader))
    seen, train_seconds = 0, 0.0
    for _ in range(spec.epochs):
        t = time.perf_counter()
        seen += train_epoch(model, loader, opt, sched)
        train_seconds += time.perf_counter() - t
    xs, ys = zip(*[(x, y) for x, y in DataLoader(test_set, batch_size=2048)])
    _, acc = evaluate(model, torch.cat(xs), torch.cat(ys))
    return time.perf_counter() - started, acc, seen / train_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2, help="MNIST epochs, both ways")
    parser.add_argument("--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--smoke", action="store_true", help="the smallest size: checks the bench still runs")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    per_class = 50 if args.smoke else None  # MNIST images per class, both ways
    epochs = 1 if args.smoke else args.epochs

    digits = parse(TrainJobSpec, {"data": {"source": {"kind": "digits"}}, "train": {"epochs": 1} if args.smoke else {}})
    d_wall, d_acc, d_ips = engine(digits)
    print(f"digits  engine     {d_wall:7.1f} s  {d_ips:9,.0f} img/s  test {100 * d_acc:.2f}%  "
          f"({digits.train.epochs} epochs, convnet {digits.model.channels} + fc {digits.model.hidden})")

    mnist_acc, speedup = float("nan"), float("nan")
    if (Path(args.datasets) / "MNIST" / "raw").is_dir():
        job = parse(TrainJobSpec, {
            "data": {"source": {"kind": "torchvision", "name": "MNIST", "root": args.datasets},
                     "per_class": per_class, "test_per_class": per_class},
            "train": {"epochs": epochs, "batch_size": 128, "lr": 0.05},
        })
        e_wall, mnist_acc, e_ips = engine(job)
        print(f"MNIST   engine     {e_wall:7.1f} s  {e_ips:9,.0f} img/s  test {100 * mnist_acc:.2f}%")
        r_wall, r_acc, r_ips = reference(job, args.datasets, per_class and 10 * per_class)
        print(f"MNIST   reference  {r_wall:7.1f} s  {r_ips:9,.0f} img/s  test {100 * r_acc:.2f}%  "
              "(torchvision dataset + DataLoader(batch_size=128), NCHW)")
        speedup = r_wall / e_wall
        print(f"engine vs reference: {speedup:.2f}x wall, {e_ips / r_ips:.2f}x training images/s")
    else:
        print(f"MNIST not found under {args.datasets}: skipped (pass --datasets)")
    print(f"RESULT digits_seconds={d_wall:.1f} digits_acc={100 * d_acc:.2f} "
          f"mnist_acc={100 * mnist_acc:.2f} speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
