"""`nebtui train` as a user runs it, and `explore` on its output without options.
Trainings run in real processes (signals, locks between processes, progress lines);
what is refused is asked of the command line in this process."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_runs import DIGITS_TRAIN_ARGS, NEBTUI, in_process, logged_events, wait_until
from safetensors.torch import load_file
from sessions.disk.lock import holder


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEBTUI, *args], capture_output=True, text=True, timeout=timeout)


def test_train_writes_minima_and_sidecars_and_resumes_by_minimum(tmp_path, digits_minima, nebtui_home):
    # the first minimum as the shared minima's training wrote it (the same command with --count 3)
    out = tmp_path / "minima"
    out.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(digits_minima / f"minimum-00{suffix}", out)
    scale = DIGITS_TRAIN_ARGS[DIGITS_TRAIN_ARGS.index("--scale") + 1]
    steps = json.loads((out / "minimum-00.json").read_text())["recipe"]["steps"]  # the digits recipe's, scaled
    again = run("train", "--model", "mlp", "--data", "digits", "--count", "2", "--out", str(out), "--scale", scale)
    assert again.returncode == 0, again.stderr
    assert "minimum 1/2: minimum-00 already trained, kept" in again.stdout
    assert f"minimum 2/2: step {steps}/{steps}" in again.stdout
    last = next(line for line in again.stdout.splitlines() if f"minimum 2/2: step {steps}/{steps}" in line)
    assert "samples/s, ETA 0:00)" in last
    sidecars = [json.loads((out / f"minimum-0{i}.json").read_text()) for i in range(2)]
    assert [s["seed"] for s in sidecars] == [0, 1]
    for sidecar in sidecars:
        assert sidecar["model"] == "mlp" and sidecar["data"] == "digits" and sidecar["recipe"]["steps"] == steps
        assert sidecar["train"]["loss"] < sidecar["curve"]["loss"][0]  # it trained
        assert 0 <= sidecar["test"]["error"] < 0.5 and sidecar["train"]["bn_recalibrated"] is False
    weights = [load_file(str(out / f"minimum-0{i}.safetensors")) for i in range(2)]
    assert not torch.equal(weights[0]["0.weight"], weights[1]["0.weight"])  # distinct seeds

    # a third minimum half-trained, a fourth being trained by a live process: both left out, and said so
    (out / "minimum-02.partial.safetensors").write_bytes(b"a saved training state")
    holding = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / ".minimum-03.lock")], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert holding.stdout.readline().strip() == "held"
        # detached: following it to the end would add the Table 1 row's evaluation, which this is not about
        explored = run("explore", str(out), "--scale", "0.005", "--detach", "--session", "two", "--strategy", "vmap")
    finally:
        holding.kill()
        holding.wait(timeout=10)
    assert explored.returncode == 0, explored.stderr
    assert f"note: minimum-02, minimum-03 in {out} still in training: left out of this session" in explored.stdout
    folder = nebtui_home / "two"
    wait_until(lambda: holder(folder / "lock") is None, 120, "the session's runner to end")
    finished = logged_events(folder / "events.jsonl")[-1]
    assert (finished["kind"], finished["reason"], finished["pairs_done"]) == ("session_finished", "all_pairs", 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--model", "mlp", "--data", "imagenet"), "unknown data 'imagenet'"),
        (("--model", "nope", "--data", "digits"), "unknown model 'nope'"),
        (("--model", "resnet20", "--data", "cifar10:/no/such"), "does not exist; pass --download to fetch it"),
        (("--model", "mlp", "--data", "digits", "--recipe", "fast"), "unknown recipe 'fast'"),
        (("--model", "mlp", "--data", "digits", "--count", "0"), "--count must be at least 1"),
    ],
)
def test_bad_options_are_one_clear_line(tmp_path, args, message):
    done = in_process("train", *args, "--out", str(tmp_path / "m"))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_explore_without_sidecars_asks_for_the_model(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    for i in range(2):
        torch.save({"w": torch.zeros(1)}, folder / f"m{i}.pt")
    done = in_process("explore", str(folder))
    assert done.returncode == 2
    assert "give --model and --data" in done.stderr


def _train_args(out: Path, *extra: str) -> list[str]:
    # the digits recipe's 1500 steps: 1-3 s of training, of which the first checkpoint comes 0.2 s in
    return [NEBTUI, "train", "--model", "mlp", "--data", "digits", "--count", "1", "--out", str(out), "--scale", "1",
            "--checkpoint-every", "0.2", *extra]


def _train(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(_train_args(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _interrupt(plan: dict[subprocess.Popen[str], tuple[Path, signal.Signals]]) -> list[subprocess.CompletedProcess[str]]:
    """Send each training process its signal as soon as it has saved its state in its folder
    (``plan``: process -> (folder, signal)); then what each one said, in the plan's order."""
    waiting = dict(plan)
    deadline = time.monotonic() + 120
    while waiting:
        for process, (out, how) in list(waiting.items()):
            if (out / "minimum-00.partial.safetensors").exists():
                process.send_signal(how)
                del waiting[process]
            else:
                assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no training state was saved within 120 s"
        time.sleep(0.02)
    done = []
    for process in plan:
        stdout, stderr = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_or_stopped_training_continues_to_the_same_minimum(tmp_path):
    # two trainings side by side (separate folders): one to kill, one to stop
    to_kill, to_stop = (_train(tmp_path / name) for name in ("killed", "stopped"))
    continued: dict[str, subprocess.Popen[str]] = {}
    try:
        # each is signalled as soon as it has saved a state: one after the other, the second could finish
        # its 1-3 s of training while the first was being killed (seen on a loaded machine)
        killed, stopped = _interrupt({to_kill: (tmp_path / "killed", signal.SIGKILL),
                                      to_stop: (tmp_path / "stopped", signal.SIGINT)})
        assert killed.returncode == -signal.SIGKILL
        assert stopped.returncode == 130, stopped.stderr
        assert stopped.stderr.strip().splitlines() == [
            "nebtui: stopped; minimum-00.partial.safetensors keeps minimum 1's progress: run the same command to continue"]

        # the saved state is not a minimum: explore refuses the folder instead of exploring it
        explored = in_process("explore", str(tmp_path / "stopped"))
        assert explored.returncode == 2 and "holds unfinished training (minimum-00.partial.safetensors)" in explored.stderr
        # other options would not continue the same run: refused, and the state is kept
        other = in_process(*_train_args(tmp_path / "stopped", "--seed", "7")[1:])
        assert other.returncode == 2
        assert "was started with another seed: rerun with the same options" in other.stderr  # only the seed differs
        assert (tmp_path / "stopped" / "minimum-00.partial.safetensors").exists()

        continued.update({folder: _train(tmp_path / folder) for folder in ("killed", "stopped")})  # side by side too
        # meanwhile the reference, uninterrupted: the same command in this process (a small model trains on
        # one thread wherever it runs, so its result does not depend on the process)
        done = in_process(*_train_args(tmp_path / "ref")[1:])
        assert done.returncode == 0, done.stderr
        expected = load_file(str(tmp_path / "ref" / "minimum-00.safetensors"))
        for folder, process in continued.items():
            again = _finished(process)
            assert again.returncode == 0, again.stderr
            assert "minimum 1/1: continuing at step " in again.stdout
            weights = load_file(str(tmp_path / folder / "minimum-00.safetensors"))
            assert weights.keys() == expected.keys()
            assert all(torch.equal(weights[k], expected[k]) for k in expected), folder
            assert not (tmp_path / folder / "minimum-00.partial.safetensors").exists()
            sidecar = json.loads((tmp_path / folder / "minimum-00.json").read_text())
            assert sidecar["resumed_at_step"] > 0
    finally:  # nothing left running after a failure
        for process in (to_kill, to_stop, *continued.values()):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def test_a_damaged_training_state_is_named_and_kept(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "minimum-00.partial.safetensors").write_bytes(b"not a safetensors file")
    done = in_process(*_train_args(out)[1:])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "minimum-00.partial.safetensors is damaged" in done.stderr
    assert "delete it to train that minimum from the start" in done.stderr
    assert (out / "minimum-00.partial.safetensors").read_bytes() == b"not a safetensors file"


