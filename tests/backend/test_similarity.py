"""CKA probe: known answers on plain matrices and tiny networks (Kornblith et al. 2019; Nguyen et al. 2021)."""

import copy
import itertools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from backend.models import build_model
from backend.probes.hsic import gram_linear, gram_rbf, hsic_unbiased
from backend.probes.similarity import cka_matrix, linear_cka, rbf_cka
from backend.specs import ConvNetSpec, MLPSpec

SPEC = ConvNetSpec(channels=[8, 16], hidden=[16])
UNITS = ["conv1", "conv2", "fc1", "classifier"]
ESTIMATORS = list(itertools.product(["full", "minibatch"], ["linear", "rbf"]))


def convnet(seed: int):
    torch.manual_seed(seed)
    return build_model(SPEC, (1, 8, 8), 10)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """Real 8x8 digit images (scikit-learn's bundled set, no download), standardised: (1797, 1, 8, 8)."""
    x = torch.tensor(load_digits().images, dtype=torch.float32)[:, None]
    return (x - x.mean()) / x.std()


def unit_outputs(net, x) -> list[torch.Tensor]:
    """Every unit's output flattened, (n, d) each, the plain way."""
    outs, h = [], x
    with torch.no_grad():
        for i in range(len(net.unit_names)):
            h = net.eval()(h, start=i, stop=i + 1)
            outs.append(h.flatten(1))
    return outs


# ---------------------------------------------------------------- a network against itself

@pytest.mark.parametrize("estimator, kernel", ESTIMATORS)
@pytest.mark.parametrize("other", ["none", "copy"])
def test_network_against_itself_has_unit_diagonal_and_is_symmetric(digits, estimator, kernel, other):
    net = convnet(0)
    net_b = None if other == "none" else copy.deepcopy(net)  # a copy: two forward passes, no sharing
    r = cka_matrix(net, digits[:200], net_b, kernel=kernel, estimator=estimator, batch_size=64)
    assert r.matrix.shape == (4, 4) and r.matrix.dtype == torch.float64
    assert r.units_a == r.units_b == UNITS
    torch.testing.assert_close(r.matrix.diagonal(), torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(r.matrix, r.matrix.T, atol=1e-10, rtol=0)
    assert not r.matrix.isnan().any() and r.constant_a == r.constant_b == []
    assert (r.images, r.batches) == ((200, 1) if estimator == "full" else (200, 4))  # 64+64+64+8
    assert r.matrix.min() > 0 and r.matrix.max() < 1 + 1e-5


# ---------------------------------------------------------------- invariances on plain matrices

def test_cka_invariant_to_orthogonal_maps_and_isotropic_scaling():
    g = torch.Generator().manual_seed(0)
    x, w, noise = (torch.randn(*shape, generator=g, dtype=torch.float64) for shape in [(60, 12), (12, 7), (60, 7)])
    y = torch.tanh(x @ w) + 0.3 * noise  # a nonlinear, noisy function of x
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    for cka in (linear_cka, rbf_cka):
        base = cka(x, y)
        assert 0.1 < base < 0.99
        assert cka(x, x @ q) == pytest.approx(cka(x, x), abs=1e-10) == pytest.approx(1.0, abs=1e-10)
        assert cka(x @ q, y) == pytest.approx(base, abs=1e-10)
        assert cka(3.7 * x, y) == pytest.approx(base, abs=1e-10)
        assert cka(x, 0.01 * y) == pytest.approx(base, abs=1e-10)


def test_linear_cka_not_invariant_to_ill_conditioned_invertible_maps():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 10, generator=g, dtype=torch.float64)
    y = x[:, :3] + 0.1 * torch.randn(80, 3, generator=g, dtype=torch.float64)  # lives on x's first 3 directions
    a = torch.diag(torch.tensor([1e-3] * 3 + [1.0] * 7, dtype=torch.float64))  # shrinks y's directions 1000x
    assert torch.linalg.cond(a) == pytest.approx(1e3)
    assert linear_cka(x, y) - linear_cka(x @ a, y) > 0.3
    assert linear_cka(x, x @ a) < 0.9


# ---------------------------------------------------------------- estimators against direct implementations

