"""The engine functions behind the cross-data-set measurements (named in `backend.jobs.JOB_KINDS`):
domain gap, Chen et al.'s T (with the weight deviation and parameter distance from the pretrained
network), transferability scores. Same contract as `backend.runners`: the job's
spec, the networks it reads, a device and a progress callback in; a JobOutput out; no database.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from backend.data import load_task
from backend.jobs import JobOutput
from backend.models import UnitNet
from backend.probes.distance import chen_layers, l2_distance, relative_deviation, transferability_t
from backend.probes.domain import diversity, mmd, proxy_a_distance
from backend.probes.transferability import h_score, leep, logme, nce
from backend.runners import LoadTask, Networks, Report, network_named, network_on, probe_images
from backend.specs import ChenJobSpec, DomainGapJobSpec, ScoresJobSpec, SpecError
from backend.specs.selection import RANK_SCORES, RankAgreementJobSpec
from backend.stats import paired, rank_agreement

EVAL_CHUNK = 256  # images per forward pass


@torch.inference_mode()
def penultimate(net: UnitNet, x: Tensor) -> tuple[Tensor, Tensor]:
    """The features the classifier's final Linear layer reads, and the class probabilities:
    (N, C, H, W) normalised images -> (N, d) float64, (N, classes) float64.

    These are the features You et al. score (a ResNet's pooled 512 or 2048, a ViT's normed class token),
    whatever the classifier unit does before its Linear layer (a ResNet's average pooling sits in it). The
    classifier unit's input would not do: a resnet18's layer4 at 224 px is 25,088 values per image."""
    linear = [m for m in net.body[net.unit_names[-1]].modules() if isinstance(m, nn.Linear)][-1]
    read: list[Tensor] = []
    hook = linear.register_forward_pre_hook(lambda _, args: read.append(args[0]))
    features, probs = [], []
    try:
        for xb in x.split(EVAL_CHUNK):
            logits = net(xb)                                                   # (B, classes)
            features.append(read.pop().flatten(1).double().cpu())              # (B, d)
            probs.append(logits.double().softmax(1).cpu())
    finally:
        hook.remove()
    return torch.cat(features), torch.cat(probs)


def run_gap(spec: DomainGapJobSpec, networks: Networks, device: torch.device, report: Report,
            load: LoadTask = load_task, **_: Any) -> JobOutput:
    s = spec.settings
    started = time.perf_counter()
    source, source_fp = probe_images(spec.source, load)
    target, target_fp = probe_images(spec.target, load)
    if source.x.shape[1:] != target.x.shape[1:]:
        raise SpecError(f"source images are {tuple(source.x.shape[1:])} but target images "
                        f"{tuple(target.x.shape[1:])}: bring both to one format", field="target")
    if s.space == "features":  # both domains normalised as the pretrained network saw its training data
        net, x_source, _ = network_on(networks, spec.network, source, device, channels_last=False)
        x_target, _ = network_named(networks, spec.network).normalization.apply(target, device, False)
        f_source, _ = penultimate(net, x_source)
        f_target, _ = penultimate(net, x_target)
    else:  # raw pixels in 0..1
        f_source, f_target = (i.x.flatten(1).double() / 255 for i in (source, target))
    report(0.5, f"features of {len(f_source)} + {len(f_target)} images")
    a = proxy_a_distance(f_source, f_target, seed=s.seed)
    linear, rbf = mmd(f_source, f_target, "linear"), mmd(f_source, f_target, "rbf")
    spread = diversity(f_target, target.y)
    return JobOutput(
        scalars={"a_distance": a["a_distance"], "domain_error": a["error"], "mmd2_linear": linear["mmd2"],
                 "mmd2_rbf": rbf["mmd2"], "rbf_bandwidth": rbf["bandwidth"],
                 "diversity": spread["intra_class_variance"], "classes": spread["classes"],
                 "seconds": time.perf_counter() - started},
        tables={"estimator": {**s.model_dump(mode="json"), "a_distance_images_per_domain": a["n"],
                              "a_distance": "2 (1 - 2 err), linear logistic regression on held-out halves",
                              "mmd": "unbiased MMD^2; RBF bandwidth: median pairwise distance"},
                "data_fingerprint": {"source": source_fp, "target": target_fp}})


def run_chen_t(spec: ChenJobSpec, networks: Networks, device: torch.device, report: Report,
               load: LoadTask = load_task, **_: Any) -> JobOutput:
    pretrained, fine_tuned = network_named(networks, spec.pretrained), network_named(networks, spec.fine_tuned)
    if pretrained.init is None:
        raise SpecError("the pretraining run did not save its random init (theta_r): rerun it with this "
                        "version", field="pretrained")
    model = pretrained.build()
    copied = tuple(f"body.{unit}." for unit in model.unit_names[:spec.units])
    layers = [(name, weights) for name, weights in chen_layers(model) if all(w.startswith(copied) for w in weights)]
    if not layers:
        raise SpecError(f"no Chen layer lies within the first {spec.units} units", field="units")
    t = transferability_t(pretrained.init, pretrained.state, fine_tuned.state, layers, classifier="")
    names = [name for name, _ in layers]
    # Liu et al.'s weight deviation from the pretrained weights, and Neyshabur et al.'s parameter distance.
    deviation = relative_deviation(pretrained.state, fine_tuned.state, layers)
    return JobOutput(
        scalars={"t_overall": t["overall"] if t["overall"] is not None else float("nan"),
                 "layers_used": t["layers_used"], "layers_flagged": len(t["flagged"]),
                 **{f"t.{name}": value for name, value in t["layers"].items() if value is not None},
                 **{f"deviation.{name}": value for name, value in deviation.items()},
                 "l2_to_pretrained": l2_distance(pretrained.state, fine_tuned.state, layers),
                 "l2_to_init": l2_distance(pretrained.init, fine_tuned.state, layers),
                 # An imported network records no init: theta_r is a fresh draw of its architecture's.
                 "theta_r_drawn": float(pretrained.init_drawn)},
        arrays={"t_layers": np.array([t["layers"][n] if t["layers"][n] is not None else np.nan for n in names])},
        tables={"layers": names, "flagged": t["flagged"], "d_init": t["d_init"], "d_pretrained": t["d_pretrained"],
                "definition": "T = D(theta_r, theta_B) / D(theta_A, theta_B), D the mean absolute elementwise "
                              "difference; conv and fc weights of the transferred units; blocks averaged"})


def run_scores(spec: ScoresJobSpec, networks: Networks, device: torch.device, report: Report,
               load: LoadTask = load_task, **_: Any) -> JobOutput:
    started = time.perf_counter()
    images, fingerprint = probe_images(spec.images, load)
    shape = network_named(networks, spec.network).image_shape
    if shape is not None and tuple(shape) != tuple(images.x.shape[1:]):
        raise SpecError(f"the pretrained network takes {tuple(shape)} images but the target's are "
                        f"{tuple(images.x.shape[1:])}", field="images")
    features, probs = penultimate(*network_on(networks, spec.network, images, device, channels_last=False)[:2])
    y = images.y
    return JobOutput(
        scalars={"logme": logme(features, y), "leep": leep(probs, y), "nce": nce(probs.argmax(1), y),
                 "h_score": h_score(features, y), "seconds": time.perf_counter() - started},
        tables={"estimator": {**spec.settings.model_dump(mode="json"),
                              "features": "the input of the classifier's final linear layer"},
                "data_fingerprint": fingerprint})


def run_rank_agreement(spec: RankAgreementJobSpec, networks: Networks, device: torch.device, report: Report,
                       results: dict[str, dict[str, float]] | None = None, **_: Any) -> JobOutput:
    """Each score against the candidates' mean fine-tuned accuracy over seeds (`results`: the scalars of
    the scores and fine-tuning jobs the spec names, read by whoever runs it)."""
    results = results or {}
    missing = [k for k in spec.results if k not in results]
    if missing:
        raise SpecError(f"the results of job {missing[0][:12]} are not available", field="candidates")
    names = [c.name for c in spec.candidates]
    per_seed = np.array([[100 * results[k]["final_accuracy"] for k in c.fine_tuned] for c in spec.candidates])
    accuracy = per_seed.mean(axis=1).tolist()
    # Is the best candidate's lead decided? Its fine-tunings and the runner-up's share seeds: paired.
    best, second = np.argsort(-np.asarray(accuracy), kind="stable")[:2]  # ties: the first listed
    lead = paired(per_seed[best] - per_seed[second])
    scores = {score: [results[c.scores][score] for c in spec.candidates] for score in RANK_SCORES}
    scalars = {f"{score}.{m}": v for score, values in scores.items()
               for m, v in rank_agreement(values, accuracy).items()}
    scoring = sum(results[c.scores].get("seconds", 0.0) for c in spec.candidates)
    tuning = sum(results[k].get("train_seconds", 0.0) for c in spec.candidates for k in c.fine_tuned)
    return JobOutput(
        scalars={**scalars, "candidate_count": len(names), "best_accuracy": accuracy[best],
                 "lead": lead.mean, "lead_low": lead.low, "lead_high": lead.high,
                 "score_seconds": scoring, "fine_tune_seconds": tuning, "cost_ratio": tuning / max(scoring, 1e-9)},
        tables={"candidates": names, "accuracy": accuracy, "best": names[best], "runner_up": names[second],
                "scores": scores,
                "definition": "accuracy: mean final test accuracy (%) of the candidate fine-tuned on the target over "
                              "seeds; weighted_tau: scipy.stats.weightedtau (hyperbolic weights); top1: the "
                              "best-scored candidate is a best fine-tuned one"})
