"""Known answers for the Hessian sharpness probe: plain matrices with a chosen spectrum, and the exact
Hessian (torch.func.hessian) of a tiny trained convnet with BatchNorm in eval mode."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from backend.models import build_model
from backend.probes import hessian
from backend.probes.curvature import sharpness, sharpness_by_scope
from backend.probes.hessian import fold_batch_norm, hessian_operator, probe_network
from backend.probes.lanczos import hutch_plus_plus, hutchinson, lanczos, power_iteration, slq
from backend.specs import ConvNetSpec, TrainSpec
from backend.train import fit

F64 = dict(dtype=torch.float64)


def symmetric(eigenvalues: list[float] | torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q, float64."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=g, dtype=torch.float64)).Q
    return q @ torch.diag(lam) @ q.T


class Counted:
    """A matrix as an operator that counts its products."""

    def __init__(self, a: torch.Tensor):
        self.a, self.products = a, 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        return self.a @ v


# ---- generic estimators on matrices with a known spectrum ----

def test_lanczos_finds_the_top_eigenvalues_of_a_known_spectrum():
    lam = torch.cat([torch.tensor([9.0, 7.5, 7.0]), torch.linspace(-3, 2, 77)])
    op = Counted(symmetric(lam))
    eig = lanczos(op, 80, 3, max_iterations=80, tol=1e-10, **F64)
    torch.testing.assert_close(torch.tensor(eig.values, **F64), torch.tensor([9.0, 7.5, 7.0], **F64),
                               rtol=1e-8, atol=0)
    assert eig.matvecs == op.products == len(eig.convergence)
    assert eig.convergence[-1] == pytest.approx(9.0)
    # the default tolerance stops well before the Krylov space is exhausted, and is still accurate
    quick = lanczos(Counted(symmetric(lam)), 80, 1, **F64)
    assert quick.converged and quick.matvecs < 40 and quick.values[0] == pytest.approx(9.0, rel=1e-3)


def test_lanczos_stops_on_an_invariant_subspace():
    """Four distinct eigenvalues: the Krylov space of any start has dimension 4, and Lanczos says so."""
    op = Counted(symmetric([5.0] * 10 + [2.0] * 10 + [1.0] * 10 + [-1.0] * 10))
    eig = lanczos(op, 40, 2, max_iterations=40, tol=0.0, **F64)
    assert eig.matvecs == op.products == 4 and eig.converged
    assert eig.values == pytest.approx([5.0, 2.0])


def test_power_iteration_with_deflation():
    lam = torch.cat([torch.tensor([10.0, 6.0, 3.0]), torch.linspace(-1, 1, 47)])
    op = Counted(symmetric(lam, seed=1))
    eig = power_iteration(op, 50, 3, max_iterations=500, tol=1e-12, **F64)
    assert eig.values == pytest.approx([10.0, 6.0, 3.0], rel=1e-6)
    assert eig.matvecs == op.products == len(eig.convergence)


def test_hutch_plus_plus_is_exact_on_a_low_rank_matrix():
    """Rank 5 < a third of the products: the sketch spans the range, the residual is zero."""
    lam = [4.0, 3.0, -2.0, 1.0, 0.5] + [0.0] * 95
    op = Counted(symmetric(lam))
    est = hutch_plus_plus(op, 100, 18, **F64)
    assert est.value == pytest.approx(6.5, rel=1e-10)
    assert est.matvecs == op.products == 18
    assert est.std_error == pytest.approx(0.0, abs=1e-10) and len(est.convergence) == 6


def test_hutchinson_is_unbiased_within_its_standard_error():
    a = symmetric(torch.linspace(-1, 3, 60), seed=2)
    est = hutchinson(Counted(a), 60, 400, **F64)
    assert abs(est.value - a.trace().item()) < 4 * est.std_error
    # Rademacher variance per sample: 2 (|A|_F^2 - sum A_ii^2)
    expected = math.sqrt(2 * (a.norm() ** 2 - (a.diag() ** 2).sum()).item() / 400)
    assert est.std_error == pytest.approx(expected, rel=0.25)


def test_hutch_plus_plus_beats_hutchinson_on_a_decaying_spectrum():
    lam = 1.0 / torch.arange(1, 301, dtype=torch.float64) ** 2
    a = symmetric(lam, seed=3)
    exact = lam.sum().item()
    err = {name: sum(abs(fn(lambda v: a @ v, 300, 30, seed=s, **F64).value - exact) for s in range(20)) / 20
           for name, fn in (("hutchinson", hutchinson), ("hutch++", hutch_plus_plus))}
    assert err["hutch++"] < 0.25 * err["hutchinson"]


def test_slq_density_integrates_to_one_and_its_mean_is_trace_over_dimension():
    lam = torch.cat([torch.tensor([20.0, 12.0]), torch.randn(198, generator=torch.Generator().manual_seed(4))])
    a = symmetric(lam, seed=5)
    spec = slq(Counted(a), 200, runs=8, iterations=30, **F64)
    grid, density = torch.tensor(spec.grid, **F64), torch.tensor(spec.density, **F64)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-9)
    assert all(sum(w) == pytest.approx(1.0) for w in spec.weights)
    assert min(min(n) for n in spec.nodes) >= lam.min() - 1e-9 and max(max(n) for n in spec.nodes) <= 20 + 1e-9
    assert spec.matvecs == 8 * 30
    mean = torch.trapezoid(grid * density, grid).item()
    # a normalised Rademacher start: each run's mean v^T A v / n has variance 2 (|A|_F^2 - sum A_ii^2) / n^2
    se = math.sqrt(2 * (a.norm() ** 2 - (a.diag() ** 2).sum()).item()) / 200 / math.sqrt(8)
    assert abs(mean - lam.mean().item()) < 4 * se
    assert max(spec.nodes[0]) == pytest.approx(20.0, rel=1e-6)  # extreme Ritz values converge first


# ---- a tiny trained convnet with BatchNorm, and its exact Hessian ----

def _clusters(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 images: one noisy prototype per class, so a few epochs train the net to a minimum."""
    protos = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(99))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    return protos[y] + 0.8 * torch.randn(n, 1, 8, 8, generator=g), y