def numpy_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019, eq. for linear CKA on centred features, float64."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def numpy_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. 2012, eq. 5, as written."""
    n = len(k)
    k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def test_full_estimator_matches_numpy_linear_cka(digits):
    # Features: conv1 8*4*4 = 128, conv2 16*2*2 = 64, fc1 16, classifier 10. On 150 images every unit
    # takes the feature form; on 40 the conv units take the Gram form (and meet fc units in mixed pairs).
    a, b = convnet(0), convnet(1)
    for n in (150, 40):
        x = digits[:n]
        r = cka_matrix(a, x, b)
        fa, fb = unit_outputs(a, x), unit_outputs(b, x)
        expected = [[numpy_linear_cka(u.double().numpy(), v.double().numpy()) for v in fb] for u in fa]
        np.testing.assert_allclose(r.matrix.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_minibatch_estimator_matches_numpy_unbiased_hsic(digits):
    a, b = convnet(0), convnet(1)
    x = digits[:70]  # batches of 32, 32, 6
    r = cka_matrix(a, x, b, estimator="minibatch", batch_size=32)
    fa, fb = unit_outputs(a, x), unit_outputs(b, x)
    ab, aa, bb = np.zeros((4, 4)), np.zeros(4), np.zeros(4)
    for s in range(0, 70, 32):
        ka = [gram_linear(u[s:s + 32]).numpy() for u in fa]
        kb = [gram_linear(v[s:s + 32]).numpy() for v in fb]
        ab += [[numpy_hsic_unbiased(k, l) for l in kb] for k in ka]
        aa += [numpy_hsic_unbiased(k, k) for k in ka]
        bb += [numpy_hsic_unbiased(l, l) for l in kb]
    np.testing.assert_allclose(r.matrix.numpy(), ab / np.sqrt(np.outer(aa, bb)), rtol=1e-5, atol=1e-6)
    assert (r.images, r.batches) == (70, 3)


def test_hsic_unbiased_is_the_u_statistic():
    """Known answer: the average over ordered distinct (i, j, q, r) of k_ij l_ij + k_ij l_qr - 2 k_ij l_iq."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(7, 3, generator=g), torch.randn(7, 2, generator=g)
    k, l = gram_rbf(x), gram_linear(y)
    terms = [k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
             for i, j, q, r in itertools.permutations(range(7), 4)]
    assert hsic_unbiased(k, l).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-10)


def test_rbf_width_is_relative_to_the_median_distance_between_distinct_images():
    # squared distances 1, 9, 49, 4, 36, 16: lower median of the 12 off-diagonal entries is 9
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    k = gram_rbf(x, width=0.5)  # sigma^2 = 0.25 * 9
    assert k[0, 1].item() == pytest.approx(np.exp(-1 / 4.5)) and k[1, 2].item() == pytest.approx(np.exp(-4 / 4.5))
    torch.testing.assert_close(k.diagonal(), torch.ones(4, dtype=torch.float64))


def test_minibatch_approaches_full_as_batches_grow(digits):
    a, b = convnet(0), convnet(1)
    x = digits[:512]
    full = cka_matrix(a, x, b).matrix
    error = {bs: (cka_matrix(a, x, b, estimator="minibatch", batch_size=bs).matrix - full).abs().max().item()
             for bs in (16, 256, 512)}
    assert error[512] < error[256] < error[16]  # about 0.012 < 0.019 < 0.058
    assert error[512] < 0.02


# ---------------------------------------------------------------- dead units, layouts, options

@pytest.mark.parametrize("estimator, kernel", ESTIMATORS)
def test_dead_unit_gives_zero_and_is_listed(digits, estimator, kernel):
    alive, dead = convnet(0), convnet(0)
    with torch.no_grad():  # conv2's output is BatchNorm of zeros: the same map for every image
        dead.body["conv2"][0].weight.zero_()
    x = digits[:100]
    r = cka_matrix(dead, x, alive, kernel=kernel, estimator=estimator, batch_size=50)
    assert r.constant_a == ["conv2", "fc1", "classifier"] and r.constant_b == []  # all after conv2 are dead too
    assert not r.matrix.isnan().any()
    assert (r.matrix[1:] == 0).all() and (r.matrix[0] > 0).all()
    self_r = cka_matrix(dead, x, kernel=kernel, estimator=estimator, batch_size=50)
    assert not self_r.matrix.isnan().any() and self_r.constant_a == self_r.constant_b == ["conv2", "fc1", "classifier"]
    assert self_r.matrix[0, 0] == pytest.approx(1.0) and (self_r.matrix[1:] == 0).all()
    flipped = cka_matrix(alive, x, dead, kernel=kernel, estimator=estimator, batch_size=50)
    assert flipped.constant_b == ["conv2", "fc1", "classifier"] and (flipped.matrix[:, 1:] == 0).all()


def test_constant_features_on_plain_matrices_give_zero():
    x = torch.randn(20, 5)
    assert linear_cka(x, torch.ones(20, 3)) == 0.0 and rbf_cka(torch.full((20, 4), 2.5), x) == 0.0


def test_channels_last_network_gives_the_same_matrix(digits):
    net = convnet(0)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)  # conv outputs (B, C, H, W) in NHWC memory
    x = digits[:96]
    for estimator in ("full", "minibatch"):
        plain = cka_matrix(net, x, convnet(1), estimator=estimator, batch_size=32).matrix
        cl = cka_matrix(net_cl, x, convnet(1), estimator=estimator, batch_size=32).matrix
        torch.testing.assert_close(cl, plain, atol=1e-5, rtol=0)
        assert cka_matrix(net, x, net_cl, estimator=estimator, batch_size=32).matrix.diagonal().min() > 1 - 1e-5


def test_mean_pool_and_unit_subsets(digits):
    a, b = convnet(0), convnet(1)
    x = digits[:64]
    r = cka_matrix(a, x, b, pool="mean", units_a=["conv2", "conv1"], units_b=["fc1"])
    assert r.matrix.shape == (2, 1) and r.units_a == ["conv2", "conv1"] and r.units_b == ["fc1"]
    with torch.no_grad():
        pooled = a.eval()(x, stop=2).mean((2, 3))  # (B, 16, 2, 2) -> (B, 16)
        fc1 = b.eval()(x, stop=3)
    assert r.matrix[0, 0].item() == pytest.approx(linear_cka(pooled, fc1), abs=1e-10)
    whole = cka_matrix(a, x, b, pool="mean").matrix
    torch.testing.assert_close(r.matrix, whole[[1, 0]][:, [2]])


def test_progress_is_called_per_batch_and_can_stop_the_run(digits):
    net = convnet(0).train()
    seen = []
    cka_matrix(net, digits[:100], estimator="minibatch", batch_size=32, progress=lambda f, m: seen.append(f))
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0])  # 32, 32, 32, 4 images
    assert net.training and all(m.training for m in net.modules())  # modes restored

    def stop(fraction, message):
        raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        cka_matrix(net, digits[:100], progress=stop)
    assert net.training


def test_last_short_batch_is_dropped(digits):
    r = cka_matrix(convnet(0), digits[:67], convnet(1), estimator="minibatch", batch_size=32)
    assert (r.images, r.batches) == (64, 2)  # 3 images left over: the unbiased estimator needs n > 3


def test_bad_input_is_a_clear_error(digits):
    a, b = convnet(0), convnet(1)
    with pytest.raises(ValueError, match="x_a has 10 images but x_b has 12"):
        cka_matrix(a, digits[:10], b, digits[:12])
    with pytest.raises(ValueError, match="unknown unit 'conv9' in units_b; the network's units are conv1, conv2"):
        cka_matrix(a, digits[:10], b, units_b=["fc1", "conv9"])
    with pytest.raises(ValueError, match="kernel must be one of linear, rbf, not 'cosine'"):
        cka_matrix(a, digits[:10], kernel="cosine")
    with pytest.raises(ValueError, match="batch_size must be at least 4"):
        cka_matrix(a, digits[:10], estimator="minibatch", batch_size=3)
    with pytest.raises(ValueError, match="units_a is empty"):
        cka_matrix(a, digits[:10], units_a=[])
    with pytest.raises(ValueError, match="x has 5 images but y has 6"):
        linear_cka(torch.randn(5, 2), torch.randn(6, 2))


def test_mlp_units_and_cpu_float64_result():
    torch.manual_seed(0)
    mlp = build_model(MLPSpec(hidden=[32, 16]), (1, 4, 4), 3)
    x = torch.randn(40, 1, 4, 4)
    r = cka_matrix(mlp, x, kernel="rbf", estimator="minibatch", batch_size=16)
    assert r.units_a == ["fc1", "fc2", "classifier"] and r.matrix.device.type == "cpu"
    assert (r.images, r.batches) == (40, 3)
