"""AutoNEB schedules: the cycles (steps, lr, optimiser, insertion, batch size)
and the band options, with the `paper`, `reference` and `surface` presets.

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
may be ``inf`` or the string ``"inf"``. Presets live in ``engine/paths/presets/``.

The fields are declared once, with pydantic: type, range, choices and the
words that say what is accepted. Every bad field is reported as one line of a
ScheduleError, naming where it is, what is wrong and what is accepted; all bad
fields are reported at once. Optimisers are checked against OPTIMISER_ARGS, a
static declaration: validating a schedule does not import torch.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import math
import os
import tomllib
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from engine.band.choices import INSERTION_RULES, INSERTION_SCALES, RESPACE_TIMES, SPACINGS, TANGENT_NAMES

SELECTS = ("last", "lowest")

PAPER_BATCH_SIZES = {
    "resnet20": 512,
    "resnet32": 512,
    "resnet44": 256,
    "resnet56": 256,
    "densenet40_12": 64,
    "densenet100_12_bc": 64,
}


class ScheduleError(ValueError):
    """An invalid schedule: one line per bad field.

    ``problems`` are the lines without the ``where`` prefix; ``lines`` with it.
    """

    def __init__(self, problems: Iterable[str], where: str = "") -> None:
        self.problems = list(problems)
        self.where = where
        self.lines = [f"{where}: {p}" if where else p for p in self.problems]
        super().__init__("\n".join(self.lines))


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    by_lower = {c.lower(): c for c in choices}
    if word.lower() in by_lower:
        return f" (did you mean {by_lower[word.lower()]!r}?)"
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?)"


# ----------------------------------------------------------------------------
# optimisers: the torch.optim classes a band step can use, and the keyword
# arguments of each with the values torch.optim accepts for them. Device-level
# switches (fused, capturable, differentiable) and maximize are left to torch.

_Flag = Annotated[bool, Field(strict=True, description="true or false")]
_Number = Annotated[float, Field(strict=True, allow_inf_nan=False, description="a finite number")]
_NonNegative = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False, description="a finite number >= 0")]
_Fraction = Annotated[float, Field(strict=True, ge=0, le=1, description="a number in [0, 1]")]
_Beta = Annotated[float, Field(strict=True, ge=0, lt=1)]
_Betas = Annotated[tuple[_Beta, _Beta], Field(description="two numbers in [0, 1)")]
_Etas = Annotated[
    tuple[Annotated[float, Field(strict=True, gt=0, lt=1)], Annotated[float, Field(strict=True, gt=1)]],
    Field(description="two numbers, 0 < decrease < 1 < increase"),
]
_Positive = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
_StepSizes = Annotated[tuple[_Positive, _Positive], Field(description="two finite numbers > 0 (smallest, largest)")]
_ADAM = {"betas": _Betas, "eps": _NonNegative, "weight_decay": _NonNegative}

OPTIMISER_ARGS: dict[str, dict[str, Any]] = {
    "SGD": {"momentum": _NonNegative, "dampening": _Number, "weight_decay": _NonNegative, "nesterov": _Flag},
    "Adam": {**_ADAM, "amsgrad": _Flag, "decoupled_weight_decay": _Flag},
    "AdamW": {**_ADAM, "amsgrad": _Flag},
    "Adamax": _ADAM,
    "NAdam": {**_ADAM, "momentum_decay": _NonNegative, "decoupled_weight_decay": _Flag},
    "RAdam": {**_ADAM, "decoupled_weight_decay": _Flag},
    "RMSprop": {"alpha": _NonNegative, "eps": _NonNegative, "weight_decay": _NonNegative, "momentum": _NonNegative,
                "centered": _Flag},
    "Adagrad": {"lr_decay": _NonNegative, "weight_decay": _NonNegative, "initial_accumulator_value": _NonNegative,
                "eps": _NonNegative},
    "Adadelta": {"rho": _Fraction, "eps": _NonNegative, "weight_decay": _NonNegative},
    "ASGD": {"lambd": _Number, "alpha": _Number, "t0": _Number, "weight_decay": _NonNegative},
    "Rprop": {"etas": _Etas, "step_sizes": _StepSizes},
}
OPTIMISER_ARGS = {name: {**args, "foreach": _Flag} for name, args in OPTIMISER_ARGS.items()}

# torch.optim classes whose step needs more than the band's forces.
UNSUPPORTED_OPTIMISERS = {
    "LBFGS": "it re-evaluates the loss through a closure, which a band step does not have",
    "Muon": "it only takes 2-D weight matrices, and the pivots are flat vectors",
    "SparseAdam": "it only takes sparse gradients, and the band's are dense",
    "Adafactor": "it factors the second moment over rows and columns, and the band's rows are separate pivots",
}


@functools.cache
def _argument(optimiser: str, key: str) -> TypeAdapter[Any]:
    return TypeAdapter(OPTIMISER_ARGS[optimiser][key])


def _optimiser_problems(name: object, args: object) -> list[str]:
    """One line per bad optimiser name or keyword argument (their types are checked with the fields)."""
    if not isinstance(name, str) or not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        return []
    if name in UNSUPPORTED_OPTIMISERS:
        return [f"optimiser {name} cannot drive a band: {UNSUPPORTED_OPTIMISERS[name]}; use SGD or Adam"]
    if name not in OPTIMISER_ARGS:
        hint = did_you_mean(name, OPTIMISER_ARGS) or f"; allowed: {', '.join(OPTIMISER_ARGS)}"
        return [f"optimiser must name a torch.optim optimiser class, got {name!r}{hint}"]
    accepted = OPTIMISER_ARGS[name]
    problems = []
    for key, value in args.items():
        if key == "lr":
            problems.append("optimiser_args must not set lr: use the cycle's lr")
        elif key == "params":
            problems.append("optimiser_args must not set params: the engine passes the pivots")
        elif key not in accepted:
            problems.append(f"optimiser_args: {name} does not accept {key!r}{did_you_mean(key, accepted)};"
                            f" accepted: {', '.join(accepted)}")
        else:
            try:
                _argument(name, key).validate_python(value)
            except ValidationError:
                what = typing.get_args(accepted[key])[1].description
                problems.append(f"optimiser_args rejected by torch.optim.{name}: Invalid {key} value: {value!r}"
                                f" (must be {what})")
    if name == "SGD" and args.get("nesterov") is True and not problems and (
            args.get("momentum", 0) <= 0 or args.get("dampening", 0) != 0):
        problems.append("optimiser_args rejected by torch.optim.SGD: "
                        "Nesterov momentum requires a momentum and zero dampening")
    return problems


# ----------------------------------------------------------------------------
# the cycle and the band options


class _Fields(BaseModel):
    """Frozen, strictly typed fields; bad ones raise a ScheduleError, one line each."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
            problems = []
        except ValidationError as error:
            problems = field_lines(type(self), error, values)
        problems += self._more_problems(values)
        if problems:
            raise ScheduleError(problems, where=type(self).__name__)

    @classmethod
    def _more_problems(cls, values: Mapping[str, Any]) -> list[str]:
        return []

    def changed(self, **changes: Any) -> Any:
        """A copy with some fields changed, validated."""
        return type(self)(**{**dict(self), **changes})


