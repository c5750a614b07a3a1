"""A Dataset streamed batch by batch gives the numbers of the same Dataset read into
memory, bit for bit: steps (with an augmentation drawing from the step's generator,
and the next step's rows read ahead), evaluation, metrics and BatchNorm recalibration;
and the rule that decides which of the two a Dataset gets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.energy.network import NetworkEnergy
from engine.networks.datasets import UserData, user_tensors
from engine.networks.layout import ParameterLayout
from engine.networks.stream import STREAM_FRACTION, Column, choose, estimated_bytes

FEATURES = 6


class Synthetic(torch.utils.data.Dataset):
    """Item i made from i alone: (features (FEATURES,), label in 0..2)."""

    def __init__(self, length: int, offset: int = 0):
        self.length, self.offset = length, offset

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        j = i + self.offset
        x = torch.sin(torch.arange(FEATURES, dtype=torch.float32) * 0.7 + j * 0.31)
        return x, (j * 7) % 3


def shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A training-only augmentation drawn from the step's generator."""
    return x + 0.01 * torch.randn(x.shape, generator=generator)


def data(placement: str):
    made = UserData(Synthetic(300), Synthetic(70, offset=1000), augment=shift, classes=3)
    return user_tensors(made, spec="tests:synthetic", placement=placement)


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))


def energy(loaded, strategy: str) -> NetworkEnergy:
    return NetworkEnergy(network(), *loaded.train, strategy=strategy, augment=loaded.augment, batch_size=32,
                         eval_batch_size=64, calibration_size=150, threads=1)


def test_the_rule_streams_what_is_larger_than_its_share_of_the_memory():
    dataset = Synthetic(1000)
    size = estimated_bytes(dataset)
    assert size == 1000 * (FEATURES * 4 + 8)  # float32 features and an int64 label per item
    assert choose("auto", dataset, budget=int(size / STREAM_FRACTION) - 1)
    assert not choose("auto", dataset, budget=int(size / STREAM_FRACTION) + 1)
    assert choose("stream", dataset, budget=10 ** 12) and not choose("memory", dataset, budget=1)
    with pytest.raises(ValueError, match="unknown data placement 'disk': use one of auto, memory, stream"):
        choose("disk", dataset)


def test_a_split_forced_to_stream_stands_in_for_its_tensors():
    streamed, in_memory = data("stream"), data("memory")
    inputs, targets = streamed.train
    assert isinstance(inputs, Column) and inputs.shape == in_memory.train[0].shape
    assert torch.equal(inputs[5:9], in_memory.train[0][5:9])
    assert torch.equal(targets[torch.tensor([4, 0, 299])], in_memory.train[1][torch.tensor([4, 0, 299])])
    assert targets[:3].dtype == in_memory.train[1].dtype == torch.int64


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_streamed_steps_and_evaluations_are_those_in_memory_bit_for_bit(strategy):
    streamed, in_memory = data("stream"), data("memory")
    energies = [energy(streamed, strategy), energy(in_memory, strategy)]
    assert energies[0].streamed is not None and energies[1].streamed is None
    start = ParameterLayout.from_module(network()).flatten(network()).detach()
    pivots = start + 0.1 * torch.randn(5, start.shape[0], generator=torch.Generator().manual_seed(1))  # (5, D)
    generators = [torch.Generator().manual_seed(3) for _ in energies]
    for step in range(4):
        # a step of another size (a band that grew) misses the rows read ahead: they are read again
        batch = 32 if step != 2 else 16
        (loss_a, grad_a), (loss_b, grad_b) = (e.interior_gradients(pivots, g, batch)
                                              for e, g in zip(energies, generators))
        assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)
        pivots = pivots.clone()
        pivots[1:-1] -= 0.05 * grad_a
    assert torch.equal(generators[0].get_state(), generators[1].get_state())  # the read ahead draws nothing
    assert torch.equal(energies[0].evaluate(pivots), energies[1].evaluate(pivots))
    streamed_metrics = energies[0].metrics(pivots, *streamed.test)
    memory_metrics = energies[1].metrics(pivots, *in_memory.test)
    assert all(torch.equal(a, b) for a, b in zip(streamed_metrics, memory_metrics))
    states = [e.network_state(pivots[2]) for e in energies]  # BatchNorm recalibrated on the same rows
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[1])


def test_a_streamed_training_set_needs_its_class_count():
    made = UserData(Synthetic(50), Synthetic(10))
    with pytest.raises(ValueError, match=r"data factory tests:synthetic: its training set is streamed .*: set "
                                         r"UserData.classes \(the class count\)"):
        user_tensors(made, spec="tests:synthetic", placement="stream")


def test_streamed_inputs_go_with_their_own_targets():
    streamed, in_memory = data("stream"), data("memory")
    with pytest.raises(ValueError, match="must be the inputs and targets of one streamed split, or two tensors"):
        NetworkEnergy(network(), streamed.train[0], in_memory.train[1], strategy="loop")


def test_a_streamed_run_stopped_and_resumed_takes_the_steps_of_one_that_ran_on():
    start = ParameterLayout.from_module(network()).flatten(network()).detach()
    pivots = start + 0.1 * torch.randn(4, start.shape[0], generator=torch.Generator().manual_seed(1))  # (4, D)
    through, generator = energy(data("stream"), "loop"), torch.Generator().manual_seed(5)
    steps = [through.interior_gradients(pivots, generator) for _ in range(4)]
    first, stopped = energy(data("stream"), "loop"), torch.Generator().manual_seed(5)
    for _ in range(2):
        first.interior_gradients(pivots, stopped)  # its last step read rows ahead, left unused
    resumed = energy(data("stream"), "loop")  # a new process: the saved generator state, nothing read ahead
    generator = torch.Generator().set_state(stopped.get_state())
    for loss, grad in steps[2:]:
        again = resumed.interior_gradients(pivots, generator)
        assert torch.equal(again[0], loss) and torch.equal(again[1], grad)
