"""Pick a session when none is given: a table of the sessions under the data home."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from sessions.folder import SessionError, SessionFolder, list_sessions
from sessions.view import summary


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
        yield Static(f"sessions in {self.home}: Enter attaches", id="heading")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("session", "status", "problem", "pairs", "created")
        errors: list[SessionError] = []
        self.folders = list_sessions(self.home, errors)
        for folder in reversed(self.folders):  # newest first
            try:
                facts = summary(folder)
            except SessionError as error:
                table.add_row(folder.id, "unreadable", str(error)[:40], "", "", key=folder.id)
                continue
            table.add_row(folder.id, facts["status"], str(facts["problem"]),
                          f"{facts['pairs_done']}/{facts['pairs_total']}", facts["created"], key=folder.id)
        if not self.folders:
            self.query_one("#heading", Static).update(
                f"no sessions in {self.home}: start one with nebtui demo muller-brown (q quits)")
        table.focus()

    def action_attach(self) -> None:
        table = self.query_one(DataTable)
        if not self.folders or table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        chosen = next((f for f in self.folders if f.id == key), None)
        self.exit(chosen)

    def action_quit_picker(self) -> None:
        self.exit(None)
