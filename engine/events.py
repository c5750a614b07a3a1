"""Progress as events: small JSON-able dataclasses, the protocol between every
process and the UI. Tensors never travel in events; they go to checkpoints.

Every event has a ``kind`` (its class name in snake case) and round-trips
through ``to_dict`` / ``event_from_dict``.
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = _snake(cls.__name__)
        _REGISTRY[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from ``Event.to_dict`` output (e.g. a JSON log line)."""
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _REGISTRY.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = tuple(value) if f.name == "pair" and value is not None else value
    return cls(**kwargs)


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
