"""Workers on a Ray cluster: the same ``WorkerPool`` as ``LocalPool``, with Ray actors.

One actor per GPU of the cluster (``num_gpus=1``), or ``workers`` CPU actors on
a cluster without GPUs (each with its share of the CPUs, as local CPU workers
have theirs of the cores). The runner is the Ray driver and stays the only
writer of the session folder; the actors only compute.

What travels, and how often:

- once per session: the config and the bytes of the files the problem is built
  from (the minima, and CIFAR's folder) are put in the object store; every actor,
  and every actor started again after a loss, is built from those two objects. An
  actor on a node where the files are missing (or differ) writes them to a folder
  of its own and builds from there.
- once per session too, the user's own code (``--model``, ``--data`` or ``--loss``
  ``package.module:name``): the top-level package folder or module file of each, as
  the runner finds it, goes to the nodes in Ray's runtime environment (``py_modules``),
  unless it is installed here (site-packages) or part of nebtui: the nodes must have
  those. The actors import what was shipped, never the runner's folder, so every node
  runs the same code. Of what was not shipped, each node that could take an actor
  imports the user's modules once, before the session is accepted: a node that cannot
  is refused in one line that names it and the module. An actor that cannot import
  them (a node that joined later, a shipped module that imports what its node lacks)
  ends the session in the same line.
- per pair: the packed connection state down (``run``), and up the messages of
  ``sessions.processes.messages``, the same dataclasses the local pool's pipes carry.
  Each actor buffers what it sends; the pool keeps one ``drain`` call in flight
  per actor (it returns as soon as there is something, or after a second), so
  messages come up in the order sent, in batches, without a call per message.
- stop and state requests are actor calls too (``max_concurrency`` lets them run
  beside the job), tagged with the job they are for: the job sees them at its
  next step boundary, as a local worker sees its events.

Faults: an actor that dies, or whose node goes, fails its pending ``drain``; the
pool reports it as ``WorkerExited`` with the pair it held, so the runner restarts
it and the pair runs again from its last state, wherever Ray places the new
actor. Messages the lost actor had not handed over yet are lost with it: each is
a state the pair reaches again from the last one the runner kept. Actors that go
that keep going before they are ready end the session in one line (the runner counts
them; ``start_advice`` says what to check): such a cluster would only start them again
and again. The actors are
not detached: owned by the runner, they end when it ends, however it ends (through
Ray Client, once the client's reconnect grace period is over: Ray's 30 s, or
RAY_CLIENT_RECONNECT_GRACE_PERIOD).

Ray is imported only here and only when a pool starts: without the ``ray`` extra
a local session never notices, and ``--cluster ray`` says how to install it.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sessions.disk.folder import SessionError
from sessions.processes.messages import JobDone, JobFailed, JobStopped, Pair, WorkerExited, WorkerMessage, WorkerReady
from sessions.processes.workers import build_worker, run_job, worker_config

INSTALL = "pip install -e '.[ray]' (in nebtui's folder) or pip install 'ray[client]>=2.60'"
DRAIN_SECONDS = 1.0  # how long an actor's drain waits for a message before it answers empty
CONNECT_SECONDS = 5.0  # how long the cluster's address may take to accept a connection
CLIENT_ATTEMPTS = 3  # Ray 2.60's client server now and then fails to start a client: tries before giving up
# what it says then: the server's own message, or psutil's when the client's process died
# while the server was still looking at it (proxier.py reads its command line in a loop)
CLIENT_FAILED = ("Starting Ray client server failed", "psutil.ZombieProcess", "psutil.NoSuchProcess")
NO_TOKEN = ("joined the Ray cluster at {address} without token authentication: whoever can reach it can run "
            "code on its nodes and in this runner; start it with a token (ray get-auth-token --generate on the "
            "head, RAY_AUTH_MODE=token) and copy ~/.ray/auth_token here")
CONCURRENCY = 4  # a job, a drain, and requests beside them
BATCH_SECONDS = 0.05  # events wait this long for company: one call per batch, not per step
ENDS = (WorkerReady, JobDone, JobStopped, JobFailed)  # what the runner acts on at once
SHIP_EXCLUDES = ["__pycache__", "*.pyc"]  # besides what a .gitignore in a shipped folder leaves out
PROBE_SECONDS = 120.0  # how long the nodes may take to import the user's modules before the session starts
NOUNS = {"model": "model factory", "data": "data factory", "loss": "loss function"}


def import_ray() -> Any:
    """Ray, or one line that says how to install it."""
    try:
        import ray
    except ImportError:
        raise SessionError(f"--cluster ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _reachable(host: str, port: int) -> str | None:
    """None when something accepts connections at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            return None
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__


