"""Messages from the app's workers to the app, named for what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from sessions.disk.eventlog import LoggedEvent


@dataclass
class EventsRead(Message):
    """New events from the source, in log order."""

    events: list[LoggedEvent]


@dataclass
class SourceFailed(Message):
    """The source raised while polling; the reader keeps trying."""

    error: str


@dataclass
class StatusProbed(Message):
    """The session's status from facts (lock, heartbeat, log)."""

    status: str
    pid: int | None


@dataclass
class ControlAnswered(Message):
    """The runner answered a command."""

    command: str
    reply: dict[str, Any]


@dataclass
class ControlFailed(Message):
    """A command did not reach the runner or was refused."""

    command: str
    error: str
