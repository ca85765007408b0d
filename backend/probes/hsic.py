"""Kernels and HSIC on plain matrices: the algebra under CKA (backend.probes.similarity), on float64.

HSIC(K, L) measures the dependence of two representations of the same n images through their Gram
matrices K, L (n, n): the biased form <HKH, HLH> (H = I - 11^T / n) and the unbiased one of Song et
al. 2012, which ignores the diagonals and is what minibatch CKA sums (Nguyen, Raghu & Kornblith 2021).
Both are inner products of transformed Grams (centred; U-centred), so a unit reduced to its transformed
Gram (UnitRep) is all a comparison needs, and every pair of two networks' units is one matrix product
(cka_of_representations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# A unit is constant (dead) on the images when ||X - mean||_F <= CONSTANT_RTOL ||X||_F: a few float32
# ulps of variation is rounding, not a representation.
CONSTANT_RTOL = 1e-6
# Feature columns per float64 block when building a full-batch Gram, so (n, d) is never copied whole.
GRAM_BLOCK = 2048
# Up to this many images the exact estimator keeps every unit as its (n, n) centred Gram (8 MB at 1,024),
# so all pairs of two networks' units are one matrix product; above it, narrow units keep their features.
# The minibatch estimator keeps a unit's Grams of all batches up to as many numbers (PAIR_GRAMS^2).
PAIR_GRAMS = 1024


def gram_linear(x: Tensor) -> Tensor:
    """(n, ...) -> (n, n) float64 Gram matrix x x^T of the flattened features."""
    x = x.flatten(1).double()
    return x @ x.T


def gram_rbf(x: Tensor, width: float = 0.8) -> Tensor:
    """(n, ...) -> (n, n) float64 RBF Gram matrix, sigma = width x the median distance between images."""
    x = x.flatten(1).double()
    x = x - x.mean(0)  # distances do not change, the Gram's entries get small
    return rbf_of_distances(sq_distances(x @ x.T), width)


def center_gram(k: Tensor) -> Tensor:
    """H K H, H = I - 11^T / n: for a linear kernel, the Gram matrix of the centred features."""
    k = k - k.mean(0, keepdim=True)
    return k - k.mean(1, keepdim=True)


def hsic_unbiased(k: Tensor, L: Tensor) -> Tensor:
    """The unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2021, eq. 3) of two (n, n) Gram
    matrices, n > 3; their diagonals are ignored. Float64 scalar."""
    if k.shape[-1] < 4:
        raise ValueError(f"the unbiased HSIC estimator needs more than 3 images, got {k.shape[-1]}")
    k, L = k.double().clone().fill_diagonal_(0), L.double().clone().fill_diagonal_(0)
    return hsic_pairs(k[None], L[None])[0, 0]


def hsic_pairs(ka: Tensor, kb: Tensor) -> Tensor:
    """Unbiased HSIC of every pair: zero-diagonal symmetric Grams (La, n, n), (Lb, n, n) -> (La, Lb).
    tr(K L) = sum(K * L) for symmetric K, so every pair's trace is one (La, n^2) @ (n^2, Lb) product."""
    n = ka.shape[-1]
    rows_a, rows_b = ka.sum(2), kb.sum(2)  # (L, n): K 1
    trace = ka.flatten(1) @ kb.flatten(1).T
    return (trace + torch.outer(rows_a.sum(1), rows_b.sum(1)) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * rows_a @ rows_b.T) / (n * (n - 3))


def hsic_self(k: Tensor) -> Tensor:
    """HSIC(K, K) of each zero-diagonal Gram: (L, n, n) -> (L,), the diagonal of `hsic_pairs(k, k)`."""
    n = k.shape[-1]
    rows = k.sum(2)
    return (k.flatten(1).square().sum(1) + rows.sum(1).square() / ((n - 1) * (n - 2))
            - 2 / (n - 2) * rows.square().sum(1)) / (n * (n - 3))


def u_center(k: Tensor) -> Tensor:
    """Zero-diagonal symmetric Grams (..., n, n), n > 3 -> their U-centred forms (Szekely & Rizzo 2014),
    zero diagonal: K_ij - (r_i + r_j) / (n - 2) + 1^T K 1 / ((n - 1)(n - 2)), r = K 1. The unbiased HSIC
    is their inner product, HSIC(K, L) = <U(K), U(L)> / (n (n - 3)), so the CKA of every pair of units
    is again one product of flattened matrices, and HSIC(K, K) a sum of squares, never negative."""
    n = k.shape[-1]
    rows = k.sum(-1, keepdim=True) / (n - 2)  # (..., n, 1)
    u = k - rows  # one new tensor, the rest in place: (S, n, n) float64 is memory-bound
    u -= rows.transpose(-1, -2)
    u += rows.sum(-2, keepdim=True) / (n - 1)
    u.diagonal(dim1=-2, dim2=-1).zero_()
    return u


def sq_distances(k: Tensor) -> Tensor:
    """(n, n) linear Gram -> (n, n) squared distances |xi - xj|^2, exact zeros on the diagonal."""
    d = k.diagonal()
    return (d[:, None] + d[None, :] - 2 * k).clamp_(min=0).fill_diagonal_(0)


