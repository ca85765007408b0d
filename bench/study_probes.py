"""A study's probes against its training, and its CKA comparisons against torch-cka, on the
`yosinski-digits` preset (offline, scikit-learn's digits).

    .venv/bin/python bench/study_probes.py [--seeds 1] [--parts both|ratio|cka] [--threads 2] [--smoke]

1. probe_train_ratio: the preset on `--seeds` seeds with its probes (sharpness as the preset sets it,
   CKA) run by the engine in this process (`run_local`, as `python -m backend sweep` does); the seconds
   of the probe jobs (sharpness, similarity) over those of the training jobs (train, transfer), each
   job's wall time from its own clock.
2. cka_speedup: every CKA comparison the whole study queues (every seed the preset names: 108
   comparisons of 81 networks for 3 seeds), from networks trained here (outside the timings), each
   on its own seed's probe images. Like for like: both sides compute torch-cka's estimator, the
   unbiased HSIC on one batch of all the probe images (ours: the preset's settings with
   estimator="minibatch" and a batch of all images). Ours: `run_similarity` over all of them with one
   representation cache, as a worker or `run_local` runs them (each network's units once). torch-cka
   0.21: `CKA.compare` per comparison, networks prepared the same way (`network_on`: built, eval,
   channels_last, images normalised for each; once more, untimed in the ratio, in the default NCHW
   layout a user would hand it). Both timed from the trained weights to the matrices, interleaved,
   best of 2. Max |difference| over every entry, against torch-cka as timed (float32) and against
   torch-cka run in float64 (untimed; cka_max_diff: its float32 HSIC of uncentred Grams loses 0.02-0.25
   to rounding, as far from its own float64 answer); each side also against an exact unbiased float64
   computation, to tell rounding from disagreement. Also timed: ours with the preset's own exact
   estimator (the biased HSIC), and its difference from the unbiased one.

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
PRESET = "yosinski-digits"


def study(preset: str, seeds: list[int], smoke: bool) -> Any:
    """The preset at its quick size on these seeds (smoke: at the smallest size)."""
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
    """Every comparison of the study, from trained weights to matrices: ours against torch-cka on the same
    estimator, interleaved, best of `rounds`; then where the differences come from (untimed)."""
    from torch_cka import CKA

    plan = expand(spec)
    comparisons = [job for job in plan if job.kind == "similarity"]
    networks = trained_networks(plan, device)
    same = [like_for_like(job.spec) for job in comparisons]  # the unbiased HSIC on one batch of all images

    def ours(specs: list) -> list[Any]:
        cache = RepresentationCache()
        return [run_similarity(s, networks, device, lambda f, m: None, load=load, representations=cache)
                .arrays["cka"] for s in specs]

    def theirs(channels_last: bool = True, dtype: torch.dtype = torch.float32) -> list[Any]:
        out = []
        for job in comparisons:
            images, _ = probe_images(job.spec.images, load)  # as run_similarity draws them
            (net_a, x_a, _), (net_b, x_b, _) = (network_on(networks, k, images, device, channels_last)
                                                for k in (job.spec.a, job.spec.b))
            net_a, x_a, net_b, x_b = net_a.to(dtype), x_a.to(dtype), net_b.to(dtype), x_b.to(dtype)
            layers = [f"body.{u}" for u in net_a.unit_names]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = CKA(net_a, net_b, model1_name="A", model2_name="B", model1_layers=layers,
                          model2_layers=layers, device=str(device))
                with torch.no_grad():
                    ref.compare(_loader(x_a), _loader(x_b))
            out.append(ref.export()["CKA"].double().cpu().numpy())
        return out

    runs = {"ours": lambda: ours(same), "ref": theirs, "exact": lambda: ours([job.spec for job in comparisons])}
    best = dict.fromkeys(runs, float("inf"))
    results: dict[str, list] = {}
    for _ in range(rounds):
        for name, fn in runs.items():
            started = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - started)
    nchw = time.perf_counter()
    if rounds > 1:  # torch-cka on networks in the default layout, once: what a user running it as is gets
        theirs(channels_last=False)
    nchw = time.perf_counter() - nchw
    diff = max(abs(a - b).max() for a, b in zip(results["ours"], results["ref"]))
    torch.set_default_dtype(torch.float64)  # torch-cka makes its own float tensors (torch.ones) in the default dtype
    try:
        ref64 = theirs(dtype=torch.float64)  # the same code in float64: torch-cka's answer without its rounding
    finally:
        torch.set_default_dtype(torch.float32)
    diff64 = max(abs(a - b).max() for a, b in zip(results["ours"], ref64))
    exact = exact_unbiased(networks, comparisons, device)
    ours_err = max(abs(a - e).max() for a, e in zip(results["ours"], exact))
    ref_err = max(abs(a - e).max() for a, e in zip(results["ref"], exact))
    ref64_err = max(abs(a - e).max() for a, e in zip(ref64, exact))
    biased = max(abs(a - e).max() for a, e in zip(results["exact"], exact))
    compared = {j.spec.a for j in comparisons} | {j.spec.b for j in comparisons}
    images = sum(len(probe_images(s.images, load)[0].y) for s in same) / len(same)
    print(f"2. {len(comparisons)} CKA comparisons of {len(compared)} networks ({len(spec.seeds)} seeds) on "
          f"{images:.0f} images each, the unbiased HSIC on one batch (torch-cka's estimator): ours "
          f"{best['ours']:.2f} s, torch-cka {best['ref']:.2f} s ({best['ref'] / best['ours']:.1f}x; networks "
          f"channels_last on both sides)" + (f", torch-cka on NCHW networks {nchw:.2f} s ({nchw / best['ours']:.1f}x)"
                                              if rounds > 1 else ""))
    print(f"   max |ours - torch-cka| {diff:.4f}: max |ours - exact unbiased float64| {ours_err:.1e}, "
          f"max |torch-cka - exact unbiased float64| {ref_err:.4f} (its float32 HSIC of uncentred Grams); "
          f"torch-cka run in float64: max |ours - it| {diff64:.1e}, max |it - exact| {ref64_err:.1e}")
    print(f"   the preset's exact estimator (biased HSIC, all images): ours {best['exact']:.2f} s; "
          f"max |exact biased - exact unbiased| {biased:.4f} (the estimators' own difference)")
    return {"ours_s": best["ours"], "ref_s": best["ref"], "speedup": best["ref"] / best["ours"], "max_diff": diff,
            "max_diff_float64": diff64, "comparisons": len(comparisons), "networks": len(compared)}


def like_for_like(spec: Any) -> Any:
    """The comparison with torch-cka's estimator: the unbiased HSIC on one batch of all the probe images."""
    batch = max(spec.settings.batch_size, spec.images.images)
    return spec.model_copy(update={"settings": spec.settings.model_copy(
        update={"estimator": "minibatch", "batch_size": batch})})


