"""Parameter-space measures: Chen et al.'s T, Liu et al.'s relative deviation, L2 distance; known answers."""

import math

import pytest
import torch

from backend.models import build_model
from backend.probes.distance import chen_layers, l2_distance, relative_deviation, transferability_t
from backend.specs import ConvNetSpec, ResNetSpec

LAYERS = [("conv", ["conv.weight"]), ("block", ["block.a", "block.b"]), ("head", ["head.weight"])]


def tiny_thetas():
    """theta_r, theta_A, theta_B by hand, with Ds worked out below."""
    r = {"conv.weight": torch.tensor([0.0, 0.0, 0.0, 0.0]), "block.a": torch.tensor([[0.0, 0.0]]),
         "block.b": torch.tensor([[0.0, 0.0]]), "head.weight": torch.tensor([1.0, 1.0])}
    a = {"conv.weight": torch.tensor([1.0, 1.0, 1.0, 1.0]), "block.a": torch.tensor([[1.0, 1.0]]),
         "block.b": torch.tensor([[2.0, 2.0]]), "head.weight": torch.tensor([2.0, 2.0])}
    b = {"conv.weight": torch.tensor([1.5, 1.0, 0.5, 1.0]), "block.a": torch.tensor([[1.0, 2.0]]),
         "block.b": torch.tensor([[2.0, 4.0]]), "head.weight": torch.tensor([3.0, 3.0])}
    return r, a, b


def test_t_of_hand_made_tensors():
    r, a, b = tiny_thetas()
    t = transferability_t(r, a, b, LAYERS)
    # conv: D(r, B) = (1.5 + 1 + 0.5 + 1) / 4 = 1; D(A, B) = (0.5 + 0 + 0.5 + 0) / 4 = 0.25 -> T = 4.
    assert t["d_init"]["conv"] == pytest.approx(1.0) and t["d_pretrained"]["conv"] == pytest.approx(0.25)
    assert t["layers"]["conv"] == pytest.approx(4.0)
    # block: D(r, B) = mean(1.5, 3) = 2.25; D(A, B) = mean(0.5, 1) = 0.75 -> T = 3 (a ratio of mean Ds).
    assert t["layers"]["block"] == pytest.approx(3.0)
    # head (the classifier): D(r, B) = 2, D(A, B) = 1 -> T = 2, reported but not in the mean.
    assert t["classifier"] == "head" and t["layers"]["head"] == pytest.approx(2.0)
    assert t["overall"] == pytest.approx(3.5) and t["layers_used"] == 2 and t["flagged"] == []


def test_frozen_layer_is_flagged_not_a_crash_or_nan():
    r, a, b = tiny_thetas()
    b["conv.weight"] = a["conv.weight"].clone()  # theta_B = theta_A in this layer, as if frozen
    t = transferability_t(r, a, b, LAYERS)
    assert t["layers"]["conv"] is None
    assert [f["layer"] for f in t["flagged"]] == ["conv"] and "D(theta_A, theta_B) = 0" in t["flagged"][0]["reason"]
    assert t["overall"] == pytest.approx(3.0) and t["layers_used"] == 1  # the block alone
    everything = transferability_t(r, a, a, LAYERS)  # theta_B = theta_A everywhere
    assert everything["overall"] is None and everything["layers_used"] == 0
    assert len(everything["flagged"]) == 3 and not any(isinstance(v, float) and math.isnan(v)
                                                       for v in everything["layers"].values())


def test_new_classifier_head_of_another_shape_is_flagged():
    r, a, b = tiny_thetas()
    b["head.weight"] = torch.ones(5)  # B has 5 classes, A had 2
    t = transferability_t(r, a, b, LAYERS)
    assert t["layers"]["head"] is None and "shapes differ" in t["flagged"][0]["reason"]
    assert t["overall"] == pytest.approx(3.5)


def test_t_is_invariant_to_which_of_several_equal_d_cases_fine_tuning_took():
    """theta_r = theta_A + 2 everywhere; fine-tuning moves 16 of 64 elements by 0.5. Wherever it moves
    them, D(A, B) = 16 * 0.5 / 64 = 0.125 and D(r, B) = (48 * 2 + 16 * 1.5) / 64 = 1.875: T = 15."""
    a = torch.randn(64, generator=torch.Generator().manual_seed(0))
    layers = [("w", ["w"]), ("classifier", ["c"])]
    c = {"c": torch.zeros(1)}

    def t_of(r, a, b):
        return transferability_t({"w": r, **c}, {"w": a, **c}, {"w": b, **c}, layers)["layers"]["w"]

    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        moved = torch.zeros(64)
        moved[torch.randperm(64, generator=g)[:16]] = 0.5
        assert t_of(a + 2, a, a + moved) == pytest.approx(15.0)
        assert t_of(a - 2, a, a - moved) == pytest.approx(15.0)  # the mirror image about theta_A
        perm = torch.randperm(64, generator=g)  # the same permutation of all three networks' elements
        assert t_of((a + 2)[perm], a[perm], (a + moved)[perm]) == pytest.approx(15.0)
        assert t_of(a + 6, a, a + 3 * moved) == pytest.approx(15.0)  # every difference scaled alike