@pytest.mark.timeout(300)
def test_two_trainings_sharing_a_folder_split_the_minima_between_them(tmp_path):
    """One nebtui train per GPU on one folder: each minimum is trained by exactly one of them."""
    out = tmp_path / "shared"
    # a minimum of 750 steps (about a second) is long enough for the two runs to meet at a claimed one
    args = [NEBTUI, "train", "--model", "mlp", "--data", "digits", "--count", "4", "--out", str(out), "--scale", "0.5"]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=280) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    trained = [{i for i in range(4) if f"minimum {i + 1}/4: train loss" in stdout} for stdout, _ in outputs]
    assert trained[0] | trained[1] == {0, 1, 2, 3}
    assert not trained[0] & trained[1]  # none trained twice
    for (stdout, _), mine in zip(outputs, trained):
        for i in set(range(4)) - mine:  # the ones it left: held by the other run, or found done
            assert (f"minimum {i + 1}/4: minimum-0{i} is being trained by pid " in stdout
                    or f"minimum {i + 1}/4: minimum-0{i} already trained, kept" in stdout), stdout
    seeds = sorted(json.loads((out / f"minimum-0{i}.json").read_text())["seed"] for i in range(4))
    assert seeds == [0, 1, 2, 3]
    assert not list(out.glob("*.partial.safetensors"))
