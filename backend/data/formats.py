"""Resize and grey/RGB conversion, so any source can feed any network."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from backend.data.images import Images

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def convert(images: Images, size: int | None, channels: int | None, chunk: int = 4096) -> Images:
    """uint8 (N, C, H, W) -> uint8 (N, channels, size, size); None keeps the native value."""
    x = images.x
    if channels is not None and channels != x.shape[1]:
        x = to_channels(x, channels)
    if size is not None and tuple(x.shape[2:]) != (size, size):
        # Antialiased bilinear, in chunks so a large set never needs a float copy of itself.
        x = torch.cat([TF.resize(c, [size, size], antialias=True) for c in x.split(chunk)])
    return Images(x.contiguous(), images.y)


def to_channels(x: Tensor, channels: int) -> Tensor:
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        grey = (x.float() * _LUMA).sum(1, keepdim=True)
        return grey.round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")
