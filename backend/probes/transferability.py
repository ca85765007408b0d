"""Transferability scores: how well a source network should transfer to a target task, computed from
its outputs on the target data without fine-tuning, and how well such scores rank the measured gains.

- LEEP (Nguyen, Tran, Gal, Archambeau 2020): the mean log-likelihood of the target labels under the
  "expected empirical predictor" built from the source classifier's soft predictions.
- NCE (Tran, Nguyen, Hassner 2019): the negative conditional entropy -H(Y | Z) of the target label Y
  given the source classifier's hard prediction Z.
- H-score (Bao, Li, Huang, Zheng 2019): tr(cov(f)^-1 cov(E[f | y])), the share of feature variance
  that tells the target classes apart.
- LogME (You, Liu, Wang, Long 2021): the log marginal likelihood (evidence) of the one-hot targets
  under Bayesian linear regression on the features, maximised over the prior and noise precisions,
  averaged over classes, per example.

Higher is better for all four. Inputs are tensors or arrays; the arithmetic is float64 on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

# Probabilities rows must sum to 1 within this (float32 softmax outputs are off by a few ulps).
PROB_ATOL = 1e-4
# H-score pseudo-inverse: eigen-directions of cov(f) whose variance is below PINV_RTOL x the largest
# are taken as absent (rounding in a singular covariance, e.g. features with a constant sum), not
# inverted into huge weights.
PINV_RTOL = 1e-10
# LogME fixed point: stop when alpha and beta both change by less than this, relatively.
LOGME_RTOL = 1e-10
LOGME_MAX_ITER = 1000
# LogME: singular values of F under this x the largest are rounding noise and taken as 0 (numpy's
# matrix_rank tolerance; You et al.'s reference truncates its SVD likewise, at an absolute 1e-10).
LOGME_RANK_RTOL = torch.finfo(torch.float64).eps
# LogME: t = alpha / beta is kept within [LOGME_T_RANGE x the smallest sigma, the largest / LOGME_T_RANGE].
# Beyond, every shrinkage factor sigma_i / (t + sigma_i) is 0 or 1 to within LOGME_T_RANGE and the evidence
# no longer moves. The floor is reached when the labels lie in F's column space, as they always do when
# n <= d: the evidence then rises towards a limit as the noise variance 1/beta -> 0, and the fixed point
# walks off to beta = inf (the reference's 1e-5 added to each denominator stops it there).
LOGME_T_RANGE = 1e-12


# ---------------------------------------------------------------- LEEP and NCE

def leep(source_probs: Tensor, target_labels: Tensor) -> float:
    """LEEP score (Nguyen et al. 2020, eq. 2), in (-inf, 0]; source_probs (n, C_s) the source
    classifier's probabilities theta(x_i) on the target images, target_labels (n,).

    Empirical joint P(y, z) = 1/n sum_{i: y_i = y} theta(x_i)_z, (C_t, C_s); P(y | z) = P(y, z) / P(z);
    LEEP = 1/n sum_i log sum_z P(y_i | z) theta(x_i)_z.
    """
    probs = _matrix(source_probs, "source_probs")
    if (probs < 0).any() or not torch.allclose(probs.sum(1), torch.ones(len(probs), dtype=probs.dtype),
                                               atol=PROB_ATOL):
        raise ValueError("source_probs must hold probabilities: non-negative rows summing to 1 "
                         "(apply softmax to the source network's logits)")
    index, classes = _labels(target_labels, len(probs))
    n = len(probs)
    joint = torch.zeros(classes, probs.shape[1], dtype=probs.dtype).index_add_(0, index, probs) / n  # (C_t, C_s)
    marginal = joint.sum(0)                                                                          # (C_s,)
    # a source class no image gives any probability to never contributes to the sum
    conditional = torch.where(marginal > 0, joint / marginal.clamp(min=torch.finfo(probs.dtype).tiny), 0.0)
    eep = probs @ conditional.T                                                                      # (n, C_t)
    return float(eep[torch.arange(n), index].log().mean())


def nce(source_labels_pred: Tensor, target_labels: Tensor) -> float:
    """NCE score (Tran et al. 2019), -H(Y | Z) in [-log C_t, 0]: Z (n,) the source classifier's
    predicted (argmax) labels on the target images, Y (n,) their target labels. From the empirical
    joint P(y, z): -H(Y | Z) = sum_{y, z} P(y, z) log P(y | z). 0 when the source prediction determines
    the target label."""
    z = torch.as_tensor(source_labels_pred).flatten()
    if len(z) == 0:
        raise ValueError("source_labels_pred is empty: no examples")
    y, classes = _labels(target_labels, len(z))
    _, z = z.unique(return_inverse=True)
    joint = torch.zeros(classes, int(z.max()) + 1, dtype=torch.float64)
    joint.index_put_((y, z), torch.ones(len(z), dtype=torch.float64), accumulate=True)
    joint /= len(z)                                                            # (C_t, C_z)
    conditional = joint / joint.sum(0, keepdim=True)                           # P(y | z); every z column is used
    terms = torch.where(joint > 0, joint * conditional.log(), 0.0)             # 0 log 0 = 0
    return float(terms.sum())


# ---------------------------------------------------------------- H-score

def h_score(features: Tensor, target_labels: Tensor) -> float:
    """H-score (Bao et al. 2019, eq. 3): tr(cov(f)^+ cov(E[f | y])), features (n, d), labels (n,).

    cov(E[f | y]) is the covariance of the features after replacing each by its class mean. cov(f)^+
    is the pseudo-inverse (eigen-directions with variance under PINV_RTOL x the largest dropped), so a
    singular covariance is fine. The value lies in [0, min(d, C_t - 1)]; features equal to the one-hot
    labels score C_t - 1.
    """
    f = _matrix(features, "features")
    index, classes = _labels(target_labels, len(f))
    f = f - f.mean(0)                                                          # (n, d)
    counts = torch.bincount(index, minlength=classes).double()
    class_means = torch.zeros(classes, f.shape[1], dtype=f.dtype).index_add_(0, index, f) / counts[:, None]
    g = class_means[index]                                                     # (n, d) E[f | y_i]
    cov_f, cov_g = f.T @ f / len(f), g.T @ g / len(f)                          # (d, d) each
    return float((_pinv_psd(cov_f) * cov_g).sum())                             # tr(A B) for symmetric B


def _pinv_psd(a: Tensor) -> Tensor:
    """Pseudo-inverse of a symmetric positive semi-definite (d, d) matrix."""
    values, vectors = torch.linalg.eigh(a)
    keep = values > PINV_RTOL * values.max().clamp(min=0)
    inverse = torch.where(keep, 1 / values.where(keep, torch.ones_like(values)), 0.0)
    return (vectors * inverse) @ vectors.T


# ---------------------------------------------------------------- LogME

def logme(features: Tensor, target_labels: Tensor) -> float:
    """LogME (You et al. 2021, Algorithm 1), features F (n, d), labels (n,).

    For each class k, y = its one-hot column (n,); the model y = F w + noise, w ~ N(0, alpha^-1 I),
    noise ~ N(0, beta^-1 I). With F^T F = V diag(sigma) V^T (from the SVD of F), iterate to a fixed point
        gamma = sum_i beta sigma_i / (alpha + beta sigma_i)
        m     = beta (alpha I + beta F^T F)^-1 F^T y
        alpha = gamma / m^T m,    beta = (n - gamma) / |F m - y|^2
    and take the evidence
        L = n/2 log beta + d/2 log alpha - n/2 log 2 pi - beta/2 |F m - y|^2 - alpha/2 m^T m
            - 1/2 log det(alpha I + beta F^T F).
    LogME = mean over classes of L / n. Features are used as given (no centring; no bias term), as
    in the paper. Iterates until alpha and beta change by under LOGME_RTOL (at most LOGME_MAX_ITER).

    Everything is computed in the r = rank(F) <= min(n, d) dimensional eigenbasis, in terms of
    t = alpha / beta, so that n - gamma and the residual stay accurate as the noise vanishes; t is
    clamped to LOGME_T_RANGE of the spectrum. With n <= d (fewer images than features, F of full row
    rank) the labels are always fitted exactly, and LogME is then the evidence's limit as beta -> inf
    where that is its maximum. (Labels an exact linear function of F with n > r have unbounded evidence:
    the clamp makes that score large and finite.)
    """
    f = _matrix(features, "features")
    index, classes = _labels(target_labels, len(f))
    n, d = f.shape
    # F = U diag(s) V^T; m is only ever needed in V's basis, so V is not kept
    u, s, _ = torch.linalg.svd(f, full_matrices=False)                         # (n, min(n, d)), (min(n, d),)
    rank = int((s > s[0] * max(n, d) * LOGME_RANK_RTOL).sum())
    u, s = u[:, :rank], s[:rank]                                               # (n, r), (r,)
    sigma = s.square()                                    # (r,) eigenvalues of F^T F; its other d - r are 0
    t_min, t_max = (LOGME_T_RANGE * float(sigma[-1]), float(sigma[0]) / LOGME_T_RANGE) if rank else (0.0, 0.0)
    targets = torch.nn.functional.one_hot(index, classes).double()             # (n, C)
    evidences = []
    for k in range(classes):
        y = targets[:, k]
        uty = u.T @ y                                                          # (r,)
        # |y - U U^T y|^2: the part of y no weights can reach, outside F's column space (none if r = n)
        outside = float((y - u @ uty).square().sum()) if rank < n else 0.0
        alpha, beta = 1.0, 1.0
        for _ in range(LOGME_MAX_ITER):
            gamma, slack, mm, residual = _logme_fit(alpha / beta, sigma, s, uty, outside)
            new_alpha = gamma / max(mm, 1e-300) if rank else 1.0  # no weights at all: alpha plays no part
            new_beta = (n - rank + slack) / max(residual, 1e-300)
            if rank:  # the one of alpha, beta running off to infinity is held where t stops mattering
                new_beta = min(new_beta, new_alpha / t_min)   # noise -> 0: labels fitted exactly
                new_alpha = min(new_alpha, new_beta * t_max)  # weights -> 0: labels orthogonal to F
            converged = (abs(new_alpha - alpha) <= LOGME_RTOL * alpha
                         and abs(new_beta - beta) <= LOGME_RTOL * beta)
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        # the evidence at the final (alpha, beta), with m and the residual recomputed there; with
        # log det(alpha I + beta F^T F) = r log beta + sum_i log(t + sigma_i) + (d - r) log alpha
        t = alpha / beta
        _, _, mm, residual = _logme_fit(t, sigma, s, uty, outside)
        evidence = ((n - rank) / 2 * math.log(beta) + rank / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * residual - alpha / 2 * mm - float(torch.log(t + sigma).sum()) / 2)
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def _logme_fit(t: float, sigma: Tensor, s: Tensor, uty: Tensor, outside: float) -> tuple[float, float, float, float]:
    """LogME's posterior at t = alpha / beta: gamma, r - gamma, m^T m and |F m - y|^2, each a sum of
    non-negative terms (no difference of near-equal numbers), so all stay accurate as t -> 0."""
    fitted = sigma / (t + sigma)                        # (r,) beta sigma_i / (alpha + beta sigma_i)
    unfitted = t / (t + sigma)                          # (r,) 1 - fitted
    coef = s / (t + sigma) * uty                        # (r,) m in V's basis: m = V coef
    return (float(fitted.sum()), float(unfitted.sum()), float(coef @ coef),
            float((unfitted * uty).square().sum()) + outside)


# ---------------------------------------------------------------- scores vs measured gains

# ---------------------------------------------------------------- input checks

def _matrix(x: Tensor, name: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must be (n, d), got shape {tuple(x.shape)}")
    if len(x) == 0 or x[0].numel() == 0:
        raise ValueError(f"{name} is empty: no examples or no columns")
    x = x.detach().flatten(1).to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _labels(labels: Tensor, n: int) -> tuple[Tensor, int]:
    """Target labels (n,) of any integer values -> their index (n,) in 0..C-1 and C >= 2."""
    labels = torch.as_tensor(labels).flatten()
    if len(labels) != n:
        raise ValueError(f"{n} examples but {len(labels)} target labels: one label per example")
    if labels.is_floating_point() and not (labels == labels.round()).all():
        raise ValueError("target labels must be class indices (integers), not scores")
    values, index = labels.unique(return_inverse=True)
    if len(values) < 2:
        raise ValueError(f"the target labels hold a single class ({values.tolist()}): a transferability "
                         "score needs at least 2 target classes")
    return index, len(values)