def connect(cluster: str, ship: list[str] | None = None) -> tuple[Any, str]:
    """Join the Ray cluster ``cluster`` names as its driver (never starting one: no dashboard
    either), with the folders and files ``ship`` in the job's runtime environment (its
    workers import them): Ray, and the address joined. Each way it can fail is one line."""
    ray = import_ray()
    if cluster.startswith("ray://"):
        address = cluster
        host, _, port = cluster.removeprefix("ray://").rpartition(":")
    else:
        from ray._private.services import get_ray_address_from_environment

        try:
            address = get_ray_address_from_environment("auto", None)
        except ConnectionError:
            raise SessionError("no Ray cluster runs on this machine: start one (README: On a cluster), "
                               "or give --cluster ray://HOST:PORT") from None
        host, _, port = address.removeprefix("ray://").rpartition(":")  # RAY_ADDRESS may name a client address
    why = _reachable(host, int(port)) if port.isdigit() else None
    if why is not None:
        raise SessionError(f"cannot reach the Ray cluster at {host}:{port} ({why}): start it (ray start --head), "
                           "or check --cluster and RAY_ADDRESS")
    token = _token_auth()
    options: dict[str, Any] = {"namespace": "nebtui", "log_to_driver": False, "logging_level": "WARNING"}
    if not address.startswith("ray://"):
        options["include_dashboard"] = False
    if ship:
        options["runtime_env"] = {"py_modules": list(ship), "excludes": SHIP_EXCLUDES}
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            break
        except Exception as error:  # noqa: BLE001 - Ray raises many kinds; each becomes one line
            if address.startswith("ray://") and _client_failed(str(error)) and attempt < CLIENT_ATTEMPTS:
                ray.shutdown()
                time.sleep(1.0)
                continue
            if ship and _upload_failed(error):
                raise SessionError(ship_failure(address, ship, error)) from None
            raise SessionError(join_failure(address, error)) from None
    if not token:
        print(f"nebtui runner: warning: {NO_TOKEN.format(address=address)}", file=sys.stderr, flush=True)
    return ray, address


def _token_auth() -> bool:
    """Whether this driver joins with token authentication. A cluster started with a token
    (Ray's default) is joined with it, found in RAY_AUTH_TOKEN or ~/.ray/auth_token."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return False
    return maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _client_failed(text: str) -> bool:
    """Whether ``text`` says the cluster's Ray Client server failed to start a client
    process for this driver: a failure of the moment, worth another try."""
    return any(marker in text for marker in CLIENT_FAILED)


def join_failure(address: str, error: BaseException) -> str:
    """The one line that says why joining the cluster at ``address`` failed. Ray Client
    passes on the server's traceback in its message: of that, the last line."""
    cause = error.__cause__ or error
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    traceback = "Traceback (most recent call last)" in str(error)
    text = lines[-1] if traceback and lines else " ".join(" ".join(lines).split())
    if type(cause).__name__ == "AuthenticationError":
        return (f"the Ray cluster at {address} asks for a token this machine lacks: copy the head's "
                "~/.ray/auth_token here (ray get-auth-token prints it), or set RAY_AUTH_TOKEN")
    if "version mismatch" in text.lower() or "versions" in text.lower():
        return (f"the Ray cluster at {address} runs other versions than this machine ({text[:300]}): "
                "install the cluster's Ray and Python versions here")
    if _client_failed(text):
        return (f"cannot join the Ray cluster at {address}: its Ray Client server failed to start a client "
                f"{CLIENT_ATTEMPTS} times ({text[:200]}): run it again, or join as a node's driver "
                "(--cluster ray on a node of the cluster)")
    return f"cannot join the Ray cluster at {address}: {text[:300]}"


