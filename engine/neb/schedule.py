"""AutoNEB schedules: the cycles (steps, lr, optimiser, insertion, batch size)
and the band options, with the `paper` and `reference` presets.

A schedule is a sequence of NEB cycles plus one set of band options.

Insertion, cycle by cycle:
- cycle 1 with ``insert = true``: fill ``band.initial_pivots`` pivots equally
  on the line segment between the two minima (``max_insert`` does not apply).
  The first cycle must insert: without it the band has no interior pivot.
- a later cycle with ``insert = true``: before this cycle's steps, insert
  pivots by ``band.insertion_rule`` from the residuals of the previous cycle's
  dense evaluation, at most ``max_insert`` of them (None = no cap), never
  beyond ``band.max_pivots`` (ends included).
So the `reference` preset reaches at most 2 + 3 + 13 x 2 = 31 pivots.

TOML files: an optional top-level ``name``, a ``[band]`` table with the
BandOptions fields and ``[[phase]]`` tables with the Cycle fields plus
``repeat = K`` (default 1), which expands into K identical cycles. ``spring``
may be ``inf`` or the string ``"inf"``. Presets live in ``engine/neb/presets/``.

Every bad field is reported as one line of a ScheduleError, naming where it
is, what is wrong and what is accepted; all bad fields are reported at once.
torch is imported only when an optimiser name is checked.
"""

from __future__ import annotations

import difflib
import importlib.resources
import inspect
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

TANGENTS = ("paper", "improved", "reference")
PAPER_BATCH_SIZES = {
    "resnet20": 512,
    "resnet32": 512,
    "resnet44": 256,
    "resnet56": 256,
    "densenet40_12": 64,
    "densenet100_12_bc": 64,
}
SPACINGS = ("equal", "fractions")
INSERTION_RULES = ("threshold", "highest")
INSERTION_SCALES = ("dense", "pivots")
SELECTS = ("last", "lowest")


class ScheduleError(ValueError):
    """An invalid schedule: one line per bad field.

    ``problems`` are the lines without the ``where`` prefix; ``lines`` with it.
    """

    def __init__(self, problems: Iterable[str], where: str = "") -> None:
        self.problems = list(problems)
        self.where = where
        self.lines = [f"{where}: {p}" if where else p for p in self.problems]
        super().__init__("\n".join(self.lines))


# ----------------------------------------------------------------------------
# small checks, each returning the problem line or None


def _did_you_mean(word: object, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    if word.lower() in by_lower:
        return f" (did you mean {by_lower[word.lower()]!r}?)"
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?)"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_at_least(name: str, value: object, low: int, what: str) -> str | None:
    if _is_int(value) and value >= low:
        return None
    return f"{name} must be {what}, got {value!r}"


def _float_check(name: str, value: object, ok: bool, what: str) -> str | None:
    if _is_number(value) and ok:
        return None
    return f"{name} must be {what}, got {value!r}"


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str | None:
    if value in choices:
        return None
    accepted = ", ".join(repr(c) for c in choices)
    return f"{name} must be one of {accepted}, got {value!r}{_did_you_mean(value, choices)}"


def _bool(name: str, value: object) -> str | None:
    return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"


# ----------------------------------------------------------------------------
# optimisers (torch is imported here, lazily)


# Optimisers whose step needs more than the band's forces: LBFGS re-evaluates the
# loss through a closure, Muon only takes 2-D matrices.
UNSUPPORTED_OPTIMISERS = {
    "LBFGS": "it re-evaluates the loss through a closure, which a band step does not have",
    "Muon": "it only takes 2-D weight matrices, and the pivots are flat vectors",
}


def optimiser_names() -> list[str]:
    """Names of the torch.optim.Optimizer subclasses a cycle may use."""
    import torch.optim

    return sorted(
        name
        for name, obj in vars(torch.optim).items()
        if isinstance(obj, type)
        and issubclass(obj, torch.optim.Optimizer)
        and obj is not torch.optim.Optimizer
        and name not in UNSUPPORTED_OPTIMISERS
    )


