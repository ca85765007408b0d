import pytest
import torch
from torch import nn

from backend.models import build_model
from backend.specs import ConvNetSpec, MLPSpec, ResNetSpec


@pytest.mark.parametrize("spec, names", [
    (ConvNetSpec(channels=[8, 16, 16], hidden=[32, 16]), ["conv1", "conv2", "conv3", "fc1", "fc2", "classifier"]),
    (ConvNetSpec(channels=[8], hidden=[]), ["conv1", "classifier"]),
    (MLPSpec(hidden=[32, 16]), ["fc1", "fc2", "classifier"]),
    (ResNetSpec(arch="resnet18"), ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]),
    (ResNetSpec(arch="resnet50", small_input=False), ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]),
])
def test_units_are_ordered_and_compose_to_the_network(spec, names):
    torch.manual_seed(0)
    shape = (3, 32, 32) if spec.arch.startswith("resnet") else (1, 12, 12)
    net = build_model(spec, shape, n_classes=7).eval()
    assert [name for name, _ in net.units()] == names
    x = torch.randn(2, *shape)
    logits = net(x)
    assert logits.shape == (2, 7)
    for n in range(len(names) + 1):  # features after n units, then the rest, is the whole net
        torch.testing.assert_close(net(net(x, stop=n), start=n), logits)
    # every parameter belongs to exactly one unit
    assert sum(p.numel() for _, u in net.units() for p in u.parameters()) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm2d), ("group", nn.GroupNorm), ("none", None)])
def test_convnet_norm_choice(norm, kind):
    net = build_model(ConvNetSpec(channels=[6, 12], norm=norm), (3, 8, 8), 4)
    found = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert (len(found) == 2 and all(isinstance(m, kind) for m in found)) if kind else not found


def test_convnet_handles_tiny_and_odd_images():
    for shape in [(1, 8, 8), (3, 28, 28), (1, 5, 7)]:
        net = build_model(ConvNetSpec(channels=[4, 4, 4, 4, 4]), shape, 3)
        assert net(torch.randn(2, *shape)).shape == (2, 3)


def test_resnet_adapts_to_grey_input():
    net = build_model(ResNetSpec(small_input=False), (1, 64, 64), 5)
    assert net(torch.randn(2, 1, 64, 64)).shape == (2, 5)


def test_frozen_units_have_no_grad_and_batchnorm_stays_in_eval():
    net = build_model(ConvNetSpec(channels=[4, 8], hidden=[8]), (1, 8, 8), 3).freeze(2)
    net.train()
    frozen = [u for _, u in net.units()[:2]]
    assert all(not m.training for u in frozen for m in u.modules())
    assert all(not p.requires_grad for u in frozen for p in u.parameters())
    assert all(p.requires_grad for _, u in net.units()[2:] for p in u.parameters())
    bn = frozen[0][1]
    before = bn.running_mean.clone()
    net(torch.randn(16, 1, 8, 8) * 5 + 3)
    assert torch.equal(bn.running_mean, before)
    net.freeze(0).train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError):
        net.freeze(9)
