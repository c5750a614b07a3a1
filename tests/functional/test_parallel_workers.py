"""Several devices: the runner hands independent pairs (the initial star) to several
workers at once, and the result is the same as with one worker (the shared
Mueller-Brown session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from sessions.eventlog import read_log
from sessions.folder import SessionFolder

pytestmark = pytest.mark.timeout(300)

RUN_WITH_TWO_WORKERS = """
import sys
from sessions.folder import SessionFolder
from sessions.runner import Runner
from sessions.workers import LocalPool


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
    two = SessionFolder.create(nebtui_home, "two", reference.config(), [])
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
