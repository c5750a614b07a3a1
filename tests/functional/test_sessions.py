"""Sessions as a user runs them: real runner and worker processes, killed, hung up on,
paused, watched twice, and fed bad input. Every wait polls against a deadline.

A resumed session must equal an uninterrupted run of the same config bit for bit:
results/result.json and every tensor of results/paths/*.safetensors.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from cli_runs import MB_ARGS, alive, assert_one_clear_line, digits_args, in_process, logged_events, nebtui, wait_until
from cli_runs import NEBTUI as NEBTUI_SCRIPT

from sessions.disk.lock import holder


# --- helpers ---------------------------------------------------------------------------------------


def spawn(home: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([NEBTUI_SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NEBTUI_HOME": str(home)}, **popen)


def events(home: Path, session: str) -> list[dict[str, Any]]:
    return logged_events(home / session / "events.jsonl")


def runner_pid(home: Path, session: str) -> int | None:
    return holder(home / session / "lock")


def show(home: Path, session: str) -> dict[str, Any]:
    done = in_process("sessions", "show", session, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def worker_pids(log: list[dict[str, Any]]) -> list[int]:
    return [e["pid"] for e in log if e["kind"] == "worker_started"]


def wait_ended(home: Path, session: str, timeout: float) -> list[dict[str, Any]]:
    """The log once the session's runner has let go of it."""
    wait_until(lambda: runner_pid(home, session) is None, timeout, f"end of session {session}'s runner")
    return events(home, session)


def start_mb(home: Path, session: str, scale: str | None = None) -> int:
    """A detached Mueller-Brown runner: the shared session's command (cli_runs.MB_ARGS), or
    another ``scale``. Returns its pid."""
    args = MB_ARGS if scale is None else (*MB_ARGS[:MB_ARGS.index("--scale") + 1], scale,
                                          *MB_ARGS[MB_ARGS.index("--scale") + 2:])
    done = nebtui(home, *args, "--detach", "--session", session)
    assert done.returncode == 0, done.stderr
    pid = runner_pid(home, session)
    assert pid is not None
    return pid


def start_network(home: Path, minima: Path, schedule: Path, session: str) -> None:
    """A detached runner of the shared digits session's command (cli_runs.digits_args)."""
    done = nebtui(home, *digits_args(minima, schedule), "--session", session, "--detach", "--headless")
    assert done.returncode == 0, done.stderr


def results(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result.json, {path file: (tensors, metadata)})."""
    from safetensors import safe_open

    paths = {}
    for file in sorted((folder / "results" / "paths").glob("*.safetensors")):
        with safe_open(str(file), "pt") as opened:
            paths[file.name] = ({k: opened.get_tensor(k) for k in opened.keys()}, opened.metadata())
    return json.loads((folder / "results" / "result.json").read_text()), paths


def assert_same_results(folder: Path, reference: Path) -> None:
    import torch

    result, paths = results(folder)
    expected_result, expected_paths = results(reference)
    assert result == expected_result  # floats from JSON: equal means bit for bit
    assert paths.keys() == expected_paths.keys() and paths
    for name, (tensors, meta) in paths.items():
        expected_tensors, expected_meta = expected_paths[name]
        assert meta == expected_meta, name
        assert tensors.keys() == expected_tensors.keys(), name
        for key, tensor in tensors.items():
            expected = expected_tensors[key]
            assert tensor.dtype == expected.dtype and torch.equal(tensor, expected), f"{name}: {key} differs"


Log = list[dict[str, Any]]


def at_start_up(new: Log) -> bool:
    """As soon as the runner holds the lock and beats: its worker still starting, no checkpoint."""
    return True


def mid_pair_after_a_pair(new: Log) -> bool:
    """This runner has finished a pair, and the next pair has stepped since a checkpoint written
    mid-way through it: the next runner continues from that pair's state and the saved path."""
    kinds = [e["kind"] for e in new]
    if "connection_finished" not in kinds:
        return False
    after_pair = len(kinds) - kinds[::-1].index("connection_finished")
    mid_pair = [i for i in range(after_pair, len(new))
                if kinds[i] == "checkpoint_written" and new[i]["reason"] in ("interval", "cycle")]
    return bool(mid_pair) and "step_energies" in kinds[mid_pair[-1]:]


