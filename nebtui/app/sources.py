"""What feeds the app from a real session folder: the event source (the log
reader), the control client (the runner's socket) and the status probe
(lock + heartbeat). Tests hand the app fakes with the same small shapes."""

from __future__ import annotations

from typing import Any, Protocol

from sessions.disk.control import ControlError, send_command
from sessions.disk.eventlog import EventLogReader, LoggedEvent
from sessions.disk.folder import SessionFolder
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
    """A session folder's log, read once, and its status from facts.

    ``poll`` is the app's event source (thinned by ``keep_steps``, see EventLogReader);
    ``view`` is the session's one SessionView, handed to the app, which reduces every
    event it polls into it (on its own thread); ``status`` is ``(status, pid)`` from the
    lock, the heartbeat and that view's lifecycle. The app asks for the status once the
    view holds every event polled so far, so both agree (see SessionApp's reader)."""

    def __init__(self, folder: SessionFolder, keep_steps: int = 0) -> None:
        self.folder = folder
        self.reader = EventLogReader(folder.events_path, keep_steps=keep_steps)
        self.view = SessionView()

    def poll(self) -> list[LoggedEvent]:
        return self.reader.poll()

    def status(self) -> tuple[str, int | None]:
        return status(self.folder, self.view)

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
