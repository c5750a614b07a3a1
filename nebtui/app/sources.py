"""What feeds the app from a real session folder: the event source (the log
reader), the control client (the runner's socket) and the status probe
(lock + heartbeat). Tests hand the app fakes with the same small shapes."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from sessions.control import ControlError, send_command
from sessions.eventlog import EventLogReader, LoggedEvent
from sessions.folder import SessionFolder
from sessions.view import SessionView, status

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


class FolderFeed:
    """A session folder's log, read once for both the app's events and its status.

    ``poll`` is the app's event source (thinned by ``keep_steps``, see EventLogReader);
    ``status`` is ``(status, pid)`` from facts: the lock, the heartbeat and the lifecycle
    the same events give. One read of a long log serves both: a second reader of the same
    file doubled the GIL-bound reading an attach waits on."""

    def __init__(self, folder: SessionFolder, keep_steps: int = 0) -> None:
        self.folder = folder
        self.reader = EventLogReader(folder.events_path, keep_steps=keep_steps)
        self.view = SessionView()
        self._unread: list[Any] = []  # read for the status, not yet handed to the app
        self._lock = threading.Lock()

    def poll(self) -> list[LoggedEvent]:
        with self._lock:
            self._catch_up()
            events, self._unread = self._unread, []
        return events

    def status(self) -> tuple[str, int | None]:
        with self._lock:
            state, pid = status(self.folder, self.view)
            if state == "crashed":  # the runner may have written its last events and left just now
                self._catch_up()
                state, pid = status(self.folder, self.view)
        return state, pid

    def _catch_up(self) -> None:
        new = self.reader.poll()
        for entry in new:
            self.view.apply(entry)
        self._unread.extend(new)

    def close(self) -> None:
        self.reader.close()


class FolderStatus:
    """``() -> (status, pid)`` of a FolderFeed: the app's status probe. Closing it closes
    the feed (either may be closed first, or both)."""

    def __init__(self, feed: FolderFeed) -> None:
        self.feed = feed

    def __call__(self) -> tuple[str, int | None]:
        return self.feed.status()

    def close(self) -> None:
        self.feed.close()


__all__ = ["ControlError", "EventSource", "Control", "SocketControl", "FolderFeed", "FolderStatus"]