def field_lines(cls: type[BaseModel], error: ValidationError, values: Mapping[str, Any]) -> list[str]:
    """The pydantic errors as our lines: one per field, with what the field accepts."""
    lines: dict[str, str] = {}
    for detail in error.errors():
        name = str(detail["loc"][0]) if detail["loc"] else ""
        if name in lines:
            continue
        if detail["type"] == "extra_forbidden":
            lines[name] = f"unknown field {name!r}{did_you_mean(name, cls.model_fields)}"
            continue
        field = cls.model_fields[name]
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is Literal else ()
        if detail["type"] == "value_error":  # a validator of ours: its message says what is accepted
            what = str(detail["ctx"]["error"])
        elif choices:
            what = "one of " + ", ".join(repr(c) for c in choices)
        else:
            what = field.description or ""
        if detail["type"] == "missing":
            lines[name] = f"{name} is missing ({what})"
        else:
            value = values[name]
            lines[name] = f"{name} must be {what}, got {value!r}{did_you_mean(value, choices)}"
    return list(lines.values())


class Cycle(_Fields):
    """One NEB cycle of an AutoNEB schedule."""

    steps: int = Field(ge=1, description="a positive integer")  # optimiser steps in this cycle
    lr: float = Field(gt=0, allow_inf_nan=False, description="a finite number > 0")
    optimiser: str = Field("SGD", description="the name of a torch.optim optimiser class")  # in OPTIMISER_ARGS
    optimiser_args: dict[str, Any] = Field(  # e.g. {"momentum": 0.9}
        default_factory=dict, description="a table of keyword arguments")
    batch_size: int | None = Field(  # minibatch per pivot (networks); None = energy's default
        None, ge=1, description="an integer >= 1")
    insert: _Flag = True  # before this cycle's steps: insert pivots by the residual rule
    max_insert: int | None = Field(  # at most this many new pivots this cycle (None = no cap)
        None, ge=0, description="an integer >= 0")
    climb: _Flag = False  # climbing image on during this cycle

    @classmethod
    def _more_problems(cls, values: Mapping[str, Any]) -> list[str]:
        return _optimiser_problems(values.get("optimiser", "SGD"), values.get("optimiser_args", {}))


