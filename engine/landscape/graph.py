"""The energy landscape: minima and computed paths as a graph, the minimum
spanning tree (MST) of saddle energies, ultrametric bounds, and the paper's
"Energy landscape exploration" (which pair to connect next, when to stop).

Minima are ids 0..n-1. A computed path between minima a and b is an edge with
its saddle energy B(a, b). Because concatenated paths give
B(a, c) <= max(B(a, b), B(b, c)), the MST of these edges holds every useful
path, and the highest MST edge on the tree path between two minima bounds
their saddle energy from above.

Ties between equal saddle energies are broken by one total order on edges
(see `edge_order`), so the MST, the attacked edge and every event are
deterministic, and a restored landscape continues exactly as it would have.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.events import (
    EdgeIgnored,
    EventSink,
    LandscapeFinished,
    MSTEdgeAdded,
    MSTEdgeReplaced,
    Pair,
    PairChosen,
    ignore,
)
from engine.paths.schedule import field_lines

if TYPE_CHECKING:
    import networkx as nx

VARIANTS = ("mst", "star")  # "star": connect the lowest minimum to all others, then stop
STOPS = ("all_pairs", "tolerance")
# Why a landscape finished, named for the stop rule as the command line writes it
# (snake case): "relative" is the tolerance rule relative to the largest saddle, and
# "max_pairs_after_tree" a max-pairs budget below the first spanning tree's N - 1
# pairs, spent and then overrun to complete that tree (a tree that leaves a minimum
# out is no result). No stop rule ends a landscape before its first spanning tree.
FINISH_REASONS = ("all_pairs", "tolerance", "relative", "max_pairs", "max_pairs_after_tree", "star")
STATE_VERSION = 1

Edge = tuple[int, int, float]  # (a, b, saddle energy), a < b


def _pair(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


class LandscapeOptions(BaseModel):
    """How the exploration runs and when it stops. Frozen and strictly typed (a bad field
    is a pydantic ValidationError; Landscape says it in one line per field). The fields
    given are remembered (``given``): a session's config.json keeps only those, as the
    command line set them."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    variant: Literal[VARIANTS] = "mst"  # "mst" (the paper's algorithm) | "star" (DenseNet runs)
    stop: Literal[STOPS] = "all_pairs"  # the stop rule: "all_pairs" | "tolerance"
    tolerance: float = Field(  # "tolerance": stop when max - min of MST saddles <= this
        0.0, ge=0, allow_inf_nan=False, description="a finite number >= 0")
    relative: bool = Field(False, description="true or false")  # tolerance relative to the largest |MST saddle|
    max_pairs: int | None = Field(  # stop after this many computed paths, never before the first spanning tree
        None, ge=0, description="an integer >= 0 or None")

    def given(self) -> dict[str, Any]:
        """The fields set when it was made (JSON-able), as a config stores them."""
        return self.model_dump(exclude_unset=True)


def parse_stop_rule(text: str) -> LandscapeOptions:
    """The landscape options of a stop rule as written on the command line:
    ``all-pairs``, ``tolerance=VALUE``, ``relative=VALUE`` or ``max-pairs=N``."""
    name, _, value = text.strip().partition("=")
    usage = "use all-pairs, tolerance=VALUE, relative=VALUE or max-pairs=N"
    if name == "all-pairs" and not value:
        return LandscapeOptions(stop="all_pairs")
    if name in ("tolerance", "relative"):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"stop rule {text!r}: {name} needs a number >= 0 (the spread of the MST's saddle "
                             f"energies{' relative to the largest' if name == 'relative' else ''}), e.g. {name}=0.1")
        return LandscapeOptions(stop="tolerance", tolerance=number, relative=name == "relative")
    if name == "max-pairs":
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"stop rule {text!r}: max-pairs needs a whole number >= 1 of pairs, e.g. max-pairs=20")
        return LandscapeOptions(stop="all_pairs", max_pairs=int(value))
    raise ValueError(f"unknown stop rule {text!r}: {usage}")


def _options(options: LandscapeOptions | None, fields: dict[str, Any]) -> LandscapeOptions:
    """The options passed whole, or built from keyword fields (one line per bad field); not both."""
    if options is None:
        try:
            return LandscapeOptions(**fields)
        except ValidationError as error:
            raise ValueError("landscape options: " + "; ".join(field_lines(LandscapeOptions, error, fields))) from None
    if fields:
        raise TypeError(f"pass the landscape options whole or as fields, not both (got {', '.join(fields)})")
    return options


