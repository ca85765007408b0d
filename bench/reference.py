"""The standard training loop the benches measure the engine against, written the usual way:
batches from a DataLoader, SGD with Nesterov momentum, weight decay on weights only (as the engine),
a cosine learning rate stepped every batch."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from backend.specs import TrainSpec


def sgd_cosine(model: nn.Module, spec: TrainSpec, steps_per_epoch: int):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD([{"params": [p for p in params if p.ndim > 1], "weight_decay": spec.weight_decay},
                           {"params": [p for p in params if p.ndim <= 1]}],
                          lr=spec.lr, momentum=spec.momentum, nesterov=True)
    total = spec.epochs * steps_per_epoch
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))


def train_epoch(model: nn.Module, loader, opt, sched, target: Callable[[Tensor], Tensor] = lambda y: y) -> int:
    """One pass over the loader; returns the images seen."""
    model.train()
    seen = 0
    for x, y in loader:
        loss = F.cross_entropy(model(x), target(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        seen += len(y)
    return seen
