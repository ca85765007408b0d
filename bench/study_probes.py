"""A study's probes against its training, and its CKA comparisons against torch-cka, on the
`yosinski-digits` preset (offline, scikit-learn's digits).

    .venv/bin/python bench/study_probes.py [--seeds 1] [--smoke]

1. probe_train_ratio: the preset with its probes (sharpness as the preset sets it, CKA) run by the
   engine in this process (`run_local`, as `python -m backend sweep` does); the seconds of the probe
   jobs (sharpness, similarity) over those of the training jobs (train, transfer), each job's wall
   time from its own clock.
2. cka_speedup: every CKA comparison the preset queues, from networks trained here (outside the
   timings). Ours: `run_similarity` over all of them with one representation cache, as a worker
   or `run_local` runs them (each network's units once). torch-cka 0.21: `CKA.compare` per comparison
   over the same images in one batch (its unbiased HSIC; ours is the exact, biased one, which the
   preset asks for), networks prepared the same way (built, eval, images normalised for each).
   Both are timed from the trained weights to the matrices. Max |difference| over every entry; and
   against an exact unbiased float64 computation, to tell estimator from disagreement.

Last line: RESULT probe_train_ratio=.. train_s=.. probes_s=.. sharpness_s=.. cka_speedup=.. cka_max_diff=..
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.data import load_task  # noqa: E402
from backend.jobs import runner  # noqa: E402
from backend.probes.representations import RepresentationCache  # noqa: E402
from backend.probes.hsic import hsic_unbiased, gram_linear  # noqa: E402
from backend.runners import network_on, probe_images, run_similarity  # noqa: E402
from backend.specs import PRESETS, canonical_json  # noqa: E402
from backend.studies import expand, parse_study  # noqa: E402
from backend.studies.local import run_local  # noqa: E402
from backend.transfer import SourceNet  # noqa: E402

TRAINING, PROBES = ("train", "transfer"), ("sharpness", "similarity")


def study(preset: str, seeds: list[int], smoke: bool) -> Any:
    spec = PRESETS[preset].spec_dict(quick=True)
    spec["seeds"] = seeds
    return parse_study(smallest(spec) if smoke else spec)


def smallest(spec: dict[str, Any]) -> dict[str, Any]:
    """A study spec at the smallest size that still goes through every part: one epoch, both probes
    on 32 images with the fewest products."""
    return {**spec, "train": {**spec["train"], "epochs": 1},
            "probes": {"sharpness": {**(spec["probes"].get("sharpness") or {}), "images": 32, "trace_samples": 3,
                                     "max_iterations": 3},
                       "similarity": {"images": 32}}}


def probe_train_ratio(spec: Any, device: str) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for outcome in run_local(expand(spec), device):
        seconds[outcome.job.kind] += outcome.seconds
    train = sum(seconds[k] for k in TRAINING)
    probes = sum(seconds[k] for k in PROBES)
    parts = ", ".join(f"{k} {seconds[k]:.1f} s" for k in TRAINING)
    print(f"1. {len(spec.seeds)} seed(s): training {train:.1f} s ({parts}), "
          f"probes {probes:.1f} s (sharpness {seconds['sharpness']:.1f} s, CKA {seconds['similarity']:.1f} s): "
          f"{probes / train:.2f}x the training")
    return {"train_s": train, "probes_s": probes, "sharpness_s": seconds["sharpness"],
            "cka_s": seconds["similarity"], "ratio": probes / train}


_TASKS: dict[str, Any] = {}


def load(data: Any) -> Any:
    """Each task decoded once, as run_local and a worker keep them."""
    key = canonical_json(data)
    if key not in _TASKS:
        _TASKS[key] = load_task(data)
    return _TASKS[key]


def trained_networks(plan: list, device: torch.device) -> dict[str, SourceNet]:
    """Every network of the plan, trained here (untimed)."""
    networks: dict[str, SourceNet] = {}
    for job in plan:
        if job.kind in TRAINING:
            out = runner(job.kind)(job.spec, networks, device, lambda f, m: None, load=load)
            networks[job.key] = SourceNet.of(out.network, job.spec.model)
    return networks


def cka_study(spec: Any, device: torch.device, rounds: int = 2) -> dict[str, float]:
    from torch_cka import CKA

    plan = expand(spec)
    comparisons = [job for job in plan if job.kind == "similarity"]
    networks = trained_networks(plan, device)
    images, _ = probe_images(comparisons[0].spec.images, load)  # one probe set for the whole study

    def ours() -> list[Any]:
        cache = RepresentationCache()
        return [run_similarity(job.spec, networks, device, lambda f, m: None, load=load,
                               representations=cache).arrays["cka"] for job in comparisons]

    def theirs() -> list[Any]:
        out = []
        for job in comparisons:
            (net_a, x_a, _), (net_b, x_b, _) = (network_on(networks, k, images, device, channels_last=False)
                                                for k in (job.spec.a, job.spec.b))
            layers = [f"body.{u}" for u in net_a.unit_names]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = CKA(net_a, net_b, model1_name="A", model2_name="B", model1_layers=layers,
                          model2_layers=layers, device=str(device))
                with torch.no_grad():
                    ref.compare(_loader(x_a), _loader(x_b))
            out.append(ref.export()["CKA"].double().cpu().numpy())
        return out

    best = {"ours": float("inf"), "ref": float("inf")}
    results: dict[str, list] = {}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("ref", theirs)):
            started = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - started)
    diff = max(abs(a - b).max() for a, b in zip(results["ours"], results["ref"]))
    unbiased = max(abs(a - exact_unbiased(networks, job.spec, images, device)).max()
                   for a, job in zip(results["ours"], comparisons))
    compared = {j.spec.a for j in comparisons} | {j.spec.b for j in comparisons}
    print(f"2. {len(comparisons)} CKA comparisons of {len(compared)} networks on {len(images.y)} images: "
          f"ours {best['ours']:.2f} s, torch-cka {best['ref']:.2f} s ({best['ref'] / best['ours']:.1f}x); "
          f"max |ours - torch-cka| {diff:.4f}, "
          f"max |ours - exact unbiased float64| {unbiased:.4f} (the estimators' own difference)")
    return {"ours_s": best["ours"], "ref_s": best["ref"], "speedup": best["ref"] / best["ours"], "max_diff": diff}


def _loader(x: torch.Tensor) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=len(x))  # one batch: the same images


def exact_unbiased(networks: dict, spec: Any, images: Any, device: torch.device) -> Any:
    """Unbiased-HSIC CKA of every unit pair in float64, plainly (untimed)."""
    outs = []
    for key in (spec.a, spec.b):
        net, x, _ = network_on(networks, key, images, device, channels_last=False)
        feats, h = [], x
        with torch.inference_mode():
            for i in range(len(net.unit_names)):
                h = net(h, start=i, stop=i + 1)
                feats.append(gram_linear(h).fill_diagonal_(0))
        outs.append(feats)
    return torch.tensor([[(hsic_unbiased(ka, kb) / (hsic_unbiased(ka, ka) * hsic_unbiased(kb, kb)).sqrt()).item()
                          for kb in outs[1]] for ka in outs[0]]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="the smallest size: checks the bench still runs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    r = bench_study_probes(args.device, args.seeds, args.smoke)
    print(f"RESULT probe_train_ratio={r['ratio']:.2f} train_s={r['train_s']:.1f} probes_s={r['probes_s']:.1f} "
          f"sharpness_s={r['sharpness_s']:.1f} cka_speedup={r.get('cka_speedup', float('nan')):.1f} "
          f"cka_max_diff={r.get('cka_max_diff', float('nan')):.4f}")


def bench_study_probes(device: str = "cpu", seeds: int = 1, smoke: bool = False) -> dict[str, float]:
    spec = study("yosinski-digits", list(range(seeds)), smoke)
    out = probe_train_ratio(spec, device)
    try:
        import torch_cka  # noqa: F401
    except ImportError:
        print("2. torch-cka is not installed (pip install -r bench/requirements.txt): CKA reference skipped")
        return out
    cka = cka_study(spec, torch.device(device), rounds=1 if smoke else 2)
    return {**out, "cka_speedup": cka["speedup"], "cka_max_diff": cka["max_diff"]}


if __name__ == "__main__":
    main()
