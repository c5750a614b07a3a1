"""A new session's start-up as the CLI sees it. The CLI never imports torch: the
runner checks the model, the data and the minima files, and says so in its
event log (``StartupPhaseStarted``). A failure before the ``evaluating`` phase
is a refusal of what the user asked for: it reaches the user as one line and
exit code 2, as a check in this process would, and the session it never ran
is removed."""

from __future__ import annotations

import time

from nebtui.failure import fail
from sessions.disk.eventlog import EventLogReader
from sessions.disk.folder import SessionError, SessionFolder
from sessions.disk.lock import holder
from sessions.view import PROGRESS_KINDS, SessionView

REFUSED_CODE = 2  # a problem the runner refused: bad input, as the CLI's own checks
POLL_SECONDS = 0.05
RUNNER_EXIT_SECONDS = 30.0  # a refusing runner closes its pool and leaves: this long at most


def accepted(folder: SessionFolder) -> None:
    """Return once the runner of the new session ``folder`` has accepted its problem (or
    has left without a word: following the session says how). A refusal removes the
    session and exits with its one line."""
    view = SessionView()
    # the steps say nothing of the start-up: counted, never parsed (the app may have followed a long run)
    with EventLogReader(folder.events_path, ignore=PROGRESS_KINDS) as reader:
        while True:
            read_new(reader, view)
            if view.problem_accepted:
                return
            if view.refusal is not None:
                refuse(folder, view.refusal)
            if holder(folder.lock_path) is None:
                read_new(reader, view)  # its last words
                if view.refusal is not None:
                    refuse(folder, view.refusal)
                return
            time.sleep(POLL_SECONDS)


def read_new(reader: EventLogReader, view: SessionView) -> None:
    """What the runner wrote since the last read, into ``view``."""
    for entry in reader.poll():
        view.apply(entry)


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
