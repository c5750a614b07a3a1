"""A path whose highest point is one of its minima has no barrier: `sessions show`,
the progress lines and the report say so in words, and Table 1 claims no saddle
for it. First on a log written here, then on minima trained too briefly, whose
paths fall below their ends."""

from __future__ import annotations

import json

from cli_runs import DIGITS_TRAIN_ARGS, in_process
from engine.events import ConnectionFinished, CycleFinished, MSTEdgeAdded
from sessions.disk.eventlog import EventLogWriter
from sessions.disk.folder import SessionFolder
from sessions.events import RunnerStarted, SessionFinished

MEANING = ("the path's highest point is minimum 0 itself, so the path falls below it: the minima are not minima "
           "of this loss (train them longer), or the path found a lower basin; no barrier is claimed for this pair")


def _logged_session(home) -> None:
    """Pair (0, 1) peaks at minimum 0 (position 0.0), pair (0, 2) between its minima."""
    home.mkdir(parents=True, exist_ok=True)
    folder = SessionFolder.create(home, "ends", {"problem": {"kind": "surface", "surface": "muller-brown"}})
    with EventLogWriter(folder.events_path) as log:
        log.append(RunnerStarted(pid=1, devices=["cpu"], resumed=False))
        log.append(ConnectionFinished(pair=(0, 1), saddle_energy=0.0066, saddle_position=0.0,
                                      linear_saddle_energy=0.3, pivots=5, cycles=1, restarts=1))
        log.append(MSTEdgeAdded(a=0, b=1, saddle_energy=0.0066))
        log.append(ConnectionFinished(pair=(0, 2), saddle_energy=0.5, saddle_position=0.4,
                                      linear_saddle_energy=0.9, pivots=5, cycles=1, restarts=1))
        log.append(SessionFinished(reason="max_pairs", pairs_done=2, mst=[[0, 1, 0.0066], [0, 2, 0.5]]))


def test_show_and_attach_say_which_saddle_is_an_end_and_what_it_means(nebtui_home):
    _logged_session(nebtui_home)
    shown = in_process("sessions", "show", "ends")
    assert shown.returncode == 0, shown.stderr
    assert "path       0 - 1: saddle 0.0066 (linear 0.3000), at an end (minimum 0)" in shown.stdout
    assert "path       0 - 2: saddle 0.5000 (linear 0.9000)\n" in shown.stdout
    assert f"note       pair 0 - 1: {MEANING}" in shown.stdout
    paths = json.loads(in_process("sessions", "show", "ends", "--json").stdout)["paths"]
    assert [(p["saddle_at_end"], p.get("note")) for p in paths] == [(0, MEANING), (None, None)]
    replayed = in_process("sessions", "attach", "ends", "--headless")
    assert f"pair (0, 1): saddle 0.0066 (linear segment 0.3000), 5 pivots; saddle at an end: {MEANING}" \
        in replayed.stdout
    assert "pair (0, 2): saddle 0.5000 (linear segment 0.9000), 5 pivots\n" in replayed.stdout


def test_paths_of_briefly_trained_minima_fall_below_their_ends_and_the_report_says_so(
        nebtui_home, tmp_path, digits_schedule):
    """Minima trained for a few steps are no minima: AutoNEB's paths run below them."""
    train = list(DIGITS_TRAIN_ARGS)
    train[train.index("--scale") + 1] = "0.01"
    trained = in_process(*train, "--out", str(tmp_path / "minima"))
    assert trained.returncode == 0, trained.stderr
    done = in_process("explore", str(tmp_path / "minima"), "--schedule", str(digits_schedule), "--strategy", "loop",
                      "--device", "cpu", "--scale", "0.3", "--headless", "--session", "brief")
    assert done.returncode == 0, done.stderr
    assert "saddle at an end: the path's highest point is minimum" in done.stdout
    assert "none claimed for" in done.stdout
    report = in_process("report", "brief", "--format", "json,md", "--hessian-k", "0", "--slices", "0",
                        "--ensemble-k", "0", "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    ends = [[p["a"], p["b"]] for p in document["paths"] if p["in_mst"] and p["saddle"]["at_end"] is not None]
    assert ends and document["table1"]["saddles_at_an_end"] == ends
    assert document["table1"]["saddles"] == len(document["mst"]) - len(ends)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Table 1 leaves it out of the saddles." in text and "(at an end: minimum " in text
