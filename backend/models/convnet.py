"""Yosinski-style convnet: conv blocks then fully connected layers, each one transfer unit."""

from __future__ import annotations

from torch import nn

from backend.specs import ConvNetSpec


def convnet(spec: ConvNetSpec, image_shape: tuple[int, int, int], n_classes: int) -> list[nn.Module]:
    """Units conv1..convK, fc1..fcM, classifier."""
    c, h, w = image_shape
    units: list[nn.Module] = []
    for width in spec.channels:
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1, bias=spec.norm == "none")]
        if spec.norm == "batch":
            layers.append(nn.BatchNorm2d(width))
        elif spec.norm == "group":
            layers.append(nn.GroupNorm(_groups(width), width))
        layers.append(nn.ReLU(inplace=True))
        if min(h, w) > 1:  # halve the map while there is one to halve
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        units.append(nn.Sequential(*layers))
        c = width
    return units + fc_units(c * h * w, spec.hidden, spec.dropout, n_classes)


def fc_units(features: int, hidden: list[int], dropout: float, n_classes: int) -> list[nn.Module]:
    """Hidden fc units then the classifier; the first flattens (B, C, H, W) -> (B, C*H*W)."""
    units: list[nn.Module] = []
    for i, width in enumerate(hidden, 1):
        layers: list[nn.Module] = [nn.Flatten()] if i == 1 else []
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(features, width), nn.ReLU(inplace=True)]
        units.append(nn.Sequential(*layers))
        features = width
    head: list[nn.Module] = [] if hidden else [nn.Flatten()]
    if dropout:
        head.append(nn.Dropout(dropout))
    units.append(nn.Sequential(*head, nn.Linear(features, n_classes)))
    return units


def _groups(width: int) -> int:
    """Largest divisor of width up to 32 (GroupNorm needs groups | channels)."""
    return max(g for g in range(1, min(32, width) + 1) if width % g == 0)
