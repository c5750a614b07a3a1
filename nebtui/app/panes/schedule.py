"""The schedule: its cycles grouped in phases, where the run stands (cycle,
step, elapsed, ETA for the pair and the session at the measured step rate),
and the lr over the whole schedule as a step plot with a marker at now."""

from __future__ import annotations

import math

from rich.text import Text

from nebtui.app.model import CycleRow
from nebtui.app.panes.base import Pane, clock_text
from nebtui.app.chart import LOADING, Chart, plots_ready


def phases(rows: list[CycleRow]) -> list[tuple[int, int, CycleRow]]:
    """Runs of equal cycles: (first number, last number, the cycle)."""
    out: list[tuple[int, int, CycleRow]] = []
    for row in rows:
        if out and _same(out[-1][2], row):
            out[-1] = (out[-1][0], row.number, out[-1][2])
        else:
            out.append((row.number, row.number, row))
    return out


def _same(a: CycleRow, b: CycleRow) -> bool:
    return (a.steps, a.lr, a.optimiser, a.optimiser_args, a.batch_size, a.insert, a.climb) == (
        b.steps, b.lr, b.optimiser, b.optimiser_args, b.batch_size, b.insert, b.climb)


def optimiser_text(row: CycleRow) -> str:
    args = ",".join(f"{k}={v}" for k, v in sorted(row.optimiser_args.items()))
    return f"{row.optimiser}({args})" if args else row.optimiser


def fitted(parts: list[str], width: int) -> list[Text]:
    """The parts joined by " · ", on as few lines as fit ``width``: a narrow pane (the right
    column at 120 columns) shows every value whole rather than cutting the last one."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return [Text(line, no_wrap=True, overflow="ellipsis") for line in lines]


FULL_ROW = 60  # characters of a cycle row with the optimiser in its own column


def cycle_table(runs: list[tuple[int, int, CycleRow]], current: int | None, width: int) -> list[Text]:
    """The schedule's phases, one row each, the current one marked; narrower than a full row,
    each phase's optimiser goes on a line of its own under it, so nothing is cut."""
    wide = width >= FULL_ROW
    head = (f"  {'cycles':<6} {'steps':>6} {'lr':>8}  {'optimiser':<18} {'ins':<3} {'batch':>5} climb" if wide
            else f"  {'cycles':<6} {'steps':>5} {'lr':>7} {'ins':<3} {'batch':>5} climb")
    lines = [Text(head, style="bold", no_wrap=True, overflow="ellipsis")]
    for first, last, row in runs:
        here = current is not None and first <= current <= last
        numbers = f"{first}" if first == last else f"{first}-{last}"
        batch = "-" if row.batch_size is None else str(row.batch_size)
        ins, climb = ("yes" if row.insert else "no"), ("yes" if row.climb else "no")
        mark, style = ("▶" if here else " "), ("reverse" if here else "")
        if wide:
            text = (f"{mark} {numbers:<6} {row.steps:>6} {row.lr:>8.2g}  {optimiser_text(row):<18.18} {ins:<3} "
                    f"{batch:>5} {climb}")
            lines.append(Text(text, style=style, no_wrap=True, overflow="ellipsis"))
        else:
            text = f"{mark} {numbers:<6} {row.steps:>5} {row.lr:>7.2g} {ins:<3} {batch:>5} {climb}"
            lines.append(Text(text, style=style, no_wrap=True, overflow="ellipsis"))
            lines.append(Text(f"  {optimiser_text(row)}", style="dim", no_wrap=True, overflow="ellipsis"))
    return lines


class SchedulePane(Pane):
    def __init__(self, model, *, id: str = "schedule") -> None:
        super().__init__(model, title="schedule", id=id)
        self.elapsed = 0.0  # set by the app from its clock before each redraw

    def render_key(self) -> object:
        return (int(self.elapsed), plots_ready())

    def draw(self, width: int, height: int) -> Text:
        model = self.model
        trace = model.shown_pair()
        lines: list[Text] = [*self._now_lines(width), *self._eta_lines(width)]
        rows = model.schedule
        if not rows:
            lines.append(Text("schedule unknown (no config): cycles show as they start", style="dim"))
            return Text("\n").join(lines)
        current = trace.cycle if trace is not None and not trace.finished else None
        lines += cycle_table(phases(rows), current, width)
        used = sum(1 + line.plain.count("\n") for line in lines)
        if height - used >= 5 and width >= 30:
            lines.append(self._lr_plot(rows, width, height - used) if plots_ready() else Text(LOADING, style="dim"))
        return Text("\n").join(lines)

    def _now_lines(self, width: int) -> list[Text]:
        trace = self.model.shown_pair()
        rate = self.model.rate.rate
        if trace is None:
            where = ["now: no cycle yet"]
        elif trace.finished:
            where = [f"now: pair {trace.pair} finished"]
        else:
            where = [f"now: pair {trace.pair} cycle {trace.cycle}/{trace.cycles} step {trace.step}/{trace.steps}"]
        return fitted([*where, *([f"{rate:.3g} steps/s"] if rate else [])], width)

    def _eta_lines(self, width: int) -> list[Text]:
        pair_eta, session_eta = self.model.eta()
        session = f"≤ {clock_text(session_eta)}" if session_eta is not None else "-"
        return fitted([f"elapsed {clock_text(self.elapsed)}", f"ETA pair {clock_text(pair_eta)}", f"session {session}"],
                      width)

    def _lr_plot(self, rows: list[CycleRow], width: int, height: int) -> Text:
        edges = [0.0]
        for row in rows:
            edges.append(edges[-1] + row.steps)
        lrs = [math.log10(row.lr) for row in rows]
        low, high = min(lrs), max(lrs)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        plot = Chart(width, height, (0.0, edges[-1]), (low, high), x_label="step (lr on a log scale)",
                     x_ticks=((0.0, "0"), (edges[-1], str(int(edges[-1])))), y_format=lambda y: f"{10 ** y:.2g}")
        plot.steps(edges, lrs, "cyan")
        trace = self.model.shown_pair()
        if trace is not None and not trace.finished:
            plot.vline(self.model.steps_done(trace), "┃", "bold yellow")
        return plot.render()
