"""nebtui: the command line, the terminal app and the reports.

Its rooms: ``cli`` (the commands, and ``options``, ``failure``: the options they share
and the one line a refusal prints); starting a session (``demo``, ``explore``, ``train``,
``launch``, ``startup``); following one without the app (``follow``, ``progress``:
progress lines from events; ``sessions_cmd``: list, show, stop, resume, attach);
``app`` (the Textual app over one session's view) and ``serve`` (the app in a browser);
``report`` (writing a session's or several sessions' analysis as files); ``trust_cmd``
(vouching for a session's code); ``api`` (``nebtui.connect_minima``: minima connected in the
caller's own process, from Python). It imports sessions and engine, never the other way.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["connect_minima"]


def __getattr__(name: str) -> Any:
    """``nebtui.connect_minima``, imported on first use: ``import nebtui`` stays light (no torch)."""
    if name == "connect_minima":
        from nebtui.api import connect_minima

        return connect_minima
    raise AttributeError(f"module 'nebtui' has no attribute {name!r}")
