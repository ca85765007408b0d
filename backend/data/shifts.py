"""Target shifts: deterministic per seed, applied identically to the train and test images."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from backend.specs import (
    BlockShuffle, Blur, Contrast, GaussianNoise, Inversion, PixelShuffle, Rotation, Shift, check_block_sizes,
)


def apply_shifts(x: Tensor, shifts: list[Shift], stream: int) -> Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, H, W). `stream` separates train (0) and test (1) noise;
    permutations depend on the seed alone, so train and test share them."""
    check_block_sizes(shifts, x.shape[2], x.shape[3])
    for shift in shifts:
        x = apply_shift(x, shift, stream)
    return x


def apply_shift(x: Tensor, shift: Shift, stream: int = 0) -> Tensor:
    if isinstance(shift, BlockShuffle):
        return block_shuffle(x, shift.block, block_permutation(x.shape, shift.block, shift.seed))
    if isinstance(shift, PixelShuffle):
        perm = torch.randperm(x[0].numel(), generator=torch.Generator().manual_seed(shift.seed))
        return x.flatten(1)[:, perm].view_as(x)
    if isinstance(shift, Rotation):
        return TF.rotate(x, shift.degrees, interpolation=TF.InterpolationMode.BILINEAR)
    if isinstance(shift, Inversion):
        return 255 - x
    if isinstance(shift, GaussianNoise):
        g = torch.Generator().manual_seed(shift.seed * 1_000_003 + stream)
        noisy = x.float() + torch.randn(x.shape, generator=g) * (255 * shift.std)
        return noisy.round_().clamp_(0, 255).to(torch.uint8)
    if isinstance(shift, Blur):
        k = 2 * math.ceil(3 * shift.sigma) + 1
        return TF.gaussian_blur(x, [k, k], [shift.sigma, shift.sigma])
    if isinstance(shift, Contrast):
        return TF.adjust_contrast(x, shift.factor) if x.shape[1] in (1, 3) else x
    raise TypeError(f"unknown shift {shift!r}")


def block_permutation(shape: torch.Size, block: int, seed: int) -> Tensor:
    """The one permutation of the (H/b * W/b) blocks used for every image of a seed."""
    n_blocks = (shape[2] // block) * (shape[3] // block)
    return torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))


def block_shuffle(x: Tensor, block: int, perm: Tensor) -> Tensor:
    n, c, h, w = x.shape
    gh, gw = h // block, w // block
    # (N, C, H, W) -> (N, C, gh*gw, b, b): one row per block, in raster order.
    blocks = x.view(n, c, gh, block, gw, block).permute(0, 1, 2, 4, 3, 5).reshape(n, c, gh * gw, block, block)
    blocks = blocks[:, :, perm]
    return blocks.view(n, c, gh, gw, block, block).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
