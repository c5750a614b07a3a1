"""Files are data. A folder of minima or a session folder from someone else runs
no code: a model factory is imported only when this user typed it (or vouched for
it with nebtui sessions trust); a damaged config or a safetensors file with an
absurd header is one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_runs import NEBTUI, assert_one_clear_line, copy_session, in_process, logged_events, nebtui, wait_until

pytestmark = pytest.mark.timeout(180)


def _hostile(marker: Path) -> dict:
    """A model spec that, imported and called, would create ``marker``."""
    return {"model": "os:system", "model_args": {"command": f"touch {marker}"}}


def _minima_with_sidecars(digits_minima: Path, folder: Path, sidecar: dict) -> Path:
    """A copy of the digits minima whose sidecars all say ``sidecar``."""
    shutil.copytree(digits_minima, folder)
    for path in folder.glob("*.json"):
        path.write_text(json.dumps(sidecar))
    return folder


def _with_config(folder: Path, **problem: object) -> None:
    """Change the session's config.json as a hand or another program might."""
    config = json.loads((folder / "config.json").read_text())
    config["problem"].update(problem)
    (folder / "config.json").write_text(json.dumps(config))


def _copied(digits_session: Path, home: Path, name: str) -> Path:
    """The digits session, copied into ``home`` under another name as another machine might have made it."""
    folder = copy_session(digits_session, home, name)
    info = json.loads((folder / "session.json").read_text())
    (folder / "session.json").write_text(json.dumps({**info, "id": name}))
    return folder


def _never_ran(digits_session: Path, home: Path, name: str) -> Path:
    """A copy of the digits session as it was before its runner first ran."""
    folder = _copied(digits_session, home, name)
    shutil.rmtree(folder / "results")
    (folder / "results").mkdir()
    for made in ("checkpoint.safetensors", "checkpoint.previous.safetensors", "heartbeat"):
        (folder / made).unlink(missing_ok=True)
    (folder / "events.jsonl").write_text("")
    return folder


def test_sidecars_naming_a_factory_run_nothing(digits_minima, tmp_path, nebtui_home):
    marker = tmp_path / "ran"
    minima = _minima_with_sidecars(digits_minima, tmp_path / "minima", {**_hostile(marker), "data": "digits"})

    done = in_process("explore", str(minima), "--headless", "--device", "cpu")

    assert_one_clear_line(done, f"the sidecars in {minima} name the model factory os:system, and nebtui runs no "
                                "code named in a file: if you trust it, pass --model os:system")
    assert not marker.exists()
    assert not nebtui_home.exists() or not [p for p in nebtui_home.iterdir() if p.is_dir()]


def test_a_copied_session_naming_a_factory_runs_nothing_on_report_or_resume(digits_session, tmp_path, nebtui_home):
    marker = tmp_path / "ran"
    reported = _copied(digits_session, nebtui_home, "reported")
    _with_config(reported, **_hostile(marker))
    resumed = _never_ran(digits_session, nebtui_home, "resumed")
    _with_config(resumed, **_hostile(marker))

    done = in_process("report", "reported", "--format", "json", "--hessian-k", "0", "--slices", "0",
                      "--ensemble-k", "0")
    assert_one_clear_line(done, "session reported names the model factory os:system, which was not given on this "
                                "machine, and nebtui runs no code named in a file: if you trust os:system, vouch for "
                                "it with nebtui sessions trust reported os:system")
    done = nebtui(nebtui_home, "sessions", "resume", "resumed", "--detach")
    assert_one_clear_line(done, "session resumed names the model factory os:system, which was not given")
    # the runner itself refuses too, whoever starts it, and says so in the session's log
    runner = subprocess.run([sys.executable, "-m", "sessions.processes.spawn", str(resumed)], capture_output=True, text=True,
                            timeout=120, cwd=resumed)
    assert runner.returncode == 2 and "Traceback" not in runner.stderr, runner.stderr
    assert [e["message"] for e in logged_events(resumed / "events.jsonl") if e["kind"] == "session_failed"] == [
        "session resumed names the model factory os:system, which was not given on this machine, and nebtui runs "
        "no code named in a file: if you trust os:system, vouch for it with nebtui sessions trust resumed os:system"]
    assert not marker.exists()
    listed = in_process("sessions", "list", "--json", home=nebtui_home)  # listing only reads: both are there
    assert {row["id"] for row in json.loads(listed.stdout)} == {"reported", "resumed"}


