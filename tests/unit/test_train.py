"""The small trainer used for demo minima."""

from __future__ import annotations

import pytest
import torch

from engine.networks.data import digits
from engine.energy.network import NetworkEnergy
from engine.networks.models import mlp
from engine.networks.training import RECIPES, Recipe, default_recipe, train


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


def test_a_run_resumed_from_any_checkpoint_ends_bit_for_bit_where_an_uninterrupted_one_does():
    """BN buffers, momentum, the epoch order, the augmentation's generator and the
    lr schedule all carry over; the state survives safetensors and JSON."""
    import json

    from safetensors.torch import load, save

    from engine.networks.models import small_cnn

    data = digits()
    x, y = data.train.inputs.view(-1, 1, 8, 8), data.train.targets
    recipe = Recipe(name="t", steps=40, batch_size=500, lr=0.05, milestones=(0.5,), weight_decay=1e-4)

    def flip(batch, generator):  # an augmentation that draws from the run's generator
        mask = torch.rand(batch.shape[0], generator=generator) < 0.5
        return torch.where(mask.view(-1, 1, 1, 1).to(batch.device), batch.flip(-1), batch)

    def fresh():
        torch.manual_seed(5)
        return small_cnn(width=4, batchnorm=True)

    saved: dict[int, tuple[bytes, str]] = {}

    def keep(state):
        saved[state["meta"]["step"]] = (save(state["tensors"]), json.dumps(state["meta"]))

    whole = train(fresh(), x, y, recipe=recipe, seed=2, augment=flip, checkpoint=keep,
                  checkpoint_due=lambda done: done % 7 == 0)
    assert sorted(saved) == [7, 14, 21, 28, 35]  # 3 epochs of 3 batches: epoch boundaries fall in between
    for step in (14, 21, 35):
        tensors, meta = saved[step]
        resumed = train(fresh(), x, y, recipe=recipe, seed=2, augment=flip,
                        resume={"tensors": load(tensors), "meta": json.loads(meta)})
        assert torch.equal(resumed.parameters, whole.parameters)
        assert resumed.losses == whole.losses
    cut_short = train(fresh(), x, y, recipe=recipe, seed=2, augment=flip)
    assert torch.equal(cut_short.parameters, whole.parameters)  # checkpointing changes nothing


def test_a_stopped_run_checkpoints_where_it_stopped_and_resumes_to_the_same_minimum():
    data = digits()
    recipe = RECIPES["digits"].scaled(0.05)  # 75 steps

    def fresh():
        torch.manual_seed(1)
        return mlp()

    whole = train(fresh(), data.train.inputs, data.train.targets, recipe=recipe, seed=4)
    states, asked = [], []

    def stop():
        asked.append(1)
        return len(asked) == 30

    stopped = train(fresh(), data.train.inputs, data.train.targets, recipe=recipe, seed=4, stop=stop,
                    checkpoint=states.append, checkpoint_due=lambda done: False)
    assert not stopped.finished and len(stopped.losses) == 30
    assert [s["meta"]["step"] for s in states] == [30]  # the stop's own checkpoint, none other was due
    resumed = train(fresh(), data.train.inputs, data.train.targets, recipe=recipe, seed=4, resume=states[0])
    assert resumed.finished and torch.equal(resumed.parameters, whole.parameters)


def test_digits_are_scikit_learns_digits_without_importing_it():
    import subprocess
    import sys

    import numpy as np
    from sklearn.datasets import load_digits

    from engine.networks.data import _digits_table

    pixels, targets = _digits_table()
    bunch = load_digits()
    assert np.array_equal(pixels, bunch.data) and np.array_equal(targets, bunch.target)
    code = "import sys; from engine.networks.data import digits; digits(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
