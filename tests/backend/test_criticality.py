"""Module criticality: known answers on a tiny convnet trained to memorise random labels (CPU)."""

import copy
import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.models import build_model
from backend.probes.criticality import module_criticality
from backend.specs import ConvNetSpec

SPEC = ConvNetSpec(channels=[4, 8], hidden=[16], norm="batch")
SHAPE = (1, 8, 8)


@functools.cache
def _trained():
    torch.manual_seed(0)
    net = build_model(SPEC, SHAPE, 5)
    init_state = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(96, *SHAPE, generator=gen)
    y = torch.randint(0, 5, (96,), generator=gen)
    # Memorise the random labels, so rewinding a unit to its init visibly costs accuracy (and the
    # BatchNorm statistics move off their defaults, which the probe must leave alone).
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ops this small run slower threaded, badly so on a busy CPU
    try:
        for _ in range(150):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return net, init_state, x, y


def nets():
    """(trained net, its init_state, x, y): fresh copies per test."""
    net, init_state, x, y = _trained()
    return copy.deepcopy(net), {k: v.clone() for k, v in init_state.items()}, x, y


def error_of(net, x, y):
    net = copy.deepcopy(net).eval()
    with torch.no_grad():
        return (net(x).argmax(1) != y).sum().item() / len(y)


def test_a1_sigma0_is_the_trained_error_and_a0_is_the_unit_reset_to_init():
    final, init_state, x, y = nets()
    out = module_criticality(final, init_state, x, y, alphas=(0.0, 0.5, 1.0), sigmas=(0.0, 0.1), samples=2)
    assert out.units == final.unit_names and out.error.shape == (4, 3, 2)
    assert out.trained_error == error_of(final, x, y)
    assert np.all(out.error[:, 2, 0] == out.trained_error)
    for u, unit in enumerate(out.units):
        reset = copy.deepcopy(final)
        params = {k for k, _ in reset.named_parameters() if k.startswith(f"body.{unit}.")}
        reset.load_state_dict({k: init_state[k] if k in params else v for k, v in reset.state_dict().items()})
        assert out.error[u, 0, 0] == error_of(reset, x, y), unit
    assert ((out.error >= 0) & (out.error <= 1)).all()
    # The trained net memorised its labels: resetting any unit to init costs accuracy.
    assert out.trained_error == 0 and (out.error[:, 0, 0] > 0.2).all()
    assert all(0 < t <= 1 for t in out.rewind_tolerance.values())


def test_net_equal_to_its_init_gives_a_flat_grid_and_zero_tolerance():
    final, _, x, y = nets()
    own = {k: v.clone() for k, v in final.state_dict().items()}
    out = module_criticality(final, own, x, y, sigmas=(0.0, 0.2), samples=1)
    assert np.all(out.error[:, :, 0] == out.trained_error)
    assert all(t == 0.0 for t in out.rewind_tolerance.values())


def test_unit_at_its_init_has_zero_tolerance_others_measured():
    final, init_state, x, y = nets()
    init_state = dict(init_state)
    for k, v in final.state_dict().items():
        if k.startswith("body.conv2."):
            init_state[k] = v.clone()
    out = module_criticality(final, init_state, x, y, units=["conv2", "classifier"], sigmas=(0.0,))
    assert out.rewind_tolerance["conv2"] == 0.0
    assert np.all(out.error[0, :, 0] == out.trained_error)
    assert math.isinf(out.criticality["conv2"])  # no sigma > 0 on the grid: nothing admissible


def test_criticality_known_answer_and_inadmissible_fallbacks():
    final, init_state, x, y = nets()
    # epsilon = 1: every point admissible, so mu is the KL at the smallest a with noise.
    out = module_criticality(final, init_state, x, y, units=["fc1"], alphas=(0.5, 1.0), sigmas=(0.0, 0.1),
                             samples=1, epsilon=1.0)
    want = 0.0
    for k, p in final.body["fc1"].named_parameters():
        f, i = p.detach().double(), init_state[f"body.fc1.{k}"].double()
        rms = f.norm().item() / math.sqrt(f.numel())
        want += 0.25 * (f - i).square().sum().item() / (2 * (0.1 * rms) ** 2)
    assert out.criticality["fc1"] == pytest.approx(want, rel=1e-9)
    assert out.rewind_tolerance["fc1"] == 0.5
    # With a = 0 admissible the unit is not critical at all.
    out = module_criticality(final, init_state, x, y, units=["fc1"], alphas=(0.0, 1.0), sigmas=(0.0, 0.1),
                             epsilon=1.0)
    assert out.criticality["fc1"] == 0.0 and out.rewind_tolerance["fc1"] == 0.0
    # Negative epsilon: nothing admissible, not even the trained point.
    out = module_criticality(final, init_state, x, y, units=["fc1"], epsilon=-1.0, samples=1)
    assert math.isinf(out.criticality["fc1"]) and out.rewind_tolerance["fc1"] == 1.0


def test_net_unchanged_deterministic_and_units_independent():
    final, init_state, x, y = nets()
    before = {k: v.clone() for k, v in final.state_dict().items()}
    seen = []
    kw = dict(alphas=(0.0, 0.5, 1.0), sigmas=(0.0, 0.2), samples=2)
    a = module_criticality(final, init_state, x, y, progress=lambda f, m: seen.append(f), **kw)
    assert final.training
    assert all(torch.equal(before[k], v) for k, v in final.state_dict().items())
    assert seen[-1] == 1.0 and seen == sorted(seen)
    b = module_criticality(final, init_state, x, y, **kw)
    assert np.array_equal(a.error, b.error) and a.criticality == b.criticality
    c = module_criticality(final, init_state, x, y, seed=1, **kw)
    assert not np.array_equal(a.error, c.error)
    d = module_criticality(final, init_state, x, y, units=["fc1"], batch_size=32, **kw)
    assert np.array_equal(d.error[0], a.error[a.units.index("fc1")])


def test_bad_units_and_bad_init_state_raise():
    final, init_state, x, y = nets()
    with pytest.raises(ValueError, match=r"'conv9'.*conv1"):
        module_criticality(final, init_state, x, y, units=["conv9"])
    key = next(k for k in init_state if k.startswith("body.fc1.") and k.endswith("weight"))
    missing = {k: v for k, v in init_state.items() if k != key}
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        module_criticality(final, missing, x, y)
    wrong = dict(init_state, **{key: torch.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        module_criticality(final, wrong, x, y)
    with pytest.raises(ValueError, match="extra"):
        module_criticality(final, dict(init_state, extra=torch.zeros(1)), x, y)
    with pytest.raises(ValueError, match="sigmas"):
        module_criticality(final, init_state, x, y, sigmas=(0.1,))
