"""The runner: one detached process per session that owns it.

It runs the landscape loop (which pair next), hands pair jobs to the worker
pool, writes every event to the log, writes checkpoints, answers the control
socket and restarts workers that die. Started by the CLI as
``python -m sessions.processes.spawn SESSION_FOLDER`` in its own process session, so it
survives the terminal going away (sessions/processes/spawn.py takes the session's lock
before this module is imported).

On disk, besides the event log: ``checkpoint.safetensors`` holds the landscape
and the state of every connection in flight; each finished connection's state
is written once to ``results/paths/A-B.safetensors``; ``results/result.json``
is the final result.

Several workers, one result. The exploration's ``PairSequence`` chooses pairs
into one order, up to ``lookahead_for(workers)`` of them ahead of their paths,
and applies finished paths only in that order; it chooses new pairs right after
each application, never when a clock or a worker says. Idle workers take the
open pairs oldest first. So which worker finishes first, a slow worker, a
restart or a kill -9 and resume change when things happen, never what: the
pairs, the paths (each pair has its own seed) and the MST are those of an
undisturbed run with the same lookahead, and under the all-pairs rule those of
one worker. A path that finishes early is saved at once and waits in the
sequence; a resumed runner records the saved paths again in the sequence's
order. Pairs chosen beyond the need of a stop rule are stopped, their files set
aside in results/beyond_need/, and counted in a PairsBeyondNeed event.

A CPU session's runner (devices known without torch) first imports what its
workers run and forks their fork server from itself, so torch is imported once for
both; a GPU session's runner starts a fork server that imports them in a new
interpreter, beside its own imports. The workers are forked from that server as
soon as it is up, and build their problem while the runner builds its own.
Everything else that needs torch is imported where it is used.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.events import Event
from engine.landscape.sequence import lookahead_for
from sessions import events as session_events
from sessions.disk.results import PATHS_DIR, RESULT_FILE, TABLE1_FILE, path_file, result_document, save_result
from sessions.problem.trust import runnable_config
from sessions.disk.control import EXPIRED, ControlServer, expired
from sessions.processes.devices import cpu_share, resolve_devices, surely_cpu
from sessions.disk.eventlog import EventLogWriter
from sessions.disk.folder import SessionError, SessionFolder
from sessions.disk.lock import LockedError, RunnerLock
from sessions.processes.messages import JobDone, JobFailed, JobStopped, StateSaved, WorkerEvent, WorkerMessage, WorkerReady
from sessions.problem.build import build
from sessions.disk.statepack import pack_state, read_state, unpack_state
from sessions.processes.workers import PRELOAD, LocalPool, WorkerPool, fork_server_from_here

if TYPE_CHECKING:
    from engine.paths.autoneb import Connection

# Space held back in the session folder for the last words of a runner on a full disk: it
# removes the file, then writes why it stopped to the log (a few hundred bytes). Large
# enough that the disk's other writers are unlikely to take it all in between.
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 256 * 1024
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
MAX_RETRIES = 3  # restarts of a worker for the same pair before the session gives up
FAILED_STARTS = 3  # a worker that ends before it is ready this many times in a row cannot start here
HEARTBEAT_SECONDS = 1.0
POLL_SECONDS = 0.1

Pair = tuple[int, int]


def _key(pair: Pair) -> str:
    return f"{pair[0]}-{pair[1]}"


def disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a full disk (or quota)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def say(message: str) -> None:
    """A line to the runner's stderr (runner.log), which a full disk may refuse: then nothing."""
    try:
        print(f"nebtui runner: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass


@dataclass(eq=False)  # each request is itself: the queue finds and removes it by identity
class ControlRequest:
    """A command from the control thread (or the SIGTERM handler), queued for the main loop,
    which fills ``reply`` and sets ``done``; one that has ``expires`` (time.time()) and is
    taken later is answered EXPIRED instead."""

    command: str  # pause | resume | stop | checkpoint | status
    expires: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] = field(default_factory=dict)


