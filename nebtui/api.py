"""nebtui from Python: the state dicts of a model connected in this process.

``connect_minima`` builds the energy a session's runner builds (``engine.energy.network.NetworkEnergy``
on the training set, the loss by name or as a callable), runs the paper's exploration
(``engine.landscape.exploration.Exploration``) with the session's seed, one pair at a
time as a session with one worker does, and returns the paths, their saddles and the
minimum spanning tree. No runner, no worker process, no session folder: ``Connected.save``
writes one afterwards, which ``nebtui sessions show`` and ``nebtui report`` read as any
other finished session.

The numbers are those of ``nebtui explore`` on the same minima, data, model and
schedule, at the same seed, strategy and thread count, on the same kind of device:
each pair runs with its own seed (``engine.paths.run.seed_for_pair``), and the energy
evaluates its pivots as the session's workers do.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO, Union

if TYPE_CHECKING:
    from torch import Tensor, nn

    from engine.events import Event
    from engine.landscape.exploration import Exploration
    from engine.paths.run import ConnectionResult
    from engine.paths.schedule import Schedule

Pair = tuple[int, int]
Edge = tuple[int, int, float]  # (a, b, saddle energy), a < b
Minimum = Union[Mapping[str, Any], str, os.PathLike]  # a state dict, or a file the CLI reads
Split = Any  # (inputs (N, ...), targets (N,)) tensors, or a map-style Dataset of (input, target)


@dataclass
class HeldOut:
    """The test set's loss and error (fraction misclassified; NaN for a regression loss)
    at each minimum and at each path's saddle point, BatchNorm recalibrated on the
    training set as everywhere a point is evaluated."""

    minima_loss: list[float]
    minima_error: list[float]
    saddle_loss: dict[Pair, float]
    saddle_error: dict[Pair, float]


@dataclass
class Connected:
    """What ``connect_minima`` found: the minima as explored, their training losses, every
    path computed (by pair, a < b), the MST of saddle energies and why it stopped."""

    minima: "Tensor"  # (M, D): the minima as explored (aligned with align=True)
    names: list[str]  # one per minimum
    energies: list[float]  # training loss at each minimum
    paths: dict[Pair, "ConnectionResult"]  # the engine's result of each pair: pivots, profile, saddle
    mst: list[Edge]
    finished_reason: str
    test: HeldOut | None  # with a test set: its loss and error at the minima and the saddles
    # What save writes beside the results: how the run was made, and its events as they came
    _run: "_Run" = field(repr=False)

    @property
    def saddles(self) -> dict[Pair, float]:
        """The saddle's training loss of each connected pair."""
        return {pair: result.saddle_energy for pair, result in sorted(self.paths.items())}

    def save(self, name: str | None = None, *, model: str | None = None, data: str | None = None,
             model_args: Mapping[str, Any] | None = None, loss: str | None = None) -> Path:
        """Write this run as a finished session folder in the data home (``NEBTUI_HOME``, else
        the user's data folder) and return its path. ``model`` and ``data`` name the model
        and the data as the command line does (``--model mlp`` or ``package.module:factory``,
        ``--data digits`` or ``package.module:factory``; ``model_args`` as ``--model-arg``),
        so that ``nebtui report`` can build the problem again: they must build this model
        and these train and test sets. A factory named here is vouched for, as one typed on
        the command line is. ``loss``: where connect_minima was given a callable, the function's name
        as ``--loss`` takes it (``package.module:function``). ``name``: the session's name
        (default: connect-minima-DATE-TIME)."""
        return _save(self, name, model, data, dict(model_args or {}), loss)


@dataclass
class _Run:
    """How a run was made, for ``save``: what its config.json holds, the minima as given
    (the files are written from these), the parameters' layout and the events in order."""

    exploration: "Exploration"
    schedule: "Schedule"  # the AutoNEB schedule (a curve's budget is derived from it)
    given: "Tensor"  # (M, D): the minima as given, before any alignment
    layout: Any  # engine.networks.layout.ParameterLayout
    loss: Any  # a name, or the user's callable (which a session cannot name)
    device: str
    seed: int
    landscape: Any  # LandscapeOptions
    method: str
    align: bool
    strategy: str
    threads: int | None
    events: list[tuple[float, "Event"]]  # (time.time(), event), in the order they happened


