"""Every pair in flight, each with its own progress and ETA: `sessions show --json`
lists them in `running` and keeps `current` for the first."""

from __future__ import annotations

import json

import pytest

from cli_runs import in_process
from engine.paths.schedule import Cycle, Schedule
from sessions.disk.folder import SessionFolder
from sessions.view import summary


def _cycle(steps: int) -> dict:
    return {"pair": None, "restart": 0, "cycles": 2, "steps": steps, "lr": 0.001, "optimiser": "SGD",
            "batch_size": None, "insert": True, "climb": False, "pivots": 3}


def _events() -> list[dict]:
    """Two pairs in flight on two workers; (0, 2) steps twice as fast as (0, 1)."""
    events = [{"kind": "runner_started", "pid": 11, "devices": ["cpu", "cpu"], "resumed": False, "pairs_done": 0}]
    for pair in ([0, 1], [0, 2]):
        events.append({"kind": "pair_chosen", "pair": pair, "reason": "initial", "attacked_edge": None})
        events.append({**_cycle(100), "kind": "cycle_started", "pair": pair, "cycle": 1, "time": 1000.0})
    for second in range(1, 11):
        events.append({"kind": "step_energies", "pair": [0, 1], "restart": 0, "cycle": 1, "step": 5 * second,
                       "losses": [0.0, 1.0, 0.0], "time": 1000.0 + second})
        events.append({"kind": "step_energies", "pair": [0, 2], "restart": 0, "cycle": 1, "step": 10 * second,
                       "losses": [0.0, 1.0, 0.0], "time": 1000.0 + second})
    return events


@pytest.fixture
def two_in_flight(nebtui_home):
    schedule = Schedule([Cycle(steps=100, lr=0.001), Cycle(steps=100, lr=0.001, insert=False)]).to_dict()
    nebtui_home.mkdir(parents=True)
    folder = SessionFolder.create(nebtui_home, "two",
                                  {"problem": {"kind": "surface", "surface": "himmelblau"}, "schedule": schedule})
    lines = [json.dumps({"seq": seq, "time": e.pop("time", 1000.0), **e}) for seq, e in enumerate(_events())]
    folder.events_path.write_text("\n".join(lines) + "\n")
    return folder


def test_every_pair_in_flight_has_its_progress_and_its_own_eta(two_in_flight):
    row = summary(two_in_flight)
    running = {tuple(r["pair"]): r for r in row["running"]}
    assert set(running) == {(0, 1), (0, 2)}
    # (0, 1): 50 of 200 steps in 9 s of measured steps -> 150 steps at 45/9 per s; (0, 2): 100 left at 90/9
    assert running[(0, 1)]["eta_seconds"] == pytest.approx(150 / (45 / 9))
    assert running[(0, 2)]["eta_seconds"] == pytest.approx(100 / (90 / 9))
    assert running[(0, 1)]["step"] == 50 and running[(0, 2)]["step"] == 100
    assert row["current"] == row["running"][0]


def test_sessions_show_prints_each_pair_in_flight(two_in_flight, nebtui_home):
    done = in_process("sessions", "show", "two", home=nebtui_home)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("running")]
    assert lines == ["running    pair (0, 1): cycle 1/2, step 50/100, 3 pivots, ETA 0:30",
                     "running    pair (0, 2): cycle 1/2, step 100/100, 3 pivots, ETA 0:10"]
    shown = json.loads(in_process("sessions", "show", "two", "--json", home=nebtui_home).stdout)
    assert [r["pair"] for r in shown["running"]] == [[0, 1], [0, 2]] and shown["current"]["pair"] == [0, 1]