def test_chen_layers_of_the_default_convnet():
    net = build_model(ConvNetSpec(), (3, 32, 32), 10)  # conv 32, 64, 128 with BatchNorm; fc 128
    layers = chen_layers(net)
    assert [name for name, _ in layers] == ["conv1", "conv2", "conv3", "fc1", "classifier"]
    assert layers[0][1] == ["body.conv1.0.weight"] and layers[-1][1] == ["body.classifier.0.weight"]
    state = net.state_dict()
    for _, names in layers:
        assert all(state[n].ndim > 1 for n in names)  # weights only: no biases, no BatchNorm scales


@pytest.mark.parametrize("arch, blocks, convs_per_block, last_block", [("resnet18", 8, 2, "layer4.1"),
                                                                      ("resnet50", 16, 3, "layer4.2")])
def test_chen_layers_of_resnets(arch, blocks, convs_per_block, last_block):
    net = build_model(ResNetSpec(arch=arch), (3, 32, 32), 10)  # random init, nothing downloaded
    layers = chen_layers(net)
    names = [name for name, _ in layers]
    # The stem conv, one layer per residual block, the fc: 1 + 16 + 1 = 18 for ResNet-50, as in Chen et al.
    assert len(layers) == blocks + 2 and names[0] == "stem" and names[-1] == "fc"
    assert names[1:3] == ["layer1.0", "layer1.1"] and names[-2] == last_block
    assert all(len(ws) == convs_per_block for _, ws in layers[1:-1])
    weights = [w for _, ws in layers for w in ws]
    assert not any("downsample" in w or ".bn" in w for w in weights)
    modules = dict(net.named_modules())
    for w in weights:
        assert isinstance(modules[w.removesuffix(".weight")], (torch.nn.Conv2d, torch.nn.Linear))
    assert len(weights) == len(set(weights))
    if arch == "resnet50":
        assert len(names) == 18
        assert layers[1][1] == [f"body.layer1.0.conv{i}.weight" for i in (1, 2, 3)]


def test_t_on_networks_flags_a_frozen_prefix():
    spec = ConvNetSpec(channels=[4, 8], hidden=[8])
    torch.manual_seed(0)
    theta_r = build_model(spec, (1, 8, 8), 4)
    theta_a = build_model(spec, (1, 8, 8), 4)
    theta_b = build_model(spec, (1, 8, 8), 4)
    theta_b.load_state_dict(theta_a.state_dict())
    with torch.no_grad():  # "fine-tune" every layer but conv1 by a small step
        for name, p in theta_b.named_parameters():
            if not name.startswith("body.conv1."):
                p.add_(0.01)
    t = transferability_t(theta_r, theta_a, theta_b, chen_layers(theta_a))
    assert [f["layer"] for f in t["flagged"]] == ["conv1"]
    assert t["layers_used"] == 2 and all(v > 1 for k, v in t["layers"].items() if k != "conv1")


def test_relative_deviation_and_l2_distance():
    torch.manual_seed(0)
    net = build_model(ConvNetSpec(channels=[4, 8], hidden=[8]), (1, 8, 8), 4)
    layers = chen_layers(net)
    assert relative_deviation(net, net, layers) == {name: 0.0 for name, _ in layers}
    doubled = {k: 2 * v if v.is_floating_point() else v for k, v in net.state_dict().items()}
    assert relative_deviation(net, doubled, layers) == pytest.approx({name: 1.0 for name, _ in layers})
    assert l2_distance(net, net) == 0.0
    # ||2W - W|| = ||W||: over the chosen weights, and over every parameter (no BatchNorm statistics).
    weights = [n for _, names in layers for n in names]
    assert l2_distance(net, doubled, layers) == pytest.approx(
        math.sqrt(sum(net.state_dict()[n].double().square().sum().item() for n in weights)))
    params = math.sqrt(sum(p.double().square().sum().item() for p in net.parameters()))
    assert l2_distance(net, doubled) == pytest.approx(params)
    assert l2_distance({"w": torch.tensor([0.0, 0.0])}, {"w": torch.tensor([3.0, 4.0])}) == 5.0
    with pytest.raises(ValueError, match="differ in architecture"):
        l2_distance({"w": torch.zeros(2)}, {"v": torch.zeros(2)}, [("w", ["w"])])
