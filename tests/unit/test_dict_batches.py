"""Batches that are dicts of tensors (tokens, labels) and a (model, batch) loss: the
energy's minibatches, its full-set evaluation and its BatchNorm recalibration take the
same rows from every tensor of the dict, against a float64 reference built by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.energy.network import NetworkEnergy
from engine.networks.datasets import Rows
from engine.networks.layout import ParameterLayout
from engine.networks.loss import takes_model

VOCAB, LENGTH, WIDTH = 11, 6, 8


class Bigram(nn.Module):
    """Each token's embedding, batch-normalised over the width, to logits of the next token."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.norm = nn.BatchNorm1d(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens):  # (B, L) -> (B, L, VOCAB)
        return self.head(self.norm(self.embed(tokens).transpose(1, 2)).transpose(1, 2))


def next_token(model, batch):
    logits = model(batch["tokens"])  # (B, L, VOCAB)
    return F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1))


def sequences(count: int) -> Rows:
    """Counting sequences of varied start and stride: the labels are the tokens shifted by one."""
    start = (torch.arange(count) * 5) % VOCAB
    stride = 1 + torch.arange(count) % 3
    tokens = (start[:, None] + stride[:, None] * torch.arange(LENGTH + 1)) % VOCAB  # (N, L + 1)
    return Rows({"tokens": tokens[:, :-1], "labels": tokens[:, 1:]})


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = Bigram()
    rows = sequences(40)
    placeholder = torch.zeros(40, dtype=torch.long)
    energy = NetworkEnergy(model, rows, placeholder, next_token, batch_size=8, strategy="auto", threads=1)
    layout = ParameterLayout.from_module(model)
    base = layout.flatten(model).detach()
    pivots = torch.stack([base + 0.05 * torch.randn(generator=torch.Generator().manual_seed(i), size=base.shape)
                          for i in range(3)])  # (3, D)
    return model, rows, placeholder, energy, layout, pivots


def reference_loss(model: nn.Module, layout: ParameterLayout, theta: torch.Tensor, batch: dict) -> torch.Tensor:
    """The loss in float64 of ``model`` at ``theta`` on ``batch``, BatchNorm on the batch's statistics."""
    network = copy.deepcopy(model).double().train()
    logits = torch.func.functional_call(network, layout.unflatten(theta), (batch["tokens"],))
    return F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1))


def test_a_model_batch_loss_is_told_by_its_parameter_names():
    assert takes_model(next_token)
    assert not takes_model(lambda outputs, targets: outputs.sum())
    assert not takes_model("cross_entropy")


def test_each_pivot_minibatch_takes_the_same_rows_from_every_tensor(problem):
    model, rows, _, energy, layout, pivots = problem
    assert energy.contenders and {s for s, _ in energy.contenders} == {"loop"}  # auto chooses the loop
    losses, grads = energy(pivots, torch.Generator().manual_seed(7))  # (3,), (3, D)
    index = energy.batch_indices(3, 8, torch.Generator().manual_seed(7))  # (3, 8): the same draw
    # float32 against float64: a loss over 48 tokens of sums of at most WIDTH + VOCAB terms, each term's
    # rounding at most float32's epsilon relative to the values involved (all of order 1 here)
    bound = 256 * torch.finfo(torch.float32).eps
    for i in range(3):
        batch = {name: value[index[i]] for name, value in rows.items()}
        theta = pivots[i].double().requires_grad_(True)
        expected = reference_loss(model, layout, theta, batch)
        (gradient,) = torch.autograd.grad(expected, theta)
        expected = expected.detach()
        assert abs(float(losses[i]) - float(expected)) <= bound * max(1.0, abs(float(expected)))
        assert torch.allclose(grads[i].double(), gradient, rtol=0, atol=bound * max(1.0, float(gradient.abs().max())))


def test_the_whole_set_is_evaluated_with_batchnorm_recalibrated_on_every_tensor_alike(problem):
    model, rows, placeholder, energy, layout, pivots = problem
    losses, errors = energy.metrics(pivots[:1], rows, placeholder)
    # the reference: BatchNorm's statistics of this point over all 40 training rows, then eval mode
    network = copy.deepcopy(model).double()
    layout.load_into(network, pivots[0].double())
    network.norm.reset_running_stats()
    network.norm.momentum = None
    network.train()
    with torch.no_grad():
        network(rows["tokens"])
        network.eval()
        expected = next_token(network, dict(rows))
    assert abs(float(losses[0]) - float(expected)) <= 256 * torch.finfo(torch.float32).eps * max(1.0, float(expected))
    assert torch.isnan(errors).all()  # a loss of the user's has no error rate


def test_vmap_and_batched_are_refused_in_one_line(problem):
    model, rows, placeholder, *_ = problem
    for strategy in ("vmap", "batched"):
        with pytest.raises(ValueError, match=f"a \\(model, batch\\) loss runs under the loop strategy, not '{strategy}'"):
            NetworkEnergy(model, rows, placeholder, next_token, strategy=strategy)


def test_rows_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="tensors with one row per sample"):
        Rows({"tokens": torch.zeros(4, 3), "labels": torch.zeros(5, 3)})