class BandOptions(_Fields):
    """How the band is built, moved and refined (constant over a connection)."""

    initial_pivots: int = Field(  # interior pivots filled equally on the segment in cycle 1
        3, ge=1, description="an integer >= 1 (zero pivots leave nothing to optimise)")
    max_pivots: int = Field(  # cap on pivots, ends included
        64, description="an integer >= initial_pivots + 2 (the ends count)")
    tangent: Literal[TANGENT_NAMES] = "paper"
    spring: float = Field(  # k; inf = no spring force, re-space after every step
        math.inf, gt=0, description="a number > 0 or inf")
    spacing: Literal[SPACINGS] = "equal"  # "equal" (string method) | "fractions" (insertion history)
    respace: Literal[RESPACE_TIMES] = "after"  # k = inf: after each optimiser step | "before" each step's gradients
    insertion_rule: Literal[INSERTION_RULES] = "threshold"  # every segment over it | the top max_insert
    insertion_threshold: float = Field(0.2, gt=0, le=1, description="in (0, 1]")  # residual / energy range
    insertion_scale: Literal[INSERTION_SCALES] = "dense"  # energy range of the "dense" profile or of the "pivots"
    dense_points: int = Field(  # evaluation points between neighbouring pivots
        9, ge=1, description="an integer >= 1")
    weight_decay: float = Field(  # added to the gradient before the projection
        0.0, ge=0, allow_inf_nan=False, description="a finite number >= 0")
    reset_optimiser: _Flag = True  # new optimiser each cycle (else momentum carried over)
    select: Literal[SELECTS] = "last"  # result path: "last" cycle or the cycle with the "lowest" saddle
    restarts: int = Field(1, ge=1, description="an integer >= 1")  # independent bands, best kept
    restart_noise: float = Field(  # start-path noise of restarts 2.., relative to |end - start|
        0.0, ge=0, allow_inf_nan=False, description="a finite number >= 0")
    energy_every: int = Field(10, ge=1, description="an integer >= 1")  # a StepEnergies event every this many steps
    # A pair ends early once its saddle has stopped moving: at each of the last
    # converge_cycles cycle ends it moved by less than converge_change of its value
    # (0: every cycle of the schedule runs, as the paper's).
    converge_change: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False, description="a number in [0, 1)")
    converge_cycles: int = Field(2, ge=1, description="an integer >= 1")

    @field_validator("spring", mode="before")
    @classmethod
    def _inf_as_text(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity"):
            return math.inf
        return value

    @field_validator("max_pivots")
    @classmethod
    def _room_for_the_ends(cls, value: int, info: ValidationInfo) -> int:
        initial = info.data.get("initial_pivots")
        if initial is not None and value < initial + 2:
            raise ValueError(f"an integer >= initial_pivots + 2 = {initial + 2} (the ends count)")
        return value


# ----------------------------------------------------------------------------
# the schedule


@dataclass(frozen=True)
class Schedule:
    """NEB cycles run in order, and the band options they share."""

    cycles: tuple[Cycle, ...]
    band: BandOptions = BandOptions()
    name: str = "custom"

    def __post_init__(self) -> None:
        if isinstance(self.cycles, list):
            object.__setattr__(self, "cycles", tuple(self.cycles))
        problems: list[str] = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.band, BandOptions):
            problems.append(f"band must be a BandOptions, got {type(self.band).__name__}")
        if not isinstance(self.cycles, tuple) or not self.cycles:
            problems.append("cycles: a schedule needs at least one cycle, got none")
        else:
            problems += [f"cycle {number}: must be a Cycle, got {type(cycle).__name__}"
                         for number, cycle in enumerate(self.cycles, start=1) if not isinstance(cycle, Cycle)]
            if isinstance(self.cycles[0], Cycle) and not self.cycles[0].insert:
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
        return replace(self, cycles=tuple(c.changed(steps=max(1, round(c.steps * factor))) for c in self.cycles))

    def with_lr_scale(self, factor: float) -> Schedule:
        """Every cycle's lr times `factor`."""
        _check_factor("with_lr_scale", factor)
        return replace(self, cycles=tuple(c.changed(lr=c.lr * factor) for c in self.cycles))

    def replace_band(self, **changes: Any) -> Schedule:
        """The same cycles with some band options changed."""
        _check_names("replace_band", changes, BandOptions)
        return replace(self, band=self.band.changed(**changes))

    def replace_cycles(self, **changes: Any) -> Schedule:
        """The same fields changed in every cycle, e.g. ``batch_size=256``."""
        _check_names("replace_cycles", changes, Cycle)
        return replace(self, cycles=tuple(c.changed(**changes) for c in self.cycles))

    def for_architecture(self, model: str) -> Schedule:
        """The paper's per-architecture minibatch per pivot (its sections 4.1-4.2): 512 for
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
        if not (type(last) is int and 1 <= last <= len(self.cycles)):
            raise ScheduleError([f"last must be an integer in 1..{len(self.cycles)}, got {last!r}"],
                                where="with_climbing")
        first = len(self.cycles) - last
        return replace(self, cycles=tuple(c.changed(climb=True) if i >= first else c
                                          for i, c in enumerate(self.cycles)))

    # -- serialisation --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; runs of identical cycles become one phase with `repeat`; inf as "inf"."""
        phases = []
        for cycle in self.cycles:
            if phases and phases[-1][0] == cycle:
                phases[-1][1] += 1
            else:
                phases.append([cycle, 1])
        # the early stop off, as every schedule was before it existed: not written, so that
        # schedules, configs and saved states read as they did
        unset = {"converge_change", "converge_cycles"} if self.band.converge_change == 0 else None
        return {
            "name": self.name,
            "band": _jsonable(self.band.model_dump(exclude=unset)),
            "phase": [{**_jsonable(cycle.model_dump()), "repeat": repeat} for cycle, repeat in phases],
        }