def kill_and_resume(home: Path, session: str, kill_points: list[Callable[[Log], bool]],
                    between: Callable[[int], None] = lambda kill: None) -> list[float]:
    """Kill -9 the runner once at each kill point in turn, when ``point(new)`` (``new``: the
    events since the previous runner was killed) says so, and resume it detached: the last point
    must come after a checkpoint, so that the last runner continues from one. Returns the resume
    times. The killed runners' workers must exit by themselves; the next runner does not wait for them."""
    resume_seconds = []
    orphans: list[int] = []
    for kill, point in enumerate(kill_points):
        pid = wait_until(lambda: runner_pid(home, session), 30, "runner holding the lock")
        seen = len(events(home, session))

        def ready() -> bool:
            log = events(home, session)
            return runner_pid(home, session) is None or (
                (home / session / "heartbeat").exists() and point(log[seen:]))

        wait_until(ready, 60, f"kill point {point.__name__}")
        assert runner_pid(home, session) == pid, "the session ended before it could be killed: make it longer"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: runner_pid(home, session) is None, 10, "the killed runner's lock to be freed")
        # the worker it had logged (a kill may come before it logs one: then none)
        orphans += [w for w in worker_pids(events(home, session)) if w not in orphans]
        between(kill)
        started = time.monotonic()
        done = in_process("sessions", "resume", session, "--detach", home=home)
        assert done.returncode == 0, done.stderr
        assert "continues from the last checkpoint" in done.stdout
        resume_seconds.append(time.monotonic() - started)
    # its workers notice the runner is gone and exit rather than compute for nobody
    wait_until(lambda: not any(alive(w) for w in orphans), 30, "orphaned workers to exit")
    return resume_seconds


# --- 1. kill -9 the runner, resume: the same result bit for bit -----------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_runner_killed_again_and_again_resumes_to_the_same_mueller_brown_result(nebtui_home, mb_session):
    """Killed during its start-up (the CLI that started it still waiting for it to accept the
    problem), then, resumed, in the middle of a pair after another has finished; and resumed
    again to the end."""
    cli = spawn(nebtui_home, *MB_ARGS, "--detach", "--session", "killed")
    # its first line: it has seen its runner take the session, and waits for it to accept the problem
    assert select.select([cli.stdout], [], [], 60)[0], "the CLI said nothing within 60 s"
    assert cli.stdout.readline().startswith("session killed: runner pid ")

    def between(kill: int) -> None:
        if kill == 0:  # a control command to a dead runner says so and how to go on
            done = in_process("sessions", "pause", "killed")
            assert done.returncode == 1 and "Traceback" not in done.stderr
            # killed before or after it opened its control socket: either way it says so and how to go on
            assert re.fullmatch(r"nebtui: session killed: its runner is not running \((no control socket|nobody "
                                r"answers on the control socket)\); to continue it: nebtui sessions resume killed",
                                done.stderr.strip()), done.stderr
            assert show(nebtui_home, "killed")["status"] == "crashed"
        if kill == 1:  # a torn last line and a garbage line in the log: shown and resumed all the same
            with open(nebtui_home / "killed" / "events.jsonl", "ab") as log:
                log.write(b"\x00garbage {not json\n")
                log.write(b'{"seq": 99999, "time": 1, "kind": "step_ener')
            row = show(nebtui_home, "killed")
            assert row["status"] == "crashed" and row["events"] > 0

    resumes = kill_and_resume(nebtui_home, "killed", [at_start_up, mid_pair_after_a_pair], between=between)
    out, err = cli.communicate(timeout=30)
    # its runner went without a word: the CLI that started it leaves as when it is detached
    assert cli.returncode == 0 and "Traceback" not in err, err
    log = wait_ended(nebtui_home, "killed", 120)
    assert log[-1]["kind"] == "session_finished"
    # (how many runners got to log their start depends on timing: a kill may come first)
    starts = [e for e in log if e["kind"] == "runner_started"]
    assert starts[-1]["resumed"]  # the last runner continued from a checkpoint
    assert [e["seq"] for e in log] == list(range(len(log)))  # the torn line was cut, seq goes on
    assert_same_results(nebtui_home / "killed", mb_session)
    assert show(nebtui_home, "killed")["status"] == "finished"
    print(f"resume --detach took {', '.join(f'{s:.2f}' for s in resumes)} s")


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_runner_killed_mid_pair_resumes_to_the_same_network_result(nebtui_home, digits_minima, digits_schedule,
                                                                   digits_session):
    """A network's pair resumed from a checkpoint in its middle (its minibatches, momentum and
    random state), beside a saved path. (Kills at other places, and of a resumed runner: above.)"""
    start_network(nebtui_home, digits_minima, digits_schedule, "killed")
    kill_and_resume(nebtui_home, "killed", [mid_pair_after_a_pair])
    log = wait_ended(nebtui_home, "killed", 120)
    assert log[-1]["kind"] == "session_finished"
    assert [e for e in log if e["kind"] == "runner_started"][-1]["resumed"]
    assert_same_results(nebtui_home / "killed", digits_session)


