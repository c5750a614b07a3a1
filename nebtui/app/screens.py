"""Dialogs of the session app."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmStop(ModalScreen[bool]):
    """Asks before stopping a session: True to stop."""

    DEFAULT_CSS = """
    ConfirmStop {
        align: center middle;
    }
    ConfirmStop > Vertical {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    ConfirmStop Label {
        width: 100%;  /* wrapped to the dialog: a long session id or a narrow screen cuts nothing */
    }
    ConfirmStop Horizontal {
        height: auto;
        margin-top: 1;
    }
    ConfirmStop Button {
        margin-right: 2;
    }
    """
    BINDINGS = [
        Binding("y", "confirm", "Stop the session", id="confirm-stop"),
        Binding("n,escape", "cancel", "Keep it running", id="cancel-stop"),
    ]

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Stop session {self.session_id}?\n"
                        "The runner writes a checkpoint and ends at the next step boundary.")
            with Horizontal():
                yield Button("Stop (y)", variant="error", id="confirm")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
