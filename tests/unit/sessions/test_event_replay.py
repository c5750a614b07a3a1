"""Replaying an event log into typed events and the SessionView: logs written by
earlier versions read the same, and kinds this version does not know are kept
and skipped."""

from __future__ import annotations

import re

from engine.events import CycleStarted, PairChosen, StepEnergies, UnknownEvent, event_from_dict
from nebtui.progress import describe
from sessions.disk.eventlog import EventLogWriter, LoggedEvent, read_log
from sessions.disk.folder import SessionFolder
from sessions.events import RunnerStarted
from sessions.view import SessionView, read_view, summary

# A Mueller-Brown session as an earlier nebtui wrote it, byte for byte: two star pairs
# done, the replacing pair (1, 2) in its second cycle when the session was paused, a
# worker death on the way, and one line of a kind from a newer version.
OLD_LOG = """\
{"seq":0,"time":1000.0,"kind":"runner_started","pid":11,"devices":["cpu"],"resumed":false,"pairs_done":0}
{"seq":1,"time":1000.5,"kind":"worker_started","worker":0,"device":"cpu","pid":12}
{"seq":2,"time":1001.0,"kind":"pair_chosen","pair":[0,1],"reason":"initial","attacked_edge":null}
{"seq":3,"time":1001.0,"kind":"pair_chosen","pair":[0,2],"reason":"initial","attacked_edge":null}
{"seq":4,"time":1001.5,"kind":"cycle_started","pair":[0,1],"restart":0,"cycle":1,"cycles":2,"steps":10,"lr":0.001,"optimiser":"SGD","batch_size":null,"insert":true,"climb":false,"pivots":3}
{"seq":5,"time":1002.0,"kind":"step_energies","pair":[0,1],"restart":0,"cycle":1,"step":10,"losses":[-146.7,-40.0,-108.2]}
{"seq":6,"time":1002.5,"kind":"cycle_finished","pair":[0,1],"restart":0,"cycle":1,"positions":[0.0,0.5,1.0],"losses":[-146.7,-40.0,-108.2],"pivot_positions":[0.0,0.5,1.0],"pivot_losses":[-146.7,-40.0,-108.2],"saddle_energy":-40.0,"saddle_position":0.5}
{"seq":7,"time":1003.0,"kind":"connection_finished","pair":[0,1],"saddle_energy":-40.6,"saddle_position":0.5,"linear_saddle_energy":3.3,"pivots":3,"cycles":2,"restarts":1}
{"seq":8,"time":1003.0,"kind":"mst_edge_added","a":0,"b":1,"saddle_energy":-40.6}
{"seq":9,"time":1003.5,"kind":"worker_died","worker":0,"pid":12,"reason":"killed by signal 9","pair":[0,2],"restart_in":1.0}
{"seq":10,"time":1004.0,"kind":"worker_started","worker":0,"device":"cpu","pid":13}
{"seq":11,"time":1004.5,"kind":"cycle_started","pair":[0,2],"restart":0,"cycle":1,"cycles":2,"steps":10,"lr":0.001,"optimiser":"SGD","batch_size":null,"insert":true,"climb":false,"pivots":3}
{"seq":12,"time":1005.0,"kind":"connection_finished","pair":[0,2],"saddle_energy":-72.3,"saddle_position":0.4,"linear_saddle_energy":-72.2,"pivots":3,"cycles":2,"restarts":1}
{"seq":13,"time":1005.0,"kind":"mst_edge_added","a":0,"b":2,"saddle_energy":-72.3}
{"seq":14,"time":1005.5,"kind":"pair_chosen","pair":[1,2],"reason":"replace","attacked_edge":[0,1]}
{"seq":15,"time":1006.0,"kind":"cycle_started","pair":[1,2],"restart":0,"cycle":1,"cycles":2,"steps":10,"lr":0.001,"optimiser":"SGD","batch_size":null,"insert":true,"climb":false,"pivots":3}
{"seq":16,"time":1006.5,"kind":"pivots_inserted","pair":[1,2],"restart":0,"cycle":2,"positions":[0.25,0.75],"pivots":5}
{"seq":17,"time":1007.0,"kind":"cycle_started","pair":[1,2],"restart":0,"cycle":2,"cycles":2,"steps":10,"lr":0.001,"optimiser":"SGD","batch_size":null,"insert":true,"climb":false,"pivots":5}
{"seq":18,"time":1007.5,"kind":"pivots_frozen","pair":[1,2],"count":2}
{"seq":19,"time":1008.0,"kind":"step_energies","pair":[1,2],"restart":0,"cycle":2,"step":4,"losses":[-108.2,-90.0,-72.0,-75.0,-80.8]}
{"seq":20,"time":1008.5,"kind":"control_received","command":"pause","accepted":true,"detail":"pausing at the next step boundary"}
{"seq":21,"time":1009.0,"kind":"checkpoint_written","reason":"pause","seconds":0.01,"size":4096,"running":[[1,2]]}
{"seq":22,"time":1009.0,"kind":"session_paused","running":[[1,2]]}
"""


def _folder(tmp_path) -> SessionFolder:
    folder = SessionFolder.create(tmp_path, "old", {"problem": {"kind": "surface", "surface": "muller-brown"}})
    folder.events_path.write_text(OLD_LOG)
    return folder


