"""The engine functions behind the landscape probes (named in `backend.jobs.JOB_KINDS`): the path
between two networks, the plane around one, module criticality, smoothness along training. Same
contract as `backend.runners`: the job's spec, the networks it reads, a device and a progress
callback in; a JobOutput out; no database.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from backend.data import Images, load_task
from backend.jobs import JobOutput
from backend.probes.criticality import module_criticality
from backend.probes.distance import l2_distance
from backend.probes.interpolation import has_batch_norm, linear_path, loss_plane, mistake_overlap, predictions
from backend.probes.smoothness import gradient_top_singular_values, landscape_smoothness
from backend.runners import LoadTask, Networks, Report, network_named, network_on, probe_images
from backend.specs import (
    CriticalityJobSpec, InterpolationJobSpec, PlaneJobSpec, ProbeImages, SmoothnessJobSpec, SpecError,
    TransferJobSpec,
)
from backend.train import Normalization, train_job
from backend.transfer import transfer_job


class Standardise(nn.Module):
    """A network's input normalisation as its first layer, its mean and std as buffers: on the path
    between two networks trained on differently normalised data (P-T against RI-T) they are
    interpolated with the weights, so both ends see their inputs exactly as in their own training."""

    def __init__(self, normalization: Normalization):
        super().__init__()
        self.register_buffer("mean", torch.tensor(normalization.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(normalization.std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) in 0..1
        return (x - self.mean) / self.std


def _with_input(networks: Networks, key: str, device: torch.device) -> nn.Module:
    """Network `key` taking raw images in 0..1, in eval mode."""
    source = network_named(networks, key)
    return nn.Sequential(Standardise(source.normalization), source.build()).to(device).eval()


def _raw(images: Images, device: torch.device) -> Tensor:
    return images.x.to(device).float().div_(255)


def _bn_images(images: ProbeImages, count: int, net: nn.Module, device: torch.device,
               load: LoadTask) -> Tensor | None:
    """Raw training images that re-estimate BatchNorm statistics; None for a network without BatchNorm."""
    if not has_batch_norm(net):
        return None
    draw, _ = probe_images(images.model_copy(update={"split": "train", "images": count}), load)
    return _raw(draw, device)


def run_interpolation(spec: InterpolationJobSpec, networks: Networks, device: torch.device, report: Report,
                      load: LoadTask = load_task, **_: Any) -> JobOutput:
    s = spec.settings
    started = time.perf_counter()
    images, fingerprint = probe_images(spec.images, load)
    net_a, net_b = _with_input(networks, spec.a, device), _with_input(networks, spec.b, device)
    x, y = _raw(images, device), images.y.to(device)
    bn = _bn_images(spec.images, s.bn_images, net_a, device, load)
    path = linear_path(net_a, net_b, x, y, points=s.points, bn_images=bn, batch_size=s.batch_size, progress=report)
    overlap = mistake_overlap(predictions(net_a, x, s.batch_size), predictions(net_b, x, s.batch_size), y.cpu())
    return JobOutput(
        scalars={"barrier": path.barrier, "accuracy_barrier": path.accuracy_barrier,
                 "loss_a": path.loss[0], "loss_b": path.loss[-1], "accuracy_a": path.accuracy[0],
                 "accuracy_b": path.accuracy[-1], "loss_midpoint": path.loss[len(path.loss) // 2],
                 "l2_distance": l2_distance(net_a[1].state_dict(), net_b[1].state_dict()),
                 **{f"mistakes.{k}": float(v) for k, v in overlap.items()},
                 "seconds": time.perf_counter() - started},
        arrays={"path": np.asarray([path.alphas, path.loss, path.accuracy], dtype=np.float64)},
        tables={"estimator": {**s.model_dump(mode="json"), "bn_reestimated": path.bn_reestimated,
                              "barrier": "max over l of loss(l) - ((1 - l) loss(0) + l loss(1)) (Frankle et al.)",
                              "inputs": "each network's input normalisation interpolated with its weights"},
                "data_fingerprint": fingerprint})


def run_plane(spec: PlaneJobSpec, networks: Networks, device: torch.device, report: Report,
              load: LoadTask = load_task, **_: Any) -> JobOutput:
    s = spec.settings
    images, fingerprint = probe_images(spec.images, load)
    net, x, y = _with_input(networks, spec.network, device), _raw(images, device), images.y.to(device)
    bn = _bn_images(spec.images, s.bn_images, net, device, load)
    plane = loss_plane(net, x, y, resolution=s.resolution, span=s.span, seed=s.seed, bn_images=bn,
                       batch_size=s.batch_size, progress=report)
    centre = s.resolution // 2
    return JobOutput(
        scalars={"loss_centre": float(plane.loss[centre, centre]), "loss_max": float(plane.loss.max()),
                 "loss_mean": float(plane.loss.mean())},
        arrays={"plane_loss": plane.loss, "plane_accuracy": plane.accuracy, "plane_coords": np.asarray(plane.coords)},
        tables={"estimator": {**s.model_dump(mode="json"), "bn_reestimated": plane.bn_reestimated,
                              "directions": "Gaussian, filter-normalised (Li et al. 2018); 1-d parameters fixed"},
                "data_fingerprint": fingerprint})


def run_criticality(spec: CriticalityJobSpec, networks: Networks, device: torch.device, report: Report,
                    load: LoadTask = load_task, **_: Any) -> JobOutput:
    s = spec.settings
    init = network_named(networks, spec.network).init
    if init is None:
        raise SpecError("the network's run did not save its starting weights: rerun it with this version",
                        field="network")
    images, fingerprint = probe_images(spec.images, load)
    net, x, y = network_on(networks, spec.network, images, device, channels_last=False)
    try:
        c = module_criticality(net, init, x, y, units=s.units, alphas=s.alphas, sigmas=s.sigmas, samples=s.samples,
                               epsilon=s.epsilon, seed=s.seed, batch_size=s.batch_size, progress=report)
    except ValueError as exc:  # a unit the network lacks
        raise SpecError(str(exc), field="settings.units") from None
    finite = [v for v in c.criticality.values() if math.isfinite(v)]
    return JobOutput(
        scalars={"trained_error": c.trained_error, **{f"criticality.{u}": v for u, v in c.criticality.items()
                                                       if math.isfinite(v)},
                 **{f"rewind.{u}": v for u, v in c.rewind_tolerance.items()},
                 "criticality_max": max(finite) if finite else float("nan")},
        arrays={"criticality_error": c.error},
        tables={"units": c.units, "alphas": c.alphas, "sigmas": c.sigmas,
                "estimator": {**s.model_dump(mode="json"), "sigma": "relative to each tensor's final RMS",
                              "criticality": "Chatterji et al.'s mu: min over admissible (a, sigma > 0) of "
                                             "a^2 ||theta_F - theta_0||^2 / (2 sigma^2); inf (not stored) when "
                                             "no noisy point keeps the error within epsilon",
                              "rewind": "smallest a whose error at sigma = 0 stays within epsilon"},
                "data_fingerprint": fingerprint})


def run_smoothness(spec: SmoothnessJobSpec, networks: Networks, device: torch.device, report: Report,
                   load: LoadTask = load_task, **_: Any) -> JobOutput:
    s, run = spec.settings, spec.run
    data = load(run.data)
    curves: list[tuple[str, int, float]] = []
    probe: dict[str, Tensor] = {}
    marks: set[int] = set()  # the probed steps, known once the trainer says how many steps there are

    def on_step(step: int, total: int, model: nn.Module, x: Tensor, y: Tensor) -> None:
        if not marks:  # once, not on every training step
            marks.update(round(i * total / (s.points - 1)) for i in range(s.points))
        if step not in marks:
            return
        if not probe:  # one fixed batch of training images for every probe point
            g = torch.Generator().manual_seed(s.seed)
            chosen = torch.randperm(len(x), generator=g)[: s.images].to(x.device)
            probe.update(x=x[chosen], y=y[chosen])
        r = landscape_smoothness(model, probe["x"], probe["y"], step_sizes=s.step_sizes)
        curves.extend([("loss", step, r.loss), ("loss_spread", step, r.loss_spread),
                       ("gradient_norm", step, r.gradient_norm)]
                      + ([("beta_smoothness", step, r.beta_smoothness)] if r.beta_smoothness is not None else []))
        curves.extend((f"gradient_sv.{unit}", step, value)
                      for unit, value in gradient_top_singular_values(model, probe["x"], probe["y"]).items())
        report(step / max(total, 1), f"step {step}/{total}: loss spread {r.loss_spread:.4g}")

    started = time.perf_counter()
    if isinstance(run, TransferJobSpec):
        source = network_named(networks, spec.networks[0]) if spec.networks else None
        # The full network every step (not cached frozen features): the probes see every unit.
        replay = run.model_copy(update={"transfer": run.transfer.model_copy(update={"cache_prefix": False})})
        trained = transfer_job(replay, source, device, data=data, on_step=on_step)
    else:
        trained = train_job(run, device, data=data, on_step=on_step)
    summary = {key: [v for k, _, v in curves if k == key] for key in ("loss_spread", "beta_smoothness")}
    return JobOutput(
        scalars={"loss_spread_mean": float(np.mean(summary["loss_spread"])),
                 "beta_smoothness_max": float(np.max(summary["beta_smoothness"])) if summary["beta_smoothness"]
                 else float("nan"),
                 "beta_smoothness_mean": float(np.mean(summary["beta_smoothness"])) if summary["beta_smoothness"]
                 else float("nan"),
                 **{f"gradient_sv_mean.{k[12:]}": float(np.mean([v for kk, _, v in curves if kk == k]))
                    for k in dict.fromkeys(k for k, _, _ in curves if k.startswith("gradient_sv."))},
                 "replay_accuracy": trained.result.final_accuracy, "seconds": time.perf_counter() - started},
        curves=curves,
        tables={"estimator": {**s.model_dump(mode="json"), "mode": "eval (BatchNorm statistics fixed)",
                              "beta_smoothness": "max over eta of ||g(theta - eta g) - g(theta)|| / ||eta g||"},
                "data_fingerprint": trained.data.fingerprint})
