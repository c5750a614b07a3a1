"""Plain progress lines from events, for --headless runs, batch jobs and
`sessions attach` without the app."""

from __future__ import annotations

from typing import Any, TextIO

from engine.events import (
    ConnectionFinished,
    CycleFinished,
    EdgeIgnored,
    Event,
    LandscapeFinished,
    MSTEdgeAdded,
    MSTEdgeReplaced,
    PairChosen,
    UnknownEvent,
)
from sessions.events import (
    CheckpointFailed,
    ControlReceived,
    RunnerStarted,
    SessionEstimated,
    SessionFailed,
    SessionFinished,
    SessionPaused,
    SessionResumed,
    SessionStopped,
    StrategyChosen,
    WorkerDied,
)
from sessions.view import AT_END_MEANING, SessionView, at_end_note, end_at_saddle


def clock_text(seconds: float | None) -> str:
    """h:mm:ss or m:ss; "-" when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def span_text(low: float, high: float) -> str:
    """A time range as clock text: one time when both ends read the same."""
    low_text, high_text = clock_text(low), clock_text(high)
    return low_text if low_text == high_text else f"{low_text} to {high_text}"


def duration_text(seconds: float) -> str:
    """A short measured duration: milliseconds below a second."""
    return f"{1000 * seconds:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def estimate_text(estimate: SessionEstimated) -> str:
    """What the session's rest will cost, as its runner estimated it before the first pair."""
    fewest, most = estimate.pairs
    pairs = f"{fewest} pair{'s' * (fewest != 1)}" if fewest == most else f"{fewest} to {most} pairs"
    workers = f"{estimate.workers} worker{'s' * (estimate.workers != 1)} on {estimate.device}"
    if estimate.threads is not None:
        workers += f" ({estimate.threads} thread{'s' * (estimate.threads != 1)} each)"
    return (f"{pairs} left, {span_text(*estimate.pair_seconds)} a pair, {workers}: "
            f"{span_text(*estimate.seconds)} in all (timed: a step on {estimate.step_points} points "
            f"{duration_text(estimate.step_seconds)}, one point's evaluation {duration_text(estimate.point_seconds)})")


def strategy_text(chosen: StrategyChosen) -> str:
    """How every worker evaluates the pivots, as the session chose it once."""
    threads = "" if chosen.threads is None else f" at {chosen.threads} thread{'s' * (chosen.threads != 1)} per worker"
    how = "timed once for the session" if chosen.timed else "not timed"
    return f"{chosen.strategy}{threads} on {chosen.device} ({how})"


FINISHED_BECAUSE = {  # a landscape's finished reason: what the stop rule saw
    "all_pairs": "every pair has a path",
    "tolerance": "the MST's saddle energies are within the tolerance of each other",
    "relative": "the MST's saddle energies are within the tolerance times the largest",
    "max_pairs": "the max-pairs budget is spent",
    "star": "the lowest minimum is connected to every other",
}


def finished_text(reason: str, mst: list) -> str:
    """The stop rule that ended a landscape, by its own name, and why it holds. A
    max-pairs budget below the first spanning tree says that the tree overran it."""
    if reason == "max_pairs_after_tree":
        return (f"max-pairs, after the first spanning tree: its {len(mst)} pairs connect all {len(mst) + 1} "
                "minima, more than max-pairs allowed")
    because = FINISHED_BECAUSE.get(reason)
    name = reason.replace("_", "-")
    return f"{name}: {because}" if because else name


