"""The path methods by name: "autoneb" (``engine.paths.autoneb.Connection``),
"bezier" and "polychain" (``engine.paths.curves.CurveFit``).

For each method, the registry knows what it runs for a session and how to make
or rebuild its run. A session names its method and keeps one AutoNEB schedule;
``method_schedule`` turns that into what the method runs: the schedule itself,
or a ``CurveSchedule`` whose budget in gradient evaluations matches the AutoNEB
schedule's (``autoneb_budget``). Whoever holds that schedule (an exploration, a
runner, a worker, a report) makes and rebuilds runs through ``new_run`` and
``run_from_state`` without knowing which method it is. Every saved state names
its method (``meta["method"]``); a state saved without the name is AutoNEB's,
as every such state was.

No torch at import: the runner derives its schedule before it imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union

import engine.events as events
from engine.events import EventSink
from engine.paths.curve_schedule import CURVE_KINDS, CurveSchedule
from engine.paths.schedule import Schedule

if TYPE_CHECKING:
    from torch import Tensor

    from engine.energy.base import Energy
    from engine.paths.run import PathRun

CURVE_POINTS = CurveSchedule.points  # values of t per step of a curve (Garipov et al. draw one; bench/curve_sweep.py)
NETWORK_LR = 0.1  # the paper schedule's largest lr: the scale at which CurveSchedule's lr was chosen
SURFACE_LR_BELOW = 0.01  # a schedule whose lr stays below this is a 2-D surface's (the surface preset: 3e-4)

MethodSchedule = Union[Schedule, CurveSchedule]


def autoneb_budget(schedule: Schedule) -> int:
    """AutoNEB's gradient evaluations with the band at its first size: every step
    evaluates every pivot, ends included, on its own minibatch. A lower bound of
    what a run spends: inserted pivots add to it (``spent_gradients`` counts them)."""
    return schedule.band.restarts * schedule.total_steps * (schedule.band.initial_pivots + 2)


def curve_schedule(kind: str, schedule: Schedule) -> CurveSchedule:
    """The curve ``kind`` trained for about ``autoneb_budget(schedule)`` gradient
    evaluations, on the minibatch size of AutoNEB's first cycle. Its lr follows the
    AutoNEB schedule's scale. A network's schedule (largest lr at least
    ``SURFACE_LR_BELOW``): ``CurveSchedule``'s lr, chosen on networks where the
    paper's schedule peaks at ``NETWORK_LR``, times the schedule's largest lr over
    ``NETWORK_LR``. A surface's (gradients in the hundreds; the preset peaks at
    3e-4, where a band is stable): the schedule's own largest lr, since ten times it,
    the networks' ratio, diverged on Mueller-Brown."""
    largest = max(cycle.lr for cycle in schedule.cycles)
    lr = CurveSchedule.lr * (largest / NETWORK_LR) if largest >= SURFACE_LR_BELOW else largest
    base = CurveSchedule(kind=kind, points=CURVE_POINTS, lr=lr, batch_size=schedule.cycles[0].batch_size)
    return base.with_budget(autoneb_budget(schedule))


@dataclass(frozen=True)
class Method:
    """A path method: what it runs for a session's AutoNEB schedule, and where its run class is."""

    name: str
    schedule: Callable[[Schedule], MethodSchedule]  # the session's AutoNEB schedule -> the method's
    runs: Callable[[], type[PathRun]]  # its run class, imported on first use (torch)


def _connection() -> type[PathRun]:
    from engine.paths.autoneb import Connection

    return Connection


def _curve_fit() -> type[PathRun]:
    from engine.paths.curves import CurveFit

    return CurveFit


def _curve(kind: str) -> Method:
    return Method(kind, lambda schedule: curve_schedule(kind, schedule), _curve_fit)


REGISTRY: dict[str, Method] = {
    "autoneb": Method("autoneb", lambda schedule: schedule, _connection),
    **{kind: _curve(kind) for kind in CURVE_KINDS},
}
METHODS = tuple(REGISTRY)


def check_method(method: object) -> str:
    """The method's name, or a ValueError with one line naming the choices."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use {', '.join(METHODS[:-1])} or {METHODS[-1]}")
    return method  # type: ignore[return-value]


def method_schedule(method: str, schedule: Schedule) -> MethodSchedule:
    """What ``method`` runs for a session whose AutoNEB schedule is ``schedule``."""
    return REGISTRY[check_method(method)].schedule(schedule)


def method_of(state: dict[str, Any]) -> str:
    """The method that saved ``state``; a state that names none is AutoNEB's (saved
    before states named their method)."""
    return state["meta"].get("method", "autoneb")


def schedule_method(schedule: MethodSchedule) -> str:
    """The method ``schedule`` is for: the session's, which ``method_schedule`` derived it from."""
    return schedule.kind if isinstance(schedule, CurveSchedule) else "autoneb"


def new_run(
    energy: Energy,
    schedule: MethodSchedule,
    start: Tensor,
    end: Tensor,
    *,
    pair: tuple[int, int] = (0, 1),
    seed: int = 0,
    on_event: EventSink = events.ignore,
) -> PathRun:
    """A run between ``start`` and ``end`` by the method the schedule is for."""
    run_class = REGISTRY[schedule_method(schedule)].runs()
    return run_class(energy, schedule, start, end, pair=pair, seed=seed, on_event=on_event)


def run_from_state(
    energy: Energy,
    schedule: MethodSchedule,
    state: dict[str, Any],
    *,
    on_event: EventSink = events.ignore,
) -> PathRun:
    """A run rebuilt from its ``state_dict()``, by the method the state names; a state
    of another method than the schedule's is a ValueError with one line."""
    method, wanted = method_of(state), schedule_method(schedule)
    if method != wanted:
        raise ValueError(f"a saved run of method {method} cannot continue as {wanted}: "
                         "resume it with the method it was started with")
    return REGISTRY[method].runs().from_state(energy, schedule, state, on_event=on_event)


def spent_gradients(result: Any, schedule: MethodSchedule) -> int:
    """The gradient evaluations a finished run's schedule asked for: a curve's steps
    times points; AutoNEB's steps times the band's pivots, cycle by cycle (insertions
    and the two fixed ends included, as this count always had them). What the run
    computed, pass by pass, is its cost account (``result.cost``,
    ``engine.paths.run.CostAccount``): there the fixed ends take no backward pass
    where the energy evaluates them forward only."""
    if isinstance(schedule, CurveSchedule):
        return int(result.gradient_evaluations)
    return sum(record.pivots * schedule.cycles[record.cycle - 1].steps for record in result.history)