def _upload_failed(error: BaseException) -> bool:
    """Whether joining failed because Ray could not take the user's code to the cluster."""
    return type(error).__name__ == "RuntimeEnvSetupError" or "Failed to upload" in str(error)


def ship_failure(address: str, ship: list[str], error: BaseException) -> str:
    """The one line that says the user's code could not go to the cluster at ``address``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines[-1:] if "Traceback (most recent call last)" in str(error) else lines)
    return (f"cannot ship {', '.join(ship)} to the Ray cluster at {address} ({text[:300]}): leave large files out "
            "of it (a .gitignore or .rayignore in it is followed), or pip install the code on every node and here "
            "(nebtui ships no installed package)")


@dataclass(frozen=True)
class UserModule:
    """A module of the user's own code that a session imports."""

    what: str  # model, data or loss
    spec: str  # as typed: package.module:name
    module: str  # package.module

    @property
    def top(self) -> str:
        return self.module.partition(".")[0]

    @property
    def named(self) -> str:
        return f"the {NOUNS[self.what]} {self.spec}"


def user_modules(problem: Any) -> list[UserModule]:
    """The modules of the user's own code the problem ``problem`` (a config's) imports: its
    model factory, data factory and loss function where they are the user's."""
    from sessions.problem.trust import is_data_factory, is_loss_function, is_zoo

    if getattr(problem, "kind", None) != "network":
        return []
    specs = [("model", problem.model if problem.model and not is_zoo(problem.model) else None),
             ("data", problem.data if is_data_factory(problem.data) else None),
             ("loss", problem.loss if is_loss_function(problem.loss) else None)]
    return [UserModule(what, spec, spec.partition(":")[0]) for what, spec in specs if spec]


@dataclass
class Shipping:
    """Where the user's code comes from: the folders and files to ship, and, of the modules
    not shipped, where the runner finds them (None: it does not; its own build says so)."""

    paths: list[str] = field(default_factory=list)
    kept: dict[str, str | None] = field(default_factory=dict)  # top-level module: where it is here


def shipping(modules: list[UserModule], import_dir: str | None) -> Shipping:
    """The top-level package folder or module file of each of ``modules``, found as the runner
    imports them (``import_dir`` first, then its own path); nothing is imported. What is
    installed (site-packages, the standard library) or part of nebtui stays here: the nodes
    have their own, as they have nebtui's."""
    from importlib.machinery import PathFinder

    found = Shipping()
    for top in dict.fromkeys(module.top for module in modules):
        try:
            spec = (PathFinder.find_spec(top, [import_dir]) if import_dir else None) or importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            found.kept[top] = None
            continue
        if spec.submodule_search_locations:  # a package: its folder (a namespace package: each of its folders)
            places = [Path(place) for place in spec.submodule_search_locations]
        else:
            places = [Path(spec.origin)] if spec.has_location and spec.origin else []
        shipped = [str(place) for place in places if _shippable(place)]
        if shipped:
            found.paths += [place for place in shipped if place not in found.paths]
        else:
            found.kept[top] = spec.origin or (str(places[0]) if places else "")
    return found


def _shippable(place: Path) -> bool:
    """A folder or a .py file of the user's: neither installed nor part of nebtui."""
    if not (place.is_dir() or (place.is_file() and place.suffix == ".py")):
        return False  # a compiled module, or a module in a zip file
    return not any(place.resolve().is_relative_to(root) for root in _not_shipped())


