"""What the app shows: the session's SessionView (the one reducer of its events)
plus what only the app needs: the schedule's cycles, the log lines, the step
rate and ETAs. No textual here, so it is testable and cheap.
``SessionModel.apply`` takes each logged event in log order; ``version`` grows
whenever something visible changed (the panes redraw on a timer when it did).

The schedule is the one the session's runs run, derived from its config as the
runner derives it (``SessionConfig.run_schedule``): AutoNEB's cycles, or
for a curve session (``--method bezier`` / ``polychain``) its ``CurveSchedule``,
whose stretches of steps between evaluations of the curve are its cycles."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.paths.registry import MethodSchedule
from engine.paths.curve_schedule import CURVE_KINDS, CurveSchedule
from engine.events import ConnectionFinished, Event, StepEnergies, UnknownEvent
from engine.paths.schedule import Schedule
from nebtui.progress import describe
from sessions.disk.eventlog import LoggedEvent, PassedSteps
from sessions.events import (
    CheckpointFailed,
    ControlReceived,
    RunnerStarted,
    SessionFailed,
    SessionPaused,
    SessionResumed,
    WorkerDied,
)
from sessions.view import PairProgress, SessionView

if TYPE_CHECKING:
    from sessions.disk.config import SessionConfig

Pair = tuple[int, int]
LOG_LINES = 500  # log lines kept for the log pane
RATE_WINDOW = 20  # step events the step rate is measured over
ERRORS = (SessionFailed, CheckpointFailed, WorkerDied)  # shown as errors in the log
GAPS = (SessionPaused, RunnerStarted, SessionResumed)  # time between steps that the step rate must not count
ENDED = ("finished", "stopped", "failed", "crashed")


def at_an_end(saddle_position: float) -> bool:
    """The highest point of a dense profile is one of its minima (position 0 or 1)."""
    return saddle_position <= 0.0 or saddle_position >= 1.0


@dataclass(frozen=True)
class CycleRow:
    """One cycle of the schedule, as the schedule pane lists it."""

    number: int  # 1-based
    steps: int
    lr: float
    optimiser: str
    optimiser_args: dict[str, Any]
    batch_size: int | None
    insert: bool
    climb: bool


def cycle_rows(runs: MethodSchedule) -> list[CycleRow]:
    """The cycles of what runs: AutoNEB's; a curve's stretches of steps between evaluations,
    each with the lr of its first step, as the curve's CycleStarted events announce them."""
    if isinstance(runs, CurveSchedule):
        starts = [0, *runs.cycle_ends()]
        return [CycleRow(number=number, steps=end - first, lr=runs.lr_at(first), optimiser=runs.optimiser,
                         optimiser_args=runs.optimiser_args, batch_size=runs.batch_size, insert=False, climb=False)
                for number, (first, end) in enumerate(zip(starts, starts[1:]), start=1)]
    return [CycleRow(number=number, steps=c.steps, lr=c.lr, optimiser=c.optimiser, optimiser_args=c.optimiser_args,
                     batch_size=c.batch_size, insert=c.insert, climb=c.climb)
            for number, c in enumerate(runs.cycles, start=1)]


def fits_the_path(positions: list[float] | None, losses: list[float]) -> bool:
    """Positions (StepEnergies.positions) that place each of ``losses`` along the path:
    one per loss, each in 0 .. 1. A step written before steps carried them has none."""
    return (positions is not None and len(positions) == len(losses)
            and all(0.0 <= position <= 1.0 for position in positions))  # NaN fails too


@dataclass(frozen=True)
class LogLine:
    text: str
    level: str  # "info" | "warning" | "error"


class StepRate:
    """Optimiser steps per second over the last RATE_WINDOW step events of one pair, from the
    events' own times (so a replay measures the run, not the replay); cycle ends, insertions
    and checkpoints between steps count as the run's time."""

    def __init__(self) -> None:
        self._window: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)  # (time, steps done in the pair)

    @property
    def rate(self) -> float | None:
        if len(self._window) < 2:
            return None
        (t0, n0), (t1, n1) = self._window[0], self._window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 and n1 > n0 else None

    def observe(self, time: float, done: int) -> None:
        if self._window and done < self._window[-1][1]:
            self._window.clear()  # another pair or restart
        self._window.append((time, done))

    def gap(self) -> None:
        """Forget the window (a pause or a restart of the runner lies between)."""
        self._window.clear()


