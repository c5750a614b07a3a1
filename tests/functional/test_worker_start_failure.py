"""A worker that cannot start is not started again for ever: after a few failed starts
in a row the session fails in one line that says where to look."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_runs import in_process

from engine.paths.schedule import load_schedule
from sessions.disk.config import Problem, SessionConfig
from sessions.disk.eventlog import read_log
from sessions.disk.folder import SessionFolder

RUN_WITH_BROKEN_WORKERS = """
import sys
from sessions.disk.folder import SessionFolder
from sessions.processes.runner import Runner
from sessions.processes.workers import LocalPool

folder = SessionFolder.open(sys.argv[1], sys.argv[2])
config = folder.config()
broken = config.problem.model_copy(update={"surface": "no-such-surface"})
config = config.model_copy(update={"problem": broken})  # the workers' problem only: the runner's own is sound
sys.exit(Runner(folder, pool=LocalPool(["cpu"], config, 60.0)).main())
"""


@pytest.mark.timeout(120)
def test_a_worker_that_ends_before_it_is_ready_fails_the_session_after_three_starts(nebtui_home):
    config = SessionConfig(problem=Problem(kind="surface", surface="muller-brown"),
                           schedule=load_schedule("surface"))
    nebtui_home.mkdir()
    folder = SessionFolder.create(nebtui_home, "broken", config)
    done = subprocess.run([sys.executable, "-c", RUN_WITH_BROKEN_WORKERS, str(nebtui_home), "broken"],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 1, done.stderr

    log = [entry.event.to_dict() for entry in read_log(folder.events_path)]
    deaths = [e for e in log if e["kind"] == "worker_died"]
    assert len(deaths) == 3 and all(e["pair"] is None for e in deaths)
    assert [e["restart_in"] is None for e in deaths] == [False, False, True]
    assert not [e for e in log if e["kind"] == "worker_started"]
    failed = log[-1]
    assert failed["kind"] == "session_failed"
    assert failed["message"].startswith("worker 0 ended before it was ready 3 times in a row (last: exit code 1): "
                                        f"see runner.log in {folder.path} for why")
    assert failed["message"].endswith("then nebtui sessions resume broken")
    shown = in_process("sessions", "show", "broken", "--json", home=nebtui_home)
    assert '"status": "failed"' in shown.stdout
