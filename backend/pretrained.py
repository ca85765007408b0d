"""Importing a pretrained network: a weights file read without unpickling, mapped onto named units.

The import job (kind `import`, spec `NetworkFile`) checks the file against the digest recorded at
submit, reads its tensors (safetensors, or a torch file with `weights_only=True`: no code runs),
renames them onto the architecture's units (a torchvision or timm ResNet's conv1, bn1, layer1..4, fc
become stem, layer1..layer4, fc; a timm ViT's patch_embed, cls_token, pos_embed, blocks.i, norm, head
become patch, block1..blockN, head) and loads them strictly into the network `backend.models` builds, so
every tensor lands bit for bit or the job fails naming the ones that do not fit. The worker stores the
result as a checkpoint; every later job (transfers, probes) reads it like a network trained here.

An external network has no recorded init, so its theta_r (Chen et al.'s T) is a fresh initialisation
of the architecture drawn with `init_seed`, and every checkpoint of it says so (`init_drawn`).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from backend.checkpoints import load_weights
from backend.jobs import JobOutput
from backend.models import UnitNet, build_model
from backend.specs import ResNetSpec, SpecError, ViTSpec, unit_names
from backend.specs.pretrained import RESNET_UNITS, VIT_UNITS, NetworkFile, sha256_of
from backend.specs.roots import check_data_roots
from backend.train import Normalization

WRAPPERS = ("state_dict", "model")  # keys a training script's checkpoint keeps the weights under (timm's too)


@dataclass
class Imported:
    """An imported network as a job yields it: what a checkpoint records (the fields of `Trained`)."""

    model: UnitNet
    normalization: Normalization
    init: dict[str, Tensor]  # theta_r, drawn afresh
    image_shape: tuple[int, int, int]
    n_classes: int
    fingerprint: str  # the file's sha256: what the network's weights came from
    init_drawn = True

    def metrics(self) -> dict[str, Any]:
        return {}


def run_import(spec: NetworkFile, networks: Any, device: torch.device, report: Any, **_: Any) -> JobOutput:
    network = import_network(spec)
    units = {name: sum(p.numel() for p in module.parameters()) for name, module in network.model.units()}
    return JobOutput(
        scalars={"parameters": float(sum(units.values())), "classes": network.n_classes, "unit_count": len(units)},
        tables={"units": units, "input": spec.input.model_dump(mode="json"),
                "file": {"path": spec.path, "format": spec.format, "sha256": spec.sha256},
                "theta_r": f"drawn afresh with the architecture's own initialisation, seed {spec.init_seed}: "
                           "the file records none"},
        network=network)


def import_network(spec: NetworkFile) -> Imported:
    """The file's network, its tensors checked and loaded bit for bit; a SpecError naming what is wrong."""
    check_data_roots(spec)
    if spec.sha256 is None or spec.input is None:
        raise SpecError("the weights file was not pinned at submit (no recorded sha256 or input)", field="sha256")
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise SpecError(f"no weights file {spec.path!r}", field="path")
    found = sha256_of(path)
    if found != spec.sha256:
        raise SpecError(f"{spec.path!r} has changed since the study recorded it: its sha256 is {found[:12]}..., "
                        f"the recorded one {spec.sha256[:12]}...; it is not loaded", field="sha256")
    state = unit_state(read_state(path), spec)
    shape = (spec.input.channels, spec.input.size, spec.input.size)
    classes = classifier_classes(state, spec)
    torch.manual_seed(spec.init_seed)
    model = build_model(spec.model, shape, classes)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        load_weights(model, state)
    except SpecError as exc:
        raise SpecError(f"{path.name} does not fit {spec.model.arch} with {spec.input.text()} input: "
                        f"{str(exc).split(': ', 1)[1]}", field="model") from None
    norm = Normalization(tuple(spec.input.mean), tuple(spec.input.std))
    return Imported(model, norm, init, shape, classes, spec.sha256)


def read_state(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file or a torch file, never unpickling anything but tensors."""
    with open(path, "rb") as f:
        zipped = zipfile.is_zipfile(f)
    if not zipped:  # torch.save writes zip archives: this is safetensors, or a torch file of before torch 1.6
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001  (whatever the unpickler makes of it, it is no weights file)
                raise SpecError(f"{path.name} is neither a safetensors file nor a torch file: {exc}",
                                field="path") from None
        return _tensors(obj, path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message opens with advice to load with weights_only=False, i.e. to run the file's
        # code: not ours to pass on. Only the object it met is worth naming.
        found = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        named = f" (it calls for {found.group(1)})" if found else ""
        raise SpecError(f"{path.name} holds pickled Python objects or code, not only tensors{named}. It is refused "
                        "because this lab never unpickles anything it loads, and nothing in it was run. Convert "
                        "the weights to safetensors (safetensors.torch.save_file(model.state_dict(), ...)) "
                        "or save the state_dict alone, and submit that file", field="path") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise SpecError(f"{path.name} is not a readable torch file: {exc}", field="path") from None
    return _tensors(obj, path)


def _tensors(obj: Any, path: Path) -> dict[str, Tensor]:
    """The state dict a torch file holds, unwrapped from a training script's checkpoint, prefixes dropped."""
    for key in WRAPPERS:  # {"state_dict": {...}, "epoch": 90, ...} as training scripts save it
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, Tensor) for v in obj.values()):
        raise SpecError(f"{path.name} holds no state dict (a mapping of names to tensors)", field="path")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, Tensor)}


def unit_state(state: dict[str, Tensor], spec: NetworkFile) -> dict[str, Tensor]:
    """The file's tensors named as the lab's network names them (`body.<unit>.`)."""
    if all(k.startswith("body.") for k in state):
        return state  # a lab checkpoint, or a file written in its units
    if not isinstance(spec.model, (ResNetSpec, ViTSpec)):
        raise SpecError(f"the file's tensors ({', '.join(list(state)[:3])}, ...) are not named by the units of a "
                        f"{spec.model.arch} (body.<unit>.<tensor>)", field="format")
    units = RESNET_UNITS if isinstance(spec.model, ResNetSpec) else VIT_UNITS
    renamed, unknown = {}, []
    for key, value in state.items():
        key = re.sub(r"^blocks\.(\d+)\.", lambda m: f"block{int(m[1]) + 1}.", key)  # timm's ViT blocks count from 0
        prefix = next((p for p in units if key.startswith(p)), None)
        if prefix is None:
            unknown.append(key)
        else:
            renamed[units[prefix] + key[len(prefix):]] = value
    if unknown:
        raise SpecError(f"tensors a {spec.model.arch} does not have: {', '.join(unknown[:3])}", field="model")
    return renamed


def classifier_classes(state: dict[str, Tensor], spec: NetworkFile) -> int:
    """How many classes the file's classifier (the last unit's last matrix) has."""
    last = f"body.{unit_names(spec.model)[-1]}."
    weights = [v for k, v in state.items() if k.startswith(last) and k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise SpecError(f"the file has no classifier weights ({last}...weight)", field="model")
    return int(weights[-1].shape[0])
