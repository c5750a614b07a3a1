"""What a session is doing, from facts: the event log replayed into a summary,
and the status from the lock and the heartbeat (never from what a dead process
last wrote). Imports no torch: the CLI's `sessions list` stays fast."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from engine.estimate import pairs_left
from engine.events import (
    ConnectionFinished,
    CycleFinished,
    CycleStarted,
    MSTEdgeAdded,
    MSTEdgeReplaced,
    PairChosen,
    PivotsInserted,
    StepEnergies,
    UnknownEvent,
)
from sessions.disk.eventlog import EventLogReader, LoggedEvent, PassedSteps, read_log
from sessions.disk.folder import EVENTS_FILE, SessionFolder
from sessions.events import (
    CHECKED_PHASES,
    RunnerStarted,
    SessionEstimated,
    StrategyChosen,
    SessionFailed,
    SessionFinished,
    SessionPaused,
    SessionResumed,
    SessionStopped,
    StartupPhaseStarted,
    WorkerDied,
    WorkerStarted,
)
from sessions.disk.lock import holder

STALE_HEARTBEAT = 10.0  # seconds without a heartbeat before a live runner counts as unresponsive
STATUSES = ("created", "running", "paused", "unresponsive", "stopped", "crashed", "failed", "finished", "damaged")


Pair = tuple[int, int]
PROFILED_FINISHED = 12  # finished pairs whose cycle profiles are kept (the oldest lose theirs)
# Events that only move pairs through their cycles: nearly all of a long log. Without them a
# view still knows the lifecycle, the pairs done, the MST, the devices and how many events.
PROGRESS_KINDS = frozenset({StepEnergies.kind, CycleFinished.kind})


# What a path that falls below its own end means, in the words every output uses.
AT_END_MEANING = "the minima are not minima of this loss (train them longer), or the path found a lower basin"


def at_end_note(end: int) -> str:
    """What a saddle at minimum ``end`` means: a path that falls below its own end has
    no barrier to claim."""
    return (f"the path's highest point is minimum {end} itself, so the path falls below it: {AT_END_MEANING}; "
            "no barrier is claimed for this pair")


def end_at_saddle(pair: Pair, saddle_position: float | None) -> int | None:
    """The minimum of ``pair`` where its path peaks, when the saddle position is an end
    (0.0: the pair's first minimum, 1.0: its second); None for a saddle between them."""
    if saddle_position is None:
        return None
    if saddle_position <= 0.0:
        return pair[0]
    if saddle_position >= 1.0:
        return pair[1]
    return None


@dataclass
class PairProgress:
    """Where one pair's connection stands, from its events."""

    pair: Pair
    restart: int = 0
    cycle: int = 0  # 1-based; 0 before the first cycle
    cycles: int = 0
    step: int = 0
    steps: int = 0
    pivots: int = 0
    saddle_energy: float | None = None  # of the last finished cycle; once finished, the connection's
    linear_saddle_energy: float | None = None
    live_losses: list[float] | None = None  # pivot losses at the latest step of the running cycle
    profiles: list[CycleFinished] = field(default_factory=list)  # the current restart's cycles, oldest first
    finished: bool = False
    started_at: float | None = None  # time of its first cycle
    finished_at: float | None = None  # time its connection finished
    # (time, restart, cycle, step) of its first and latest step since the runner last (re)started: its step rate
    rate_from: tuple[float, int, int, int] | None = None
    rate_to: tuple[float, int, int, int] | None = None

    def eta(self, cycle_steps: list[int], restarts: int) -> float | None:
        """Seconds until this connection finishes at its own measured step rate (None
        before two steps were seen, or without the schedule's cycles)."""
        if self.finished or not cycle_steps or self.rate_from is None or self.rate_to is None:
            return None
        per_restart = sum(cycle_steps)

        def done(mark: tuple[float, int, int, int]) -> int:
            _, restart, cycle, step = mark
            return restart * per_restart + sum(cycle_steps[: max(0, cycle - 1)]) + step

        seconds = self.rate_to[0] - self.rate_from[0]
        steps = done(self.rate_to) - done(self.rate_from)
        if seconds <= 0 or steps <= 0:
            return None
        return max(0, per_restart * restarts - done(self.rate_to)) * seconds / steps


@dataclass(frozen=True)
class StartupPhase:
    """What the runner said it began doing before its first step (a key of STARTUP_PHASES)."""

    phase: str
    detail: str
    began: float | None  # the log's time when it began


@dataclass
class SessionView:
    """The one reducer of a session's events: ``apply`` each ``LoggedEvent`` in log
    order. Events of unknown kinds count as events and change nothing else; an event of
    a known kind whose fields have the wrong types changes nothing either, and the first
    one is kept in ``damaged`` (a log changed by hand or by another program).

    Its start-up too (StartupPhaseStarted): each phase as the runner began it, whether it
    is still in one (``starting``), whether it accepted the problem and, if it failed
    before that, its refusal: what the app and the CLI waiting for a new session read."""

    events: int = 0
    lifecycle: str = "created"  # the last lifecycle event: running | paused | stopped | failed | finished
    error: str | None = None
    devices: list[str] = field(default_factory=list)  # of the latest runner
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)  # the latest runner's: device, node, pid
    devices_used: list[str] = field(default_factory=list)  # every runner's and worker's, first use first
    started: float | None = None  # time of the earliest event
    last_time: float | None = None  # time of the latest event
    progress: dict[Pair, PairProgress] = field(default_factory=dict)  # every pair with events, first seen first
    current: Pair | None = None  # the pair of the latest cycle start or step
    attacked: dict[Pair, tuple[int, int] | None] = field(default_factory=dict)  # chosen, not finished -> MST edge
    minima: dict[int, float] = field(default_factory=dict)  # minimum -> its energy (the ends of its profiles)
    saddles: dict[Pair, float] = field(default_factory=dict)  # finished pairs
    linear: dict[Pair, float] = field(default_factory=dict)
    saddle_positions: dict[Pair, float] = field(default_factory=dict)  # finished pairs: where the path peaks
    costs: dict[Pair, dict[str, Any]] = field(default_factory=dict)  # finished pairs: their runs' passes, by phase
    mst: dict[Pair, float] = field(default_factory=dict)
    finished_reason: str | None = None
    worker_deaths: int = 0
    damaged: str | None = None  # the first damaged event, in words
    stopped_because: str | None = None  # why the runner stopped on its own ("disk full"), and how to go on
    estimate: SessionEstimated | None = None  # the latest runner's, made before it started a pair
    estimated_at: float | None = None  # its time
    strategy: StrategyChosen | None = None  # how every worker evaluates the pivots, chosen once for the session
    startup: list[StartupPhase] = field(default_factory=list)  # every runner's start-up phases, in log order
    startup_over: bool = False  # a step came, or the session ended, since the latest phase
    problem_accepted: bool = False  # a runner began a phase of CHECKED_PHASES, or started: model, data, minima sound
    refusal: str | None = None  # the runner failed during its start-up, before it accepted the problem
    _profiled: list[Pair] = field(default_factory=list, repr=False)  # finished pairs with profiles, oldest first

    @property
    def starting(self) -> bool:
        """The runner is in a start-up phase: it said so and has not stepped (nor ended) since."""
        return bool(self.startup) and not self.startup_over

    @property
    def running(self) -> dict[Pair, PairProgress]:
        """The pairs in flight (with events, not finished), by pair."""
        return {pair: p for pair, p in sorted(self.progress.items()) if not p.finished}

    def pair_times(self) -> dict[Pair, tuple[float, float]]:
        """(start of its first cycle, its end) of each finished pair, in the log's times."""
        return {pair: (p.started_at, p.finished_at) for pair, p in self.progress.items()
                if p.started_at is not None and p.finished_at is not None}

    def _pair(self, pair: Pair) -> PairProgress:
        progress = self.progress.get(pair)
        if progress is None:
            progress = self.progress[pair] = PairProgress(pair)
        return progress

    def apply(self, entry: LoggedEvent | PassedSteps) -> None:
        if type(entry) is PassedSteps:  # steps between a pair's first and latest ones: counted, timed
            self.events += entry.count
            if self.started is None or entry.earliest < self.started:
                self.started = entry.earliest
            if self.last_time is None or entry.latest > self.last_time:
                self.last_time = entry.latest
            return
        self.events += 1
        stamp = entry.time
        if stamp is not None:
            if self.started is None or stamp < self.started:
                self.started = stamp
            if self.last_time is None or stamp > self.last_time:
                self.last_time = stamp
        match entry.event:
            case StepEnergies(pair=pair, step=step, losses=losses):
                progress = self._pair(pair)
                progress.step, progress.live_losses, progress.pivots = step, losses, len(losses)
                self.current = pair
                self.startup_over = True
                if stamp is not None:
                    progress.rate_to = (stamp, progress.restart, progress.cycle, step)
                    progress.rate_from = progress.rate_from or progress.rate_to
            case CycleStarted(pair=pair) as event:
                progress = self._pair(pair)
                if event.restart != progress.restart:
                    progress.profiles.clear()  # a new band: the old cycles belong to another path
                progress.restart, progress.cycle, progress.cycles = event.restart, event.cycle, event.cycles
                progress.step, progress.steps, progress.pivots = 0, event.steps, event.pivots
                progress.live_losses = None
                if progress.started_at is None:
                    progress.started_at = stamp
                self.current = pair
            case PivotsInserted(pair=pair, pivots=pivots):
                self._pair(pair).pivots = pivots
            case CycleFinished(pair=pair) as event:
                progress = self._pair(pair)
                progress.saddle_energy, progress.step, progress.live_losses = event.saddle_energy, progress.steps, None
                progress.profiles.append(event)
                if event.pivot_losses:
                    self.minima[pair[0]], self.minima[pair[1]] = event.pivot_losses[0], event.pivot_losses[-1]
            case ConnectionFinished(pair=pair) as event:
                progress = self._pair(pair)
                progress.finished, progress.finished_at = True, stamp
                progress.saddle_energy = self.saddles[pair] = event.saddle_energy
                progress.linear_saddle_energy = self.linear[pair] = event.linear_saddle_energy
                self.saddle_positions[pair] = event.saddle_position
                if event.cost is not None:
                    self.costs[pair] = event.cost
                self.attacked.pop(pair, None)
                self._profiled.append(pair)
                if len(self._profiled) > PROFILED_FINISHED:
                    self.progress[self._profiled.pop(0)].profiles = []
            case PairChosen(pair=pair, attacked_edge=edge):
                self.attacked[pair] = (edge[0], edge[1]) if edge else None
            case MSTEdgeAdded(a=a, b=b, saddle_energy=saddle):
                self.mst[(a, b)] = saddle
            case MSTEdgeReplaced(removed=removed, added=added, added_energy=saddle):
                self.mst.pop((removed[0], removed[1]), None)
                self.mst[(added[0], added[1])] = saddle
            case StartupPhaseStarted(phase=phase, detail=detail):
                self.startup.append(StartupPhase(phase, detail, stamp))
                self.startup_over = False
                self.problem_accepted = self.problem_accepted or phase in CHECKED_PHASES
            case RunnerStarted(devices=devices):
                self.problem_accepted = True
                self.lifecycle, self.error, self.devices = "running", None, list(devices)
                self.stopped_because = None
                self.workers = {}
                self._forget_rates()
                self.devices_used += [d for d in devices if d not in self.devices_used]
            case WorkerStarted(worker=worker, device=device, pid=pid, node=node):
                if device not in self.devices_used:
                    self.devices_used.append(device)
                self.workers[worker] = {"worker": worker, "device": device, "node": node, "pid": pid}
                if node and worker < len(self.devices):  # on a cluster: the node and device it got
                    self.devices[worker] = f"{node}/{device}"
            case WorkerDied():
                self.worker_deaths += 1
            case SessionPaused():
                self.lifecycle = "paused"
                self._forget_rates()
            case SessionResumed():
                self.lifecycle = "running"
                self._forget_rates()
            case SessionStopped(reason=reason, detail=detail):
                self.lifecycle, self.startup_over = "stopped", True
                self.stopped_because = f"{reason}: {detail}" if reason else None
            case SessionEstimated() as event:
                self.estimate, self.estimated_at = event, stamp
            case StrategyChosen() as event:
                self.strategy = event
            case SessionFailed(message=message):
                self.lifecycle, self.error, self.startup_over = "failed", message, True
                if self.startup and not self.problem_accepted:  # a refusal of the problem
                    self.refusal = message
            case SessionFinished(reason=reason, mst=mst):
                self.lifecycle, self.finished_reason, self.startup_over = "finished", reason, True
                self.mst = {(int(a), int(b)): float(s) for a, b, s in mst}
            case UnknownEvent(problem=problem) if problem and self.damaged is None:
                self.damaged = f"event {entry.seq} of {EVENTS_FILE}: {problem}: repair or remove that line"


    def eta(self, now: float | None = None) -> tuple[float, float] | None:
        """Seconds (low, high) until the session ends, at ``now`` (default: the latest
        event's time), while it runs and once its runner made an estimate: the pairs in
        flight finish at their own step rates, the pairs left take what the pairs
        finished since the estimate took (their median), or what the estimate's timed
        steps say until one has, ``workers`` at a time. None otherwise."""
        guess = self.estimate
        if guess is None or self.lifecycle != "running":
            return None
        now = self.last_time if now is None else now
        since = self.estimated_at if self.estimated_at is not None else float("-inf")
        took = [end - start for start, end in self.pair_times().values() if start >= since]
        per_pair = (statistics.median(took),) * 2 if took else tuple(guess.pair_seconds)
        running = list(self.running.values())
        finished = max(0, len(self.saddles) - guess.done)
        total = sum(guess.cycle_steps) * guess.restarts
        bounds = []
        for pairs, seconds in zip(guess.pairs, per_pair):
            left = []
            for progress in running:
                own = progress.eta(guess.cycle_steps, guess.restarts)
                if own is None:  # no step rate yet: its share of a pair's time
                    done = (progress.restart * sum(guess.cycle_steps)
                            + sum(guess.cycle_steps[: max(0, progress.cycle - 1)]) + progress.step)
                    own = seconds * max(0.0, 1 - done / total) if total else seconds
                elif progress.rate_to is not None and now is not None:  # since its latest step
                    own = max(0.0, own - (now - progress.rate_to[0]))
                left.append(own)
            waiting = max(0, pairs - finished - len(running))
            spread = (sum(left) + waiting * seconds) / max(1, guess.workers)
            bounds.append(max([spread, *left]))
        return bounds[0], bounds[1]

    def _forget_rates(self) -> None:
        """A pause or a new runner lies between: step rates start again."""
        for progress in self.progress.values():
            progress.rate_from = progress.rate_to = None


