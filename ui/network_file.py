"""A pretrained network as a study's source, on the New study page (torch-free): the weights file (a
path inside the data roots, or an upload), its format and the images it takes; and what its safetensors
header says (units, parameters, the architecture its tensors' shapes imply), read without torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from backend import settings
from backend.specs import ResNetSpec, SpecError, unit_names
from backend.specs.pretrained import (
    FORMATS, IMAGENET_MEAN, IMAGENET_STD, RESNET_UNITS as RESNET_TENSORS, NetworkFile, file_input, safetensors_header,
)
from backend.specs.roots import check_folder

PRETRAIN, PRETRAINED, LAB = "pretrain on a source task", "pretrained model", "a network of this lab"
FROM_PATH, FROM_UPLOAD = "a file inside the data roots", "upload"
TORCH_FORMATS = ("torchvision", "timm")  # ResNets as torchvision names them, ImageNet's input by default
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # state, not parameters
# A torchvision/timm ResNet's top-level modules -> this lab's units, as the import maps them.
RESNET_UNITS = {module.rstrip("."): ours.split(".")[1] for module, ours in RESNET_TENSORS.items()}


@dataclass(frozen=True)
class WeightsForm:
    """The weights file as typed: `spec(model)` makes it the study's `pretrained` field."""

    path: str
    format: str
    input: dict[str, Any] | None  # as typed; None where the file says
    trained_on_source: bool  # the Data column's task is the network's training data (for the domain gap)

    def spec(self, model: dict[str, Any]) -> dict[str, Any]:
        """The `pretrained` dict of the study, the architecture the study's own (its Network column)."""
        given = {} if self.input is None else {"input": {**self.input, "mean": _floats(self.input["mean"], "mean"),
                                                          "std": _floats(self.input["std"], "std")}}
        return {"kind": "file", "path": self.path, "format": self.format, "model": model, **given}


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise SpecError(f"expected numbers, one per channel, got {text!r}", field=f"input.{name}") from None


def weights_form(slots: dict[str, Any]) -> WeightsForm:
    """The widgets that name the file, its format, and its input where the file does not say."""
    where = st.radio("Weights file", [FROM_PATH, FROM_UPLOAD], horizontal=True, key="new.weights_from")
    if where == FROM_PATH:
        path = st.text_input("Weights file (.safetensors, or a torch .pth holding a state dict)", "",
                             key="new.weights_path")
    else:
        upload = st.file_uploader("Weights file", type=["safetensors", "pth", "pt", "bin"], key="new.weights_upload")
        path = "" if upload is None else _saved_upload(upload)
        if path:
            st.caption(f"Saved as `{path}` (named by its sha256)")
    slots["pretrained.path"] = st.empty()
    guess = _guessed_format(path)  # keyed by the guess: a .pth path offers torchvision first
    fmt = st.selectbox("Format", FORMATS, index=FORMATS.index(guess), key=f"new.weights_format.{guess}",
                       help="safetensors: tensors named by this lab's units (body.<unit>.); torchvision: a ResNet's "
                            "state dict (conv1, bn1, layer1..layer4, fc); timm: a ResNet or a ViT as timm names it")
    slots["pretrained.format"] = st.empty()
    said = None if fmt == "torchvision" else _file_input(path)  # timm: from its config.json, if there is one
    if said is not None:
        st.caption(f"Input (from the file): {said.text()}, mean {list(said.mean)}, std {list(said.std)}")
        typed = None
    else:
        typed = _input_boxes(fmt)
    slots["pretrained.input"] = st.empty()
    trained_on = st.checkbox("It was trained on the task below (measures the domain gap to each target)", False,
                             key="new.trained_on_source")
    slots["pretrained"] = st.empty()
    return WeightsForm(path.strip(), fmt, typed, trained_on)


def _input_boxes(fmt: str) -> dict[str, Any]:
    """Size, channels, mean and std of the images the network takes (ImageNet's for torchvision and timm)."""
    imagenet = fmt in TORCH_FORMATS
    st.caption("Input: the file does not say what images the network takes" if not imagenet else
               "Input: ImageNet's unless the network was trained otherwise")
    left, right = st.columns(2)
    size = left.number_input("Image size (pixels)", 4, 1024, 224 if imagenet else 32, key=f"new.input_size.{imagenet}")
    channels = right.radio("Channels", [3, 1], horizontal=True, format_func={1: "grey", 3: "RGB"}.get,
                           key=f"new.input_channels.{imagenet}")
    mean, std = ((IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,)))
    # Keyed by the channel count: switching it offers that many values.
    return {"size": size, "channels": channels,
            "mean": st.text_input("Per-channel mean (0..1)", ", ".join(map(str, mean)),
                                  key=f"new.input_mean.{channels}"),
            "std": st.text_input("Per-channel std (0..1)", ", ".join(map(str, std)), key=f"new.input_std.{channels}")}