@pytest.fixture(scope="module")
def tiny():
    """(trained net in train mode, probe x, y, exact Hessian (n, n) of the eval-mode mean loss, names)."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = build_model(ConvNetSpec(channels=[4, 8], hidden=[16]), (1, 8, 8), 10)  # 1046 parameters
    fit(net, _clusters(1000, 1), _clusters(100, 2),
        TrainSpec(epochs=3, batch_size=50, lr=0.05, channels_last=False, amp=False))
    net.train()
    x, y = _clusters(64, 3)
    names = [name for name, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    reference = net.eval()  # the exact Hessian uses the plain BatchNorm modules, not the folded ones
    buffers = dict(reference.named_buffers())

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, (c.view(s) for c, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
        return F.cross_entropy(functional_call(reference, {**params, **buffers}, (x,)), y)

    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    h = torch.func.hessian(loss)(flat).double()
    net.train()
    return net, x, y, (h + h.T) / 2, names


def _block(net: nn.Module, units: list[str]) -> torch.Tensor:
    """Indices of the units' parameters in the flattened parameter vector."""
    index, offset = [], 0
    for name, p in net.named_parameters():
        if name.split(".")[1] in units:
            index += range(offset, offset + p.numel())
        offset += p.numel()
    return torch.tensor(index)


def test_folding_batch_norm_keeps_the_function(tiny):
    net, x, _, _, _ = tiny
    probe = probe_network(net)
    assert not probe.training and net.training  # the original is left as it was
    assert fold_batch_norm(build_model(ConvNetSpec(channels=[4, 8]), (1, 8, 8), 10).eval()) == 2
    torch.testing.assert_close(probe(x), net.eval()(x), rtol=1e-5, atol=1e-5)
    net.train()


