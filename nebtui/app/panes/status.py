"""The status line: running / paused / stopped / crashed / finished, devices,
the pair in flight, pivots, elapsed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from nebtui.app.panes.base import clock_text

STATUS_STYLES = {
    "running": "bold green", "paused": "bold yellow", "stopped": "bold", "finished": "bold cyan",
    "crashed": "bold red", "failed": "bold red", "unresponsive": "bold red", "starting": "dim",
}


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    plain = ""  # the text shown now
    _spans: list = []

    def show(self, *, status: str, session_id: str, devices: list[str], pivots: int | None, pair: tuple | None,
             elapsed: float, read_only: bool, pending: str | None, phase: str | None = None) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"● {status.upper()}", style=STATUS_STYLES.get(status, "bold"))
        if phase:  # what the runner does until the first step, with its time so far
            line.append(f"  {phase}", style="italic")
        line.append(f"  {session_id}")
        line.append(f"  {', '.join(devices) or 'no device yet'}")
        if pair is not None:
            line.append(f"  pair {pair}")
        if pivots is not None:
            line.append(f"  {pivots} pivots")
        line.append(f"  elapsed {clock_text(elapsed)}")
        if pending:
            line.append(f"  {pending}…", style="italic")
        if read_only:
            line.append("  read-only", style="dim")
        if line.plain != self.plain or line.spans != self._spans:
            self.plain, self._spans = line.plain, line.spans
            self.update(line)
