"""Several workers: the runner keeps them busy with pairs chosen ahead, and the
result is the one worker's, whichever worker finishes first, however slow one
is, and through kill -9 and resume (Mueller-Brown and Himmelblau)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cli_runs import logged_events, nebtui, wait_until
from sessions.disk.eventlog import read_log
from sessions.disk.folder import SessionFolder

pytestmark = pytest.mark.timeout(300)

RUN_WITH_TWO_WORKERS = """
import sys
from sessions.disk.folder import SessionFolder
from sessions.processes.runner import Runner
from sessions.processes.workers import LocalPool


class AllReady(LocalPool):
    # No job before both workers are up: on a loaded machine the second one's start
    # (spawn, import torch) can outlast a whole Mueller-Brown pair, and this test is
    # about pairs running at once, not about start-up times.

    def idle(self):
        return super().idle() if all(slot.ready for slot in self.slots) else []


folder = SessionFolder.open(sys.argv[1], sys.argv[2])
config = folder.config()
sys.exit(Runner(folder, pool=AllReady(["cpu", "cpu"], config, 60.0)).main())
"""


def test_two_workers_run_the_initial_pairs_at_once_and_agree_with_one(nebtui_home, mb_session):
    reference = SessionFolder.open(mb_session.parent, mb_session.name)
    nebtui_home.mkdir()
    two = SessionFolder.create(nebtui_home, "two", reference.config())
    done = subprocess.run([sys.executable, "-c", RUN_WITH_TWO_WORKERS, str(nebtui_home), "two"],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert done.returncode == 0, done.stderr

    log = [e.event.to_dict() for e in read_log(two.events_path)]
    workers = {e["worker"] for e in log if e["kind"] == "worker_started"}
    assert workers == {0, 1}
    first_finish = next(i for i, e in enumerate(log) if e["kind"] == "connection_finished")
    started_before = {tuple(e["pair"]) for e in log[:first_finish] if e["kind"] == "cycle_started"}
    assert started_before == {(0, 1), (0, 2)}  # both star pairs in flight together

    results = [json.loads((f.results_path / "result.json").read_text()) for f in (reference, two)]
    assert results[0] == results[1]
    for path in sorted((reference.results_path / "paths").glob("*.safetensors")):
        mine = load_file(str(two.results_path / "paths" / path.name))
        theirs = load_file(str(path))
        assert mine.keys() == theirs.keys()
        assert all((mine[k] == theirs[k]).all() for k in mine), path.name


# --- several pairs in flight after the initial tree: Himmelblau (4 minima, 6 pairs) ---------------------

HIMMELBLAU = ("demo", "himmelblau", "--device", "cpu", "--scale", "0.3", "--checkpoint-every", "0.2")


def _log(folder: Path) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("seq", "time")} for e in logged_events(folder / "events.jsonl")]


def _chosen(folder: Path) -> list[tuple[int, int]]:
    """The pairs in the order they were first chosen (a resumed runner chooses again
    what it chose after its last checkpoint: the same pairs, in the same order)."""
    order: list[tuple[int, int]] = []
    for e in _log(folder):
        if e["kind"] == "pair_chosen" and tuple(e["pair"]) not in order:
            order.append(tuple(e["pair"]))
    return order


def _same_paths(folder: Path, reference: Path) -> None:
    """result.json and every path file equal, tensor for tensor, bit for bit."""
    import torch
    from safetensors import safe_open

    assert json.loads((folder / "results" / "result.json").read_text()) == json.loads(
        (reference / "results" / "result.json").read_text())
    files = sorted(p.name for p in (reference / "results" / "paths").glob("*.safetensors"))
    assert files == sorted(p.name for p in (folder / "results" / "paths").glob("*.safetensors")) and files
    for name in files:
        with safe_open(str(folder / "results" / "paths" / name), "pt") as mine, \
                safe_open(str(reference / "results" / "paths" / name), "pt") as theirs:
            assert mine.keys() == theirs.keys() and mine.metadata() == theirs.metadata(), name
            assert all(torch.equal(mine.get_tensor(k), theirs.get_tensor(k)) for k in mine.keys()), name


def _order_for(reference: Path, workers: int) -> list[tuple[int, int]]:
    """The pairs, in the order a session with ``workers`` workers chooses them, worked out
    from the reference's saddles alone: the choices depend on nothing else."""
    from engine.landscape.graph import Landscape
    from engine.landscape.sequence import PairSequence, lookahead_for

    result = json.loads((reference / "results" / "result.json").read_text())
    saddles = {(p["a"], p["b"]): p["saddle_energy"] for p in result["paths"]}
    sequence = PairSequence(Landscape([m["energy"] for m in result["minima"]]), lookahead_for(workers))
    while pending := sequence.open():
        sequence.add(pending[0], saddles[pending[0]])
    return sequence.order


def _runner(home: Path, name: str) -> int | None:
    from sessions.disk.lock import holder

    return holder(home / name / "lock")


