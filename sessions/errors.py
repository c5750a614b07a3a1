"""The one error kind of sessions/: a problem the user can fix."""

from __future__ import annotations


class SessionError(Exception):
    """A session problem the user can fix; the message is one line: what is wrong and what to do."""
