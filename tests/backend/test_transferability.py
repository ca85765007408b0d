"""Transferability scores: LEEP, NCE, H-score and LogME against direct NumPy computations and
hand-computed values, and the rank correlation of scores with gains."""

import math

import numpy as np
import pytest
import torch

from backend.probes.transferability import h_score, leep, logme, nce
from backend.stats import rank_correlation


def labelled_features(n: int, d: int, classes: int, seed: int, signal: float = 1.5):
    """Features with a class-dependent mean, (n, d) float64, and their labels (n,)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, d)) * signal
    return centres[labels] + rng.normal(size=(n, d)), labels


# ---------------------------------------------------------------- LEEP

def leep_reference(probs: np.ndarray, labels: np.ndarray) -> float:
    """Nguyen et al. 2020, written out: the empirical joint, the conditional, the mean log-likelihood."""
    n, cs = probs.shape
    ct = labels.max() + 1
    joint = np.zeros((ct, cs))
    for i in range(n):
        joint[labels[i]] += probs[i] / n
    conditional = joint / joint.sum(0)
    return float(np.mean([np.log(sum(conditional[labels[i], z] * probs[i, z] for z in range(cs)))
                          for i in range(n)]))


def test_leep_matches_the_empirical_joint_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 3, size=30)
    labels[:3] = [0, 1, 2]
    expected = leep_reference(probs, labels)
    assert leep(torch.from_numpy(probs), torch.from_numpy(labels)) == pytest.approx(expected, rel=1e-12)
    # labels of any integer values are the same classes
    assert leep(probs, labels * 10 + 7) == pytest.approx(expected, rel=1e-12)


def test_leep_is_zero_when_the_source_is_certain_and_right():
    labels = np.array([0, 1, 2, 1, 0, 2])
    assert leep(np.eye(3)[labels], labels) == pytest.approx(0.0, abs=1e-12)
    # uninformative source predictions give the log of the target class prior
    assert leep(np.full((6, 4), 0.25), labels) == pytest.approx(math.log(1 / 3))


def test_leep_rejects_bad_input():
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="probabilities"):
        leep(np.ones((4, 3)), labels)
    with pytest.raises(ValueError, match="one label per example"):
        leep(np.full((4, 2), 0.5), labels[:3])
    with pytest.raises(ValueError, match="single class"):
        leep(np.full((4, 2), 0.5), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="empty"):
        leep(np.zeros((0, 2)), np.zeros(0, dtype=int))


# ---------------------------------------------------------------- NCE

def test_nce_is_zero_when_the_source_prediction_determines_the_label():
    z = np.array([3, 3, 7, 7, 9, 9, 5])
    y = np.array([0, 0, 1, 1, 0, 0, 2])  # two source classes may share a target class
    assert nce(z, y) == pytest.approx(0.0, abs=1e-15)


def test_nce_of_a_balanced_independent_binary_case_is_minus_log_two():
    z = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    assert nce(z, y) == pytest.approx(-math.log(2), rel=1e-12)


def test_nce_by_hand():
    # z = 0 -> y in (0, 0, 1): H = -(2/3 log 2/3 + 1/3 log 1/3); z = 1 -> y = 1 always: H = 0. P(z = 0) = 3/4.
    z, y = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    expected = 0.75 * (2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert nce(torch.tensor(z), torch.tensor(y)) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- H-score

def test_h_score_of_one_hot_label_features_is_classes_minus_one():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0, 0, 3])
    # cov(f) is singular (the one-hot columns sum to 1): the pseudo-inverse handles it
    assert h_score(np.eye(4)[labels], labels) == pytest.approx(3.0, rel=1e-9)


def test_h_score_by_hand_and_its_invariance_to_linear_maps():
    # one feature: H = var(E[f | y]) / var(f). Class means 1 and 3, within-class spread +-1.
    f = np.array([[0.0], [2.0], [2.0], [4.0]])
    y = np.array([0, 0, 1, 1])
    # mean 2: var(f) = (4 + 0 + 0 + 4) / 4 = 2; var(E[f | y]) = (1 + 1 + 1 + 1) / 4 = 1
    assert h_score(f, y) == pytest.approx(1 / 2, rel=1e-12)
    features, labels = labelled_features(60, 4, 3, seed=2)
    mixing = np.random.default_rng(3).normal(size=(4, 4))
    assert h_score(features @ mixing + 5.0, labels) == pytest.approx(h_score(features, labels), rel=1e-8)
    assert 0 < h_score(features, labels) < 2  # at most C - 1


def test_h_score_rejects_a_single_class():
    with pytest.raises(ValueError, match="single class"):
        h_score(np.ones((5, 2)), np.full(5, 4))


# ---------------------------------------------------------------- LogME

def logme_fixed_point_reference(f: np.ndarray, labels: np.ndarray) -> float:
    """You et al. 2021, Algorithm 1 written plainly with numpy.linalg (no SVD tricks)."""
    n, d = f.shape
    sigma = np.linalg.eigvalsh(f.T @ f)
    out = []
    for k in range(labels.max() + 1):
        y = (labels == k).astype(float)
        alpha, beta = 1.0, 1.0
        for _ in range(10_000):
            a = alpha * np.eye(d) + beta * f.T @ f
            m = beta * np.linalg.solve(a, f.T @ y)
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            alpha_new, beta_new = gamma / (m @ m), (n - gamma) / np.sum((f @ m - y) ** 2)
            done = abs(alpha_new - alpha) < 1e-12 * alpha and abs(beta_new - beta) < 1e-12 * beta
            alpha, beta = alpha_new, beta_new
            if done:
                break
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.solve(a, f.T @ y)
        evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                    - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2)
        out.append(evidence / n)
    return float(np.mean(out))


def best_grid_evidence(f: np.ndarray, labels: np.ndarray) -> float:
    """The marginal likelihood log N(y; 0, I / beta + F F^T / alpha) per example, maximised over a
    log grid of (alpha, beta) for each class separately, averaged over classes."""
    n = len(f)
    lam, q = np.linalg.eigh(f @ f.T)                          # (n,), (n, n)
    lam = np.clip(lam, 0, None)
    grid = 10.0 ** np.linspace(-4, 5, 451)
    alpha, beta = grid[:, None, None], grid[None, :, None]
    variance = 1 / beta + lam / alpha                           # (G, G, n): the covariance's eigenvalues
    best = []
    for k in range(labels.max() + 1):
        qy2 = (q.T @ (labels == k).astype(float)) ** 2         # (n,)
        loglik = -0.5 * (n * np.log(2 * np.pi) + np.log(variance).sum(-1) + (qy2 / variance).sum(-1))
        best.append(loglik.max() / n)
    return float(np.mean(best))


@pytest.mark.parametrize("n, d, classes", [(40, 6, 3), (12, 20, 2)])  # more examples than features, and fewer
def test_logme_matches_the_plain_fixed_point_and_maximises_the_evidence(n, d, classes):
    features, labels = labelled_features(n, d, classes, seed=n)
    score = logme(torch.from_numpy(features), torch.from_numpy(labels))
    if n > d:
        assert score == pytest.approx(logme_fixed_point_reference(features, labels), rel=1e-9)
    best = best_grid_evidence(features, labels)
    assert score >= best - 1e-9
    assert score - best < 1e-3


def noise_free_evidence(f: np.ndarray, labels: np.ndarray) -> float:
    """n <= d: log N(y; 0, F F^T / alpha) per example (the evidence as beta -> inf), maximised over
    alpha in closed form (alpha = n / y^T (F F^T)^-1 y), averaged over classes."""
    n = len(f)
    lam, q = np.linalg.eigh(f @ f.T)
    out = []
    for k in range(labels.max() + 1):
        qy2 = (q.T @ (labels == k).astype(float)) ** 2
        alpha = n / np.sum(qy2 / lam)
        out.append(-0.5 * (np.sum(np.log(lam / alpha)) + n + n * np.log(2 * np.pi)) / n)
    return float(np.mean(out))


@pytest.mark.parametrize("classes, signal, seed", [(5, 1.5, 0), (2, 0.5, 1), (5, 0.0, 3)])
def test_logme_with_fewer_images_than_features_is_finite_and_scale_free(classes, signal, seed):
    # 25 images, 512 features (a resnet18's penultimate layer): the labels are always fitted exactly, the
    # fixed point walks off to beta = inf and used to end at beta = 0, log(0): "math domain error".
    features, labels = labelled_features(25, 512, classes, seed=seed, signal=signal)
    score = logme(features, labels)
    assert math.isfinite(score)
    assert logme(100 * features, labels) == pytest.approx(score, rel=1e-6)  # alpha absorbs the scale
    # the maximum evidence: the noise-free limit, or above it where there is an interior optimum
    limit = noise_free_evidence(features, labels)
    assert score >= limit - 1e-9
    if signal:  # here the maximum is the limit itself
        assert score == pytest.approx(limit, rel=1e-9)


def test_logme_of_rank_deficient_features():
    features, labels = labelled_features(60, 8, 3, seed=1)
    # duplicated columns: F F^T doubles, which alpha absorbs; the zero singular values are dropped, not inverted
    assert logme(np.hstack([features, features]), labels) == pytest.approx(logme(features, labels), rel=1e-9)
    # no features at all: the labels are noise of precision beta = n / |y|^2, L / n = 1/2 log(beta) - 1/2 - 1/2 log 2 pi
    n, per_class = 10, 5
    expected = 0.5 * math.log(n / per_class) - 0.5 - 0.5 * math.log(2 * math.pi)
    assert logme(np.zeros((n, 4)), np.arange(n) % 2) == pytest.approx(expected, rel=1e-12)


def test_logme_prefers_features_that_carry_the_labels():
    features, labels = labelled_features(90, 5, 3, seed=5, signal=3.0)
    noise = np.random.default_rng(6).normal(size=features.shape)
    assert logme(features, labels) > logme(noise, labels)


def test_logme_rejects_bad_input():
    with pytest.raises(ValueError, match="one label per example"):
        logme(np.ones((5, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        logme(np.ones(5), np.array([0, 1, 0, 1, 0]))


# ---------------------------------------------------------------- rank correlation

def test_rank_correlation_by_hand():
    # one swapped pair of four: rho = 1 - 6 * 2 / (4 * 15) = 0.8; tau = (5 - 1) / 6
    result = rank_correlation([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0])
    assert result["spearman"] == pytest.approx(0.8)
    assert result["kendall"] == pytest.approx(2 / 3)
    assert result["targets"] == 4
    reversed_ = rank_correlation([1, 2, 3], [0.3, 0.2, 0.1])
    assert (reversed_["spearman"], reversed_["kendall"]) == (pytest.approx(-1), pytest.approx(-1))


def test_rank_correlation_rejects_bad_input():
    with pytest.raises(ValueError, match="one of each"):
        rank_correlation([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        rank_correlation([1], [1])
    with pytest.raises(ValueError, match="all equal"):
        rank_correlation([1, 1, 1], [1, 2, 3])