# --- 2. a hang-up of the launching terminal leaves the runner running; every viewer sees every event ---

_FOLLOWER = """
import json, sys
from sessions.disk.eventlog import EventLogReader
from sessions.disk.lock import holder
folder = sys.argv[1]
with EventLogReader(folder + "/events.jsonl") as reader:
    for entry in reader.follow(stop=lambda: False, interval=0.02):
        event = {"seq": entry.seq, "time": entry.time, **entry.event.to_dict()}
        print(json.dumps(event), flush=True)
        if event["kind"] in ("session_finished", "session_failed", "session_stopped"):
            break
"""


@pytest.mark.timeout(120)
def test_a_hang_up_leaves_the_runner_running_and_viewers_see_every_event_in_order(nebtui_home):
    """One session for both: the terminal that started it hangs up (the runner goes on),
    while two ``sessions attach`` viewers and two raw log readers watch it live."""
    home = nebtui_home
    # its own session and process group, like a terminal's, and SIGHUP's default action (under
    # nohup, say, the tests' own SIGHUP would be ignored, and so would the terminal's by the CLI)
    cli = spawn(home, "demo", "muller-brown", "--device", "cpu", "--scale", "0.4", "--session", "hup",
                start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    pid = wait_until(lambda: runner_pid(home, "hup"), 60, "runner holding the lock")
    viewers = [spawn(home, "sessions", "attach", "hup") for _ in range(2)]
    readers = [subprocess.Popen([sys.executable, "-c", _FOLLOWER, str(home / "hup")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert all(e["kind"] != "session_finished" for e in events(home, "hup")), "too late to watch live"
    wait_until(lambda: any(e["kind"] == "worker_started" for e in events(home, "hup")), 60, "a worker")
    os.killpg(cli.pid, signal.SIGHUP)
    assert cli.wait(timeout=10) == -signal.SIGHUP  # the follower goes with its terminal
    assert alive(pid) and runner_pid(home, "hup") == pid

    outputs = [v.communicate(timeout=90) for v in viewers]
    followed = [r.communicate(timeout=30) for r in readers]
    log = wait_ended(home, "hup", 30)
    assert log[-1]["kind"] == "session_finished"
    assert all(e["kind"] != "worker_died" for e in log)
    assert show(home, "hup")["status"] == "finished"
    for viewer, (out, err) in zip(viewers, outputs):
        assert viewer.returncode == 0, err
    for reader, (out, err) in zip(readers, followed):
        assert reader.returncode == 0, err
        assert [json.loads(line) for line in out.splitlines()] == log  # every event, in order, once
    # what each live viewer printed is what a replay of the whole log prints
    replay = in_process("sessions", "attach", "hup", home=home)
    assert replay.returncode == 0, replay.stderr
    assert outputs[0][0] == outputs[1][0] == replay.stdout
    assert "session finished (all pairs), 3 pairs" in replay.stdout


# --- 3. pause, resume, stop, resume: the same result as a run left alone --------------------------------

STEP_KINDS = ("step_energies", "cycle_started", "cycle_finished", "pivots_inserted", "connection_finished")


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_pause_resume_stop_and_resume_round_trip(nebtui_home, mb_session):
    home = nebtui_home
    pid = start_mb(home, "ctl")  # the shared session's command: its result is the reference
    wait_until(lambda: any(e["kind"] == "step_energies" for e in events(home, "ctl")), 60, "first steps")

    done = in_process("sessions", "pause", "ctl")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "session ctl: pausing at the next step boundary"
    wait_until(lambda: show(home, "ctl")["status"] == "paused", 30, "status paused")
    paused_at = len(events(home, "ctl"))
    assert any(e["kind"] == "checkpoint_written" and e["reason"] == "pause" for e in events(home, "ctl"))
    again = in_process("sessions", "pause", "ctl")
    assert again.returncode == 1 and "already paused" in again.stderr
    watch_until = time.monotonic() + 1.5  # a window of observation: nothing may move
    while time.monotonic() < watch_until:
        assert not [e for e in events(home, "ctl")[paused_at:] if e["kind"] in STEP_KINDS]
        time.sleep(0.1)
    assert show(home, "ctl")["status"] == "paused"

    # while it lives: its name is taken, resume and rm are refused, and nothing is disturbed
    done = in_process("demo", "muller-brown", "--detach", "--session", "ctl")
    assert_one_clear_line(done, "session 'ctl' already exists: choose another --session name")
    done = in_process("sessions", "rm", "ctl")
    assert_one_clear_line(done, f"session ctl is being run by pid {pid}")
    assert runner_pid(home, "ctl") == pid

    # resume follows the paused session, as it follows a stopped one it restarts
    following = subprocess.Popen([NEBTUI_SCRIPT, "sessions", "resume", "ctl"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ, "NEBTUI_HOME": str(home)})
    try:
        assert following.stdout.readline().strip() == "session ctl: resumed"
        wait_until(lambda: [e for e in events(home, "ctl")[paused_at:] if e["kind"] == "step_energies"], 30,
                   "steps after resume")
        assert show(home, "ctl")["status"] == "running"
        done = in_process("sessions", "resume", "ctl", "--detach")
        assert_one_clear_line(done, "session ctl (running): resume refused: not paused")

        done = in_process("sessions", "stop", "ctl")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "session ctl: stopping at the next step boundary"
        followed, _ = following.communicate(timeout=60)
    finally:
        following.kill()
    assert following.returncode == 0
    assert followed.rstrip().endswith("session ctl stopped: continue it with nebtui sessions resume ctl")
    log = wait_ended(home, "ctl", 30)
    assert log[-1]["kind"] == "session_stopped"
    assert [e["reason"] for e in log if e["kind"] == "checkpoint_written"][-1] == "stop"
    assert show(home, "ctl")["status"] == "stopped"
    received = [(e["command"], e["accepted"]) for e in log if e["kind"] == "control_received"]
    assert received == [("pause", True), ("pause", False), ("resume", True), ("resume", False), ("stop", True)]

    dead = in_process("sessions", "stop", "ctl")
    assert dead.returncode == 1 and "not running" in dead.stderr and "nebtui sessions resume ctl" in dead.stderr
    done = nebtui(home, "sessions", "resume", "ctl", "--detach")
    assert done.returncode == 0, done.stderr
    log = wait_ended(home, "ctl", 90)
    assert log[-1]["kind"] == "session_finished"
    assert show(home, "ctl")["status"] == "finished"
    assert_same_results(home / "ctl", mb_session)  # paused, stopped and resumed: nothing computed differently


# --- 4. a worker killed mid-cycle ------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_worker_killed_mid_cycle_is_restarted_and_the_result_is_unchanged(nebtui_home, mb_session):
    home = nebtui_home
    runner = start_mb(home, "wk")
    wait_until(lambda: sum(e["kind"] == "step_energies" for e in events(home, "wk")) >= 40, 60, "40 step events")
    [worker] = worker_pids(events(home, "wk"))
    os.kill(worker, signal.SIGKILL)
    died = wait_until(lambda: [e for e in events(home, "wk") if e["kind"] == "worker_died"], 20, "worker_died")
    assert died[0]["pid"] == worker and died[0]["reason"] == "killed by signal 9" and died[0]["pair"] is not None
    assert died[0]["restart_in"] is not None
    log = wait_ended(home, "wk", 90)
    assert log[-1]["kind"] == "session_finished"
    assert len(worker_pids(log)) == 2 and worker not in worker_pids(log)[1:]
    assert sum(e["kind"] == "runner_started" for e in log) == 1  # the same runner throughout
    assert all(e["pid"] == runner for e in log if e["kind"] == "runner_started")
    assert show(home, "wk")["worker_deaths"] == 1
    assert_same_results(home / "wk", mb_session)


# --- 5. bad input: one clear line, a non-zero exit, nothing lost ---------------------------------------------


def _save_mlp(path: Path, seed: int = 0, **kwargs: Any) -> None:
    import torch
    from safetensors.torch import save_file

    from engine.networks.models import mlp

    torch.manual_seed(seed)
    save_file({k: v.detach().contiguous() for k, v in mlp(**kwargs).state_dict().items()}, str(path))


def _minima_case(case: str, folder: Path) -> Path:
    """A minima folder that is wrong in the way ``case`` names."""
    import argparse

    import torch

    if case == "missing":
        return folder / "nowhere"
    folder.mkdir()
    if case == "empty":
        return folder
    _save_mlp(folder / "a.safetensors")
    if case == "one file":
        return folder
    second = folder / "b.safetensors"
    if case == "mixed shapes":
        _save_mlp(second, hidden=(16,))
    elif case == "corrupt":
        second.write_bytes(b"this is not a safetensors file" * 10)
    elif case == "truncated":
        _save_mlp(second, seed=1)
        second.write_bytes(second.read_bytes()[:300])
    elif case == "nan":
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "a.safetensors"))
        state["0.weight"][0, 0] = float("nan")
        save_file(state, str(second))
    elif case == "unsafe pickle":
        torch.save({"0.weight": torch.zeros(2), "payload": argparse.Namespace(x=1)}, folder / "b.pt")
    return folder


MINIMA_CASES = {
    "missing": "does not exist",
    "empty": "holds no weight files",
    "one file": "holds only one minimum",
    "mixed shapes": "all minima must come from the same architecture",
    "corrupt": "is not a readable safetensors file",
    "truncated": "is not a readable safetensors file",
    "nan": "holds NaN or infinite weights",
    "unsafe pickle": "holds Python objects, not only weights",
}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


ORPHANING_RUNNER = """
import os, sys
from pathlib import Path
from engine.paths.schedule import load_schedule
from sessions.disk.config import Problem, SessionConfig
from sessions.processes.workers import LocalPool
config = SessionConfig(problem=Problem(kind="surface", surface="muller-brown"), schedule=load_schedule("surface"))
pool = LocalPool(["cpu", "cpu"], config, 60.0)
pool.start()
Path(sys.argv[1]).write_text(" ".join(str(slot.pid) for slot in pool.slots))
os._exit(0)  # gone before its workers ran a line of their own, as under an early kill -9
"""


@pytest.mark.timeout(120)
def test_workers_whose_runner_died_before_they_started_exit_by_themselves(tmp_path):
    """Workers left behind keep their memory (and a GPU's) for ever: each must see
    that its runner is gone, even when the runner died while they were starting."""
    written = tmp_path / "pids"
    done = subprocess.run([sys.executable, "-c", ORPHANING_RUNNER, str(written)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)  # no pipe to hold open
    assert done.returncode == 0
    pids = [int(p) for p in written.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 90
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {[p for p in pids if alive(p)]} still run 90 s after their runner died"
        time.sleep(0.2)


def _runner_refusal(folder: Path, model: str = "mlp", data: str = "digits") -> str:
    """What the runner says when it refuses the network problem ``explore`` hands it (the
    CLI leaves model, data and the minima's values to the runner, which checks them by
    building the problem first: sessions.problem.build.build)."""
    from engine.paths.schedule import load_schedule
    from sessions.disk.config import Problem, SessionConfig
    from sessions.errors import SessionError
    from sessions.problem.minima import find_minima, manifest_entry
    from sessions.problem.build import build

    problem = Problem(kind="network", model=model, data=data,
                      minima=[manifest_entry(path) for path in find_minima(folder)])
    with pytest.raises(SessionError) as refused:
        build(SessionConfig(problem=problem, schedule=load_schedule("surface"), device="cpu"))
    return str(refused.value)


# Refused by the runner, not the CLI: "nan" goes through the real CLI and runner (the
# runner's refusal reaches the user as one line, and the session is removed); the others
# are checked where the runner checks them.
RUNNER_REFUSES = ("mixed shapes",)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", MINIMA_CASES)
def test_explore_refuses_bad_minima_in_one_line(case, nebtui_home, tmp_path):
    folder = _minima_case(case, tmp_path / "minima")
    before = _tree(folder)
    if case in RUNNER_REFUSES:
        message = _runner_refusal(folder)
        assert MINIMA_CASES[case] in message and "\n" not in message, message
    else:
        done = in_process("explore", str(folder), "--model", "mlp", "--data", "digits", "--scale", "0.01",
                          "--detach")
        assert_one_clear_line(done, MINIMA_CASES[case])
    assert _tree(folder) == before  # the user's files untouched
    assert not [p for p in nebtui_home.iterdir() if not p.name.startswith(".")] if nebtui_home.exists() else True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag, value, message", [
    ("--model", "nosuch", "unknown model 'nosuch'"),
    ("--model", "nosuch.module:factory", "cannot import 'nosuch.module'"),
    ("--data", "nosuch", "unknown data 'nosuch'"),
])
def test_explore_refuses_unknown_model_or_data_in_one_line(flag, value, message, nebtui_home, tmp_path):
    folder = tmp_path / "minima"
    folder.mkdir()
    _save_mlp(folder / "a.safetensors", seed=0)
    _save_mlp(folder / "b.safetensors", seed=1)
    args = {"--model": "mlp", "--data": "digits", flag: value}
    if flag == "--model":  # the runner builds the model (the CLI never imports torch)
        refusal = _runner_refusal(folder, model=value)
        assert message in refusal and "\n" not in refusal, refusal
    else:
        done = in_process("explore", str(folder), *[x for kv in args.items() for x in kv], "--detach")
        assert_one_clear_line(done, message)


@pytest.mark.timeout(60)
def test_a_data_home_that_is_a_file_is_refused(tmp_path):
    home = tmp_path / "a-file"
    home.write_text("not a folder\n")
    for args in (("demo", "muller-brown", "--detach"), ("sessions", "list")):
        done = in_process(*args, home=home)
        assert_one_clear_line(done, f"data home {home} (from NEBTUI_HOME) is not a folder")
    assert home.read_text() == "not a folder\n"


@pytest.mark.timeout(60)
def test_a_session_of_a_newer_schema_is_refused_not_touched(nebtui_home):
    from sessions.disk.folder import SessionFolder

    nebtui_home.mkdir()
    folder = SessionFolder.create(nebtui_home, "future", {"problem": {"kind": "surface", "surface": "muller-brown"},
                                                         "schedule": {}})
    info = json.loads((folder.path / "session.json").read_text())
    (folder.path / "session.json").write_text(json.dumps({**info, "schema": 99}))
    before = _tree(folder.path)
    for args in (("show", "future"), ("show", "future", "--json"), ("attach", "future"),
                 ("resume", "future", "--detach")):
        done = in_process("sessions", *args)
        assert_one_clear_line(done, "session future was written by a newer nebtui (schema 99, this one reads 1): "
                                    "upgrade nebtui")
    listed = in_process("sessions", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert "newer nebtui" in listed.stderr
    assert _tree(folder.path) == before
