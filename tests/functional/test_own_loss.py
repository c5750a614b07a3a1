"""A researcher's own loss on the command line (`--loss`): a tiny transformer language
model whose data are dict items (tokens, labels) and whose loss takes (model, batch),
trained, explored, shown and reported without error rates; `--loss mse` on a regression
factory; and the one-line refusals of a loss that cannot be used."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cli_runs import DIGITS_SCHEDULE, assert_one_clear_line, in_process

LANGUAGE = '''
import torch
import torch.nn.functional as F
from torch import nn

from engine.networks.datasets import UserData

VOCAB, LENGTH = 20, 8


class TinyLM(nn.Module):
    """Embedding, one causal transformer layer, a head over the vocabulary."""

    def __init__(self, width=16):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.Parameter(torch.zeros(LENGTH, width))
        layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, tokens):  # (B, L) -> (B, L, VOCAB)
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.shape[1])
        hidden = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.encoder(hidden, mask=mask, is_causal=True))


def model():
    return TinyLM()


def sequences(count, offset):
    """Counting sequences modulo VOCAB of varied start and stride, one token more than LENGTH."""
    start = (torch.arange(count) * 7 + offset) % VOCAB
    stride = 1 + torch.arange(count) % 3
    return (start[:, None] + stride[:, None] * torch.arange(LENGTH + 1)) % VOCAB


def data():
    def split(count, offset):
        seq = sequences(count, offset)
        return [{"tokens": seq[i, :-1], "labels": seq[i, 1:]} for i in range(count)]
    return UserData(split(64, 0), split(16, 3))


def next_token(model, batch):
    logits = model(batch["tokens"])
    return F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1))


def per_token(model, batch):  # not a mean: one loss per token
    logits = model(batch["tokens"])
    return F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1), reduction="none")
'''

REGRESSION = '''
import torch
from torch import nn

from engine.networks.datasets import UserData


def model():
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def data():
    x = torch.linspace(-1, 1, 60 * 3).reshape(60, 3)
    y = x.sum(dim=1).sin()
    return UserData((x[:48], y[:48]), (x[48:], y[48:]), classes=1)  # float targets: the outputs, not classes
'''

TRAIN = ("--count", "2", "--scale", "0.01", "--device", "cpu")


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """The folder the user types their commands in, holding their modules and a tiny schedule."""
    (tmp_path / "tinylm.py").write_text(textwrap.dedent(LANGUAGE))
    (tmp_path / "regression.py").write_text(textwrap.dedent(REGRESSION))
    (tmp_path / "tiny.toml").write_text(DIGITS_SCHEDULE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def explore(minima: Path, *args: str):
    return in_process("explore", str(minima), "--schedule", "tiny.toml", "--device", "cpu", "--scale", "0.1",
                      "--threads", "1", "--headless", *args)


LM = ("--model", "tinylm:model", "--data", "tinylm:data")


def test_a_transformer_language_model_with_its_own_loss_is_connected_and_reported(lab, nebtui_home):
    trained = in_process("train", *LM, "--loss", "tinylm:next_token", "--out", "minima", *TRAIN)
    assert trained.returncode == 0, trained.stderr
    assert "no error rate: the loss is tinylm:next_token" in trained.stdout
    sidecar = json.loads((lab / "minima" / "minimum-00.json").read_text())
    assert sidecar["loss"] == "tinylm:next_token" and sidecar["train"]["error"] is None
    # the sidecars' loss function is a name read from a file: it is asked for, never imported
    asked = explore(lab / "minima", *LM)
    assert_one_clear_line(asked, f"the sidecars in {lab / 'minima'} name the loss function tinylm:next_token, and "
                                 "nebtui runs no code named in a file: if you trust it, pass --loss tinylm:next_token")

    done = explore(lab / "minima", *LM, "--loss", "tinylm:next_token", "--session", "lm")  # auto: the loop
    assert done.returncode == 0, done.stderr
    assert "session finished (all pairs), 1 pair" in done.stdout
    assert "test error                                  no error rate: the loss is tinylm:next_token" in done.stdout
    config = json.loads((nebtui_home / "lm" / "config.json").read_text())
    assert config["problem"]["loss"] == "tinylm:next_token" and config["problem"]["import_dir"] == str(lab)

    shown = in_process("sessions", "show", "lm")
    assert shown.returncode == 0, shown.stderr
    assert "loss       tinylm:next_token (no error rate: the loss is tinylm:next_token)" in shown.stdout
    reported = in_process("report", "lm", "--format", "json", "--out", str(lab / "report"))
    assert reported.returncode == 0, reported.stderr
    document = json.loads((lab / "report" / "report.json").read_text())
    assert document["session"]["loss"] == "tinylm:next_token"
    assert document["session"]["no_error_rate"] == "no error rate: the loss is tinylm:next_token"
    assert document["table1"]["test_error_minima"] is None and document["table1"]["test_loss_minima"] > 0
    assert all(m["train"]["error"] is None and m["train"]["loss"] > 0 for m in document["minima"])

    # a config whose loss is not the one vouched for is refused, as a factory is
    config["problem"]["loss"] = "tinylm:per_token"
    (nebtui_home / "lm" / "config.json").write_text(json.dumps(config))
    refused = in_process("report", "lm", "--out", str(lab / "again"))
    assert_one_clear_line(refused, "session lm names the model factory tinylm:model, which was not given on this "
                                   "machine")
    assert in_process("sessions", "trust", "lm", "tinylm:per_token").returncode == 0
    # vouched for, the loss is imported and checked: one loss per token is no scalar
    imported = in_process("report", "lm", "--out", str(lab / "again"))
    assert_one_clear_line(imported, "loss tinylm:per_token returned (16,), not a scalar tensor")


def test_mse_on_a_regression_factory_reports_losses_only(lab, nebtui_home):
    trained = in_process("train", "--model", "regression:model", "--data", "regression:data", "--loss", "mse",
                         "--out", "minima", *TRAIN)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((lab / "minima" / "minimum-01.json").read_text())["loss"] == "mse"
    # the sidecars' mse is nebtui's own: explore takes it from them
    done = explore(lab / "minima", "--model", "regression:model", "--data", "regression:data", "--strategy", "vmap",
                   "--session", "fit")
    assert done.returncode == 0, done.stderr
    assert "no error rate: the loss is mse" in done.stdout
    assert json.loads((nebtui_home / "fit" / "config.json").read_text())["problem"]["loss"] == "mse"


def test_a_loss_that_cannot_be_used_is_one_line(lab, nebtui_home):
    def train(loss: str):
        return in_process("train", *LM, "--loss", loss, "--out", "out", *TRAIN)

    assert_one_clear_line(train("cross-entropy"), "unknown loss 'cross-entropy' (did you mean cross_entropy?): use "
                                                  "cross_entropy, bce, mse or package.module:function")
    assert_one_clear_line(train("tinylm:nowhere"), "tinylm has no function 'nowhere': check --loss tinylm:nowhere")
    assert_one_clear_line(train("tinylm:per_token"), "loss tinylm:per_token returned (16,), not a scalar tensor")
    assert_one_clear_line(train("cross_entropy"), "data tinylm:data gives dict items, which only a (model, batch) "
                                                  "loss can take")
    # the (model, batch) loss is checked where the session is built: the runner's refusal, in one line
    (lab / "minima").mkdir()
    trained = in_process("train", *LM, "--loss", "tinylm:next_token", "--out", "minima", "--count", "2",
                         "--scale", "0.001", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    refused = explore(lab / "minima", *LM, "--loss", "tinylm:next_token", "--strategy", "vmap")
    assert_one_clear_line(refused, "loss tinylm:next_token takes (model, batch), which runs under --strategy loop, "
                                   "not vmap: use --strategy loop or auto")
