"""Pick a session when none is given: a table of the sessions under the data home.
The table lists the sessions at once; their status and pairs are read from their logs
on a worker thread and filled in as they come (a long log never delays the first frame)."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from sessions.disk.folder import SessionError, SessionFolder, list_sessions
from sessions.view import listing_view, method_text, summary

COLUMNS = ("session", "status", "problem", "method", "pairs", "created")


class SessionListApp(App[SessionFolder | None]):
    """Lists the sessions under ``home``; Enter returns the chosen one, q returns None."""

    TITLE = "nebtui sessions"
    BINDINGS = [
        Binding("enter", "attach", "Attach", id="attach", priority=True),
        Binding("q,escape", "quit_picker", "Quit", id="quit-picker"),
    ]
    DEFAULT_CSS = """
    #heading { height: 1; padding: 0 1; background: $panel; }
    DataTable { height: 1fr; }
    """

    def __init__(self, home: Path, driver_class: type | None = None) -> None:
        super().__init__(driver_class=driver_class)  # nebtui serve hands the browser tab to the session's app
        self.home = Path(home)
        self.folders: list[SessionFolder] = []

    def compose(self) -> ComposeResult:
        # the keys first: a deep data home is cut at the screen's edge
        yield Static(f"Enter attaches · sessions in {self.home}", id="heading")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        columns = table.add_columns(*COLUMNS)
        errors: list[SessionError] = []
        self.folders = list_sessions(self.home, errors)
        for folder in reversed(self.folders):  # newest first
            table.add_row(folder.id, "…", *[""] * (len(COLUMNS) - 2), key=folder.id)
        if not self.folders:
            self.query_one("#heading", Static).update(
                f"no sessions yet: start one with nebtui demo muller-brown (q quits) · data home {self.home}")
        table.focus()
        self._read_summaries(list(reversed(self.folders)), dict(zip(COLUMNS, columns)))

    @work(thread=True, group="summaries", exclusive=True, exit_on_error=False, name="session summaries")
    def _read_summaries(self, folders: list[SessionFolder], columns: dict[str, object]) -> None:
        for folder in folders:
            try:
                facts = summary(folder, listing_view(folder))
            except SessionError as error:
                cells = {"status": "unreadable", "problem": str(error)[:40]}
            else:
                cells = {"status": facts["status"], "problem": str(facts["problem"]),
                         "method": method_text(facts["method"], facts["align"], facts.get("alignment")),
                         "pairs": f"{facts['pairs_done']}/{facts['pairs_total']}", "created": facts["created"]}
            self.call_from_thread(self._fill_row, folder.id, {columns[name]: value for name, value in cells.items()})

    def _fill_row(self, row: str, cells: dict[object, str]) -> None:
        table = self.query_one(DataTable)
        for column, value in cells.items():
            table.update_cell(row, column, value, update_width=True)

    def action_attach(self) -> None:
        table = self.query_one(DataTable)
        if not self.folders or table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        chosen = next((f for f in self.folders if f.id == key), None)
        self.exit(chosen)

    def action_quit_picker(self) -> None:
        self.exit(None)
