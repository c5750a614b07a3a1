"""What every pane shares: it draws from the model, and only when the model changed."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from nebtui.app.model import SessionModel
from nebtui.progress import clock_text  # noqa: F401 - the panes' clock format


class Pane(Widget, can_focus=True):
    """A focusable pane redrawn by ``sync`` (called on the app's redraw timer)."""

    DEFAULT_CSS = """
    Pane {
        border: round $secondary 50%;
        padding: 0 1;
        height: 1fr;
    }
    Pane:focus {
        border: round $accent;
    }
    """

    def __init__(self, model: SessionModel, *, title: str, id: str) -> None:
        super().__init__(id=id, classes="pane")
        self.model = model
        self.border_title = title
        self.drawn = -1  # the model version drawn last
        self._cache: tuple[object, Text] | None = None

    def sync(self) -> None:
        if self.drawn != self.model.version:
            self.drawn = self.model.version
            self.refresh()

    def render(self) -> Text:
        key = (self.model.version, self.content_size, self.render_key())
        if self._cache is None or self._cache[0] != key:
            width = self.content_size.width
            text = self.draw(width, self.content_size.height)
            lines = text.split("\n", allow_blank=True)
            for line in lines:  # never wrapped: a line wider than the pane ends in an ellipsis
                line.truncate(width, overflow="ellipsis")
            text = Text("\n").join(lines)
            text.no_wrap, text.overflow = True, "ellipsis"
            self._cache = (key, text)
        return self._cache[1]

    def render_key(self) -> object:
        """Extra state the drawing depends on (besides the model and the size)."""
        return None

    def draw(self, width: int, height: int) -> Text:
        raise NotImplementedError
