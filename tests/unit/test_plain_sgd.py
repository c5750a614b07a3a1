"""The band's written-out SGD against torch.optim.SGD, and what it spares a fresh worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.paths.autoneb import PlainSGD, _make_optimiser
from engine.paths.schedule import Cycle

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args", [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.5, "dampening": 0.3, "weight_decay": 1e-3},
    {"momentum": 0.9, "maximize": True},
])
def test_plain_sgd_steps_as_torch_sgd_bit_for_bit(args):
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(6, 40, generator=generator)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    plain, reference = PlainSGD(ours, lr=0.05, **args), torch.optim.SGD([theirs], lr=0.05, **args)
    for _ in range(25):
        grad = torch.randn(6, 40, generator=generator)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        plain.step()
        reference.step()
    assert torch.equal(ours, theirs)
    # saved states list the same group and the same per-parameter state
    strip = lambda group: {k: v for k, v in group.items() if k != "params"}  # noqa: E731
    assert strip(plain.param_groups[0]) == strip(reference.param_groups[0])
    assert list(strip(plain.param_groups[0])) == list(strip(reference.param_groups[0]))
    mine, torchs = plain.state.get(ours, {}), reference.state[theirs]
    assert mine.keys() == {k for k, v in torchs.items() if v is not None}
    assert all(torch.equal(mine[k], torchs[k]) for k in mine)


def test_other_optimisers_are_torchs_own():
    interior = torch.nn.Parameter(torch.zeros(3, 4))
    assert isinstance(_make_optimiser(Cycle(steps=1, lr=0.1, optimiser_args={"momentum": 0.9}), interior), PlainSGD)
    adam = _make_optimiser(Cycle(steps=1, lr=0.1, optimiser="Adam", optimiser_args={}), interior)
    assert isinstance(adam, torch.optim.Adam)


def test_a_surface_connection_leaves_torch_dynamo_unimported():
    """Building the first torch.optim optimiser imports torch._dynamo (seconds in a fresh
    worker); a pair under the presets' SGD never does."""
    code = (
        "import sys\n"
        "from engine.energy.surfaces import MuellerBrown\n"
        "from engine.paths.autoneb import connect\n"
        "from engine.paths.schedule import load_schedule\n"
        "mb = MuellerBrown(); a, b = mb.minimum_positions()[:2]\n"
        "schedule = load_schedule('surface')\n"
        "result = connect(mb, a, b, schedule)\n"
        "print(result.saddle_energy, 'torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    saddle, imported = done.stdout.split()
    assert float(saddle) < 0 and imported == "False"