def rbf_of_distances(sq: Tensor, width: float) -> Tensor:
    """Squared distances (n, n) -> RBF Gram with sigma^2 = width^2 x median squared distance, the
    median over pairs i != j. When most pairs coincide (a nearly dead unit) that median is 0 and the
    median of the non-zero distances is used instead; identical images give all ones."""
    n = len(sq)
    # The n diagonal zeros are the n smallest entries, so the lower median of the n^2 - n others is
    # the (n + k)-th smallest entry, found without building an index of the off-diagonal.
    median = sq.flatten().kthvalue(n + (n * n - n + 1) // 2).values
    if median <= 0:
        positive = sq[sq > 0]
        if not len(positive):
            return torch.ones_like(sq)
        median = positive.median()
    return torch.exp(sq / (-2 * width**2 * median))


# ---------------------------------------------------------------- units' representations and their CKA

def constant(spread: Tensor, total: Tensor) -> bool:  # ||X - mean||^2, ||X||^2
    return bool(spread <= CONSTANT_RTOL**2 * total)


@dataclass
class UnitRep:
    """A unit on the images, float64. Exact estimator: the smaller of its centred features (n, d)
    (linear kernel, d < n) and its centred Gram matrix (n, n). Minibatch estimator: `gram` is every
    batch's scaled U-centred Gram, flattened one after another (similarity.batch_representations)."""
    features: Tensor | None
    gram: Tensor | None
    norm: float  # ||Kc||_F = ||Xc^T Xc||_F (minibatch: sqrt of the summed HSIC(K, K)); 0.0 for a constant unit


class UnitReps(list):
    """A network's UnitReps in unit order. When every unit has its Gram form, `rows` (L, m) holds them
    all, each UnitRep's gram a view of its row (a constant unit's row zero): a comparison with another
    network then starts from one matrix, not from stacking per-unit Grams each time."""

    def __init__(self, reps: list[UnitRep], rows: Tensor | None = None):
        """rows: the reps' Grams as rows already (L, m), a constant unit's row zero; else made here."""
        super().__init__(reps)
        self.rows = rows
        live = [r for r in reps if r.norm]
        if rows is None and all(r.gram is not None or r.norm == 0 for r in reps) and live:
            self.rows = torch.zeros(len(reps), live[0].gram.numel(), dtype=torch.float64, device=live[0].gram.device)
            for row, r in zip(self.rows, reps):
                if r.norm:
                    row.copy_(r.gram.flatten())
                    r.gram = row.view(r.gram.shape)
        self.norms = torch.tensor([r.norm for r in reps], dtype=torch.float64)


def full_rep(x: Tensor, kernel: str, width: float) -> UnitRep:
    """A unit's features (n, d) -> its UnitRep."""
    n, d = x.shape
    mean = x.mean(0, dtype=torch.float64)  # (d,)
    if kernel == "linear" and d < n and n > PAIR_GRAMS:  # feature form: <Kx, Ky> = ||Y^T X||_F^2 costs n d_x d_y
        xc = x.double() - mean
        spread = xc.square().sum()
        if constant(spread, spread + n * mean.square().sum()):
            return UnitRep(None, None, 0.0)
        return UnitRep(xc, None, torch.linalg.matrix_norm(xc.T @ xc).item())
    k = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for j in range(0, d, GRAM_BLOCK):  # (n, block) float64 at a time
        xb = x[:, j:j + GRAM_BLOCK].double() - mean[j:j + GRAM_BLOCK]
        k.addmm_(xb, xb.T)
    spread = k.trace()
    if constant(spread, spread + n * mean.square().sum()):
        return UnitRep(None, None, 0.0)
    if kernel == "rbf":
        k = center_gram(rbf_of_distances(sq_distances(k), width))
    return UnitRep(None, k, torch.linalg.matrix_norm(k).item())


def rep_cka(a: UnitRep, b: UnitRep) -> float:
    """<Kc_a, Kc_b> / (||Kc_a|| ||Kc_b||), by whichever forms the two reps have; 0.0 if either is constant."""
    if a.norm == 0 or b.norm == 0:
        return 0.0
    if a.features is not None and b.features is not None:
        dot = (b.features.T @ a.features).square().sum()  # ||Y^T X||_F^2
    elif a.features is not None:
        dot = (a.features * (b.gram @ a.features)).sum()  # tr(X^T L X)
    elif b.features is not None:
        dot = (b.features * (a.gram @ b.features)).sum()
    else:
        dot = (a.gram * b.gram).sum()
    return dot.item() / (a.norm * b.norm)


def cka_of_representations(a: list[UnitRep], b: list[UnitRep]) -> Tensor:
    """(len(a), len(b)) float64 CKA of every pair of units, from their UnitReps: the Gram algebra alone.
    When every unit has its Gram form, all pairs are one product of the flattened Grams, over the norms."""
    a, b = (r if isinstance(r, UnitReps) else UnitReps(r) for r in (a, b))
    if a.rows is not None and b.rows is not None:
        scale = torch.outer(a.norms, b.norms)
        return (a.rows @ b.rows.T).cpu() / scale.masked_fill_(scale == 0, torch.inf)  # a constant unit: 0 / inf
    if all(r.gram is not None or r.norm == 0 for r in a + b):  # a side with every unit constant
        return torch.zeros(len(a), len(b), dtype=torch.float64)
    return torch.tensor([[rep_cka(ra, rb) for rb in b] for ra in a], dtype=torch.float64)