def _optimiser_problems(name: object, args: object, lr: object) -> list[str]:
    names = optimiser_names()
    if name in UNSUPPORTED_OPTIMISERS:
        return [f"optimiser {name} cannot drive a band: {UNSUPPORTED_OPTIMISERS[name]}; use SGD or Adam"]
    if name not in names:
        return [f"optimiser must name a torch.optim optimiser class, got {name!r}{_did_you_mean(name, names)}"]
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        return [f"optimiser_args must be a table of keyword arguments, got {args!r}"]
    import torch

    optimiser_class = getattr(torch.optim, name)
    parameters = inspect.signature(optimiser_class.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = [
        p for p, spec in parameters.items()
        if p not in ("self", "params", "lr") and spec.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    problems = []
    for key in args:
        if key == "lr":
            problems.append("optimiser_args must not set lr: use the cycle's lr")
        elif key == "params":
            problems.append("optimiser_args must not set params: the engine passes the pivots")
        elif key not in parameters and not takes_any:
            problems.append(
                f"optimiser_args: {name} does not accept {key!r}{_did_you_mean(key, accepted)};"
                f" accepted: {', '.join(accepted)}"
            )
    if problems or not (_is_number(lr) and math.isfinite(lr) and lr > 0):
        return problems
    # the names fit; let the constructor judge the values (e.g. momentum < 0)
    try:
        optimiser_class([torch.zeros(2, 2, requires_grad=True)], lr=lr, **args)
    except Exception as error:  # noqa: BLE001 - any rejection is reported as one line
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return [f"optimiser_args rejected by torch.optim.{name}: {message}"]
    return []


# ----------------------------------------------------------------------------
# the dataclasses


@dataclass(frozen=True)
class Cycle:
    """One NEB cycle of an AutoNEB schedule."""

    steps: int  # optimiser steps in this cycle, >= 1
    lr: float  # > 0
    optimiser: str = "SGD"  # a class name in torch.optim
    optimiser_args: dict[str, Any] = field(default_factory=dict)  # e.g. {"momentum": 0.9}
    batch_size: int | None = None  # minibatch per pivot (networks); None = energy's default
    insert: bool = True  # before this cycle's steps: insert pivots by the residual rule
    max_insert: int | None = None  # at most this many new pivots this cycle (None = no cap)
    climb: bool = False  # climbing image on during this cycle

    def __post_init__(self) -> None:
        if isinstance(self.optimiser_args, Mapping):
            object.__setattr__(self, "optimiser_args", dict(self.optimiser_args))
        problems = self.problems()
        if problems:
            raise ScheduleError(problems, where="Cycle")
        object.__setattr__(self, "lr", float(self.lr))

    def problems(self) -> list[str]:
        """One line per bad field, without location; empty when valid."""
        checks = [
            _int_at_least("steps", self.steps, 1, "a positive integer"),
            _float_check("lr", self.lr, _is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0,
                         "a finite number > 0"),
            None if self.batch_size is None else _int_at_least("batch_size", self.batch_size, 1, "an integer >= 1"),
            _bool("insert", self.insert),
            None if self.max_insert is None else _int_at_least("max_insert", self.max_insert, 0, "an integer >= 0"),
            _bool("climb", self.climb),
        ]
        problems = [c for c in checks if c]
        return problems + _optimiser_problems(self.optimiser, self.optimiser_args, self.lr)


_FLOAT_BAND_FIELDS = ("spring", "insertion_threshold", "weight_decay", "restart_noise")


@dataclass(frozen=True)
class BandOptions:
    """How the band is built, moved and refined (constant over a connection)."""

    initial_pivots: int = 3  # interior pivots filled equally on the segment in cycle 1 (>= 1)
    max_pivots: int = 64  # cap on pivots, ends included (>= initial_pivots + 2)
    tangent: str = "paper"  # "paper" | "improved" | "reference"
    spring: float = math.inf  # k; inf = no spring force, re-space after every step
    spacing: str = "equal"  # "equal" (string method) | "fractions" (insertion history)
    insertion_rule: str = "threshold"  # "threshold": every segment over it | "highest": top max_insert
    insertion_threshold: float = 0.2  # in (0, 1]: residual / energy range
    insertion_scale: str = "dense"  # energy range of the "dense" profile or of the "pivots"
    dense_points: int = 9  # evaluation points between neighbouring pivots (>= 1)
    weight_decay: float = 0.0  # added to the gradient before the projection (>= 0)
    reset_optimiser: bool = True  # new optimiser each cycle (else momentum carried over)
    select: str = "last"  # result path: "last" cycle or the cycle with the "lowest" saddle
    restarts: int = 1  # independent bands, best kept (>= 1)
    restart_noise: float = 0.0  # start-path noise of restarts 2.., relative to |end - start| (>= 0)
    energy_every: int = 10  # a StepEnergies event every this many steps (>= 1)

    def __post_init__(self) -> None:
        if isinstance(self.spring, str) and self.spring.strip().lower() in ("inf", "+inf", "infinity"):
            object.__setattr__(self, "spring", math.inf)
        problems = self.problems()
        if problems:
            raise ScheduleError(problems, where="BandOptions")
        for name in _FLOAT_BAND_FIELDS:
            object.__setattr__(self, name, float(getattr(self, name)))

    def problems(self) -> list[str]:
        """One line per bad field, without location; empty when valid."""
        initial = self.initial_pivots
        initial_ok = _is_int(initial) and initial >= 1
        threshold, spring = self.insertion_threshold, self.spring
        weight_decay, noise = self.weight_decay, self.restart_noise
        checks = [
            None if initial_ok else
            f"initial_pivots must be an integer >= 1 (zero pivots leave nothing to optimise), got {initial!r}",
            None if not initial_ok else _int_at_least(
                "max_pivots", self.max_pivots, initial + 2,
                f"an integer >= initial_pivots + 2 = {initial + 2} (the ends count)"),
            _choice("tangent", self.tangent, TANGENTS),
            _float_check("spring", spring, _is_number(spring) and spring > 0, "a number > 0 or inf"),
            _choice("spacing", self.spacing, SPACINGS),
            _choice("insertion_rule", self.insertion_rule, INSERTION_RULES),
            _float_check("insertion_threshold", threshold, _is_number(threshold) and 0 < threshold <= 1,
                         "in (0, 1]"),
            _choice("insertion_scale", self.insertion_scale, INSERTION_SCALES),
            _int_at_least("dense_points", self.dense_points, 1, "an integer >= 1"),
            _float_check("weight_decay", weight_decay,
                         _is_number(weight_decay) and math.isfinite(weight_decay) and weight_decay >= 0,
                         "a finite number >= 0"),
            _bool("reset_optimiser", self.reset_optimiser),
            _choice("select", self.select, SELECTS),
            _int_at_least("restarts", self.restarts, 1, "an integer >= 1"),
            _float_check("restart_noise", noise, _is_number(noise) and math.isfinite(noise) and noise >= 0,
                         "a finite number >= 0"),
            _int_at_least("energy_every", self.energy_every, 1, "an integer >= 1"),
        ]
        return [c for c in checks if c]


@dataclass(frozen=True)
class Schedule:
    """NEB cycles run in order, and the band options they share."""

    cycles: tuple[Cycle, ...]
    band: BandOptions = BandOptions()
    name: str = "custom"

    def __post_init__(self) -> None:
        if isinstance(self.cycles, (list, tuple)):
            object.__setattr__(self, "cycles", tuple(self.cycles))
        self.validate()

    def validate(self) -> None:
        """Raise ScheduleError listing every bad field (cycles as "cycle N")."""
        problems: list[str] = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.band, BandOptions):
            problems.append(f"band must be a BandOptions, got {type(self.band).__name__}")
        else:
            problems += [f"band: {p}" for p in self.band.problems()]
        if not isinstance(self.cycles, tuple) or not self.cycles:
            problems.append("cycles: a schedule needs at least one cycle, got none")
        else:
            for number, cycle in enumerate(self.cycles, start=1):
                if not isinstance(cycle, Cycle):
                    problems.append(f"cycle {number}: must be a Cycle, got {type(cycle).__name__}")
                    continue
                problems += [f"cycle {number}: {p}" for p in cycle.problems()]
            first = self.cycles[0]
            if isinstance(first, Cycle) and first.insert is False:
                problems.append("cycle 1: insert must be true (it fills initial_pivots on the segment)")
        if problems:
            raise ScheduleError(problems, where="Schedule")

    # -- derived numbers ----------------------------------------------------

    @property
    def total_steps(self) -> int:
        """Optimiser steps over all cycles."""
        return sum(c.steps for c in self.cycles)

    @property
    def pivot_bound(self) -> int:
        """The most pivots (ends included) the band can reach by its last cycle."""
        bound = 2 + self.band.initial_pivots
        for cycle in self.cycles[1:]:
            if cycle.insert:
                if cycle.max_insert is None:
                    return self.band.max_pivots
                bound += cycle.max_insert
        return min(bound, self.band.max_pivots)

    # -- transformations (all return new, validated schedules) -----------------

    def scaled(self, factor: float) -> Schedule:
        """Every cycle's steps times `factor`, rounded, at least 1 each."""
        _check_factor("scaled", factor)
        cycles = tuple(replace(c, steps=max(1, round(c.steps * factor))) for c in self.cycles)
        return replace(self, cycles=cycles)

    def with_lr_scale(self, factor: float) -> Schedule:
        """Every cycle's lr times `factor`."""
        _check_factor("with_lr_scale", factor)
        return replace(self, cycles=tuple(replace(c, lr=c.lr * factor) for c in self.cycles))

    def replace_band(self, **changes: Any) -> Schedule:
        """The same cycles with some band options changed."""
        _check_names("replace_band", changes, BandOptions)
        return replace(self, band=replace(self.band, **changes))

    def replace_cycles(self, **changes: Any) -> Schedule:
        """The same fields changed in every cycle, e.g. ``batch_size=256``."""
        _check_names("replace_cycles", changes, Cycle)
        return replace(self, cycles=tuple(replace(c, **changes) for c in self.cycles))

    def for_architecture(self, model: str) -> Schedule:
        """The paper's per-architecture minibatch per pivot (NOTES section 5): 512 for
        ResNet-20/32, 256 for ResNet-44/56, 64 for the DenseNets; others unchanged."""
        batch = PAPER_BATCH_SIZES.get(model)
        return self if batch is None else self.replace_cycles(batch_size=batch)

    def with_climbing(self, last: int | None = None) -> Schedule:
        """The climbing image on in the last ``last`` cycles; by default in the final
        phase (the trailing cycles that share the last cycle's lr), as ASE's AutoNEB
        turns it on once the band has settled."""
        if last is None:
            last = 0
            for cycle in reversed(self.cycles):
                if cycle.lr != self.cycles[-1].lr:
                    break
                last += 1
        if not (_is_int(last) and 1 <= last <= len(self.cycles)):
            raise ScheduleError([f"last must be an integer in 1..{len(self.cycles)}, got {last!r}"], where="with_climbing")
        first = len(self.cycles) - last
        cycles = tuple(replace(c, climb=True) if i >= first else c for i, c in enumerate(self.cycles))
        return replace(self, cycles=cycles)

    # -- serialisation --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; runs of identical cycles become one phase with `repeat`; inf as "inf"."""
        band = {f.name: _jsonable(getattr(self.band, f.name)) for f in fields(BandOptions)}
        phases = []
        for cycle, repeat in _runs(self.cycles):
            phase = {f.name: _jsonable(getattr(cycle, f.name)) for f in fields(Cycle)}
            phase["repeat"] = repeat
            phases.append(phase)
        return {"name": self.name, "band": band, "phase": phases}

    def to_toml(self) -> str:
        """TOML text that load_schedule reads back to an equal schedule."""
        lines = [f"name = {_toml_value(self.name)}", "", "[band]"]
        for f in fields(BandOptions):
            lines.append(f"{f.name} = {_toml_value(getattr(self.band, f.name))}")
        for cycle, repeat in _runs(self.cycles):
            lines += ["", "[[phase]]", f"repeat = {repeat}"]
            for f in fields(Cycle):
                value = getattr(cycle, f.name)
                if value is not None:  # TOML has no null: absent means None
                    lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _check_factor(method: str, factor: object) -> None:
    if not (_is_number(factor) and math.isfinite(factor) and factor > 0):
        raise ScheduleError([f"factor must be a finite number > 0, got {factor!r}"], where=method)


def _check_names(method: str, changes: Mapping[str, Any], cls: type) -> None:
    known = [f.name for f in fields(cls)]
    bad = [f"unknown field {k!r}{_did_you_mean(k, known)}" for k in changes if k not in known]
    if bad:
        raise ScheduleError(bad, where=method)


def _runs(cycles: tuple[Cycle, ...]) -> list[tuple[Cycle, int]]:
    """Consecutive identical cycles as (cycle, count)."""
    runs: list[tuple[Cycle, int]] = []
    for cycle in cycles:
        if runs and runs[-1][0] == cycle:
            runs[-1] = (cycle, runs[-1][1] + 1)
        else:
            runs.append((cycle, 1))
    return runs


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 0.1, 1e-05, inf, nan are all TOML floats
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{k if _BARE_KEY.fullmatch(k) else _toml_string(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    raise ScheduleError([f"cannot write {value!r} ({type(value).__name__}) as TOML"], where="to_toml")


# ----------------------------------------------------------------------------
# loading


_TOP_KEYS = ("name", "band", "phase")
_CYCLE_KEYS = tuple(f.name for f in fields(Cycle))
_PHASE_KEYS = _CYCLE_KEYS + ("repeat",)
_BAND_KEYS = tuple(f.name for f in fields(BandOptions))
_REQUIRED_CYCLE_KEYS = {"steps": "a positive integer", "lr": "a finite number > 0"}


def _unknown_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> list[str]:
    return [f"unknown key {k!r} in {where}{_did_you_mean(k, known)}; known keys: {', '.join(known)}"
            for k in table if k not in known]


def _phase_cycles(phase: object, number: int) -> tuple[list[Cycle], list[str]]:
    """The cycles of one [[phase]] table, or the problems found in it."""
    where = f"phase {number}"
    if not isinstance(phase, Mapping):
        return [], [f"{where}: must be a table, got {phase!r}"]
    problems = [f"{where}: {p}" for p in _unknown_keys(phase, _PHASE_KEYS, "[[phase]]")]
    problems += [f"{where}: {k} is missing ({what})" for k, what in _REQUIRED_CYCLE_KEYS.items() if k not in phase]
    repeat = phase.get("repeat", 1)
    if not (_is_int(repeat) and repeat >= 1):
        problems.append(f"{where}: repeat must be an integer >= 1, got {repeat!r}")
    values = {k: v for k, v in phase.items() if k in _CYCLE_KEYS}
    if not all(k in values for k in _REQUIRED_CYCLE_KEYS):
        return [], problems
    try:
        cycle = Cycle(**values)
    except ScheduleError as error:
        problems += [f"{where}: {p}" for p in error.problems]
        return [], problems
    if number == 1 and cycle.insert is False:
        problems.append(f"{where}: insert must be true in the first cycle (it fills initial_pivots on the segment)")
    return ([cycle] * repeat if not problems else []), problems


def schedule_from_dict(d: Mapping[str, Any], source: str = "schedule", default_name: str = "custom") -> Schedule:
    """A Schedule from the TOML layout (name, [band], [[phase]]); `source` names it in errors."""
    if not isinstance(d, Mapping):
        raise ScheduleError([f"must be a table with band and phase entries, got {type(d).__name__}"], where=source)
    problems = _unknown_keys(d, _TOP_KEYS, "the top level")
    name = d.get("name", default_name)
    if not isinstance(name, str) or not name:
        problems.append(f"name must be a non-empty string, got {name!r}")

    band_table = d.get("band", {})
    band = None
    if not isinstance(band_table, Mapping):
        problems.append(f"band must be a table ([band]), got {band_table!r}")
    else:
        problems += [f"band: {p}" for p in _unknown_keys(band_table, _BAND_KEYS, "[band]")]
        try:
            band = BandOptions(**{k: v for k, v in band_table.items() if k in _BAND_KEYS})
        except ScheduleError as error:
            problems += [f"band: {p}" for p in error.problems]

    phases = d.get("phase", [])
    cycles: list[Cycle] = []
    if not isinstance(phases, list):
        problems.append(f"phase must be an array of tables ([[phase]]), got {phases!r}")
    elif not phases:
        problems.append("no [[phase]] tables: a schedule needs at least one cycle")
    for number, phase in enumerate(phases if isinstance(phases, list) else [], start=1):
        phase_cycles, phase_problems = _phase_cycles(phase, number)
        cycles += phase_cycles
        problems += phase_problems

    if problems:
        raise ScheduleError(problems, where=source)
    assert band is not None
    try:
        return Schedule(cycles=tuple(cycles), band=band, name=name)
    except ScheduleError as error:  # not expected: every field was checked above
        raise ScheduleError(error.problems, where=source) from None


def preset_names() -> list[str]:
    """Names of the schedules shipped in engine/neb/presets/."""
    folder = importlib.resources.files("engine.neb") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_schedule(spec: str | os.PathLike[str]) -> Schedule:
    """A preset by name ("paper", "reference") or a schedule TOML file by path."""
    presets = preset_names()
    if isinstance(spec, str) and spec in presets:
        source = f"presets/{spec}.toml"
        resource = importlib.resources.files("engine.neb") / "presets" / f"{spec}.toml"
        return _schedule_from_toml(resource.read_text(encoding="utf-8"), source, spec)
    path = Path(spec)
    if not path.exists():
        raise ScheduleError([f"no such schedule file (presets: {', '.join(presets)})"], where=str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ScheduleError([f"cannot read the schedule file: {error.strerror or error}"], where=str(path)) from None
    except UnicodeDecodeError as error:
        raise ScheduleError([f"cannot read the schedule file: not UTF-8 text ({error.reason})"],
                            where=str(path)) from None
    return _schedule_from_toml(text, str(path), path.stem)


def _schedule_from_toml(text: str, source: str, default_name: str) -> Schedule:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScheduleError([f"invalid TOML: {error}"], where=source) from None
    return schedule_from_dict(table, source=source, default_name=default_name)
