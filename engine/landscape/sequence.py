"""The sequence of pairs an exploration computes, several at once, with a result
that does not depend on timing.

Pairs are chosen into one sequence (``order``); at most ``lookahead`` of them
are chosen and not yet applied to the landscape. A finished pair's saddle is
applied only in the sequence's order: one that finishes early waits for the
pairs chosen before it. New pairs are chosen right after each application, from
the landscape and the pairs chosen so far, never at a moment set by a clock.
So the pairs, their order and the MST are a function of the landscape's inputs,
the saddles and ``lookahead`` alone: which worker finishes first, a slow worker,
a restart or a resume from any saved state change when things happen, never
what. ``lookahead = 1`` is the paper's loop, one pair at a time.

When a stop rule ends the landscape, the pairs chosen after the last one it
needed are dropped (``beyond_need``): at most ``lookahead - 1`` of them.

No torch here: the runner, the engine's ``Exploration`` and the exploration
benchmark (synthetic saddles, simulated clock) all drive this one class.
"""

from __future__ import annotations

from typing import Any

from engine.landscape.graph import Landscape, Pair


def pair_key(pair: Pair) -> str:
    return f"{pair[0]}-{pair[1]}"


def parse_pair_key(key: str) -> Pair:
    a, b = key.split("-")
    return int(a), int(b)


class PairSequence:
    """The pairs chosen for ``landscape``, in order, and how far their paths are applied."""

    def __init__(self, landscape: Landscape, lookahead: int = 1) -> None:
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 1:
            raise ValueError(f"lookahead must be an integer >= 1 (pairs chosen ahead of their paths), got {lookahead!r}")
        self.landscape = landscape
        self.lookahead = lookahead
        self.order: list[Pair] = []  # every pair chosen and still needed, in the order chosen
        self.applied = 0  # order[:applied] are in the landscape
        self.waiting: dict[Pair, float] = {}  # finished, not applied yet: pair -> saddle energy
        self.beyond_need: list[Pair] = []  # chosen, then dropped: the landscape had finished

    @property
    def finished(self) -> bool:
        """The landscape has finished and every pair it needed is applied."""
        return self.landscape.finished

    def open(self) -> list[Pair]:
        """The pairs chosen and not finished, oldest first: start them in this order.
        Chooses new ones first when the window has room. Empty once finished."""
        self._fill()
        return [pair for pair in self.order[self.applied :] if pair not in self.waiting]

    def is_open(self, pair: Pair) -> bool:
        return pair in self.order[self.applied :] and pair not in self.waiting

    def add(self, pair: Pair, saddle_energy: float) -> list[Pair]:
        """A finished pair. Applies every path now in order (choosing new pairs after
        each) and returns the pairs applied, in order; [] when it must wait, or when
        the pair is not open (dropped beyond need, or added before)."""
        if not self.is_open(pair):
            return []
        self.waiting[pair] = float(saddle_energy)
        applied = []
        while self.applied < len(self.order) and self.order[self.applied] in self.waiting:
            pair = self.order[self.applied]
            self.landscape.add_path(*pair, self.waiting.pop(pair))
            self.applied += 1
            applied.append(pair)
            if self.landscape.finished:
                self.beyond_need = self.order[self.applied :]
                del self.order[self.applied :]
                self.waiting.clear()
                break
            self._fill()
        return applied

    def _fill(self) -> None:
        """Choose pairs until ``lookahead`` wait for their paths, or the landscape has
        none to offer now (it offers the same again only after an application)."""
        while not self.landscape.finished and len(self.order) - self.applied < self.lookahead:
            pair = self.landscape.choose(in_flight=self.order[self.applied :])
            if pair is None:
                return
            self.order.append(pair)

    # --- stop and resume ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-able, the landscape's state included."""
        return {
            "landscape": self.landscape.state_dict(),
            "lookahead": self.lookahead,
            "order": [pair_key(p) for p in self.order],
            "applied": self.applied,
            "waiting": {pair_key(p): s for p, s in self.waiting.items()},
            "beyond_need": [pair_key(p) for p in self.beyond_need],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], on_event: Any = None) -> "PairSequence":
        sequence = cls(Landscape.from_state(state["landscape"], on_event=on_event), state["lookahead"])
        sequence.order = [parse_pair_key(k) for k in state["order"]]
        sequence.applied = int(state["applied"])
        sequence.waiting = {parse_pair_key(k): float(s) for k, s in state["waiting"].items()}
        sequence.beyond_need = [parse_pair_key(k) for k in state["beyond_need"]]
        return sequence


def lookahead_for(workers: int) -> int:
    """How many pairs a session with ``workers`` workers chooses ahead: one worker
    keeps the paper's loop (1)."""
    return 1 if workers <= 1 else 2 * workers
