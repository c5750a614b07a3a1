"""What a session will cost, said before it runs: the runner's estimate in the log before
the first pair, `sessions show`, the ETA on headless lines, and `--estimate`, which
times the problem and exits without a session."""

from __future__ import annotations

import json

from cli_runs import digits_args, in_process
from engine.paths.registry import curve_schedule
from engine.events import CycleStarted
from engine.paths.schedule import load_schedule
from sessions.disk.eventlog import read_log
from sessions.events import SessionEstimated


def test_the_runner_estimates_before_its_first_pair(digits_session, digits_schedule):
    events = [entry.event for entry in read_log(digits_session / "events.jsonl")]
    kinds = [type(event) for event in events]
    assert SessionEstimated in kinds and kinds.index(SessionEstimated) < kinds.index(CycleStarted)
    estimate = next(event for event in events if isinstance(event, SessionEstimated))
    assert (estimate.device, estimate.workers, estimate.done, estimate.pairs) == ("cpu", 1, 0, [3, 3])
    assert estimate.cycle_steps == [cycle.steps for cycle in load_schedule(str(digits_schedule)).cycles]
    assert 0 < estimate.pair_seconds[0] <= estimate.pair_seconds[1]
    shown = in_process("sessions", "show", "dg", home=digits_session.parent)
    assert shown.returncode == 0
    assert "estimate   at the runner's start, 0 pairs done: 3 pairs left" in shown.stdout


def test_headless_lines_carry_the_session_eta(mb_session):
    replayed = in_process("sessions", "attach", "mb", "--headless", home=mb_session.parent)
    assert replayed.returncode == 0, replayed.stderr
    lines = replayed.stdout.splitlines()
    assert any(line.startswith("estimate: 3 pairs left") for line in lines), replayed.stdout
    ends = [line for line in lines if line.startswith("pair (") and ": saddle" in line]
    assert len(ends) == 3 and all(" · session ETA " in line for line in ends), ends


def test_estimate_prints_the_cost_and_runs_nothing(digits_minima, digits_schedule, nebtui_home):
    done = in_process(*digits_args(digits_minima, digits_schedule), "--estimate", home=nebtui_home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("estimate: 3 pairs left, "), done.stdout
    assert not nebtui_home.exists() or not any(nebtui_home.iterdir())  # no session made


def test_estimate_follows_the_stop_rule_and_the_method(digits_minima, digits_schedule, nebtui_home):
    done = in_process(*digits_args(digits_minima, digits_schedule), "--estimate", "--json",
                      "--stop", "tolerance=0.1", "--method", "bezier", home=nebtui_home)
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)
    assert estimate["pairs"] == [2, 3]  # the first spanning tree, at most every pair
    curve = curve_schedule("bezier", load_schedule(str(digits_schedule)))
    assert sum(estimate["cycle_steps"]) == curve.steps and estimate["step_points"] == curve.points
    assert estimate["pair_seconds"][0] == estimate["pair_seconds"][1]  # a curve's size is known
