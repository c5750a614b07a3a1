"""The loss along the current path: the dense profile of the selected cycle,
its pivots, the saddle, the latest step's points where that step took them,
earlier cycles faded, and the linear segment's saddle for comparison.

An AutoNEB band is drawn along its arc length: its step's pivots at the
fractions the step sent (StepEnergies.positions). A curve (Bezier, polychain)
is drawn along its parameter t: each cycle's evaluation at evenly spaced t, its
step's randomly drawn t where they were drawn. A step logged before steps
carried positions is drawn as before: equally spaced, or at the last cycle's
pivot positions when the band is not re-spaced equally.

Log scale plots log10(loss - m + eps), m the lowest loss shown and
eps = 1e-3 of the range shown (losses may be negative on surfaces)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.binding import Binding

from engine.events import CycleFinished
from nebtui.app.chart import LOADING, Chart, plots_ready, tick
from nebtui.app.model import at_an_end
from nebtui.app.panes.base import Pane
from sessions.view import PairProgress

FADED_CYCLES = 3  # earlier cycles drawn faded behind the selected one
EPS_SHARE = 1e-3  # eps of the log scale, as a share of the range shown


def saddle_text(profile: CycleFinished, pair: tuple[int, int], curve: bool = False) -> str:
    """A cycle's saddle in words (a curve's at its t); one at an end of the path is no
    barrier, and is said so."""
    if at_an_end(profile.saddle_position):
        end = pair[0] if profile.saddle_position <= 0.0 else pair[1]
        return (f"no barrier: the highest point ({profile.saddle_energy:.4f}) is minimum {end} itself "
                "(these minima are not minima of this loss, or the path found a lower basin)")
    where = f"t {saddle_t(profile):.3f}" if curve else f"{profile.saddle_position:.3f}"
    return f"saddle {profile.saddle_energy:.4f} at {where}"


def evaluation_t(profile: CycleFinished) -> list[float]:
    """The t of each point of a curve's cycle profile: a curve is evaluated at evenly
    spaced t, ends included (CurveSchedule.eval_points); its event's positions are
    fractions of arc length."""
    count = len(profile.losses)
    return [i / (count - 1) for i in range(count)] if count > 1 else [0.0] * count


def saddle_t(profile: CycleFinished) -> float:
    """The t of a curve profile's highest point (the first, as the engine picks it)."""
    losses = profile.losses
    if not losses:
        return 0.0
    return evaluation_t(profile)[max(range(len(losses)), key=losses.__getitem__)]


