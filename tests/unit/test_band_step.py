"""The fused band arithmetic of a NEB step against the formulas written out one by one,
the divergence check that reads the losses back only every few steps, and a band
that lives on a device for a whole run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.energy.base import CallableEnergy
from engine.energy.network import NetworkEnergy
from engine.networks.layout import ParameterLayout
from engine.energy.surfaces import MuellerBrown
from engine.paths.autoneb import Connection, DivergedError
from engine.band.geometry import Segments, equal_fraction_table, respace, respaced_interior
from engine.band.forces import descent_directions
from engine.paths.schedule import TANGENT_NAMES, BandOptions, Cycle, Schedule
from engine.band.tangent import TANGENTS
from engine.networks import models

MB = MuellerBrown()
MINIMA = MB.minimum_positions()
DATA = Path(__file__).parent / "data"


def random_band(count: int, dim: int, seed: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pivots along a bent path (N, D), their losses (N,) with some ties, gradients (N, D)."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.rand(count - 1, dim, generator=g, dtype=dtype) + 0.1
    pivots = torch.cat([torch.zeros(1, dim, dtype=dtype), steps.cumsum(0)])
    losses = torch.randint(0, 4, (count,), generator=g).to(dtype)  # ties on purpose
    grads = torch.randn(count, dim, generator=g, dtype=dtype)
    return pivots, losses, grads


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def respaced_part_by_part(pivots: torch.Tensor, fractions: torch.Tensor | None, climber: int | None) -> torch.Tensor:
    """The re-spacing written out: each side of the climbing image by ``respace``."""
    band = pivots.clone()
    if climber is None:
        band[1:-1] = respace(pivots, fractions)[1:-1]
        return band
    for part in (slice(0, climber + 1), slice(climber, band.shape[0])):
        sub = band[part]
        if sub.shape[0] < 3:
            continue
        target = None
        if fractions is not None:
            f = fractions[part]
            target = (f - f[0]) / (f[-1] - f[0])
        sub[1:-1] = respace(sub, target)[1:-1]
    return band


@pytest.mark.parametrize("on_host", [False, True], ids=["tensors", "host"])
@pytest.mark.parametrize("count", [3, 5, 9])
@pytest.mark.parametrize("spacing", ["equal", "fractions"])
def test_respacing_the_whole_band_at_once_equals_each_part_on_its_own(count, spacing, on_host):
    for seed in range(3):
        pivots, _, _ = random_band(count, 40, seed)
        fractions = None
        if spacing == "fractions":
            inner = torch.rand(count - 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).sort().values
            fractions = torch.cat([torch.zeros(1, dtype=torch.float64), inner, torch.ones(1, dtype=torch.float64)])
        table = equal_fraction_table(count)
        for climber in [None, *range(1, count - 1)]:
            split = None if climber is None else torch.tensor(climber)
            moved = respaced_interior(pivots, Segments(pivots), fractions, table, split, on_host)
            expected = respaced_part_by_part(pivots, fractions, climber)[1:-1]
            assert torch.equal(moved, expected), (seed, climber)
            band = pivots.clone()  # written into the band's own interior rows, as a step does
            respaced_interior(band, Segments(band), fractions, table, split, on_host, out=band[1:-1])
            assert torch.equal(band[1:-1], expected) and torch.equal(band[[0, -1]], pivots[[0, -1]])
            if climber is None:  # the split at the first or the last pivot is the same band
                for edge in (0, count - 1):
                    whole = respaced_interior(pivots, Segments(pivots), fractions, table, torch.tensor(edge), on_host)
                    assert torch.equal(whole, expected)


@pytest.mark.parametrize("name", TANGENT_NAMES)
def test_tangents_from_the_shared_segments_are_the_band_s_own(name):
    for seed in range(3):
        pivots, losses, _ = random_band(7, 30, seed)
        assert torch.equal(TANGENTS[name](pivots, losses, Segments(pivots)), TANGENTS[name](pivots, losses))


def test_paper_tangent_is_the_unit_segment_towards_the_higher_neighbour():
    pivots, losses, _ = random_band(8, 30, 0)
    forward, backward = unit(pivots[2:] - pivots[1:-1]), unit(pivots[1:-1] - pivots[:-2])
    expected = torch.where((losses[2:] > losses[:-2]).unsqueeze(1), forward, backward)
    assert torch.equal(TANGENTS["paper"](pivots, losses, Segments(pivots)), expected)


@pytest.mark.parametrize("spring", [math.inf, 5.0])
@pytest.mark.parametrize("climber", [None, 1, 3, 6])
def test_descent_directions_are_the_negative_neb_forces(spring, climber):
    pivots, losses, grads = random_band(8, 50, 1)
    segments = Segments(pivots)
    tangents = TANGENTS["improved"](pivots, losses, segments)
    g = grads[1:-1]
    dots = (g * tangents).sum(dim=1, keepdim=True)
    forces = -(g - dots * tangents)  # F^L
    if math.isfinite(spring):
        forward = (pivots[2:] - pivots[1:-1]).norm(dim=1)
        backward = (pivots[1:-1] - pivots[:-2]).norm(dim=1)
        forces = forces + (spring * (forward - backward)).unsqueeze(1) * tangents  # F^S
    if climber is not None:
        i = climber - 1
        forces[i] = -g[i] + 2.0 * torch.dot(g[i], tangents[i]) * tangents[i]
    directions = descent_directions(
        g, tangents, spring, segments.lengths, None if climber is None else torch.tensor(climber)
    )
    others = [i for i in range(6) if climber is None or i != climber - 1]
    assert torch.equal(directions[others], -forces[others])  # bit for bit off the climbing image
    torch.testing.assert_close(directions, -forces)  # float32 rounding on it


class DivergingEnergy(CallableEnergy):
    """Mueller-Brown until the given call, NaN from then on."""

    def __init__(self, diverge_at: int):
        super().__init__(MB.potential, dim=2)
        self.diverge_at, self.calls = diverge_at, 0

    def __call__(self, pivots, generator=None, batch_size=None):
        self.calls += 1
        losses, grads = MB(pivots)
        if self.calls >= self.diverge_at:
            losses = losses + math.nan
        return losses, grads


def test_a_diverging_band_is_stopped_and_named_at_the_step_it_diverged():
    """Stopped within the cycle, though the cycle's only energy event is at its end: the
    losses are read back every few steps, not only at events and cycle ends."""
    steps = 200
    energy = DivergingEnergy(diverge_at=13)
    schedule = Schedule(cycles=(Cycle(steps=steps, lr=1e-4),), band=BandOptions(energy_every=steps))
    with pytest.raises(DivergedError) as raised:
        Connection(energy, schedule, MINIMA[0], MINIMA[1]).run()
    assert str(raised.value) == (
        "the band diverged (loss nan) in cycle 1, step 13 of pair (0, 1): lower the learning rate (it is 0.0001)"
    )
    assert energy.calls < steps  # the band went no further once its losses were read back


def test_a_stop_reads_the_losses_back_so_a_diverged_band_is_never_saved():
    energy = DivergingEnergy(diverge_at=3)
    connection = Connection(energy, Schedule(cycles=(Cycle(steps=100, lr=1e-4),)), MINIMA[0], MINIMA[1])
    calls = []
    with pytest.raises(DivergedError, match="step 3 "):
        connection.run(lambda: calls.append(1) is None and len(calls) > 4)


def test_a_state_saved_before_the_fused_step_resumes_and_finishes_as_a_run_that_never_stopped():
    """The state in tests/unit/data was saved mid-cycle by the step before it was fused, on
    another CPU. Mueller-Brown's exp rounds differently on other CPUs' vector units, so
    its numbers are this machine's to float64 rounding only: they are checked to that,
    then the file's own layout and meta, holding this machine's numbers, resume bit for
    bit as the run that never stopped."""

    class NoisyEnergy(CallableEnergy):
        def __init__(self):
            super().__init__(MB.potential, dim=2)

        def __call__(self, pivots, generator=None, batch_size=None):
            losses, grads = super().__call__(pivots)
            return losses, grads + torch.randn(pivots.shape, generator=generator, dtype=pivots.dtype)

    schedule = Schedule(
        cycles=(
            Cycle(steps=30, lr=3e-4, optimiser_args={"momentum": 0.9}),
            Cycle(steps=30, lr=1e-4, optimiser_args={"momentum": 0.9}),
        ),
        band=BandOptions(max_pivots=8, insertion_threshold=0.05, reset_optimiser=False, spacing="fractions"),
    )
    folder = DATA / "connection_state_2026_11"
    saved = load_file(folder / "tensors.safetensors")
    here = Connection(NoisyEnergy(), schedule, MINIMA[0], MINIMA[2], seed=5)
    assert here.run(lambda: (here.cycle, here.step) == (1, 15)) is None
    ours = here.state_dict()["tensors"]
    assert saved.keys() == ours.keys()
    for name, tensor in saved.items():
        if tensor.is_floating_point():  # the momentum buffer sums gradients of size ~1e3
            torch.testing.assert_close(ours[name], tensor, rtol=1e-13, atol=1e-11 * tensor.abs().max().item())
        else:
            assert torch.equal(ours[name], tensor), name
    state = {"tensors": ours, "meta": json.loads((folder / "meta.json").read_text())}
    resumed = Connection.from_state(NoisyEnergy(), schedule, state)
    assert (resumed.cycle, resumed.step) == (1, 15)
    finished = resumed.run()
    straight = Connection(NoisyEnergy(), schedule, MINIMA[0], MINIMA[2], seed=5).run()
    assert finished is not None and straight is not None
    assert torch.equal(finished.pivots, straight.pivots)


def _accelerator() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return None


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            _accelerator() or "accelerator",
            marks=pytest.mark.skipif(_accelerator() is None, reason="needs a CUDA or MPS device"),
        ),
    ],
)
def test_a_band_lives_on_its_device_for_a_whole_run_and_resumes_there(device):
    torch.manual_seed(0)
    a, b = models.mlp(8, (6,), 3), models.mlp(8, (6,), 3)
    layout = ParameterLayout.from_module(a)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))
    energy = NetworkEnergy(a, x, y, batch_size=16, strategy="batched", device=device)
    schedule = Schedule(
        cycles=(Cycle(steps=12, lr=0.05, optimiser_args={"momentum": 0.9}), Cycle(steps=12, lr=0.05, climb=True)),
        band=BandOptions(initial_pivots=3, max_pivots=6, insertion_threshold=0.05, restarts=2, restart_noise=0.1),
    )
    start, end = layout.flatten(a), layout.flatten(b)  # on the CPU, as a runner hands them over
    connection = Connection(energy, schedule, start, end, seed=3)
    calls = []
    assert connection.run(lambda: calls.append(1) is None and len(calls) > 30) is None  # the second restart
    kind = torch.device(device).type
    assert connection.pivots.device.type == kind and connection.generator.device.type == kind
    momentum = connection.optimiser.state[connection.interior]["momentum_buffer"]
    assert momentum.device.type == kind
    state = connection.state_dict()
    assert all(t.device.type == "cpu" for t in state["tensors"].values())
    resumed = Connection.from_state(energy, schedule, state).run()
    straight = Connection(energy, schedule, start, end, seed=3).run()
    assert resumed is not None and straight is not None
    assert resumed.pivots.device.type == "cpu"
    assert torch.equal(resumed.pivots, straight.pivots)
