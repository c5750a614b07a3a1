"""Files nebtui writes where others may write too (the lock, a training claim, the event
log) are never opened through a symbolic link or a hard link planted there: the
operation is refused in one line naming the file, and the file the link points at is
left exactly as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_runs import assert_one_clear_line, in_process
from sessions.errors import SessionError
from sessions.disk.eventlog import EventLogWriter
from sessions.disk.lock import RunnerLock, holder

PRECIOUS = b"a file of the user's, without a final newline"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the folder, which a planted link points at."""
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "shared"
    path.mkdir()
    return path


def untouched(path: Path) -> bool:
    return path.read_bytes() == PRECIOUS


def test_a_symbolic_link_at_the_lock_is_refused_and_its_target_kept(folder, victim):
    (folder / "lock").symlink_to(victim)
    with pytest.raises(SessionError, match=f"the lock {folder / 'lock'} is a symbolic link") as caught:
        RunnerLock(folder / "lock").acquire()
    assert "\n" not in str(caught.value)
    assert untouched(victim)
    assert holder(folder / "lock") is None


def test_a_hard_link_at_the_lock_is_refused_and_its_target_kept(folder, victim):
    os.link(victim, folder / "lock")
    with pytest.raises(SessionError, match=f"the lock {folder / 'lock'} is a hard link"):
        RunnerLock(folder / "lock").acquire()
    assert untouched(victim)


def test_a_symbolic_link_at_the_event_log_is_refused_and_its_target_kept(folder, victim):
    (folder / "events.jsonl").symlink_to(victim)
    with pytest.raises(SessionError, match=f"the event log {folder / 'events.jsonl'} is a symbolic link"):
        EventLogWriter(folder / "events.jsonl")
    assert untouched(victim)


def test_a_symbolic_link_at_a_training_claim_is_refused_in_one_line_and_its_target_kept(folder, victim):
    (folder / ".minimum-00.lock").symlink_to(victim)
    done = in_process("train", "--model", "mlp", "--data", "digits", "--count", "1", "--scale", "0.01",
                      "--out", str(folder))
    assert_one_clear_line(done, f"the lock {folder / '.minimum-00.lock'} is a symbolic link")
    assert untouched(victim)
    assert not (folder / "minimum-00.safetensors").exists()