def _two_in_flight_while_refining(home: Path, name: str) -> tuple[int] | None:
    """Once two pairs are in flight, one of them chosen to replace an MST edge (each of the two
    workers holds one of them): (how many pairs had finished by then,); before, None."""
    log = _log(home / name)
    replacing = {tuple(e["pair"]) for e in log if e["kind"] == "pair_chosen" and e["reason"] == "replace"}
    started = {tuple(e["pair"]) for e in log if e["kind"] == "cycle_started"}
    finished = {tuple(e["pair"]) for e in log if e["kind"] == "connection_finished"}
    in_flight = started - finished
    return (len(finished),) if len(in_flight) == 2 and in_flight & replacing else None


@pytest.fixture(scope="module")
def himmelblau_one_worker(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("himmelblau-one")
    done = nebtui(home, *HIMMELBLAU, "--json", "--session", "one")
    assert done.returncode == 0, done.stderr
    return home / "one"


def test_two_workers_with_one_slowed_end_as_one_worker_does(nebtui_home, himmelblau_one_worker):
    """Worker 0 is frozen (SIGSTOP) while a refinement pair runs beside another pair, until
    the other worker has finished a pair: paths finish in another order than they were
    chosen, and the result is still the one-worker result. Frozen only with two pairs in
    flight: frozen with the last pair, worker 0 would leave the other nothing to finish."""
    done = nebtui(nebtui_home, *HIMMELBLAU, "--workers", "2", "--detach", "--session", "slow")
    assert done.returncode == 0, done.stderr
    (before,) = wait_until(lambda: _two_in_flight_while_refining(nebtui_home, "slow"), 120,
                           "a refinement pair in flight beside another")
    slow = next(e["pid"] for e in _log(nebtui_home / "slow") if e["kind"] == "worker_started" and e["worker"] == 0)
    os.kill(slow, signal.SIGSTOP)

    def finished() -> int:
        return sum(e["kind"] == "connection_finished" for e in _log(nebtui_home / "slow"))

    try:  # a pair that finished since the two were seen in flight counts: the other worker may be done already
        wait_until(lambda: finished() > before or _runner(nebtui_home, "slow") is None, 240,
                   "the other worker to finish a pair")
    finally:
        os.kill(slow, signal.SIGCONT)
    wait_until(lambda: _runner(nebtui_home, "slow") is None, 120, "the end of the session")

    log = _log(nebtui_home / "slow")
    assert {e["worker"] for e in log if e["kind"] == "worker_started"} == {0, 1}
    assert [e["kind"] for e in log][-1] == "session_finished"
    _same_paths(nebtui_home / "slow", himmelblau_one_worker)
    assert _chosen(nebtui_home / "slow") == _order_for(himmelblau_one_worker, 2)
    assert _chosen(himmelblau_one_worker) == _order_for(himmelblau_one_worker, 1)


def _checkpointed_while_refining(home: Path, name: str) -> bool:
    """A checkpoint was written after a pair chosen to replace an MST edge had stepped: one
    that holds a refinement pair in flight."""
    log = _log(home / name)
    replacing = {tuple(e["pair"]) for e in log if e["kind"] == "pair_chosen" and e["reason"] == "replace"}
    stepped = next((i for i, e in enumerate(log) if e["kind"] in ("cycle_started", "step_energies")
                    and tuple(e["pair"]) in replacing), None)
    return stepped is not None and any(e["kind"] == "checkpoint_written" for e in log[stepped:])


def _kill_and_resume(home: Path, name: str) -> None:
    pid = _runner(home, name)
    assert pid is not None, "the session ended before it could be killed: make it longer"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _runner(home, name) is None, 15, "the killed runner's lock to be freed")
    resumed = nebtui(home, "sessions", "resume", name, "--detach")
    assert resumed.returncode == 0, resumed.stderr


def test_two_workers_killed_while_refining_and_while_resuming_resume_to_the_same_result(nebtui_home,
                                                                                        himmelblau_one_worker):
    """Kill -9 once a checkpoint holds a refinement pair in flight, then the resumed runner
    during its start-up, once it has started its workers: the third runner ends as one
    worker does."""
    done = nebtui(nebtui_home, *HIMMELBLAU, "--workers", "2", "--detach", "--session", "killed")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: _checkpointed_while_refining(nebtui_home, "killed") or _runner(nebtui_home, "killed") is None,
               120, "a checkpoint with a refinement pair in flight")
    _kill_and_resume(nebtui_home, "killed")
    # the second runner's "minima" phase: its workers started, it reads the minima and the checkpoint
    wait_until(lambda: sum(e["kind"] == "startup_phase_started" and e["phase"] == "minima"
                           for e in _log(nebtui_home / "killed")) == 2, 60, "the resumed runner's start-up")
    _kill_and_resume(nebtui_home, "killed")
    wait_until(lambda: _runner(nebtui_home, "killed") is None, 120, "the end of the session")

    log = _log(nebtui_home / "killed")
    assert [e["kind"] for e in log][-1] == "session_finished"
    assert [e["resumed"] for e in log if e["kind"] == "runner_started"][-1]  # it continued from the checkpoint
    _same_paths(nebtui_home / "killed", himmelblau_one_worker)
    assert _chosen(nebtui_home / "killed") == _order_for(himmelblau_one_worker, 2)
