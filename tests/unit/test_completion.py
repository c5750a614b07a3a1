"""Shell completion through Typer's completion entry point, as a shell calls it:
the installed script with _NEBTUI_COMPLETE and the words typed so far."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessions.disk.folder import SessionFolder

NEBTUI = str(Path(sys.executable).with_name("nebtui"))


def complete(home: Path, words: str) -> list[str]:
    """What bash would offer after ``words`` (the last word is the one being completed)."""
    env = {**os.environ, "NEBTUI_HOME": str(home), "_NEBTUI_COMPLETE": "complete_bash",
           "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    done = subprocess.run([NEBTUI], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def sessions(nebtui_home: Path) -> Path:
    nebtui_home.mkdir(parents=True, exist_ok=True)
    for name in ("mb-one", "mb-two", "digits-one"):
        SessionFolder.create(nebtui_home, name, {"problem": {"kind": "surface", "surface": "muller-brown"}})
    return nebtui_home


@pytest.mark.parametrize("command", ["sessions show", "sessions attach", "sessions stop", "sessions rm", "report"])
def test_session_names_complete_for_the_commands_that_take_one(command, sessions):
    assert sorted(complete(sessions, f"nebtui {command} mb")) == ["mb-one", "mb-two"]
    assert sorted(complete(sessions, f"nebtui {command} ")) == ["digits-one", "mb-one", "mb-two"]


def test_commands_complete_and_a_missing_home_completes_nothing(tmp_path):
    assert "sessions" in complete(tmp_path / "none", "nebtui sess")
    assert complete(tmp_path / "none", "nebtui sessions show ") == []
