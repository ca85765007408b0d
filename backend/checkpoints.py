"""Checkpoints: a safetensors file of the bare module's weights plus a JSON sidecar.

Loading never unpickles: safetensors holds only tensors, the sidecar only JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from backend.provenance import environment
from backend.specs import SpecError
from backend.specs.pretrained import sha256_of  # noqa: F401  (a checkpoint's digest; torch-free there)

FORMAT = "transferlab.checkpoint/1"
INIT = "init"  # the sidecar's `kind` of a network's initial weights (theta_r), and its artifact kind


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | Path, model: nn.Module | dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """Write `path` (.safetensors) of a module's (or a state dict's) weights and its sidecar, each
    atomically (temp file + rename)."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = bare_module(model).state_dict() if isinstance(model, nn.Module) else model
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT})
    os.replace(tmp, path)
    sidecar = {"format": FORMAT, **environment(), **meta}
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.json.tmp")
    tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True))
    os.replace(tmp, sidecar_path(path))
    return path


def state_digest(state: dict[str, Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_checkpoint(path: str | Path, sha256: str | None = None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state dict, sidecar). A missing, truncated or foreign file is a SpecError naming it; so is one
    whose bytes no longer hash to `sha256`, the digest recorded when it was written: it is never loaded."""
    path = Path(path)
    if sha256 is not None and path.exists() and (found := sha256_of(path)) != sha256:
        raise SpecError(f"checkpoint {str(path)!r} was damaged or replaced after it was written: its sha256 is "
                        f"{found[:12]}..., the recorded one {sha256[:12]}...; re-run the job that wrote it",
                        field="checkpoint")
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise SpecError(f"checkpoint {str(path)!r} does not exist", field="checkpoint") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise SpecError(f"checkpoint {str(path)!r} is not a readable safetensors file: {exc}",
                        field="checkpoint") from None
    try:
        meta = json.loads(sidecar_path(path).read_text())
    except FileNotFoundError:
        meta = {}
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"checkpoint sidecar {str(sidecar_path(path))!r} is unreadable: {exc}",
                        field="checkpoint") from None
    return state, meta


def save_init(path: str | Path, state: dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """A network's weights before its first step (theta_r), as a checkpoint whose sidecar says so."""
    return save_checkpoint(path, state, {**meta, "kind": INIT})


def load_init(path: str | Path, sha256: str | None = None) -> dict[str, Tensor]:
    """The initial weights saved by `save_init`; any other checkpoint is a SpecError. (`SourceNet.load`
    reads the same file when the network itself is wanted.)"""
    state, meta = load_checkpoint(path, sha256)
    if meta.get("kind") != INIT:
        raise SpecError(f"checkpoint {str(path)!r} holds trained weights, not a network's initial ones",
                        field="checkpoint")
    return state


def load_weights(model: nn.Module, state: dict[str, Tensor], strict: bool = True, assign: bool = False) -> None:
    """Copy `state` into `model` (or, with `assign`, make its tensors the model's: for a model built on
    the meta device); a checkpoint of another architecture is a clear error."""
    own = bare_module(model).state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if wrong or (strict and (missing or unexpected)):
        parts = [f"shape mismatch: {', '.join(wrong[:3])}"] if wrong else []
        parts += [f"missing {', '.join(missing[:3])}"] if strict and missing else []
        parts += [f"unexpected {', '.join(unexpected[:3])}"] if strict and unexpected else []
        raise SpecError("checkpoint does not fit this architecture (" + "; ".join(parts) + ")",
                        field="checkpoint")
    bare_module(model).load_state_dict(state, strict=strict, assign=assign)


def bare_module(model: nn.Module) -> nn.Module:
    """Unwrap torch.compile and DDP so keys carry no `_orig_mod.` or `module.` prefix."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


# ---------------------------------------------------------------- mid-run state, for resuming

def save_train_state(path: str | Path, state, spec_hash: str) -> Path:
    """A run's state after an epoch (weights, optimiser, schedule, generators, history) as one
    safetensors file; the non-tensor parts travel as JSON in its metadata."""
    from dataclasses import asdict

    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in state.model.items()}
    tensors["generator"] = state.generator.cpu()
    tensors["rng"] = state.rng.cpu()
    optim_values: dict[str, dict[str, Any]] = {}
    for idx, entries in state.optimizer["state"].items():
        for name, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                optim_values.setdefault(str(idx), {})[name] = value
    result = state.result
    meta = {"format": FORMAT + "+state", "spec_hash": spec_hash, "epoch": state.epoch,
            "param_groups": state.optimizer["param_groups"], "optimizer_values": optim_values,
            "scheduler": state.scheduler, "history": [asdict(r) for r in result.history],
            "images_seen": result.images_seen, "train_seconds": result.train_seconds}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"state": json.dumps(meta)})
    os.replace(tmp, path)
    return path


def load_train_state(path: str | Path, spec_hash: str):
    """The state saved by `save_train_state`, or None when there is none for this spec."""
    from safetensors import safe_open

    from backend.train import EpochRecord, TrainResult, TrainState

    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["state"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, KeyError):
        return None  # a torn or foreign file: start over rather than fail
    if meta.get("spec_hash") != spec_hash:
        return None
    optimizer_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            optimizer_state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["optimizer_values"].items():
        optimizer_state.setdefault(int(idx), {}).update(values)
    result = TrainResult([EpochRecord(**r) for r in meta["history"]], meta["images_seen"], meta["train_seconds"])
    return TrainState(
        epoch=meta["epoch"],
        model={k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")},
        optimizer={"state": optimizer_state, "param_groups": meta["param_groups"]},
        scheduler=meta["scheduler"], generator=tensors["generator"], rng=tensors["rng"], result=result)
