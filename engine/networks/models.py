"""The model zoo: every network by name (``ZOO``), and the small ones for demos and
tests; the CIFAR ResNets and DenseNets are in ``engine.networks.cifar_models``.

Factories draw their initial weights from torch's global generator: seed it
(``torch.manual_seed``) for a reproducible network.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from engine.networks import cifar_models

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}: use one of {sorted(_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[name]()


def mlp(
    inputs: int = 64,
    hidden: tuple[int, ...] = (32,),
    outputs: int = 10,
    activation: str = "relu",
    batchnorm: bool = False,
) -> nn.Sequential:
    """Fully connected net: inputs -> hidden... -> outputs (logits).

    Each hidden layer is Linear [-> BatchNorm1d] -> activation.
    """
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if batchnorm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(_activation(activation))
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def small_cnn(
    channels: int = 1, classes: int = 10, width: int = 8, batchnorm: bool = True
) -> nn.Sequential:
    """Two 3x3 conv blocks for 8x8 images (N, channels, 8, 8) -> logits (N, classes).

    conv(width) [BN] ReLU maxpool -> conv(2 width) [BN] ReLU maxpool -> linear.
    """

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)
        norm = [nn.BatchNorm2d(c_out)] if batchnorm else []
        return [conv, *norm, nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(channels, width),  # -> (width, 4, 4)
        *block(width, 2 * width),  # -> (2 width, 2, 2)
        nn.Flatten(),
        nn.Linear(2 * width * 2 * 2, classes),
    )


def xor_net(hidden: int = 2) -> nn.Sequential:
    """2 -> hidden (tanh) -> 1 logit: the XOR net of the paper, section 5.2."""
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))


# --- Registry: every network by name, each factory taking ``classes=`` ---------


def _mlp(classes: int = 10, **kwargs) -> nn.Module:
    """``mlp`` with ``classes`` outputs; 64 flat inputs (digits) unless ``inputs=`` says otherwise."""
    return mlp(outputs=classes, **kwargs)


def _small_cnn(classes: int = 10, **kwargs) -> nn.Module:
    """``small_cnn`` for 8x8 images; one channel (digits) unless ``channels=`` says otherwise."""
    return small_cnn(classes=classes, **kwargs)


ZOO: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,
    "small_cnn": _small_cnn,
    "resnet20": cifar_models.resnet20,
    "resnet32": cifar_models.resnet32,
    "resnet44": cifar_models.resnet44,
    "resnet56": cifar_models.resnet56,
    "densenet40_12": cifar_models.densenet40_12,
    "densenet100_12_bc": cifar_models.densenet100_12_bc,
}

# The input layout each network takes: "flat" (N, features) or "images" (N, C, H, W).
INPUTS: dict[str, str] = {
    "mlp": "flat",
    "small_cnn": "images",
    "resnet20": "images",
    "resnet32": "images",
    "resnet44": "images",
    "resnet56": "images",
    "densenet40_12": "images",
    "densenet100_12_bc": "images",
}
