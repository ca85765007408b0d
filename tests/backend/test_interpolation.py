"""Known answers for the interpolation probes: a network's path to itself is flat, the path's end
points are the networks themselves, BatchNorm re-estimation gives the data's statistics, the plane's
centre is the network and its directions have the network's filter norms, and a hand-counted
mistake overlap."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.models import build_model
from backend.probes.interpolation import (evaluate, filter_normalised_direction, linear_path, loss_plane,
                                          mistake_overlap, predictions, reestimate_batch_norm)
from backend.specs import ConvNetSpec

SHAPE = (3, 8, 8)


def tiny(norm: str = "none", seed: int = 0, channels: tuple[int, ...] = (4, 8)):
    torch.manual_seed(seed)
    net = build_model(ConvNetSpec(channels=list(channels), hidden=[8], norm=norm), SHAPE, 3)
    if norm == "batch":  # off the init's (1, 0) so the BatchNorm affine parameters matter
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
    return net


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, *SHAPE, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    bn_images = torch.randn(40, *SHAPE, generator=g) * 2 + 0.5  # not the init's N(0, 1) statistics
    return x, y, bn_images


def reestimated(net, images, batch_size):
    return reestimate_batch_norm(copy.deepcopy(net), images, batch_size)


# ---- linear_path ----

@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_the_path_from_a_network_to_itself_is_flat(data, norm):
    x, y, bn_images = data
    net = tiny(norm)
    path = linear_path(net, net, x, y, points=7, bn_images=bn_images, batch_size=16)
    assert abs(path.barrier) < 1e-6 and abs(path.accuracy_barrier) < 1e-6
    assert max(path.loss) - min(path.loss) < 1e-6
    assert len(set(path.accuracy)) == 1
    assert path.bn_reestimated == (norm == "batch")


@pytest.mark.parametrize("norm", ["group", "none"])
def test_end_points_are_the_networks_exactly(data, norm):
    x, y, _ = data
    a, b = tiny(norm, seed=0), tiny(norm, seed=1)
    path = linear_path(a, b, x, y, points=5, batch_size=16)
    assert (path.loss[0], path.accuracy[0]) == evaluate(a, x, y, batch_size=16)
    assert (path.loss[-1], path.accuracy[-1]) == evaluate(b, x, y, batch_size=16)
    # and evaluate is the plain mean cross-entropy and accuracy
    with torch.no_grad():
        logits = b.eval()(x)
    assert path.loss[-1] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert path.accuracy[-1] == (logits.argmax(1) == y).sum().item() / len(y)


def test_batch_norm_end_points_are_the_networks_with_reestimated_statistics(data):
    x, y, bn_images = data
    a, b = tiny("batch", seed=0), tiny("batch", seed=1)
    path = linear_path(a, b, x, y, points=5, bn_images=bn_images, batch_size=16)
    assert path.bn_reestimated
    for end, net in ((0, a), (-1, b)):
        loss, accuracy = evaluate(reestimated(net, bn_images, 16), x, y)
        assert path.loss[end] == pytest.approx(loss, rel=1e-6, abs=1e-7)
        assert path.accuracy[end] == accuracy
    # the nets' own (init) statistics give a different, wrong answer at the end point
    assert evaluate(b, x, y)[0] != pytest.approx(path.loss[-1], rel=1e-3)


def test_reestimated_statistics_are_those_of_the_data(data):
    _, _, bn_images = data
    net = tiny("batch")
    net.train()
    momentum = net.body.conv1[1].momentum
    reestimate_batch_norm(net, bn_images, batch_size=10)  # 4 batches of 10
    bn = net.body.conv1[1]
    with torch.no_grad():
        h = net.body.conv1[0](bn_images)  # (40, 4, 8, 8), the first BatchNorm's input
    torch.testing.assert_close(bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    batch_vars = torch.stack([c.var(dim=(0, 2, 3), unbiased=True) for c in h.split(10)])  # (4, 4)
    torch.testing.assert_close(bn.running_var, batch_vars.mean(0), rtol=1e-5, atol=1e-6)
    assert bn.momentum == momentum and not any(m.training for m in net.modules())


def test_batch_norm_without_images_raises(data):
    x, y, _ = data
    with pytest.raises(ValueError, match="BatchNorm.*bn_images"):
        linear_path(tiny("batch"), tiny("batch", seed=1), x, y, points=3)


def test_different_architectures_raise_naming_the_key(data):
    x, y, _ = data
    with pytest.raises(ValueError, match=r"'body\.conv2\.0\.weight' is \(8, 4, 3, 3\) in net_a, \(6, 4, 3, 3\)"):
        linear_path(tiny(channels=(4, 8)), tiny(channels=(4, 6)), x, y, points=3)
    with pytest.raises(ValueError, match=r"'body\.conv1\.1\.weight' is only in net_a"):
        linear_path(tiny("batch"), tiny("none"), x, y, points=3, bn_images=data[2])


def test_the_probes_leave_their_inputs_alone(data):
    x, y, bn_images = data
    a, b = tiny("batch", seed=0).train(), tiny("batch", seed=1).eval()
    b.freeze(1)  # frozen unit: its BatchNorm stays in eval mode, and must stay so
    inputs = [t.clone() for t in data]
    states = [{k: v.clone() for k, v in n.state_dict().items()} for n in (a, b)]
    modes = [[m.training for m in n.modules()] for n in (a, b)]
    grads = [[p.requires_grad for p in n.parameters()] for n in (a, b)]
    linear_path(a, b, x, y, points=3, bn_images=bn_images)
    loss_plane(b, x, y, resolution=3, bn_images=bn_images)
    predictions(a, x)
    evaluate(b, x, y)
    for t, before in zip(data, inputs):
        assert torch.equal(t, before)
    for n, state, mode, grad in zip((a, b), states, modes, grads):
        assert n.state_dict().keys() == state.keys()
        assert all(torch.equal(n.state_dict()[k], v) for k, v in state.items())
        assert [m.training for m in n.modules()] == mode
        assert [p.requires_grad for p in n.parameters()] == grad
        assert all(m.momentum == 0.1 for m in n.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_barrier_between_two_networks_is_the_rise_above_the_chord(data):
    x, y, _ = data
    seen = []
    path = linear_path(tiny(seed=0), tiny(seed=3), x, y, points=9, batch_size=20,
                       progress=lambda f, m: seen.append(f))
    assert path.alphas == [i / 8 for i in range(9)] and path.alphas[-1] == 1.0
    assert len(path.loss) == len(path.accuracy) == 9
    assert all(0 <= acc <= 1 for acc in path.accuracy)
    chord = [(1 - l) * path.loss[0] + l * path.loss[-1] for l in path.alphas]
    assert path.barrier == max(loss - c for loss, c in zip(path.loss, chord)) >= 0
    acc_chord = [(1 - l) * path.accuracy[0] + l * path.accuracy[-1] for l in path.alphas]
    assert path.accuracy_barrier == pytest.approx(max(c - a for a, c in zip(path.accuracy, acc_chord)), abs=1e-12)
    assert path.accuracy_barrier >= 0
    assert seen == sorted(seen) and len(seen) == 9 and seen[-1] == 1.0


# ---- loss_plane ----

@pytest.mark.parametrize("norm", ["group", "none"])
def test_the_plane_centre_is_the_network(data, norm):
    x, y, _ = data
    net = tiny(norm)
    plane = loss_plane(net, x, y, resolution=5, span=0.5, batch_size=16)
    assert plane.coords == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert plane.loss.shape == plane.accuracy.shape == (5, 5)
    assert np.isfinite(plane.loss).all() and ((0 <= plane.accuracy) & (plane.accuracy <= 1)).all()
    assert (plane.loss[2, 2], plane.accuracy[2, 2]) == evaluate(net, x, y, batch_size=16)
    assert not plane.bn_reestimated
    # away from the centre the weights move, so the loss does
    assert plane.loss[0, 0] != plane.loss[2, 2]


def test_the_plane_centre_of_a_batch_norm_net_uses_reestimated_statistics(data):
    x, y, bn_images = data
    net = tiny("batch")
    plane = loss_plane(net, x, y, resolution=3, bn_images=bn_images, batch_size=16)
    assert plane.bn_reestimated
    loss, accuracy = evaluate(reestimated(net, bn_images, 16), x, y)
    assert plane.loss[1, 1] == pytest.approx(loss, rel=1e-6) and plane.accuracy[1, 1] == accuracy


def test_the_plane_is_seeded(data):
    x, y, _ = data
    net = tiny()
    first, again = (loss_plane(net, x, y, resolution=3, seed=5).loss for _ in range(2))
    other = loss_plane(net, x, y, resolution=3, seed=6).loss
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_filter_normalised_directions_have_the_networks_filter_norms(norm):
    net = tiny(norm)
    d = filter_normalised_direction(net, torch.Generator().manual_seed(0))
    assert d.keys() == dict(net.named_parameters()).keys()
    for name, p in net.named_parameters():
        assert d[name].shape == p.shape
        if p.dim() < 2:  # biases and norm parameters do not move
            assert not d[name].any()
            continue
        torch.testing.assert_close(d[name].flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1),
                                   rtol=1e-5, atol=1e-7)
    again = filter_normalised_direction(net, torch.Generator().manual_seed(0))
    assert all(torch.equal(d[k], again[k]) for k in d)


# ---- mistakes ----

def test_mistake_overlap_on_a_hand_counted_case():
    y = torch.tensor([0, 0, 1, 1, 2])
    pred_a = torch.tensor([0, 1, 1, 0, 2])  # wrong at 1, 3
    pred_b = torch.tensor([0, 2, 1, 1, 0])  # wrong at 1 (differently), 4
    out = mistake_overlap(pred_a, pred_b, y)
    assert out == {"examples": 5, "both_wrong": 1, "only_a_wrong": 1, "only_b_wrong": 1, "both_right": 2,
                   "both_wrong_fraction": 0.2, "only_a_wrong_fraction": 0.2, "only_b_wrong_fraction": 0.2,
                   "both_right_fraction": 0.4, "disagreement": 0.6, "mistake_jaccard": 1 / 3}
    perfect = mistake_overlap(y, y, y)
    assert perfect["both_right"] == 5 and perfect["mistake_jaccard"] == 0.0 and perfect["disagreement"] == 0.0
    with pytest.raises(ValueError, match="1-d"):
        mistake_overlap(pred_a, pred_b[:4], y)


def test_predictions_are_the_eval_argmax_and_keep_the_mode(data):
    x, _, _ = data
    net = tiny("batch").train()
    labels = predictions(net, x, batch_size=7)
    assert net.training and labels.dtype == torch.int64 and labels.shape == (48,)
    with torch.no_grad():
        expected = copy.deepcopy(net).eval()(x).argmax(1)
    assert torch.equal(labels, expected)
