"""The engine function behind each job kind (named in `backend.jobs.JOB_KINDS`).

Every runner takes the job's spec, the networks it reads (spec hash -> SourceNet), a device and a
`report(fraction, message)` callback (which may raise to stop the run), and returns a JobOutput:
scalars, curves, arrays and the estimator settings that produced them. No database here: the
worker stores the output, the local runner keeps it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from backend.data import Images, TaskData, load_task
from backend.jobs import JobOutput
from backend.models import UnitNet
from backend.data.preview import data_preview
from backend.probes.curvature import sharpness_by_scope
from backend.probes.representations import RepresentationCache, representation_key
from backend.probes.similarity import (
    UnitReps, cka_matrix, cka_of_representations, keeps_batch_grams, minibatch_starts, unit_representations,
)
from backend.recent import LeastRecentlyUsed
from backend.probes.smoothness import speed_summary
from backend.specs import (
    DataSpec, ProbeImages, SharpnessJobSpec, SimilarityJobSpec, SpecError, TrainJobSpec, TransferJobSpec,
    canonical_json, spec_hash,
)
from backend.specs.preview import DataPreviewSpec
from backend.train import Progress, ProgressFn, Trained, train_job
from backend.transfer import SourceNet, transfer_job

if TYPE_CHECKING:
    from backend.pretrained import Imported
    from backend.specs import Spec

Report = Callable[[float, str], None]
SPEED_FRACTIONS = (0.9, 0.99)  # epochs to reach these shares of the run's best test accuracy
Networks = Mapping[str, SourceNet]
LoadTask = Callable[[DataSpec], TaskData]


# ---------------------------------------------------------------- networks

def run_train(spec: TrainJobSpec, networks: Networks, device: torch.device, report: Report,
              load: LoadTask = load_task, **fit_options: Any) -> JobOutput:
    trained = train_job(spec, device, training_progress(report), load(spec.data), **fit_options)
    return network_output(trained)


def run_transfer(spec: TransferJobSpec, networks: Networks, device: torch.device, report: Report,
                 load: LoadTask = load_task, **fit_options: Any) -> JobOutput:
    source = None
    if spec.copies_units:
        source = networks.get(spec_hash(spec.source))
        if source is None:
            raise SpecError("the source network is not available", field="source")
    trained = transfer_job(spec, source, device, training_progress(report), load(spec.data), **fit_options)
    return network_output(trained)


def training_progress(report: Report) -> ProgressFn:
    """The trainer's per-step progress as a fraction and a message."""
    def progress(p: Progress) -> None:
        done = (p.epoch - 1) * p.steps + p.step
        if p.phase == "eval":
            message = f"epoch {p.epoch}/{p.epochs}: test accuracy {100 * p.accuracy:.2f}%"
        else:
            message = f"epoch {p.epoch}/{p.epochs}, step {p.step}/{p.steps}, loss {p.loss:.4f}"
        report(done / (p.epochs * p.steps), message)

    return progress


def network_output(trained: Trained) -> JobOutput:
    r = trained.result
    speed = speed_summary(r.history, fractions=SPEED_FRACTIONS)
    return JobOutput(
        scalars={"final_accuracy": r.final_accuracy, "best10_accuracy": r.best_mean(10),
                 "train_seconds": r.train_seconds, "images_seen": r.images_seen,
                 "images_per_second": r.images_seen / max(r.train_seconds, 1e-9),
                 "train_images": len(trained.data.train.y), "classes": trained.data.n_classes,
                 # Optimisation speed (Neyshabur et al.): how soon the run got near its best.
                 "best_epoch": speed["best_epoch"], "curve_area": speed["curve_area"],
                 **{f"epochs_to_{round(100 * p)}pct": speed[f"epochs_to_{p:g}_of_best"] for p in SPEED_FRACTIONS}},
        curves=[m for record in r.history for m in epoch_metrics(record)],
        tables={"data_fingerprint": trained.data.fingerprint},
        network=trained)


def epoch_metrics(r) -> list[tuple[str, int, float]]:
    """One epoch's points of the training curves."""
    return [("train_loss", r.epoch, r.train_loss), ("train_accuracy", r.epoch, r.train_accuracy),
            ("test_loss", r.epoch, r.test_loss), ("test_accuracy", r.epoch, r.test_accuracy),
            ("lr", r.epoch, r.lr), ("images_per_second", r.epoch, r.images_per_second)]


def checkpoint_meta(spec: Spec, network: Trained | Imported) -> dict[str, Any]:
    """A network checkpoint's sidecar: enough to trace it and to rebuild it without its job."""
    return {"spec": json.loads(canonical_json(spec)), "spec_hash": spec_hash(spec),
            "data_fingerprint": network.fingerprint, "units": network.model.unit_names,
            "input_shape": list(network.image_shape), "n_classes": network.n_classes,
            "normalization": {"mean": network.normalization.mean, "std": network.normalization.std},
            "metrics": network.metrics(), **({"init_drawn": True} if network.init_drawn else {})}


