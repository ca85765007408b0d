"""What Yosinski et al.'s full ImageNet study would cost a lab, from training speed measured here.

    .venv/bin/python bench/scale.py [--device auto] [--gpus 1,8,64] [--smoke]

1. Networks: the study's own expansion (backend.studies.expand) at the paper's shape: 8 units
   (5 conv + 3 fc), n = 1..7, the five treatments, four random splits.
2. Images per network: the paper's networks followed Caffe's ImageNet reference schedule,
   450,000 iterations of 256 images (--iterations, --batch).
3. Images/s: training steps (forward, backward, SGD) of the paper's network (torchvision's AlexNet,
   500 classes, 224 px) and of the lab's resnet18 at 224 px, on random tensors, so data loading is
   left out; channels_last everywhere, bf16 autocast on CUDA, timed with CUDA events after warm-up.
4. Cost: GPU-days, and the wall time on N devices with the study's DAG (the base networks first,
   then every transfer at once), counting every network at full cost (an upper bound: a frozen
   prefix needs no backward pass). Plus what the store holds: checkpoints, rows, jobs.

Last line: RESULT device=.. alexnet_img_s=.. resnet18_img_s=.. networks=.. gpu_days=.. days_on_8=..
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.models import build_model  # noqa: E402
from backend.specs import ResNetSpec, YosinskiSpec, parse  # noqa: E402
from backend.studies import expand  # noqa: E402
from backend.train import resolve_device  # noqa: E402

CLASSES = 500  # one half of ImageNet
IMAGES_PER_HALF = 640_000  # about 1,281,167 / 2 training images


def study_networks(seeds: int) -> tuple[int, int]:
    """(base networks, transfer networks) of the Yosinski study at the paper's depth, from the lab's
    own expansion (the data source only names the class count; nothing is loaded)."""
    spec = parse(YosinskiSpec, {
        "data": {"source": {"kind": "synthetic", "n_classes": 2 * CLASSES, "size": 32}},
        "model": {"channels": [96, 256, 384, 384, 256], "hidden": [4096, 4096]},
        "seeds": list(range(seeds)), "probes": {"sharpness": None, "similarity": None}})
    kinds = [job.kind for job in expand(spec)]
    return kinds.count("train"), kinds.count("transfer")


def images_per_second(model: torch.nn.Module, device: torch.device, batch: int, size: int, steps: int) -> float:
    """Training images/s of `model` on random (batch, 3, size, size) inputs, warm-up excluded."""
    model = model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (batch,), device=device)
    cuda = device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, kernel selection
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = time.perf_counter() - started
    return batch * steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gpus", default="1,8,64", help="device counts to cost the study on")
    parser.add_argument("--iterations", type=int, default=450_000)
    parser.add_argument("--batch", type=int, default=256, help="the schedule's batch (Caffe's ImageNet reference)")
    parser.add_argument("--seeds", type=int, default=4, help="random A/B splits")
    parser.add_argument("--smoke", action="store_true", help="smallest size: 32 px, batch 4, one step")
    args = parser.parse_args()
    from torchvision.models import alexnet

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    size, batch, steps = (32, 4, 1) if args.smoke else (224, 256 if device.type == "cuda" else 32, 10 if device.type == "cuda" else 3)
    paper_net = alexnet(num_classes=CLASSES)
    lab_net = build_model(parse(ResNetSpec, {"arch": "resnet18", "small_input": False}), (3, size, size), CLASSES)
    if args.smoke:  # AlexNet's pooling needs 63 px or more
        paper_net.features, paper_net.avgpool = paper_net.features[:3], torch.nn.AdaptiveAvgPool2d(6)
        paper_net.classifier[1] = torch.nn.Linear(64 * 36, 4096)
    rates = {name: images_per_second(net, device, batch, size, steps)
             for name, net in (("alexnet", paper_net), ("resnet18", lab_net))}
    params = sum(p.numel() for p in alexnet(num_classes=CLASSES).parameters())

    bases, transfers = study_networks(args.seeds)
    networks = bases + transfers
    images = args.iterations * args.batch
    net_days = images / rates["alexnet"] / 86_400
    gpu_days = networks * net_days
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})"
          f"{'  [smoke: 32 px, numbers meaningless]' if args.smoke else ''}")
    print(f"training images/s at {size} px, batch {batch}: AlexNet (the paper's) {rates['alexnet']:.1f}, "
          f"the lab's resnet18 {rates['resnet18']:.1f} (data loading excluded)")
    print(f"study: {networks} networks ({bases} base + {transfers} transfers, {args.seeds} splits), "
          f"{images / 1e6:.1f} M images each ({images / IMAGES_PER_HALF:.0f} epochs of one half)")
    print(f"one AlexNet: {net_days:.2f} device-days here; the study: {gpu_days:,.1f} device-days")
    for n in (int(g) for g in args.gpus.split(",")):
        waves = math.ceil(bases / n) + math.ceil(transfers / n)  # the bases, then every transfer at once
        print(f"  on {n:>3} devices: {waves * net_days:,.1f} days wall ({waves} waves of one network each)")
    checkpoint = 4 * params
    print(f"store: {networks} checkpoints of {checkpoint / 2**20:.0f} MiB plus {bases} initial weights "
          f"({(networks + bases) * checkpoint / 2**30:.0f} GiB), one epoch state of "
          f"{2 * checkpoint / 2**20:.0f} MiB per running job, {networks} jobs without probes; "
          f"the data: {IMAGES_PER_HALF * 3 * 224 * 224 / 2**30:.0f} GiB per half as uint8 tensors at 224 px")
    days_on_8 = (math.ceil(bases / 8) + math.ceil(transfers / 8)) * net_days
    print(f"RESULT device={device.type} alexnet_img_s={rates['alexnet']:.1f} resnet18_img_s={rates['resnet18']:.1f} "
          f"networks={networks} gpu_days={gpu_days:.1f} days_on_8={days_on_8:.1f}")


if __name__ == "__main__":
    main()
