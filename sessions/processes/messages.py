"""The messages between the runner and its worker pool: one typed protocol for any pool.

The runner talks to workers only through a ``WorkerPool`` (sessions.processes.workers):
it submits a pair's packed connection state to an idle worker, asks a worker to
stop or to send its state at the next step boundary, and polls what comes up.
``LocalPool`` (processes on this machine) implements it; a pool on a cluster
(e.g. Ray actors) implements the same methods and sends the same messages.

Up, from ``WorkerPool.poll``, in the order each worker sent them:

    WorkerReady(worker, pid, device, node)      built its problem; takes jobs now (node: the machine's name)
    WorkerEvent(worker, event)                  an engine event of the pair it runs (typed, as emitted)
    StateSaved(worker, pair, packed, reason)    its connection's state at a step boundary;
                                                reason: cycle | interval | request
    JobStopped(worker, pair, packed)            a stop request honoured: the state to go on from
    JobDone(worker, pair, packed)               the connection finished: its final state
    JobFailed(worker, pair, message, fatal)     the job raised; the worker exits. fatal: the same
                                                job would fail again (e.g. a diverging band)

And from ``WorkerPool.dead``, once per death:

    WorkerExited(worker, pid, reason, pair)     the worker is gone (exit code, signal); the pair it held

``packed`` is ``sessions.disk.statepack.pack_state`` bytes. Every message travels only
between the session's own processes (pickled by the pool's transport); nothing
of it is written to disk as it is: the runner writes events to the log and
states to checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.events import Event

Pair = tuple[int, int]


@dataclass(frozen=True)
class WorkerReady:
    worker: int
    pid: int
    device: str
    node: str = ""  # the machine it runs on (a pool on a cluster has several)


@dataclass(frozen=True)
class WorkerEvent:
    worker: int
    event: Event


@dataclass(frozen=True)
class StateSaved:
    worker: int
    pair: Pair
    packed: bytes
    reason: str  # cycle | interval | request


@dataclass(frozen=True)
class JobStopped:
    worker: int
    pair: Pair
    packed: bytes


@dataclass(frozen=True)
class JobDone:
    worker: int
    pair: Pair
    packed: bytes


@dataclass(frozen=True)
class JobFailed:
    worker: int
    pair: Pair
    message: str
    fatal: bool  # a retry would fail the same way


@dataclass(frozen=True)
class WorkerExited:
    worker: int
    pid: int
    reason: str  # "exit code N" | "killed by signal N"
    pair: Pair | None  # the pair it held, if any


WorkerMessage = WorkerReady | WorkerEvent | StateSaved | JobStopped | JobDone | JobFailed
