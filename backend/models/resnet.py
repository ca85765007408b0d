"""torchvision ResNets as transfer units: stem, layer1..layer4, fc."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from backend import settings
from backend.specs import ResNetSpec, SpecError


def resnet(spec: ResNetSpec, image_shape: tuple[int, int, int], n_classes: int) -> list[nn.Module]:
    c = image_shape[0]
    weights = None
    if spec.pretrained:
        enum = {"resnet18": torchvision.models.ResNet18_Weights,
                "resnet50": torchvision.models.ResNet50_Weights}[spec.arch]
        weights = enum.DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.exists() and not settings.get("allow_downloads"):
            raise SpecError(f"torchvision's {spec.arch} weights are not in the local cache ({cached}) and downloads "
                            "are off: set TRANSFERLAB_ALLOW_DOWNLOADS=1 where the deployment may reach the network, "
                            "or give the weights file as a pretrained source", field="model.pretrained")
    try:
        net = getattr(torchvision.models, spec.arch)(weights=weights)
    except Exception as exc:  # no cached weights and no network
        raise SpecError(f"could not load pretrained {spec.arch} weights: {exc}",
                        field="model.pretrained") from exc
    if spec.small_input:
        # CIFAR-style stem: keep the resolution of small images.
        net.conv1 = nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif c != 3:
        net.conv1 = nn.Conv2d(c, 64, 7, stride=2, padding=3, bias=False)
    # The classifier is always new: (B, C, H, W) -> (B, C) -> (B, n_classes).
    head = nn.Sequential(net.avgpool, nn.Flatten(), nn.Linear(net.fc.in_features, n_classes))
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [stem, net.layer1, net.layer2, net.layer3, net.layer4, head]
