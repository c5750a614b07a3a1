"""The CIFAR zoo: parameter counts, shapes, initialisation, training, registry."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, replace_all_batch_norm_modules_, vmap

from engine.networks import cifar_models as zoo
from engine.networks.models import INPUTS, ZOO

# Exact counts for 10 classes (trainable parameters; BatchNorm buffers excluded),
# and the papers' rounded figures (He et al. 2016 Table 6; Huang et al. 2017 Table 2).
COUNTS = {
    "resnet20": (269_722, 0.27e6),
    "resnet32": (464_154, 0.46e6),
    "resnet44": (658_586, 0.66e6),
    "resnet56": (853_018, 0.85e6),
    "densenet40_12": (1_019_722, 1.0e6),
    "densenet100_12_bc": (769_162, 0.8e6),
}
CIFAR_NETS = tuple(COUNTS)


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def resnet_count(depth: int, classes: int) -> int:
    """By hand: 3x3 convs without bias, BN weight + bias, linear with bias."""
    n = (depth - 2) // 6
    stem = 3 * 16 * 9 + 2 * 16
    convs = 9 * (
        2 * n * 16 * 16  # stage 1
        + 16 * 32 + (2 * n - 1) * 32 * 32  # stage 2
        + 32 * 64 + (2 * n - 1) * 64 * 64  # stage 3
    )
    norms = 2 * 2 * n * (16 + 32 + 64)
    return stem + convs + norms + 64 * classes + classes


@pytest.mark.parametrize("name", CIFAR_NETS)
def test_parameter_counts_match_hand_counts_and_the_papers(name):
    exact, paper = COUNTS[name]
    n = n_params(ZOO[name]())
    assert n == exact
    if name.startswith("resnet"):
        assert n == resnet_count(int(name[6:]), 10)
    # The papers round: two decimals of a million for ResNets, one for DenseNets.
    digits = 2 if name.startswith("resnet") else 1
    assert round(n / 1e6, digits) == pytest.approx(paper / 1e6)
    if name != "densenet100_12_bc":  # 0.769M, printed as 0.8M: 3.9% off
        assert abs(n - paper) / paper < 0.02


def test_classes_change_only_the_classifier():
    assert n_params(zoo.resnet20(classes=100)) == resnet_count(20, 100) == 275_572
    assert n_params(zoo.densenet40_12(classes=100)) - 1_019_722 == 90 * (448 + 1)
    assert n_params(zoo.densenet100_12_bc(classes=100)) - 769_162 == 90 * (342 + 1)
    assert zoo.densenet40_12().fc.in_features == 16 + 3 * 12 * 12 == 448
    # 24 + 16 * 12 = 216 -> 108; + 192 = 300 -> 150; + 192 = 342
    assert zoo.densenet100_12_bc().fc.in_features == 342


@pytest.mark.parametrize("name", CIFAR_NETS)
def test_forward_shape(name):
    torch.manual_seed(0)
    net = ZOO[name](classes=7)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_resnet_factory_and_depths():
    assert n_params(zoo.resnet(20)) == n_params(zoo.resnet20())
    assert n_params(zoo.resnet(110)) == resnet_count(110, 10)
    # conv layers + the classifier = depth
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in zoo.resnet56().modules())
    assert convs + 1 == 56
    for bad in (19, 2, 21):
        with pytest.raises(ValueError, match="6n\\+2"):
            zoo.resnet(bad)


def test_densenet_depths_count_conv_layers():
    for net, depth in ((zoo.densenet40_12(), 40), (zoo.densenet100_12_bc(), 100)):
        convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
        assert convs + 1 == depth  # + the classifier
    with pytest.raises(ValueError, match="4 \\+ 6 L"):
        zoo.CifarDenseNet(43, 12, bottleneck=True, compression=0.5)
    with pytest.raises(ValueError, match="compression"):
        zoo.CifarDenseNet(40, 12, bottleneck=False, compression=0.0)


def test_option_a_shortcut_subsamples_and_pads_zeros_without_parameters():
    shortcut = zoo.ZeroPadShortcut(2, 5, stride=2)
    assert n_params(shortcut) == 0
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4)
    y = shortcut(x)
    assert y.shape == (2, 5, 2, 2)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2])
    assert torch.equal(y[0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))
    assert not y[:, 2:].any()
    # ResNets have no projection convs: every 1x1 conv would be a projection.
    assert not any(
        isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) for m in zoo.resnet20().modules()
    )


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed):
        torch.manual_seed(seed)
        return torch.cat([p.detach().flatten() for p in zoo.resnet20().parameters()])

    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


def test_he_normal_convolutions_and_unit_batchnorm():
    torch.manual_seed(0)
    net = zoo.resnet56()
    conv = net.blocks[-1].conv2  # 64 x 64 x 3 x 3 = 36864 weights
    assert conv.weight.mean().abs() < 0.002
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.03)
    assert torch.equal(net.blocks[-1].bn2.weight, torch.ones(64))
    assert not net.blocks[-1].bn2.bias.any()
    assert not net.fc.bias.any()


def _loss_drops(net, steps, lr=0.01):
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", ["resnet20", "densenet40_12"])
def test_a_few_sgd_steps_lower_the_loss(name):
    torch.manual_seed(0)
    losses = _loss_drops(ZOO[name](), steps=5)
    assert losses[-1] < 0.75 * losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet32", "resnet44", "resnet56", "densenet100_12_bc"])
def test_a_few_sgd_steps_lower_the_loss_of_the_deeper_nets(name):
    torch.manual_seed(0)
    losses = _loss_drops(ZOO[name](), steps=4)
    assert losses[-1] < 0.75 * losses[0]


@pytest.mark.parametrize("name", ["resnet20", "densenet40_12"])
def test_runs_under_vmap_over_parameter_sets(name):
    """As the network energy calls it: BatchNorm on batch statistics, one
    forward over a pivot axis, each pivot with its own batch."""
    torch.manual_seed(0)
    net = ZOO[name]().eval()
    replace_all_batch_norm_modules_(net)
    params = {k: v.detach() for k, v in net.named_parameters()}
    other = {k: v + 0.01 * torch.randn_like(v) for k, v in params.items()}
    stacked = {k: torch.stack([params[k], other[k]]) for k in params}
    x = torch.randn(2, 4, 3, 32, 32)  # (pivots, B, 3, 32, 32)
    out = vmap(lambda p, xb: functional_call(net, p, (xb,)))(stacked, x)  # (2, 4, 10)
    for i, p in enumerate((params, other)):
        torch.testing.assert_close(out[i], functional_call(net, p, (x[i],)), rtol=1e-4, atol=1e-5)


def test_registry_names_factories_and_input_layouts():
    assert set(ZOO) == set(INPUTS) == {"mlp", "small_cnn", *CIFAR_NETS}
    assert set(INPUTS.values()) == {"flat", "images"}
    assert INPUTS["mlp"] == "flat"
    torch.manual_seed(0)
    assert ZOO["mlp"](classes=3)(torch.randn(2, 64)).shape == (2, 3)
    assert ZOO["mlp"](classes=4, inputs=3072)(torch.randn(2, 3072)).shape == (2, 4)
    assert ZOO["small_cnn"](classes=5)(torch.randn(2, 1, 8, 8)).shape == (2, 5)
    for name in CIFAR_NETS:
        assert INPUTS[name] == "images"
        assert ZOO[name](classes=100).fc.out_features == 100