# ---------------------------------------------------------------- probes

def probe_images(images: ProbeImages, load: LoadTask = load_task) -> tuple[Images, str]:
    """The probe set: a seeded draw of `images.images` images of the split (all when there are
    fewer), and the task's data fingerprint."""
    task = load(images.data)
    split = task.train if images.split == "train" else task.test
    g = torch.Generator().manual_seed(images.seed)
    chosen = torch.randperm(len(split), generator=g)[: images.images]
    return split.take(chosen), task.fingerprint


def network_named(networks: Networks, key: str) -> SourceNet:
    """The network a probe reads, or a SpecError naming the one missing."""
    if key not in networks:
        raise SpecError(f"network {key[:12]} is not available", field="networks")
    return networks[key]


# Built networks kept by architecture, device and layout (network_on(shared=True)): copying a network's
# weights into one takes ~0.1 ms where building it takes 6-13 ms (the digits convnet: module set-up on
# the meta device and load_state_dict's Python), as much as its CKA work on 180 images.
_SHELLS = LeastRecentlyUsed(8)


# Memory layout per probe, measured on this CPU: CKA of two default convnets on 2,048 images took
# 0.51 s in NHWC against 1.02 s in NCHW; the sharpness probe ran about 10% slower in NHWC.
def network_on(networks: Networks, key: str, images: Images, device: torch.device,
               channels_last: bool, shared: bool = False) -> tuple[UnitNet, Tensor, Tensor]:
    """The network `key` in eval mode, and the images normalised the way it saw its training data.
    shared: instead of a network of its own, one module per architecture kept between calls, with this
    network's weights copied in; for a caller that only runs it, and only until the next shared call."""
    net = network_named(networks, key)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x, y = net.normalization.apply(images, device, channels_last)
    if not shared:
        return net.build().to(device, memory_format=layout).eval(), x, y
    kind = (canonical_json(net.model) if net.model is not None else "", net.image_shape, net.n_classes,
            str(device), channels_last)
    found = _SHELLS.get(kind)
    if found is None or found[1].keys() != net.state.keys():
        shell = net.build().to(device, memory_format=layout).eval()
        _SHELLS.put(kind, (shell, shell.state_dict()))  # state_dict: the module's own tensors, not copies
        return shell, x, y
    shell, tensors = found
    with torch.no_grad():
        for name, t in tensors.items():
            t.copy_(net.state[name])
    return shell, x, y  # in eval mode since it was built: unit_representations leaves modes as it finds them


def run_similarity(spec: SimilarityJobSpec, networks: Networks, device: torch.device, report: Report,
                   load: LoadTask = load_task, representations: RepresentationCache | None = None,
                   **_: Any) -> JobOutput:
    """CKA of every unit pair. Each network's unit representations come from `representations`
    (computed there once per network, probe set and data, then reused by every comparison it takes part
    in): for the exact estimator always, for the minibatch one while its batches' Grams are small
    enough to keep (similarity.keeps_batch_grams); past that, it runs both networks batch by batch."""
    s = spec.settings
    images, fingerprint = probe_images(spec.images, load)
    started = time.perf_counter()
    n = len(images.y)
    if s.estimator == "full" or keeps_batch_grams(n, s.batch_size):
        cache = representations if representations is not None else RepresentationCache()

        def side(key: str) -> tuple[list[str], UnitReps]:
            def compute() -> tuple[list[str], UnitReps]:
                net, x, _ = network_on(networks, key, images, device, channels_last=True, shared=True)
                return list(net.unit_names), unit_representations(
                    net, x, kernel=s.kernel, pool=s.pool, rbf_width=s.rbf_width, batch_size=s.batch_size,
                    estimator=s.estimator)
            wanted = representation_key(key, spec.images.model_dump(mode="json"), s.model_dump(mode="json"),
                                        network_named(networks, key).weights_digest, fingerprint)
            return cache.get(wanted, compute, device)

        (units_a, reps_a), (units_b, reps_b) = side(spec.a), side(spec.b)
        report(0.9, "CKA from the units' representations")
        cka = cka_of_representations(reps_a, reps_b)
        matrix = ((cka + cka.T) / 2 if spec.a == spec.b else cka).numpy()  # exactly symmetric with itself
        constant_a = [u for u, r in zip(units_a, reps_a) if r.norm == 0]
        constant_b = [u for u, r in zip(units_b, reps_b) if r.norm == 0]
        starts = minibatch_starts(n, s.batch_size) if s.estimator == "minibatch" else [0]
        counted = {"images": sum(min(s.batch_size, n - start) for start in starts) if s.estimator == "minibatch"
                   else n, "batches": len(starts)}
    else:
        net_a, x_a, _ = network_on(networks, spec.a, images, device, channels_last=True)
        net_b, x_b = None, None
        if spec.b != spec.a:
            net_b, x_b, _ = network_on(networks, spec.b, images, device, channels_last=True)
        result = cka_matrix(net_a, x_a, net_b, x_b, kernel=s.kernel, estimator=s.estimator,
                            batch_size=s.batch_size, pool=s.pool, rbf_width=s.rbf_width, progress=report)
        matrix, units_a, units_b = result.matrix.numpy(), result.units_a, result.units_b
        constant_a, constant_b = result.constant_a, result.constant_b
        counted = {"images": result.images, "batches": result.batches}
    depth = min(matrix.shape)
    return JobOutput(
        scalars={"cka_diagonal_mean": float(np.diag(matrix[:depth, :depth]).mean()),
                 "cka_mean": float(matrix.mean()), "seconds": time.perf_counter() - started},
        arrays={"cka": matrix},
        tables={"units": {"a": units_a, "b": units_b},
                "constant_units": {"a": constant_a, "b": constant_b},
                "estimator": {**s.model_dump(mode="json"), **counted},
                "data_fingerprint": fingerprint})


