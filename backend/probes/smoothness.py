"""Smoothness of the loss landscape and optimisation speed: Liu et al. 2019's Lipschitzness probe and
gradient principal component, and Neyshabur et al. 2020's "P-T reaches its best far sooner".

Landscape (Santurkar et al. 2018, as Liu et al. use it): at theta, with g the gradient of the loss on a
fixed batch (x, y), step to theta - eta g for several eta and record the loss there and the change of
the gradient, ||g(theta - eta g) - g(theta)||. The ratio of that change to the step length ||eta g||,
maximised over eta, is the effective beta-smoothness (the Lipschitz constant of the gradient along the
descent direction). A smoother start has a smaller loss spread and a smaller beta.

The network is evaluated in eval mode (BatchNorm on its running statistics, no dropout): the loss is
then a fixed function of the parameters, and no buffer moves. Santurkar et al. measure in training
mode; eval mode is chosen so the probe leaves the model exactly as it was. The parameters are never
written: the stepped points go through `torch.func.functional_call`, and gradients through
`torch.autograd.grad`, so no `.grad` is touched either. Every module's `training` flag is restored.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

LossFn = Callable[[Any, Tensor], Tensor]  # (model(x), y) -> scalar loss


@dataclass(frozen=True)
class Smoothness:
    step_sizes: list[float]       # the etas, as given
    loss: float                   # at theta itself (eta = 0)
    losses: list[float]           # at theta - eta g, one per eta
    loss_spread: float            # max - min of `losses`: over the step sizes only, theta's loss left out
    gradient_change: list[float]  # ||g(theta - eta g) - g(theta)||, one per eta
    beta_smoothness: float | None  # max over eta of gradient_change / ||eta g||; None when g = 0
    gradient_norm: float          # ||g||, over the trainable parameters


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration; each submodule's own flag back afterwards (a UnitNet keeps frozen
    units in eval whatever its own flag says, so restoring the top flag alone would not be exact)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _loss_and_gradient(model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor,
                       loss_fn: LossFn) -> tuple[float, list[Tensor]]:
    """Loss of `model` with `params` substituted (the rest its own), and its gradient w.r.t. them."""
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    loss = loss_fn(functional_call(model, leaves, (x,)), y)
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    # A parameter the loss does not reach has gradient 0, not None.
    return loss.item(), [torch.zeros_like(p) if g is None else g for p, g in zip(leaves.values(), grads)]


def _norm(tensors: Sequence[Tensor]) -> float:
    return math.sqrt(sum(t.double().square().sum().item() for t in tensors))


def landscape_smoothness(model: nn.Module, x: Tensor, y: Tensor,
                         step_sizes: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.5),
                         loss_fn: LossFn = F.cross_entropy) -> Smoothness:
    """Loss and gradient along the gradient-descent direction from the model's parameters theta.

    x: the model's input, e.g. (B, C, H, W); y: what `loss_fn(model(x), y)` takes, e.g. (B,) labels.
    Only trainable parameters (requires_grad) form theta and g; frozen ones stay where they are, as
    they would under training. Step sizes must be positive (the ratio is 0/0 at eta = 0).
    """
    if not step_sizes or any(eta <= 0 for eta in step_sizes):
        raise ValueError(f"step sizes must be positive, got {list(step_sizes)}")
    theta = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not theta:
        raise ValueError("the model has no trainable parameters")
    with _eval_mode(model):
        loss, g = _loss_and_gradient(model, theta, x, y, loss_fn)
        g_norm = _norm(g)
        losses, changes = [], []
        for eta in step_sizes:
            stepped = {n: p - eta * d for (n, p), d in zip(theta.items(), g)}
            loss_eta, g_eta = _loss_and_gradient(model, stepped, x, y, loss_fn)
            losses.append(loss_eta)
            changes.append(_norm([a - b for a, b in zip(g_eta, g)]))
    beta = max(c / (eta * g_norm) for c, eta in zip(changes, step_sizes)) if g_norm > 0 else None
    return Smoothness(step_sizes=[float(eta) for eta in step_sizes], loss=loss, losses=losses,
                      loss_spread=max(losses) - min(losses), gradient_change=changes,
                      beta_smoothness=beta, gradient_norm=g_norm)


def gradient_top_singular_values(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn = F.cross_entropy,
                                 units: dict[str, nn.Module] | None = None) -> dict[str, float]:
    """{unit: top singular value of the loss gradient of its weight}, Liu et al.'s gradient principal
    component, with the model in eval mode as above.

    A unit's weights are its parameters of ndim >= 2, each gradient reshaped (out, -1) (a conv's
    (out, in, kh, kw) -> (out, in * kh * kw)); a unit with several (a residual block) reports the
    largest value, one with none (a pooling or flatten unit) is left out. Frozen weights count too:
    the gradient is a property of the loss, whether or not an optimiser would apply it.
    `units` defaults to a UnitNet's `units()`, else the model's children.
    """
    if units is None:
        units = dict(model.units()) if hasattr(model, "units") else dict(model.named_children())
    prefix = {id(m): n for n, m in model.named_modules()}
    weights: dict[str, list[str]] = {}  # unit -> full names of its matrix-shaped parameters
    for unit, module in units.items():
        if id(module) not in prefix:
            raise ValueError(f"unit {unit!r} is not a submodule of the model")
        base = prefix[id(module)]
        names = [f"{base}.{n}" if base else n for n, p in module.named_parameters() if p.ndim >= 2]
        if names:
            weights[unit] = names
    if not weights:
        return {}
    all_params = dict(model.named_parameters())
    params = {n: all_params[n] for names in weights.values() for n in names}
    with _eval_mode(model):
        _, grads = _loss_and_gradient(model, params, x, y, loss_fn)
    grad_of = dict(zip(params, grads))
    return {unit: max(torch.linalg.matrix_norm(grad_of[n].reshape(grad_of[n].shape[0], -1), ord=2).item()
                      for n in names)
            for unit, names in weights.items()}


# Optimisation speed over a run's history: records with .epoch and .test_accuracy (EpochRecord).

def _by_epoch(history: Sequence[Any]) -> list[Any]:
    if not history:
        raise ValueError("the history is empty")
    return sorted(history, key=lambda r: r.epoch)


def epochs_to_accuracy(history: Sequence[Any], target: float) -> int | None:
    """The first epoch (its `.epoch` label; EpochRecord counts from 1) whose test accuracy is >= target,
    or None if no epoch reaches it."""
    return next((r.epoch for r in _by_epoch(history) if r.test_accuracy >= target), None)


def best_epoch(history: Sequence[Any]) -> int:
    """The epoch of the highest test accuracy; the earliest one on a tie."""
    records = _by_epoch(history)
    return max(records, key=lambda r: (r.test_accuracy, -r.epoch)).epoch


def curve_area(history: Sequence[Any]) -> float:
    """Area under the test-accuracy curve with the epochs rescaled to [0, 1]: trapezoidal over
    t = (epoch - first) / (last - first), so a run's length does not matter, a run at accuracy a
    throughout scores a, and faster rises score higher. The end epochs weigh half as much as the
    inner ones (unlike a plain mean). One record: its accuracy."""
    records = _by_epoch(history)
    if len(records) == 1:
        return float(records[0].test_accuracy)
    first, span = records[0].epoch, records[-1].epoch - records[0].epoch
    t = torch.tensor([(r.epoch - first) / span for r in records], dtype=torch.float64)
    return torch.trapezoid(torch.tensor([r.test_accuracy for r in records], dtype=torch.float64), t).item()


def speed_summary(history: Sequence[Any], fractions: Sequence[float] = (0.5, 0.9, 0.95, 0.99),
                  targets: Sequence[float] = ()) -> dict[str, Any]:
    """How fast a run learns, for comparing P-T with RI-T runs.

    Relative: `epochs_to_{p}_of_best` is the first epoch reaching p times the run's own best test
    accuracy (always reached for p <= 1), comparable across runs whose final accuracies differ.
    Absolute: `epochs_to_{a}` is the first epoch reaching test accuracy a (None if never), comparable
    across runs on one target. Keys format numbers with `:g` (0.9 -> "epochs_to_0.9_of_best").
    Also: epochs, best_epoch, best_accuracy, final_accuracy, curve_area.
    """
    records = _by_epoch(history)
    best = max(r.test_accuracy for r in records)
    out: dict[str, Any] = {"epochs": len(records), "best_epoch": best_epoch(records), "best_accuracy": best,
                           "final_accuracy": records[-1].test_accuracy, "curve_area": curve_area(records)}
    for p in fractions:
        out[f"epochs_to_{p:g}_of_best"] = epochs_to_accuracy(records, p * best)
    for a in targets:
        out[f"epochs_to_{a:g}"] = epochs_to_accuracy(records, a)
    return out
