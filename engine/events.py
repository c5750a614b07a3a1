"""Progress as events: small JSON-able dataclasses, the protocol between every
process and the UI. Tensors never travel in events; they go to checkpoints.

Every event has a ``kind`` (its class name in snake case) and round-trips
through ``to_dict`` / ``event_from_dict``. One registry holds every kind: the
engine's below and the session's (``sessions.events``) once imported.

A dict whose kind is not registered (written by a newer version), or that
lacks a field its class needs, comes back as an ``UnknownEvent`` that keeps the
dict as it was: readers skip it, nothing fails on it. A dict of a known kind
whose fields have the wrong types (a damaged or hostile log: ``"losses": 5``)
comes back as an ``UnknownEvent`` that also says what is wrong (``problem``):
readers skip it too, and the session's view reports the damage.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Union

Pair = tuple[int, int]
Edge = Annotated[list[int], 2]  # [a, b]
WeightedEdge = Annotated[list[float], 3]  # [a, b, saddle_energy]

_REGISTRY: dict[str, type["Event"]] = {}


def _snake(name: str) -> str:
    """CycleStarted -> cycle_started, MSTEdgeAdded -> mst_edge_added."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    _checks: ClassVar[tuple[tuple[str, Callable[[Any], bool]], ...] | None] = None  # made on first use

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._checks = None
        if register:
            cls.kind = _snake(cls.__name__)
            _REGISTRY[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class UnknownEvent(Event, register=False):
    """An event this version cannot read: its dict, kept as written, and what is
    wrong with it when its kind is known but its fields have the wrong types."""

    data: dict[str, Any]
    problem: str = ""

    @property  # type: ignore[override]
    def kind(self) -> str:  # type: ignore[override]
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


Check = Callable[[Any], bool]


_SCALARS: dict[Any, frozenset[type]] = {  # the JSON types a field of each type takes
    float: frozenset({float, int}),  # a JSON number; NaN and infinities are floats too
    int: frozenset({int}),
    str: frozenset({str}),
    bool: frozenset({bool}),
}


def _check_for(hint: Any) -> Check:
    """A test of whether a JSON value fits the field type ``hint`` (the types events use:
    numbers, strings, booleans, lists of them, pairs, fixed-length edges, optional ones).
    Lists of scalars are tested with one pass in C (a replay checks every loss of a log)."""
    if hint is Any:
        return lambda value: True
    if hint in _SCALARS:
        kinds = _SCALARS[hint]
        return lambda value: type(value) in kinds
    if hint is type(None):
        return lambda value: value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        choices = [_check_for(arg) for arg in args]
        return lambda value: any(check(value) for check in choices)
    if origin is Annotated:  # a list of fixed length
        items, length = _check_for(args[0]), args[1]
        return lambda value: items(value) and len(value) == length
    if origin is list and args and args[0] in _SCALARS:
        kinds = _SCALARS[args[0]]
        return lambda value: type(value) is list and kinds.issuperset(map(type, value))
    if origin is list:
        item = _check_for(args[0]) if args else _check_for(Any)
        return lambda value: type(value) is list and all(item(v) for v in value)
    if origin is tuple and args and len({_SCALARS.get(arg) for arg in args}) == 1 and args[0] in _SCALARS:
        kinds, length = _SCALARS[args[0]], len(args)  # a pair: as JSON writes it, a list
        return lambda value: type(value) in (list, tuple) and len(value) == length and kinds.issuperset(
            map(type, value))
    if origin is dict or hint is dict:
        return lambda value: type(value) is dict
    raise TypeError(f"an event field of type {hint!r}: add it to engine.events._check_for")


def _field_checks(cls: type[Event]) -> tuple[tuple[str, Check], ...]:
    """(name, check) of each field of ``cls``, made on first use (after @dataclass ran)."""
    checks = cls._checks
    if checks is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        checks = cls._checks = tuple((f.name, _check_for(hints[f.name])) for f in dataclasses.fields(cls))
    return checks


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def event_from_dict(data: dict[str, Any]) -> Event:
    """The event of ``Event.to_dict`` output (e.g. a JSON log line; other keys are
    ignored); an ``UnknownEvent`` when its kind is unknown, a field is missing or a
    field has the wrong type (then with the ``problem`` in words)."""
    cls = _REGISTRY.get(data.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        return UnknownEvent(dict(data))
    kwargs = {}
    for name, check in _field_checks(cls):
        if name in data:
            value = data[name]
            if not check(value):
                return UnknownEvent(dict(data), f"{cls.kind}.{name} is {_describe(value)}, which does not fit its type")
            kwargs[name] = value
    pair = kwargs.get("pair")
    if pair is not None:
        kwargs["pair"] = tuple(pair)
    try:
        return cls(**kwargs)
    except TypeError:  # a field missing: written by another version
        return UnknownEvent(dict(data))


EventSink = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default sink: drop events."""


# --- one connection (AutoNEB between a pair of minima) -----------------------


@dataclass(frozen=True)
class CycleStarted(Event):
    pair: Pair
    restart: int
    cycle: int  # 1-based
    cycles: int
    steps: int
    lr: float
    optimiser: str
    batch_size: int | None
    insert: bool
    climb: bool
    pivots: int


@dataclass(frozen=True)
class PivotsInserted(Event):
    pair: Pair
    restart: int
    cycle: int
    positions: list[float]  # where the new pivots sit, as fractions of arc length
    pivots: int  # pivots on the band after insertion


@dataclass(frozen=True)
class StepEnergies(Event):
    pair: Pair
    restart: int
    cycle: int
    step: int  # 1-based, within the cycle
    losses: list[float]  # one per point, in order along the path, ends included (minibatch losses)
    # Where each loss was taken, 0 .. 1: a band's pivots as fractions of its arc length at
    # that step (first 0, last 1), a curve's values of t. None in logs written before
    # steps carried their positions.
    positions: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.positions is None:  # written as a step was before steps had positions
            del out["positions"]
        return out


@dataclass(frozen=True)
class CycleFinished(Event):
    pair: Pair
    restart: int
    cycle: int
    positions: list[float]  # dense profile: fraction of arc length, 0..1
    losses: list[float]  # dense profile: loss at each position
    pivot_positions: list[float]
    pivot_losses: list[float]
    saddle_energy: float
    saddle_position: float
    converged: bool = False  # the pair ends here, its saddle settled (band option converge_change)


@dataclass(frozen=True)
class ConnectionFinished(Event):
    pair: Pair
    saddle_energy: float
    saddle_position: float
    linear_saddle_energy: float
    pivots: int
    cycles: int
    restarts: int
    # What the run computed, its passes by phase without its seconds (those of
    # engine.paths.run.CostAccount.to_dict(timed=False): the same for a run stopped and
    # resumed); None in logs written before runs counted their work.
    cost: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.cost is None:  # written as a finished path was before it carried its cost
            del out["cost"]
        return out


# --- the landscape (which pair next, the MST) ---------------------------------


@dataclass(frozen=True)
class PairChosen(Event):
    pair: Pair
    reason: str  # "initial" | "replace"
    attacked_edge: Edge | None = None  # the MST edge this pair may replace


@dataclass(frozen=True)
class MSTEdgeAdded(Event):
    a: int
    b: int
    saddle_energy: float


@dataclass(frozen=True)
class MSTEdgeReplaced(Event):
    removed: Edge
    removed_energy: float
    added: Edge
    added_energy: float


@dataclass(frozen=True)
class EdgeIgnored(Event):
    a: int
    b: int
    saddle_energy: float


@dataclass(frozen=True)
class LandscapeFinished(Event):
    reason: str  # one of engine.landscape.graph.FINISH_REASONS
    mst: list[WeightedEdge] = field(default_factory=list)
