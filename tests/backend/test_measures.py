"""The features the transferability scores and the feature-space domain gap read (backend.measures.penultimate):
what each architecture's classifier Linear layer reads, and no more."""

import pytest
import torch
from torch import nn

from backend.measures import penultimate
from backend.models import build_model
from backend.probes.transferability import h_score, leep, logme, nce
from backend.specs import ConvNetSpec, MLPSpec, ResNetSpec, ViTSpec


def classifier_linear(net) -> nn.Linear:
    return [m for m in net.body[net.unit_names[-1]].modules() if isinstance(m, nn.Linear)][-1]


def old_penultimate(net, x):
    """The definition before: the classifier unit's input, flattened (right for the convnet and the MLP,
    whose classifier unit is a Linear layer with at most a Flatten and a Dropout before it)."""
    with torch.inference_mode():
        top = len(net.unit_names) - 1
        h = net(x, stop=top)
        return h.flatten(1).double(), net(h, start=top).double().softmax(1)


def test_a_resnet_s_features_are_pooled_whatever_the_image_size():
    torch.manual_seed(0)
    net = build_model(ResNetSpec(arch="resnet18", small_input=False), (3, 64, 64), 5).eval()
    width = 512  # resnet50's would be 2048 (not built here: 15 s on a CPU)
    x = torch.randn(3, 3, 64, 64)
    features, probs = penultimate(net, x)
    with torch.inference_mode():
        layer4 = net(x, stop=len(net.unit_names) - 1)
        logits = net(x)
    assert layer4.shape[1:] == (width, 2, 2)  # larger than 1x1: flattened, it was 4 x width values
    assert features.shape == (3, width)
    torch.testing.assert_close(features, layer4.mean((2, 3)).double())
    torch.testing.assert_close(probs, logits.double().softmax(1))


@pytest.mark.parametrize("spec, shape", [
    (ConvNetSpec(channels=[4, 8], hidden=[8]), (3, 8, 8)),
    (ConvNetSpec(channels=[4], hidden=[], dropout=0.5), (1, 8, 8)),
    (MLPSpec(hidden=[16, 8]), (1, 6, 6)),
    (ResNetSpec(arch="resnet18"), (3, 8, 8)),
    (ViTSpec(patch=4, dim=16, depth=1, heads=2), (3, 8, 8)),  # old: all 5 tokens unnormed, 80 values
])
def test_every_architecture_s_features_are_what_its_classifier_reads(spec, shape):
    torch.manual_seed(0)
    net = build_model(spec, shape, 4).eval()
    x = torch.randn(6, *shape)
    features, probs = penultimate(net, x)
    linear = classifier_linear(net)
    assert features.shape == (6, linear.in_features)
    with torch.inference_mode():
        logits = linear(features.float())  # the classifier's Linear on the features gives the network's output
        torch.testing.assert_close(logits, net(x))
    torch.testing.assert_close(probs, logits.double().softmax(1))


@pytest.mark.parametrize("spec", [ConvNetSpec(channels=[4, 8], hidden=[8]), ConvNetSpec(channels=[4, 8], hidden=[])])
def test_the_convnet_s_features_and_scores_are_unchanged(spec):
    torch.manual_seed(1)
    net = build_model(spec, (3, 8, 8), 4).eval()
    x, y = torch.randn(40, 3, 8, 8), torch.arange(40) % 4
    features, probs = penultimate(net, x)
    old_features, old_probs = old_penultimate(net, x)
    assert torch.equal(features, old_features) and torch.equal(probs, old_probs)
    new = (logme(features, y), leep(probs, y), nce(probs.argmax(1), y), h_score(features, y))
    old = (logme(old_features, y), leep(old_probs, y), nce(old_probs.argmax(1), y), h_score(old_features, y))
    assert new == old