def connect_minima(
    model: "nn.Module",
    minima: Sequence[Minimum],
    *,
    train: Split,
    test: Split | None = None,
    prepare: Callable[["Tensor"], "Tensor"] | None = None,
    augment: Callable[["Tensor", Any], "Tensor"] | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    loss: str | Callable[["Tensor", "Tensor"], "Tensor"] = "cross_entropy",
    schedule: "str | os.PathLike[str] | Schedule" = "paper",
    scale: float = 1.0,
    climb: bool = False,
    method: str = "autoneb",
    align: bool = False,
    stop: str = "all-pairs",
    seed: int = 0,
    device: str = "cpu",
    strategy: str = "auto",
    threads: int | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> Connected:
    """Connect ``minima`` (two or more state dicts of ``model``, or files the command line
    reads: safetensors, ``.pt`` state dicts, model folders) by low-loss paths on ``train``.

    ``model``: the architecture (its own weights are not used). ``train``/``test``: a pair
    of tensors ``(inputs, targets)`` or a map-style Dataset of ``(input, target)``; only the
    training set enters the energy; on ``test``, the minima and the saddles are evaluated
    once the paths are found (``Connected.test``). ``prepare``, ``augment`` and ``collate``
    as a data factory's ``UserData`` takes them (README: bring your own data): ``prepare``
    runs on every batch on its device, ``augment(batch, generator)`` on training batches,
    drawing only from the generator it is given.
    ``loss``: ``"cross_entropy"``, ``"bce"``, ``"mse"`` or a callable ``(outputs, targets) ->
    scalar mean``. ``schedule``: a preset (``"paper"``, ``"reference"``), a TOML file or a
    Schedule, run at ``scale`` of its steps (``--scale``), with the climbing image in its
    final phase if ``climb`` (``explore --model resnet20 --schedule paper`` also takes the
    paper's minibatch per pivot for that architecture: pass
    ``load_schedule("paper").for_architecture("resnet20")`` for the same). ``method``: ``"autoneb"``, ``"bezier"`` or ``"polychain"``;
    ``align``: permute every minimum's hidden units to match the lowest one first;
    ``stop``: ``"all-pairs"``, ``"tolerance=V"``, ``"relative=V"`` or ``"max-pairs=N"``, as
    ``--stop``. ``strategy``/``threads``: how the pivots are evaluated, as ``--strategy`` and
    ``--threads`` (None: torch's thread count now). ``progress``: one line on stderr (or
    ``stream``), rewritten as the run goes. Bad input is one ValueError or TypeError line."""
    import torch

    from engine.energy.network import STRATEGIES, NetworkEnergy
    from engine.landscape.exploration import Exploration
    from engine.landscape.graph import parse_stop_rule
    from engine.networks.datasets import UserData
    from engine.networks.layout import ParameterLayout
    from engine.networks.loss import takes_model
    from engine.paths.registry import METHODS, method_schedule
    from sessions import events as session_events
    from sessions.errors import SessionError
    from sessions.problem.build import AlignedBuilt, Built
    from sessions.processes.timing import choose_strategy

    events: list[tuple[float, Any]] = []  # what a runner would have logged, and when

    def record(event: Any) -> None:
        events.append((time.time(), event))

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (the architecture), got a {type(model).__name__}")
    if isinstance(minima, (str, os.PathLike, Mapping)) or not isinstance(minima, Sequence):
        raise TypeError("minima must be a list of state dicts (or of files of them), one per minimum")
    if len(minima) < 2:
        raise ValueError(f"connect_minima needs at least 2 minima, got {len(minima)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if threads is not None and (type(threads) is not int or threads < 1):
        raise ValueError(f"threads must be a whole number >= 1 of torch threads, or None; got {threads!r}")
    if type(seed) is not int:
        raise TypeError(f"seed must be an int, got {seed!r}")
    device = _device(device)
    loss = _loss(loss)
    landscape = _stop(stop, parse_stop_rule)
    chosen = _schedule(schedule, scale, climb)
    run_schedule = method_schedule(method, chosen)
    record(session_events.StartupPhaseStarted(phase="minima", detail=f"{len(minima)} minima"))

    train_x, train_y, test_x, test_y, prepare, augment = _data(UserData(
        train, test if test is not None else train, collate=collate, prepare=prepare, augment=augment), device)
    if not takes_model(loss):  # a (model, batch) loss runs the model itself, on batches of its own kind
        _check_fits(model, train_x, prepare)
    layout = ParameterLayout.from_module(model)
    buffers = [name for name, _ in model.named_buffers()]
    given, names = _flat_minima(minima, layout, buffers)  # (M, D)
    try:
        energy = NetworkEnergy(model, train_x, train_y, loss, strategy=strategy, device=device, prepare=prepare,
                               augment=augment, threads=threads, thread_trial=threads is None)
    except ValueError as error:
        raise ValueError(str(error).splitlines()[0]) from None
    built: Built = Built(energy, given, names, model)
    if align:
        built = AlignedBuilt(built, seed=seed)
    try:
        explored = built.minima  # aligned here, where align
    except SessionError as error:
        raise ValueError(str(error)) from None
    record(session_events.StartupPhaseStarted(phase="evaluating", detail=f"{len(names)} minima"))
    bar = _Progress(len(names), landscape, run_schedule, stream or sys.stderr) if progress else None

    def on_event(event: Any) -> None:
        record(event)
        if bar is not None:
            bar.saw(event)

    exploration = Exploration(energy, explored, run_schedule, seed=seed, landscape=landscape, on_event=on_event)
    choice = choose_strategy(built, run_schedule, device)  # timed once, as a session's first runner does
    if choice.strategy is not None:
        record(choice)
    record(session_events.RunnerStarted(pid=os.getpid(), devices=[device], resumed=False, pairs_done=0))
    record(session_events.WorkerStarted(worker=0, device=device, pid=os.getpid()))
    record(session_events.StartupPhaseStarted(phase="first cycle"))
    try:
        result = exploration.run()
    finally:
        if bar is not None:
            bar.close()
    assert result is not None  # nothing asks it to stop
    numbers = None if test is None else _test_numbers(energy, result, test_x, test_y)
    record(session_events.SessionFinished(reason=result.finished_reason, pairs_done=len(result.paths),
                                          mst=[[a, b, s] for a, b, s in result.mst]))
    run = _Run(exploration, chosen, given, layout, loss, device, seed, landscape, method, align,
               choice.strategy or strategy, energy.threads_used, events)
    return Connected(result.minima, names, list(result.energies), dict(result.paths), list(result.mst),
                     result.finished_reason, numbers, run)


# ---- checking what connect_minima is given


def _device(device: str) -> str:
    import torch

    if not isinstance(device, str):
        raise TypeError(f"device must be a string (cpu, cuda, cuda:N or auto), got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: nebtui runs on cpu or cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no GPU here; use device='cpu'")
    return device


def _loss(loss: Any) -> Any:
    from engine.networks.loss import loss_function

    if not (callable(loss) or isinstance(loss, str)):
        raise TypeError(f"loss must be a name ('cross_entropy', 'bce', 'mse') or a callable (outputs, targets) -> "
                        f"scalar, got a {type(loss).__name__}")
    loss_function(loss)  # an unknown name: its one ValueError line
    return loss


def _stop(stop: str, parse: Callable[[str], Any]) -> Any:
    if not isinstance(stop, str):
        raise TypeError(f"stop must be a rule as --stop writes it (all-pairs, tolerance=V, relative=V, "
                        f"max-pairs=N), got {stop!r}")
    try:
        return parse(stop)
    except ValueError as error:
        raise ValueError(f"stop: {error}") from None


def _schedule(schedule: Any, scale: float, climb: bool) -> "Schedule":
    """The schedule given, or named (a preset or a TOML file), at ``scale`` of its steps and
    named so, as the command line's ``--schedule``, ``--scale`` and ``--climb`` make it."""
    from engine.paths.schedule import Schedule, ScheduleError, load_schedule

    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a number > 0 (the share of the schedule's steps), got {scale!r}")
    try:
        chosen = schedule if isinstance(schedule, Schedule) else load_schedule(os.fspath(schedule))
        if scale != 1.0:
            chosen = dataclasses.replace(chosen.scaled(scale), name=f"{chosen.name} x{scale:g}")
        if climb:
            chosen = chosen.with_climbing()
    except TypeError:
        raise TypeError(f"schedule must be a preset name, a TOML file or a Schedule, got a "
                        f"{type(schedule).__name__}") from None
    except ScheduleError as error:
        raise ValueError("schedule: " + "; ".join(str(error).splitlines())) from None
    return chosen


def _data(given: Any, device: str) -> tuple["Tensor", "Tensor", "Tensor", "Tensor", Any, Any]:
    """The training and test inputs and targets on ``device`` (a Dataset read whole), and
    the data's prepare and augment, each checked as a data factory's are."""
    from engine.networks.datasets import user_tensors

    spec = "connect_minima"
    try:
        loaded = user_tensors(given, spec=spec, device=device)
    except ValueError as error:
        raise ValueError(str(error).replace(f"data factory {spec}: ", "").replace(f"data factory {spec} ", "")
                         ) from None
    return (*loaded.train, *loaded.test, loaded.prepare, loaded.augment)


def _test_numbers(energy: Any, result: Any, inputs: "Tensor", targets: "Tensor") -> HeldOut:
    import torch

    pairs = sorted(result.paths)
    points = torch.cat([result.minima, torch.stack([result.paths[p].saddle_point for p in pairs])]) \
        if pairs else result.minima  # (M + P, D)
    losses, errors = (t.tolist() for t in energy.metrics(points, inputs, targets))
    m = result.minima.shape[0]
    return HeldOut(losses[:m], errors[:m], dict(zip(pairs, losses[m:])), dict(zip(pairs, errors[m:])))


def _check_fits(model: "nn.Module", inputs: "Tensor", prepare: Any) -> None:
    """The model on two training samples, so that a model made for other inputs is one
    line naming both shapes, not torch's error from deep inside a layer."""
    import torch

    from sessions.problem.build import input_misfit

    if not isinstance(inputs, torch.Tensor):
        return  # inputs of another kind: the energy's first pass says what does not fit
    where = next((p.device for p in model.parameters()), torch.device("cpu"))
    sample = inputs[:2].to(where)
    if prepare is not None:
        sample = prepare(sample)
    misfit = input_misfit(model, sample)
    if misfit is not None:
        takes, shape = misfit
        raise ValueError(f"the model does not fit the training inputs of shape ({shape}): {takes}; give the "
                         "model these inputs are made for")


def _flat_minima(minima: Sequence[Minimum], layout: Any, buffers: list[str]) -> tuple["Tensor", list[str]]:
    """The minima as flat vectors (M, D) in the layout's order, and their names; a state dict
    or file that does not fit the model is one ValueError naming its first missing or
    unexpected keys, as the command line says it."""
    import torch

    from sessions.errors import SessionError
    from sessions.problem.minima import flat_minimum, flat_weights, minimum_name

    vectors, names = [], []
    for i, minimum in enumerate(minima):
        try:
            if isinstance(minimum, Mapping):
                vectors.append(flat_weights(minimum, layout, buffers, f"minimum {i} (a state dict)"))
                names.append(f"minimum {i}")
            elif isinstance(minimum, (str, os.PathLike)):
                path = Path(minimum)
                if not path.exists():
                    raise ValueError(f"minimum {i}: no such file {path}")
                vectors.append(flat_minimum(path, layout, buffers))
                names.append(minimum_name(path))
            else:
                raise TypeError(f"minimum {i} is a {type(minimum).__name__}: give a state dict "
                                f"(model.state_dict()) or the path of a file of one")
        except SessionError as error:
            raise ValueError(str(error).replace("as --model", "as the model given")) from None
    return torch.stack(vectors), names


# ---- the progress line


class _Progress:
    """One line, rewritten in place: the pairs done of at most N, the current pair's cycle,
    and an ETA from the steps run so far (every pair is taken to run its whole schedule)."""

    INTERVAL = 0.25  # seconds between rewrites

    def __init__(self, minima: int, landscape: Any, schedule: Any, stream: TextIO):
        from engine.estimate import cycle_steps, pairs_left, restarts

        self.most = pairs_left(minima, landscape)[1]
        self.pair_steps = sum(cycle_steps(schedule)) * restarts(schedule)
        self.stream = stream
        self.started: float | None = None  # the first step's time: the minima's evaluation is not a step
        self.written = 0.0
        self.done = 0
        self.steps = 0  # steps of the finished pairs and the current one
        self.pair_started_at = 0  # self.steps when the current pair began
        self.pair: Pair | None = None
        self.cycle = ""
        self.width = 0

    def saw(self, event: Any) -> None:
        from engine.events import ConnectionFinished, CycleStarted, StepEnergies

        if isinstance(event, CycleStarted):
            if event.pair != self.pair:
                self.pair, self.pair_started_at = tuple(event.pair), self.steps  # type: ignore[assignment]
            self.cycle = f"cycle {event.cycle}/{event.cycles}" + (f" of restart {event.restart + 1}"
                                                                   if event.restart else "")
        elif isinstance(event, StepEnergies):
            if self.started is None:
                self.started = time.monotonic()
            self.steps += 1
        elif isinstance(event, ConnectionFinished):
            self.done += 1
            self.steps = self.pair_started_at + self.pair_steps
            self.pair, self.cycle = None, ""
            self.write(force=True)
            return
        self.write()

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.written < self.INTERVAL:
            return
        self.written = now
        parts = [f"nebtui: {self.done} of at most {self.most} pairs"]
        if self.pair is not None:
            parts.append(f"pair {self.pair[0]}-{self.pair[1]} {self.cycle}".rstrip())
        left = self.most * self.pair_steps - self.steps
        if self.started is not None and self.steps > 1 and left > 0:
            parts.append(f"ETA {_clock((now - self.started) / (self.steps - 1) * left)}")
        line = ", ".join(parts)
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        self.write(force=True)
        self.stream.write("\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


# ---- saving a run as a session folder


def _save(connected: Connected, name: str | None, model: str | None, data: str | None,
          model_args: dict[str, Any], loss: str | None) -> Path:
    import shutil
    import tempfile

    from safetensors.torch import save_file

    from nebtui.launch import unique_name
    from sessions.disk.config import Problem, SessionConfig
    from sessions.disk.eventlog import EventLogWriter
    from sessions.disk.folder import SessionFolder
    from sessions.disk.home import data_home
    from sessions.disk.results import RESULT_FILE, path_file, result_document, save_result
    from sessions.disk.statepack import pack_state
    from sessions.errors import SessionError
    from sessions.problem.build import absolute_data
    from sessions.problem.minima import manifest_entry
    from sessions.problem.trust import is_loss_function, is_zoo, runs_user_code, tag

    run = connected._run
    if not model or not data:
        raise ValueError("save needs the model and the data by the names the command line takes, so that nebtui "
                         "report can build them again: save(model='mlp' or 'package.module:factory', "
                         "data='digits' or 'package.module:factory')")
    if isinstance(run.loss, str):
        if loss is not None and loss != run.loss:
            raise ValueError(f"save: connect_minima ran the loss {run.loss!r}, not {loss!r}: leave loss out")
        loss = run.loss
    elif loss is None or not is_loss_function(loss):
        raise ValueError(f"save needs the name of the loss function connect_minima was given, as --loss takes it: "
                         f"save(..., loss='package.module:function'){f', not {loss!r}' if loss else ''}")
    module, colon, factory = model.partition(":")
    if not is_zoo(model) and not (colon and factory.isidentifier()
                                  and all(part.isidentifier() for part in module.split("."))):
        raise ValueError(f"save: model {model!r} is neither a name of nebtui's zoo (mlp, small_cnn, resnet20...) "
                         f"nor package.module:factory")
    try:
        data = absolute_data(data)
        home = data_home()
        name = name or unique_name(home, "connect-minima")
        import_dir = os.getcwd() if runs_user_code(model, data, loss) else None
        staging = Path(tempfile.mkdtemp(prefix=".connect-", dir=home))
        try:
            files = []
            for i, vector in enumerate(run.given):
                state = {k: t.clone().contiguous() for k, t in run.layout.unflatten(vector).items()}
                staged = staging / f"minimum-{i:02d}.safetensors"
                save_file(state, str(staged))
                files.append(staged)
            manifest = [{**manifest_entry(f), "path": str(home / name / "minima" / f.name)} for f in files]
            problem = Problem(kind="network", model=model, model_args=model_args, data=data, loss=loss,
                              minima=manifest, import_dir=import_dir)
            config = SessionConfig(problem=problem, schedule=run.schedule, device=run.device, seed=run.seed,
                                   landscape=run.landscape, strategy=run.strategy, threads=run.threads,
                                   method=run.method, align=run.align)
            if runs_user_code(model, data, loss):  # typed in the user's own code: vouched for as on the command line
                config = config.model_copy(update={"vouch": tag(home, name, model, model_args,
                                                                import_dir=import_dir, data=data, loss=loss)})
            folder = SessionFolder.create(home, name, config)
            staging.rename(folder.path / "minima")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        then = f"save again under another name (nebtui sessions rm {name} removes this one)"
        for pair, connection in sorted(run.exploration.connections.items()):
            save_result(path_file(folder.results_path, pair), pack_state(connection.state_dict()),
                        f"the path of pair {pair}", then)
        assert run.exploration.result is not None
        save_result(folder.results_path / RESULT_FILE, result_document(run.exploration.result), "the result", then)
        with EventLogWriter(folder.events_path) as log:
            for stamp, event in run.events:
                log.append(event, stamp)
    except SessionError as error:
        raise ValueError(str(error)) from None
    return folder.path
