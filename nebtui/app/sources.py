"""What feeds the app from a real session folder: the event source (the log
reader), the control client (the runner's socket) and the status probe
(lock + heartbeat). Tests hand the app fakes with the same small shapes."""

from __future__ import annotations

from typing import Any, Protocol

from sessions.control import ControlError, send_command
from sessions.eventlog import EventLogReader, LoggedEvent
from sessions.folder import SessionFolder
from sessions.view import PROGRESS_KINDS, SessionView, status

CONTROL_TIMEOUT = 5.0  # seconds to wait for the runner's answer


class EventSource(Protocol):
    def poll(self) -> list[LoggedEvent]:
        """The events written since the last call; never blocks."""


class Control(Protocol):
    def send(self, command: str) -> dict[str, Any]:
        """The runner's reply; raises an exception with a one-line message on failure."""


class SocketControl:
    """The runner's control socket, with a timeout on every call."""

    def __init__(self, path: Any, timeout: float = CONTROL_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def send(self, command: str) -> dict[str, Any]:
        return send_command(self.path, command, timeout=self.timeout)


class FolderStatus:
    """``() -> (status, pid)`` from facts: the lock, the heartbeat and the log's lifecycle
    events (read by its own reader, so it never waits on the app; it passes over the steps,
    which say nothing of the status, without parsing them)."""

    def __init__(self, folder: SessionFolder) -> None:
        self.folder = folder
        self.view = SessionView()
        self.reader = EventLogReader(folder.events_path, ignore=PROGRESS_KINDS)

    def __call__(self) -> tuple[str, int | None]:
        self._catch_up()
        state, pid = status(self.folder, self.view)
        if state == "crashed":  # the runner may have written its last events and left just now
            self._catch_up()
            state, pid = status(self.folder, self.view)
        return state, pid

    def _catch_up(self) -> None:
        passed = self.reader.passed
        for entry in self.reader.poll():
            self.view.apply(entry)
        self.view.events += self.reader.passed - passed

    def close(self) -> None:
        self.reader.close()


__all__ = ["ControlError", "EventSource", "Control", "SocketControl", "FolderStatus"]