def _guessed_format(path: str) -> str:
    return "torchvision" if Path(path).suffix.lower() in (".pth", ".pt", ".bin") else "safetensors"


def _saved_upload(upload: Any) -> str:
    """The upload saved under var/uploads, named by its sha256 (the same file uploaded twice is one file)."""
    key = f"new.upload.{upload.file_id}"
    if key not in st.session_state:
        data = upload.getvalue()
        folder = settings.var_dir() / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(data).hexdigest()}{Path(upload.name).suffix.lower()}"
        if not path.is_file():
            partial = path.with_suffix(path.suffix + ".part")
            partial.write_bytes(data)
            partial.replace(path)  # a reader never sees half a file
        st.session_state[key] = str(path)
    return st.session_state[key]


def readable(path: str) -> Path | None:
    """The file, when it is one inside the data roots (nothing outside them is read)."""
    if not path.strip():
        return None
    try:
        check_folder(path, "pretrained.path")
    except SpecError:
        return None
    found = Path(path).expanduser()
    return found if found.is_file() else None


def _file_input(path: str):
    found = readable(path)
    return None if found is None else file_input(found)


@st.cache_data(max_entries=16, show_spinner=False)
def _header(path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
    """The file's safetensors header, or None for a file that is not safetensors (a torch file);
    read again when the file changes."""
    try:
        return safetensors_header(path)
    except (ValueError, UnicodeDecodeError):
        return None


def header(path: str | Path) -> dict[str, Any] | None:
    stat = Path(path).stat()
    return _header(str(path), stat.st_size, stat.st_mtime_ns)


# ---------------------------------------------------------------- what the header says (pure)

@dataclass(frozen=True)
class FileNetwork:
    """A network as its safetensors header shows it, its tensors grouped by the lab's units."""

    units: dict[str, int]  # unit -> parameters (buffers such as BatchNorm statistics not counted)
    unknown: list[str]  # tensors no unit of a ResNet has (torchvision/timm naming)
    model: dict[str, Any] | None  # the architecture its shapes imply, as a ModelSpec dict; None = unclear
    in_channels: int | None  # what its first layer takes
    classes: int | None  # outputs of its classifier


def lab_named(tensors: dict[str, Any]) -> bool:
    """Whether a header's tensors are named by the lab's units (`body.<unit>.`), as its checkpoints are."""
    return all(name.removeprefix("module.").startswith("body.") for name in tensors if name != "__metadata__")


def file_network(tensors: dict[str, Any], order: list[str] | None = None) -> FileNetwork:
    """Group a header's tensors (name -> {"shape": [...]}) by unit: `body.<unit>.` as the lab writes its
    networks, else a ResNet's conv1/bn1 (stem), layer1..layer4 and fc; units in the network's order
    (`order`, the architecture's unit names, where it has all of the file's)."""
    shapes = {name.removeprefix("module."): list(t["shape"]) for name, t in tensors.items() if name != "__metadata__"}
    lab = lab_named(tensors)
    by_unit: dict[str, dict[str, list[int]]] = {}
    unknown = []
    for name, shape in shapes.items():  # a header lists them by dtype, then name: conv10 before conv2
        first, _, rest = name.removeprefix("body.").partition(".")
        unit = first if lab else RESNET_UNITS.get(first)
        if unit is None:
            unknown.append(name)
        else:
            by_unit.setdefault(unit, {})[rest if lab else name] = shape
    ordered = order if order and set(by_unit) <= set(order) else sorted(by_unit, key=_unit_order)
    by_unit = {unit: by_unit[unit] for unit in ordered if unit in by_unit}
    units = {unit: sum(_numel(s) for n, s in ts.items() if not n.endswith(BUFFERS)) for unit, ts in by_unit.items()}
    model, in_channels = _architecture(by_unit, lab)
    last = list(by_unit.values())[-1] if by_unit else {}
    matrices = [s for n, s in last.items() if n.endswith("weight") and len(s) == 2]
    return FileNetwork(units, unknown, model, in_channels, matrices[-1][0] if matrices else None)


def _unit_order(unit: str) -> tuple[int, int, str]:
    """stem (a ViT's patch), conv1.., layer1.. (block1..), fc1.., then the classifier (a ResNet's fc, a ViT's
    head): as backend.models orders them."""
    kind = unit.rstrip("0123456789")
    number = int(unit[len(kind):] or 0)
    rank = {"stem": 0, "patch": 0, "conv": 1, "layer": 2, "block": 2, "fc": 3 if number else 4, "classifier": 4,
            "head": 4}.get(kind, 5)
    return rank, number, unit


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _architecture(units: dict[str, dict[str, list[int]]], lab: bool) -> tuple[dict[str, Any] | None, int | None]:
    """(the ModelSpec dict the tensors' shapes imply, the first layer's input channels); (None, None)
    where they do not say."""
    def width(unit: str) -> int | None:  # the unit's matrix's output features
        found = [s[0] for n, s in units[unit].items() if n.endswith("weight") and len(s) == 2]
        return found[0] if found else None

    hidden = [width(u) for u in units if u.startswith("fc") and u != "fc"]
    convs = [units[u].get("0.weight") for u in units if u.startswith("conv")]
    if "stem" in units:
        stem = units["stem"].get("0.weight" if lab else "conv1.weight")  # (64, C, k, k)
        if stem is None or len(stem) != 4:
            return None, None
        bottleneck = any("conv3" in n for n in units.get("layer1", {}))
        return {"arch": "resnet50" if bottleneck else "resnet18", "small_input": stem[2] == 3}, stem[1]
    if None in hidden or not lab:
        return None, None
    if convs and all(c is not None and len(c) == 4 for c in convs):  # (width, C, 3, 3)
        first = units["conv1"] if "conv1" in units else {}
        norm = "batch" if "1.running_mean" in first else "group" if "1.weight" in first else "none"
        return {"arch": "convnet", "channels": [c[0] for c in convs], "hidden": hidden, "norm": norm}, convs[0][1]
    if not convs and hidden:
        return {"arch": "mlp", "hidden": hidden}, None
    return None, None


def architecture_text(model: dict[str, Any]) -> str:
    """`convnet 4,8 | fc 8 (batch norm)`, `resnet18 (ImageNet stem)`: the fields a file's shapes show."""
    if model["arch"] == "convnet":
        return f"convnet {_widths(model['channels'])} | fc {_widths(model['hidden'])} ({model['norm']} norm)"
    if model["arch"] == "mlp":
        return f"mlp fc {_widths(model['hidden'])}"
    return f"{model['arch']} ({'small-input' if model.get('small_input', True) else 'ImageNet'} stem)"


def _widths(values: list[int]) -> str:
    return ",".join(map(str, values)) or "none"


def check_file(network: NetworkFile) -> FileNetwork | None:
    """What the file's header says, or None where only the import reads it (a torch file; another
    architecture's own tensor names, as a timm ViT's); a SpecError where the file cannot fit the network
    the study names: not safetensors when it says so, other units, other shapes, other input channels.
    Call it after the network is pinned (the file is inside the data roots and readable)."""
    found = header(Path(network.path).expanduser())
    if found is None:
        if network.format == "safetensors":
            raise SpecError(f"{Path(network.path).name} is not a safetensors file: a torch file (.pth) is the "
                            "torchvision or timm format", field="pretrained.format")
        return None
    if not lab_named(found) and not isinstance(network.model, ResNetSpec):
        return None  # the import job maps those names onto the units, and shows them
    net = file_network(found, unit_names(network.model))
    if net.unknown:
        raise SpecError(f"tensors no unit of a ResNet has: {', '.join(net.unknown[:3])}: a network of another "
                        "architecture comes as safetensors named by its units (body.<unit>.)",
                        field="pretrained.format")
    if net.model is None:
        differs = list(net.units) != unit_names(network.model)
    else:
        differs = net.model["arch"] != network.model.arch or any(
            getattr(network.model, k, None) != v for k, v in net.model.items() if k != "arch")
    if differs:
        said = architecture_text(net.model) if net.model else f"network of units {', '.join(net.units)}"
        raise SpecError(f"the file holds a {said} but the study's network is a "
                        f"{architecture_text(network.model.model_dump())}: set the Network column to the file's "
                        "(the button under the model's preview does)", field="model")
    if net.in_channels is not None and network.input is not None and net.in_channels != network.input.channels:
        raise SpecError(f"the file's first layer takes {net.in_channels} channel(s), the input says "
                        f"{network.input.channels}", field="pretrained.input.channels")
    return net
