"""Plain progress lines from event dicts, for --headless runs, batch jobs and
`sessions attach` without the app."""

from __future__ import annotations

from typing import Any, TextIO


def clock_text(seconds: float | None) -> str:
    """h:mm:ss or m:ss; "-" when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(event: dict[str, Any]) -> str | None:
    """One line for an event worth a line, else None."""
    kind = event.get("kind")
    e = event
    pair = tuple(e["pair"]) if isinstance(e.get("pair"), list) else None
    if kind == "pair_chosen":
        why = "initial tree" if e["reason"] == "initial" else f"to replace MST edge {tuple(e['attacked_edge'])}"
        return f"pair {pair}: chosen ({why})"
    if kind == "cycle_finished":
        return (
            f"pair {pair} restart {e['restart'] + 1} cycle {e['cycle']}: "
            f"{len(e['pivot_losses'])} pivots, saddle {e['saddle_energy']:.4f} at {e['saddle_position']:.3f}"
        )
    if kind == "connection_finished":
        return (
            f"pair {pair}: saddle {e['saddle_energy']:.4f} "
            f"(linear segment {e['linear_saddle_energy']:.4f}), {e['pivots']} pivots"
        )
    if kind == "mst_edge_added":
        return f"MST: edge ({e['a']}, {e['b']}) added, saddle {e['saddle_energy']:.4f}"
    if kind == "mst_edge_replaced":
        return (
            f"MST: edge {tuple(e['removed'])} ({e['removed_energy']:.4f}) replaced by "
            f"{tuple(e['added'])} ({e['added_energy']:.4f})"
        )
    if kind == "edge_ignored":
        return f"MST: edge ({e['a']}, {e['b']}) kept: every pair across it is known"
    if kind == "landscape_finished":
        return f"landscape: finished ({e['reason'].replace('_', ' ')})"
    if kind == "runner_started":
        how = "resumed from its checkpoint" if e["resumed"] else "started"
        return f"runner {e['pid']} {how} on {', '.join(e['devices'])}"
    if kind == "worker_died":
        then = f"restarting in {e['restart_in']:g} s" if e["restart_in"] is not None else "giving up"
        on = f" on pair {tuple(e['pair'])}" if e.get("pair") else ""
        return f"worker {e['worker']} (pid {e['pid']}) died{on}: {e['reason']}; {then}"
    if kind == "control_received":
        return f"control: {e['command']}: {e['detail']}"
    if kind == "session_paused":
        return "session paused"
    if kind == "session_resumed":
        return "session resumed"
    if kind == "checkpoint_failed":
        return f"checkpoint FAILED: {e['message']}"
    if kind == "session_stopped":
        return f"session stopped after {e['pairs_done']} pairs"
    if kind == "session_failed":
        return f"session FAILED: {e['message']}"
    if kind == "session_finished":
        return f"session finished ({e['reason'].replace('_', ' ')}), {e['pairs_done']} pairs"
    return None


class ProgressPrinter:
    """Prints one line per meaningful event dict."""

    def __init__(self, stream: TextIO, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        self.line(f"note: {text}")

    def __call__(self, event: dict[str, Any]) -> None:
        text = describe(event)
        if text is not None:
            self.line(text)

    def summary(self, result: dict[str, Any]) -> None:
        """The final result (results/result.json) as a short table."""
        self.line("")
        self.line("minima")
        for minimum in result["minima"]:
            position = minimum.get("position")
            where = f"  at ({', '.join(f'{v:.5f}' for v in position)})" if position and len(position) <= 4 else ""
            self.line(f"  {minimum['id']}  energy {minimum['energy']:10.4f}{where}")
        linear = {(p["a"], p["b"]): p["linear_saddle_energy"] for p in result["paths"]}
        self.line("minimum spanning tree (saddle energies)")
        for edge in result["mst"]:
            a, b = edge["a"], edge["b"]
            self.line(f"  {a} - {b}  saddle {edge['saddle_energy']:10.4f}   linear segment {linear[(a, b)]:10.4f}")

    def table1(self, row: dict[str, Any]) -> None:
        """The paper's Table 1 row: means over the minima and over the MST saddles."""

        def number(value: float | None, percent: bool = False) -> str:
            if value is None:
                return "-"
            return f"{100 * value:.2f} %" if percent else f"{value:.4f}"

        self.line("Table 1 (means over minima and MST saddles)    minima    saddles")
        self.line(f"  train loss                                  {number(row['train_loss_minima']):>8}   "
                  f"{number(row['train_loss_saddles']):>8}   factor {row['factor'] or 0:.2g}")
        self.line(f"  test loss                                   {number(row['test_loss_minima']):>8}   "
                  f"{number(row['test_loss_saddles']):>8}")
        self.line(f"  test error                                  {number(row['test_error_minima'], True):>8}   "
                  f"{number(row['test_error_saddles'], True):>8}   "
                  f"difference {number(row['test_error_difference'], True)}")
