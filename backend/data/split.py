"""Deterministic index selections: stratified train/test splits and per-class caps."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def per_class_indices(y: Tensor, seed: int) -> list[Tensor]:
    """For each label 0..max, its sample indices in a seeded random order."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    shuffled = y[order]
    return [order[shuffled == c] for c in range(int(y.max()) + 1 if len(y) else 0)]


def stratified_split(y: Tensor, test_fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(train indices, test indices), each class split in the same proportion, sorted."""
    train, test = [], []
    for idx in per_class_indices(y, seed):
        k = math.ceil(test_fraction * len(idx)) if len(idx) > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def cap_per_class(y: Tensor, cap: int | None, seed: int) -> Tensor:
    """Indices keeping at most `cap` random samples of each class, sorted (all when cap is None)."""
    if cap is None:
        return torch.arange(len(y))
    return torch.cat([idx[:cap] for idx in per_class_indices(y, seed)]).sort().values
