"""Weight matching: planted permutations are found exactly, functions never change,
distances never grow, and networks it cannot analyse are refused by name."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from engine.alignment.groups import permutation_spec
from engine.alignment.weight_matching import align, permute, random_permutations
from engine.networks.layout import ParameterLayout
from engine.networks import cifar_models, models


class ProjectionResNet(nn.Module):
    """A user's ResNet: projection shortcut (1x1 conv + BN), adaptive pooling, view."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(6)
        self.a1 = nn.Conv2d(6, 6, 3, padding=1)
        self.a2 = nn.Conv2d(6, 6, 3, padding=1)
        self.b1 = nn.Conv2d(6, 10, 3, stride=2, padding=1, bias=False)
        self.b1_bn = nn.BatchNorm2d(10)
        self.b2 = nn.Conv2d(10, 10, 3, padding=1, bias=False)
        self.b2_bn = nn.BatchNorm2d(10)
        self.project = nn.Sequential(nn.Conv2d(6, 10, 1, stride=2, bias=False), nn.BatchNorm2d(10))
        self.head = nn.Linear(10, 3)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = F.relu(x + self.a2(F.relu(self.a1(x))))
        x = F.relu(self.b2_bn(self.b2(F.relu(self.b1_bn(self.b1(x))))) + self.project(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.head(x.view(x.size(0), -1))


class FlattenCNN(nn.Module):
    """Convolutions, torch.flatten, a BatchNorm1d over the flattened features, an MLP head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.BatchNorm1d(5 * 4 * 4)
        self.fc = nn.Linear(5 * 4 * 4, 7)
        self.out = nn.Linear(7, 3)

    def forward(self, x):
        x = torch.flatten(self.pool(torch.relu(self.conv(x))), 1)
        return self.out(F.relu(self.fc(self.norm(x))).flatten(1))


NETWORKS = {
    "mlp": (lambda: models.mlp(hidden=(16, 12)), (6, 64)),
    "mlp_batchnorm": (lambda: models.mlp(hidden=(10, 10), batchnorm=True), (6, 64)),
    "small_cnn": (lambda: models.small_cnn(), (6, 1, 8, 8)),
    "resnet20": (lambda: cifar_models.resnet20(), (3, 3, 32, 32)),
    "projection_resnet": (ProjectionResNet, (6, 1, 8, 8)),
    "flatten_cnn": (FlattenCNN, (6, 1, 8, 8)),
}


def _network(name: str, seed: int) -> tuple[nn.Module, torch.Tensor]:
    """The network in eval mode, every BatchNorm parameter and statistic random
    (so that permuting them wrongly would show), and an input batch."""
    factory, shape = NETWORKS[name]
    torch.manual_seed(seed)
    net = factory()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _BatchNorm):
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=generator))
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator))
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return net.eval(), torch.randn(shape, generator=generator)


def _split(net: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    layout = ParameterLayout.from_module(net)
    parameters = set(layout.names)
    return layout.flatten(net), {k: v.clone() for k, v in net.state_dict().items() if k not in parameters}


def _load(net: nn.Module, params: torch.Tensor, buffers: dict[str, torch.Tensor]) -> nn.Module:
    out = copy.deepcopy(net)
    ParameterLayout.from_module(out).load_into(out, params)
    out.load_state_dict({**out.state_dict(), **buffers})
    return out.eval()


@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_planted_permutation_is_matched_back_exactly(name):
    net, x = _network(name, seed=0)
    spec = permutation_spec(net)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    planted = copy.deepcopy(net)
    planted.load_state_dict(permute(spec, state, random_permutations(spec, torch.Generator().manual_seed(3))))
    reference, _ = _split(net)
    params, buffers = _split(planted)
    with torch.no_grad():
        assert torch.allclose(planted(x), net(x), atol=1e-5)  # the planted copy computes the same
    assert (params - reference).norm() > 1.0  # and is far away

    result = align(net, reference, params, buffers=buffers)

    assert result.distance_before > 1.0 and result.distance_after == 0.0
    assert torch.equal(result.params, reference)
    for key, value in _split(net)[1].items():
        assert torch.equal(result.buffers[key], value), key
    with torch.no_grad():
        assert torch.allclose(_load(net, result.params, result.buffers)(x), net(x), atol=1e-5)


def test_a_hand_planted_mlp_permutation_is_found():
    """Independently of the library's own permute: rows of the hidden layer and the
    matching columns of the next layer swapped by hand."""
    net, x = _network("mlp", seed=1)
    other = copy.deepcopy(net)
    first = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    second = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        other[0].weight.copy_(net[0].weight[first])
        other[0].bias.copy_(net[0].bias[first])
        other[2].weight.copy_(net[2].weight[second][:, first])
        other[2].bias.copy_(net[2].bias[second])
        other[4].weight.copy_(net[4].weight[:, second])
    reference, _ = _split(net)
    params, _ = _split(other)
    result = align(net, reference, params)
    assert torch.equal(result.params, reference)
    # new unit i is the other network's unit permutations[g][i]: the inverse of the planting
    assert torch.equal(first[result.permutations[0]], torch.arange(16))
    assert torch.equal(second[result.permutations[1]], torch.arange(12))


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "projection_resnet"])
def test_matching_two_different_networks_never_raises_their_distance(name):
    for seed in range(4):
        net, x = _network(name, seed=10 + seed)
        other, _ = _network(name, seed=20 + seed)
        reference, _ = _split(net)
        params, buffers = _split(other)
        result = align(net, reference, params, buffers=buffers, seed=seed)
        assert result.distance_after <= result.distance_before
        assert result.distance_after == pytest.approx((result.params - reference).double().norm().item(), rel=1e-6)
        with torch.no_grad():  # the aligned network computes what the other one did
            assert torch.allclose(_load(other, result.params, result.buffers)(x), other(x), atol=1e-5)


def test_different_minima_get_closer_on_the_digits():
    """Two MLPs trained from different seeds: alignment brings them closer."""
    from engine.networks.data import digits
    from engine.networks.training import RECIPES, train

    data = digits()
    trained = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = models.mlp(hidden=(24,))
        trained.append(train(net, data.train.inputs, data.train.targets,
                             recipe=RECIPES["digits"].scaled(0.1), seed=seed).parameters)
    result = align(models.mlp(hidden=(24,)), trained[0], trained[1])
    assert result.distance_after < 0.95 * result.distance_before


class WithLayerNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.norm(self.fc(x)))


class WithLooseParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.scale = nn.Parameter(torch.ones(8))
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.fc(x) * self.scale)


class WithSoftmaxOverChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(torch.cumsum(self.fc(x), dim=1))


@pytest.mark.parametrize(
    "net, named",
    [
        (WithLayerNorm(), "'norm' (LayerNorm)"),
        (WithLooseParameter(), "'scale'"),
        (WithSoftmaxOverChannels(), "cumsum"),
        (nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Flatten(), nn.LazyLinear(2)), "'0'"),
    ],
)
def test_a_network_it_cannot_analyse_is_refused_naming_the_layer(net, named):
    with pytest.raises(ValueError, match="cannot analyse") as error:
        permutation_spec(net)
    assert named in str(error.value)


def test_flat_vectors_of_the_wrong_size_are_refused():
    net = models.mlp(hidden=(8,))
    reference, _ = _split(net)
    with pytest.raises(ValueError, match="flat vector of"):
        align(net, reference, reference[:-1])