class Runner:
    def __init__(self, folder: SessionFolder, pool: WorkerPool | None = None):
        self.folder = folder
        self.config = runnable_config(folder)  # a damaged config or a factory not vouched for: SessionError
        self.schedule = self.config.run_schedule()
        self.pool_override = pool
        self.log: EventLogWriter | None = None
        self.commands: list[ControlRequest] = []  # the control thread's requests, until the loop takes them
        self.commands_lock = threading.RLock()  # re-entered by the SIGTERM handler on the main thread
        self.accepting = True  # False once the loop has ended: commands are refused at once
        self.paused = False
        self.pausing = False
        self.stopping = False
        self.assigned: dict[Pair, int] = {}
        self.started: set[Pair] = set()  # pairs handed to a worker by this process
        self.retries: dict[Pair, int] = {}
        self.restart_at: dict[int, float] = {}
        self.failures: dict[int, str] = {}
        self.ready: set[int] = set()  # workers that said they are ready since they were (re)started
        self.failed_starts: dict[int, int] = {}  # per worker: ended before it was ready, in a row
        self.fatal: str | None = None  # an error that a retry would only repeat
        self.status = "starting"

    # --- events ---------------------------------------------------------------

    def emit(self, event: Event) -> None:
        assert self.log is not None
        self.log.append(event)

    # --- the process ----------------------------------------------------------

    def main(self, lock: RunnerLock | None = None, log: EventLogWriter | None = None) -> int:
        """Run the session to its end; ``lock``: the session's lock, if already taken; ``log``:
        the event log's writer, if the process has already announced the runner in it
        (sessions.processes.spawn.announce)."""
        lock = lock or RunnerLock(self.folder.lock_path)
        try:
            lock.acquire()
        except LockedError as error:
            say(str(error))
            return 3
        self.log = log or EventLogWriter(self.folder.events_path)
        stop_beating = threading.Event()
        control = None
        self.pool: WorkerPool | None = None
        try:
            self._reserve_space()
            signal.signal(signal.SIGTERM, lambda *_: self._request("stop"))
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.folder.beat()
            if self.config.cluster == "local" and self.pool_override is None and surely_cpu(self.config.device):
                self._fork_server_from_here()
            threading.Thread(target=self._beat, args=(stop_beating,), name="heartbeat", daemon=True).start()
            if log is None:  # else announced before this process's imports
                self.emit(session_events.StartupPhaseStarted(phase="runner"))
            # How the pivots are evaluated, as an earlier runner of this session chose it (None: a new session).
            stored = self._stored_choice()
            chosen: session_events.StrategyChosen | None = None
            # The CPU is known without torch (cpu, or auto with no GPU driver); GPUs are counted by torch.
            if self.config.cluster == "local" or self.pool_override is not None:
                devices = ["cpu"] if surely_cpu(self.config.device) else resolve_devices(self.config.device)
                if devices == ["cpu"]:
                    devices = devices * self.config.workers
                kind = "cuda" if devices[0].startswith("cuda") else "cpu"
                chosen = stored if stored is not None and stored.device == kind else None
                self.pool = self.pool_override or LocalPool(devices, self.chosen_config(chosen),
                                                            self.config.checkpoint_interval)
            else:  # Ray actors on a cluster; this process builds its own problem on the CPU
                from sessions.processes.raypool import RayPool

                # The actors' kind is known once the pool has joined the cluster: they take the
                # stored thread count, and the strategy with each pair's state.
                threads = stored.threads if stored is not None and stored.device == "cpu" else self.config.threads
                workers_config = self.config.model_copy(update={"threads": threads})
                self.pool, devices = RayPool(self.config.cluster, workers_config, self.config.checkpoint_interval), []
            self.pool.start()  # the workers import torch and build their problem while we do the same
            devices = devices or self.pool.devices
            # A new session evaluates its minima once (full training set, BatchNorm
            # recalibrated): on the first GPU when there is one, not on the CPU, where
            # ten ResNet-20 minima would take minutes before any worker starts.
            # Building checks what the CLI left to us (model, data, minima files): a
            # failure before the "evaluating" phase is a refusal of the problem.
            minima = len(self.config.problem.minima)
            self.emit(session_events.StartupPhaseStarted(
                phase="minima", detail=f"{minima} files" if minima else self.config.problem.surface or ""))
            device = devices[0] if devices[0].startswith("cuda") else "cpu"
            if stored is not None and stored.device == ("cpu" if device == "cpu" else "cuda"):
                chosen = stored  # on Ray too, where the actors take it with each pair's state
            # Its steps at a worker's thread count (the stored one, else the share of the cores
            # the pool gives each worker): the choice and the estimate are timed so.
            threads = None if device != "cpu" else chosen.threads if chosen is not None else \
                getattr(self.pool, "threads", None) or self.config.threads or cpu_share(self.config.workers)
            built = build(self.chosen_config(chosen), device, threads)
            self.energy, self.built = built.energy, built
            self.emit(session_events.StartupPhaseStarted(phase="evaluating", detail=f"{len(built.names)} minima"))
            resumed = self._load_or_start(built)
            control = ControlServer(self.folder.control_socket_path, self._on_command).start()
            self.emit(session_events.StartupPhaseStarted(phase="timing"))
            chosen = chosen or self._choose(built, device)
            self._estimate(built, device, chosen.threads if chosen.strategy is not None else threads)
            self.emit(
                session_events.RunnerStarted(
                    pid=os.getpid(), devices=devices, resumed=resumed, pairs_done=len(self.exploration.paths)
                )
            )
            self.emit(session_events.StartupPhaseStarted(phase="first cycle"))
            return self._loop()
        except Exception as error:  # noqa: BLE001 - a SessionError is its own line; others logged whole to runner.log
            line = str(error) if isinstance(error, SessionError) else \
                traceback.format_exception_only(type(error), error)[-1].strip()
            if disk_full(error):
                self._stop_on_full_disk(line)
                return 1
            if not isinstance(error, SessionError):
                try:
                    traceback.print_exc()
                except OSError:
                    pass
            self._fail(line)
            return 1
        finally:
            stop_beating.set()
            self._refuse_commands()
            if control is not None:
                control.close()
            if self.pool is not None:
                self.pool.close()
            self.log.close()
            (self.folder.path / RESERVE_FILE).unlink(missing_ok=True)  # held only while a runner runs
            lock.release()

    def _stored_choice(self) -> session_events.StrategyChosen | None:
        """The strategy and thread count an earlier runner of this session chose, from the
        event log (the latest; None: none was chosen yet, or the session predates the choice)."""
        from engine.events import StepEnergies
        from sessions.disk.eventlog import EventLogReader

        with EventLogReader(self.folder.events_path, ignore={StepEnergies.kind}) as reader:  # steps: most of a log
            found = [e.event for e in reader.poll() if isinstance(e.event, session_events.StrategyChosen)]
        return found[-1] if found else None

    def chosen_config(self, chosen: session_events.StrategyChosen | None) -> Any:
        """The config that the energies are built from: with the session's stored strategy and
        thread count where it has them, so a resumed session's energies neither time nor
        choose again; else the config as given."""
        if chosen is None or chosen.strategy is None:
            return self.config
        return self.config.model_copy(update={"strategy": chosen.strategy, "threads": chosen.threads})

    def _choose(self, built: Any, device: str) -> session_events.StrategyChosen:
        """Choose, once for the session, how the pivots are evaluated (sessions.processes.timing.choose_strategy,
        on this process's energy: every pair's state carries the choice to the worker that runs it),
        and store it in the log for the runners that resume the session. An older session's
        checkpoint may already have made the choice: it is kept, not timed again."""
        from sessions.processes.timing import choose_strategy

        chosen = choose_strategy(built, self.schedule, device)
        if chosen.strategy is not None:
            self.emit(chosen)
        return chosen

    def _estimate(self, built: Any, device: str, threads: int | None) -> None:
        """Time a few steps of the problem and say what the pairs left will cost
        (SessionEstimated), before the first pair starts. A failure to time is said in
        runner.log and costs the session nothing else."""
        from sessions.processes.timing import estimate_session

        try:
            event = estimate_session(self.config, built, self.schedule, device=device, threads=threads,
                                     workers=len(self.pool.devices), done=len(self.exploration.paths))
        except Exception:  # noqa: BLE001 - the run itself will say what is wrong, if anything is
            say("no estimate: timing the first steps failed")
            traceback.print_exc()
            return
        if event is not None:
            self.emit(event)

    def _fail(self, message: str) -> None:
        self.status = "failed"
        say(message)
        try:
            self.emit(session_events.SessionFailed(message=message))
        except SessionError:
            pass

    def _reserve_space(self) -> None:
        """Hold RESERVE_BYTES of the disk in the session folder for ``_stop_on_full_disk``
        (written out, not a sparse file: its blocks are really taken)."""
        path = self.folder.path / RESERVE_FILE
        if path.is_file() and path.stat().st_size >= RESERVE_BYTES:
            return
        try:
            with open(path, "wb") as out:
                out.write(bytes(RESERVE_BYTES))
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            pass  # a disk already full, or a file size limit below it: what was written is held all the same

    def _stop_on_full_disk(self, message: str) -> None:
        """The disk is full: give back the reserved space and say so in the log, so that
        the session reads "stopped: disk full" and resumes from its last checkpoint once
        there is space (what was saved before stays as it was)."""
        self.status = "stopped"
        (self.folder.path / RESERVE_FILE).unlink(missing_ok=True)
        exploration = getattr(self, "exploration", None)
        done = len(exploration.paths) if exploration is not None else 0
        advice = f"free space, then nebtui sessions resume {self.folder.id} continues from the last checkpoint"
        say(f"stopped: disk full ({message}): {advice}")
        try:
            self.emit(session_events.SessionStopped(pairs_done=done, reason="disk full", detail=f"{message}: {advice}"))
        except SessionError:
            pass  # the space went to another writer: the status reads crashed, and resume works all the same

    def _fork_server_from_here(self) -> None:
        """Import what the workers run and fork their fork server from this process, which
        needs the same imports (``fork_server_from_here``: one import of torch instead of
        two). A GPU's workers keep a server of their own: torch may have looked at the GPUs
        here. The heartbeat goes on meanwhile, on a thread that ends before the fork."""
        importing = threading.Event()
        beating = threading.Thread(target=self._beat, args=(importing,), name="heartbeat", daemon=True)
        beating.start()
        try:
            for name in PRELOAD:
                importlib.import_module(name)
        finally:
            importing.set()
            beating.join()
        fork_server_from_here()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                self.folder.beat()
            except OSError:
                pass  # a full disk: the status falls back to the lock, which still tells the truth

    # --- state ------------------------------------------------------------------

    @property
    def paths_folder(self) -> Path:
        return self.folder.results_path / PATHS_DIR

    def _load_or_start(self, built: Any) -> bool:
        """The exploration from the last checkpoint (plus finished paths), or a new one."""
        from engine.landscape.exploration import Exploration
        from sessions.disk.checkpoint import load_checkpoint

        loaded = load_checkpoint(self.folder.path)
        finished = self._finished_states()
        from sessions.problem.build import PairwiseBuilt

        # --align-pairwise: each new pair's second end aligned to its first
        ends = built.ends if isinstance(built, PairwiseBuilt) else None
        if loaded is None:
            self.exploration = Exploration(
                built.energy, built.minima, self.schedule, seed=self.config.seed, on_event=self.emit,
                lookahead=lookahead_for(len(self.pool.devices)), landscape=self.config.landscape, ends=ends,
            )
            late = finished
        else:
            tensors, meta = dict(loaded.tensors), json.loads(json.dumps(loaded.meta))
            late = {}
            for key, state in finished.items():
                if key in meta["running"] or key not in meta["finished"]:
                    late[key] = state  # finished after the checkpoint was written
                    meta["running"].pop(key, None)
                    for name in [n for n in tensors if n.startswith(f"running.{key}.")]:
                        del tensors[name]
                    continue
                meta["paths"][key] = state["meta"]
                tensors.update({f"paths.{key}.{name}": t for name, t in state["tensors"].items()})
            self.exploration = Exploration.from_state(
                built.energy, self.schedule, {"tensors": tensors, "meta": meta}, on_event=self.emit, ends=ends
            )
        # Paths that finished after the checkpoint join in the order chosen; one may
        # become open only once those before it have joined.
        while ready := [key for key in sorted(late) if self._is_open(key)]:
            for key in ready:
                self.exploration.record(self._connection(late.pop(key)))
        return loaded is not None

    def _is_open(self, key: str) -> bool:
        a, b = key.split("-")
        self.exploration.pending()  # chooses what the last paths made room for
        return self.exploration.sequence.is_open((int(a), int(b)))

    def _finished_states(self) -> dict[str, dict[str, Any]]:
        states = {}
        if self.paths_folder.is_dir():
            for path in sorted(self.paths_folder.glob("*.safetensors")):
                states[path.stem] = read_state(path)
        return states

    def checkpoint(self, reason: str) -> None:
        started = time.monotonic()
        state = self.exploration.state_dict(finished=False)
        state["meta"]["finished"] = [_key(p) for p in sorted(self.exploration.paths)]
        try:
            from sessions.disk.checkpoint import save_checkpoint

            path = save_checkpoint(self.folder.path, state["tensors"], state["meta"])
        except SessionError as error:  # a CheckpointError: it says what could not be written
            self.emit(session_events.CheckpointFailed(message=str(error)))
            return
        self.emit(
            session_events.CheckpointWritten(
                reason=reason,
                seconds=time.monotonic() - started,
                size=path.stat().st_size,
                running=[list(p) for p in sorted(self.exploration.running)],
            )
        )

    # --- control ----------------------------------------------------------------

    def _on_command(self, command: str, expires: float | None) -> dict[str, Any]:
        """Called on the control thread: hand the command to the main loop and wait for its answer
        until the command expires (5 s without an expiry); one the loop has not taken by then is dropped."""
        return self._request(command, wait=5.0 if expires is None else max(0.0, expires - time.time()),
                             expires=expires)

    def _request(self, command: str, wait: float | None = None, expires: float | None = None) -> dict[str, Any]:
        """Queue a command for the main loop; with ``wait``, its answer (None: queue and return)."""
        request = ControlRequest(command, expires)
        with self.commands_lock:
            if not self.accepting:
                return self._ended_reply()
            self.commands.append(request)
        if wait is not None and not request.done.wait(wait):
            with self.commands_lock:
                if request in self.commands:  # not taken by the loop: it never will be
                    self.commands.remove(request)
                    return {"ok": False, "error": "the runner was busy and did not take the command in time: "
                                                  "nothing was applied; try again"}
            request.done.wait()  # taken just now: its answer comes at once
        return request.reply

    def _take_commands(self) -> list[ControlRequest]:
        """The commands to apply now; expired ones are answered and dropped (their client has given up)."""
        with self.commands_lock:
            pending, self.commands = self.commands, []
        taken = []
        for request in pending:
            if expired(request.expires):
                request.reply.update({"ok": False, "error": EXPIRED})
                request.done.set()
            else:
                taken.append(request)
        return taken

    def _ended_reply(self) -> dict[str, Any]:
        return {"ok": False, "error": f"its runner has exited (the session is {self.status}) before handling the command"}

    def _refuse_commands(self) -> None:
        """Answer the commands the loop will never handle (the process is about to exit)."""
        with self.commands_lock:
            self.accepting = False
            pending, self.commands = self.commands, []
        for request in pending:
            request.reply.update(self._ended_reply())
            request.done.set()

    def _handle_commands(self) -> None:
        for request in self._take_commands():
            accepted, detail = self._apply(request.command)
            request.reply.update({"ok": True, "accepted": accepted, "detail": detail, "status": self.status})
            if request.command != "status":
                self.emit(session_events.ControlReceived(command=request.command, accepted=accepted, detail=detail))
            request.done.set()

    def _apply(self, command: str) -> tuple[bool, str]:
        if command == "status":
            return True, self.status
        if self.stopping:
            return False, "the session is stopping"
        if command == "pause":
            if self.paused or self.pausing:
                return False, "already paused"
            self.pausing = True
            for worker in set(self.assigned.values()):
                self.pool.request_stop(worker)  # type: ignore[union-attr]
            return True, "pausing at the next step boundary"
        if command == "resume":
            if not (self.paused or self.pausing):
                return False, "not paused"
            self.paused = self.pausing = False
            self.status = "running"
            self.emit(session_events.SessionResumed())
            return True, "resumed"
        if command == "stop":
            self.stopping = True
            for worker in set(self.assigned.values()):
                self.pool.request_stop(worker)  # type: ignore[union-attr]
            return True, "stopping at the next step boundary"
        if command == "checkpoint":
            if not self.assigned:
                self.checkpoint("request")
                return True, "checkpoint written"
            for worker in set(self.assigned.values()):
                self.pool.request_state(worker)  # type: ignore[union-attr]
            return True, "checkpoint at the next step boundary"
        return False, f"unknown command {command}"

    # --- the loop -----------------------------------------------------------------

    def _loop(self) -> int:
        assert self.pool is not None
        self.status = "running"
        while True:
            self._handle_commands()
            if not (self.paused or self.pausing or self.stopping):
                self._dispatch()
            for message in self.pool.poll(POLL_SECONDS):
                self._handle(message)
            if self._check_workers():
                return 1
            if not self.assigned:
                if self.stopping:
                    self.status = "stopped"
                    self.checkpoint("stop")
                    self.emit(session_events.SessionStopped(pairs_done=len(self.exploration.paths)))
                    return 0
                if self.pausing:
                    self.pausing, self.paused, self.status = False, True, "paused"
                    self.checkpoint("pause")
                    self.emit(session_events.SessionPaused(running=[list(p) for p in sorted(self.exploration.running)]))
                if self.exploration.landscape.finished and not self.exploration.running:
                    self._finish()
                    return 0

    def _dispatch(self) -> None:
        """Idle workers take the open pairs, oldest first (the exploration chooses them)."""
        assert self.pool is not None
        idle = [w for w in self.pool.idle() if w not in self.restart_at]
        if not idle:
            return
        waiting = [p for p in self.exploration.pending() if p not in self.assigned]
        for worker, pair in zip(idle, waiting):
            self.pool.submit(worker, pair, pack_state(self.exploration.running[pair].state_dict()))
            self.assigned[pair] = worker
            self.started.add(pair)

    def _handle(self, message: WorkerMessage) -> None:
        match message:
            case WorkerReady(worker=worker, pid=pid, device=device, node=node):
                self.ready.add(worker)
                self.failed_starts.pop(worker, None)
                self.emit(session_events.WorkerStarted(worker=worker, device=device, pid=pid, node=node))
            case WorkerEvent(event=event):
                self.emit(event)
            case JobDone(pair=pair, packed=packed) if self.exploration.sequence.is_open(pair):
                connection = self._connection(unpack_state(packed))
                self._save_result(path_file(self.folder.results_path, pair), packed, f"the path of pair {pair}")
                self.assigned.pop(pair, None)
                self.retries.pop(pair, None)
                self.exploration.record(connection)
                if self.exploration.landscape.finished:
                    self._drop_beyond_need()
                self.checkpoint("pair")
            case JobStopped(pair=pair, packed=packed) if self.exploration.sequence.is_open(pair):
                self.exploration.running[pair] = self._connection(unpack_state(packed))
                self.assigned.pop(pair, None)
            case StateSaved(pair=pair, packed=packed, reason=reason) if self.exploration.sequence.is_open(pair):
                self.exploration.running[pair] = self._connection(unpack_state(packed))
                self.checkpoint(reason)
            case JobDone(pair=pair) | JobStopped(pair=pair):  # a pair dropped beyond need
                self.assigned.pop(pair, None)
            case JobFailed(worker=worker, message=text, fatal=fatal):
                self.failures[worker] = text
                if fatal:
                    self.fatal = text

    def _drop_beyond_need(self) -> None:
        """The landscape has finished: pairs chosen ahead and still running are not
        needed. Their workers stop at the next step boundary; nothing of theirs is kept."""
        assert self.pool is not None
        for pair in self.exploration.beyond_need:
            if pair in self.assigned:
                self.pool.request_stop(self.assigned[pair])

    def _connection(self, state: dict[str, Any]) -> Connection:
        """A connection of this session rebuilt from its state."""
        from engine.paths.registry import run_from_state

        return run_from_state(self.energy, self.schedule, state)

    def _check_workers(self) -> bool:
        """Restart dead workers (with backoff); True when the session must give up."""
        assert self.pool is not None
        now = time.monotonic()
        for exited in self.pool.dead():
            worker, pid, pair = exited.worker, exited.pid, exited.pair
            reason = self.failures.pop(worker, exited.reason)
            if self.fatal is not None:
                self.emit(session_events.WorkerDied(worker=worker, pid=pid, reason=reason,
                                                    pair=list(pair) if pair else None, restart_in=None))
                self.checkpoint("stop")
                self._fail(self.fatal)
                return True
            if worker not in self.ready:
                self.failed_starts[worker] = self.failed_starts.get(worker, 0) + 1
                if self.failed_starts[worker] >= FAILED_STARTS:
                    self.emit(session_events.WorkerDied(worker=worker, pid=pid, reason=reason, pair=None,
                                                        restart_in=None))
                    self.checkpoint("stop")
                    advice = self.pool.start_advice or f"see runner.log in {self.folder.path} for why"
                    self._fail(f"worker {worker} ended before it was ready {FAILED_STARTS} times in a row "
                               f"(last: {reason}): {advice}, fix the cause, then nebtui sessions resume "
                               f"{self.folder.id}")
                    return True
            self.ready.discard(worker)
            if pair is not None:
                self.assigned.pop(pair, None)
                self.retries[pair] = self.retries.get(pair, 0) + 1
                if self.retries[pair] > MAX_RETRIES:
                    self.emit(session_events.WorkerDied(worker=worker, pid=pid, reason=reason, pair=list(pair),
                                                        restart_in=None))
                    self.checkpoint("stop")
                    self._fail(f"pair {pair} failed {MAX_RETRIES + 1} times (last: {reason}): the session stopped; "
                               "fix the cause, then nebtui sessions resume")
                    return True
            # A pair's first death (a kill, the OOM killer) restarts its worker at once; the
            # same pair failing again backs off, 1 s then 2 s.
            delay = (0.0 if self.retries[pair] == 1 else 2.0 ** (self.retries[pair] - 2)) if pair is not None else 1.0
            self.restart_at[worker] = now + delay
            self.emit(session_events.WorkerDied(worker=worker, pid=pid, reason=reason,
                                                pair=list(pair) if pair else None, restart_in=delay))
        for worker, due in list(self.restart_at.items()):
            if now >= due:
                del self.restart_at[worker]
                self.pool.restart(worker)
        return False

    def _save_result(self, path: Path, data: bytes, what: str) -> None:
        """Write a result file; a full disk (or file size limit) fails the session in one
        line that says how to go on: everything saved before stays as it was."""
        save_result(path, data, what, f"nebtui sessions resume {self.folder.id} continues from the last checkpoint")

    def _finish(self) -> None:
        result = self.exploration.finish()
        self._set_aside_beyond_need()
        self.checkpoint("finish")
        self._save_result(self.folder.results_path / RESULT_FILE, result_document(result), "the result")
        if self.config.problem.kind == "network":
            self._save_table1(result.paths)
        self.status = "finished"
        self.emit(
            session_events.SessionFinished(
                reason=result.finished_reason,
                pairs_done=len(result.paths),
                mst=[[a, b, s] for a, b, s in result.mst],
            )
        )


    def _save_table1(self, results: dict[tuple[int, int], Any]) -> None:
        """Table 1's row, evaluated here with the problem this runner built (on its device,
        its data loaded, torch imported): what a following command prints when the session
        ends, without building the problem again. One that cannot be evaluated is left to
        that command, which says why (runner.log keeps the traceback)."""
        from sessions.analysis.collect import table1_of

        try:
            row = table1_of(self.config, self.built, results)
        except Exception:  # noqa: BLE001 - the session's paths are saved: the row is a courtesy
            traceback.print_exc()
            return
        self._save_result(self.folder.results_path / TABLE1_FILE, (json.dumps(row) + "\n").encode(), "Table 1's row")

    def _set_aside_beyond_need(self) -> None:
        """Paths computed ahead and not needed move to results/beyond_need/: kept, but
        outside the result and its reports. The event says how many pairs were chosen
        and started beyond need (started: as far as this process saw)."""
        dropped = self.exploration.beyond_need
        for path in sorted(self.paths_folder.glob("*.safetensors")) if self.paths_folder.is_dir() else ():
            a, b = path.stem.split("-")
            if (int(a), int(b)) not in self.exploration.paths:
                target = self.folder.results_path / "beyond_need" / path.name
                target.parent.mkdir(exist_ok=True)
                path.replace(target)
        if dropped:
            self.emit(session_events.PairsBeyondNeed(
                chosen=[list(p) for p in dropped],
                started=[list(p) for p in dropped if p in self.started],
            ))

