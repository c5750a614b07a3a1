"""Worker processes: each runs AutoNEB for one pair at a time on its device.

The runner talks to its workers only through ``WorkerPool``: submit a pair's
connection state, ask for a stop or a state at the next step boundary, poll the
messages that come up, notice and restart dead workers. ``LocalPool`` runs one
process per device (forked by multiprocessing's fork server); another pool (e.g. on Ray) can take its
place without touching the runner.

The messages up are the dataclasses of ``sessions.processes.messages``, which documents
the protocol. Each worker sends them on a pipe of its own, written by that
worker alone: a worker killed in the middle of a message can neither leave a
lock held that another worker needs, nor leave half a message in a channel that
others share. The runner reads a dead worker's pipe to its end before it
reports the death, so nothing the worker sent is lost.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

from sessions.processes.devices import cpu_share
from sessions.processes.messages import (
    JobDone,
    JobFailed,
    JobStopped,
    Pair,
    StateSaved,
    WorkerEvent,
    WorkerExited,
    WorkerMessage,
    WorkerReady,
)

ORPHAN_CHECK_SECONDS = 1.0  # how often an idle worker looks whether its runner still lives
DRAIN_SECONDS = 5.0  # a dead worker whose pipe never ends (should not happen) is reported after this
# What the fork server imports once for every worker it forks: torch and the modules a
# worker runs (torch._dynamo, 2 to 5 s, only where a worker needs it: _will_import_dynamo).
PRELOAD = ("torch", "sessions.problem.build", "sessions.disk.statepack", "sessions.disk.config", "engine.paths.registry",
           "engine.paths.autoneb", "engine.paths.schedule")


def fork_server_from_here() -> bool:
    """Make multiprocessing's fork server a fork of this process, which has imported
    ``PRELOAD`` (the caller's part: ``Runner._fork_server_from_here``) and runs no thread
    of its own, instead of a new interpreter that imports them again (torch and the
    worker's modules: 2 s of CPU, 1.8 user and 0.3 system, for every session).
    ``LocalPool.start`` then finds the server running.

    The server keeps nothing of this process but its imports: every descriptor is closed
    but the server's own two and the standard streams (so it holds neither the session's
    lock nor its log), and its signals are as a new interpreter's. False, with nothing
    done, where that cannot be done safely: a thread of this process runs, a fork server
    runs already, or this Python's fork server takes more than the two descriptors of
    Python 3.11 to 3.13 (3.14 adds an authentication key)."""
    import signal
    import socket
    import sys
    from multiprocessing import connection, resource_tracker, util

    server = multiprocessing.forkserver._forkserver
    if threading.active_count() != 1 or sys.version_info >= (3, 14) or server._forkserver_pid is not None:
        return False
    with server._lock:
        resource_tracker.ensure_running()
        with socket.socket(socket.AF_UNIX) as listener:
            address = connection.arbitrary_address("AF_UNIX")
            listener.bind(address)
            if not util.is_abstract_socket_namespace(address):
                os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()  # every client holds the writing end; the server ends with the last
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the fork server
                try:
                    server._lock = threading.Lock()  # held here at the fork: free for the forks that start servers of their own
                    low = 3
                    for fd in sorted((listener.fileno(), alive_r)):
                        os.closerange(low, fd)
                        low = fd + 1
                    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
                    for number in (signal.SIGTERM, signal.SIGHUP):
                        signal.signal(number, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    multiprocessing.forkserver.main(listener.fileno(), alive_r, [])
                finally:
                    os._exit(0)
            os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    return True


class WorkerPool(Protocol):
    devices: list[str]
    threads: int | None  # torch threads each CPU worker is built with (None: GPU workers); known once started
    start_advice: str  # what to check when its workers keep ending before they are ready ("": the runner log)

    def start(self) -> None: ...
    def idle(self) -> list[int]: ...
    def submit(self, worker: int, pair: Pair, packed: bytes) -> None: ...
    def request_stop(self, worker: int) -> None: ...
    def request_state(self, worker: int) -> None: ...
    def poll(self, timeout: float) -> list[WorkerMessage]: ...
    def dead(self) -> list[WorkerExited]: ...
    def restart(self, worker: int) -> None: ...
    def job(self, worker: int) -> Pair | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _PipeEnded:
    """A worker's pipe has ended: everything it sent before is in the inbox ahead of this."""

    worker: int
    pipe: Any


@dataclass
class _Slot:
    device: str
    process: Any = None
    jobs: Any = None
    stop: Any = None
    want_state: Any = None
    up: Any = None  # the reading end of the worker's pipe; None once it has ended
    pair: Pair | None = None
    ready: bool = False
    announced_dead: bool = False
    dead_since: float | None = None
    pid: int = 0


@dataclass
class LocalPool:
    """One worker process per device (from the fork server): jobs down a queue, messages up a pipe each."""

    devices: list[str]
    config: Any  # the SessionConfig; each worker gets its to_dict() and rebuilds it once
    checkpoint_interval: float
    slots: list[_Slot] = field(default_factory=list)
    start_advice: ClassVar[str] = ""  # a worker's traceback goes to the runner log

    @property
    def threads(self) -> int | None:
        """The torch threads of each CPU worker: the config's (--threads, or the session's stored
        count), else its share of this machine's cores (``worker_threads``)."""
        return worker_threads(self.config) if "cpu" in self.devices else None

    def __post_init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self.slots = [_Slot(device) for device in self.devices]
        self._starter: threading.Thread | None = None
        self._start_error: BaseException | None = None
        # What the workers sent, whole messages only: each pipe is read on a thread of its
        # own, so a worker frozen halfway through writing a message (stopped, swapped out)
        # holds up its own reader, never the runner and the other workers' messages.
        self._inbox: queue.Queue[Any] = queue.Queue()

    def start(self) -> None:
        """Start the fork server, which imports torch and the workers' modules once while the
        runner imports its own (unless the runner forked it already: ``fork_server_from_here``),
        and fork the workers from it (on a thread: a fork waits for the server's imports). A
        worker started again after a death is a fork too: milliseconds, where a new
        interpreter took seconds of imports."""
        self._context.set_forkserver_preload(list(PRELOAD))
        multiprocessing.forkserver.ensure_running()
        self._starter = threading.Thread(target=self._start_all, name="worker starter", daemon=True)
        self._starter.start()

    def _start_all(self) -> None:
        try:
            for index in range(len(self.slots)):
                self._spawn(index)
        except BaseException as error:  # noqa: BLE001 - raised on the runner's thread by _started
            self._start_error = error

    def _started(self) -> None:
        """The workers' first start has been made (every other call waits for it)."""
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            raise error

    def _spawn(self, index: int) -> None:
        slot = self.slots[index]
        slot.jobs = self._context.Queue()
        slot.stop = self._context.Event()
        slot.want_state = self._context.Event()
        slot.pair = None
        slot.ready = False
        slot.announced_dead = False
        slot.dead_since = None
        slot.up, writer = self._context.Pipe(duplex=False)
        slot.process = self._context.Process(
            target=worker_main,
            args=(index, slot.device, self.config.to_dict(), self.checkpoint_interval, slot.jobs, writer, slot.stop,
                  slot.want_state),
            name=f"nebtui-worker-{index}",
            # not daemonic, so that it may start processes of its own (a streamed data set's
            # DataLoader workers); it ends with its runner all the same: close() tells it to,
            # and one whose runner was killed finds itself orphaned (worker_main)
            daemon=False,
        )
        slot.process.start()
        writer.close()  # the worker holds the only writing end: its death ends the pipe
        slot.pid = slot.process.pid
        threading.Thread(target=self._read, args=(index, slot.up), name=f"worker {index} reader",
                         daemon=True).start()

    def _read(self, index: int, pipe: Any) -> None:
        """Move the worker's messages from its pipe to the inbox, in order, until the pipe
        ends (the worker is gone); then say so with the pipe, which ``poll`` retires."""
        try:
            while True:
                self._inbox.put(pipe.recv())
        except (EOFError, OSError):  # the worker is gone; a message it was writing ends here
            pass
        finally:
            self._inbox.put(_PipeEnded(index, pipe))

    def idle(self) -> list[int]:
        self._started()
        return [i for i, s in enumerate(self.slots) if s.ready and s.pair is None and s.process.is_alive()]

    def job(self, worker: int) -> Pair | None:
        self._started()
        return self.slots[worker].pair

    def submit(self, worker: int, pair: Pair, packed: bytes) -> None:
        self._started()
        slot = self.slots[worker]
        slot.stop.clear()
        slot.want_state.clear()
        slot.pair = pair
        slot.jobs.put((pair, packed))

    def request_stop(self, worker: int) -> None:
        self._started()
        self.slots[worker].stop.set()

    def request_state(self, worker: int) -> None:
        self._started()
        self.slots[worker].want_state.set()

    def poll(self, timeout: float) -> list[WorkerMessage]:
        """The messages that came up within ``timeout`` seconds, each worker's in the order it sent them."""
        self._started()
        received: list[Any] = []
        try:
            received.append(self._inbox.get(timeout=timeout))
            while True:
                received.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        messages: list[WorkerMessage] = []
        for item in received:
            if isinstance(item, _PipeEnded):
                item.pipe.close()
                slot = self.slots[item.worker]
                if slot.up is item.pipe:  # not the pipe of a worker started again since
                    slot.up = None
            else:
                messages.append(item)
        for message in messages:
            slot = self.slots[message.worker]
            match message:
                case WorkerReady():
                    slot.ready = True
                case JobStopped() | JobDone():
                    slot.pair = None
                case JobFailed():
                    slot.ready = False  # it is on its way out; dead() will report the pair it held
        return messages

    def dead(self) -> list[WorkerExited]:
        """Workers that died since the last call, with the pair each held: once what they
        sent has been read (their pipe ended)."""
        self._started()
        found = []
        now = time.monotonic()
        for index, slot in enumerate(self.slots):
            if slot.process is None or slot.process.is_alive() or slot.announced_dead:
                continue
            slot.dead_since = slot.dead_since or now
            if slot.up is not None and now - slot.dead_since < DRAIN_SECONDS:
                continue  # poll() reads the rest of its pipe first
            slot.announced_dead = True
            code = slot.process.exitcode
            reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            found.append(WorkerExited(index, slot.pid, reason, slot.pair))
        return found

    def restart(self, worker: int) -> None:
        self._started()
        slot = self.slots[worker]
        if slot.process is not None:
            slot.process.join(timeout=1)
        if slot.up is not None:
            slot.up.close()
        self._spawn(worker)

    def close(self) -> None:
        """Workers that are up exit when told; one still starting (the runner failed before it
        was ready) holds nothing and is not waited for."""
        try:
            self._started()
        except Exception:  # noqa: BLE001 - the workers that did start are closed all the same
            pass
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                if slot.ready:
                    slot.jobs.put(None)
                else:
                    slot.process.kill()
        deadline = time.monotonic() + 5
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.1, deadline - time.monotonic()))
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(timeout=2)
            if slot.up is not None:
                slot.up.close()
                slot.up = None


