"""A band's fixed ends are evaluated forward only (``NetworkEnergy.interior_gradients``),
and the interior's numbers are those of differentiating every pivot, bit for bit."""

import pytest
import torch

from engine.energy.base import interior_gradients
from engine.energy.network import NetworkEnergy
from engine.networks import data, models
from engine.networks.layout import ParameterLayout

NETWORKS = {
    # name: (factory, input shape per sample)
    "mlp": (lambda: models.mlp(64, (16,), 10), (64,)),
    "cnn_batchnorm": (lambda: models.small_cnn(width=4, batchnorm=True), (1, 8, 8)),
}


@pytest.fixture(scope="module")
def digits():
    split = data.digits().train
    return split.inputs[:120], split.targets[:120]  # (120, 64), (120,)


def band(net, count):
    """``count`` pivots (count, D) scattered about the network's parameters."""
    theta = ParameterLayout.from_module(net).flatten(net)
    noise = torch.randn(count, theta.numel(), generator=torch.Generator().manual_seed(3))
    return theta + 0.05 * noise


@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("count", [2, 3, 7])
def test_the_interior_and_the_ends_losses_are_bit_for_bit_those_of_all_gradients(digits, name, strategy, count):
    make, shape = NETWORKS[name]
    torch.manual_seed(0)
    net = make()
    x, y = digits
    pivots = band(net, count)
    energy = NetworkEnergy(net, x.view(-1, *shape), y, batch_size=16, strategy=strategy, chunk_size=3)
    old_losses, old_grads = energy(pivots, torch.Generator().manual_seed(7))  # every pivot differentiated
    before = energy.work.copy()
    losses, grads = interior_gradients(energy, pivots, torch.Generator().manual_seed(7))
    assert torch.equal(losses, old_losses)
    assert grads.shape == (count - 2, pivots.shape[1]) and torch.equal(grads, old_grads[1:-1])
    spent = energy.work.since(before)
    apart = strategy == "loop"  # the batched strategies keep every pivot in their pass
    assert energy.ends_apart(strategy) == apart
    differentiated = count - 2 if apart else count
    assert (spent.step_forward, spent.step_backward) == (count * 16, differentiated * 16)


def test_a_generator_left_where_all_gradients_leave_it(digits):
    """The same draws are made: the steps after a forward-only one are the same as well."""
    make, shape = NETWORKS["mlp"]
    torch.manual_seed(0)
    net = make()
    x, y = digits
    energy = NetworkEnergy(net, x.view(-1, *shape), y, batch_size=16, strategy="vmap")
    pivots = band(net, 5)
    old, new = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    energy(pivots, old)
    interior_gradients(energy, pivots, new)
    assert torch.equal(old.get_state(), new.get_state())


def test_an_energy_without_its_own_interior_gradients_is_asked_for_all_and_its_ends_dropped():
    from engine.energy.base import CallableEnergy

    energy = CallableEnergy(lambda p: (p**2).sum(dim=1), dim=2)
    pivots = torch.tensor([[0.0, 1.0], [1.0, 2.0], [3.0, 0.0]])
    losses, grads = interior_gradients(energy, pivots)
    assert losses.tolist() == [1.0, 5.0, 9.0] and grads.tolist() == [[2.0, 4.0]]
    assert (energy.work.step_forward, energy.work.step_backward) == (3, 3)  # points, all differentiated
