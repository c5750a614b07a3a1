"""Following a session from the terminal without the app: replay its event log,
then print new events as they come, until it ends or its runner dies.

Its imports are made where they are used: the CLI imports this module for every
command, and the session view (with the schedule's pydantic model behind it) was
most of the CLI's start."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nebtui.progress import ProgressPrinter
    from sessions.disk.folder import SessionFolder
    from sessions.view import SessionView

ENDED = ("finished", "stopped", "failed")


def follow(folder: SessionFolder, printer: ProgressPrinter, poll: float = 0.1) -> SessionView:
    """Print the session's events until it has ended (or its runner is gone);
    returns the replayed view. Ctrl-C (KeyboardInterrupt) passes to the caller."""
    from sessions.disk.eventlog import EventLogReader
    from sessions.disk.lock import holder
    from sessions.view import SessionView

    view = SessionView()
    with EventLogReader(folder.events_path) as reader:

        def catch_up() -> None:
            for entry in reader.poll():
                view.apply(entry)
                printer(entry.event, view)

        last_check = 0.0
        while True:
            catch_up()
            now = time.monotonic()
            if view.lifecycle in ENDED or now - last_check > 1.0:
                last_check = now
                if holder(folder.lock_path) is None:
                    catch_up()  # what the runner wrote just before it left
                    return view
            time.sleep(poll)


def read_result(folder: SessionFolder) -> dict[str, Any] | None:
    path = folder.results_path / "result.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())
