"""The CIFAR networks of the paper's experiments: ResNet-20/32/44/56 and
DenseNet-40-12 / DenseNet-100-12-BC, for (N, 3, 32, 32) images -> (N, classes) logits.

Factories draw their initial weights from torch's global generator: seed it
(``torch.manual_seed``) for a reproducible network. Convolutions start from
He (Kaiming) normal weights, std sqrt(2 / (k * k * out_channels)), as in both
papers' code; BatchNorm from weight 1, bias 0; the classifier's bias from 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _init_weights(net: nn.Module) -> None:
    """He normal convolutions, unit BatchNorm, zero classifier bias."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


# --- ResNet (He et al. 2016, section 4.2: the CIFAR-10 networks) -------------


class ZeroPadShortcut(nn.Module):
    """Shortcut option A: identity, subsampled by ``stride`` and zero-padded
    with the extra channels at the end. It has no parameters."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out < c_in:
            raise ValueError(f"a zero-padding shortcut cannot shrink {c_in} to {c_out} channels")
        self.extra = c_out - c_in
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:  # (B, c_in, H, W) -> (B, c_out, H/s, W/s)
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class ResidualBlock(nn.Module):
    """conv3x3 BN ReLU conv3x3 BN, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        identity = stride == 1 and c_in == c_out
        self.shortcut = nn.Identity() if identity else ZeroPadShortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with 6n+2 layers: conv3x3(16), three stages of n residual blocks
    at 16, 32, 64 channels (32x32, 16x16, 8x8 maps; the 2nd and 3rd stages
    start with stride 2), global average pooling, linear classifier.
    Shortcuts use option A (zero-padding identity, parameter-free)."""

    def __init__(self, depth: int, classes: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv = _conv3x3(3, 16)
        self.bn = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        c_in = 16
        for c_out, first_stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(ResidualBlock(c_in, c_out, first_stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, 32, 32) -> (B, classes)
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)  # (B, 64, 8, 8)
        return self.fc(x.mean(dim=(2, 3)))


def resnet(depth: int, classes: int = 10) -> CifarResNet:
    """CIFAR ResNet of ``depth`` = 6n+2 layers (shortcut option A)."""
    return CifarResNet(depth, classes)


def resnet20(classes: int = 10) -> CifarResNet:
    """ResNet-20: 0.27M parameters."""
    return CifarResNet(20, classes)


def resnet32(classes: int = 10) -> CifarResNet:
    """ResNet-32: 0.46M parameters."""
    return CifarResNet(32, classes)


def resnet44(classes: int = 10) -> CifarResNet:
    """ResNet-44: 0.66M parameters."""
    return CifarResNet(44, classes)


def resnet56(classes: int = 10) -> CifarResNet:
    """ResNet-56: 0.85M parameters."""
    return CifarResNet(56, classes)


# --- DenseNet (Huang et al. 2017, section 3 and 4.2) -------------------------


class DenseLayer(nn.Module):
    """Adds ``growth`` feature maps to its input.

    Basic: BN ReLU conv3x3(growth). Bottleneck (-B): BN ReLU conv1x1(4 growth)
    BN ReLU conv3x3(growth). The output is [input, new maps] along channels.
    """

    def __init__(self, c_in: int, growth: int, bottleneck: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = c_in
        if bottleneck:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 4 * growth, 1, bias=False)]
            c = 4 * growth
        layers += [nn.BatchNorm2d(c), nn.ReLU(), _conv3x3(c, growth)]
        self.new = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, c_in, H, W) -> (B, c_in + growth, H, W)
        return torch.cat([x, self.new(x)], dim=1)


class Transition(nn.Sequential):
    """BN ReLU conv1x1(c_out) avgpool2x2, between two dense blocks."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.AvgPool2d(2)
        )


class CifarDenseNet(nn.Module):
    """DenseNet with three dense blocks (32x32, 16x16, 8x8 maps).

    conv3x3(16, or 2 growth with bottleneck) -> [dense block -> transition] x2
    -> dense block -> BN ReLU -> global average pooling -> linear classifier.
    Each block has (depth - 4) / 3 basic layers, or (depth - 4) / 6 bottleneck
    layers; a transition keeps floor(compression * channels). No dropout (the
    augmented C10+/C100+ setting).
    """

    def __init__(
        self,
        depth: int,
        growth: int,
        bottleneck: bool,
        compression: float,
        classes: int = 10,
    ) -> None:
        super().__init__()
        per_layer = 6 if bottleneck else 3  # conv layers a dense layer adds, times three blocks
        if depth < 4 + per_layer or (depth - 4) % per_layer:
            raise ValueError(
                f"DenseNet depth must be 4 + {per_layer} L with L >= 1 layers per block"
                f"{' (bottleneck)' if bottleneck else ''}, got {depth}"
            )
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must lie in (0, 1], got {compression}")
        layers_per_block = (depth - 4) // per_layer
        c = 2 * growth if bottleneck else 16
        stages: list[nn.Module] = [_conv3x3(3, c)]
        for block in range(3):
            for _ in range(layers_per_block):
                stages.append(DenseLayer(c, growth, bottleneck))
                c += growth
            if block < 2:
                c_out = int(compression * c)
                stages.append(Transition(c, c_out))
                c = c_out
        stages += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*stages)
        self.fc = nn.Linear(c, classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, 32, 32) -> (B, classes)
        x = self.features(x)  # (B, c, 8, 8)
        return self.fc(x.mean(dim=(2, 3)))


def densenet40_12(classes: int = 10) -> CifarDenseNet:
    """DenseNet-40 with growth 12: basic layers, no compression; 1.0M parameters."""
    return CifarDenseNet(40, 12, bottleneck=False, compression=1.0, classes=classes)


def densenet100_12_bc(classes: int = 10) -> CifarDenseNet:
    """DenseNet-BC-100 with growth 12: bottleneck layers, compression 0.5; 0.8M parameters."""
    return CifarDenseNet(100, 12, bottleneck=True, compression=0.5, classes=classes)