def edge_order(energies: Sequence[float], edge: Edge) -> tuple[float, float, int, int]:
    """Sort key of an MST edge, lightest first: by saddle energy; among equal
    saddles the edge whose higher end lies lower (the larger barrier) counts
    heavier; then by ids."""
    a, b, saddle = edge
    return (saddle, -max(energies[a], energies[b]), a, b)


def minimum_spanning_tree(graph: nx.Graph, energies: Sequence[float]) -> dict[Pair, float]:
    """Kruskal's MST of the path graph (edge attr ``saddle``): {(a, b): saddle}.

    Kruskal takes the edges in `edge_order`, which sorts by saddle energy first
    and is a total order, so the tree is the one MST of the saddles with ties
    broken the same way on every call.
    """
    edges = [(*_pair(u, v), s) for u, v, s in graph.edges(data="saddle")]
    return _kruskal(edges, energies)


def _kruskal(edges: Iterable[Edge], energies: Sequence[float]) -> dict[Pair, float]:
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.get(i, i) != i:
            parent[i] = parent.get(parent[i], parent[i])
            i = parent[i]
        return i

    tree = {}
    for a, b, saddle in sorted(edges, key=lambda e: edge_order(energies, e)):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
            tree[(a, b)] = saddle
    return tree


def tree_bound(tree: dict[Pair, float], a: int, b: int) -> float:
    """The highest saddle on the tree path between two different minima a and b
    (inf if the tree does not connect them): the ultrametric bound B(a, b)."""
    import networkx as nx  # here, not above: the CLI parses stop rules without it

    graph = nx.Graph()
    graph.add_nodes_from((a, b))
    graph.add_edges_from((u, v, {"saddle": s}) for (u, v), s in tree.items())
    if not nx.has_path(graph, a, b):
        return math.inf
    path = nx.shortest_path(graph, a, b)
    return max(graph.edges[u, v]["saddle"] for u, v in zip(path, path[1:]))


def _bits(mask: int) -> Iterable[int]:
    """The set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _tree_sides(tree: dict[Pair, float], n: int) -> dict[Pair, tuple[int, int]]:
    """For every edge of the forest ``tree`` on minima 0..n-1, the bit masks of the
    minima on ``edge[0]``'s side and on the other side once the edge is removed
    (minima of other components are on neither)."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in tree:
        neighbours[a].append(b)
        neighbours[b].append(a)
    parent, below, root_of = [-1] * n, [0] * n, [-1] * n
    for root in range(n):
        if root_of[root] >= 0:
            continue
        order, todo = [], [root]
        root_of[root] = root
        while todo:  # depth first: every minimum after its parent
            node = todo.pop()
            order.append(node)
            for other in neighbours[node]:
                if root_of[other] < 0:
                    root_of[other], parent[other] = root, node
                    todo.append(other)
        for node in reversed(order):  # subtrees, children first
            below[node] |= 1 << node
            if parent[node] >= 0:
                below[parent[node]] |= below[node]
    sides = {}
    for a, b in tree:
        child = a if parent[a] == b else b
        component = below[root_of[child]]
        side = below[child] if child == a else component & ~below[child]
        sides[(a, b)] = (side, component & ~side)
    return sides


