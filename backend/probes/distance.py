"""Parameter-space measures between networks of one architecture: Chen et al.'s per-layer
transferability T, Liu et al.'s relative weight deviation, and the plain L2 distance (Neyshabur et al.).

Chen, Li, Ding, Liu 2022 ("Rethinking two consensuses of the transferability in deep learning"):
theta_r is the random init saved before pretraining, theta_A the pretrained network, theta_B theta_A
fine-tuned on the target. Per layer T = D(theta_r, theta_B) / D(theta_A, theta_B), with D the mean
absolute elementwise difference of the layer's weight: a high T means fine-tuning left the layer near
the pretrained one. Only conv weights and the classifier weight count (no norm layers, no biases, no
ResNet downsample convs); a residual block is one layer whose D is the mean of its convs' D values,
which gives their ResNet-50 its 18 layers (the stem conv, 3 + 4 + 6 + 3 = 16 bottlenecks, the fc).
The overall T is the mean over the layers without the classifier.

Every function takes state dicts or modules (a module's bare state dict is read) and works on the CPU
in float64, one tensor at a time.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from backend.checkpoints import bare_module

Weights = dict[str, Tensor] | nn.Module
Layers = list[tuple[str, list[str]]]  # (layer name, the state-dict names of its weights)

# Buffers of norm layers: statistics, not parameters, so no parameter distance counts them.
NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def chen_layers(model: nn.Module) -> Layers:
    """The layers T is computed over, in order; the last is the classifier.

    Per unit of a UnitNet: each residual block (torchvision BasicBlock: conv1, conv2; Bottleneck:
    conv1..conv3, never its downsample) is one layer named `unit.i`; every other Conv2d or Linear
    weight is a layer of its own, named after the unit when it is the unit's only one. So the
    convnet gives conv1..convK, fc1..fcM, classifier; a ResNet gives stem, layer1.0, ..., fc.
    """
    model = bare_module(model)
    prefix = "body." if hasattr(model, "units") else ""
    units = model.units() if hasattr(model, "units") else list(model.named_children())
    layers: Layers = []
    for unit, module in units:
        found: Layers = []
        blocks = {name for name, m in module.named_modules() if isinstance(m, (BasicBlock, Bottleneck))}
        for name, m in module.named_modules():
            key = f"{prefix}{unit}.{name}" if name else f"{prefix}{unit}"
            if name in blocks:
                convs = [c for c in ("conv1", "conv2", "conv3") if isinstance(getattr(m, c, None), nn.Conv2d)]
                found.append((f"{unit}.{name}", [f"{key}.{c}.weight" for c in convs]))
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and not any(name.startswith(f"{b}.") for b in blocks):
                found.append((f"{unit}.{name}", [f"{key}.weight"]))
        if len(found) == 1:
            found = [(unit, found[0][1])]
        layers += found
    if not layers:
        raise ValueError("this network has no conv or linear weights to measure")
    return layers


def mean_abs_difference(a: Tensor, b: Tensor) -> float:
    """Chen et al.'s D: mean |a - b| over the elements."""
    return (a.detach().cpu().double() - b.detach().cpu().double()).abs().mean().item()


