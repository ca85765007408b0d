"""Network specs; each network has ordered, named transfer units."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from backend.specs.base import Spec, SpecError, Whole


def _positive_width(value: int) -> int:
    """A layer's width (conv channels, hidden units). Zero or a negative width would pass as an int
    and end in a torch error on a worker, so it is refused at parse, the field named
    (`model.channels.0`); very wide layers are the memory check's (backend.specs.memory)."""
    if value < 1:
        raise SpecError(f"a layer width is a positive whole number of units or channels, got {value}")
    return value


Width = Annotated[Whole, AfterValidator(_positive_width)]


class ConvNetSpec(Spec):
    """Yosinski-style net: conv blocks (conv 3x3, norm, ReLU, 2x2 max-pool while the map is > 1
    pixel) then fully connected layers; each block and each fc layer is one transfer unit."""

    arch: Literal["convnet"] = "convnet"
    channels: list[Width] = Field([32, 64, 128], min_length=1, description="width of each conv block")
    hidden: list[Width] = Field([128], description="width of each hidden fc layer")
    norm: Literal["batch", "group", "none"] = Field("batch", description="normalisation in conv blocks")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before each fc layer")


class MLPSpec(Spec):
    arch: Literal["mlp"] = "mlp"
    hidden: list[Width] = Field([256, 128], min_length=1, description="width of each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1)


class ResNetSpec(Spec):
    """torchvision ResNet; units stem, layer1..layer4, fc."""

    arch: Literal["resnet18", "resnet50"] = "resnet18"
    small_input: bool = Field(True, description="3x3 stride-1 stem, no max-pool (for images < 64 px)")
    pretrained: bool = Field(False, description="torchvision ImageNet weights; needs them cached")


class ViTSpec(Spec):
    """A Vision Transformer with timm's tensor names (so timm's ViT checkpoints load bit for bit); units
    patch (patch embedding, class token, position embedding), block1..blockN, head (final norm, classifier
    on the class token). The default is timm's vit_tiny_patch16 shape."""

    arch: Literal["vit"] = "vit"
    patch: Whole = Field(16, ge=1, le=64, description="patch side in pixels; the image side must be a multiple")
    dim: Width = Field(192, description="token width")
    depth: Whole = Field(12, ge=1, le=64, description="transformer blocks")
    heads: Whole = Field(3, ge=1, le=64, description="attention heads; dim must be a multiple")
    mlp_ratio: float = Field(4.0, gt=0, le=16, description="hidden width of each block's MLP, per token width")

    @model_validator(mode="after")
    def _heads_divide(self) -> ViTSpec:
        if self.dim % self.heads:
            raise SpecError(f"dim {self.dim} is not a multiple of heads {self.heads}", field="heads")
        return self


def _default_arch(value: Any) -> Any:
    """`{"channels": [8, 16]}` means a convnet, as the default model is one."""
    return {"arch": "convnet", **value} if isinstance(value, dict) else value


ModelSpec = Annotated[
    Union[ConvNetSpec, MLPSpec, ResNetSpec, ViTSpec], Field(discriminator="arch"), BeforeValidator(_default_arch)
]


def unit_names(spec: ModelSpec) -> list[str]:  # type: ignore[valid-type]
    """The network's transfer units in order; the last is the classifier, never transferred."""
    if isinstance(spec, ConvNetSpec):
        return ([f"conv{i}" for i in range(1, len(spec.channels) + 1)]
                + [f"fc{i}" for i in range(1, len(spec.hidden) + 1)] + ["classifier"])
    if isinstance(spec, MLPSpec):
        return [f"fc{i}" for i in range(1, len(spec.hidden) + 1)] + ["classifier"]
    if isinstance(spec, ViTSpec):
        return ["patch", *(f"block{i}" for i in range(1, spec.depth + 1)), "head"]
    return ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