def log_level(event: Event) -> str:
    """"error", "warning" or "info": how the log pane marks the event's line."""
    if isinstance(event, ERRORS) or (isinstance(event, UnknownEvent) and event.problem):
        return "error"
    if isinstance(event, ControlReceived) and not event.accepted:
        return "warning"
    return "info"


class SessionModel:
    """The app's state: a SessionView plus the schedule, the log lines and the step rate."""

    def __init__(self, config: SessionConfig | None = None, pairs_total: int | None = None,
                 minima_total: int | None = None, view: SessionView | None = None) -> None:
        """``config``: the session's (sessions.disk.config; a PartialConfig may lack its schedule), or None;
        ``view``: the SessionView to reduce the events into (a new one by default), which
        nothing else reduces into."""
        self.view = view if view is not None else SessionView()
        self.method = config.method if config is not None else "autoneb"
        runs = config.run_schedule() if config is not None and config.schedule is not None else None
        self.curve = runs if isinstance(runs, CurveSchedule) else None  # a curve session's schedule
        self.schedule = cycle_rows(runs) if runs is not None else []  # the cycles of what runs
        band = runs.band if isinstance(runs, Schedule) else None
        self.restarts = band.restarts if band is not None else 1  # a curve has none
        # a step without positions (an older log) is drawn with its pivots equally spaced unless the band says not
        self.equal_spacing = band is None or band.spacing == "equal"
        self._latest: dict[Pair, StepEnergies] = {}  # each pair's latest step
        self.pairs_total = pairs_total
        self.minima_total = minima_total  # from the config: the events name a minimum only once a path reaches it
        self.log: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.log_count = 0  # lines ever logged (the log pane writes the ones it has not yet)
        self.rate = StepRate()  # of the followed pair
        self.followed: Pair | None = None  # the pair in flight the energy pane follows
        self.at_end: set[Pair] = set()  # finished pairs whose saddle is one of their ends
        self.version = 0

    # ---- reducing events

    def apply(self, entry: LoggedEvent | PassedSteps) -> None:
        view = self.view
        view.apply(entry)
        if type(entry) is PassedSteps:  # a thinning reader keeps each pair's last RATE_WINDOW + 1 steps
            self.version += 1
            return
        event = entry.event
        if isinstance(event, StepEnergies):  # most events; describe() has no line for a step
            self._latest[event.pair] = event
            # most steps are the followed pair's: ask which pair is shown only when not
            shown = view.progress[event.pair] if event.pair == self.followed else self.shown_pair()
            if shown is not None and event.pair == shown.pair and entry.time is not None:
                self.rate.observe(entry.time, self.steps_done(shown))
            self.version += 1
            return
        if isinstance(event, ConnectionFinished) and at_an_end(event.saddle_position):
            self.at_end.add(event.pair)
        if isinstance(event, GAPS):
            self.rate.gap()
        text = describe(event)
        if text is not None:
            self.note(text, log_level(event))
        self.version += 1

    def apply_all(self, entries: list[LoggedEvent | PassedSteps]) -> None:
        for entry in entries:
            self.apply(entry)

    def note(self, text: str, level: str = "info") -> None:
        """A line in the log pane that is not an event (e.g. a control reply)."""
        self.log.append(LogLine(text, level))
        self.log_count += 1
        self.version += 1

    # ---- what the panes ask

    @property
    def minima(self) -> dict[int, float]:
        return self.view.minima

    @property
    def curve_session(self) -> bool:
        """The session fits curves (Bezier, polychain): its runs have points of t, not pivots,
        and no restarts."""
        return self.method in CURVE_KINDS

    def live_positions(self, trace: PairProgress) -> list[float] | None:
        """Where the pair's latest step took its losses (``trace.live_losses``): a band's
        arc-length fractions, a curve's values of t. None when there is no live step, or
        the step carried no positions that fit (a log written before steps had them)."""
        step = self._latest.get(trace.pair)
        live = trace.live_losses
        if step is None or live is None or not fits_the_path(step.positions, live):
            return None
        return step.positions

    def shown_pair(self) -> PairProgress | None:
        """The pair the energy pane follows: one pair in flight, kept until it finishes
        (then the first in flight, by pair); with none in flight, the one that stepped last."""
        running = self.view.running
        if self.followed not in running and running:
            self._follow(next(iter(running)))
        if self.followed in running:
            return running[self.followed]
        return self.view.progress.get(self.view.current) if self.view.current is not None else None

    def follow_next(self) -> Pair | None:
        """Follow the next pair in flight (by pair, round); None when none is in flight."""
        running = list(self.view.running)
        if not running:
            return None
        at = running.index(self.followed) + 1 if self.followed in running else 0
        self._follow(running[at % len(running)])
        return self.followed

    def _follow(self, pair: Pair) -> None:
        if pair != self.followed:
            self.followed = pair
            self.rate.gap()  # another pair's steps
            self.version += 1

    def saddle_at_end(self, pair: Pair) -> bool:
        """Whether the finished pair's highest point is one of its minima (saddle position 0 or 1):
        then the path has no barrier to show: the minima are not minima of this loss, or the
        path found a lower basin."""
        return pair in self.at_end

    def attacked_edges(self) -> set[Pair]:
        """The MST edges that the pairs in flight were chosen to replace (the engine's choice)."""
        return {edge for edge in self.view.attacked.values() if edge is not None}

    def steps_done(self, trace: PairProgress) -> int:
        """Optimiser steps of this pair's current restart so far."""
        before = sum(row.steps for row in self.schedule[: max(0, trace.cycle - 1)]) if self.schedule else 0
        return before + trace.step

    def pair_steps(self) -> int | None:
        """Steps of one connection (all restarts; a curve's steps), from the schedule."""
        return sum(row.steps for row in self.schedule) * self.restarts if self.schedule else None

    def eta(self) -> tuple[float | None, tuple[float, float] | None]:
        """(seconds left for the pair shown, at its own step rate; seconds (low, high) left
        for the session: the view's one ETA, from its runner's estimate refined as pairs
        finish, None before the estimate or while not running)."""
        trace = self.shown_pair()
        cycle_steps = [row.steps for row in self.schedule]
        pair_eta = trace.eta(cycle_steps, self.restarts) if trace is not None else None
        return pair_eta, self.view.eta()

    def elapsed(self) -> float:
        """Seconds between the first and the latest event."""
        if self.view.started is None or self.view.last_time is None:
            return 0.0
        return max(0.0, self.view.last_time - self.view.started)

    def mst_tree(self) -> list[tuple[int, int, int, float | None]]:
        """The MST laid out as a tree rooted at the lowest minimum seen, depth first: (depth, node,
        parent, saddle energy); the root has parent -1 and no saddle. Nodes not connected to the
        root follow as roots of their own. Only a layout of the edges the events announced."""
        minima = self.view.minima
        adjacency: dict[int, list[tuple[int, float]]] = {}
        for (a, b), saddle in self.view.mst.items():
            adjacency.setdefault(a, []).append((b, saddle))
            adjacency.setdefault(b, []).append((a, saddle))
        nodes = sorted(set(adjacency) | set(minima), key=lambda n: (minima.get(n, float("inf")), n))
        rows: list[tuple[int, int, int, float | None]] = []
        seen: set[int] = set()
        for root in nodes:
            if root in seen:
                continue
            stack: list[tuple[int, int, int, float | None]] = [(0, root, -1, None)]
            while stack:
                depth, node, parent, saddle = stack.pop()
                if node in seen:
                    continue
                seen.add(node)
                rows.append((depth, node, parent, saddle))
                children = sorted((c for c in adjacency.get(node, []) if c[0] not in seen), key=lambda c: (-c[1], -c[0]))
                stack.extend((depth + 1, child, node, s) for child, s in children)
        return rows
