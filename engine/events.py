"""Progress as events: small JSON-able dataclasses, the protocol between every
process and the UI. Tensors never travel in events; they go to checkpoints.

Every event has a ``kind`` (its class name in snake case) and round-trips
through ``to_dict`` / ``event_from_dict``. One registry holds every kind: the
engine's below and the session's (``sessions.lifecycle``) once imported.

A dict whose kind is not registered (written by a newer version), or whose
fields do not fit its class, comes back as an ``UnknownEvent`` that keeps the
dict as it was: readers skip it, nothing fails on it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

Pair = tuple[int, int]

_REGISTRY: dict[str, type["Event"]] = {}


def _snake(name: str) -> str:
    """CycleStarted -> cycle_started, MSTEdgeAdded -> mst_edge_added."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    _field_names: ClassVar[tuple[str, ...] | None] = None  # filled on first use (after @dataclass ran)

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._field_names = None
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
    """An event this version cannot read: its dict, kept as written."""

    data: dict[str, Any]

    @property  # type: ignore[override]
    def kind(self) -> str:  # type: ignore[override]
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


def event_from_dict(data: dict[str, Any]) -> Event:
    """The event of ``Event.to_dict`` output (e.g. a JSON log line; other keys are
    ignored); an ``UnknownEvent`` when its kind or its fields do not fit."""
    cls = _REGISTRY.get(data.get("kind"))  # type: ignore[arg-type]
    if cls is not None:
        names = cls._field_names
        if names is None:
            names = cls._field_names = tuple(f.name for f in dataclasses.fields(cls))
        try:
            kwargs = {name: data[name] for name in names if name in data}
            pair = kwargs.get("pair")
            if pair is not None:
                kwargs["pair"] = tuple(pair)
            return cls(**kwargs)
        except TypeError:  # a field missing, or a pair that is no list
            pass
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
    losses: list[float]  # one per pivot, ends included (minibatch losses)


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


@dataclass(frozen=True)
class ConnectionFinished(Event):
    pair: Pair
    saddle_energy: float
    saddle_position: float
    linear_saddle_energy: float
    pivots: int
    cycles: int
    restarts: int


# --- the landscape (which pair next, the MST) ---------------------------------


@dataclass(frozen=True)
class PairChosen(Event):
    pair: Pair
    reason: str  # "initial" | "replace"
    attacked_edge: list[int] | None = None  # the MST edge this pair may replace


@dataclass(frozen=True)
class MSTEdgeAdded(Event):
    a: int
    b: int
    saddle_energy: float


@dataclass(frozen=True)
class MSTEdgeReplaced(Event):
    removed: list[int]  # [a, b]
    removed_energy: float
    added: list[int]
    added_energy: float


@dataclass(frozen=True)
class EdgeIgnored(Event):
    a: int
    b: int
    saddle_energy: float


@dataclass(frozen=True)
class LandscapeFinished(Event):
    reason: str  # "all_pairs" | "tolerance" | "max_pairs" | "star"
    mst: list[list[float]] = field(default_factory=list)  # [a, b, saddle_energy]