def worker_main(index, device, config, interval, jobs, up, stop, want_state) -> None:  # noqa: ANN001
    """A worker process: build the problem on ``device``, then run pair jobs for the
    runner that started it; it exits once that runner is gone."""
    parent = multiprocessing.parent_process()

    def orphaned() -> bool:
        """The runner is gone (kill -9 leaves no one to stop us): the pipe that multiprocessing
        keeps from it to each of its children has ended, even if it died before this process
        ran a line. (Forked by the fork server, the runner is not our parent process.)"""
        return parent is None or not parent.is_alive()

    def send(message: WorkerMessage) -> None:
        try:
            up.send(message)
        except OSError:  # the runner is gone (a broken pipe): nobody will read what we do
            os._exit(0)

    def state_wanted() -> bool:
        if want_state.is_set():
            want_state.clear()
            return True
        return False

    def step_boundary() -> None:
        if orphaned():
            os._exit(0)  # nobody reads our messages; the next runner redoes this work from its checkpoint

    if orphaned():
        os._exit(0)

    def watch() -> None:
        """Whatever the worker waits on, it ends once its runner is gone: a runner killed while
        it wrote a job into the queue leaves the message half written, and the worker's read
        of it would wait for ever for the rest (the queue's writing end lives on here too)."""
        while not orphaned():
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="orphan watch", daemon=True).start()
    session_config = worker_config(config)
    threads = worker_threads(session_config) if device == "cpu" else None
    energy, schedule = build_worker(session_config, device, threads)
    send(WorkerReady(index, os.getpid(), device))
    while True:
        try:
            job = jobs.get(timeout=ORPHAN_CHECK_SECONDS)
        except queue.Empty:
            if orphaned():
                os._exit(0)  # not return: the runner is gone, and nothing of ours needs an orderly exit
            continue
        if job is None:
            return
        pair, packed = job
        if not run_job(index, energy, schedule, pair, packed, interval, send, stop.is_set, state_wanted,
                       step_boundary):
            os._exit(3)