@pytest.mark.parametrize("batch_size, chunk", [(512, 128), (512, 16), (64, 128), (20, 128)])
def test_hessian_vector_products_match_the_exact_hessian(tiny, batch_size, chunk, monkeypatch):
    """One graph, several kept graphs (chunks), and graphs rebuilt per product (a probe set > batch_size)."""
    net, x, y, h, _ = tiny
    monkeypatch.setattr(hessian, "CPU_CHUNK", chunk)
    op = hessian_operator(net, x, y, batch_size=batch_size)
    assert len(op.chunks) == math.ceil(64 / min(batch_size, chunk)) and (op._graphs is None) == (batch_size < 64)
    v = torch.randn(op.n, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(op.matvec(v).double(), h @ v.double(), rtol=1e-4, atol=1e-5)
    assert op.products == 1 and op.n == h.shape[0]


def test_top_eigenvalues_match_the_exact_hessian(tiny):
    net, x, y, h, _ = tiny
    exact = torch.linalg.eigvalsh(h).flip(0)[:3]
    assert exact[0] > 0 and exact[0] > exact[1] * 1.05  # a trained minimum: a positive, separated top
    by_lanczos = sharpness(net, x, y, top_k=3, trace_samples=3)
    torch.testing.assert_close(torch.tensor(by_lanczos.top_eigenvalues, **F64), exact, rtol=1e-3, atol=0)
    by_power = sharpness(net, x, y, top_k=2, eig_method="power", tol=1e-7, max_iterations=400, trace_samples=3)
    torch.testing.assert_close(torch.tensor(by_power.top_eigenvalues, **F64), exact[:2], rtol=1e-3, atol=0)
    default_power = sharpness(net, x, y, eig_method="power", trace_samples=3)
    assert default_power.top_eigenvalues[0] == pytest.approx(exact[0].item(), rel=1e-2)


def test_trace_estimates_match_the_exact_hessian(tiny):
    net, x, y, h, _ = tiny
    exact = h.trace().item()
    plus = sharpness(net, x, y, trace_samples=300)  # Hutch++: 100 sketch directions take the outliers
    assert plus.trace == pytest.approx(exact, rel=0.02)
    assert abs(plus.trace - exact) < 4 * plus.trace_std_error
    # Hutchinson needs many more products for 2%: on the first unit's block (44 parameters, the cheapest
    # here in products), enough for a standard error of 0.6%, so 2% is 3.3 standard errors
    index = _block(net, ["conv1"])
    block = h[index][:, index]
    variance = 2 * (block.norm() ** 2 - (block.diag() ** 2).sum()).item()
    samples = math.ceil(variance / (0.006 * block.trace().item()) ** 2)
    assert samples <= 3000, "the fixture's Hessian changed: Hutchinson would need too many products"
    plain = sharpness(net, x, y, units=["conv1"], trace_method="hutchinson", trace_samples=samples, max_iterations=5)
    assert plain.trace == pytest.approx(block.trace().item(), rel=0.02)
    assert plain.trace_std_error == pytest.approx(0.006 * block.trace().item(), rel=0.3)
    assert plain.convergence["trace"][-1] == plain.trace and len(plain.convergence["trace"]) == samples


def test_spectral_density_of_the_network(tiny):
    net, x, y, h, _ = tiny
    s = sharpness(net, x, y, density=True, density_runs=6, density_iterations=40, trace_samples=3, max_iterations=5)
    grid, density = torch.tensor(s.density_grid, **F64), torch.tensor(s.density, **F64)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-9)
    n = h.shape[0]
    se = math.sqrt(2 * (h.norm() ** 2 - (h.diag() ** 2).sum()).item()) / n / math.sqrt(6)
    assert abs(torch.trapezoid(grid * density, grid).item() - h.trace().item() / n) < 4 * se
    eig = torch.linalg.eigvalsh(h)
    assert grid[0] < eig[0] and grid[-1] > eig[-1] * (1 - 1e-3)  # it covers the spectrum


def test_a_unit_subset_is_the_diagonal_block(tiny):
    net, x, y, h, _ = tiny
    index = _block(net, ["conv1", "classifier"])  # not contiguous: 44 + 170 parameters
    block = h[index][:, index]
    s = sharpness(net, x, y, units=["classifier", "conv1"], top_k=2, trace_samples=3 * len(index))
    assert s.parameters == len(index)
    exact = torch.linalg.eigvalsh(block).flip(0)[:2]
    torch.testing.assert_close(torch.tensor(s.top_eigenvalues, **F64), exact, rtol=1e-3, atol=0)
    # 3n products: Hutch++ sketches the whole space, so its trace is exact
    assert s.trace == pytest.approx(block.trace().item(), rel=1e-4)
    head = sharpness(net, x, y, units=["classifier"], trace_samples=3)
    assert head.parameters == 170
    assert head.top_eigenvalues[0] == pytest.approx(torch.linalg.eigvalsh(h[-170:, -170:])[-1].item(), rel=1e-3)


