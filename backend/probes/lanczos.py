"""Spectral estimators of a symmetric operator known only through products V -> V A (rows of V are
vectors; A is symmetric, so row i of the reply is A v_i).

Plain linear algebra on flat vectors: nothing here knows about networks, so the same code is tested
on matrices with a known spectrum and run on Hessians (backend.probes.curvature).

- Top eigenvalues: block Lanczos with full reorthogonalisation (block 1: plain Lanczos), or power
  iteration with deflation.
- Trace: Hutchinson (Rademacher probes) and Hutch++ (Meyer, Musco, Musco, Woodruff 2021).
- Spectral density: stochastic Lanczos quadrature (Ghorbani, Krishnan, Xiao 2019; PyHessian's `density`).

Each estimator is a generator of products (`Products`): it yields a block of vectors (b, n) and is
sent back their products (b, n), so a caller can gather the requests of many estimators (several
parameter scopes, eigenvalues and trace together) into one batched pass of the operator; `run`
drives one estimator alone. Every estimator counts the products it spends (`matvecs`) and asks for
no more than it says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]  # (n,) -> (n,), symmetric
MatMat = Callable[[Tensor], Tensor]  # (b, n) -> (b, n): each row multiplied
R = TypeVar("R")
Products = Generator[Tensor, Tensor, R]  # yields (b, n) blocks, is sent their products, returns R


@dataclass(frozen=True)
class Eigen:
    values: list[float]       # descending
    matvecs: int
    convergence: list[float]  # the estimate being refined, after each block of products
    converged: bool           # tol met (or the Krylov space exhausted) before max_iterations


@dataclass(frozen=True)
class TraceEstimate:
    value: float
    std_error: float | None   # of the stochastic part; None with fewer than two samples
    matvecs: int
    convergence: list[float]  # the running estimate after each stochastic sample


@dataclass(frozen=True)
class Spectrum:
    """Stochastic Lanczos quadrature: per run, Ritz values (nodes) and their quadrature weights,
    and the Gaussian-broadened density on a grid (integrates to 1 over the grid)."""

    nodes: list[list[float]]
    weights: list[list[float]]  # each run's weights sum to 1
    grid: list[float]
    density: list[float]
    matvecs: int


def run(estimator: Products[R], matmat: MatMat) -> R:
    """Drive one estimator: every block it asks for is multiplied by `matmat`."""
    try:
        block = next(estimator)
        while True:
            block = estimator.send(matmat(block))
    except StopIteration as done:
        return done.value


def run_together(estimators: dict[Any, Products[Any]], multiply: Callable[[dict[Any, Tensor]], dict[Any, Tensor]]
                 ) -> dict[Any, Any]:
    """Drive several estimators in lockstep: each round, the blocks every live estimator asks for
    go to `multiply` together (keyed as the estimators), so one batched pass can serve them all."""
    results: dict[Any, Any] = {}
    pending: dict[Any, Tensor] = {}
    for key, estimator in estimators.items():
        try:
            pending[key] = next(estimator)
        except StopIteration as done:
            results[key] = done.value
    while pending:
        products = multiply(pending)
        asked, pending = pending, {}
        for key in asked:
            try:
                pending[key] = estimators[key].send(products[key])
            except StopIteration as done:
                results[key] = done.value
    return results


def one_at_a_time(matvec: MatVec) -> MatMat:
    """A block product from a single-vector one, row by row."""
    return lambda block: torch.stack([matvec(v) for v in block])


def rademacher(shape: tuple[int, ...] | int, generator: torch.Generator, dtype: torch.dtype,
               device: torch.device) -> Tensor:
    """Entries +-1: E[v v^T] = I, and |v|^2 = n exactly, the lowest-variance trace probe."""
    return torch.randint(0, 2, shape if isinstance(shape, tuple) else (shape,), generator=generator,
                         device=device).to(dtype).mul_(2).sub_(1)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _orthonormal_rows(w: Tensor, scale: float) -> Tensor:
    """An orthonormal basis (r, n) of the rows of w (b, n), dropping directions that are numerically
    zero (relative to `scale`, the operator's size): r < b when the block is rank-deficient."""
    q, r = torch.linalg.qr(w.T)  # (n, b), (b, b)
    keep = r.diagonal().abs() > 100 * torch.finfo(w.dtype).eps * max(scale, 1e-30)
    return q.T[keep]


def lanczos_products(n: int, k: int = 1, *, block: int = 1, max_iterations: int = 100, tol: float = 1e-3,
                     seed: int = 0, dtype: torch.dtype = torch.float32,
                     device: torch.device | str = "cpu") -> Products[Eigen]:
    """Top-k (algebraically largest) eigenvalues from the Ritz values of a block Krylov space.

    Each step multiplies a block of `block` orthonormal vectors (1: plain Lanczos), orthogonalises
    the products against the whole basis (twice: "twice is enough", so float32 keeps no spurious
    copies of converged Ritz values) and takes the next block from what is left. The Rayleigh
    quotient T = Q A Q^T grows by a row and a column of blocks per step, from products already made.
    At most `max_iterations` products. Stops once each of the top-k Ritz values either moved by less
    than `tol` relative since the previous step, or has a residual r = |A y - theta y| with
    min(r, r^2 / gap) <= tol |theta| (gap: to the nearest other Ritz value; r^2/gap is the usual
    quadratic estimate of an eigenvalue's error, and saves the step that only confirms convergence),
    or when the Krylov space is invariant (its Ritz values are then exact).
    """
    _check_k(k, n)
    device = torch.device(device)
    budget = min(max_iterations, n)
    b = max(1, min(block, budget))
    q = _orthonormal_rows(torch.randn(b, n, generator=_generator(seed, device), dtype=dtype, device=device), 1.0)
    basis = torch.empty(0, n, dtype=dtype, device=device)       # (m, n), rows orthonormal
    t = torch.empty(0, 0, dtype=torch.float64)                  # (m, m) = Q A Q^T
    products = torch.empty(0, n, dtype=dtype, device=device)    # (m, n) = (A Q^T)^T, for T's new rows
    convergence: list[float] = []
    previous: Tensor | None = None
    ritz = torch.zeros(0, dtype=torch.float64)
    scale, converged = 0.0, False
    while True:
        w = yield q  # (b_j, n) = A q_j
        m0 = len(basis)
        basis, products = torch.cat([basis, q]), torch.cat([products, w])
        new = (q @ products.T).double().cpu()  # (b_j, m): q_j A Q^T
        grown = torch.zeros(len(basis), len(basis), dtype=torch.float64)
        grown[:m0, :m0], grown[m0:], grown[:, m0:] = t, new, new.T
        t = (grown + grown.T) / 2
        theta, vectors = torch.linalg.eigh(t)
        ritz, vectors = theta.flip(0), vectors.flip(1)  # descending
        convergence.append(ritz[0].item())
        for _ in range(2):
            w = w - (w @ basis.T) @ basis
        scale = max(scale, ritz.abs().max().item())
        if len(basis) >= budget:
            converged = len(basis) == n
            break
        q = _orthonormal_rows(w, scale)
        if len(q) == 0:  # A Q lies in span(Q): T's spectrum is exact
            converged = True
            break
        if len(ritz) > k:
            # residuals |A y_i - theta_i y_i| = |W^T s_i (last block)|, W the products left after projection
            last = vectors[m0:, :k].to(w.dtype).to(device)  # (b_j, k)
            residual = (w.T @ last).norm(dim=0).double().cpu()  # (k,)
            floor = 1e-6 * ritz.abs().max().item()  # so a top-k value at ~0 does not demand exact zeros
            size = ritz[:k].abs().clamp_min(floor)
            gaps = (ritz[:k, None] - ritz[None, :]).abs().fill_diagonal_(math.inf).min(1).values
            bound = torch.minimum(residual, residual**2 / gaps)
            settled = bound <= tol * size
            if previous is not None and len(previous) >= k:
                settled |= (ritz[:k] - previous[:k]).abs() <= tol * size
            if bool(settled.all()):
                converged = True
                break
        previous = ritz
        q = q[: budget - len(basis)]
    if len(ritz) < k:
        raise ValueError(f"max_iterations={max_iterations} gives {len(ritz)} Ritz values; top_k={k} needs more")
    return Eigen(ritz[:k].tolist(), len(basis), convergence, converged)


def power_products(n: int, k: int = 1, *, max_iterations: int = 100, tol: float = 1e-3, seed: int = 0,
                   dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Products[Eigen]:
    """Eigenvalues of largest magnitude (as PyHessian's `eigenvalues`), one at a time; each later one
    runs in the orthogonal complement of the vectors already found (deflation). Up to
    `max_iterations` products per eigenvalue; stops when the Rayleigh quotient moves by < tol relative.
    At a minimum the top of the Hessian spectrum is positive, so this is the top eigenvalue there."""
    _check_k(k, n)
    device = torch.device(device)
    g = _generator(seed, device)
    found = torch.empty(0, n, dtype=dtype, device=device)  # (i, n) converged eigenvectors
    values: list[float] = []
    convergence: list[float] = []
    converged = True
    for _ in range(k):
        v = _deflate(torch.randn(n, generator=g, dtype=dtype, device=device), found)
        v = v / v.norm()
        estimate: float | None = None
        done = False
        for _ in range(max_iterations):
            w = _deflate((yield v[None])[0], found)
            rayleigh = torch.dot(v, w).item()
            convergence.append(rayleigh)
            norm = w.norm()
            if norm.item() == 0.0:  # v is in A's null space (within the complement): eigenvalue 0
                done = True
                break
            v = w / norm
            if estimate is not None and abs(rayleigh - estimate) < tol * max(abs(rayleigh), 1e-30):
                done = True
                break
            estimate = rayleigh
        converged = converged and done
        values.append(convergence[-1])
        found = torch.cat([found, v[None]])
    return Eigen(sorted(values, reverse=True), len(convergence), convergence, converged)


def _deflate(v: Tensor, basis: Tensor) -> Tensor:
    """v minus its projection on the rows of basis (i, n)."""
    return v - basis.T @ (basis @ v) if len(basis) else v


def _check_k(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"top_k={k} must be between 1 and the dimension {n}")


def hutchinson_products(n: int, samples: int, *, block: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu") -> Products[TraceEstimate]:
    """tr(A) ~ mean of v^T A v over Rademacher v: unbiased, variance 2 (|A|_F^2 - sum A_ii^2) per sample.
    The probes are asked for `block` at a time."""
    if samples < 1:
        raise ValueError(f"Hutchinson needs at least 1 product, got {samples}")
    g = _generator(seed, torch.device(device))
    quadratic: list[float] = []
    while len(quadratic) < samples:
        v = rademacher((min(block, samples - len(quadratic)), n), g, dtype, torch.device(device))
        quadratic += ((yield v) * v).sum(1).tolist()
    return _mean_estimate(0.0, quadratic, samples)


def hutch_plus_plus_products(n: int, matvecs: int, *, block: int = 1, seed: int = 0,
                             dtype: torch.dtype = torch.float32,
                             device: torch.device | str = "cpu") -> Products[TraceEstimate]:
    """Hutch++: a third of the products sketch the top of the spectrum (Q = orth(A S)), a third take
    its trace exactly (tr Q^T A Q), the rest run Hutchinson on what is left, (I - QQ^T) A (I - QQ^T).
    Error O(1/m) instead of O(1/sqrt m) when the spectrum decays, as Hessian spectra do (a few outliers
    over a bulk near zero). The sketch and the exact part are each one block; the rest `block` at a time."""
    if matvecs < 3:
        raise ValueError(f"Hutch++ needs at least 3 products, got {matvecs}")
    device = torch.device(device)
    g = _generator(seed, device)
    k = min(matvecs // 3, n)
    sketch = yield rademacher((k, n), g, dtype, device)  # (k, n) = (A S)^T
    # (k, n) orthonormal rows; Householder QR stays orthonormal if A S is rank-deficient
    q = torch.linalg.qr(sketch.T).Q.T.contiguous()
    top = ((yield q) * q).sum().item()
    rest = matvecs - 2 * k
    quadratic: list[float] = []
    while len(quadratic) < rest:
        v = rademacher((min(block, rest - len(quadratic)), n), g, dtype, device)
        v = v - (v @ q.T) @ q
        quadratic += ((yield v) * v).sum(1).tolist()
    return _mean_estimate(top, quadratic, matvecs)


def _mean_estimate(exact_part: float, quadratic: list[float], matvecs: int) -> TraceEstimate:
    samples = torch.tensor(quadratic, dtype=torch.float64)
    running = (exact_part + samples.cumsum(0) / torch.arange(1, len(samples) + 1)).tolist()
    value = running[-1] if running else exact_part
    std_error = (samples.std() / math.sqrt(len(samples))).item() if len(samples) > 1 else None
    return TraceEstimate(value, std_error, matvecs, running)


def slq_products(n: int, runs: int = 1, iterations: int = 60, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", grid_points: int = 1024,
                 sigma: float | None = None) -> Products[Spectrum]:
    """Spectral density by stochastic Lanczos quadrature: from a normalised Rademacher start v,
    v^T f(A) v ~ sum_i w_i f(theta_i) with theta_i the Ritz values of T and w_i the squared first
    components of its eigenvectors; averaging over runs estimates (1/n) tr f(A), so the weighted nodes
    are a discrete estimate of the spectral density, here broadened by Gaussians of width sigma.
    The runs are independent Lanczos processes stepped together: each step asks for one block of
    (live runs, n)."""
    if runs < 1 or iterations < 1:
        raise ValueError(f"SLQ needs runs >= 1 and iterations >= 1, got {runs} and {iterations}")
    device = torch.device(device)
    steps = min(iterations, n)
    start = rademacher((runs, n), _generator(seed, device), dtype, device)
    basis = torch.zeros(runs, steps, n, dtype=dtype, device=device)  # (runs, steps, n), rows orthonormal per run
    basis[:, 0] = start / start.norm(dim=1, keepdim=True)
    alphas: list[list[float]] = [[] for _ in range(runs)]
    betas: list[list[float]] = [[] for _ in range(runs)]
    live = list(range(runs))
    scale = [0.0] * runs
    eps = torch.finfo(dtype).eps
    for j in range(steps):
        current = basis[live, j]  # (live, n)
        w = yield current
        for i, r in enumerate(live):
            alphas[r].append(torch.dot(w[i], current[i]).item())
        if j + 1 == steps:
            break
        q = basis[live, : j + 1]  # (live, j+1, n)
        for _ in range(2):
            w = w - torch.einsum("lj,ljn->ln", torch.einsum("ljn,ln->lj", q, w), q)
        norms = w.norm(dim=1).tolist()
        still = []
        for i, r in enumerate(live):
            scale[r] = max(scale[r], abs(alphas[r][-1]) + norms[i])
            if norms[i] > 100 * eps * max(scale[r], 1e-30):  # else invariant: this run's T is exact
                betas[r].append(norms[i])
                basis[r, j + 1] = w[i] / norms[i]
                still.append(r)
        live = still
        if not live:
            break
    nodes, weights = [], []
    for a, b in zip(alphas, betas):
        theta, vectors = torch.linalg.eigh(tridiagonal(a, b))
        nodes.append(theta.tolist())
        weights.append((vectors[0] ** 2).tolist())
    grid, density = gaussian_density(nodes, weights, grid_points, sigma)
    return Spectrum(nodes, weights, grid.tolist(), density.tolist(), sum(len(a) for a in alphas))


def tridiagonal(alphas: list[float], betas: list[float]) -> Tensor:
    """(j, j) float64 symmetric tridiagonal from j alphas and j - 1 betas."""
    a = torch.tensor(alphas, dtype=torch.float64)
    b = torch.tensor(betas, dtype=torch.float64)
    return torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)


def gaussian_density(nodes: list[list[float]], weights: list[list[float]], grid_points: int = 1024,
                     sigma: float | None = None) -> tuple[Tensor, Tensor]:
    """Average over runs of sum_i w_i N(lambda; theta_i, sigma^2) on a grid reaching 5 sigma past the
    extreme nodes, normalised so the trapezoid integral over the grid is 1 (it is ~1 before: the tails
    cut off are < 1e-6). Default sigma: 1/200 of the spectrum's width, so the outliers separate from
    the bulk."""
    theta = torch.tensor([t for run in nodes for t in run], dtype=torch.float64)
    w = torch.tensor([x for run in weights for x in run], dtype=torch.float64) / len(nodes)
    low, high = theta.min().item(), theta.max().item()
    if sigma is None:
        sigma = (high - low) / 200 if high > low else max(abs(high), 1.0) * 1e-3
    grid = torch.linspace(low - 5 * sigma, high + 5 * sigma, grid_points, dtype=torch.float64)  # (G,)
    z = (grid[:, None] - theta[None, :]) / sigma  # (G, nodes)
    density = (torch.exp(-0.5 * z**2) @ w) / (sigma * math.sqrt(2 * math.pi))  # (G,)
    return grid, density / torch.trapezoid(density, grid)


# ---- single-operator entry points: one product at a time through a function v -> A v

def lanczos(matvec: MatVec, n: int, k: int = 1, **kw: Any) -> Eigen:
    return run(lanczos_products(n, k, **kw), one_at_a_time(matvec))


def power_iteration(matvec: MatVec, n: int, k: int = 1, **kw: Any) -> Eigen:
    return run(power_products(n, k, **kw), one_at_a_time(matvec))


def hutchinson(matvec: MatVec, n: int, samples: int, **kw: Any) -> TraceEstimate:
    return run(hutchinson_products(n, samples, **kw), one_at_a_time(matvec))


def hutch_plus_plus(matvec: MatVec, n: int, matvecs: int, **kw: Any) -> TraceEstimate:
    return run(hutch_plus_plus_products(n, matvecs, **kw), one_at_a_time(matvec))


def slq(matvec: MatVec, n: int, runs: int = 1, iterations: int = 60, **kw: Any) -> Spectrum:
    return run(slq_products(n, runs, iterations, **kw), one_at_a_time(matvec))