def worker_threads(config: Any) -> int:
    """A CPU worker's torch threads, whatever OMP_NUM_THREADS says: the config's (--threads,
    or the count the session stored with its strategy), else the worker's share of the
    cores, one worker all of them (a Ray actor gets the same share of a node's cores).
    Which count runs (the share, or one thread where the session's trial found that
    faster) comes with each pair's state: the runner chose it once for every worker."""
    return config.threads or cpu_share(config.workers)


def worker_config(config: dict[str, Any]) -> Any:
    """The SessionConfig again, from the to_dict() a worker process or actor was sent."""
    from sessions.disk.config import SessionConfig

    return SessionConfig.from_dict(config)


def build_worker(session_config: Any, device: str, threads: int | None = None) -> tuple[Any, Any]:
    """A worker's energy on ``device`` (with ``threads`` torch threads where given) and the schedule it runs."""
    from sessions.problem.build import build

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    built = build(session_config, device, threads)
    schedule = session_config.run_schedule()
    if _will_import_dynamo(built.energy, schedule):
        # pay the 2 to 5 s now, while the runner still evaluates the minima, not once the first pair runs
        import torch._dynamo  # noqa: F401
    return built.energy, schedule


def _will_import_dynamo(energy: Any, schedule: Any) -> bool:
    """Whether the first pair will import torch._dynamo: vmap's first call, torch.compile and
    the first torch.optim optimiser do; a surface, or a network batched or looped, under
    plain SGD (written out by the band) does not."""
    from engine.paths.autoneb import PlainSGD
    from engine.paths.schedule import Schedule

    if getattr(energy, "strategy", None) in ("vmap", "auto") or getattr(energy, "compiled", False):
        return True
    return not isinstance(schedule, Schedule) or not all(PlainSGD.covers(cycle) for cycle in schedule.cycles)