class EnergyPane(Pane):
    BINDINGS = [
        Binding("left_square_bracket", "earlier", "Earlier cycle", id="earlier-cycle", show=False),
        Binding("right_square_bracket", "later", "Later cycle", id="later-cycle", show=False),
    ]

    def __init__(self, model, *, id: str = "energy") -> None:
        super().__init__(model, title="energy", id=id)
        self.log_scale = False
        self.selected: int | None = None  # index into the pair's finished cycles; None: follow the newest

    def render_key(self) -> object:
        return (self.log_scale, self.selected, plots_ready())

    def toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self.refresh()

    def action_earlier(self) -> None:
        trace = self.model.shown_pair()
        if trace and trace.profiles:
            index = len(trace.profiles) - 1 if self.selected is None else self.selected
            self.selected = max(0, index - 1)
            self.refresh()

    def action_later(self) -> None:
        trace = self.model.shown_pair()
        if trace and self.selected is not None:
            self.selected = None if self.selected + 1 >= len(trace.profiles) - 1 else self.selected + 1
            self.refresh()

    def draw(self, width: int, height: int) -> Text:
        trace = self.model.shown_pair()
        if trace is None:
            self.border_title = "energy"
            return Text("waiting for the first cycle", style="dim")
        curve = f" · {self.model.method} curve" if self.model.curve_session else ""
        self.border_title = f"energy · pair {trace.pair}{curve}"
        profile = self._profile(trace)
        header = self._header(trace, profile)
        if height < 4 or width < 20:
            return header
        plot = self._plot(trace, profile, width, height - header.plain.count("\n") - 1)
        return Text("\n").join([header, plot]) if plot is not None else header

    def _profile(self, trace: PairProgress) -> CycleFinished | None:
        if not trace.profiles:
            return None
        if self.selected is None or self.selected >= len(trace.profiles):
            return trace.profiles[-1]
        return trace.profiles[self.selected]

    def _header(self, trace: PairProgress, profile: CycleFinished | None) -> Text:
        scale = "log10(loss - min + eps)" if self.log_scale else "linear"
        state = "finished" if trace.finished else f"cycle {trace.cycle}/{trace.cycles} step {trace.step}/{trace.steps}"
        curve = self.model.curve_session
        if curve:  # no restarts, no pivots: each step draws its points of t, each cycle ends evaluating the curve
            first = f"{state} · {trace.pivots} points of t a step · scale {scale} · [ ] cycles"
        else:
            first = f"restart {trace.restart + 1} · {state} · {trace.pivots} pivots · scale {scale} · [ ] cycles"
        parts = []
        if profile is not None:
            which = "latest" if self.selected is None else "selected"
            evaluated = f" (the curve at {len(profile.losses)} t)" if curve else ""
            parts.append(f"{which} cycle {profile.cycle}{evaluated}: " + saddle_text(profile, trace.pair, curve))
        if trace.linear_saddle_energy is not None:
            parts.append(f"linear segment saddle {trace.linear_saddle_energy:.4f}")
        return Text(first + ("\n" + " · ".join(parts) if parts else ""), no_wrap=True, overflow="ellipsis")

    def _plot(self, trace: PairProgress, profile: CycleFinished | None, width: int, height: int) -> Text | None:
        faded = [p for p in trace.profiles if p is not profile and (profile is None or p.cycle < profile.cycle)]
        faded = faded[-FADED_CYCLES:]
        live = trace.live_losses if self.selected is None else None
        live_x = self._live_positions(trace, profile, live)
        values = [v for p in [*faded, profile] if p is not None for v in p.losses]
        values += live or []
        if not values:
            return None
        if not plots_ready():
            return Text(LOADING, style="dim")
        low, high = min(values), max(values)
        linear = trace.linear_saddle_energy
        span = high - low
        if linear is not None and low <= linear <= high + 0.5 * (span or 1.0):
            high = max(high, linear)
        else:
            linear = None  # far above the path: it stays in the header only
        transform, y_range, y_format = self._scale(low, high)
        a, b = trace.pair
        curve = self.model.curve_session
        along = f"t along the {self.model.method} curve" if curve else "arc length"
        plot = Chart(width, height, (0.0, 1.0), y_range, x_label=f"{along}: minimum {a} → minimum {b}",
                     x_ticks=((0.0, "0"), (0.5, "0.5"), (1.0, "1")), y_format=y_format)
        if linear is not None:
            plot.hline(transform(linear), "╌", "magenta", note="linear saddle")
        for old in faded:
            plot.line(evaluation_t(old) if curve else old.positions, [transform(v) for v in old.losses], "·", "dim")
        if profile is not None:
            xs = evaluation_t(profile) if curve else profile.positions
            plot.line(xs, [transform(v) for v in profile.losses], "•", "cyan")
            if not curve:  # a curve's evaluation points are its profile: no pivots to mark on it
                plot.points(profile.pivot_positions, [transform(v) for v in profile.pivot_losses], "o", "bold yellow")
            if not at_an_end(profile.saddle_position):  # else the highest point is a minimum: no saddle to mark
                saddle_x = saddle_t(profile) if curve else profile.saddle_position
                plot.points([saddle_x], [transform(profile.saddle_energy)], "▲", "bold red")
        if live and live_x:
            plot.points(live_x, [transform(v) for v in live], "+", "bold green")
        return plot.render()

    def _scale(self, low: float, high: float):
        if not self.log_scale:
            pad = 0.05 * (high - low) if high > low else 1.0
            return (lambda v: v), (low - pad, high + pad), tick
        eps = EPS_SHARE * (high - low) if high > low else 1e-12

        def transform(v: float) -> float:
            return math.log10(max(v - low, 0.0) + eps)

        def label(y: float) -> str:  # the loss itself at that height, not its distance from the lowest
            return tick(low + max(10 ** y - eps, 0.0))

        return transform, (transform(low), transform(high)), label

    def _live_positions(self, trace: PairProgress, profile: CycleFinished | None, live: list[float] | None) -> list[float]:
        """Where the latest step took its losses, as its event says; for a step logged before
        steps said so: equally spaced under "equal" spacing, else at the last finished
        cycle's pivot positions when their number still matches."""
        if not live:
            return []
        positions = self.model.live_positions(trace)
        if positions is not None:
            return positions
        if len(live) < 2:
            return []
        if not self.model.equal_spacing and profile is not None and len(profile.pivot_positions) == len(live):
            return profile.pivot_positions
        return [i / (len(live) - 1) for i in range(len(live))]
