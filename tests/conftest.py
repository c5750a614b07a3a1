"""Every test gets its own data home, so sessions never leak between tests or
into the user's real one.

Finished sessions are expensive (a runner, its workers, training for the
digits), so each kind is made once per test run with the real CLI, in a data
home of its own: ``mb_session`` (Mueller-Brown), ``digits_session`` and
``bezier_session`` (both over ``digits_minima``). Tests only read them; a test that changes a session (reports
into it, resumes or removes it) works on a copy in its own data home
(cli_runs.copy_session)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

# Before torch is imported anywhere: OpenMP threads that sleep while they wait.
# Spinning threads made torch 30-100x slower on this 2-core machine whenever a
# runner or worker process ran beside the tests (see sessions.processes.spawn).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under xdist, as many tests run at once as there are workers: each test's torch (here, and
# in the processes it starts) takes its share of the cores, as a session's workers take
# theirs, unless the caller set a count (the suite is run at 1 and 2 threads too). Two
# tests each spreading over both cores of a two-core machine made the suite 10% slower.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // max(1, _workers)))

from cli_runs import DIGITS_SCHEDULE, DIGITS_TRAIN_ARGS, MB_ARGS, digits_args, nebtui  # noqa: E402
from ray_cluster import two_nodes  # noqa: E402,F401 - one local Ray cluster for every module that asks




def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject.toml): the whole suite (no paths named) on two workers,
    which halves its time on an idle two-core machine, since most tests wait on
    processes that use one core; tests named on the command line run in this process.
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides where it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0))
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS or cores < 2:
        return 0
    return 2


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the tests of a module that share a module-scoped fixture of ours run on
    one worker (--dist loadgroup), so the fixture is made once. The session-scoped ones are
    made once for all workers (see ``made_once``)."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        scoped = [name for name, defs in (info.name2fixturedefs.items() if info else ())
                  if defs and defs[-1].scope in ("module", "class", "package") and defs[-1].baseid]
        if scoped:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        elif "two_nodes" in getattr(item, "fixturenames", ()):  # the Ray cluster: started on one worker only
            item.add_marker(pytest.mark.xdist_group("two_nodes"))
    # The modules of the longest tests first, so that the two workers end together instead of
    # one of them running a long test alone at the end; a module's tests stay together (its
    # fixtures are made once) and in their order.
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name``, filled by ``make`` once per test run: under xdist the first worker
    to ask makes it while the others wait on a lock, then all of them read it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        made = root / f"{name}.made"  # beside the folder: a data home holds sessions only
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed to make it left this
            folder.mkdir()
            make(folder)
            made.touch()
    return folder


@pytest.fixture(autouse=True)
def nebtui_home(tmp_path, monkeypatch):
    home = tmp_path / "nebtui-home"
    monkeypatch.setenv("NEBTUI_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def mb_session(tmp_path_factory) -> Path:
    """The folder of a finished Mueller-Brown session (cli_runs.MB_ARGS). Read only."""

    def make(home: Path) -> None:
        done = nebtui(home, *MB_ARGS, "--headless", "--session", "mb")
        assert done.returncode == 0, done.stderr
        assert "session finished (all pairs), 3 pairs" in done.stdout

    return made_once(tmp_path_factory, "mb-home", make) / "mb"


@pytest.fixture(scope="session")
def digits_minima(tmp_path_factory) -> Path:
    """A folder of three digits MLP minima and their sidecars (cli_runs.DIGITS_TRAIN_ARGS). Read only."""

    def make(folder: Path) -> None:
        done = nebtui(None, *DIGITS_TRAIN_ARGS, "--out", str(folder / "minima"))
        assert done.returncode == 0, done.stderr

    return made_once(tmp_path_factory, "digits-minima", make) / "minima"


@pytest.fixture(scope="session")
def digits_schedule(tmp_path_factory) -> Path:
    return made_once(tmp_path_factory, "schedule", lambda folder: (folder / "tiny.toml").write_text(DIGITS_SCHEDULE)) \
        / "tiny.toml"


@pytest.fixture(scope="session")
def digits_session(tmp_path_factory, digits_minima, digits_schedule) -> Path:
    """The folder of a finished session over ``digits_minima`` (cli_runs.digits_args). Read only.
    Made with ``explore --json``: stdout holds the session's result (and its Table 1 row), nothing else."""

    def make(home: Path) -> None:
        done = nebtui(home, *digits_args(digits_minima, digits_schedule), "--json", "--session", "dg")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        table1 = result.pop("table1")  # a network session's JSON adds the paper's Table 1 row
        assert table1["train_loss_saddles"] > table1["train_loss_minima"] > 0
        assert result == json.loads((home / "dg" / "results" / "result.json").read_text())
        assert len(result["minima"]) == 3 and len(result["mst"]) == 2

    return made_once(tmp_path_factory, "digits-home", make) / "dg"


@pytest.fixture(scope="session")
def bezier_session(tmp_path_factory, digits_minima, digits_schedule) -> Path:
    """The folder of a finished Bezier session over ``digits_minima``, aligned first, at half
    the tiny schedule's budget. Read only (the method tests report it, the app tests show it)."""

    def make(home: Path) -> None:
        # headless: --json would also evaluate a Table 1 row that nothing here reads
        done = nebtui(home, *digits_args(digits_minima, digits_schedule), "--scale", "0.5", "--method", "bezier",
                      "--align", "--headless", "--session", "bz")
        assert done.returncode == 0, done.stderr
        assert len(json.loads((home / "bz" / "results" / "result.json").read_text())["mst"]) == 2

    return made_once(tmp_path_factory, "bezier-home", make) / "bz"
