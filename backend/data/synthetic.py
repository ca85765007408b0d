"""Procedural images whose domain gap can be dialled continuously.

A class is a fixed set of strokes (line segments) drawn from `class_seed`; every image of the class
draws them again with a little jitter, shift and thickness change. `gap` blends the rendering from
plain white strokes on black (0) to strokes filled with a grating over a differently oriented
background grating (1): the classes are the same at every gap, only their appearance moves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from backend.data.images import Images, TaskData
from backend.specs import SyntheticSource

STROKES = 3  # per class


def synthetic_task(source: SyntheticSource) -> TaskData:
    g = torch.Generator().manual_seed(source.class_seed)
    # (K, S, 2 endpoints, 2 coords) in unit coordinates, kept away from the border.
    shapes = 0.15 + 0.7 * torch.rand(source.n_classes, STROKES, 2, 2, generator=g)
    train = _render_split(source, shapes, source.train_per_class, stream=1)
    test = _render_split(source, shapes, source.test_per_class, stream=2)
    return TaskData(train, test, tuple(f"shape{k}" for k in range(source.n_classes)))


def _render_split(source: SyntheticSource, shapes: Tensor, per_class: int, stream: int) -> Images:
    g = torch.Generator().manual_seed(source.class_seed * 1_000_003 + stream)
    k = shapes.shape[0]
    y = torch.arange(k).repeat_interleave(per_class)
    n = len(y)
    segments = shapes[y] + 0.04 * torch.randn(n, STROKES, 2, 2, generator=g)  # per-image jitter
    segments = segments + 0.06 * torch.randn(n, 1, 1, 2, generator=g)  # shift the whole shape
    width = 0.05 + 0.02 * torch.rand(n, 1, 1, generator=g)
    phases = 2 * math.pi * torch.rand(n, 2, generator=g)  # of the stroke and background gratings
    images = torch.cat([
        _draw(segments[i:i + 1024], width[i:i + 1024], phases[i:i + 1024], source.size, source.gap)
        for i in range(0, n, 1024)
    ])
    return Images(images, y)


def _draw(segments: Tensor, width: Tensor, phases: Tensor, size: int, gap: float) -> Tensor:
    """(B, S, 2, 2) segments -> uint8 (B, 1, size, size)."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    pixels = torch.stack([xx, yy], -1).view(1, 1, -1, 2)  # (1, 1, P, 2)
    a, b = segments[:, :, None, 0], segments[:, :, None, 1]  # (B, S, 1, 2)
    ab = b - a
    t = (((pixels - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    dist = (pixels - (a + t[..., None] * ab)).norm(dim=-1)  # (B, S, P)
    # Soft-edged strokes, the union of the segments: (B, P) in 0..1.
    ink = torch.sigmoid((width - dist) * size * 2).amax(1)
    x, y = pixels[0, 0, :, 0], pixels[0, 0, :, 1]
    fine = 0.5 + 0.5 * torch.sin(2 * math.pi * 6 * (x + y)[None] + phases[:, :1])
    coarse = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * (x - 0.5 * y)[None] + phases[:, 1:])
    styled = ink * fine + (1 - ink) * 0.6 * coarse
    image = (1 - gap) * ink + gap * styled
    return (image * 255).round().clamp(0, 255).to(torch.uint8).view(-1, 1, size, size)
