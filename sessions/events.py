"""Events about the session's processes (not the science): they go into the same
event log as the engine's events and share their registry, so
``engine.events.event_from_dict`` rebuilds them once this module is imported
(``sessions.disk.eventlog`` imports it: every log reader reads them typed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.events import Edge, Event, WeightedEdge


@dataclass(frozen=True)
class RunnerStarted(Event):
    pid: int
    devices: list[str]
    resumed: bool  # continued from a checkpoint
    pairs_done: int = 0


@dataclass(frozen=True)
class ControlReceived(Event):
    command: str  # pause | resume | stop | checkpoint
    accepted: bool
    detail: str = ""


@dataclass(frozen=True)
class SessionPaused(Event):
    running: list[Edge] = field(default_factory=list)  # pairs that were in flight


@dataclass(frozen=True)
class SessionResumed(Event):
    pass


@dataclass(frozen=True)
class CheckpointWritten(Event):
    reason: str  # cycle | interval | pause | stop | request | pair
    seconds: float  # time it took
    size: int  # bytes
    running: list[Edge] = field(default_factory=list)


@dataclass(frozen=True)
class CheckpointFailed(Event):
    message: str


@dataclass(frozen=True)
class WorkerStarted(Event):
    worker: int
    device: str
    pid: int
    node: str = ""  # the machine it runs on (older logs: not recorded)


@dataclass(frozen=True)
class WorkerDied(Event):
    worker: int
    pid: int
    reason: str  # exit code, signal or the error line
    pair: Edge | None
    restart_in: float | None  # seconds until it is restarted; None: given up


@dataclass(frozen=True)
class SessionStopped(Event):
    pairs_done: int
    reason: str = ""  # "" when asked to stop; "disk full" when the runner had to
    detail: str = ""  # what failed, and how to go on


@dataclass(frozen=True)
class SessionFinished(Event):
    reason: str
    pairs_done: int
    mst: list[WeightedEdge] = field(default_factory=list)


@dataclass(frozen=True)
class PairsBeyondNeed(Event):
    """Pairs chosen ahead of a stop rule that then ended the exploration without them."""

    chosen: list[Edge]
    started: list[Edge]  # of those, the ones a worker had begun


@dataclass(frozen=True)
class SessionFailed(Event):
    message: str


@dataclass(frozen=True)
class SessionEstimated(Event):
    """What the rest of the session will cost, before its runner starts a pair: from a
    few timed steps of the real problem (engine.estimate) on ``device``, the schedule's
    steps and evaluations, and the pairs the stop rule leaves (ranges: low, high)."""

    device: str  # where the steps were timed
    workers: int  # pairs run side by side
    threads: int | None  # torch threads of the timed steps (the CPU), as each worker has
    step_points: int  # a timed gradient step: on this many points (pivots, or a curve's points)
    step_seconds: float
    point_seconds: float  # one point's evaluation on the evaluation set
    pair_seconds: list[float]  # one pair's run: low, high
    pairs: list[int]  # pairs left: fewest, most
    seconds: list[float]  # the rest of the session: low, high
    done: int  # pairs finished when it was made
    cycle_steps: list[int]  # steps of each cycle of one restart (a curve: of each evaluation interval)
    restarts: int = 1


@dataclass(frozen=True)
class StrategyChosen(Event):
    """How every worker of the session evaluates its pivots, chosen once by the first
    runner (timed, for --strategy auto) and read back by every runner after it, so that
    the numbers of a pair depend neither on the worker that runs it nor on how busy the
    machine was when a runner started. Logged once per session (again only where a
    resumed session runs on another kind of device)."""

    strategy: str | None  # batched | vmap | loop; None: not a network (nothing to choose)
    threads: int | None  # torch threads of each CPU worker's steps; None: a GPU (or a surface)
    device: str = "cpu"  # the kind of device it was chosen for: cpu | cuda
    timed: bool = False  # measured by the auto strategy's trial; False: as given (or as a checkpoint held)
    data: str | None = None  # where the training set is: "in memory" or "streamed" (None: not a network)


STARTUP_PHASES = {  # phase -> what the runner is doing, in words (in the order they come)
    "runner": "starting the runner and its workers",
    "minima": "loading and hashing the minima",
    "evaluating": "evaluating the minima",
    "timing": "timing a few steps for the estimate",
    "first cycle": "starting the first cycle",
}
CHECKED_PHASES = ("evaluating", "timing", "first cycle")  # the problem was accepted: its model, data and minima are sound


@dataclass(frozen=True)
class StartupPhaseStarted(Event):
    """What the runner does until the first step; a failure before ``evaluating`` is a refusal of the problem."""

    phase: str  # a key of STARTUP_PHASES
    detail: str = ""
