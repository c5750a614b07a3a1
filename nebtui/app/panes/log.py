"""The log: events in words (nebtui.progress.describe), errors highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from nebtui.app.model import LOG_LINES, SessionModel

STYLES = {"error": "bold red", "warning": "yellow", "info": ""}
MARKS = {"error": "!! ", "warning": "!  ", "info": ""}  # errors stand out with NO_COLOR too


class LogPane(RichLog):
    DEFAULT_CSS = """
    LogPane {
        border: round $secondary 50%;
        height: 1fr;
        background: $surface;
    }
    LogPane:focus {
        border: round $accent;
    }
    """

    def __init__(self, model: SessionModel, *, id: str = "log") -> None:
        super().__init__(id=id, classes="pane", max_lines=LOG_LINES, wrap=True, markup=False, auto_scroll=True,
                         min_width=20)  # wrap at the pane's width, not at 78 columns
        self.model = model
        self.border_title = "log"
        self.written = 0  # model.log_count when last synced

    def sync(self) -> None:
        new = self.model.log_count - self.written
        if new <= 0:
            return
        lines = list(self.model.log)[-min(new, len(self.model.log)):]
        self.written = self.model.log_count
        for line in lines:
            self.write(Text(MARKS[line.level] + line.text, style=STYLES[line.level]))