def test_a_session_folder_holds_no_module_the_runner_imports(digits_session, tmp_path, nebtui_home):
    marker = tmp_path / "ran"
    folder = _never_ran(digits_session, nebtui_home, "planted")
    (folder / "sessions").mkdir()
    (folder / "sessions" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")

    done = nebtui(nebtui_home, "sessions", "resume", "planted", "--detach")

    assert done.returncode == 0, done.stderr
    wait_until(lambda: [e for e in logged_events(folder / "events.jsonl") if e["kind"] == "runner_started"], 120,
               "the runner's start")
    assert not marker.exists()
    assert in_process("sessions", "stop", "planted", home=nebtui_home).returncode in (0, 1)  # 1: it had finished


@pytest.fixture
def tiny_factory(tmp_path, monkeypatch) -> str:
    """A user's own model factory, importable from PYTHONPATH: the digits MLP by another name."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "usernets.py").write_text(textwrap.dedent("""
        from engine.networks.models import ZOO

        def digits_mlp(**arguments):
            return ZOO["mlp"](**arguments)
    """))
    monkeypatch.setenv("PYTHONPATH", str(modules))  # for the CLI's processes, runners and workers
    monkeypatch.syspath_prepend(str(modules))  # for the command line run in this process
    return "usernets:digits_mlp"


def _runner_starts(folder: Path) -> int:
    return sum(e["kind"] == "runner_started" for e in logged_events(folder / "events.jsonl"))


def _status(home: Path, name: str) -> str:
    return json.loads(in_process("sessions", "show", name, "--json", home=home).stdout)["status"]


def test_a_typed_factory_runs_for_explore_and_resume(digits_minima, digits_schedule, tmp_path, nebtui_home,
                                                     tiny_factory):
    done = nebtui(nebtui_home, "explore", str(digits_minima), "--model", tiny_factory, "--data", "digits",
                  "--schedule", str(digits_schedule), "--scale", "50", "--strategy", "loop", "--device", "cpu",
                  "--session", "typed", "--detach")
    assert done.returncode == 0, done.stderr
    folder = nebtui_home / "typed"
    wait_until(lambda: _runner_starts(folder) == 1, 120, "the runner's start")
    assert in_process("sessions", "stop", "typed", home=nebtui_home).returncode == 0
    wait_until(lambda: _status(nebtui_home, "typed") == "stopped", 60, "the stop")

    done = nebtui(nebtui_home, "sessions", "resume", "typed", "--detach")

    assert done.returncode == 0, done.stderr
    wait_until(lambda: _runner_starts(folder) == 2, 120, "the resumed runner's start")
    assert in_process("sessions", "stop", "typed", home=nebtui_home).returncode == 0
    wait_until(lambda: _status(nebtui_home, "typed") == "stopped", 60, "the second stop")
    assert not [e for e in logged_events(folder / "events.jsonl") if e["kind"] == "session_failed"]


def test_a_copied_session_runs_its_factory_once_vouched_for(digits_session, tmp_path, nebtui_home, tiny_factory):
    folder = _copied(digits_session, nebtui_home, "shared")
    _with_config(folder, model=tiny_factory)
    report = ("report", "shared", "--format", "json", "--hessian-k", "0", "--slices", "0", "--ensemble-k", "0")
    assert_one_clear_line(in_process(*report), f"nebtui sessions trust shared {tiny_factory}")

    wrong = in_process("sessions", "trust", "shared", "usernets:other", home=nebtui_home)
    assert_one_clear_line(wrong, f"session shared names the model factory {tiny_factory}, not usernets:other")
    vouched = in_process("sessions", "trust", "shared", tiny_factory, home=nebtui_home)
    assert vouched.returncode == 0, vouched.stderr
    assert f"session shared may import {tiny_factory}" in vouched.stdout

    done = in_process(*report)
    assert done.returncode == 0, done.stderr
    assert json.loads((folder / "results" / "report" / "report.json").read_text())["table1"]


@pytest.mark.parametrize("config, what", [
    ("[]", "the file is [], not an object"),
    ('"text"', 'the file is "text", not an object'),
    ('{"problem": 5, "schedule": {}}', "problem is 5, not an object"),
    ('{"problem": {"kind": "surface", "surface": "muller-brown"}}', "schedule is missing"),
])
def test_a_damaged_config_is_one_line_from_every_reader(digits_session, nebtui_home, config, what):
    folder = _never_ran(digits_session, nebtui_home, "damaged")
    (folder / "results" / "paths").mkdir()
    shutil.copy(next((digits_session / "results" / "paths").glob("*.safetensors")), folder / "results" / "paths")
    (folder / "config.json").write_text(config)
    line = f"config.json of session damaged is damaged: {what}: restore it from a copy, or remove the session with " \
           "nebtui sessions rm damaged"

    assert_one_clear_line(in_process("sessions", "resume", "damaged", "--detach", home=nebtui_home), line)
    assert_one_clear_line(in_process("report", "damaged", "--format", "json", home=nebtui_home), line)
    assert_one_clear_line(in_process("sessions", "trust", "damaged", "usernets:mlp", home=nebtui_home), line)
    assert (folder / "config.json").read_text() == config  # nothing was rewritten


def test_a_safetensors_header_claiming_gigabytes_is_refused_unread(digits_minima, tmp_path):
    minima = tmp_path / "minima"
    minima.mkdir()
    shutil.copy(digits_minima / "minimum-00.safetensors", minima)
    huge = minima / "minimum-01.safetensors"
    claimed = 400_000_000
    with open(huge, "wb") as out:
        out.write(claimed.to_bytes(8, "little"))
        out.truncate(8 + claimed)  # sparse: no disk used
    measure = textwrap.dedent(f"""
        import resource, subprocess, sys
        done = subprocess.run([{NEBTUI!r}, "explore", {str(minima)!r}, "--model", "mlp", "--data", "digits",
                               "--headless"], capture_output=True, text=True)
        sys.stderr.write(done.stderr)
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB
    """)

    done = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NEBTUI_HOME": str(tmp_path / "home")})

    code, peak_kib = map(int, done.stdout.split())
    assert_one_clear_line(subprocess.CompletedProcess([], code, "", done.stderr),
                          f"{huge} is not a readable safetensors file (its header claims 400000000 bytes, more than "
                          "the 100000000 safetensors allows): export the weights again")
    assert peak_kib * 1024 < claimed / 2
