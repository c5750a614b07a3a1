"""Exploring a set of minima: the landscape chooses pairs, AutoNEB connects them.

``Exploration`` runs the paper's algorithm one pair at a time as a resumable
object: a stop request is honoured at any NEB step boundary, ``state_dict()``
holds the landscape, the finished paths and the connection in progress, and an
exploration rebuilt with ``Exploration.from_state`` finishes bit for bit as one
that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from engine import events
from engine.neb.autoneb import Connection, ConnectionResult, StopRequest, seed_for_pair
from engine.energy.base import Energy
from engine.events import EventSink
from engine.neb.landscape import Edge, Landscape
from engine.neb.schedule import Schedule


@dataclass
class ExplorationResult:
    minima: Tensor  # (M, D)
    energies: list[float]  # loss at each minimum
    paths: dict[tuple[int, int], ConnectionResult]  # every computed connection, by pair (a < b)
    mst: list[Edge]  # (a, b, saddle energy)
    finished_reason: str

    def to_dict(self, with_pivots: bool = True) -> dict[str, Any]:
        """JSON-able: minima (id, position, energy), paths, mst."""
        return {
            "minima": [
                {"id": i, "position": self.minima[i].tolist() if with_pivots else None, "energy": e}
                for i, e in enumerate(self.energies)
            ],
            "paths": [
                {
                    "a": a,
                    "b": b,
                    "saddle_energy": r.saddle_energy,
                    "saddle_position": r.saddle_position,
                    "saddle_point": r.saddle_point.tolist() if with_pivots else None,
                    "linear_saddle_energy": r.linear_saddle_energy,
                    "pivot_count": r.pivots.shape[0],
                    "pivots": r.pivots.tolist() if with_pivots else None,
                    "restart_saddles": r.restart_saddles,
                }
                for (a, b), r in sorted(self.paths.items())
            ],
            "mst": [{"a": a, "b": b, "saddle_energy": s} for a, b, s in self.mst],
            "finished_reason": self.finished_reason,
        }


class Exploration:
    """The energy landscape exploration of ``minima`` (M, D) under ``energy``."""

    def __init__(
        self,
        energy: Energy,
        minima: Tensor,
        schedule: Schedule,
        *,
        seed: int = 0,
        variant: str = "mst",
        stop: str = "all_pairs",
        tolerance: float = 0.0,
        relative: bool = False,
        max_pairs: int | None = None,
        on_event: EventSink = events.ignore,
        energies: list[float] | None = None,
    ):
        if minima.dim() != 2 or minima.shape[1] != energy.dim:
            raise ValueError(f"minima must be an (M, {energy.dim}) tensor, got shape {tuple(minima.shape)}")
        if minima.shape[0] < 2:
            raise ValueError(f"an exploration needs at least 2 minima, got {minima.shape[0]}")
        self.energy = energy
        self.minima = minima.detach().clone()
        self.schedule = schedule
        self.seed = seed
        self.on_event = on_event
        if energies is None:
            energies = [float(v) for v in energy.evaluate(self.minima)]
        self.energies = energies
        self.landscape = Landscape(
            energies,
            variant=variant,
            stop=stop,
            tolerance=tolerance,
            relative=relative,
            max_pairs=max_pairs,
            on_event=on_event,
        )
        self.paths: dict[tuple[int, int], ConnectionResult] = {}
        self.connections: dict[tuple[int, int], Connection] = {}  # finished ones, for state_dict
        self.running: dict[tuple[int, int], Connection] = {}  # started, not finished
        self.result: ExplorationResult | None = None

    def run(self, should_stop: StopRequest | None = None) -> ExplorationResult | None:
        """Explore to the end, one pair at a time, or until ``should_stop()`` (then None)."""
        while True:
            if not self.running:
                pair = self.landscape.next_pair()
                if pair is None:
                    break
                self.running[pair] = self.connection_for(pair)
            connection = next(iter(self.running.values()))
            if connection.run(should_stop) is None:
                return None
            self.record(connection)
        return self.finish()

    def connection_for(self, pair: tuple[int, int]) -> Connection:
        """A new connection for ``pair`` with the pair's own seed (the same wherever it runs)."""
        a, b = pair
        return Connection(
            self.energy,
            self.schedule,
            self.minima[a],
            self.minima[b],
            pair=pair,
            seed=seed_for_pair(self.seed, pair),
            on_event=self.on_event,
        )

    def record(self, connection: Connection) -> None:
        """A finished connection: its path joins the landscape."""
        assert connection.result is not None, "only finished connections can be recorded"
        a, b = connection.pair
        self.running.pop((a, b), None)
        self.paths[(a, b)] = connection.result
        self.connections[(a, b)] = connection
        self.landscape.add_path(a, b, connection.result.saddle_energy)

    def finish(self) -> ExplorationResult:
        self.result = ExplorationResult(
            minima=self.minima,
            energies=self.energies,
            paths=self.paths,
            mst=self.landscape.mst(),
            finished_reason=self.landscape.finished_reason or "",
        )
        return self.result

    def state_dict(self, finished: bool = True) -> dict[str, Any]:
        """{"tensors": {name: Tensor}, "meta": JSON-able}: everything needed to continue.

        ``finished=False`` leaves out the finished connections (a caller that keeps
        them elsewhere puts them back into meta["paths"] and the tensors)."""
        tensors: dict[str, Tensor] = {"minima": self.minima}
        meta: dict[str, Any] = {
            "seed": self.seed,
            "energies": self.energies,
            "landscape": self.landscape.state_dict(),
            "paths": {},
            "running": {},
        }
        for (a, b), connection in self.connections.items() if finished else ():
            key = f"{a}-{b}"
            state = connection.state_dict()
            meta["paths"][key] = state["meta"]
            tensors.update({f"paths.{key}.{name}": t for name, t in state["tensors"].items()})
        for (a, b), connection in self.running.items():
            key = f"{a}-{b}"
            state = connection.state_dict()
            meta["running"][key] = state["meta"]
            tensors.update({f"running.{key}.{name}": t for name, t in state["tensors"].items()})
        return {"tensors": tensors, "meta": meta}

    @classmethod
    def from_state(
        cls,
        energy: Energy,
        schedule: Schedule,
        state: dict[str, Any],
        *,
        on_event: EventSink = events.ignore,
    ) -> "Exploration":
        """Rebuild an exploration from ``state_dict()``; ``run()`` then continues it."""
        tensors, meta = state["tensors"], state["meta"]
        options = meta["landscape"]["options"]
        self = cls(
            energy,
            tensors["minima"],
            schedule,
            seed=meta["seed"],
            energies=meta["energies"],
            on_event=events.ignore,
            **options,
        )
        self.on_event = on_event
        self.landscape = Landscape.from_state(meta["landscape"], on_event=on_event)
        for key, path_meta in meta["paths"].items():
            connection = Connection.from_state(energy, schedule, _substate(tensors, f"paths.{key}.", path_meta))
            assert connection.result is not None
            self.paths[connection.pair] = connection.result
            self.connections[connection.pair] = connection
        for key, running_meta in meta["running"].items():
            connection = Connection.from_state(
                energy, schedule, _substate(tensors, f"running.{key}.", running_meta), on_event=on_event
            )
            self.running[connection.pair] = connection
        return self


def _substate(tensors: dict[str, Tensor], prefix: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"tensors": {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}, "meta": meta}