def _loader(x: torch.Tensor) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=len(x))  # one batch: the same images


def exact_unbiased(networks: dict, comparisons: list, device: torch.device) -> list[Any]:
    """Unbiased-HSIC CKA of every unit pair of each comparison, plainly, in float64 (untimed): each
    network's zero-diagonal Grams once per probe set, then hsic_unbiased pair by pair."""
    grams: dict[tuple[str, str], list[torch.Tensor]] = {}

    def of(key: str, images_spec: Any) -> list[torch.Tensor]:
        at = (key, canonical_json(images_spec))
        if at not in grams:
            net, x, _ = network_on(networks, key, probe_images(images_spec, load)[0], device, channels_last=False)
            h, grams[at] = x, []
            with torch.inference_mode():
                for i in range(len(net.unit_names)):
                    h = net(h, start=i, stop=i + 1)
                    grams[at].append(gram_linear(h).fill_diagonal_(0))
        return grams[at]

    out = []
    for job in comparisons:
        ka, kb = of(job.spec.a, job.spec.images), of(job.spec.b, job.spec.images)
        out.append(torch.tensor([[(hsic_unbiased(k, m) / (hsic_unbiased(k, k) * hsic_unbiased(m, m)).sqrt()).item()
                                  for m in kb] for k in ka]).numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="the smallest size: checks the bench still runs")
    parser.add_argument("--parts", choices=("both", "ratio", "cka"), default="both", help="1 (ratio), 2 (cka) or both")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a host shared with other work: "
                        "2 threads on 2 busy cores wait on each other)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = bench_study_probes(args.device, args.seeds, args.smoke, args.parts)
    nan = float("nan")
    print(f"RESULT probe_train_ratio={r.get('ratio', nan):.2f} train_s={r.get('train_s', nan):.1f} "
          f"probes_s={r.get('probes_s', nan):.1f} sharpness_s={r.get('sharpness_s', nan):.1f} "
          f"cka_speedup={r.get('cka_speedup', nan):.1f} cka_max_diff={r.get('cka_max_diff', nan):.1e}")


def bench_study_probes(device: str = "cpu", seeds: int = 1, smoke: bool = False,
                       parts: str = "both") -> dict[str, float]:
    """Part 1 on `seeds` seeds; part 2 on every seed the preset names (its whole study), smoke on one."""
    out: dict[str, float] = {}
    if parts in ("both", "ratio"):
        out = probe_train_ratio(study(PRESET, list(range(seeds)), smoke), device)
    if parts == "ratio":
        return out
    try:
        import torch_cka  # noqa: F401
    except ImportError:
        print("2. torch-cka is not installed (pip install -r bench/requirements.txt): CKA reference skipped")
        return out
    cka = cka_study(study(PRESET, [0] if smoke else PRESETS[PRESET].spec["seeds"], smoke), torch.device(device),
                    rounds=1 if smoke else 2)
    # the difference from torch-cka's own computation, that is in float64: in float32 its rounding alone is
    # 0.02-0.25 (printed above; it is as far from its own float64 answer)
    return {**out, "cka_speedup": cka["speedup"], "cka_max_diff": cka["max_diff_float64"],
            "cka_max_diff_float32": cka["max_diff"]}


if __name__ == "__main__":
    main()