def run_sharpness(spec: SharpnessJobSpec, networks: Networks, device: torch.device, report: Report,
                  load: LoadTask = load_task, **_: Any) -> JobOutput:
    s = spec.settings
    images, fingerprint = probe_images(spec.images, load)
    model, x, y = network_on(networks, spec.network, images, device, channels_last=False)
    scopes = parameter_scopes(model.unit_names, spec.cut, s.scopes, s.units)
    out = JobOutput(tables={"data_fingerprint": fingerprint, "scopes": scopes, "estimator": {}})
    # every scope in one call: one Hessian operator, its gradient graphs and passes shared by all of them
    results = sharpness_by_scope(
        model, x, y, dict(scopes), top_k=s.top_k, eig_method=s.eig_method, max_iterations=s.max_iterations,
        tol=s.tol, trace_method=s.trace_method, trace_samples=s.trace_samples, density=s.density,
        density_runs=s.density_runs, density_iterations=s.density_iterations, batch_size=s.batch_size,
        seed=s.seed, progress=report)
    for scope, r in results.items():
        suffix = "" if scope == "all" else f".{scope}"
        out.scalars.update({f"top_eigenvalue{suffix}": r.top_eigenvalues[0], f"trace{suffix}": r.trace,
                            f"hvps{suffix}": r.hvps, f"parameters{suffix}": r.parameters})
        out.arrays[f"eigenvalues{suffix}"] = np.asarray(r.top_eigenvalues, dtype=np.float64)
        if r.density is not None:
            out.arrays[f"density{suffix}"] = np.asarray([r.density_grid, r.density], dtype=np.float64)
        out.curves += [(f"{name}{suffix}", step, value) for name, trace in r.convergence.items()
                       for step, value in enumerate(trace, 1)]
        out.tables["estimator"][scope] = {
            **s.model_dump(mode="json", exclude={"scopes", "units"}), "parameters": r.parameters, "hvps": r.hvps,
            "trace_std_error": r.trace_std_error, "seconds": r.seconds, "block": r.block,
            "convergence": [f"{name}{suffix}" for name in r.convergence]}
    return out


def parameter_scopes(unit_names: list[str], cut: int, scopes: list[str], subsets: list[list[str]]) -> dict[str, list[str]]:
    """Scope name -> the units whose parameters it measures. An empty scope (nothing transferred at
    n = 0) is left out; a unit the network lacks is an error."""
    named = {"all": list(unit_names), "transferred": list(unit_names[:cut]), "new": list(unit_names[cut:])}
    out = {scope: named[scope] for scope in scopes if named[scope]}
    for subset in subsets:
        unknown = [u for u in subset if u not in unit_names]
        if unknown:
            raise SpecError(f"no unit {unknown[0]!r} in this network ({', '.join(unit_names)})", field="settings.units")
        out["+".join(subset)] = list(subset)
    return out


# ---------------------------------------------------------------- data

def run_preview(spec: DataPreviewSpec, networks: Networks, device: torch.device, report: Report,
                load: LoadTask = load_task, **_: Any) -> JobOutput:
    report(0.0, "decoding the data")
    p = data_preview(spec, load)
    c, h, w = p.image_shape
    return JobOutput(
        scalars={"n_classes": len(p.classes), "train_images": sum(p.counts["train"]),
                 "test_images": sum(p.counts["test"]), "channels": c, "height": h, "width": w},
        arrays={"samples": p.samples},
        tables={"classes": {"names": list(p.classes), **p.counts}, "sample_classes": list(p.sample_classes),
                "halves": {str(seed): halves for seed, halves in p.halves.items()},
                "data_fingerprint": p.fingerprint})
