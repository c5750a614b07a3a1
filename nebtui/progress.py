"""Plain progress lines from engine events, for --headless runs and batch jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from engine.events import Event
    from engine.explore import ExplorationResult


class ProgressPrinter:
    """An event sink that prints one line per meaningful event."""

    def __init__(self, stream: TextIO, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled

    def _line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        self._line(f"note: {text}")

    def __call__(self, event: "Event") -> None:
        kind = event.kind
        e = event.to_dict()
        if kind == "pair_chosen":
            why = "initial tree" if e["reason"] == "initial" else f"to replace MST edge {e['attacked_edge']}"
            self._line(f"pair {tuple(e['pair'])}: chosen ({why})")
        elif kind == "cycle_finished":
            self._line(
                f"pair {tuple(e['pair'])} restart {e['restart'] + 1} cycle {e['cycle']}: "
                f"{len(e['pivot_losses'])} pivots, saddle {e['saddle_energy']:.4f} at {e['saddle_position']:.3f}"
            )
        elif kind == "connection_finished":
            self._line(
                f"pair {tuple(e['pair'])}: saddle {e['saddle_energy']:.4f} "
                f"(linear segment {e['linear_saddle_energy']:.4f}), {e['pivots']} pivots"
            )
        elif kind == "mst_edge_added":
            self._line(f"MST: edge ({e['a']}, {e['b']}) added, saddle {e['saddle_energy']:.4f}")
        elif kind == "mst_edge_replaced":
            self._line(
                f"MST: edge {tuple(e['removed'])} ({e['removed_energy']:.4f}) replaced by "
                f"{tuple(e['added'])} ({e['added_energy']:.4f})"
            )
        elif kind == "edge_ignored":
            self._line(f"MST: edge ({e['a']}, {e['b']}) kept: every pair across it is known")
        elif kind == "landscape_finished":
            self._line(f"finished: {e['reason'].replace('_', ' ')}")

    def summary(self, result: "ExplorationResult") -> None:
        self._line("")
        self._line("minima")
        for i, energy in enumerate(result.energies):
            position = ", ".join(f"{v:.5f}" for v in result.minima[i].tolist()) if result.minima.shape[1] <= 4 else ""
            self._line(f"  {i}  energy {energy:10.4f}  {f'at ({position})' if position else ''}".rstrip())
        self._line("minimum spanning tree (saddle energies)")
        for a, b, saddle in result.mst:
            linear = result.paths[(a, b)].linear_saddle_energy
            self._line(f"  {a} - {b}  saddle {saddle:10.4f}   linear segment {linear:10.4f}")
