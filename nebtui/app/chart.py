"""The panes' plots, drawn by plotext: series of points, curves through them,
step functions, horizontal and vertical rules, tick labels.

Each series has its own glyph as well as its own colour, so a plot still reads
with NO_COLOR. Deterministic: the same data and size give the same text.
plotext draws on one shared figure, so building is serialised by a lock (the
app draws on its own thread only, the lock is for anyone else)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    import plotext

_FIGURE_LOCK = threading.Lock()
_STYLES = {"bold", "dim", "italic", "underline"}
_LOADED = threading.Event()  # plotext is imported, whole
LOADING = "plot: loading…"  # what a pane shows in its plot's place until then


def plots_ready() -> bool:
    """plotext has been imported. Until then the panes show ``LOADING`` in their plots'
    place, so that the app's first frame never waits for its import (about 0.3 s)."""
    return _LOADED.is_set()


def load_plots() -> None:
    """Import plotext (the app does it on a thread once its first frame is on screen)."""
    import plotext  # noqa: F401

    _LOADED.set()


def tick(value: float) -> str:
    """A y tick label of at most 8 characters."""
    text = f"{value:.4g}"
    return text if len(text) <= 8 else f"{value:.2e}"


def pixel(style: str) -> plotext.pixel:
    """A rich-like style ("bold yellow", "dim") as a plotext pixel."""
    import plotext

    words = style.split()
    colours = [w for w in words if w not in _STYLES]
    effects = [w for w in words if w in _STYLES]
    return plotext.pixel(colours[0] if colours else None, style=effects[0] if effects else None)


@dataclass
class _Series:
    xs: list[float]
    ys: list[float]
    glyph: str
    style: str
    connected: bool


@dataclass
class Chart:
    """A plot of ``width`` x ``height`` cells (frame, ticks and labels included)
    over the given data ranges. Series are drawn in the order they are added,
    later ones on top."""

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_label: str = ""
    x_ticks: tuple[tuple[float, str], ...] = ()  # (position, label); default: the range's ends
    y_format: object = tick  # value -> tick label
    _series: list[_Series] = field(default_factory=list)
    _notes: list[tuple[float, float, str]] = field(default_factory=list)  # (x, y, text), right-aligned at x

    def points(self, xs: list[float], ys: list[float], glyph: str, style: str = "") -> None:
        self._add(xs, ys, glyph, style, connected=False)

    def line(self, xs: list[float], ys: list[float], glyph: str, style: str = "") -> None:
        """The curve through (xs, ys), xs ascending."""
        self._add(xs, ys, glyph, style, connected=True)

    def steps(self, edges: list[float], ys: list[float], style: str = "") -> None:
        """A step function: ys[i] holds from edges[i] to edges[i + 1] (len(edges) == len(ys) + 1),
        drawn with horizontal rules joined by vertical ones."""
        for i, y in enumerate(ys):
            if i and ys[i - 1] != y:
                self._add([edges[i], edges[i]], [ys[i - 1], y], "│", style, connected=True)
            self._add([edges[i], edges[i + 1]], [y, y], "─", style, connected=True)

    def hline(self, y: float, glyph: str, style: str = "", note: str = "") -> None:
        self._add(list(self.x_range), [y, y], glyph, style, connected=True)
        if note:
            self._notes.append((self.x_range[1], y, note))

    def vline(self, x: float, glyph: str, style: str = "") -> None:
        self._add([x, x], list(self.y_range), glyph, style, connected=True)

    def _add(self, xs: list[float], ys: list[float], glyph: str, style: str, connected: bool) -> None:
        kept = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
        if kept:
            self._series.append(_Series([x for x, _ in kept], [y for _, y in kept], glyph, style, connected))

    def render(self) -> Text:
        import plotext  # here, not at the top: 0.3 s the app's first paint need not wait for

        _LOADED.set()
        with _FIGURE_LOCK:
            figure = plotext.figure
            plotext.terminal.limit(False, False)  # the pane, not the terminal, sets the size
            figure.clear()
            figure.theme("simple")
            figure.plot_size(max(10, self.width), max(5, self.height))
            for series in self._series:
                signal = figure.signal(series.xs, series.ys, marker=plotext.marker(series.glyph, pixel=pixel(series.style)))
                if series.connected and len(series.xs) > 1:
                    signal.lines()
                    signal.density("full")
                figure.draw(signal)
            for x, y, text in self._notes:
                figure.draw(figure.text(x, y, text, alignment="right"))
            x_low, x_high = self.x_range
            y_low, y_high = self.y_range
            if y_high <= y_low:
                y_low, y_high = y_low - 0.5, y_high + 0.5
            figure.ruler("x").lim(x_low, x_high if x_high > x_low else x_low + 1.0)
            figure.ruler("y").lim(y_low, y_high)
            ticks = self.x_ticks or ((x_low, f"{x_low:g}"), (x_high, f"{x_high:g}"))
            figure.ruler("x").ticks([p for p, _ in ticks], [label for _, label in ticks])
            rows = [y_low, (y_low + y_high) / 2, y_high] if self.height >= 9 else [y_low, y_high]
            figure.ruler("y").ticks(rows, [self.y_format(v) for v in rows])  # type: ignore[operator]
            if self.x_label:
                figure.label(self.x_label, axis="x")
            built = figure.build().string()
            figure.clear()
        text = Text.from_ansi(built.rstrip("\n"), no_wrap=True, overflow="crop")
        return text
