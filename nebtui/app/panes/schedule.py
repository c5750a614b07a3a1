"""The schedule of what runs, where the run stands (cycle, step, elapsed, ETA
for the pair and the session at the measured step rate), and the lr over the
whole schedule with a marker at now.

AutoNEB: its cycles grouped in phases, the lr a step plot. A curve (Bezier,
polychain): its steps, points of t per step, cycles (stretches of steps each
ending with an evaluation of the curve) and its lr schedule, the lr a curve
over the steps (``CurveSchedule.lr_at``)."""

from __future__ import annotations

import math

from rich.text import Text

from engine.paths.curve_schedule import CurveSchedule
from nebtui.app.model import CycleRow
from nebtui.app.panes.base import Pane, clock_text
from nebtui.progress import span_text
from nebtui.app.chart import LOADING, Chart, plots_ready

LR_SAMPLES = 4  # a curve's lr plot: lr values per column of the pane, at most


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


def optimiser_text(row: CycleRow | CurveSchedule) -> str:
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


def curve_lines(curve: CurveSchedule, current: int | None, width: int) -> list[Text]:
    """A curve's schedule in words, then its cycles, one row each with the lr of its first
    and last steps, the current one marked."""
    batch = "the energy's" if curve.batch_size is None else str(curve.batch_size)
    groups = [  # each on lines of its own
        [f"{curve.kind} curve", f"{curve.steps} steps × {curve.points} points of t",
         f"{curve.gradient_evaluations} gradient evaluations"],
        [optimiser_text(curve), f"batch {batch}", f"weight decay {curve.weight_decay:g}"],
        [f"lr {curve.lr:.2g} for half the steps", f"then linearly to {curve.lr_at(curve.steps):.2g} at 90 %"],
        [f"{curve.cycles} cycles", f"each ends evaluating the curve at {curve.eval_points} t"],
    ]
    lines = [line for parts in groups for line in fitted(parts, width)]
    head = f"  {'cycle':<6} {'steps':>6}  lr first → last"
    lines.append(Text(head, style="bold", no_wrap=True, overflow="ellipsis"))
    first = 0
    for number, end in enumerate(curve.cycle_ends(), start=1):
        here = number == current
        mark, style = ("▶" if here else " "), ("reverse" if here else "")
        lrs = f"{curve.lr_at(first):.2g} → {curve.lr_at(max(first, end - 1)):.2g}"
        lines.append(Text(f"{mark} {number:<6} {end - first:>6}  {lrs}", style=style, no_wrap=True, overflow="ellipsis"))
        first = end
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
        rows, curve = model.schedule, model.curve
        if not rows:
            lines.append(Text("schedule unknown (no config): cycles show as they start", style="dim"))
            return Text("\n").join(lines)
        current = trace.cycle if trace is not None and not trace.finished else None
        lines += curve_lines(curve, current, width) if curve is not None else cycle_table(phases(rows), current, width)
        used = sum(1 + line.plain.count("\n") for line in lines)
        if height - used >= 5 and width >= 30:
            if not plots_ready():
                lines.append(Text(LOADING, style="dim"))
            elif curve is not None:
                lines.append(self._curve_lr_plot(curve, width, height - used))
            else:
                lines.append(self._lr_plot(rows, width, height - used))
        return Text("\n").join(lines)

    def _now_lines(self, width: int) -> list[Text]:
        model = self.model
        trace = model.shown_pair()
        rate = model.rate.rate
        if trace is None:
            where = ["now: no cycle yet"]
        elif trace.finished:
            where = [f"now: pair {trace.pair} finished"]
        elif model.curve is not None:  # a curve's cycles are stretches of its steps: its step counts first
            where = [f"now: pair {trace.pair} step {model.steps_done(trace)}/{model.pair_steps()}",
                     f"cycle {trace.cycle}/{trace.cycles}"]
        else:
            where = [f"now: pair {trace.pair} cycle {trace.cycle}/{trace.cycles} step {trace.step}/{trace.steps}"]
        return fitted([*where, *([f"{rate:.3g} steps/s"] if rate else [])], width)

    def _eta_lines(self, width: int) -> list[Text]:
        pair_eta, session_eta = self.model.eta()
        session = span_text(*session_eta) if session_eta is not None else "-"
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
        self._now_marker(plot)
        return plot.render()

    def _curve_lr_plot(self, curve: CurveSchedule, width: int, height: int) -> Text:
        """The curve's lr at each step (at most LR_SAMPLES a column), on a log scale."""
        last = curve.steps - 1
        count = min(curve.steps, LR_SAMPLES * width)
        steps = sorted({round(i * last / (count - 1)) for i in range(count)}) if count > 1 else [0]
        lrs = [math.log10(curve.lr_at(step)) for step in steps]
        low, high = min(lrs), max(lrs)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        plot = Chart(width, height, (0.0, curve.steps), (low, high), x_label="step (lr on a log scale)",
                     x_ticks=((0.0, "0"), (curve.steps, str(curve.steps))), y_format=lambda y: f"{10 ** y:.2g}")
        plot.line(steps, lrs, "•", "cyan")
        self._now_marker(plot)
        return plot.render()

    def _now_marker(self, plot: Chart) -> None:
        trace = self.model.shown_pair()
        if trace is not None and not trace.finished:
            plot.vline(self.model.steps_done(trace), "┃", "bold yellow")
