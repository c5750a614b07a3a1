"""A small character plot for the panes: series of points, lines between them,
horizontal and vertical rules, axis labels. Each series has its own glyph as
well as its own style, so the plot still reads with NO_COLOR. Deterministic:
the same data and size give the same text."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.text import Text

LABEL_WIDTH = 9  # characters left of the axis for the y tick labels


def tick(value: float) -> str:
    """A y tick label that fits LABEL_WIDTH - 1 characters."""
    text = f"{value:.4g}"
    return text if len(text) < LABEL_WIDTH else f"{value:.2e}"


@dataclass
class Plot:
    """A plot of ``width`` x ``height`` cells (labels included) over the given data ranges."""

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_labels: tuple[str, str] = ("", "")
    y_format: object = tick  # value -> label text
    _cells: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)  # (row, col) -> (glyph, style)
    _notes: list[tuple[int, str, str]] = field(default_factory=list)  # (row, text, style), right-aligned

    @property
    def columns(self) -> int:
        return max(1, self.width - LABEL_WIDTH - 1)

    @property
    def rows(self) -> int:
        return max(1, self.height - 1)  # the last line holds the x labels

    def column(self, x: float) -> int:
        low, high = self.x_range
        span = high - low or 1.0
        return min(self.columns - 1, max(0, round((x - low) / span * (self.columns - 1))))

    def row(self, y: float) -> int:
        low, high = self.y_range
        span = high - low or 1.0
        return min(self.rows - 1, max(0, round((high - y) / span * (self.rows - 1))))

    def put(self, row: int, col: int, glyph: str, style: str) -> None:
        self._cells[(row, col)] = (glyph, style)

    def points(self, xs: list[float], ys: list[float], glyph: str, style: str = "") -> None:
        for x, y in zip(xs, ys):
            if math.isfinite(y):
                self.put(self.row(y), self.column(x), glyph, style)

    def line(self, xs: list[float], ys: list[float], glyph: str, style: str = "") -> None:
        """The curve through (xs, ys) (xs ascending), one glyph per column, linearly interpolated."""
        if not xs:
            return
        for col in range(self.column(xs[0]), self.column(xs[-1]) + 1):
            low, high = self.x_range
            x = low + (high - low) * col / max(1, self.columns - 1)
            y = _interpolate(xs, ys, x)
            if math.isfinite(y):
                self.put(self.row(y), col, glyph, style)

    def steps(self, xs: list[float], ys: list[float], glyph: str = "─", style: str = "") -> None:
        """A step function: ys[i] holds from xs[i] to xs[i + 1] (len(xs) == len(ys) + 1)."""
        last_row = None
        for i, y in enumerate(ys):
            row = self.row(y)
            start, end = self.column(xs[i]), self.column(xs[i + 1])
            for col in range(start, max(start + 1, end)):
                self.put(row, col, glyph, style)
            if last_row is not None and last_row != row:
                for r in range(min(last_row, row), max(last_row, row) + 1):
                    self.put(r, start, "│", style)
            last_row = row

    def hline(self, y: float, glyph: str, style: str = "", note: str = "") -> None:
        row = self.row(y)
        for col in range(self.columns):
            if (row, col) not in self._cells:
                self.put(row, col, glyph, style)
        if note:
            self._notes.append((row, note, style))

    def vline(self, x: float, glyph: str, style: str = "") -> None:
        col = self.column(x)
        for row in range(self.rows):
            if (row, col) not in self._cells:
                self.put(row, col, glyph, style)

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        low, high = self.y_range
        label_rows = {0: high, self.rows - 1: low}
        if self.rows >= 5:
            label_rows[(self.rows - 1) // 2] = high - (high - low) * ((self.rows - 1) // 2) / (self.rows - 1)
        notes = {row: (text, style) for row, text, style in self._notes}
        for row in range(self.rows):
            label = self.y_format(label_rows[row]) if row in label_rows else ""  # type: ignore[operator]
            out.append(f"{label:>{LABEL_WIDTH - 1}} ", style="dim")
            out.append("┤" if row in label_rows else "│", style="dim")
            cells = [self._cells.get((row, col), (" ", "")) for col in range(self.columns)]
            if row in notes:  # a note sits at the right end of its rule
                text, style = notes[row]
                text = f" {text}"[: self.columns]
                start = self.columns - len(text)
                cells[start:] = [(ch, style) for ch in text]
            for glyph, style in cells:
                out.append(glyph, style=style or None)
            out.append("\n")
        left, right = self.x_labels
        gap = max(1, self.columns + 1 - len(left) - len(right))
        out.append(" " * LABEL_WIDTH + left + " " * gap + right, style="dim")
        return out


def _interpolate(xs: list[float], ys: list[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    lo, hi = 0, len(xs) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    span = xs[hi] - xs[lo]
    if span <= 0:
        return ys[lo]
    t = (x - xs[lo]) / span
    return ys[lo] * (1 - t) + ys[hi] * t
