"""A session's numbers do not depend on its worker count: the pivot strategy and each
worker's thread count are chosen once per session and stored, so with the same
--threads and strategy, one worker and two give the same paths bit for bit (digits
MLP minima, a schedule of a few dozen steps)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from cli_runs import logged_events, nebtui, sgd_schedule, wait_until

pytestmark = pytest.mark.timeout(300)

# Two inserting cycles and one without: each pair runs 30 steps on a band of at most 8 pivots.
SCHEDULE = sgd_schedule("few", 8, (2, 10), (1, 10))


def _explore(home: Path, minima: Path, schedule: Path, name: str, *options: str) -> Path:
    done = nebtui(home, "explore", str(minima), "--schedule", str(schedule), "--device", "cpu", "--threads", "1",
                  "--session", name, *options)
    assert done.returncode == 0, done.stderr
    return home / name


def _finished(home: Path, minima: Path, schedule: Path, name: str, *options: str) -> Path:
    return _explore(home, minima, schedule, name, "--headless", *options)


def _events(folder: Path) -> list[dict]:
    return logged_events(folder / "events.jsonl")


def _chosen(folder: Path) -> list[dict]:
    return [e for e in _events(folder) if e["kind"] == "strategy_chosen"]


def _assert_same_numbers(mine: Path, theirs: Path) -> None:
    """The same pairs, saddles and MST, and every path file's tensors equal bit for bit."""
    results = [json.loads((f / "results" / "result.json").read_text()) for f in (mine, theirs)]
    assert results[0]["mst"] == results[1]["mst"]
    assert [(p["a"], p["b"], p["saddle_energy"]) for p in results[0]["paths"]] == [
        (p["a"], p["b"], p["saddle_energy"]) for p in results[1]["paths"]]
    names = sorted(p.name for p in (theirs / "results" / "paths").glob("*.safetensors"))
    assert names and names == sorted(p.name for p in (mine / "results" / "paths").glob("*.safetensors"))
    for name in names:
        ours, reference = load_file(str(mine / "results" / "paths" / name)), load_file(
            str(theirs / "results" / "paths" / name))
        assert ours.keys() == reference.keys()
        unequal = [k for k in ours if not torch_equal(ours[k], reference[k])]
        assert not unequal, f"{name}: {unequal} differ"


def torch_equal(a, b) -> bool:  # noqa: ANN001 - two tensors
    return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())


def _energy_meta(path: Path) -> dict:
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["meta"])["energy"]


@pytest.fixture(scope="module")
def schedule(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("schedule") / "few.toml"
    path.write_text(SCHEDULE)
    return path


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, digits_minima, schedule) -> Path:
    """The reference: one worker, one thread, the batched strategy given."""
    return _finished(tmp_path_factory.mktemp("home"), digits_minima, schedule, "one", "--strategy", "batched",
                     "--workers", "1")


def test_one_worker_and_two_give_the_same_paths_bit_for_bit(nebtui_home, digits_minima, schedule, one_worker):
    two = _finished(nebtui_home, digits_minima, schedule, "two", "--strategy", "batched", "--workers", "2")
    assert {e["worker"] for e in _events(two) if e["kind"] == "worker_started"} == {0, 1}
    _assert_same_numbers(two, one_worker)
    for folder in (one_worker, two):  # as given, stored once
        assert [(c["strategy"], c["threads"], c["timed"]) for c in _chosen(folder)] == [("batched", 1, False)]


def test_auto_chooses_once_every_pair_takes_the_choice_and_a_resumed_runner_does_not_time_again(
        nebtui_home, digits_minima, schedule, one_worker, tmp_path):
    """Two workers under --strategy auto, the runner killed once it has chosen: the resumed
    runner reads the choice back (one choice in the log), every pair ran with it, and the
    paths are those of one worker given that strategy."""
    _explore(nebtui_home, digits_minima, schedule, "auto", "--strategy", "auto", "--workers", "2", "--detach")
    folder = nebtui_home / "auto"
    wait_until(lambda: _chosen(folder), 120, "the strategy chosen")
    from sessions.disk.lock import holder

    pid = holder(folder / "lock")
    assert pid is not None, "the session ended before it could be killed"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: holder(folder / "lock") is None, 15, "the killed runner's lock to be freed")
    resumed = nebtui(nebtui_home, "sessions", "resume", "auto")
    assert resumed.returncode == 0, resumed.stderr

    events = _events(folder)
    assert events[-1]["kind"] == "session_finished"
    assert sum(e["kind"] == "startup_phase_started" and e["phase"] == "runner" for e in events) == 2
    [chosen] = _chosen(folder)  # chosen by the first runner only
    assert chosen["timed"] and chosen["threads"] == 1 and chosen["device"] == "cpu"
    paths = sorted((folder / "results" / "paths").glob("*.safetensors"))
    assert len(paths) == 3
    for path in paths:
        energy = _energy_meta(path)
        assert (energy["strategy"], energy["threads"]) == (chosen["strategy"], chosen["threads"]), path.name
    shown = nebtui(nebtui_home, "sessions", "show", "auto")
    assert f"pivots     {chosen['strategy']} at 1 thread per worker on cpu (timed once for the session)" in shown.stdout

    reference = one_worker if chosen["strategy"] == "batched" else _finished(
        tmp_path / "home", digits_minima, schedule, "given", "--strategy", chosen["strategy"], "--workers", "1")
    _assert_same_numbers(folder, reference)


def test_threads_below_one_is_one_clear_line(nebtui_home, digits_minima, schedule):
    from cli_runs import assert_one_clear_line

    done = nebtui(nebtui_home, "explore", str(digits_minima), "--schedule", str(schedule), "--threads", "0")
    assert_one_clear_line(done, "--threads 0: give a whole number >= 1")