def read_view(folder: SessionFolder) -> SessionView:
    view = SessionView()
    for entry in read_log(folder.events_path):
        view.apply(entry)
    return view


def listing_view(folder: SessionFolder) -> SessionView:
    """``read_view`` without the events of PROGRESS_KINDS (counted, never parsed): the same
    status, pairs done and MST at a fraction of the cost of a long log; not the progress of
    the pairs within their cycles, nor the times of the events."""
    view = SessionView()
    with EventLogReader(folder.events_path, ignore=PROGRESS_KINDS) as reader:
        for entry in reader.poll():
            view.apply(entry)
        view.events += reader.passed
    return view


def status(folder: SessionFolder, view: SessionView) -> tuple[str, int | None]:
    """(status, runner pid): from the lock, the heartbeat and the log's final events;
    "damaged" before anything else when the log holds an event of the wrong types."""
    pid = holder(folder.lock_path)
    if view.damaged is not None:
        return "damaged", pid
    if pid is not None:
        age = folder.heartbeat_age()
        if age is None or age > STALE_HEARTBEAT:
            return "unresponsive", pid
        return ("paused" if view.lifecycle == "paused" else "running"), pid
    if view.lifecycle in ("finished", "stopped", "failed"):
        return view.lifecycle, None
    if view.lifecycle == "created" and view.events == 0 and folder.heartbeat_age() is None:
        return "created", None  # no runner ever ran (one that beat and died before its first event crashed)
    return "crashed", None