class Landscape:
    """Minima, computed paths and the exploration that chooses the next pair.

    Drive it with `choose` (a pair that may start beside those in flight) and
    `add_path` (a computed path), or sequentially with `next_pair`.
    `state_dict` / `from_state` stop and resume it; the pair sequence continues
    unchanged.
    """

    def __init__(
        self,
        energies: Sequence[float],
        options: LandscapeOptions | None = None,
        *,
        on_event: EventSink | None = None,
        **fields: Any,
    ) -> None:
        """``options`` whole, or its fields as keywords (``stop="tolerance", tolerance=0.1``)."""
        energies = [float(e) for e in energies]
        if not energies:
            raise ValueError("a landscape needs at least one minimum: pass one energy per minimum")
        for i, e in enumerate(energies):
            if not math.isfinite(e):
                raise ValueError(f"energy of minimum {i} is {e}: every minimum needs a finite energy (loss)")
        self.options = _options(options, fields)
        self.energies: tuple[float, ...] = tuple(energies)
        self.on_event: EventSink = on_event or ignore
        import networkx as nx

        self.graph = nx.Graph()
        self.graph.add_nodes_from((i, {"energy": e}) for i, e in enumerate(energies))
        self.lowest = min(range(len(energies)), key=lambda i: (energies[i], i))
        self._tree: dict[Pair, float] = {}
        self._saddles: dict[Pair, float] = {}  # the graph's edges, for fast lookups
        full = (1 << len(energies)) - 1
        self._unknown = [full & ~(1 << i) for i in range(len(energies))]  # bit v of [u]: no path u-v yet
        self._sides: dict[Pair, tuple[int, int]] | None = None  # each tree edge's two sides, as bit masks
        self._ranked: list[Edge] | None = None  # the tree's edges, highest first
        self._ignored: set[Pair] = set()
        self._announced: set[Pair] = set()  # PairChosen emitted, path not yet added
        self._computed = 0  # add_path calls
        self._finished_reason: str | None = None
        self._check_stop()

    # --- the graph and its MST ------------------------------------------------

    def __len__(self) -> int:
        return len(self.energies)

    @property
    def computed(self) -> int:
        """How many paths were added (`add_path` calls)."""
        return self._computed

    @property
    def ignored(self) -> list[Pair]:
        """MST edges ignored when looking for the highest edge."""
        return sorted(self._ignored)

    def saddle(self, a: int, b: int) -> float | None:
        """Saddle energy of the best known path between a and b, None if none."""
        pair = _pair(a, b)
        return self._saddles.get(pair)

    def add_path(self, a: int, b: int, saddle_energy: float) -> None:
        """Record a computed path; keeps the lower saddle if the pair is known.

        Emits MSTEdgeAdded / MSTEdgeReplaced for what changed in the MST, and
        LandscapeFinished when this path meets a stop rule.
        """
        a, b = self._check_id(a), self._check_id(b)
        if a == b:
            raise ValueError(f"a path needs two different minima, got {a} twice")
        saddle = float(saddle_energy)
        if not math.isfinite(saddle):
            raise ValueError(f"saddle energy of path ({a}, {b}) is {saddle}: pass the finite saddle loss")
        pair = _pair(a, b)
        self._computed += 1
        self._announced.discard(pair)
        known = self.saddle(*pair)
        if known is None or saddle < known:
            self._set_path(pair, saddle)
            # The MST of the graph with one edge added or lowered is the MST of the
            # old tree and that edge.
            before = self._tree
            self._tree = _kruskal([*((a, b, s) for (a, b), s in before.items() if (a, b) != pair), (*pair, saddle)],
                                  self.energies)
            self._sides = self._ranked = None
            self._emit_tree_changes(before)
            # Stays a no-op for new pairs (they never cross an ignored edge's cut);
            # a lowered known pair may reshape the tree and reopen a cut.
            self._ignored = {e for e in self._ignored if e in self._tree and not self._open_across(e)}
        self._check_stop()

    def mst(self) -> list[Edge]:
        """The MST edges (a, b, saddle) with a < b, sorted by (a, b)."""
        return [(a, b, s) for (a, b), s in sorted(self._tree.items())]

    def bound(self, a: int, b: int) -> float:
        """Ultrametric upper bound on the saddle energy between a and b: the
        highest saddle on the MST path (inf if unconnected; E_a if a == b)."""
        a, b = self._check_id(a), self._check_id(b)
        if a == b:
            return self.energies[a]
        return tree_bound(self._tree, a, b)

    # --- Energy landscape exploration ------------------------------------------

    @property
    def finished(self) -> bool:
        return self._finished_reason is not None

    @property
    def finished_reason(self) -> str | None:
        """Why it finished, one of FINISH_REASONS; None while running."""
        return self._finished_reason

    def choose(self, in_flight: Iterable[Pair] = ()) -> Pair | None:
        """The next pair (a < b) to start, given the pairs in flight (chosen, no path
        added yet), and announce it; None when nothing may start now. With nothing
        in flight, None means finished.

        Initial phase: a pair (lowest minimum, other) neither known nor in flight;
        these are independent of each other. Afterwards the paper's rule: the
        highest MST edge not ignored whose cut no pair in flight crosses, and the
        best open pair across it. When every such cut is crossed, a second pair
        across the highest cut that still has an open one (speculative: it may
        turn out not to be needed). Never a pair known or in flight.
        """
        if self.finished:
            return None
        busy = {_pair(*p) for p in in_flight}
        star = [p for p in self._star_left() if p not in busy]
        if star:  # the first spanning tree, whatever the stop rule: an MST that leaves a minimum out is no result
            self._announce(star[0], "initial", None)
            return star[0]
        if self.options.max_pairs is not None and self._computed + len(busy) >= self.options.max_pairs:
            return None
        if self._star_left() and (self.options.stop != "all_pairs" or self.options.max_pairs is not None):
            return None  # the initial tree is still in flight: a stop rule's choices wait for all of it
        chosen = self._choose_pair(busy)
        if chosen is None:
            if not busy:
                self._finish("all_pairs")
            return None
        pair, attacked = chosen
        self._announce(pair, "replace", attacked)
        return pair

    def next_pair(self) -> Pair | None:
        """The next pair to compute when computing one at a time; None when finished."""
        return self.choose()

    def _star_left(self) -> list[Pair]:
        """Initial spanning tree: lowest-minimum pairs with no path yet."""
        return [
            _pair(self.lowest, i)
            for i in range(len(self))
            if i != self.lowest and _pair(self.lowest, i) not in self._saddles
        ]

    def _choose_pair(self, busy: set[Pair]) -> tuple[Pair, Pair] | None:
        """One step of the paper's loop: attack the highest MST edge not ignored.

        Removing it splits the tree; the pair takes one minimum from each side
        with no known path and not in ``busy``, lowest max(E_u, E_v) first, then
        by ids. A cut crossed by a pair in ``busy`` is attacked only when no other
        is open. An edge with no unknown pair across it is ignored from now on.
        Returns (pair, attacked edge).

        Beside pairs in flight, the tolerance rule attacks only edges that keep it
        from holding (more than the tolerance above the lowest MST saddle), and
        never a second pair across a cut: a lower saddle elsewhere cannot help it
        stop, and may widen the spread. With nothing in flight the choice is the
        paper's, whatever the rule.
        """
        tolerance = self.options.stop == "tolerance" and bool(busy)
        if tolerance:
            saddles = self._tree.values()
            scale = max(abs(s) for s in saddles) if self.options.relative else 1.0
            floor = min(saddles) + self.options.tolerance * scale
        if self._ranked is None:
            self._ranked = sorted(
                ((a, b, s) for (a, b), s in self._tree.items()),
                key=lambda e: edge_order(self.energies, e),
                reverse=True,
            )
        second: tuple[Pair, Pair] | None = None
        for a, b, saddle in self._ranked:
            if (a, b) in self._ignored or (tolerance and saddle <= floor):
                continue
            if not self._open_across((a, b)):
                self._ignored.add((a, b))
                self.on_event(EdgeIgnored(a=a, b=b, saddle_energy=saddle))
                continue
            side, other = self._cut((a, b))
            crossed = any((side >> u & other >> v | other >> u & side >> v) & 1 for u, v in busy)
            if crossed and second is not None:
                continue
            free = [p for p in self._open_pairs((a, b)) if p not in busy]
            if not free:
                continue
            best = min(free, key=lambda p: (max(self.energies[p[0]], self.energies[p[1]]), p))
            if not crossed:  # no pair in flight crosses this cut
                return best, (a, b)
            if not tolerance:
                second = (best, (a, b))
        return second

    def _open_pairs(self, edge: Pair) -> list[Pair]:
        """Pairs across the cut of MST edge ``edge`` that have no known path."""
        side, other = self._cut(edge)
        return [_pair(u, v) for u in _bits(side) for v in _bits(self._unknown[u] & other)]

    def _open_across(self, edge: Pair) -> bool:
        """Whether any pair across the cut of MST edge ``edge`` has no known path."""
        side, other = self._cut(edge)
        if side.bit_count() > other.bit_count():
            side, other = other, side
        return any(self._unknown[u] & other for u in _bits(side))

    def _cut(self, edge: Pair) -> tuple[int, int]:
        """Bit masks of the minima on ``edge[0]``'s side of the tree without ``edge``, and on
        the other side. While the tree is a forest (the initial tree in flight) a minimum
        of another component is on neither: no path across this edge leads to it."""
        if self._sides is None:
            self._sides = _tree_sides(self._tree, len(self))
        return self._sides[edge]

    def _stop_reason(self) -> str | None:
        """Which stop rule holds now (one of FINISH_REASONS), None while none does; none
        holds before the first spanning tree is complete."""
        if self._star_left():
            return None
        if self.options.variant == "star":
            return "star"
        n = len(self)
        if len(self._saddles) == n * (n - 1) // 2:
            return "all_pairs"
        if self.options.stop == "tolerance" and self._tree:
            saddles = self._tree.values()
            spread = max(saddles) - min(saddles)
            scale = max(abs(s) for s in saddles) if self.options.relative else 1.0
            if spread <= self.options.tolerance * scale:
                return "relative" if self.options.relative else "tolerance"
        return self._budget_reason()

    def _budget_reason(self) -> str | None:
        """"max_pairs" once the max-pairs budget is spent; "max_pairs_after_tree" when the
        budget was below the first spanning tree's size, so the tree overran it."""
        max_pairs = self.options.max_pairs
        if max_pairs is None or self._computed < max_pairs:
            return None
        return "max_pairs_after_tree" if max_pairs < len(self) - 1 else "max_pairs"

    def _check_stop(self) -> None:
        if not self.finished:
            reason = self._stop_reason()
            if reason is not None:
                self._finish(reason)

    def _finish(self, reason: str) -> None:
        self._finished_reason = reason
        self.on_event(LandscapeFinished(reason=reason, mst=[[a, b, s] for a, b, s in self.mst()]))

    def _announce(self, pair: Pair, reason: str, attacked: Pair | None) -> None:
        if pair not in self._announced:
            self._announced.add(pair)
            edge = list(attacked) if attacked is not None else None
            self.on_event(PairChosen(pair=pair, reason=reason, attacked_edge=edge))

    def _emit_tree_changes(self, before: dict[Pair, float]) -> None:
        removed = sorted(set(before) - set(self._tree))
        added = sorted(set(self._tree) - set(before))
        for old, new in zip(removed, added):  # one swap per added path
            self.on_event(
                MSTEdgeReplaced(
                    removed=list(old), removed_energy=before[old], added=list(new), added_energy=self._tree[new]
                )
            )
        for new in added[len(removed) :]:
            self.on_event(MSTEdgeAdded(a=new[0], b=new[1], saddle_energy=self._tree[new]))
        for edge in sorted(set(before) & set(self._tree)):
            if before[edge] != self._tree[edge]:  # a known tree pair got a lower saddle
                self.on_event(
                    MSTEdgeReplaced(
                        removed=list(edge),
                        removed_energy=before[edge],
                        added=list(edge),
                        added_energy=self._tree[edge],
                    )
                )

    def _set_path(self, pair: Pair, saddle: float) -> None:
        self.graph.add_edge(*pair, saddle=saddle)
        self._saddles[pair] = saddle
        a, b = pair
        self._unknown[a] &= ~(1 << b)
        self._unknown[b] &= ~(1 << a)

    def _check_id(self, i: int) -> int:
        try:
            index = operator.index(i)
        except TypeError:
            index = -1
        if isinstance(i, bool) or not 0 <= index < len(self):
            raise ValueError(f"minimum id {i!r} is out of range: ids are 0..{len(self) - 1}")
        return index

    # --- stop and resume ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: JSON-able."""
        return {
            "version": STATE_VERSION,
            "energies": list(self.energies),
            "options": self.options.model_dump(),
            "paths": [[a, b, s] for a, b, s in sorted(self.graph.edges(data="saddle"))],
            "ignored": [list(e) for e in sorted(self._ignored)],
            "announced": [list(p) for p in sorted(self._announced)],
            "computed": self._computed,
            "finished": self.finished,
            "finished_reason": self._finished_reason,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], on_event: EventSink | None = None) -> Landscape:
        """Rebuild a landscape from `state_dict` output; emits nothing itself."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"landscape state version {state.get('version')!r} is not {STATE_VERSION}: "
                "it was written by another nebtui version"
            )
        landscape = cls(state["energies"], LandscapeOptions(**state["options"]))  # events of construction dropped
        for a, b, saddle in state["paths"]:
            landscape._set_path(_pair(int(a), int(b)), float(saddle))
        landscape._tree = minimum_spanning_tree(landscape.graph, landscape.energies)
        landscape._ignored = {_pair(int(a), int(b)) for a, b in state["ignored"]}
        landscape._announced = {_pair(int(a), int(b)) for a, b in state["announced"]}
        landscape._computed = int(state["computed"])
        landscape._finished_reason = state["finished_reason"] if state["finished"] else None
        landscape.on_event = on_event or ignore
        return landscape
