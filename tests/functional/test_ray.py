"""Sessions on a Ray cluster: one real local cluster for all these tests (``two_nodes``,
tests/ray_cluster.py: a head that runs no work and two nodes with this machine's cores
each, no dashboard), which each
session's runner joins as a driver (``--cluster ray``, RAY_ADDRESS names it). The
digits session through Ray actors ends with the local pool's result bit for bit,
through the node of its actor removed, an actor killed -9 and the runner killed -9
and resumed; GPUs asked of it, a cluster that is not there, or Ray not installed, is
one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_runs import NEBTUI, alive, assert_one_clear_line, digits_args, logged_events, nebtui, wait_until
from sessions.disk.lock import holder

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray,test]'")

pytestmark = pytest.mark.timeout(600)  # a loaded machine: each wait has its own, shorter deadline


def _log(folder: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("seq", "time")} for e in logged_events(folder / "events.jsonl")]


def _same_result(folder: Path, reference: Path) -> None:
    """result.json and every path file equal to the reference's, tensor for tensor, bit for bit."""
    import torch
    from safetensors import safe_open

    assert json.loads((folder / "results" / "result.json").read_text()) == json.loads(
        (reference / "results" / "result.json").read_text())
    names = sorted(p.name for p in (reference / "results" / "paths").glob("*.safetensors"))
    assert names and names == sorted(p.name for p in (folder / "results" / "paths").glob("*.safetensors"))
    for name in names:
        with safe_open(str(folder / "results" / "paths" / name), "pt") as mine, \
                safe_open(str(reference / "results" / "paths" / name), "pt") as theirs:
            assert mine.keys() == theirs.keys() and mine.metadata() == theirs.metadata(), name
            assert all(torch.equal(mine.get_tensor(k), theirs.get_tensor(k)) for k in mine.keys()), name


def _stepping(folder: Path) -> list[dict[str, Any]] | None:
    """The worker_started events once the latest started worker has stepped; None while the
    runner holds the session and it has not, [] once the runner has let go."""
    log = _log(folder)
    last = max((i for i, e in enumerate(log) if e["kind"] == "worker_started"), default=len(log))
    if any(e["kind"] == "step_energies" for e in log[last:]):
        return [e for e in log if e["kind"] == "worker_started"]
    return [] if holder(folder / "lock") is None else None


