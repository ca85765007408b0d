"""Transfer: a target network whose first n units come from a source network, frozen or fine-tuned.

The main speed win lives here: when the first n units are frozen and no random augmentation is on,
their outputs never change, so they are computed once for the whole data set and only the units
above n are trained, on those cached features. It gives the same network as running the frozen
units every step (tests check both paths agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from pydantic import TypeAdapter
from torch import Tensor, nn

from backend.checkpoints import load_checkpoint, load_init, load_weights, state_digest
from backend.data import TaskData, load_task
from backend.models import UnitNet, build_model
from backend.specs import ModelSpec, SpecError, TransferJobSpec
from backend.train import (
    Normalization, ProgressFn, Trained, TrainResult, eval_batch_size, fit, mixed_precision, resolve_device,
)

# Cached features beyond this size fall back to running the frozen units every step.
PREFIX_CACHE_BYTES = 4 << 30


@dataclass(frozen=True)
class SourceNet:
    """A trained network's weights, the input normalisation it was trained with, and what it takes
    to rebuild it (architecture, input shape, classes) for probes that run it, and its weights before
    its first step (theta_r for a network trained from scratch; for a transfer, the copied units and
    the fresh ones above), read only when a probe asks for `init`."""

    state: dict[str, Tensor]
    normalization: Normalization
    model: ModelSpec | None = None  # type: ignore[valid-type]
    image_shape: tuple[int, int, int] | None = None  # (C, H, W)
    n_classes: int | None = None
    init_path: str | None = None  # theta_r's file, when its run saved one
    init_sha256: str | None = None  # its recorded digest, checked before it is read
    init_state: dict[str, Tensor] | None = field(default=None, repr=False)  # or theta_r in memory
    init_drawn: bool = False  # theta_r drawn afresh for a network imported without one (Chen's T flags it)

    @cached_property
    def init(self) -> dict[str, Tensor] | None:
        """The weights before the run's first step; None when the run kept none (a checkpoint written
        before init saving)."""
        if self.init_state is not None:
            return self.init_state
        return load_init(self.init_path, self.init_sha256) if self.init_path else None

    @cached_property
    def weights_digest(self) -> str:
        """sha256 of the weights (names, dtypes, shapes, bytes): what identifies this network's outputs."""
        return state_digest(self.state)

    @classmethod
    def of(cls, trained: Trained, model: ModelSpec | None = None) -> SourceNet:  # type: ignore[valid-type]
        """A network a job yielded (trained, or an Imported one: the same fields), as later jobs read it."""
        state = {k: v.detach().clone() for k, v in trained.model.state_dict().items()}
        return cls(state, trained.normalization, model, trained.image_shape, trained.n_classes,
                   init_state=trained.init, init_drawn=trained.init_drawn)

    @classmethod
    def load(cls, path: str, sha256: str | None = None, init_sha256: str | None = None) -> SourceNet:
        """The network of a checkpoint; with recorded digests, a file that no longer matches is refused."""
        state, meta = load_checkpoint(path, sha256)
        norm = meta.get("normalization")
        if not norm:
            raise SpecError(f"checkpoint {path!r} has no input normalisation in its sidecar", field="checkpoint")
        model = meta.get("spec", {}).get("model")
        shape = meta.get("input_shape")
        init = meta.get("init")  # the init file's name, beside the checkpoint
        return cls(state, Normalization(tuple(norm["mean"]), tuple(norm["std"])),
                   TypeAdapter(ModelSpec).validate_python(model) if model else None,
                   tuple(shape) if shape else None, meta.get("n_classes"),
                   str(Path(path).with_name(init)) if init else None, init_sha256 if init else None,
                   init_drawn=bool(meta.get("init_drawn")))

    def build(self) -> UnitNet:
        """The network itself, weights loaded, on the CPU."""
        if self.model is None or self.image_shape is None or self.n_classes is None:
            raise SpecError("this checkpoint does not record its architecture, input shape and classes "
                            "(written before probes existed): run its job again", field="checkpoint")
        with torch.device("meta"):  # no random init to throw away: the weights come from the state
            net = build_model(self.model, self.image_shape, self.n_classes)
        load_weights(net, {k: v.clone() for k, v in self.state.items()}, assign=True)  # copies: probes may edit
        return net


