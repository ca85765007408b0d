from __future__ import annotations

from torch import nn

from backend.models.convnet import fc_units
from backend.specs import MLPSpec


def mlp(spec: MLPSpec, image_shape: tuple[int, int, int], n_classes: int) -> list[nn.Module]:
    """Fully connected layers on the flattened image; each hidden layer is one transfer unit."""
    c, h, w = image_shape
    return fc_units(c * h * w, spec.hidden, spec.dropout, n_classes)