def run_job(index: int, energy: Any, schedule: Any, pair: Pair, packed: bytes, interval: float,
            send: Callable[[WorkerMessage], None], stop_requested: Callable[[], bool],
            state_requested: Callable[[], bool], step_boundary: Callable[[], None] = lambda: None) -> bool:
    """Run one pair job from its packed state, as any pool's worker does: events, states at
    cycle ends, every ``interval`` seconds and on request, then JobStopped or JobDone,
    all through ``send``. ``state_requested`` answers once per request (it clears it);
    ``step_boundary`` is called at every step boundary first. False when the job raised:
    JobFailed was sent, and the worker must go (its pool reports the pair it held)."""
    from engine.paths.registry import run_from_state
    from engine.paths.run import DivergedError
    from sessions.disk.folder import SessionError
    from sessions.disk.statepack import pack_state, unpack_state

    try:
        connection = run_from_state(energy, schedule, unpack_state(packed),
                                    on_event=lambda event: send(WorkerEvent(index, event)))
        marks = {"time": time.monotonic(), "cycle": (connection.restart, connection.cycle)}

        def should_stop() -> bool:
            step_boundary()
            if stop_requested():
                return True
            now = time.monotonic()
            position = (connection.restart, connection.cycle)
            reason = None
            if state_requested():
                reason = "request"
            elif position != marks["cycle"]:
                reason = "cycle"
            elif now - marks["time"] >= interval:
                reason = "interval"
            if reason is not None:
                send(StateSaved(index, pair, pack_state(connection.state_dict()), reason))
                marks["time"], marks["cycle"] = now, position
            return False

        result = connection.run(should_stop)
        finished = JobStopped if result is None else JobDone
        send(finished(index, pair, pack_state(connection.state_dict())))
        return True
    except Exception as error:  # noqa: BLE001 - reported to the runner, which restarts the worker
        fatal = isinstance(error, (DivergedError, ValueError, SessionError))
        last = str(error) if fatal else traceback.format_exception_only(type(error), error)[-1].strip()
        send(JobFailed(index, pair, last, fatal))  # whole before send returns
        return False