def _check_factor(method: str, factor: object) -> None:
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and math.isfinite(factor) and factor > 0):
        raise ScheduleError([f"factor must be a finite number > 0, got {factor!r}"], where=method)


def _check_names(method: str, changes: Mapping[str, Any], cls: type[BaseModel]) -> None:
    bad = [f"unknown field {k!r}{did_you_mean(k, cls.model_fields)}" for k in changes if k not in cls.model_fields]
    if bad:
        raise ScheduleError(bad, where=method)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------
# loading


_TOP_KEYS = ("name", "band", "phase")
_PHASE_KEYS = (*Cycle.model_fields, "repeat")


def _unknown_keys(table: Mapping[str, Any], known: Iterable[str], where: str) -> list[str]:
    known = list(known)
    return [f"unknown key {k!r} in {where}{did_you_mean(k, known)}; known keys: {', '.join(known)}"
            for k in table if k not in known]


def _build(cls: type[_Fields], table: Mapping[str, Any], where: str) -> tuple[Any, list[str]]:
    """An instance from the table's known keys, or None and the problems, each prefixed by `where`."""
    try:
        return cls(**{k: v for k, v in table.items() if k in cls.model_fields}), []
    except ScheduleError as error:
        return None, [f"{where}: {p}" for p in error.problems]


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
    if isinstance(band_table, Mapping):
        problems += [f"band: {p}" for p in _unknown_keys(band_table, BandOptions.model_fields, "[band]")]
        band, bad = _build(BandOptions, band_table, "band")
        problems += bad
    else:
        problems.append(f"band must be a table ([band]), got {band_table!r}")

    phases = d.get("phase", [])
    cycles: list[Cycle] = []
    if not isinstance(phases, list):
        problems.append(f"phase must be an array of tables ([[phase]]), got {phases!r}")
        phases = []
    elif not phases:
        problems.append("no [[phase]] tables: a schedule needs at least one cycle")
    for number, phase in enumerate(phases, start=1):
        where = f"phase {number}"
        if not isinstance(phase, Mapping):
            problems.append(f"{where}: must be a table, got {phase!r}")
            continue
        problems += [f"{where}: {p}" for p in _unknown_keys(phase, _PHASE_KEYS, "[[phase]]")]
        repeat = phase.get("repeat", 1)
        if not (type(repeat) is int and repeat >= 1):
            problems.append(f"{where}: repeat must be an integer >= 1, got {repeat!r}")
            repeat = 1
        cycle, bad = _build(Cycle, phase, where)
        problems += bad
        if number == 1 and cycle is not None and not cycle.insert:
            problems.append(f"{where}: insert must be true in the first cycle (it fills initial_pivots on the segment)")
        cycles += [cycle] * repeat

    if problems:
        raise ScheduleError(problems, where=source)
    return Schedule(cycles=tuple(cycles), band=band, name=name)


def preset_names() -> list[str]:
    """Names of the schedules shipped in engine/paths/presets/."""
    folder = importlib.resources.files("engine.paths") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_schedule(spec: str | os.PathLike[str]) -> Schedule:
    """A preset by name ("paper", "reference", "surface") or a schedule TOML file by path."""
    presets = preset_names()
    if isinstance(spec, str) and spec in presets:
        resource = importlib.resources.files("engine.paths") / "presets" / f"{spec}.toml"
        return _schedule_from_toml(resource.read_text(encoding="utf-8"), f"presets/{spec}.toml", spec)
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
