"""A session's start-up measurements, made the same way by its runner before the first
pair and by ``--estimate`` without a session.

``choose_strategy``: how the network energy evaluates its pivots and at how many
threads, chosen once for the whole session (the auto strategy's trial, run here on
the runner's energy rather than in each worker, so that every pair, whichever
worker runs it, takes the same choice; the runner stores it, StrategyChosen).

``estimate_session``: a few timed steps of the problem as built (engine.estimate),
at the share of the cores each worker gets, then the schedule the method runs and
the pairs its stop rule leaves."""

from __future__ import annotations

from typing import Any

from sessions.disk.config import SessionConfig
from sessions.events import SessionEstimated, StrategyChosen


def choose_strategy(built: Any, schedule: Any, device: str) -> StrategyChosen:
    """How ``built.energy`` evaluates pivots, as every worker of the session will: its
    fixed strategy and thread count, or, for the auto strategy, the contender its trial
    finds fastest, timed here on a band between the first two minima at the schedule's
    first minibatch. A surface has nothing to choose (None, None)."""
    energy = built.energy
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if not hasattr(energy, "strategy_used"):
        return StrategyChosen(strategy=None, threads=None, device=kind)
    timed = energy.strategy_used is None
    if timed:
        import torch

        from engine.band.geometry import linear_path
        from engine.estimate import band_sizes, first_batch_size

        points = linear_path(built.minima[0], built.minima[1], band_sizes(schedule)[0])  # (N, D)
        generator = torch.Generator().manual_seed(0)  # its own draws: the session's numbers stay as they are
        while energy.strategy_used is None:
            energy(points, generator=generator, batch_size=first_batch_size(schedule))
    data = "streamed" if getattr(energy, "streamed", None) is not None else "in memory"
    return StrategyChosen(strategy=energy.strategy_used, threads=energy.threads_used, device=kind, timed=timed,
                          data=data)


def estimate_session(config: SessionConfig, built: Any, schedule: Any, *, device: str, threads: int | None,
                     workers: int, done: int = 0) -> SessionEstimated | None:
    """The estimate of the pairs left after ``done``, timed on ``built`` (sessions.problem.build.build)
    at ``threads`` torch threads; None when no pair is left."""
    from engine.threads import intra_op_threads
    from engine.estimate import cycle_steps, estimate, pair_seconds, pairs_left, restarts, time_steps

    pairs = pairs_left(len(built.names), config.landscape, done)
    if pairs[1] == 0 or len(built.minima) < 2:
        return None
    with intra_op_threads(threads):
        times = time_steps(built.energy, built.minima[0], built.minima[1], schedule)
    guess = estimate(pair_seconds(schedule, times), pairs, workers)
    return SessionEstimated(
        device=device, workers=guess.workers, threads=threads, step_points=times.sizes[0],
        step_seconds=times.step[0], point_seconds=times.point, pair_seconds=list(guess.pair),
        pairs=list(guess.pairs), seconds=list(guess.seconds), done=done,
        cycle_steps=cycle_steps(schedule), restarts=restarts(schedule),
    )