def _replaced(folder: Path, before: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """The worker_started events once a worker started after ``before`` has stepped."""

    def replacing() -> list[Any] | None:
        now = _stepping(folder)
        return None if now is None or now == before else now or ["the end"]

    now = wait_until(replacing, 180, what)
    assert now != ["the end"] and len(now) == len(before) + 1, f"the session ended before {what}"
    return now


def test_a_digits_session_on_two_nodes_ends_as_on_local_workers_through_a_lost_node_a_lost_actor_and_a_killed_runner(
        nebtui_home, two_nodes, digits_minima, digits_schedule, digits_session, monkeypatch):
    """One session carries every fault (Ray's start and a digits session's take most of
    the time these tests may have). The node that runs its actor is removed mid-pair: the
    pair runs again from its last state on an actor on the other node. That actor killed
    -9 is replaced the same way. The runner killed -9 takes its actor with it. Resumed,
    the session ends with the local pool's result, bit for bit."""
    monkeypatch.setenv("RAY_ADDRESS", two_nodes.cluster.address)
    folder = nebtui_home / "ray"
    done = nebtui(nebtui_home, *digits_args(digits_minima, digits_schedule), "--cluster", "ray", "--detach",
                  "--session", "ray")
    assert done.returncode == 0, done.stderr
    started = wait_until(lambda: (now := _stepping(folder)) is not None and (now or ["the end"]), 180,
                         "a pair stepping")
    assert started != ["the end"], "the session ended before its node could be removed"
    [first] = started
    assert first["node"] == socket.gethostname() and first["device"] == "cpu"
    lost = two_nodes.node_of(first["pid"])
    two_nodes.cluster.remove_node(lost)
    wait_until(lambda: not alive(first["pid"]), 120, "the actor to end with its node")

    moved = _replaced(folder, started, "the actor on the other node stepping")
    assert two_nodes.node_of(moved[-1]["pid"]) is not lost
    os.kill(moved[-1]["pid"], signal.SIGKILL)
    replaced = _replaced(folder, moved, "the replacing actor stepping")
    died = [e for e in _log(folder) if e["kind"] == "worker_died"]
    assert [e["pid"] for e in died] == [first["pid"], moved[-1]["pid"]]
    assert all(e["pair"] is not None and e["restart_in"] is not None for e in died)
    # the resumed runner must have a checkpoint to continue from (a kill before the first
    # one starts the session again, which is right, but not what this test is about)
    wait_until(lambda: any(e["kind"] == "checkpoint_written" for e in _log(folder)) or holder(folder / "lock") is None,
               60, "a checkpoint")
    runner = holder(folder / "lock")
    assert runner is not None, "the session ended before its runner could be killed"
    os.kill(runner, signal.SIGKILL)
    wait_until(lambda: not alive(replaced[-1]["pid"]), 120, "the actor to end with its runner")
    wait_until(lambda: holder(folder / "lock") is None, 60, "the killed runner's lock to be freed")

    resumed = nebtui(nebtui_home, "sessions", "resume", "ray", "--detach")
    assert resumed.returncode == 0, resumed.stderr
    wait_until(lambda: holder(folder / "lock") is None and _log(folder)[-1]["kind"] == "session_finished", 180,
               "the end of the resumed session")
    log = _log(folder)
    assert [e for e in log if e["kind"] == "runner_started"][-1]["resumed"]
    _same_result(folder, digits_session)
    last = [e for e in log if e["kind"] == "worker_started"][-1]
    shown = subprocess.run([NEBTUI, "sessions", "show", "ray"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "NEBTUI_HOME": str(nebtui_home)})
    assert shown.returncode == 0, shown.stderr
    assert f"worker     0: cpu on {socket.gethostname()} (pid {last['pid']})" in shown.stdout


@pytest.mark.parametrize("client", [False, True], ids=["ray", "ray-client"])
def test_gpus_asked_of_a_cluster_without_any_are_one_line_and_leave_no_session(
        nebtui_home, two_nodes, digits_minima, digits_schedule, monkeypatch, client):
    """The runner joins the cluster (--cluster ray: the one this machine runs, found as after
    a user's ray start, with no RAY_ADDRESS; or through Ray Client, --cluster ray://HOST:PORT),
    which has no GPU: its refusal comes back as from the CLI."""
    if client:
        cluster = address = two_nodes.client
    else:
        cluster, address = "ray", two_nodes.cluster.address
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    done = nebtui(nebtui_home, *digits_args(digits_minima, digits_schedule), "--device", "cuda", "--cluster", cluster,
                  "--session", "nogpu", "--headless")
    assert_one_clear_line(done, f"the Ray cluster at {address} has no GPU, and --device cuda asks for GPUs")
    assert done.returncode == 2
    assert not (nebtui_home / "nogpu").exists()


@pytest.mark.parametrize("client", [False, True], ids=["ray", "ray-client"])
def test_a_cluster_that_is_not_there_is_one_line_and_leaves_no_session(nebtui_home, digits_minima, digits_schedule,
                                                                       monkeypatch, client):
    """--cluster ray with RAY_ADDRESS naming it, and --cluster ray://HOST:PORT."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if client:
        cluster = f"ray://127.0.0.1:{port}"
    else:
        cluster = "ray"
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    done = nebtui(nebtui_home, *digits_args(digits_minima, digits_schedule), "--cluster", cluster, "--session", "gone",
                  "--headless")
    assert_one_clear_line(done, f"cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert done.returncode == 2
    assert not (nebtui_home / "gone").exists()


def test_cluster_ray_without_ray_installed_says_how_to_install_it(nebtui_home, digits_minima, digits_schedule):
    hidden = ("import sys; sys.modules['ray'] = None; from nebtui.cli import main; "
              "sys.argv = ['nebtui'] + sys.argv[1:]; main()")
    done = subprocess.run([sys.executable, "-c", hidden, *digits_args(digits_minima, digits_schedule),
                           "--cluster", "ray", "--session", "noray"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NEBTUI_HOME": str(nebtui_home)})
    assert_one_clear_line(done, "pip install -e '.[ray]'")
    assert not (nebtui_home / "noray").exists()
