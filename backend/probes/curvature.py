"""Sharpness of a trained network: the Hessian of its training loss on a fixed probe set
(backend.probes.hessian), w.r.t. some parameter scopes.

Liu et al. 2019 measure flatness as the Hessian's top eigenvalue and its trace; this probe adds the
spectral density. A scope is a set of units (all of them, the first n transferred ones, the rest);
its Hessian is the diagonal block of those units' parameters, H_SS, and H_SS v_S is the S part of
H (v_S, 0): a product with a vector that is zero outside S. So every scope of one probe reads from ONE
operator over the parameters of all of them (the whole network when 'all' is among them), its
gradient graphs built once: on a GPU the vectors of all scopes (all, transferred, new) go into the
same batched passes; on the CPU, one vector a pass, each scope's products differentiate the shared
graphs on its own parameters only, so the new units' products stop at the top of the network.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from backend.models import UnitNet
from backend.probes.hessian import HessianOperator, hessian_operator, unit_parameters
from backend.probes.lanczos import (
    Products, hutch_plus_plus_products, hutchinson_products, lanczos_products, power_products, run_together,
    slq_products,
)

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Sharpness:
    top_eigenvalues: list[float]          # descending
    trace: float
    trace_std_error: float | None
    density_grid: list[float] | None      # None when density was not asked for
    density: list[float] | None
    parameters: int                       # size of the parameter subset
    hvps: int                             # Hessian-vector products spent, all estimators together
    convergence: dict[str, list[float]]   # {"lanczos" or "power": top estimate per step, "trace": running}
    seconds: dict[str, float]             # setup, eigenvalues, trace, density (of passes shared with other scopes)
    block: int = 1                        # vectors per batched pass


class _Meter:
    """Turns products spent into progress(fraction, message), at most every `every` seconds."""

    def __init__(self, progress: ProgressFn | None, planned: int, every: float = 0.25):
        self.progress, self.planned, self.every = progress, max(planned, 1), every
        self.spent, self.phase, self.last = 0, "setup", float("-inf")

    def report(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress is not None and (force or now - self.last >= self.every):
            self.last = now
            self.progress(min(self.spent / self.planned, 1.0), f"{self.phase}: {self.spent} Hessian-vector products")

    def tick(self, count: int = 1) -> None:
        self.spent += count
        self.report()

    def start(self, phase: str) -> None:
        self.phase = phase
        self.report(force=True)

    def unplan(self, unspent: int) -> None:
        """An estimator stopped early: its unspent products leave the plan, so fractions never go back."""
        self.planned = max(self.planned - unspent, self.spent, 1)


def sharpness(model: UnitNet, x: Tensor, y: Tensor, *, units: list[str] | None = None, **settings: Any) -> Sharpness:
    """Top-k Hessian eigenvalues, trace and optionally spectral density w.r.t. the parameters of
    `units` (all for None); the settings as for `sharpness_by_scope`."""
    return sharpness_by_scope(model, x, y, {"scope": units}, **settings)["scope"]


def sharpness_by_scope(model: UnitNet, x: Tensor, y: Tensor, scopes: dict[str, list[str] | None], *,
                       top_k: int = 1, eig_method: Literal["lanczos", "power"] = "lanczos",
                       max_iterations: int = 100, tol: float = 1e-3,
                       trace_method: Literal["hutchinson", "hutch++"] = "hutch++", trace_samples: int = 60,
                       density: bool = False, density_runs: int = 1, density_iterations: int = 60,
                       batch_size: int = 512, block: int | None = None, seed: int = 0,
                       progress: ProgressFn | None = None) -> dict[str, Sharpness]:
    """Per scope (name -> its units, None for all): top-k Hessian eigenvalues, trace and optionally
    spectral density of the mean cross-entropy on the probe set (x, y), the network in eval mode.

    Top eigenvalues: block Lanczos (full reorthogonalisation) or power iteration with deflation, at
    most `max_iterations` products (per eigenvalue for power), to a relative `tol`. Trace:
    `trace_samples` products of Hutch++ or Hutchinson. Density: `density_runs` stochastic Lanczos
    quadrature runs of `density_iterations` products. `block`: vectors per batched pass (None: from
    the device, see backend.probes.hessian.block_size). Seeded: the same call gives the same numbers
    (each scope's estimators draw from the same seeds, as separate runs would).
    `progress(fraction, message)` is called as products are spent; an exception from it stops the run.
    The model itself is not modified (the products run on an eval-mode copy).
    """
    if eig_method not in ("lanczos", "power"):
        raise ValueError(f"eig_method must be 'lanczos' or 'power', got {eig_method!r}")
    if trace_method not in ("hutchinson", "hutch++"):
        raise ValueError(f"trace_method must be 'hutchinson' or 'hutch++', got {trace_method!r}")
    if max_iterations < 1 or top_k < 1:
        raise ValueError(f"max_iterations and top_k must be >= 1, got {max_iterations} and {top_k}")
    if trace_samples < (3 if trace_method == "hutch++" else 1):
        raise ValueError(f"{trace_method} needs at least {3 if trace_method == 'hutch++' else 1} products, "
                         f"got trace_samples={trace_samples}")
    named = {name: unit_parameters(model, units) for name, units in scopes.items()}
    scope_units = {name: list(dict.fromkeys(n.split(".")[1] for n, _ in params)) for name, params in named.items()}
    sizes = {name: sum(p.numel() for _, p in params) for name, params in named.items()}
    eig_plan = {name: min(max_iterations, n) if eig_method == "lanczos" else max_iterations * top_k
                for name, n in sizes.items()}
    slq_plan = {name: density_runs * min(density_iterations, n) if density else 0 for name, n in sizes.items()}
    meter = _Meter(progress, sum(eig_plan.values()) + trace_samples * len(scopes) + sum(slq_plan.values()))
    meter.start("setup")
    started = time.perf_counter()
    reached = {u for units in scope_units.values() for u in units}
    units = [u for u in model.unit_names if u in reached]  # every scope's units: the whole network with 'all'
    op = hessian_operator(model, x, y, units=units, batch_size=batch_size, on_products=meter.tick, block=block)
    scope_of = {name: _Scope.of(op, model, units, scope_units[name]) for name in scopes}
    seconds = {"setup": time.perf_counter() - started}
    common = dict(dtype=op.dtype, device=op.device)  # each estimator gets its own seed: independent probes

    def phase(key: str, label: str, make: Callable[[str], Products[Any]],
              plan: dict[str, int] | None = None) -> dict[str, tuple[Any, int]]:
        """Every scope's estimator driven together; (result, products spent) per scope."""
        started = time.perf_counter()
        meter.start(label)
        spent = {name: 0 for name in scopes}
        results = run_together({name: make(name) for name in scopes},
                               lambda asked: _multiply(op, scope_of, asked, spent))
        if plan is not None:  # an estimator that stopped early leaves the plan: fractions never go back
            meter.unplan(sum(plan[name] - spent[name] for name in scopes))
        seconds[key] = time.perf_counter() - started
        return {name: (results[name], spent[name]) for name in scopes}

    if eig_method == "lanczos":  # a block of several vectors only where a pass takes several
        eig_block = min(op.block, 4 * top_k) if op.block > 1 else 1
        eigs = phase("eigenvalues", f"top {top_k} eigenvalue(s), lanczos", lambda name: lanczos_products(
            sizes[name], top_k, block=eig_block, max_iterations=max_iterations, tol=tol, seed=seed, **common),
            eig_plan)
    else:
        eigs = phase("eigenvalues", f"top {top_k} eigenvalue(s), power", lambda name: power_products(
            sizes[name], top_k, max_iterations=max_iterations, tol=tol, seed=seed, **common), eig_plan)
    trace_fn = hutch_plus_plus_products if trace_method == "hutch++" else hutchinson_products
    traces = phase("trace", f"trace, {trace_method}", lambda name: trace_fn(
        sizes[name], trace_samples, block=op.block, seed=seed + 1, **common))
    spectra = phase("density", "spectral density, stochastic Lanczos quadrature", lambda name: slq_products(
        sizes[name], density_runs, density_iterations, seed=seed + 2, **common), slq_plan) if density else {}
    out: dict[str, Sharpness] = {}
    for name in scopes:
        (eig, eig_spent), (tr, tr_spent) = eigs[name], traces[name]
        spectrum, slq_spent = spectra.get(name, (None, 0))
        out[name] = Sharpness(
            top_eigenvalues=eig.values, trace=tr.value, trace_std_error=tr.std_error,
            density_grid=spectrum.grid if spectrum else None, density=spectrum.density if spectrum else None,
            parameters=sizes[name], hvps=eig_spent + tr_spent + slq_spent,
            convergence={eig_method: eig.convergence, "trace": tr.convergence}, seconds=dict(seconds),
            block=op.block)
    meter.phase = "done"
    meter.report(force=True)
    return out


@dataclass(frozen=True)
class _Scope:
    """Where a scope's parameters sit in the operator: `support`, the indices of their tensors in its
    parameter list, and `index`, their positions in its flat vector; both None when they are all of it."""

    support: list[int] | None
    index: Tensor | None

    @staticmethod
    def of(op: HessianOperator, model: UnitNet, units: list[str], scope: list[str]) -> _Scope:
        if set(scope) == set(units):
            return _Scope(None, None)
        names = [n for n, _ in unit_parameters(model, units)]
        support = [i for i, name in enumerate(names) if name.split(".")[1] in scope]
        offsets = [0, *itertools.accumulate(op.numels)]
        index = torch.cat([torch.arange(offsets[i], offsets[i + 1], device=op.device) for i in support])
        return _Scope(support, index)


def _multiply(op: HessianOperator, scope_of: dict[str, _Scope], asked: dict[str, Tensor],
              spent: dict[str, int]) -> dict[str, Tensor]:
    """The blocks of several scopes from one operator; counts each scope's products in `spent`.

    Passes that take several vectors (CUDA): every scope's vectors (b, n_S) embedded as zero outside S
    into the same batched blocks, (b, n) products read back on S. One vector a pass (the CPU), or one
    scope asking: each scope's block through the operator's graphs on S alone, whose backward stops at
    S's parameters."""
    for name, block in asked.items():
        spent[name] += len(block)
    if op.block == 1 or len(asked) == 1:
        return {name: op.matmat(block, scope_of[name].support) for name, block in asked.items()}
    full = []
    for name, block in asked.items():
        index = scope_of[name].index
        if index is None:
            full.append(block)
        else:
            embedded = block.new_zeros(len(block), op.n)
            embedded[:, index] = block
            full.append(embedded)
    products = op.matmat(torch.cat(full)).split([len(b) for b in asked.values()])
    return {name: p if scope_of[name].index is None else p[:, scope_of[name].index]
            for name, p in zip(asked, products, strict=True)}