def describe(event: Event) -> str | None:
    """One line for an event worth a line, else None."""
    match event:
        case PairChosen(pair=pair, reason=reason, attacked_edge=edge):
            why = "initial tree" if reason == "initial" else f"to replace MST edge {tuple(edge or ())}"
            return f"pair {pair}: chosen ({why})"
        case CycleFinished() as e:
            end = end_at_saddle(e.pair, e.saddle_position)
            return (f"pair {e.pair} restart {e.restart + 1} cycle {e.cycle}: "
                    f"{len(e.pivot_losses)} pivots, saddle {e.saddle_energy:.4f} at {e.saddle_position:.3f}"
                    + ("" if end is None else f" (an end: minimum {end})")
                    + ("; the band has settled: the pair ends here (--converge)" if e.converged else ""))
        case ConnectionFinished() as e:
            end = end_at_saddle(e.pair, e.saddle_position)
            return (f"pair {e.pair}: saddle {e.saddle_energy:.4f} "
                    f"(linear segment {e.linear_saddle_energy:.4f}), {e.pivots} pivots"
                    + ("" if end is None else f"; saddle at an end: {at_end_note(end)}"))
        case MSTEdgeAdded(a=a, b=b, saddle_energy=saddle):
            return f"MST: edge ({a}, {b}) added, saddle {saddle:.4f}"
        case MSTEdgeReplaced() as e:
            return (f"MST: edge {tuple(e.removed)} ({e.removed_energy:.4f}) replaced by "
                    f"{tuple(e.added)} ({e.added_energy:.4f})")
        case EdgeIgnored(a=a, b=b):
            return f"MST: edge ({a}, {b}) kept: every pair across it is known"
        case LandscapeFinished(reason=reason, mst=mst):
            return f"landscape: finished ({finished_text(reason, mst)})"
        case RunnerStarted() as e:
            how = "resumed from its checkpoint" if e.resumed else "started"
            return f"runner {e.pid} {how} on {', '.join(e.devices)}"
        case WorkerDied() as e:
            then = ("giving up" if e.restart_in is None else "restarting now" if e.restart_in == 0
                    else f"restarting in {e.restart_in:g} s")
            on = f" on pair {tuple(e.pair)}" if e.pair else ""
            return f"worker {e.worker} (pid {e.pid}) died{on}: {e.reason}; {then}"
        case ControlReceived(command=command, detail=detail):
            return f"control: {command}: {detail}"
        case SessionPaused():
            return "session paused"
        case SessionResumed():
            return "session resumed"
        case CheckpointFailed(message=message):
            return f"checkpoint FAILED: {message}"
        case SessionStopped(pairs_done=done, reason=reason, detail=detail):
            return f"session stopped after {done} pairs" + (f": {reason} ({detail})" if reason else "")
        case SessionFailed(message=message):
            return f"session FAILED: {message}"
        case SessionEstimated() as e:
            return f"estimate: {estimate_text(e)}; refined as pairs finish"
        case StrategyChosen() as e:
            return f"pivots: {strategy_text(e)}"
        case SessionFinished(reason=reason, pairs_done=done):
            return f"session finished ({reason.replace('_', ' ')}), {done} pairs"
        case UnknownEvent(problem=problem) if problem:
            return f"a damaged event, skipped: {problem}"
    return None


class ProgressPrinter:
    """Prints one line per meaningful event."""

    def __init__(self, stream: TextIO, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        self.line(f"note: {text}")

    def __call__(self, event: Event, view: SessionView | None = None) -> None:
        """The event's line; a pair's cycle or end also says the session's ETA from ``view``
        (the events so far, this one included), once its runner has made an estimate."""
        text = describe(event)
        if text is None:
            return
        if view is not None and isinstance(event, (CycleFinished, ConnectionFinished)):
            eta = view.eta()
            if eta is not None:
                text += f" · session ETA {span_text(*eta)}"
        self.line(text)

    def summary(self, result: dict[str, Any]) -> None:
        """The final result (results/result.json) as a short table."""
        self.line("")
        self.line("minima")
        for minimum in result["minima"]:
            position = minimum.get("position")
            where = f"  at ({', '.join(f'{v:.5f}' for v in position)})" if position and len(position) <= 4 else ""
            self.line(f"  {minimum['id']}  energy {minimum['energy']:10.4f}{where}")
        paths = {(p["a"], p["b"]): p for p in result["paths"]}
        self.line("minimum spanning tree (saddle energies)")
        for edge in result["mst"]:
            path = paths[(edge["a"], edge["b"])]
            end = end_at_saddle((path["a"], path["b"]), path.get("saddle_position"))
            self.line(f"  {path['a']} - {path['b']}  saddle {edge['saddle_energy']:10.4f}   "
                      f"linear segment {path['linear_saddle_energy']:10.4f}"
                      + ("" if end is None else f"   at an end (minimum {end}): no barrier"))

    def table1(self, row: dict[str, Any]) -> None:
        """The paper's Table 1 row: means over the minima and over the MST saddles."""

        def number(value: float | None, percent: bool = False) -> str:
            if value is None:
                return "-"
            return f"{100 * value:.2f} %" if percent else f"{value:.4f}"

        self.line("Table 1 (means over minima and MST saddles)    minima    saddles")
        self.line(f"  train loss                                  {number(row['train_loss_minima']):>8}   "
                  f"{number(row['train_loss_saddles']):>8}   factor "
                  + ("-" if row["factor"] is None else f"{row['factor']:.2g}"))
        self.line(f"  test loss                                   {number(row['test_loss_minima']):>8}   "
                  f"{number(row['test_loss_saddles']):>8}")
        if row.get("no_error_rate"):  # a regression loss, or the user's
            self.line(f"  test error                                  {row['no_error_rate']}")
        else:
            self.line(f"  test error                                  {number(row['test_error_minima'], True):>8}   "
                      f"{number(row['test_error_saddles'], True):>8}   "
                      f"difference {number(row['test_error_difference'], True)}")
        at_end = row.get("saddles_at_an_end") or []
        if at_end:
            pairs = ", ".join(f"{a} - {b}" for a, b in at_end)
            self.line(f"  saddles: {row['saddles']} of {row['saddles'] + len(at_end)} MST pairs; none claimed for "
                      f"{pairs}, whose highest point is an end: {AT_END_MEANING}")
