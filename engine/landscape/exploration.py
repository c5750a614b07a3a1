"""Exploring a set of minima: the landscape chooses pairs, AutoNEB connects them.

``Exploration`` runs the paper's algorithm as a resumable object: a stop request
is honoured at any NEB step boundary, ``state_dict()`` holds the landscape, the
finished paths and the connections in progress, and an exploration rebuilt with
``Exploration.from_state`` finishes bit for bit as one that never stopped.

Several pairs at once: a ``PairSequence`` (engine/landscape/sequence.py) chooses the
pairs and applies their paths in the order chosen, so the result is the same
whatever the timing, for a given ``lookahead``; ``lookahead = 1`` is the
paper's loop, one pair at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

import engine.events as events
from engine.energy.base import Energy
from engine.events import EventSink
from engine.landscape.graph import Edge, Landscape, LandscapeOptions
from engine.landscape.sequence import PairSequence, parse_pair_key
from engine.paths.registry import new_run, run_from_state
from engine.paths.run import ConnectionResult, PathRun, StopRequest, seed_for_pair
from engine.paths.schedule import Schedule

PairEnds = Callable[[tuple[int, int]], tuple[Tensor, Tensor]]  # pair -> (start (D,), end (D,))


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
        landscape: LandscapeOptions | None = None,
        on_event: EventSink = events.ignore,
        energies: list[float] | None = None,
        lookahead: int = 1,
        ends: PairEnds | None = None,
        **landscape_fields: Any,
    ):
        """``landscape``: the landscape options whole, or their fields as keywords
        (``variant="star"``). ``ends``: a pair's two end points (start, end), each (D,),
        where they are not the minima as given (each pair's second end aligned to its
        first); it is called for a new pair only, a pair's saved state holds its own."""
        if minima.dim() != 2 or minima.shape[1] != energy.dim:
            raise ValueError(f"minima must be an (M, {energy.dim}) tensor, got shape {tuple(minima.shape)}")
        if minima.shape[0] < 2:
            raise ValueError(f"an exploration needs at least 2 minima, got {minima.shape[0]}")
        self.energy = energy
        self.minima = minima.detach().clone()
        self.schedule = schedule
        self.seed = seed
        self.on_event = on_event
        self.ends = ends
        if energies is None:
            energies = [float(v) for v in energy.evaluate(self.minima)]
        self.energies = energies
        self.sequence = PairSequence(Landscape(energies, landscape, on_event=on_event, **landscape_fields), lookahead)
        self.paths: dict[tuple[int, int], ConnectionResult] = {}  # applied to the landscape
        self.connections: dict[tuple[int, int], PathRun] = {}  # the applied ones, for state_dict
        self.running: dict[tuple[int, int], PathRun] = {}  # chosen, not finished (maybe not started)
        self.done: dict[tuple[int, int], PathRun] = {}  # finished, waiting for pairs chosen before
        self.result: ExplorationResult | None = None

    @property
    def landscape(self) -> Landscape:
        return self.sequence.landscape

    def run(self, should_stop: StopRequest | None = None) -> ExplorationResult | None:
        """Explore to the end, one connection at a time in the order chosen, or until
        ``should_stop()`` (then None)."""
        while pending := self.pending():
            connection = self.running[pending[0]]
            if connection.run(should_stop) is None:
                return None
            self.record(connection)
        return self.finish()

    def pending(self) -> list[tuple[int, int]]:
        """The pairs chosen and not finished, oldest first (start them in this order);
        each has its connection in ``running``. Empty once finished."""
        pairs = self.sequence.open()
        for pair in pairs:
            if pair not in self.running:
                self.running[pair] = self.connection_for(pair)
        return pairs

    def connection_for(self, pair: tuple[int, int]) -> PathRun:
        """A new connection for ``pair`` with the pair's own seed (the same wherever it runs)."""
        a, b = pair
        start, end = (self.minima[a], self.minima[b]) if self.ends is None else self.ends(pair)
        return new_run(
            self.energy,
            self.schedule,
            start,
            end,
            pair=pair,
            seed=seed_for_pair(self.seed, pair),
            on_event=self.on_event,
        )

    def record(self, connection: PathRun) -> None:
        """A finished connection. Its path joins the landscape once every pair chosen
        before it has joined (each may choose new pairs); one no longer needed (the
        landscape has finished) is dropped."""
        assert connection.result is not None, "only finished connections can be recorded"
        pair = connection.pair
        if not self.sequence.is_open(pair):
            return  # beyond need, or recorded before
        self.running.pop(pair, None)
        self.done[pair] = connection
        for applied in self.sequence.add(pair, connection.result.saddle_energy):
            finished = self.done.pop(applied)
            assert finished.result is not None
            self.paths[applied] = finished.result
            self.connections[applied] = finished
        if self.landscape.finished:
            self.running.clear()
            self.done.clear()

    @property
    def beyond_need(self) -> list[tuple[int, int]]:
        """Pairs chosen and then dropped: the landscape had finished without them."""
        return self.sequence.beyond_need

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

        ``finished=False`` leaves out the finished connections, applied or waiting
        (a caller that keeps them elsewhere puts the applied ones back into
        meta["paths"] and the tensors, and records the waiting ones again)."""
        tensors: dict[str, Tensor] = {"minima": self.minima}
        meta: dict[str, Any] = {
            "seed": self.seed,
            "energies": self.energies,
            "landscape": self.landscape.state_dict(),
            "sequence": self.sequence.state_dict(),
            "paths": {},
            "running": {},
            "done": {},
        }
        del meta["sequence"]["landscape"]  # the same as meta["landscape"]
        if not finished:
            meta["sequence"]["waiting"] = {}  # the caller records them again
        for (a, b), connection in self.connections.items() if finished else ():
            key = f"{a}-{b}"
            state = connection.state_dict()
            meta["paths"][key] = state["meta"]
            tensors.update({f"paths.{key}.{name}": t for name, t in state["tensors"].items()})
        groups = [("running", self.running), ("done", self.done if finished else {})]
        for group, connections in groups:
            for (a, b), connection in connections.items():
                key = f"{a}-{b}"
                state = connection.state_dict()
                meta[group][key] = state["meta"]
                tensors.update({f"{group}.{key}.{name}": t for name, t in state["tensors"].items()})
        return {"tensors": tensors, "meta": meta}

    @classmethod
    def from_state(
        cls,
        energy: Energy,
        schedule: Schedule,
        state: dict[str, Any],
        *,
        on_event: EventSink = events.ignore,
        ends: PairEnds | None = None,
    ) -> "Exploration":
        """Rebuild an exploration from ``state_dict()``; ``run()`` then continues it
        (``ends``: as the exploration was made with)."""
        tensors, meta = state["tensors"], state["meta"]
        self = cls(
            energy,
            tensors["minima"],
            schedule,
            seed=meta["seed"],
            landscape=LandscapeOptions(**meta["landscape"]["options"]),
            energies=meta["energies"],
            on_event=events.ignore,
            ends=ends,
        )
        self.on_event = on_event
        if "sequence" in meta:
            self.sequence = PairSequence.from_state({**meta["sequence"], "landscape": meta["landscape"]}, on_event)
        else:  # written one pair at a time: the applied paths, then those in flight
            self.sequence = PairSequence(Landscape.from_state(meta["landscape"], on_event=on_event))
            self.sequence.order = sorted(parse_pair_key(k) for k in meta["paths"])
            self.sequence.order += sorted(parse_pair_key(k) for k in meta["running"])
            self.sequence.applied = len(meta["paths"])
        for key, path_meta in meta["paths"].items():
            connection = run_from_state(energy, schedule, _substate(tensors, f"paths.{key}.", path_meta))
            assert connection.result is not None
            self.paths[connection.pair] = connection.result
            self.connections[connection.pair] = connection
        for key, running_meta in meta["running"].items():
            connection = run_from_state(
                energy, schedule, _substate(tensors, f"running.{key}.", running_meta), on_event=on_event
            )
            self.running[connection.pair] = connection
        for key, done_meta in meta.get("done", {}).items():
            connection = run_from_state(energy, schedule, _substate(tensors, f"done.{key}.", done_meta))
            self.done[connection.pair] = connection
        return self


def _substate(tensors: dict[str, Tensor], prefix: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"tensors": {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}, "meta": meta}
