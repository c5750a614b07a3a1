"""A new session's start-up as the CLI sees it. The CLI never imports torch: the
runner checks the model, the data and the minima files, and says so in its
event log (``StartupPhaseStarted``). A failure before the ``evaluating`` phase
is a refusal of what the user asked for: it reaches the user as one line and
exit code 2, as a check in this process would, and the session it never ran
is removed."""

from __future__ import annotations

import time
from typing import Any

from nebtui.failure import fail
from sessions.eventlog import EventLogReader
from sessions.folder import SessionError, SessionFolder
from sessions.lifecycle import CHECKED_PHASES, RunnerStarted, SessionFailed, StartupPhaseStarted
from sessions.lock import holder

REFUSED_CODE = 2  # a problem the runner refused: bad input, as the CLI's own checks
POLL_SECONDS = 0.05
RUNNER_EXIT_SECONDS = 30.0  # a refusing runner closes its pool and leaves: this long at most


def startup_outcome(events: list[Any], state: dict[str, Any]) -> None:
    """Fold events into ``state``: "checked" once the problem was accepted, "refusal" (the
    message) once the runner failed before that."""
    for event in events:
        if isinstance(event, StartupPhaseStarted) and event.phase in CHECKED_PHASES or isinstance(event, RunnerStarted):
            state["checked"] = True
        elif isinstance(event, SessionFailed) and not state.get("checked"):
            state["refusal"] = event.message


def accepted(folder: SessionFolder) -> None:
    """Return once the runner of the new session ``folder`` has accepted its problem (or
    has left without a word: following the session says how). A refusal removes the
    session and exits with its one line."""
    state: dict[str, Any] = {}
    with EventLogReader(folder.events_path) as reader:
        while True:
            startup_outcome([entry.event for entry in reader.poll()], state)
            if state.get("checked"):
                return
            if "refusal" in state:
                refuse(folder, state["refusal"])
            if holder(folder.lock_path) is None:
                startup_outcome([entry.event for entry in reader.poll()], state)  # its last words
                if "refusal" in state:
                    refuse(folder, state["refusal"])
                return
            time.sleep(POLL_SECONDS)


def refuse(folder: SessionFolder, message: str) -> None:
    """The runner refused the problem: remove the session once the runner has left, then
    fail with its message."""
    deadline = time.monotonic() + RUNNER_EXIT_SECONDS
    while holder(folder.lock_path) is not None and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    try:
        folder.remove()
    except (SessionError, OSError):
        pass  # still held: it stays listed as failed, with the same message
    fail(message, code=REFUSED_CODE)


def open_new_session(folder: SessionFolder) -> None:
    """The app on a session whose runner has just started: it paints at once and shows
    the start-up phases; when the runner refuses the problem, it closes by itself and
    the refusal is this process's one line."""
    from nebtui.app import build_app

    app = build_app(folder)
    app.close_on_refusal = True
    try:
        app.read_now()  # its log has a line or two: the first frame says what the runner is doing
        app.run()
    finally:
        app.source.close()  # type: ignore[attr-defined]
        app.status_probe.close()  # type: ignore[union-attr]
    accepted(folder)
    print(f"detached from session {folder.id}: nebtui sessions attach {folder.id} | nebtui sessions show {folder.id}")


def preload_app() -> None:
    """Import the app (textual and the panes) on a thread while this process checks its
    options and waits for the runner to start: the app then paints as soon as the runner
    holds its session. plotext waits until the first frame is on screen (``load_plots``)."""
    import threading

    def load() -> None:
        import nebtui.app  # noqa: F401

    threading.Thread(target=load, name="preload app", daemon=True).start()
