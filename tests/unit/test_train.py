"""The small trainer used for demo minima."""

from __future__ import annotations

import pytest
import torch

from engine.data import digits
from engine.energy.network import NetworkEnergy
from engine.models import mlp
from engine.train import RECIPES, Recipe, default_recipe, train


def test_training_reaches_a_low_loss_and_is_reproducible():
    data = digits()
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = mlp()
        results.append(train(model, data.train.inputs, data.train.targets, recipe=RECIPES['digits'].scaled(0.2), seed=3))
    first, second = results
    assert torch.equal(first.parameters, second.parameters)
    assert first.losses[0] > 2.0 and first.losses[-1] < 0.5
    energy = NetworkEnergy(mlp(), data.test.inputs, data.test.targets)
    test_loss = energy.evaluate(first.parameters.unsqueeze(0)).item()
    assert test_loss < 0.5  # it generalises: a real minimum, not memorised noise


def test_recipes_follow_the_papers():
    he = RECIPES["he2016"]
    assert (he.steps, he.batch_size, he.lr, he.weight_decay, he.momentum) == (64_000, 128, 0.1, 1e-4, 0.9)
    assert [he.lr_at(s) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    huang = RECIPES["huang2017"]
    assert huang.nesterov and huang.batch_size == 64 and huang.steps == 300 * 782
    assert huang.lr_at(huang.steps // 2) == pytest.approx(0.01)
    assert default_recipe("resnet56") is he and default_recipe("densenet40_12") is huang
    assert he.scaled(0.001).steps == 64


def test_bad_recipe_fields_are_named():
    with pytest.raises(ValueError, match="recipe x: steps must be a positive integer, got 0; lr must be a positive"):
        Recipe("x", steps=0, batch_size=1, lr=-1.0)
