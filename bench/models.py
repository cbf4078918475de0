"""Model registry. Every model is a `Classifier`: a backbone producing pooled
(penultimate) features, and a linear head producing logits.

Methods that work in representation space (CU, HCU, CoUn) read the features
through `forward_with_features`; everything else calls the model as usual.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torchvision

from bench.registry import Registry

ModelFactory = Callable[[int, int, int], "Classifier"]  # (in_channels, num_classes, image_size)
MODELS: Registry[ModelFactory] = Registry("model")


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.backbone(x)
        return self.head(z), z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@MODELS.decorator("resnet18")
def resnet18(in_channels: int, num_classes: int, image_size: int) -> Classifier:
    """ResNet-18 with the CIFAR stem: 3x3 stride-1 first conv, no max-pool (512-d features)."""
    net = torchvision.models.resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()  # the backbone ends at the pooled, flattened 512-d features
    return Classifier(net, 512, num_classes)


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@MODELS.decorator("small_cnn")
def small_cnn(in_channels: int, num_classes: int, image_size: int) -> Classifier:
    """Three conv-BN-ReLU stages (32, 64, 128 channels), 2x2 max-pool between stages
    while the map is larger than 4x4, global average pool: 128-d features. Sized for
    8x8 digits and 28x28 Fashion-MNIST."""
    layers: list[nn.Module] = []
    size, cin = image_size, in_channels
    for i, cout in enumerate((32, 64, 128)):
        layers += _conv_bn_relu(cin, cout)
        if i < 2 and size > 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), 128, num_classes)


def build_model(name: str, in_channels: int, num_classes: int, image_size: int, seed: int) -> Classifier:
    """A freshly initialised model; the initialisation is a function of `seed` alone."""
    factory = MODELS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(in_channels, num_classes, image_size)
