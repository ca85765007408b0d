"""A look at a task before queuing a study on it: classes, images per split, format, sample images,
and the class halves A/B each seed of a Yosinski study draws (only the engine can reproduce those:
they come from a seeded `torch.randperm`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from backend.data.images import Images, TaskData
from backend.data.sources import load_source
from backend.data.task import load_task, select_classes
from backend.specs import DataSpec, SpecError
from backend.specs.preview import DataPreviewSpec

# Sample tiles are scaled to a side between these (pixels): 8x8 digits become visible, 224x224
# photos do not bloat the stored grid.
TILE_MIN, TILE_MAX, GAP = 32, 64, 2


@dataclass(frozen=True)
class DataPreview:
    classes: tuple[str, ...]  # after the spec's class selection, in label order
    counts: dict[str, list[int]]  # "train"/"test" -> images per class, in label order
    image_shape: tuple[int, int, int]  # (C, H, W) as the network sees it
    samples: np.ndarray  # uint8 (rows * (tile + GAP) - GAP, k * (tile + GAP) - GAP, C): one row per class
    sample_classes: tuple[str, ...]  # the classes of the grid's rows
    halves: dict[int, dict[str, list[str] | str]]  # seed -> {"A": names, "B": names} or {"error": why}
    fingerprint: str


def data_preview(spec: DataPreviewSpec, load: Callable[[DataSpec], TaskData] = load_task) -> DataPreview:
    task = load(spec.data)
    n = task.n_classes
    counts = {split: torch.bincount(images.y, minlength=n).tolist()
              for split, images in (("train", task.train), ("test", task.test))}
    rows = min(n, spec.max_classes)
    return DataPreview(task.classes, counts, task.image_shape,
                       sample_grid(task.train, rows, spec.per_class_samples), task.classes[:rows],
                       seeded_halves(spec.data, spec.seeds) if spec.seeds else {}, task.fingerprint)


def seeded_halves(data: DataSpec, seeds: list[int]) -> dict[int, dict[str, list[str] | str]]:
    """Per seed, the class names of halves A and B exactly as a Yosinski study selects them: the
    task's class selection with `half` and `seed` set (`select_classes`, which the study's jobs run)."""
    names = load_source(data.source, data.size, data.channels).classes
    out: dict[int, dict[str, list[str] | str]] = {}
    for seed in seeds:
        try:
            out[seed] = {half: [names[c] for c in select_classes(
                len(names), data.classes.model_copy(update={"half": half, "seed": seed}))] for half in ("A", "B")}
        except SpecError as exc:  # e.g. a half left with one class: the study would fail the same way
            out[seed] = {"error": str(exc)}
    return out


def sample_grid(images: Images, rows: int, per_class: int) -> np.ndarray:
    """The first `per_class` images of each of the first `rows` classes, tiled class by class;
    missing images (a small class) stay blank. (rows, k) tiles -> one (H', W', C) uint8 image."""
    _, c, h, w = images.x.shape
    tiles = torch.zeros(rows, per_class, c, h, w, dtype=torch.uint8)
    for label in range(rows):
        chosen = images.x[images.y == label][:per_class]
        tiles[label, : len(chosen)] = chosen
    tiles = _tile_size(tiles.view(rows * per_class, c, h, w))  # (rows * k, C, t_h, t_w)
    _, _, th, tw = tiles.shape
    grid = torch.full((rows * (th + GAP) - GAP, per_class * (tw + GAP) - GAP, c), 255, dtype=torch.uint8)
    for i, tile in enumerate(tiles):
        r, k = divmod(i, per_class)
        grid[r * (th + GAP): r * (th + GAP) + th, k * (tw + GAP): k * (tw + GAP) + tw] = tile.permute(1, 2, 0)
    return grid.numpy()


def _tile_size(x: torch.Tensor) -> torch.Tensor:
    """Upscale small images by an integer factor (nearest: pixels stay sharp), shrink large ones."""
    side = max(x.shape[-2:])
    if side < TILE_MIN:
        factor = math.ceil(TILE_MIN / side)
        return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    if side > TILE_MAX:
        scale = TILE_MAX / side
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        return F.interpolate(x.float(), size=size, mode="area").round().clamp(0, 255).to(torch.uint8)
    return x
