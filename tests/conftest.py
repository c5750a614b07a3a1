"""Every test gets its own data home, so sessions never leak between tests or
into the user's real one."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def nebtui_home(tmp_path, monkeypatch):
    home = tmp_path / "nebtui-home"
    monkeypatch.setenv("NEBTUI_HOME", str(home))
    return home
