"""Module criticality (Chatterji, Neyshabur, Sedghi 2020; used by Neyshabur et al. 2020): how far one
transfer unit can be moved back toward its initial weights, under noise, before the test error rises.

For unit i, with every other unit at its final (trained) weights:
    theta_i(a) = (1 - a) theta_i^0 + a theta_i^F   (a = 0: the init, a = 1: the trained weights)
plus Gaussian noise added to each of the unit's weight tensors t, of std
    sigma_t = sigma * ||theta_t^F||_F / sqrt(numel_t)      (sigma relative to the tensor's final RMS),
so one `sigma` means the same for a conv kernel and a bias of very different scales. The error grid is
the test error (0..1) over (a, sigma), the mean over `samples` noise draws (one draw at sigma = 0).

Two scalars per unit, both read off that grid with the admissible points those whose
error <= trained_error + epsilon:
- `criticality` (Chatterji et al.'s mu_i, their PAC-Bayes KL term with the prior at the init):
      mu_i = min over admissible (a, sigma > 0) of  sum_t a^2 ||theta_t^F - theta_t^0||_F^2 / (2 sigma_t^2)
  since ||theta_t(a) - theta_t^0|| = a ||theta_t^F - theta_t^0||. Small when the unit can sit close to
  its init (small a) under large noise and keep its error; 0 when a = 0 is admissible with noise;
  +inf when no point with sigma > 0 is admissible. A tensor of final RMS 0 gets no noise, and its term
  is 0 if it did not move, +inf if it did.
- `rewind_tolerance`: the smallest a on the grid with error(a, sigma = 0) admissible, no noise
  (the curves of Neyshabur et al.'s figure). 0: the unit can be reset to its init; 1.0 when none but a = 1.

Only the unit's floating-point parameters move: BatchNorm running statistics stay at their final
values at every point (PAPERS.md warns they would need re-estimating to be exact; this probe does not).
The network is evaluated as a copy in eval mode (no dropout, BN on running statistics) under
torch.inference_mode; the caller's network is never touched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from backend.checkpoints import bare_module
from backend.models import UnitNet

ProgressFn = Callable[[float, str], None]

ALPHAS = tuple(i / 10 for i in range(11))
SIGMAS = (0.0, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Criticality:
    units: list[str]
    alphas: list[float]
    sigmas: list[float]                  # relative to each tensor's final RMS (see the module docstring)
    error: np.ndarray                    # (units, alphas, sigmas) test error in 0..1
    trained_error: float                 # the network as given
    criticality: dict[str, float]        # Chatterji et al.'s mu_i; +inf when no noisy point is admissible
    rewind_tolerance: dict[str, float]   # smallest admissible a at sigma = 0
    samples: int                         # noise draws averaged per point with sigma > 0
    epsilon: float                       # the error tolerance both scalars use


def module_criticality(net: UnitNet, init_state: dict[str, Tensor], x: Tensor, y: Tensor, *,
                       units: Sequence[str] | None = None, alphas: Sequence[float] = ALPHAS,
                       sigmas: Sequence[float] = SIGMAS, samples: int = 3, epsilon: float = 0.05,
                       seed: int = 0, batch_size: int = 256,
                       progress: ProgressFn | None = None) -> Criticality:
    """The (a, sigma) error grid of each unit in `units` (default: all) and its two scalars.

    `init_state` is the network's state dict before training, with the keys of its bare module's
    `state_dict()` (no torch.compile or DDP prefix); only the units' parameters are read from it;
    x (N, C, H, W) and y (N,) the test set, evaluated `batch_size` images at a time on the network's
    device. Alphas lie in [0, 1]; sigmas are >= 0 and include 0 (rewind_tolerance reads that column).
    Noise is drawn on the CPU from a generator seeded by (seed, the unit's index in the network), and
    the same standard-normal draws are reused across the unit's (a, sigma) points (common random
    numbers: a smoother grid), so a unit's rows do not depend on which other units were asked for.
    `progress(fraction, message)` is called after each forward pass over the test set.
    """
    model = bare_module(net)
    names = model.unit_names
    units = list(names if units is None else units)
    alphas, sigmas = [float(a) for a in alphas], [float(s) for s in sigmas]
    _check(model, init_state, units, alphas, sigmas, samples, batch_size, len(x), len(y))

    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters()).device
    draws = sum(1 if s == 0 else samples for s in sigmas)
    planned, done = 1 + len(units) * len(alphas) * draws, 0
    error = np.zeros((len(units), len(alphas), len(sigmas)))
    crit, rewind = {}, {}

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / planned, message)

    with torch.inference_mode():
        trained = _error(probe, x, y, batch_size, device)
        tick("trained network")
        for u, unit in enumerate(units):
            params = [p for p in probe.body[unit].parameters() if p.is_floating_point()]
            keys = [k for k, p in probe.body[unit].named_parameters() if p.is_floating_point()]
            final = [p.detach().clone() for p in params]
            init = [init_state[f"body.{unit}.{k}"].to(p) for k, p in zip(keys, params)]
            rms = [f.double().norm().item() / math.sqrt(f.numel()) if f.numel() else 0.0 for f in final]
            moved = [(f.double() - i.double()).square().sum().item() for f, i in zip(final, init)]
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, names.index(unit)])
                                                    .generate_state(1)[0]))
            noise = [[torch.randn(f.shape, generator=gen).to(f) for f in final] for _ in range(samples)]
            for ai, a in enumerate(alphas):
                # lerp is exact at both ends: a = 1 gives theta^F, a = 0 gives theta^0 bit for bit.
                base = [torch.lerp(i, f, a) for i, f in zip(init, final)]
                for si, s in enumerate(sigmas):
                    errs = []
                    for z in ([None] if s == 0 else noise):
                        for p, b, r, zt in zip(params, base, rms, z or [None] * len(params)):
                            p.copy_(b if zt is None else b + (s * r) * zt)
                        errs.append(_error(probe, x, y, batch_size, device))
                        tick(f"{unit}: a = {a:g}, sigma = {s:g}")
                    error[u, ai, si] = float(np.mean(errs))
            for p, f in zip(params, final):
                p.copy_(f)  # back to trained before the next unit is moved
            ok = error[u] <= trained + epsilon  # (alphas, sigmas)
            crit[unit] = min((_kl(a, s, moved, rms) for ai, a in enumerate(alphas)
                              for si, s in enumerate(sigmas) if s > 0 and ok[ai, si]), default=math.inf)
            zero = sigmas.index(0.0)
            rewind[unit] = min((a for ai, a in enumerate(alphas) if ok[ai, zero]), default=1.0)
    return Criticality(units, alphas, sigmas, error, trained, crit, rewind, samples, epsilon)


def _kl(a: float, sigma: float, moved: list[float], rms: list[float]) -> float:
    """sum_t a^2 ||theta_t^F - theta_t^0||^2 / (2 (sigma rms_t)^2); a still or a = 0 tensor adds 0."""
    total = 0.0
    for m, r in zip(moved, rms):
        if m == 0 or a == 0:
            continue
        total += math.inf if r == 0 else a * a * m / (2 * (sigma * r) ** 2)
    return total


def _error(net: nn.Module, x: Tensor, y: Tensor, batch_size: int, device: torch.device) -> float:
    wrong = 0
    for i in range(0, len(x), batch_size):
        logits = net(x[i:i + batch_size].to(device))  # (B, classes)
        wrong += (logits.argmax(1) != y[i:i + batch_size].to(device)).sum().item()
    return wrong / len(x)


def _check(net: UnitNet, init_state: dict[str, Tensor], units: list[str], alphas: list[float],
           sigmas: list[float], samples: int, batch_size: int, nx: int, ny: int) -> None:
    for unit in units:
        if unit not in net.unit_names:
            raise ValueError(f"no unit {unit!r}: the network's units are {net.unit_names}")
    if not units:
        raise ValueError("no units to measure")
    state = net.state_dict()
    for key in state:
        if key not in init_state:
            raise ValueError(f"init_state has no {key!r}: it is not this network's state dict")
        if tuple(init_state[key].shape) != tuple(state[key].shape):
            raise ValueError(f"init_state[{key!r}] has shape {tuple(init_state[key].shape)}, "
                             f"the network {tuple(state[key].shape)}")
    extra = sorted(set(init_state) - set(state))
    if extra:
        raise ValueError(f"init_state has {extra[0]!r}, which the network does not")
    if not alphas or any(not 0 <= a <= 1 for a in alphas):
        raise ValueError(f"alphas must lie in [0, 1], got {alphas}")
    if 0.0 not in sigmas or any(s < 0 for s in sigmas):
        raise ValueError(f"sigmas must be >= 0 and include 0, got {sigmas}")
    if samples < 1 or batch_size < 1:
        raise ValueError(f"samples and batch_size must be >= 1, got {samples} and {batch_size}")
    if nx != ny or nx == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of examples, got {nx} and {ny}")