def test_a_log_written_before_replays_into_the_same_summary(tmp_path):
    folder = _folder(tmp_path)
    facts = summary(folder)
    assert {k: v for k, v in facts.items() if k != "created"} == {
        "id": "old", "status": "crashed", "pid": None, "problem": "muller-brown", "method": "autoneb", "schedule": None,
        "loss": None, "error_rate": None,  # a surface: neither
        "align": False, "alignment": None,
        "minima": 3, "pairs_done": 2, "pairs_total": 3,
        "current": {"pair": [1, 2], "restart": 0, "cycle": 2, "cycles": 2, "step": 4, "steps": 10, "pivots": 5,
                    "eta_seconds": None},
        "running": [{"pair": [1, 2], "restart": 0, "cycle": 2, "cycles": 2, "step": 4, "steps": 10, "pivots": 5,
                     "eta_seconds": None}],
        "cycle": 2, "step": 4, "devices": ["cpu"],
        "workers": [{"worker": 0, "device": "cpu", "node": "", "pid": 13}],  # a log without nodes: ""
        "paths": [{"a": 0, "b": 1, "saddle_energy": -40.6, "saddle_position": 0.5, "linear_saddle_energy": 3.3,
                   "saddle_at_end": None},
                  {"a": 0, "b": 2, "saddle_energy": -72.3, "saddle_position": 0.4, "linear_saddle_energy": -72.2,
                   "saddle_at_end": None}],
        "mst": [{"a": 0, "b": 1, "saddle_energy": -40.6}, {"a": 0, "b": 2, "saddle_energy": -72.3}],
        "error": None, "stopped_because": None, "damaged": None, "events": 23, "worker_deaths": 1,
        "estimate": None, "eta_seconds": None,
    }
    view = read_view(folder)
    assert view.lifecycle == "paused" and view.attacked == {(1, 2): (0, 1)}
    assert view.started == 1000.0 and view.last_time == 1009.0
    assert view.pair_times() == {(0, 1): (1001.5, 1003.0), (0, 2): (1004.5, 1005.0)}
    assert view.devices_used == ["cpu"]


def test_unknown_kinds_are_kept_as_written_and_change_nothing(tmp_path):
    folder = _folder(tmp_path)
    entries = read_log(folder.events_path)
    unknown = [e for e in entries if isinstance(e.event, UnknownEvent)]
    assert [(e.seq, e.time, e.event.kind) for e in unknown] == [(18, 1007.5, "pivots_frozen")]
    assert unknown[0].event.to_dict() == {"kind": "pivots_frozen", "pair": [1, 2], "count": 2}
    assert describe(unknown[0].event) is None

    with_it, without = SessionView(), SessionView()
    for entry in entries:
        with_it.apply(entry)
        if entry not in unknown:
            without.apply(entry)
    assert with_it.events == without.events + 1
    with_it.events = without.events
    assert with_it == without


def test_a_known_kind_that_lacks_a_field_is_kept_as_unknown():
    lacking = {"kind": "step_energies", "pair": [0, 1], "step": 3}  # no restart, cycle, losses
    assert event_from_dict(lacking) == UnknownEvent(lacking)
    assert event_from_dict({"kind": "pair_chosen", "pair": 7, "reason": "initial"}).kind == "pair_chosen"
    assert isinstance(event_from_dict({"kind": "pair_chosen", "pair": 7, "reason": "initial"}), UnknownEvent)
    # a field added by a newer version is dropped, the event still reads
    newer = {"kind": "pair_chosen", "pair": [0, 1], "reason": "initial", "attacked_edge": None, "score": 1.5}
    assert event_from_dict(newer) == PairChosen(pair=(0, 1), reason="initial")


def test_the_writer_writes_the_lines_it_always_wrote(tmp_path):
    log = tmp_path / "events.jsonl"
    events = [
        RunnerStarted(pid=11, devices=["cpu"], resumed=False),
        PairChosen(pair=(0, 1), reason="initial"),
        CycleStarted(pair=(0, 1), restart=0, cycle=1, cycles=2, steps=10, lr=0.001, optimiser="SGD",
                     batch_size=None, insert=True, climb=False, pivots=3),
        StepEnergies(pair=(0, 1), restart=0, cycle=1, step=10, losses=[-146.7, -40.0, -108.2]),
    ]
    with EventLogWriter(log) as writer:
        for event in events:
            writer.append(event)
    old = OLD_LOG.splitlines()

    def fields(line: str) -> str:  # the line after the log's own seq and time
        return re.sub(r'^\{"seq":\d+,"time":[0-9.e+-]+,', "", line)

    assert [fields(line) for line in log.read_text().splitlines()] == [fields(old[i]) for i in (0, 2, 4, 5)]
    assert [e.event for e in read_log(log)] == events
    assert all(isinstance(e, LoggedEvent) for e in read_log(log))


def test_a_runner_that_beat_and_died_before_its_first_event_left_a_crashed_session(tmp_path):
    folder = SessionFolder.create(tmp_path, "early", {"problem": {"kind": "surface", "surface": "muller-brown"}})
    assert summary(folder)["status"] == "created"  # no runner has run
    folder.beat()  # a runner took the lock and beat, then died (no lock held now, no event written)
    assert summary(folder)["status"] == "crashed"
