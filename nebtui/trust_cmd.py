"""``nebtui sessions trust``: vouch for the model factory a session names, so that it may run."""

from __future__ import annotations

from typing import Annotated

import typer

from nebtui.failure import fail
from nebtui.sessions_cmd import SessionId, _open


def trust(
    session_id: SessionId,
    factory: Annotated[str, typer.Argument(help="The package.module:factory the session names, typed out: only a "
                                                "factory you typed is ever imported.", show_default=False)],
) -> None:
    """Let a session import its model or data factory: for a session folder from elsewhere whose code you trust."""
    from sessions.errors import SessionError
    from sessions.problem.trust import vouch_for

    folder = _open(session_id)
    try:
        vouch_for(folder, factory)
    except SessionError as error:
        fail(str(error))
    print(f"session {session_id} may import {factory}: continue it with nebtui sessions resume {session_id}, "
          f"or write its report with nebtui report {session_id}")
