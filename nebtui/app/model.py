"""What the app shows, reduced from event dicts: no textual here, so it is
testable and cheap. ``SessionModel.apply`` takes each event in log order;
``version`` grows whenever something visible changed (the panes redraw on a
timer when it did)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nebtui.progress import describe
from sessions.view import PairProgress, SessionView

Pair = tuple[int, int]
LOG_LINES = 500  # log lines kept for the log pane
RATE_WINDOW = 20  # step events the step rate is measured over
TRACED_PAIRS = 12  # pairs whose cycle profiles are kept (oldest finished ones are dropped)
ERROR_KINDS = ("session_failed", "checkpoint_failed", "worker_died")
ENDED = ("finished", "stopped", "failed", "crashed")


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


def schedule_cycles(schedule: dict[str, Any] | None) -> list[CycleRow]:
    """The cycles of a ``Schedule.to_dict()`` (phases with ``repeat``), without importing the
    engine (its validation imports torch). A schedule that does not read is no schedule."""
    if not isinstance(schedule, dict) or not isinstance(schedule.get("phase"), list):
        return []
    rows: list[CycleRow] = []
    try:
        for phase in schedule["phase"]:
            for _ in range(int(phase.get("repeat", 1))):
                rows.append(CycleRow(
                    number=len(rows) + 1, steps=int(phase["steps"]), lr=float(phase["lr"]),
                    optimiser=str(phase.get("optimiser", "SGD")), optimiser_args=dict(phase.get("optimiser_args") or {}),
                    batch_size=phase.get("batch_size"), insert=bool(phase.get("insert", True)),
                    climb=bool(phase.get("climb", False)),
                ))
    except (KeyError, TypeError, ValueError, AttributeError):
        return []
    return rows


@dataclass(frozen=True)
class CycleProfile:
    """The band after one finished cycle: the dense profile and its pivots."""

    restart: int
    cycle: int
    positions: list[float]  # dense profile, fractions of arc length 0..1
    losses: list[float]
    pivot_positions: list[float]
    pivot_losses: list[float]
    saddle_energy: float
    saddle_position: float


@dataclass
class PairTrace(PairProgress):
    """Everything the energy pane knows about one pair's connection: its progress, and
    (kept after it finishes) its cycles' profiles."""

    pair: Pair = field(kw_only=True)
    live_losses: list[float] | None = None  # pivot losses at the latest step of the running cycle
    profiles: list[CycleProfile] = field(default_factory=list)  # finished cycles, oldest first
    linear_saddle_energy: float | None = None
    finished: bool = False


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