def summary(folder: SessionFolder, view: SessionView | None = None) -> dict[str, Any]:
    """The facts `sessions list` and `sessions show` print (JSON-able)."""
    view = view if view is not None else read_view(folder)
    state, pid = status(folder, view)
    config = folder.config()
    problem = config.problem
    minima = 0 if problem is None else len(problem.minima) if problem.kind == "network" else {
        "muller-brown": 3, "himmelblau": 4}.get(problem.surface or "", 0)
    total = pairs_left(minima, config.landscape)[1]  # the most pairs its stop rule computes
    if view.estimate is not None:  # the schedule the method runs, as its runner saw it
        cycle_steps, restarts = view.estimate.cycle_steps, view.estimate.restarts
    elif config.schedule is not None:
        cycle_steps, restarts = [c.steps for c in config.schedule.cycles], config.schedule.band.restarts
    else:
        cycle_steps, restarts = [], 1
    running = [
        {"pair": list(p), "restart": g.restart, "cycle": g.cycle, "cycles": g.cycles, "step": g.step,
         "steps": g.steps, "pivots": g.pivots, "eta_seconds": g.eta(cycle_steps, restarts)}
        for p, g in view.running.items()
    ]
    return {
        "id": folder.id,
        "status": state,
        "pid": pid,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(folder.created)),
        "problem": None if problem is None else problem.surface or problem.model,
        # a network's loss, and whether its points have an error rate (cross_entropy and bce)
        "loss": None if problem is None or problem.kind != "network" else problem.loss,
        "error_rate": None if problem is None or problem.kind != "network" else problem.loss in ("cross_entropy", "bce"),
        "method": config.method,
        "schedule": None if config.schedule is None else config.schedule.name,
        "align": config.align,
        "alignment": config.alignment if config.align else None,  # lowest | pairwise
        "minima": minima,
        "pairs_done": len(view.saddles),
        "pairs_total": total,
        "current": running[0] if running else None,  # the first pair in flight
        "running": running,  # every pair in flight, by pair
        "cycle": running[0]["cycle"] if running else None,
        "step": running[0]["step"] if running else None,
        "devices": view.devices,
        "workers": [view.workers[w] for w in sorted(view.workers)],  # the latest runner's, as they started
        "paths": [path_facts(view, pair, saddle) for pair, saddle in sorted(view.saddles.items())],
        "mst": [{"a": a, "b": b, "saddle_energy": s} for (a, b), s in sorted(view.mst.items())],
        "error": view.error,
        "stopped_because": view.stopped_because if state == "stopped" else None,
        "damaged": view.damaged,
        "events": view.events,
        "worker_deaths": view.worker_deaths,
        "estimate": view.estimate.to_dict() if view.estimate is not None else None,
        # how the pivots are evaluated, where the session has chosen (a log from before the choice: no key)
        **({"strategy": view.strategy.to_dict()} if view.strategy is not None else {}),
        "eta_seconds": list(eta) if state == "running" and (eta := view.eta(time.time())) else None,
    }


