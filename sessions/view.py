"""What a session is doing, from facts: the event log replayed into a summary,
and the status from the lock and the heartbeat (never from what a dead process
last wrote). Imports no torch: the CLI's `sessions list` stays fast."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sessions.folder import SessionFolder
from sessions.lock import holder

STALE_HEARTBEAT = 10.0  # seconds without a heartbeat before a live runner counts as unresponsive
STATUSES = ("created", "running", "paused", "unresponsive", "stopped", "crashed", "failed", "finished")


PAIR_EVENTS = ("cycle_started", "step_energies", "pivots_inserted", "cycle_finished")


@dataclass
class PairProgress:
    """Where one pair's connection stands, from its events (PAIR_EVENTS)."""

    restart: int = 0
    cycle: int = 0
    cycles: int = 0
    step: int = 0
    steps: int = 0
    pivots: int = 0
    saddle_energy: float | None = None  # of the last finished cycle

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "cycle_started":
            self.restart, self.cycle, self.cycles = event["restart"], event["cycle"], event["cycles"]
            self.step, self.steps, self.pivots = 0, event["steps"], event["pivots"]
        elif kind == "step_energies":
            self.step = event["step"]
        elif kind == "pivots_inserted":
            self.pivots = event["pivots"]
        elif kind == "cycle_finished":
            self.saddle_energy = event["saddle_energy"]


@dataclass
class SessionView:
    """A reducer over event dicts: ``apply`` each event in log order."""

    events: int = 0
    lifecycle: str = "created"  # the last lifecycle event: running | paused | stopped | failed | finished
    error: str | None = None
    devices: list[str] = field(default_factory=list)
    started: float | None = None  # time of the first event
    last_time: float | None = None
    pairs: dict[tuple[int, int], PairProgress] = field(default_factory=dict)  # in flight
    saddles: dict[tuple[int, int], float] = field(default_factory=dict)  # finished pairs
    linear: dict[tuple[int, int], float] = field(default_factory=dict)
    mst: dict[tuple[int, int], float] = field(default_factory=dict)
    finished_reason: str | None = None
    worker_deaths: int = 0

    def apply(self, event: dict[str, Any]) -> None:
        self.events += 1
        kind = event.get("kind")
        stamp = event.get("time")
        if isinstance(stamp, (int, float)):
            self.started = stamp if self.started is None else self.started
            self.last_time = stamp
        pair = tuple(event["pair"]) if isinstance(event.get("pair"), list) else None
        if kind == "runner_started":
            self.lifecycle, self.error, self.devices = "running", None, list(event.get("devices", []))
        elif kind == "session_paused":
            self.lifecycle = "paused"
        elif kind == "session_resumed":
            self.lifecycle = "running"
        elif kind == "session_stopped":
            self.lifecycle = "stopped"
        elif kind == "session_failed":
            self.lifecycle, self.error = "failed", event.get("message")
        elif kind == "session_finished":
            self.lifecycle, self.finished_reason = "finished", event.get("reason")
            self.mst = {(int(a), int(b)): float(s) for a, b, s in event.get("mst", [])}
        elif kind == "worker_died":
            self.worker_deaths += 1
        elif kind in PAIR_EVENTS and pair is not None:
            self.pairs.setdefault(pair, PairProgress()).apply(event)
        elif kind == "connection_finished" and pair is not None:
            self.pairs.pop(pair, None)
            self.saddles[pair] = event["saddle_energy"]
            self.linear[pair] = event["linear_saddle_energy"]
        elif kind == "mst_edge_added":
            self.mst[(event["a"], event["b"])] = event["saddle_energy"]
        elif kind == "mst_edge_replaced":
            self.mst.pop(tuple(event["removed"]), None)  # type: ignore[arg-type]
            added = event["added"]
            self.mst[(added[0], added[1])] = event["added_energy"]


def read_view(folder: SessionFolder) -> SessionView:
    from sessions.eventlog import read_log

    view = SessionView()
    for event in read_log(folder.events_path):
        view.apply(event)
    return view


def status(folder: SessionFolder, view: SessionView) -> tuple[str, int | None]:
    """(status, runner pid): from the lock, the heartbeat and the log's final events."""
    pid = holder(folder.lock_path)
    if pid is not None:
        age = folder.heartbeat_age()
        if age is None or age > STALE_HEARTBEAT:
            return "unresponsive", pid
        return ("paused" if view.lifecycle == "paused" else "running"), pid
    if view.lifecycle in ("finished", "stopped", "failed"):
        return view.lifecycle, None
    if view.lifecycle == "created" and view.events == 0:
        return "created", None
    return "crashed", None


def summary(folder: SessionFolder, view: SessionView | None = None) -> dict[str, Any]:
    """The facts `sessions list` and `sessions show` print (JSON-able)."""
    view = view if view is not None else read_view(folder)
    state, pid = status(folder, view)
    config = folder.config()
    problem = config.get("problem", {})
    minima = len(problem.get("minima", [])) if problem.get("kind") == "network" else {
        "muller-brown": 3, "himmelblau": 4}.get(problem.get("surface"), 0)
    variant = config.get("landscape", {}).get("variant", "mst")
    total = minima - 1 if variant == "star" else minima * (minima - 1) // 2
    current = sorted(view.pairs.items())
    return {
        "id": folder.id,
        "status": state,
        "pid": pid,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(folder.created)),
        "problem": problem.get("surface") or problem.get("model"),
        "minima": minima,
        "pairs_done": len(view.saddles),
        "pairs_total": total,
        "current": [
            {"pair": list(p), "restart": g.restart, "cycle": g.cycle, "cycles": g.cycles, "step": g.step,
             "steps": g.steps, "pivots": g.pivots}
            for p, g in current
        ],
        "cycle": current[0][1].cycle if current else None,
        "step": current[0][1].step if current else None,
        "devices": view.devices,
        "paths": [{"a": a, "b": b, "saddle_energy": s, "linear_saddle_energy": view.linear.get((a, b))}
                  for (a, b), s in sorted(view.saddles.items())],
        "mst": [{"a": a, "b": b, "saddle_energy": s} for (a, b), s in sorted(view.mst.items())],
        "error": view.error,
        "events": view.events,
        "worker_deaths": view.worker_deaths,
    }