class SessionModel:
    """The app's state: a SessionView plus the profiles, the schedule and the log lines."""

    def __init__(self, schedule: dict[str, Any] | None = None, pairs_total: int | None = None) -> None:
        self.view = SessionView()
        self.schedule = schedule_cycles(schedule)
        band = schedule.get("band", {}) if isinstance(schedule, dict) else {}
        self.restarts = int(band.get("restarts", 1)) if isinstance(band, dict) else 1
        self.equal_spacing = not isinstance(band, dict) or band.get("spacing", "equal") == "equal"
        self.pairs_total = pairs_total
        self.traces: dict[Pair, PairTrace] = {}
        self.current: Pair | None = None  # the pair the energy pane follows
        self.attacked: dict[Pair, list[int] | None] = {}  # pairs chosen (and not finished) -> MST edge attacked
        self.minima: dict[int, float] = {}  # minimum -> its energy (the ends of its profiles)
        self.log: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.log_count = 0  # lines ever logged (the log pane writes the ones it has not yet)
        self.rate = StepRate()
        self.version = 0

    # ---- reducing events

    def apply(self, event: dict[str, Any]) -> None:
        self.view.apply(event)
        kind = event.get("kind")
        pair = tuple(event["pair"]) if isinstance(event.get("pair"), list) else None
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event, pair)
        if kind in ("session_paused", "runner_started", "session_resumed"):
            self.rate.gap()
        text = describe(event)
        if text is not None:
            level = "error" if kind in ERROR_KINDS else "info"
            if kind == "control_received" and not event.get("accepted", True):
                level = "warning"
            self.note(text, level)
        self.version += 1

    def apply_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def note(self, text: str, level: str = "info") -> None:
        """A line in the log pane that is not an event (e.g. a control reply)."""
        self.log.append(LogLine(text, level))
        self.log_count += 1
        self.version += 1

    def _trace(self, pair: Pair) -> PairTrace:
        trace = self.traces.get(pair)
        if trace is None:
            trace = self.traces[pair] = PairTrace(pair=pair)
            finished = [p for p, t in self.traces.items() if t.finished]
            while len(self.traces) > TRACED_PAIRS and finished:
                del self.traces[finished.pop(0)]
        return trace

    def _on_pair_chosen(self, event: dict[str, Any], pair: Pair) -> None:
        self.attacked[pair] = event.get("attacked_edge")

    def _on_cycle_started(self, event: dict[str, Any], pair: Pair) -> None:
        trace = self._trace(pair)
        if event["restart"] != trace.restart:
            trace.profiles.clear()  # a new band: the old cycles belong to another path
        trace.apply(event)
        trace.live_losses = None
        self.current = pair

    def _on_pivots_inserted(self, event: dict[str, Any], pair: Pair) -> None:
        self._trace(pair).apply(event)

    def _on_step_energies(self, event: dict[str, Any], pair: Pair) -> None:
        trace = self._trace(pair)
        trace.apply(event)
        trace.live_losses = list(event["losses"])
        trace.pivots = len(trace.live_losses)
        self.current = pair
        if isinstance(event.get("time"), (int, float)):
            self.rate.observe(event["time"], self.steps_done(trace))

    def _on_cycle_finished(self, event: dict[str, Any], pair: Pair) -> None:
        trace = self._trace(pair)
        trace.apply(event)
        profile = CycleProfile(
            restart=event["restart"], cycle=event["cycle"], positions=list(event["positions"]),
            losses=list(event["losses"]), pivot_positions=list(event["pivot_positions"]),
            pivot_losses=list(event["pivot_losses"]), saddle_energy=event["saddle_energy"],
            saddle_position=event["saddle_position"],
        )
        trace.profiles.append(profile)
        trace.live_losses = None
        trace.step = trace.steps
        if profile.pivot_losses:
            self.minima[pair[0]], self.minima[pair[1]] = profile.pivot_losses[0], profile.pivot_losses[-1]

    def _on_connection_finished(self, event: dict[str, Any], pair: Pair) -> None:
        trace = self._trace(pair)
        trace.finished, trace.saddle_energy = True, event["saddle_energy"]  # now the connection's saddle
        trace.linear_saddle_energy = event["linear_saddle_energy"]
        self.attacked.pop(pair, None)

    # ---- what the panes ask

    def shown_pair(self) -> PairTrace | None:
        return self.traces.get(self.current) if self.current is not None else None

    def steps_done(self, trace: PairTrace) -> int:
        """Optimiser steps of this pair's current restart so far."""
        before = sum(row.steps for row in self.schedule[: max(0, trace.cycle - 1)]) if self.schedule else 0
        return before + trace.step

    def pair_steps(self) -> int | None:
        """Steps of one connection (all restarts), from the schedule."""
        return sum(row.steps for row in self.schedule) * self.restarts if self.schedule else None

    def eta(self) -> tuple[float | None, float | None]:
        """(seconds left for the current pair, for the whole session) at the measured step rate."""
        trace, per_pair, rate = self.shown_pair(), self.pair_steps(), self.rate.rate
        if trace is None or trace.finished or per_pair is None or not rate:
            return None, None
        one = per_pair // self.restarts
        left_pair = (self.restarts - trace.restart - 1) * one + max(0, one - self.steps_done(trace))
        pair_eta = left_pair / rate
        if self.pairs_total is None:
            return pair_eta, None
        waiting = max(0, self.pairs_total - len(self.view.saddles) - len(self.view.pairs))
        workers = max(1, len(self.view.devices))
        return pair_eta, pair_eta + waiting * per_pair / rate / workers

    def elapsed(self) -> float:
        """Seconds between the first and the latest event."""
        if self.view.started is None or self.view.last_time is None:
            return 0.0
        return max(0.0, self.view.last_time - self.view.started)

    def highest_edge(self) -> tuple[Pair, float] | None:
        """The MST edge with the highest saddle: the one the algorithm attacks next."""
        if not self.view.mst:
            return None
        edge = max(self.view.mst, key=lambda e: (self.view.mst[e], e))
        return edge, self.view.mst[edge]

    def lowest_minimum(self) -> int | None:
        nodes = set(self.minima) | {n for edge in self.view.mst for n in edge}
        if not nodes:
            return None
        return min(nodes, key=lambda n: (self.minima.get(n, float("inf")), n))

    def mst_tree(self) -> list[tuple[int, int, int, float | None]]:
        """The MST rooted at the lowest minimum, depth first: (depth, node, parent, saddle energy);
        the root has parent -1 and no saddle. Nodes not connected to the root follow as roots of their own."""
        adjacency: dict[int, list[tuple[int, float]]] = {}
        for (a, b), saddle in self.view.mst.items():
            adjacency.setdefault(a, []).append((b, saddle))
            adjacency.setdefault(b, []).append((a, saddle))
        nodes = sorted(set(adjacency) | set(self.minima), key=lambda n: (self.minima.get(n, float("inf")), n))
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
