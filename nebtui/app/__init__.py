"""The live terminal app (Textual). Only this package imports textual.

Entry points for the CLI: ``run_app(folder)`` follows one session;
``pick_and_run(home)`` lists the sessions, then follows the chosen one.
"""

from __future__ import annotations

from pathlib import Path

from nebtui.app.app import SessionApp
from nebtui.app.model import RATE_WINDOW
from nebtui.app.picker import SessionListApp
from nebtui.app.sources import FolderFeed, FolderStatus, SocketControl
from sessions.disk.folder import SessionError, SessionFolder
from sessions.view import SessionView, summary


def build_app(folder: SessionFolder) -> SessionApp:
    """The app on a real session: its log replayed from the start, its control socket,
    its status from the lock and heartbeat, its method and schedule from config.json."""
    config = folder.config()
    try:
        facts = summary(folder, SessionView())
        pairs_total, minima_total = facts["pairs_total"] or None, facts["minima"] or None
    except SessionError:
        pairs_total = minima_total = None
    # thinned: of a long run of steps, the model needs a pair's first and last few only
    feed = FolderFeed(folder, keep_steps=RATE_WINDOW + 1)
    return SessionApp(
        feed,
        SocketControl(folder.control_socket_path),
        session_id=folder.id,
        config=config,
        status_probe=FolderStatus(feed),
        pairs_total=pairs_total,
        minima_total=minima_total,
        exporter=lambda: export_report(folder),
        view=feed.view,  # the app reduces the events it polls into it; the status probe reads it
    )


def export_report(folder: SessionFolder, timeout: float = 1800.0) -> str:
    """Write the session's report with `nebtui report` in a child process (the app's
    event loop never waits on it); returns the report folder, raises with its last line."""
    import subprocess
    import sys

    out = folder.results_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "nebtui.report", folder.id, "--out", str(out)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"nebtui report exited with {done.returncode}")
    return str(out)


def run_app(folder: SessionFolder) -> None:
    """Follow the session in the terminal until the user detaches (q); the run goes on."""
    app = build_app(folder)
    try:
        app.run()
    finally:
        app.source.close()  # type: ignore[attr-defined]
        app.status_probe.close()  # type: ignore[union-attr]


def pick_and_run(home: Path) -> None:
    """``nebtui`` alone: pick a session under ``home``, then follow it."""
    chosen = SessionListApp(home).run()
    if chosen is not None:
        run_app(chosen)


__all__ = ["SessionApp", "SessionListApp", "build_app", "run_app", "pick_and_run"]