def transferability_t(theta_r: Weights, theta_a: Weights, theta_b: Weights, layers: Layers,
                      classifier: str | None = None) -> dict[str, Any]:
    """Chen et al.'s T per layer and overall.

    `layers` as `chen_layers` gives them; `classifier` (default: the last layer) is reported but left
    out of the overall mean. A layer whose D(theta_A, theta_B) is 0 (theta_B equals theta_A there, e.g.
    a frozen layer) or whose weights differ in shape between the three networks (a new classifier
    head) gets None and an entry in `flagged` with the reason; the overall mean leaves it out and
    `layers_used` says how many layers it averages (None when there are none).

    Returns {"layers": {layer: T or None}, "d_init": {layer: D(theta_r, theta_B)},
    "d_pretrained": {layer: D(theta_A, theta_B)}, "overall": float | None, "layers_used": int,
    "flagged": [{"layer", "reason"}], "classifier": name}.
    """
    r, a, b = _state(theta_r), _state(theta_a), _state(theta_b)
    classifier = classifier if classifier is not None else layers[-1][0]
    out: dict[str, Any] = {"layers": {}, "d_init": {}, "d_pretrained": {}, "flagged": [],
                           "classifier": classifier}
    for layer, names in layers:
        shapes = {n: {tuple(_get(s, n, who).shape) for s, who in ((r, "theta_r"), (a, "theta_A"), (b, "theta_B"))}
                  for n in names}
        mismatched = [f"{n} {' vs '.join(map(str, sorted(s)))}" for n, s in shapes.items() if len(s) > 1]
        if mismatched:
            out["layers"][layer] = None
            out["flagged"].append({"layer": layer, "reason": f"shapes differ: {mismatched[0]}"})
            continue
        # A block's D is the mean of its convs' D values (Chen et al. average the bottleneck's convs).
        d_init = sum(mean_abs_difference(r[n], b[n]) for n in names) / len(names)
        d_pretrained = sum(mean_abs_difference(a[n], b[n]) for n in names) / len(names)
        out["d_init"][layer], out["d_pretrained"][layer] = d_init, d_pretrained
        if d_pretrained == 0:
            out["layers"][layer] = None
            out["flagged"].append({"layer": layer, "reason": "D(theta_A, theta_B) = 0: theta_B equals "
                                                             "theta_A in this layer (frozen?)"})
            continue
        out["layers"][layer] = d_init / d_pretrained
    used = [t for layer, t in out["layers"].items() if layer != classifier and t is not None]
    out["overall"] = sum(used) / len(used) if used else None
    out["layers_used"] = len(used)
    return out


def relative_deviation(theta_0: Weights, theta: Weights, layers: Layers) -> dict[str, float]:
    """Liu et al.'s ||W - W0||_F / ||W0||_F per layer, a layer's weights taken as one vector (a block:
    all its convs). A layer with W0 = 0 gives inf when W moved, 0 when it did not."""
    w0, w = _state(theta_0), _state(theta)
    out = {}
    for layer, names in layers:
        moved = math.sqrt(sum(_squared_distance(_get(w, n, "theta"), _get(w0, n, "theta_0")) for n in names))
        scale = math.sqrt(sum(w0[n].detach().cpu().double().square().sum().item() for n in names))
        out[layer] = moved / scale if scale else (math.inf if moved else 0.0)
    return out


def l2_distance(theta_1: Weights, theta_2: Weights, layers: Layers | None = None) -> float:
    """||theta_1 - theta_2||_2 over the weights of `layers`, or over every floating-point parameter
    (norm statistics excluded) when `layers` is None. The two must hold the same names."""
    s1, s2 = _state(theta_1), _state(theta_2)
    if layers is None:
        names = [n for n, v in s1.items() if v.is_floating_point() and not n.endswith(NORM_STATISTICS)]
        extra = sorted(n for n, v in s2.items() if v.is_floating_point() and not n.endswith(NORM_STATISTICS)
                       and n not in s1)
        if extra:
            raise ValueError(f"theta_1 has no {extra[0]!r}: the networks differ in architecture")
    else:
        names = [n for _, layer_names in layers for n in layer_names]
    return math.sqrt(sum(_squared_distance(_get(s1, n, "theta_1"), _get(s2, n, "theta_2")) for n in names))


def _state(theta: Weights) -> dict[str, Tensor]:
    return bare_module(theta).state_dict() if isinstance(theta, nn.Module) else theta


def _get(state: dict[str, Tensor], name: str, who: str) -> Tensor:
    if name not in state:
        raise ValueError(f"{who} has no weight {name!r}: the networks differ in architecture")
    return state[name]


def _squared_distance(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return (a.detach().cpu().double() - b.detach().cpu().double()).square().sum().item()
