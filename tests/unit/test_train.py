"""The small trainer used for demo minima."""

from __future__ import annotations

import torch

from engine.data import digits
from engine.energy.network import NetworkEnergy
from engine.models import mlp
from engine.train import train


def test_training_reaches_a_low_loss_and_is_reproducible():
    data = digits()
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = mlp()
        results.append(train(model, data.train.inputs, data.train.targets, steps=300, lr=0.1, seed=3))
    first, second = results
    assert torch.equal(first.parameters, second.parameters)
    assert first.losses[0] > 2.0 and first.losses[-1] < 0.5
    energy = NetworkEnergy(mlp(), data.test.inputs, data.test.targets)
    test_loss = energy.evaluate(first.parameters.unsqueeze(0)).item()
    assert test_loss < 0.5  # it generalises: a real minimum, not memorised noise