def test_hessian_vector_products_are_counted(tiny):
    net, x, y, _, _ = tiny
    s = sharpness(net, x, y, top_k=2, trace_samples=12, density=True, density_runs=2, density_iterations=7)
    assert s.hvps == len(s.convergence["lanczos"]) + 12 + 2 * 7
    p = sharpness(net, x, y, top_k=2, eig_method="power", trace_method="hutchinson", trace_samples=5)
    assert p.hvps == len(p.convergence["power"]) + 5 and len(p.convergence["trace"]) == 5
    op = hessian_operator(net, x, y)
    spent = lanczos(op.matvec, op.n, 1).matvecs + hutch_plus_plus(op.matvec, op.n, 9).matvecs
    assert op.products == spent
    assert set(s.seconds) == {"setup", "eigenvalues", "trace", "density"}


def test_seeded_and_leaves_the_model_alone(tiny):
    net, x, y, _, _ = tiny
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [p.requires_grad for p in net.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    a = sharpness(net, x, y, seed=3, trace_samples=9)
    b = sharpness(net, x, y, seed=3, trace_samples=9)
    assert (a.top_eigenvalues, a.trace) == (b.top_eigenvalues, b.trace)
    assert a.density is None and a.density_grid is None
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all((p.grad is None and g is None) or torch.equal(p.grad, g) for p, g in zip(net.parameters(), grads))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_bad_units_are_named():
    net = build_model(ConvNetSpec(channels=[4], hidden=[]), (1, 8, 8), 3)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="conv9"):
        sharpness(net, x, y, units=["conv1", "conv9"])
    with pytest.raises(ValueError, match="empty"):
        sharpness(net, x, y, units=[])


def test_progress_reports_and_can_stop_the_run(tiny):
    net, x, y, _, _ = tiny
    seen: list[tuple[float, str]] = []
    sharpness(net, x, y, trace_samples=6, density=True, density_iterations=5, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("trace" in m for _, m in seen) and any("density" in m for _, m in seen)

    class Cancelled(Exception):
        pass

    def stop(fraction: float, message: str) -> None:
        if "trace" in message:
            raise Cancelled("by the user")

    with pytest.raises(Cancelled):
        sharpness(net, x, y, progress=stop)


# ---- batched products, block Lanczos, scopes sharing passes ----

@pytest.mark.parametrize("batch_size", [512, 20])  # graphs kept, graphs rebuilt once per pass
def test_batched_products_match_single_ones_and_the_exact_hessian(tiny, batch_size):
    net, x, y, h, _ = tiny
    op = hessian_operator(net, x, y, batch_size=batch_size, block=4)
    v = torch.randn(6, op.n, generator=torch.Generator().manual_seed(8))
    batched = op.matmat(v)  # passes of 4 and 2 vectors
    assert op.products == 6
    single = torch.stack([hessian_operator(net, x, y, batch_size=batch_size, block=1).matvec(row) for row in v])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched.double(), v.double() @ h, rtol=1e-4, atol=1e-5)


def test_block_lanczos_finds_the_known_top_three(tiny):
    net, x, y, h, _ = tiny
    exact = torch.linalg.eigvalsh(h).flip(0)[:3]
    for block in (1, 3):
        s = sharpness(net, x, y, top_k=3, trace_samples=3, block=block, tol=1e-6)
        torch.testing.assert_close(torch.tensor(s.top_eigenvalues, **F64), exact, rtol=1e-3, atol=0)
        assert s.block == block
    on_matrix = Counted(symmetric(torch.cat([torch.tensor([9.0, 7.5, 7.0]), torch.linspace(-3, 2, 77)])))
    eig = lanczos(on_matrix, 80, 3, block=3, max_iterations=80, tol=1e-10, **F64)
    torch.testing.assert_close(torch.tensor(eig.values, **F64), torch.tensor([9.0, 7.5, 7.0], **F64), rtol=1e-8, atol=0)
    assert eig.matvecs == on_matrix.products and eig.matvecs % 3 == 0 and len(eig.convergence) == eig.matvecs // 3