def transfer_job(job: TransferJobSpec, source: SourceNet | None, device: str | torch.device = "auto",
                 progress: ProgressFn | None = None, data: TaskData | None = None, **fit_options: Any) -> Trained:
    """Build the target net from the job's seed, copy and freeze units as the job says, train it."""
    device = resolve_device(device) if isinstance(device, str) else device
    t = job.transfer
    copies = job.copies_units
    if copies and source is None:
        raise SpecError(f"copying {t.n} units needs the source network's weights", field="source")
    data = data or load_task(job.data)
    if copies and source.image_shape is not None and tuple(source.image_shape) != tuple(data.image_shape):
        raise SpecError(f"the source network takes {_shape(source.image_shape)} images but the target task's are "
                        f"{_shape(data.image_shape)}: bring both to one format (data.size and data.channels, or "
                        "a cross-data-set study's input)", field="data")
    torch.manual_seed(job.train.seed)
    model = build_model(job.model, data.image_shape, data.n_classes)
    # Copied units see inputs normalised as the source saw them in its own training.
    norm = source.normalization if copies else Normalization.of(data.train)
    if copies:
        copy_units(source.state, model, t.n)
    frozen = 0 if t.fine_tune else t.n
    model.freeze(frozen)
    # theta_0, where this run's optimisation starts (copied units included): module criticality rewinds to it.
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train = norm.apply(data.train, device, job.train.channels_last)
    test = norm.apply(data.test, device, job.train.channels_last)
    if frozen and t.cache_prefix and job.train.augment == "none" and _fits_cache(model, frozen, train[0]):
        result = fit_frozen_prefix(model, frozen, train, test, job, progress, **fit_options)
    else:
        result = fit(model, train, test, job.train, progress, **fit_options)
    return Trained(model, result, data, norm, init)


def _shape(image_shape) -> str:
    c, h, w = image_shape
    return f"{h}x{w} {'grey' if c == 1 else f'{c}-channel'}"


def copy_units(state: dict[str, Tensor], model: UnitNet, n: int) -> None:
    """Copy the parameters and buffers of the first n units from `state` into `model`."""
    prefixes = tuple(f"body.{name}." for name in model.unit_names[:n])
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    missing = [k for k in own if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or wrong:
        detail = f"missing {', '.join(missing[:3])}" if missing else f"shape mismatch {', '.join(wrong[:3])}"
        raise SpecError(f"the source checkpoint does not fit the target's first {n} units ({detail})",
                        field="source")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])


class _Above(nn.Module):
    """Units n.. of a UnitNet, as a module of their own (the frozen units stay registered)."""

    def __init__(self, net: UnitNet, n: int):
        super().__init__()
        self.net, self.n = net, n

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h, start=self.n)


def fit_frozen_prefix(model: UnitNet, n: int, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                      job: TransferJobSpec, progress: ProgressFn | None = None, **fit_options: Any) -> TrainResult:
    """Train units n.. on the frozen units' outputs, computed once."""
    batch = eval_batch_size(job.train, train[0].device)
    h_train = frozen_features(model, n, train[0], batch, job.train.amp)
    h_test = frozen_features(model, n, test[0], batch, job.train.amp)
    return fit(_Above(model, n), (h_train, train[1]), (h_test, test[1]), job.train, progress, **fit_options)


@torch.no_grad()  # not inference_mode: the features are inputs to a graph that needs gradients
def frozen_features(model: UnitNet, n: int, x: Tensor, batch_size: int, amp: bool) -> Tensor:
    """(N, C, H, W) inputs -> outputs of units 0..n-1, frozen units in eval mode."""
    model.train()  # frozen units go to eval mode, whatever the rest does
    autocast, _ = mixed_precision(x.device, amp)
    with autocast:
        return torch.cat([model(xb, stop=n) for xb in x.split(batch_size)])


def _fits_cache(model: UnitNet, n: int, x: Tensor) -> bool:
    with torch.no_grad():
        model.eval()
        one = model(x[:1], stop=n)
    return one.numel() * one.element_size() * len(x) <= PREFIX_CACHE_BYTES
