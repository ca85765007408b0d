"""Domain gap and diversity probes: known answers on synthetic domains and hand-made clusters."""

import itertools

import numpy as np
import pytest
import torch

from backend.probes.domain import diversity, mmd, proxy_a_distance


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


@pytest.fixture(scope="module")
def halves() -> tuple[torch.Tensor, torch.Tensor]:
    """Two random halves of one Gaussian sample: the same domain, (1000, 5) each."""
    x = gaussian(2000, 5, seed=0)
    order = torch.randperm(2000, generator=torch.Generator().manual_seed(1))
    return x[order[:1000]], x[order[1000:]]


# ---------------------------------------------------------------- proxy A-distance

def test_a_distance_of_a_domain_with_itself_is_about_zero(halves):
    result = proxy_a_distance(*halves, seed=0)
    assert result["n"] == 1000
    assert abs(result["error"] - 0.5) < 0.05
    assert 0 <= result["a_distance"] < 0.2


def test_a_distance_of_disjoint_domains_is_near_two():
    result = proxy_a_distance(gaussian(400, 5, 0), gaussian(400, 5, 1, shift=10.0))
    assert result["error"] < 0.02
    assert result["a_distance"] > 1.9


def test_a_distance_balances_domains_and_is_seeded():
    source, target = gaussian(300, 4, 0), gaussian(120, 4, 1, shift=1.0)
    first = proxy_a_distance(source, target, seed=3)
    assert first["n"] == 120
    assert proxy_a_distance(source, target, seed=3) == first
    assert proxy_a_distance(source, target, seed=3, max_per_domain=50)["n"] == 50
    # a partial overlap (means 1 apart per dimension, |mu_s - mu_t| = 2) sits strictly between
    assert 0.5 < first["a_distance"] < 1.9


def test_a_distance_sees_a_gap_along_one_feature_only():
    # 20 noise features and one that separates: the linear classifier must find the one
    source, target = gaussian(300, 21, 0), gaussian(300, 21, 1)
    target[:, 7] += 8.0
    assert proxy_a_distance(source, target)["a_distance"] > 1.9


# ---------------------------------------------------------------- MMD

def mmd2_double_loop(x: np.ndarray, y: np.ndarray, k) -> float:
    """Gretton et al. 2012, eq. 3, written out term by term."""
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd_matches_the_double_loop_on_a_tiny_case():
    x, y = gaussian(5, 3, 0).numpy(), gaussian(4, 3, 1, shift=0.7).numpy()
    linear = mmd(torch.from_numpy(x), torch.from_numpy(y), kernel="linear")
    assert linear["mmd2"] == pytest.approx(mmd2_double_loop(x, y, np.dot), rel=1e-12)
    assert linear["bandwidth"] is None
    sigma = 1.3
    rbf = mmd(torch.from_numpy(x), torch.from_numpy(y), kernel="rbf", bandwidth=sigma)
    kernel = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))  # noqa: E731
    assert rbf["mmd2"] == pytest.approx(mmd2_double_loop(x, y, kernel), rel=1e-12)
    assert rbf["bandwidth"] == sigma


@pytest.mark.parametrize("n", [6, 7])  # 13 pooled points, 78 pairs (even); 15 points, 105 pairs (odd)
def test_median_heuristic_is_the_median_pairwise_distance(n):
    x, y = gaussian(n, 3, 0), gaussian(n + 1, 3, 1, shift=2.0)
    pooled = np.concatenate([x.numpy(), y.numpy()])
    distances = [np.linalg.norm(a - b) for a, b in itertools.combinations(pooled, 2)]
    assert mmd(x, y, kernel="rbf")["bandwidth"] == pytest.approx(np.median(distances), rel=1e-10)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_mmd_of_a_domain_with_itself_is_about_zero(halves, kernel):
    assert abs(mmd(*halves, kernel=kernel)["mmd2"]) < 1e-2


def test_mmd_of_disjoint_domains_is_large():
    source, target = gaussian(200, 5, 0), gaussian(200, 5, 1, shift=10.0)
    # linear: |mu_s - mu_t|^2 = 5 x 10^2
    assert mmd(source, target, kernel="linear")["mmd2"] == pytest.approx(500, rel=0.05)
    # rbf, median heuristic: slightly more than half the pooled pairs are cross-domain, so sigma falls at
    # the low end of the cross distances (~18, vs ~3 within a domain): within-domain kernels ~ 0.99,
    # cross-domain ones ~ 0.5, MMD^2 ~ 1 (out of a maximum of 2)
    rbf = mmd(source, target, kernel="rbf")
    assert 15 < rbf["bandwidth"] < 23
    assert rbf["mmd2"] > 0.9
    # a bandwidth at the within-domain scale: the cross terms vanish (exp(-500 / 18) ~ 1e-12), leaving
    # the two within-domain means, and MMD^2 is their sum
    sigma = 3.0
    k = lambda a: torch.exp(torch.cdist(a, a).square() / (-2 * sigma**2))  # noqa: E731
    within = [(k(a).sum() - len(a)) / (len(a) * (len(a) - 1)) for a in (source, target)]
    fixed = mmd(source, target, kernel="rbf", bandwidth=sigma)
    assert fixed["mmd2"] == pytest.approx(float(sum(within)), abs=1e-9)


def test_mmd_rejects_bad_input():
    x = gaussian(10, 3, 0)
    with pytest.raises(ValueError, match="dimensions"):
        mmd(x, gaussian(10, 4, 1))
    with pytest.raises(ValueError, match="at least 2"):
        mmd(x, x[:1])
    with pytest.raises(ValueError, match="empty"):
        mmd(x, x[:0])
    with pytest.raises(ValueError, match="kernel"):
        mmd(x, x, kernel="cosine")
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(torch.ones(4, 2), torch.ones(4, 2), kernel="rbf")


def test_a_distance_rejects_bad_input():
    x = gaussian(10, 3, 0)
    with pytest.raises(ValueError, match="dimensions"):
        proxy_a_distance(x, gaussian(10, 2, 1))
    with pytest.raises(ValueError, match="empty"):
        proxy_a_distance(x[:0], x)
    with pytest.raises(ValueError, match="at least 2"):
        proxy_a_distance(x, x, max_per_domain=1)


# ---------------------------------------------------------------- diversity

def test_diversity_of_hand_made_clusters():
    # class 0: (0, 0), (2, 0) -> mean (1, 0), squared distances 1, 1 -> 1
    # class 5: (0, 0), (0, 6), (0, 3) -> mean (0, 3), squared distances 9, 9, 0 -> 6
    features = torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 6.0], [0.0, 3.0]])
    labels = torch.tensor([0, 5, 0, 5, 5])
    result = diversity(features, labels)
    assert result == {"intra_class_variance": pytest.approx((1 + 6) / 2), "classes": 2}


def test_diversity_is_zero_for_collapsed_classes_and_grows_with_spread():
    labels = torch.arange(3).repeat_interleave(4)
    collapsed = torch.eye(3)[labels] * 5
    assert diversity(collapsed, labels)["intra_class_variance"] == 0
    noise = gaussian(12, 3, 0)
    assert (diversity(collapsed + 2 * noise, labels)["intra_class_variance"]
            == pytest.approx(4 * diversity(collapsed + noise, labels)["intra_class_variance"]))


def test_diversity_rejects_bad_input():
    with pytest.raises(ValueError, match="labels"):
        diversity(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        diversity(torch.zeros(0, 2), torch.zeros(0))
