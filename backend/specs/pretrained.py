"""Pretrained networks from elsewhere as sources: a weights file (a network of this lab as a source,
`LabNetwork`, lives beside the transfer spec, since it may be one).

A `NetworkFile` is also the spec of the job that imports it (kind `import`): the worker reads the
file without unpickling, checks it against the digest recorded at submit, maps its tensors onto the
architecture's named units and stores it as a checkpoint every later job reads like any other.
Torch-free: `pin_network` reads only bytes (the digest) and JSON (a safetensors header, a sidecar).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field, model_validator

from backend.specs.base import Seed, Spec, SpecError, parse, spec_parts
from backend.specs.data import DataSpec
from backend.specs.models import ModelSpec, ResNetSpec, ViTSpec

# What a weights file holds. safetensors: tensors named by this lab's units (`body.<unit>.`), as a lab
# checkpoint is; torchvision: a `state_dict()` saved by torch.save; timm: a timm checkpoint (`.pth`,
# possibly wrapped in {"state_dict": ...}, or `.safetensors`). Both name a ResNet's tensors conv1, bn1,
# layer1..layer4, fc; timm names a ViT's patch_embed, cls_token, pos_embed, blocks.i, norm, head.
FORMATS = ("safetensors", "torchvision", "timm")
SHA256 = r"^[0-9a-f]{64}$"
# A torchvision/timm ResNet's top-level modules -> this lab's tensor names (backend.models.resnet builds
# the stem as (conv1, bn1, relu, maxpool) and the head as (avgpool, flatten, fc)).
RESNET_UNITS = {"conv1.": "body.stem.0.", "bn1.": "body.stem.1.", "fc.": "body.fc.2.",
                **{f"layer{i}.": f"body.layer{i}." for i in range(1, 5)}}
# timm's VisionTransformer (backend.models.vit keeps its names within each unit; blocks.i is block<i+1>).
VIT_UNITS = {"patch_embed.": "body.patch.patch_embed.", "cls_token": "body.patch.cls_token",
             "pos_embed": "body.patch.pos_embed", "block": "body.block", "norm.": "body.head.norm.",
             "head.": "body.head.head."}
if TYPE_CHECKING:
    from backend.specs.transfer import LabNetwork

S = TypeVar("S", bound=Spec)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class NetworkInput(Spec):
    """The images the network was trained on: what every target is brought to before it sees them."""

    size: int = Field(ge=4, le=1024, description="side of the square images it takes")
    channels: Literal[1, 3] = Field(description="1 = grey, 3 = RGB")
    mean: tuple[float, ...] = Field(description="per-channel mean of its training images, in 0..1 units")
    std: tuple[float, ...] = Field(description="per-channel std of its training images, in 0..1 units")

    @model_validator(mode="after")
    def _per_channel(self) -> NetworkInput:
        for name in ("mean", "std"):
            if len(getattr(self, name)) != self.channels:
                raise SpecError(f"{self.channels} channels need {self.channels} values, got "
                                f"{len(getattr(self, name))}", field=name)
        if any(s <= 0 for s in self.std):
            raise SpecError("a std is positive", field="std")
        return self

    def text(self) -> str:
        return f"{self.size}x{self.size} {'grey' if self.channels == 1 else 'RGB'}"


IMAGENET = NetworkInput(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)


class NetworkFile(Spec):
    """A pretrained network from a weights file inside the data roots, and the architecture it fits."""

    kind: Literal["file"] = "file"
    path: str = Field(min_length=1, description="the weights file; inside the data roots")
    format: Literal[FORMATS] = Field("safetensors", description="how its tensors are named and stored")  # type: ignore[valid-type]
    sha256: str | None = Field(None, pattern=SHA256, description="the file's digest, recorded at submit and "
                               "checked on every load; None until pinned")
    model: ModelSpec = Field(description="its architecture; its units named as backend.models names them")  # type: ignore[valid-type]
    input: NetworkInput | None = Field(None, description="the images it takes; None = from the file's metadata "
                                       "(a lab checkpoint's sidecar, timm's config.json) or, for torchvision "
                                       "weights and timm files without a config, ImageNet's")
    data: DataSpec | None = Field(None, description="the data it was trained on, when the lab can read it: the "
                                  "domain gap measures source against target")
    init_seed: Seed = Field(0, description="an external network has no recorded init: Chen's T reads theta_r "
                            "as a fresh initialisation of the architecture drawn with this seed (flagged)")

    @model_validator(mode="before")
    @classmethod
    def _imagenet_input(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("format") == "torchvision" and value.get("input") is None:
            return {**value, "input": IMAGENET.model_dump()}
        return value

    @model_validator(mode="after")
    def _fits(self) -> NetworkFile:
        if isinstance(self.model, ResNetSpec) and self.model.pretrained:
            raise SpecError("the file holds the weights: model.pretrained is for torchvision's own download",
                            field="model.pretrained")
        named = {"safetensors": (), "torchvision": (ResNetSpec,), "timm": (ResNetSpec, ViTSpec)}[self.format]
        if named and not isinstance(self.model, named):
            kinds = " or a ".join(c.__name__.removesuffix("Spec") for c in named)
            raise SpecError(f"a {self.format} file names the tensors of a {kinds}; a {self.model.arch} comes as "
                            "safetensors named by its units", field="format")
        return self

    @property
    def job(self) -> NetworkFile:
        """The job that makes it a network of the lab: importing it."""
        return self


def check_input(pretrained: NetworkFile | LabNetwork, tasks: list[tuple[str, DataSpec]]) -> None:
    """Every task, as the study brings it to the network, in the images the network takes, or a
    SpecError naming both."""
    expected = pretrained.input
    if expected is None:
        return
    for where, task in tasks:
        for what, want in (("size", expected.size), ("channels", expected.channels)):
            got = getattr(task, what)
            if got is not None and got != want:
                raise SpecError(f"the pretrained network takes {expected.text()} images but {where} comes as "
                                f"{what} {got}: leave input.{what} empty, or set it to {want}", field=f"input.{what}")


# ---------------------------------------------------------------- pinning, at submit (no torch)

def pin_files(spec: S) -> S:
    """`spec` with every weights file in it pinned (see `pin_network`); run where a study comes in, before
    it is expanded or stored, so its jobs name the bytes they will read."""
    parts = list(spec_parts(spec, NetworkFile))
    if not parts:
        return spec
    tree = spec.model_dump(mode="json")
    for where, network in parts:
        *parents, leaf = where.split(".")
        node = tree
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(leaf) if isinstance(node, list) else leaf] = pin_network(network, where).model_dump(mode="json")
    return parse(type(spec), tree)


def pin_network(network: NetworkFile, where: str = "pretrained") -> NetworkFile:
    """The file as the study will read it: inside the data roots, its digest recorded (a digest given
    must match), its input read from its own metadata when the spec gives none."""
    from backend.specs.roots import check_folder  # roots reads the settings

    check_folder(network.path, f"{where}.path")
    path = Path(network.path).expanduser()
    if not path.is_file():
        raise SpecError(f"no weights file {network.path!r}", field=f"{where}.path")
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise SpecError(f"cannot read {network.path!r}: {exc}", field=f"{where}.path") from None
    if network.sha256 is not None and network.sha256 != digest:
        raise SpecError(f"{network.path!r} has changed since it was recorded: its sha256 is {digest[:12]}..., "
                        f"the study's {network.sha256[:12]}...", field=f"{where}.sha256")
    update: dict[str, Any] = {"sha256": digest}
    if network.input is None:
        found = file_input(path) or (IMAGENET if network.format == "timm" else None)
        if found is None:
            raise SpecError(f"{path.name} does not say what images it takes: give {where}.input (size, "
                            "channels, mean, std)", field=f"{where}.input")
        update["input"] = found
    return network.model_copy(update=update)


def file_input(path: Path) -> NetworkInput | None:
    """The input a weights file records: a lab checkpoint's sidecar (`normalization`, `input_shape`), timm's
    `config.json` beside it (`pretrained_cfg`: input_size, mean, std, as the Hugging Face hub keeps it), or
    `input` in a safetensors file's own metadata (JSON, as `NetworkInput` names it); None when none does."""
    try:
        cfg = json.loads((path.parent / "config.json").read_text())["pretrained_cfg"]
        c, h, _ = cfg["input_size"]
        return NetworkInput(size=h, channels=c, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        c, h, _ = meta["input_shape"]
        norm = meta["normalization"]
        return NetworkInput(size=h, channels=c, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return NetworkInput(**json.loads(safetensors_header(path).get("__metadata__", {})["input"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """A safetensors file's JSON header (tensor name -> dtype, shape, offsets; `__metadata__`), read
    without torch; a file that is not safetensors is a ValueError."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("too short for a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > 100 << 20:
            raise ValueError("not a safetensors file (implausible header length)")
        return json.loads(f.read(length))


def sha256_of(path: str | Path) -> str:
    """A file's sha256, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
