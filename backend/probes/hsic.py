"""Kernels and HSIC on plain matrices: the algebra under CKA (backend.probes.similarity), on float64.

HSIC(K, L) measures the dependence of two representations of the same n images through their Gram
matrices K, L (n, n): the biased form <HKH, HLH> (H = I - 11^T / n) and the unbiased one of Song et
al. 2012, which ignores the diagonals and is what minibatch CKA sums (Nguyen, Raghu & Kornblith 2021).
"""

from __future__ import annotations

import torch
from torch import Tensor


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
    u = k - rows - rows.transpose(-1, -2) + rows.sum(-2, keepdim=True) / (n - 1)
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
