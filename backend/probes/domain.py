"""Domain gap and dataset diversity, measured on features: how far a target data set lies from the
source one (Chen et al. 2022 ask how the gap and the diversity move transferability; their own
definitions are unverified, so these are the usual measurable ones).

- Proxy A-distance (Ben-David et al. 2007, "Analysis of representations for domain adaptation";
  Ganin et al. 2016): train a linear classifier to tell source from target features, take its held-out
  error err, d_A = 2 (1 - 2 err). 0: the domains are indistinguishable (a coin flip); 2: perfectly
  separable.
- MMD^2 (Gretton et al. 2012, "A kernel two-sample test"): the squared distance between the two
  domains' mean embeddings in a kernel's feature space, by the unbiased estimator MMD^2_u (their eq. 3).
- Diversity: mean intra-class feature variance, how spread a data set's classes are.

Features are (n, d) float tensors (anything (n, ...) is flattened); the arithmetic is float64 on the CPU.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

# Ridge penalty of the domain classifier, lambda = RIDGE / n_train on the mean log-loss: scikit-learn's
# default LogisticRegression (C = 1) on the same standardised features. It keeps the weights finite
# when the domains separate perfectly.
RIDGE = 1.0
NEWTON_STEPS = 100
NEWTON_GTOL = 1e-10  # stop when the gradient's largest entry falls below this


# ---------------------------------------------------------------- proxy A-distance

def proxy_a_distance(source: Tensor, target: Tensor, seed: int = 0,
                     max_per_domain: int | None = None) -> dict:
    """Proxy A-distance between two domains' features, source (n_s, d) and target (n_t, d).

    The larger domain is subsampled to the smaller one's count (and both to max_per_domain, if given),
    so a classifier that always says "source" scores err = 0.5, not the class prior. Each domain is
    split into halves, a linear logistic-regression classifier (features standardised on the training
    halves, ridge penalty as scikit-learn's default C = 1, fitted by Newton's method) learns
    source vs target on the training halves, and err is its error on the held-out halves.
    A-distance = 2 (1 - 2 err), clipped to [0, 2]: 0 means the domains are indistinguishable to a
    linear classifier, 2 that they are perfectly separable. Deterministic given the seed.

    Returns {"a_distance": float, "error": float, "n": per-domain count used (both halves)}.
    """
    xs, xt = _features_pair(source, target)
    n = min(len(xs), len(xt), max_per_domain if max_per_domain is not None else len(xs))
    if n < 2:
        raise ValueError(f"the proxy A-distance needs at least 2 examples per domain (one to train on, "
                         f"one to test on); got {n}")
    gen = torch.Generator().manual_seed(seed)
    # Subsample and split in one draw: the first half of a random order trains, the rest tests.
    xs = xs[torch.randperm(len(xs), generator=gen)[:n]]
    xt = xt[torch.randperm(len(xt), generator=gen)[:n]]
    half = n // 2
    x_train = torch.cat([xs[:half], xt[:half]])                     # (2 half, d)
    x_test = torch.cat([xs[half:], xt[half:]])                      # (2 (n - half), d)
    y_train = torch.cat([torch.zeros(half), torch.ones(half)]).double()
    y_test = torch.cat([torch.zeros(n - half), torch.ones(n - half)]).double()

    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))           # a constant feature stays 0
    w, b = _fit_logistic(x_train.sub(mean).div(std), y_train, RIDGE / len(x_train))
    predicted = (x_test.sub(mean).div(std) @ w + b > 0).double()
    err = float((predicted != y_test).double().mean())
    return {"a_distance": min(max(2.0 * (1.0 - 2.0 * err), 0.0), 2.0), "error": err, "n": n}


def _fit_logistic(x: Tensor, y: Tensor, ridge: float) -> tuple[Tensor, Tensor]:
    """L2-penalised logistic regression, x (n, d) float64, y (n,) in {0, 1}: minimises
    mean log-loss + ridge/2 |w|^2 (the bias unpenalised) by Newton's method with backtracking.
    Returns w (d,), b (). Cost per step O(n d^2 + d^3)."""
    n, d = x.shape
    xb = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)        # (n, d + 1), last column the bias
    penalty = torch.full((d + 1,), ridge, dtype=x.dtype)
    penalty[-1] = 0.0
    theta = torch.zeros(d + 1, dtype=x.dtype)

    def objective(t: Tensor) -> Tensor:
        z = xb @ t
        # log(1 + e^z) - y z, the log-loss of a logit z
        return (torch.nn.functional.softplus(z) - y * z).mean() + 0.5 * (penalty * t * t).sum()

    loss = objective(theta)
    for _ in range(NEWTON_STEPS):
        p = torch.sigmoid(xb @ theta)                               # (n,)
        grad = xb.T @ (p - y) / n + penalty * theta                 # (d + 1,)
        if grad.abs().max() < NEWTON_GTOL:
            break
        hess = (xb.T * (p * (1 - p))) @ xb / n + torch.diag(penalty)  # (d + 1, d + 1)
        # a tiny jitter keeps the bias row solvable when every p is 0 or 1 to rounding
        step = torch.linalg.solve(hess + 1e-12 * torch.eye(d + 1, dtype=x.dtype), grad)
        t = 1.0
        while t > 1e-10:
            candidate = theta - t * step
            new_loss = objective(candidate)
            if new_loss <= loss:
                break
            t /= 2
        else:
            break                                                   # no descent left: converged to rounding
        theta, loss = candidate, new_loss
    return theta[:-1], theta[-1]


# ---------------------------------------------------------------- MMD

def mmd(source: Tensor, target: Tensor, kernel: Literal["linear", "rbf"] = "linear",
        bandwidth: float | None = None) -> dict:
    """Unbiased MMD^2 estimate (Gretton et al. 2012, eq. 3) between source (m, d) and target (n, d):

        MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
                  - 2/(mn) sum_{i,j} k(x_i, y_j).

    It is unbiased, so it can be slightly negative when the domains are alike. Kernels: "linear",
    k(x, y) = x.y (then MMD^2 estimates |mu_s - mu_t|^2, computed in O((m + n) d) memory); "rbf",
    k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), sigma = bandwidth, or when None the median heuristic:
    the median distance |x - y| over all pairs of distinct points of the pooled sample (the zero
    diagonal excluded). RBF builds the (m + n, m + n) kernel matrix.

    Returns {"mmd2": float, "kernel": str, "bandwidth": sigma used (None for linear)}.
    """
    x, y = _features_pair(source, target)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD^2 needs at least 2 examples per domain; got {m} source and {n} target")
    if kernel == "linear":
        sx, sy = x.sum(0), y.sum(0)                                 # (d,)
        # sum_{i!=j} x_i.x_j = |sum_i x_i|^2 - sum_i |x_i|^2
        kxx = (sx @ sx - (x * x).sum()) / (m * (m - 1))
        kyy = (sy @ sy - (y * y).sum()) / (n * (n - 1))
        kxy = (sx @ sy) / (m * n)
        return {"mmd2": float(kxx + kyy - 2 * kxy), "kernel": "linear", "bandwidth": None}
    if kernel != "rbf":
        raise ValueError(f"unknown MMD kernel {kernel!r}: choose 'linear' or 'rbf'")
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"the RBF bandwidth must be positive, got {bandwidth}")
    pooled = torch.cat([x, y])                                      # (m + n, d)
    dist = pairwise_distances(pooled)                               # (m + n, m + n)
    sigma = float(bandwidth) if bandwidth is not None else median_distance(dist)
    if sigma <= 0:
        raise ValueError("every point of the pooled sample is the same: the median heuristic gives a "
                         "zero RBF bandwidth; pass bandwidth explicitly")
    k = torch.exp(dist.square() / (-2 * sigma**2)).fill_diagonal_(0)  # the i = j terms drop out
    kxx = k[:m, :m].sum() / (m * (m - 1))
    kyy = k[m:, m:].sum() / (n * (n - 1))
    kxy = k[:m, m:].sum() / (m * n)
    return {"mmd2": float(kxx + kyy - 2 * kxy), "kernel": "rbf", "bandwidth": sigma}


def pairwise_distances(x: Tensor) -> Tensor:
    """(n, d) float64 -> (n, n) Euclidean distances, exact zeros on the diagonal. From the Gram matrix
    (one matrix product) of the centred points: centring keeps |x|^2 + |y|^2 - 2 x.y from cancelling
    badly for a sample far from the origin, and float64 leaves rounding near 1e-16 |x|^2."""
    x = x - x.mean(0)
    gram = x @ x.T                                                  # (n, n)
    sq = gram.diagonal()
    return (sq[:, None] + sq[None, :] - 2 * gram).clamp_(min=0).sqrt_().fill_diagonal_(0)


def median_distance(dist: Tensor) -> float:
    """Median of the distances between distinct points, dist (n, n) symmetric: over the pairs i < j
    (the same median as over all i != j), the middle two averaged when their count is even."""
    n = len(dist)
    i, j = torch.triu_indices(n, n, offset=1)
    pairs = dist[i, j]                                              # (n (n - 1) / 2,)
    upper = pairs.kthvalue(len(pairs) // 2 + 1).values             # kthvalue counts from 1
    if len(pairs) % 2:
        return float(upper)
    return float((pairs.kthvalue(len(pairs) // 2).values + upper) / 2)


# ---------------------------------------------------------------- diversity

def diversity(features: Tensor, labels: Tensor) -> dict:
    """Mean intra-class feature variance of a labelled data set, features (n, d), labels (n,):
    for each class c, the mean of |f_i - mu_c|^2 over its examples (mu_c the class mean); then the
    mean over classes, each class weighing the same whatever its size. A class of one example adds 0.

    Returns {"intra_class_variance": float, "classes": number of distinct labels}.
    """
    f = _features(features, "features")
    labels = torch.as_tensor(labels).flatten()
    if len(labels) != len(f):
        raise ValueError(f"{len(f)} feature rows but {len(labels)} labels: one label per example")
    classes, index = labels.unique(return_inverse=True)              # index (n,) in 0..C-1
    c = len(classes)
    counts = torch.bincount(index, minlength=c).double()             # (C,)
    means = torch.zeros(c, f.shape[1], dtype=f.dtype).index_add_(0, index, f) / counts[:, None]  # (C, d)
    sq = (f - means[index]).square().sum(1)                          # (n,)
    per_class = torch.zeros(c, dtype=f.dtype).index_add_(0, index, sq) / counts  # (C,)
    return {"intra_class_variance": float(per_class.mean()), "classes": c}


# ---------------------------------------------------------------- input checks

def _features(x: Tensor, name: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must be (n, d) features, got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{name} is empty: no examples")
    x = x.detach().flatten(1).to("cpu", torch.float64)
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no feature dimensions")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _features_pair(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    xs, xt = _features(source, "source"), _features(target, "target")
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(f"source features have {xs.shape[1]} dimensions but target features {xt.shape[1]}: "
                         "compare the two domains in the same feature space")
    return xs, xt