def test_a_masked_product_is_the_exact_sub_block(tiny):
    net, x, y, h, _ = tiny
    index = _block(net, ["conv1", "conv2"])
    op = hessian_operator(net, x, y, block=2)
    v = torch.zeros(2, op.n)
    v[:, index] = torch.randn(2, len(index), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(op.matmat(v)[:, index].double(), v[:, index].double() @ h[index][:, index],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block", [1, 4])
def test_scopes_share_passes_and_equal_separate_runs(tiny, block):
    """all, transferred (conv1-conv2) and new (fc1, classifier) from one operator: on one vector a pass
    each scope's products differentiate the shared graphs on its own parameters; on several, their
    vectors go into the same passes, zero outside their scope. Each equals the scope measured alone
    (its own operator) and its exact block."""
    net, x, y, h, names = tiny
    scopes = {"all": None, "transferred": ["conv1", "conv2"], "new": ["fc1", "classifier"]}
    together = sharpness_by_scope(net, x, y, scopes, top_k=2, trace_samples=9, block=block, tol=1e-6)
    for scope, units in scopes.items():
        alone = sharpness(net, x, y, units=units, top_k=2, trace_samples=9, block=block, tol=1e-6)
        torch.testing.assert_close(torch.tensor(together[scope].top_eigenvalues), torch.tensor(alone.top_eigenvalues),
                                   rtol=1e-4, atol=0)
        assert together[scope].trace == pytest.approx(alone.trace, rel=1e-4)
        assert together[scope].hvps == alone.hvps and together[scope].parameters == alone.parameters
        index = _block(net, units) if units else torch.arange(h.shape[0])
        exact = torch.linalg.eigvalsh(h[index][:, index]).flip(0)[:2]
        torch.testing.assert_close(torch.tensor(together[scope].top_eigenvalues, **F64), exact, rtol=1e-3, atol=0)
    assert len({r.seconds["setup"] for r in together.values()}) == 1  # one operator, one setup


@pytest.mark.parametrize("block", [1, 4])
def test_each_scope_of_the_shared_operator_is_its_exact_sub_block(tiny, block):
    """Top eigenvalue and trace of every scope, read from the one operator over all parameters: the
    eigenvalue against the exact Hessian's sub-block's; the trace against Hutch++ run with the same
    seed (so the same probe vectors) on that exact sub-block."""
    net, x, y, h, _ = tiny
    scopes = {"all": None, "transferred": ["conv1"], "new": ["classifier"]}
    out = sharpness_by_scope(net, x, y, scopes, trace_samples=9, block=block, tol=1e-7, seed=5)
    for scope, units in scopes.items():
        index = _block(net, units) if units else torch.arange(h.shape[0])
        sub = h[index][:, index]
        assert out[scope].parameters == len(index)
        assert out[scope].top_eigenvalues[0] == pytest.approx(torch.linalg.eigvalsh(sub)[-1].item(), rel=1e-4)
        on_block = hutch_plus_plus(lambda v: sub.float() @ v, len(index), 9, block=block, seed=6)
        assert out[scope].trace == pytest.approx(on_block.value, rel=1e-4, abs=1e-6 * sub.diag().abs().sum().item())


@pytest.mark.parametrize("block", [1, 4])
def test_one_probe_with_three_scopes_builds_one_operator(tiny, block, monkeypatch):
    """One operator, one gradient graph per chunk of the probe set, however many scopes; every scope's
    products go through it."""
    import backend.probes.curvature as curvature

    net, x, y, _, _ = tiny
    built = []

    def counted(*args, **kw):
        built.append(hessian_operator(*args, **kw))
        return built[-1]

    monkeypatch.setattr(curvature, "hessian_operator", counted)
    scopes = {"all": None, "transferred": ["conv1", "conv2"], "new": ["fc1", "classifier"]}
    out = sharpness_by_scope(net, x, y, scopes, trace_samples=6, density=True, density_iterations=4, block=block)
    (op,) = built
    assert op.n == sum(p.numel() for p in net.parameters())  # the full parameter set
    assert op.graphs_built == len(op.chunks) == 1  # 64 images: one graph, kept for every pass
    assert op.products == sum(r.hvps for r in out.values())
