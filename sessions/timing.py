"""A session's estimate, made the same way by its runner before the first pair and by
``--estimate`` without a session: a few timed steps of the problem as built
(engine.estimate), at the share of the cores each worker gets, then the schedule
the method runs and the pairs its stop rule leaves."""

from __future__ import annotations

from typing import Any

from sessions.config import SessionConfig
from sessions.lifecycle import SessionEstimated


def estimate_session(config: SessionConfig, built: Any, schedule: Any, *, device: str, threads: int | None,
                     workers: int, done: int = 0) -> SessionEstimated | None:
    """The estimate of the pairs left after ``done``, timed on ``built`` (sessions.problem.build)
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
