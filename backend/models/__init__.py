"""Networks that expose ordered, named transfer units (`UnitNet.units()`)."""

from __future__ import annotations

from backend.models.convnet import convnet
from backend.models.mlp import mlp
from backend.models.resnet import resnet
from backend.models.units import UnitNet
from backend.models.vit import vit
from backend.specs import ConvNetSpec, MLPSpec, ModelSpec, ViTSpec, unit_names

__all__ = ["UnitNet", "build_model"]


def build_model(spec: ModelSpec, image_shape: tuple[int, int, int], n_classes: int) -> UnitNet:
    """A freshly initialised network for images of `image_shape` (C, H, W); seed torch first."""
    if isinstance(spec, ConvNetSpec):
        modules = convnet(spec, image_shape, n_classes)
    elif isinstance(spec, MLPSpec):
        modules = mlp(spec, image_shape, n_classes)
    elif isinstance(spec, ViTSpec):
        modules = vit(spec, image_shape, n_classes)
    else:
        modules = resnet(spec, image_shape, n_classes)
    return UnitNet(list(zip(unit_names(spec), modules, strict=True)))
