"""What a session will cost before it runs: a few timed steps of the real problem,
then the schedule's arithmetic.

``time_steps`` times the energy as a run uses it: gradient steps on a band of
points between two minima (at two sizes, so that a step's cost is known at any
number of points) and the evaluation of one point on the evaluation set
(BatchNorm recalibrated, as every dense evaluation does). Its first calls
warm the energy up: caches, and the auto strategy's trial (the energy ends it
having chosen, as a worker's energy does in its first steps).

``pair_seconds`` adds up one connection from those times: for AutoNEB the
linear segment's profile, then per restart and cycle its steps at the band's
size and the dense evaluation that ends it; for a curve its steps at its points
per step and its evaluations. The band's size after insertions is not known in
advance, so a pair's cost is a range: no pivot inserted after the first fill
(low), GROWTH pivots per inserting cycle (high, within ``max_insert`` and
``max_pivots``: the authors' code inserts at most 2 a cycle; the paper's
threshold rule inserted 2 over a whole pair of the digits demo's MLPs, and 11
over a pair of small CNNs on digit images, 2 a cycle at first). ``pairs_left`` counts the pairs a stop rule computes, also a range
where the rule depends on the saddles found. ``estimate`` puts them together
for a number of workers running pairs side by side.

Not counted: starting processes, loading data, checkpoints, and the band's own
arithmetic beside the energy (small against a network's forward and backward
passes; on the 2-D surfaces it is most of a step, and their estimate is low).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from engine.paths.curve_schedule import CurveSchedule
from engine.landscape.graph import LandscapeOptions
from engine.paths.schedule import Schedule

GROWTH = 2  # pivots a band gains per inserting cycle at most, as the estimate's high end assumes
TIMED_CALLS = 2  # timed calls per band size, after the warm-up; the fastest counts
QUICK_SECONDS = 1.0  # an evaluation faster than this is timed again, warm


@dataclass(frozen=True)
class StepTimes:
    """Seconds of the energy's work on one device, measured: a gradient step on a
    band of ``sizes[0]`` and of ``sizes[1]`` points (each at ``batch_size`` samples
    per point, None: the energy's own), and one point's evaluation."""

    sizes: tuple[int, int]
    step: tuple[float, float]
    point: float
    batch_size: int | None = None

    def step_seconds(self, points: int, batch_size: int | None = None) -> float:
        """A gradient step on ``points`` points: the line through the two measured
        sizes, never falling with more points (two close sizes on a busy machine may
        time the larger one faster) nor below zero, scaled by the batch size where it
        differs."""
        (n0, n1), (t0, t1) = self.sizes, self.step
        slope = max(0.0, (t1 - t0) / (n1 - n0)) if n1 != n0 else t0 / max(n0, 1)
        seconds = max(0.0, t0 + slope * (points - n0))
        if batch_size is not None and self.batch_size is not None and batch_size != self.batch_size:
            seconds *= batch_size / self.batch_size
        return seconds


def band_sizes(schedule: Schedule | CurveSchedule) -> tuple[int, int]:
    """The two band sizes to time: the run's first size, and the larger one it may reach."""
    if isinstance(schedule, CurveSchedule):
        return schedule.points, 2 * schedule.points
    first = schedule.band.initial_pivots + 2
    return first, max(first + 1, min(_grown_size(schedule), 2 * first))


def first_batch_size(schedule: Schedule | CurveSchedule) -> int | None:
    if isinstance(schedule, CurveSchedule):
        return schedule.batch_size
    return schedule.cycles[0].batch_size


def time_steps(energy: Any, start: Any, end: Any, schedule: Schedule | CurveSchedule) -> StepTimes:
    """Time ``energy``'s gradient step on bands between ``start`` and ``end`` (D,) at
    ``band_sizes(schedule)`` and its evaluation of one point (see the module's text).
    The energy's numbers elsewhere do not change: its steps draw from a generator of
    their own here."""
    import torch

    from engine.band.geometry import linear_path

    batch_size = first_batch_size(schedule)
    generator = torch.Generator().manual_seed(0)
    small, large = band_sizes(schedule)

    def step(points: Any) -> float:
        began = time.perf_counter()
        losses, _grads = energy(points, generator=generator, batch_size=batch_size)
        float(losses.sum())  # waits for a GPU to finish
        return time.perf_counter() - began

    bands = {n: linear_path(start, end, n) for n in (small, large)}
    warm_up = 1 + (getattr(energy, "trial_length", 0) if getattr(energy, "strategy_used", "") is None else 0)
    for _ in range(warm_up):
        step(bands[small])
    seconds = tuple(min(step(bands[n]) for _ in range(TIMED_CALLS)) for n in (small, large))

    middle = bands[small][small // 2 : small // 2 + 1]  # (1, D)

    def evaluate() -> float:
        began = time.perf_counter()
        float(energy.evaluate(middle).sum())
        return time.perf_counter() - began

    point = evaluate()
    if point < QUICK_SECONDS:  # the first call paid for warming up
        point = min(evaluate(), evaluate())
    return StepTimes((small, large), seconds, point, batch_size)  # type: ignore[arg-type]


def _grown(size: int, cycle: Any, band: Any) -> int:
    """The band's size after ``cycle`` inserts at the estimate's high rate."""
    if not cycle.insert:
        return size
    added = GROWTH if cycle.max_insert is None else min(GROWTH, cycle.max_insert)
    return min(size + added, band.max_pivots)


def _grown_size(schedule: Schedule) -> int:
    """The band's size (ends included) after its last cycle at the estimate's high rate."""
    size = schedule.band.initial_pivots + 2
    for cycle in schedule.cycles[1:]:
        size = _grown(size, cycle, schedule.band)
    return size


def _band_seconds(schedule: Schedule, times: StepTimes, grow: bool) -> float:
    """One AutoNEB connection: the linear segment's profile, then every restart's cycles."""
    band = schedule.band
    dense = band.dense_points
    seconds = ((band.initial_pivots + 1) * (dense + 1) + 1) * times.point
    for _ in range(band.restarts):
        size = band.initial_pivots + 2
        for index, cycle in enumerate(schedule.cycles):
            if grow and index > 0:
                size = _grown(size, cycle, band)
            seconds += cycle.steps * times.step_seconds(size, cycle.batch_size)
            seconds += ((size - 1) * (dense + 1) + 1) * times.point
    return seconds


def pair_seconds(schedule: Schedule | CurveSchedule, times: StepTimes) -> tuple[float, float]:
    """(low, high) seconds of one pair's run (see the module's text)."""
    if isinstance(schedule, CurveSchedule):
        evaluations = (1 + schedule.cycles) * schedule.eval_points
        seconds = schedule.steps * times.step_seconds(schedule.points, schedule.batch_size)
        seconds += evaluations * times.point
        return seconds, seconds
    return _band_seconds(schedule, times, grow=False), _band_seconds(schedule, times, grow=True)


def pairs_left(minima: int, landscape: LandscapeOptions, done: int = 0) -> tuple[int, int]:
    """(fewest, most) pairs a landscape of ``minima`` with these options still computes, ``done`` pairs computed: every rule completes the first
    spanning tree (N - 1 pairs); star stops there; all-pairs computes every pair,
    max-pairs=M stops at M; tolerance stops anywhere in between."""
    tree, every = max(0, minima - 1), minima * (minima - 1) // 2
    cap = landscape.max_pairs
    most = every if cap is None else max(tree, min(cap, every))
    if landscape.variant == "star":
        fewest = most = tree
    elif landscape.stop == "tolerance":
        fewest = tree
    else:
        fewest = most
    return max(0, fewest - done), max(0, most - done)


@dataclass(frozen=True)
class Estimate:
    """A session's time left, in seconds, as a range."""

    pair: tuple[float, float]  # one pair's run
    pairs: tuple[int, int]  # pairs left
    workers: int
    seconds: tuple[float, float]  # the whole session's rest


def estimate(pair: tuple[float, float], pairs: tuple[int, int], workers: int) -> Estimate:
    """The rest of a session: ``pairs`` left of ``pair`` seconds each, ``workers`` of them
    at a time (each a pair; the last round may leave workers idle)."""
    workers = max(1, workers)
    rounds = [math.ceil(count / workers) for count in pairs]
    return Estimate(pair, pairs, workers, (rounds[0] * pair[0], rounds[1] * pair[1]))


def cycle_steps(schedule: Schedule | CurveSchedule) -> list[int]:
    """Steps of each cycle of one restart: AutoNEB's cycles, or a curve's stretches
    between its evaluations."""
    if isinstance(schedule, CurveSchedule):
        ends = schedule.cycle_ends()
        return [end - start for start, end in zip([0, *ends[:-1]], ends)]
    return [cycle.steps for cycle in schedule.cycles]


def restarts(schedule: Schedule | CurveSchedule) -> int:
    return 1 if isinstance(schedule, CurveSchedule) else schedule.band.restarts
