"""Every test gets its own data home, so sessions never leak between tests or
into the user's real one."""

from __future__ import annotations

import os

import pytest

# Before torch is imported anywhere: OpenMP threads that sleep while they wait.
# Spinning threads made torch 30-100x slower on this 2-core machine whenever a
# runner or worker process ran beside the tests (see sessions.spawn).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def nebtui_home(tmp_path, monkeypatch):
    home = tmp_path / "nebtui-home"
    monkeypatch.setenv("NEBTUI_HOME", str(home))
    return home