def _not_shipped() -> set[Path]:
    """The folders whose code the nodes have as their own: nebtui's, the standard library's
    and the installed packages'."""
    import site
    import sysconfig

    roots = {Path(__file__).resolve().parents[2]}  # nebtui's own folder (its checkout, or site-packages)
    paths = sysconfig.get_paths()
    roots |= {Path(paths[name]).resolve() for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    roots |= {Path(place).resolve() for place in [*site.getsitepackages(), site.getusersitepackages()]}
    roots |= {Path(place).resolve() for place in sys.path if Path(place).name in ("site-packages", "dist-packages")}
    return roots


def cannot_import(modules: list[UserModule]) -> tuple[UserModule, str, str | None] | None:
    """The first of ``modules`` this process cannot import, why, and the module it found
    missing (None: importing it raised something else); None when all import. Run on a
    node: what was shipped is on its path."""
    for module in modules:
        try:
            importlib.import_module(module.module)
        except ModuleNotFoundError as error:
            return module, " ".join(str(error).split())[:200], error.name or module.module
        except Exception as error:  # noqa: BLE001 - a user's module may raise anything while it is imported
            return module, " ".join(f"{type(error).__name__}: {error}".split())[:200], None
    return None


def node_refusal(node: str, module: UserModule, why: str, missing: str | None, kept: dict[str, str | None]) -> str:
    """The one line that says the Ray node ``node`` cannot import ``module`` (``kept``: where
    the runner found the modules it did not ship)."""
    head = f"the Ray node {node} cannot import {module.module} for {module.named} ({why})"
    if missing is None:
        return f"{head}: fix the module, or install what it needs on that node"
    if not (module.module == missing or module.module.startswith(f"{missing}.")):
        return f"{head}: install {missing.partition('.')[0]} on that node"
    where = kept.get(module.top)
    here = f"; here it comes from {where}, which nebtui does not ship" if where else ""
    return (f"{head}{here}: install it on that node, or keep it in a package folder or module file outside "
            "site-packages, which nebtui ships to the nodes")


def files_of(config: dict[str, Any]) -> dict[str, bytes]:
    """Of a config as it travels (SessionConfig.to_dict()): the bytes of the files the
    problem is built from, by their path here: every minimum (a model folder's weight
    files), and CIFAR's folder (an embedded data set has none)."""
    from sessions.problem.minima import minimum_files
    from sessions.problem.build import parse_data

    problem = config["problem"]
    files: dict[str, bytes] = {}
    for entry in problem.get("minima", []):
        for path in minimum_files(Path(entry["path"])):
            files[str(path)] = path.read_bytes()
    if problem.get("kind") == "network":
        data = parse_data(problem.get("data"))
        if data.root is not None and data.root.is_dir():
            for path in sorted(data.root.rglob("*")):
                if path.is_file():
                    files[str(path)] = path.read_bytes()
    return files


@contextmanager
def localised(config: dict[str, Any], files: dict[str, bytes]) -> Iterator[dict[str, Any]]:
    """The config with its files where this node has them: as they are where the runner's
    paths hold the same bytes (the runner's own node, a shared file system), else written
    to a folder of this actor's own, removed when the block ends (the problem is built by then).

    That folder is made fresh by mkdtemp (mode 0700, a name nobody can guess or plant a link
    at) and each file created new in it, never written through a link: a fixed name in the
    shared temp folder let anyone on the node read the minima and data, or have an actor
    write them through a link of theirs."""
    needed = {path for path, data in files.items() if not _same_file(Path(path), data)}
    if not needed:
        yield config
        return
    here = Path(tempfile.mkdtemp(prefix="nebtui-files-"))
    try:
        for path, data in files.items():
            _write_new(here, path, data)
        yield _pointed_at(config, here, needed)
    finally:
        shutil.rmtree(here, ignore_errors=True)


def _write_new(here: Path, path: str, data: bytes) -> None:
    """Write ``data`` as a new file at ``path`` under ``here``, never outside it."""
    target = here / path.lstrip("/")
    if not target.resolve().is_relative_to(here.resolve()):
        raise SessionError(f"the file {path} the runner sent leads outside this actor's folder: give plain paths")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _pointed_at(config: dict[str, Any], here: Path, needed: set[str]) -> dict[str, Any]:
    """A copy of ``config`` whose minima, and data folder where it was copied, are under ``here``."""
    config = copy.deepcopy(config)
    problem = config["problem"]
    for entry in problem.get("minima", []):
        entry["path"] = str(here / str(entry["path"]).lstrip("/"))
    kind, colon, root = str(problem.get("data") or "").partition(":")
    if colon and any(path.startswith(root) for path in needed):
        problem["data"] = f"{kind}:{here / root.lstrip('/')}"
    return config


def _same_file(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


class PairActor:
    """One worker on the cluster (made a Ray actor by ``RayPool``): builds the problem once,
    then runs the pair jobs the pool sends, one at a time, with ``sessions.processes.workers.run_job``."""

    def __init__(self, index: int, gpu: bool, config: dict[str, Any], files: dict[str, bytes], interval: float,
                 threads: int | None):
        import ray

        self.index, self.interval = index, interval
        self.cond = threading.Condition()
        self.outbox: list[WorkerMessage] = []
        self.stop_job = -1  # jobs up to this one are asked to stop
        self.state_job = -1  # this job is asked for its state
        device, shown = "cpu", "cpu"
        if gpu:
            device, shown = "cuda:0", f"cuda:{ray.get_gpu_ids()[0]}"  # Ray shows the actor its GPU alone
        with localised(config, files) as here:
            session_config = worker_config(here)
            # the user's code as shipped, or as this node has it: a node that lacks it (one that
            # joined after the session started, since each node was tried then) ends the session
            failed = cannot_import(user_modules(session_config.problem))
            if failed is not None:
                self._refuse(node_refusal(_this_node(), *failed, {}))
                return
            try:
                self.energy, self.schedule = build_worker(session_config, device, threads)
            except SessionError as error:  # what the runner's own build accepted: this node differs
                self._refuse(f"on the Ray node {_this_node()}: {error}")
                return
        self.send(WorkerReady(index, os.getpid(), shown, socket.gethostname()))

    def _refuse(self, line: str) -> None:
        """This actor cannot build the problem, and no other start of it would: it says so as
        a failed job of no pair, which ends the session with ``line``."""
        self.send(JobFailed(self.index, None, line, True))  # type: ignore[arg-type]

    def send(self, message: WorkerMessage) -> None:
        with self.cond:
            self.outbox.append(message)
            self.cond.notify_all()

    def drain(self, timeout: float) -> list[WorkerMessage]:
        """What was sent since the last drain, in order; waits up to ``timeout`` s for something,
        then up to ``BATCH_SECONDS`` more for the rest of a batch (a job's end ends the wait)."""
        with self.cond:
            if self.cond.wait_for(lambda: self.outbox, timeout):
                self.cond.wait_for(lambda: isinstance(self.outbox[-1], ENDS), BATCH_SECONDS)
            messages, self.outbox = self.outbox, []
        return messages

    def run(self, job: int, pair: Pair, packed: bytes) -> bool:
        def stop_requested() -> bool:
            return self.stop_job >= job

        def state_requested() -> bool:
            if self.state_job == job:
                self.state_job = -1
                return True
            return False

        return run_job(self.index, self.energy, self.schedule, pair, packed, self.interval, self.send,
                       stop_requested, state_requested)

    def request_stop(self, job: int) -> None:
        self.stop_job = max(self.stop_job, job)

    def request_state(self, job: int) -> None:
        self.state_job = job


@dataclass
class _Actor:
    handle: Any = None
    pending: Any = None  # the drain call in flight
    job: int = 0  # the number of the latest job sent
    pair: Pair | None = None
    ready: bool = False
    pid: int = 0
    exited: WorkerExited | None = None  # found gone, not reported yet
    gone: bool = False


@dataclass
class RayPool:
    """Ray actors on the cluster ``cluster`` ("ray": the one this machine belongs to, or
    ray://HOST:PORT); ``devices`` is known once ``start`` has joined it."""

    cluster: str
    config: Any  # the SessionConfig; actors get its to_dict() and rebuild it once
    checkpoint_interval: float
    devices: list[str] = field(default_factory=list)
    actors: list[_Actor] = field(default_factory=list)
    threads: int | None = None  # torch threads of each CPU actor, once started (None: GPU actors)

    @property
    def start_advice(self) -> str:
        return (f"check that every node of the Ray cluster at {self.address} has nebtui and this Ray and Python, "
                "and that this machine's token authentication matches the cluster's (RAY_AUTH_MODE; a token in "
                "~/.ray/auth_token turns it on)")

    def start(self) -> None:
        from sessions.processes.devices import parse_devices

        modules = user_modules(self.config.problem)
        shipped = shipping(modules, self.config.problem.import_dir) if modules else Shipping()
        ray, address = connect(self.cluster, shipped.paths)
        self.ray, self.address = ray, address
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        wanted = parse_devices(self.config.device).kind
        if wanted == "cuda" and gpus == 0:
            raise SessionError(f"the Ray cluster at {address} has no GPU, and --device "
                               f"{self.config.device} asks for GPUs: use --device auto or cpu")
        actor = ray.remote(max_concurrency=CONCURRENCY, max_restarts=0)(PairActor)
        if wanted != "cpu" and gpus:
            self.devices = ["ray:gpu"] * gpus
            self._options, self._threads = {"num_gpus": 1}, None
        else:
            workers = self.config.workers
            largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=1)
            share = max(1, min(int(largest), int(resources.get("CPU", 1)) // workers))
            self.devices = ["ray:cpu"] * workers
            # its share of a node's CPUs, unless the session fixed the count (--threads, or stored)
            self._options, self._threads = {"num_cpus": share}, self.config.threads or share
        self.threads = self._threads
        self._class = actor
        kept = [module for module in modules if shipped.kept.get(module.top)]
        if kept:  # found here, not shipped: every node that could take an actor must have it
            self._probe(kept, shipped.kept)
        wire = self.config.to_dict()
        self._files = ray.put(files_of(wire))
        if modules:  # the actors import the user's code as shipped, or as their node has it
            wire["problem"]["import_dir"] = None
        self._config = ray.put(wire)  # once per session: every actor (and restart) reads these
        self.actors = [_Actor() for _ in self.devices]
        for index in range(len(self.actors)):
            self._spawn(index)

    def _probe(self, modules: list[UserModule], kept: dict[str, str | None]) -> None:
        """Each live node with room for an actor imports ``modules`` (the user's, not shipped)
        once, before any actor starts; the first that cannot is refused in one line. A node
        that does not answer in PROBE_SECONDS is left to its actor (which says the same,
        should it fail)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        need = "GPU" if "num_gpus" in self._options else "CPU"
        least = self._options.get("num_gpus", self._options.get("num_cpus", 1))
        nodes = [node for node in ray.nodes() if node.get("Alive") and node["Resources"].get(need, 0) >= least]
        if not nodes:
            return  # none yet: the actors wait for one, and each says what its node lacks
        probe = ray.remote(num_cpus=0, max_retries=0)(cannot_import)
        asked = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                 .remote(modules): node for node in nodes}
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=PROBE_SECONDS)
        for ref in ready:
            node = asked[ref]
            name = f"{node.get('NodeManagerHostname', '?')} ({node.get('NodeManagerAddress', '?')})"
            try:
                failed = ray.get(ref)
            except ray.exceptions.RuntimeEnvSetupError as error:
                last = [line.strip() for line in str(error).splitlines() if line.strip()][-1:]
                raise SessionError(f"the Ray node {name} could not set up the code nebtui shipped "
                                   f"({' '.join(last)[:200]}): check its disk and its Ray logs") from None
            except ray.exceptions.RayError:
                continue  # the node went meanwhile: the actors find another
            if failed is not None:
                raise SessionError(node_refusal(name, *failed, kept))

    def _spawn(self, index: int) -> None:
        handle = self._class.options(name=None, **self._options).remote(
            index, "num_gpus" in self._options, self._config, self._files, self.checkpoint_interval, self._threads)
        self.actors[index] = _Actor(handle=handle, pending=handle.drain.remote(DRAIN_SECONDS))

    def idle(self) -> list[int]:
        return [i for i, a in enumerate(self.actors) if a.ready and a.pair is None and not a.gone]

    def job(self, worker: int) -> Pair | None:
        return self.actors[worker].pair

    def submit(self, worker: int, pair: Pair, packed: bytes) -> None:
        actor = self.actors[worker]
        actor.job += 1
        actor.pair = pair
        actor.handle.run.remote(actor.job, pair, packed)

    def request_stop(self, worker: int) -> None:
        actor = self.actors[worker]
        if not actor.gone:
            actor.handle.request_stop.remote(actor.job)

    def request_state(self, worker: int) -> None:
        actor = self.actors[worker]
        if not actor.gone:
            actor.handle.request_state.remote(actor.job)

    def poll(self, timeout: float) -> list[WorkerMessage]:
        """The messages that came up within ``timeout`` seconds, each actor's in the order it sent them."""
        ray = self.ray
        pending = {a.pending: i for i, a in enumerate(self.actors) if a.pending is not None}
        if not pending:
            time.sleep(timeout)
            return []
        ready, rest = ray.wait(list(pending), num_returns=1, timeout=timeout)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        messages: list[WorkerMessage] = []
        for ref in ready:
            index = pending[ref]
            actor = self.actors[index]
            try:
                batch = ray.get(ref)
            except ray.exceptions.RayError as error:  # the actor, or its node, is gone
                self._gone(index, _first_line(error))
                continue
            actor.pending = actor.handle.drain.remote(DRAIN_SECONDS)
            for message in batch:
                match message:
                    case WorkerReady(pid=pid):
                        actor.ready, actor.pid = True, pid
                    case JobStopped() | JobDone():
                        actor.pair = None
                    case JobFailed():
                        # It sent all it had; like a local worker it goes, and dead() reports its pair.
                        actor.ready = False
                        self._gone(index, "exit code 3")
                        ray.kill(actor.handle, no_restart=True)
            messages += batch
        return messages

    def _gone(self, index: int, reason: str) -> None:
        actor = self.actors[index]
        if not actor.gone:
            actor.gone, actor.pending, actor.ready = True, None, False
            actor.exited = WorkerExited(index, actor.pid, reason, actor.pair)

    def dead(self) -> list[WorkerExited]:
        found = []
        for actor in self.actors:
            if actor.exited is not None:
                found.append(actor.exited)
                actor.exited = None
        return found

    def restart(self, worker: int) -> None:
        old = self.actors[worker].handle
        if old is not None:
            self.ray.kill(old, no_restart=True)
        self._spawn(worker)

    def close(self) -> None:
        """The actors end with the runner anyway (it owns them); this ends them at once."""
        ray = getattr(self, "ray", None)
        if ray is None or not ray.is_initialized():
            return
        for actor in self.actors:
            if actor.handle is not None:
                try:
                    ray.kill(actor.handle, no_restart=True)
                except Exception:  # noqa: BLE001 - gone already
                    pass
        ray.shutdown()


def _this_node() -> str:
    """This node as the refusals name it: its host name and address."""
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"lost on the cluster: {type(error).__name__}" + (f" ({lines[0][:160]})" if lines else "")