def method_text(method: str, align: bool, alignment: str | None = None) -> str:
    """How a session connects its minima, in a few words: autoneb, bezier or polychain,
    and "aligned" when it weight-matched them first ("aligned pairwise": pair by pair)."""
    if not align:
        return method
    return method + (" aligned pairwise" if alignment == "pairwise" else " aligned")


def path_facts(view: SessionView, pair: Pair, saddle: float) -> dict[str, Any]:
    """One finished path as `sessions show` gives it; a saddle at an end names its
    minimum (``saddle_at_end``) and says what that means (``note``)."""
    position = view.saddle_positions.get(pair)
    end = end_at_saddle(pair, position)
    facts = {"a": pair[0], "b": pair[1], "saddle_energy": saddle, "saddle_position": position,
             "linear_saddle_energy": view.linear.get(pair), "saddle_at_end": end}
    if pair in view.costs:  # what its run computed, and its seconds in the log (a log from before: no keys)
        times = view.pair_times().get(pair)
        facts.update(cost=view.costs[pair], seconds=None if times is None else times[1] - times[0])
    if end is not None:
        facts["note"] = at_end_note(end)
    return facts


def damaged_summary(folder: SessionFolder, problem: str) -> dict[str, Any]:
    """What `sessions list` shows of a session it cannot read (its config or its log
    damaged): the facts it has, and the problem in one line."""
    return {
        "id": folder.id, "status": "damaged", "damaged": problem, "pid": holder(folder.lock_path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(folder.created)),
        "pairs_done": 0, "pairs_total": 0, "running": [], "paths": [], "mst": [],
    }
