"""The landscape: MST of saddle energies, ultrametric bounds, the paper's
"Energy landscape exploration" loop, its stop rules and its state."""

from __future__ import annotations

import itertools
import json
import math

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import (
    EdgeIgnored,
    LandscapeFinished,
    MSTEdgeAdded,
    MSTEdgeReplaced,
    PairChosen,
    event_from_dict,
)
from engine.landscape.graph import Edge, Landscape


def run_landscape(landscape: Landscape, connect) -> list[Edge]:
    """Run the exploration one pair at a time; ``connect(a, b)`` computes a path and
    returns its saddle energy. Returns the final MST."""
    while (pair := landscape.next_pair()) is not None:
        landscape.add_path(*pair, connect(*pair))
    return landscape.mst()


# Mueller-Brown: minima A, B, C; the A-B path passes C, so it shares A-C's saddle.
MB_ENERGIES = [-146.70, -108.17, -80.77]
MB_SADDLES = {(0, 1): -40.66, (0, 2): -40.66, (1, 2): -72.25}


class Table:
    """A connect function that looks saddles up and records the pairs asked."""

    def __init__(self, saddles: dict[tuple[int, int], float]) -> None:
        self.saddles = saddles
        self.asked: list[tuple[int, int]] = []

    def __call__(self, a: int, b: int) -> float:
        assert a < b
        self.asked.append((a, b))
        return self.saddles[(a, b)]


def test_mueller_brown_by_hand():
    events = []
    landscape = Landscape(MB_ENERGIES, on_event=events.append)
    table = Table(MB_SADDLES)

    mst = run_landscape(landscape, table)

    assert table.asked == [(0, 1), (0, 2), (1, 2)]
    assert mst == [(0, 2, -40.66), (1, 2, -72.25)]
    assert landscape.finished and landscape.finished_reason == "all_pairs"
    assert events == [
        PairChosen(pair=(0, 1), reason="initial"),
        MSTEdgeAdded(a=0, b=1, saddle_energy=-40.66),
        PairChosen(pair=(0, 2), reason="initial"),
        MSTEdgeAdded(a=0, b=2, saddle_energy=-40.66),
        PairChosen(pair=(1, 2), reason="replace", attacked_edge=[0, 1]),
        MSTEdgeReplaced(removed=[0, 1], removed_energy=-40.66, added=[1, 2], added_energy=-72.25),
        LandscapeFinished(reason="all_pairs", mst=[[0, 2, -40.66], [1, 2, -72.25]]),
    ]
    # events survive the JSON log
    assert [event_from_dict(json.loads(json.dumps(e.to_dict()))) for e in events] == events


def test_graph_holds_energies_and_best_saddles():
    landscape = Landscape(MB_ENERGIES)
    landscape.add_path(1, 0, -30.0)
    landscape.add_path(0, 1, -40.66)  # lower: kept
    landscape.add_path(0, 1, -20.0)  # higher: dropped
    assert landscape.graph.nodes[2]["energy"] == -80.77
    assert landscape.graph.edges[0, 1]["saddle"] == -40.66
    assert landscape.saddle(1, 0) == -40.66 and landscape.saddle(1, 2) is None
    assert landscape.computed == 3


# Four minima: the attacked edge (0,1) survives two heavier paths, is then
# ignored; the next edge (0,2) is replaced by a lighter path.
FOUR_ENERGIES = [0.0, 1.0, 2.0, 3.0]
FOUR_SADDLES = {(0, 1): 5.0, (0, 2): 4.0, (0, 3): 3.0, (1, 2): 6.0, (1, 3): 7.0, (2, 3): 3.5}


def test_heavier_paths_reinsert_the_edge_then_it_is_ignored():
    events = []
    landscape = Landscape(FOUR_ENERGIES, on_event=events.append)
    table = Table(FOUR_SADDLES)

    mst = run_landscape(landscape, table)

    assert table.asked == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert mst == [(0, 1, 5.0), (0, 3, 3.0), (2, 3, 3.5)]
    assert landscape.ignored == [(0, 1)]
    after_star = events[6:]
    assert after_star == [
        PairChosen(pair=(1, 2), reason="replace", attacked_edge=[0, 1]),  # lower max energy than (1, 3)
        PairChosen(pair=(1, 3), reason="replace", attacked_edge=[0, 1]),  # (1, 2) was heavier: e stays
        EdgeIgnored(a=0, b=1, saddle_energy=5.0),  # (1, 3) too: no open pair across (0, 1) left
        PairChosen(pair=(2, 3), reason="replace", attacked_edge=[0, 2]),
        MSTEdgeReplaced(removed=[0, 2], removed_energy=4.0, added=[2, 3], added_energy=3.5),
        LandscapeFinished(reason="all_pairs", mst=[[0, 1, 5.0], [0, 3, 3.0], [2, 3, 3.5]]),
    ]


def test_pair_across_the_cut_has_the_lowest_higher_energy():
    # tree 3-4 (5), 0-1 (6), 0-2 (6), 0-3 (10): the highest edge 0-3 splits {0, 1, 2} | {3, 4}
    events = []
    landscape = Landscape([0.0, 5.0, 1.0, 4.0, 2.0], on_event=events.append)
    for a, b, saddle in [(0, 1, 6.0), (0, 2, 6.0), (0, 3, 10.0), (0, 4, 10.0), (3, 4, 5.0)]:
        landscape.add_path(a, b, saddle)
    assert landscape.mst() == [(0, 1, 6.0), (0, 2, 6.0), (0, 3, 10.0), (3, 4, 5.0)]  # 0-3 beats 0-4: E_3 > E_4
    # open pairs (1,3) (1,4) (2,3) (2,4) have higher energies 5, 5, 4, 2
    assert landscape.next_pair() == (2, 4)
    assert events[-1] == PairChosen(pair=(2, 4), reason="replace", attacked_edge=[0, 3])


def test_a_lower_saddle_for_a_known_pair_updates_the_tree():
    events = []
    landscape = Landscape(FOUR_ENERGIES, on_event=events.append)
    for (a, b), saddle in FOUR_SADDLES.items():
        if (a, b) != (2, 3):
            landscape.add_path(a, b, saddle)
    assert landscape.next_pair() == (2, 3)
    assert landscape.ignored == [(0, 1)]
    del events[:]
    landscape.add_path(0, 3, 2.0)  # a tree edge gets lighter
    landscape.add_path(1, 2, 3.2)  # a known pair now beats the ignored edge (0, 1)
    assert events == [
        MSTEdgeReplaced(removed=[0, 3], removed_energy=3.0, added=[0, 3], added_energy=2.0),
        MSTEdgeReplaced(removed=[0, 1], removed_energy=5.0, added=[1, 2], added_energy=3.2),
    ]
    assert landscape.ignored == []
    assert landscape.mst() == [(0, 2, 4.0), (0, 3, 2.0), (1, 2, 3.2)]
    landscape.add_path(2, 3, 3.5)
    assert landscape.mst() == [(0, 3, 2.0), (1, 2, 3.2), (2, 3, 3.5)]
    assert landscape.finished_reason == "all_pairs"


def test_star_variant_connects_the_lowest_minimum_and_stops():
    events = []
    landscape = Landscape([3.0, 1.0, 0.0, 2.0], variant="star", on_event=events.append)
    assert [landscape.choose(in_flight=[(0, 2), (1, 2)][:k]) for k in range(3)] == [(0, 2), (1, 2), (2, 3)]
    table = Table({(0, 2): 5.0, (1, 2): 4.0, (2, 3): 6.0})
    mst = run_landscape(landscape, table)
    assert table.asked == [(0, 2), (1, 2), (2, 3)]
    assert mst == [(0, 2, 5.0), (1, 2, 4.0), (2, 3, 6.0)]
    assert landscape.finished_reason == "star"
    assert [e for e in events if isinstance(e, LandscapeFinished)] == [
        LandscapeFinished(reason="star", mst=[[0, 2, 5.0], [1, 2, 4.0], [2, 3, 6.0]])
    ]


@pytest.mark.parametrize(
    ("tolerance", "relative", "reason", "paths"),
    [
        (0.5, False, "tolerance", 3),  # star saddles 5, 4.5, 4.75: spread 0.5
        (0.25, False, "all_pairs", 6),
        (0.1, True, "relative", 3),  # 0.1 * 5 = 0.5: the rule's own name
        (0.05, True, "all_pairs", 6),
    ],
)
def test_tolerance_stop(tolerance, relative, reason, paths):
    saddles = {(0, 1): 5.0, (0, 2): 4.5, (0, 3): 4.75, (1, 2): 8.0, (1, 3): 8.0, (2, 3): 8.0}
    landscape = Landscape(FOUR_ENERGIES, stop="tolerance", tolerance=tolerance, relative=relative)
    run_landscape(landscape, Table(saddles))
    assert landscape.finished_reason == reason
    assert landscape.computed == paths


def test_max_pairs_stops_and_limits_parallel_starts():
    events = []
    landscape = Landscape(FOUR_ENERGIES, max_pairs=4, on_event=events.append)
    assert [landscape.choose(in_flight=[(0, 1), (0, 2), (0, 3)][:k]) for k in range(3)] == [(0, 1), (0, 2), (0, 3)]
    for pair in [(0, 1), (0, 2), (0, 3)]:
        landscape.add_path(*pair, FOUR_SADDLES[pair])
    assert landscape.choose() == (1, 2)
    assert landscape.choose(in_flight=[(1, 2)]) is None  # not a fifth: only four may be computed
    landscape.add_path(1, 2, FOUR_SADDLES[(1, 2)])
    assert landscape.finished_reason == "max_pairs"
    assert landscape.next_pair() is None
    assert events[-1] == LandscapeFinished(reason="max_pairs", mst=[[0, 1, 5.0], [0, 2, 4.0], [0, 3, 3.0]])
    assert sum(isinstance(e, LandscapeFinished) for e in events) == 1


@pytest.mark.parametrize("workers", [1, 3])
def test_max_pairs_below_the_spanning_tree_still_connects_every_minimum(workers):
    """A budget of 2 pairs for 4 minima: the first spanning tree's 3 pairs are computed
    all the same (one at a time or side by side), and the reason says the tree overran it."""
    events = []
    landscape = Landscape(FOUR_ENERGIES, max_pairs=2, on_event=events.append)
    in_flight: list = []
    while True:
        while len(in_flight) < workers and (pair := landscape.choose(in_flight)) is not None:
            in_flight.append(pair)
        if not in_flight:
            break
        done = in_flight.pop(0)
        landscape.add_path(*done, FOUR_SADDLES[done])
    assert landscape.computed == 3
    assert landscape.mst() == [(0, 1, 5.0), (0, 2, 4.0), (0, 3, 3.0)]
    assert landscape.finished_reason == "max_pairs_after_tree"
    assert [e for e in events if isinstance(e, LandscapeFinished)] == [
        LandscapeFinished(reason="max_pairs_after_tree", mst=[[0, 1, 5.0], [0, 2, 4.0], [0, 3, 3.0]])]


def test_choices_beside_pairs_in_flight():
    events = []
    landscape = Landscape(FOUR_ENERGIES, on_event=events.append)
    assert landscape.choose() == (0, 1)
    assert landscape.choose(in_flight=[(1, 0)]) == (0, 2)
    assert landscape.choose(in_flight=[(1, 0), (0, 2)]) == (0, 3)
    assert landscape.choose(in_flight=[(1, 0), (0, 2), (0, 3)]) is None  # nothing else in the initial phase
    assert not landscape.finished
    landscape.add_path(0, 2, 4.0)
    landscape.add_path(0, 3, 3.0)
    # a stop rule's choices wait for the whole initial tree; all pairs are needed anyway
    tolerance = Landscape(FOUR_ENERGIES, stop="tolerance", tolerance=0.1)
    for pair, saddle in (((0, 2), 4.0), ((0, 3), 3.0)):
        tolerance.add_path(*pair, saddle)
    assert tolerance.choose(in_flight=[(0, 1)]) is None
    assert Landscape.from_state(landscape.state_dict()).choose(in_flight=[(0, 1)]) == (2, 3)
    landscape.add_path(0, 1, 5.0)
    # the tree (0-1 5.0, 0-2 4.0, 0-3 3.0): the highest edge's cut {1} | {0, 2, 3} first
    assert landscape.choose() == (1, 2)
    assert landscape.next_pair() == (1, 2)  # same pair until its path arrives
    # (1, 2) in flight crosses the cuts of 0-1 and 0-2 (its tree path is 1-0-2): 0-3's is next
    assert landscape.choose(in_flight=[(1, 2)]) == (1, 3)
    # every cut crossed: a second pair across the highest cut that has one left
    assert landscape.choose(in_flight=[(1, 2), (1, 3)]) == (2, 3)
    assert landscape.choose(in_flight=[(1, 2), (1, 3), (2, 3)]) is None
    assert not landscape.finished
    assert [e.pair for e in events if isinstance(e, PairChosen)] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    chosen = {e.pair: e.attacked_edge for e in events if isinstance(e, PairChosen)}
    assert chosen[(1, 2)] == [0, 1] and chosen[(1, 3)] == [0, 3] and chosen[(2, 3)] == [0, 2]


def test_bound_on_a_hand_made_tree():
    landscape = Landscape([0.0, 1.0, 0.5, 2.0, 0.2])
    landscape.add_path(0, 1, 5.0)
    landscape.add_path(1, 2, 3.0)
    landscape.add_path(2, 3, 4.0)
    landscape.add_path(0, 3, 9.0)  # not in the tree
    assert landscape.mst() == [(0, 1, 5.0), (1, 2, 3.0), (2, 3, 4.0)]
    assert landscape.bound(0, 3) == 5.0
    assert landscape.bound(3, 1) == 4.0
    assert landscape.bound(1, 2) == 3.0
    assert landscape.bound(2, 2) == 0.5
    assert landscape.bound(0, 4) == math.inf


def test_one_minimum_is_finished_at_once():
    events = []
    landscape = Landscape([0.3], on_event=events.append)
    assert landscape.finished_reason == "all_pairs"
    assert landscape.next_pair() is None and landscape.mst() == []
    assert events == [LandscapeFinished(reason="all_pairs", mst=[])]


@pytest.mark.parametrize(
    ("energies", "options", "message"),
    [
        ([], {}, "at least one minimum"),
        ([0.0, math.nan], {}, "minimum 1"),
        ([0.0, 1.0], {"variant": "ring"}, "variant"),
        ([0.0, 1.0], {"stop": "never"}, "stop must be one of 'all_pairs', 'tolerance'"),
        ([0.0, 1.0], {"tolerance": -1.0}, "tolerance"),
        ([0.0, 1.0], {"max_pairs": -1}, "max_pairs"),
    ],
)
def test_bad_input_is_a_clear_error(energies, options, message):
    with pytest.raises(ValueError, match=message):
        Landscape(energies, **options)


def test_bad_paths_are_clear_errors():
    landscape = Landscape(MB_ENERGIES)
    with pytest.raises(ValueError, match="out of range"):
        landscape.add_path(0, 3, 1.0)
    with pytest.raises(ValueError, match="two different minima"):
        landscape.add_path(1, 1, 1.0)
    with pytest.raises(ValueError, match="saddle energy"):
        landscape.add_path(0, 1, math.nan)


def test_state_round_trip_mid_exploration():
    full = Table(FOUR_SADDLES)
    run_landscape(Landscape(FOUR_ENERGIES), full)

    for stop_after in range(len(full.asked) + 1):
        landscape = Landscape(FOUR_ENERGIES)
        first = Table(FOUR_SADDLES)
        for _ in range(stop_after):
            pair = landscape.next_pair()
            landscape.add_path(*pair, first(*pair))
        landscape.next_pair()  # chosen (and announced), not computed: lost in a crash
        state = json.loads(json.dumps(landscape.state_dict(), allow_nan=False))
        events = []
        restored = Landscape.from_state(state, on_event=events.append)
        rest = Table(FOUR_SADDLES)
        run_landscape(restored, rest)
        assert first.asked + rest.asked == full.asked
        assert not any(isinstance(e, PairChosen) and e.pair == (rest.asked or [None])[0] for e in events)
        assert restored.finished_reason == "all_pairs"
        assert restored.state_dict()["computed"] == len(full.asked)


# --- properties on random complete graphs -------------------------------------------


@st.composite
def complete_tables(draw, min_size=2, max_size=7):
    """Energies and a saddle for every pair, each saddle >= both end energies."""
    n = draw(st.integers(min_size, max_size))
    values = st.integers(0, 20).map(float)  # small integers: many ties
    energies = [draw(values) for _ in range(n)]
    saddles = {
        (a, b): max(energies[a], energies[b]) + draw(values) for a, b in itertools.combinations(range(n), 2)
    }
    return energies, saddles


def minimax(n: int, edges: dict[tuple[int, int], float]) -> list[list[float]]:
    """Brute force: the lowest possible highest saddle over all paths (Floyd-Warshall)."""
    best = [[math.inf] * n for _ in range(n)]
    for (a, b), s in edges.items():
        best[a][b] = best[b][a] = s
    for k in range(n):
        for i in range(n):
            for j in range(n):
                best[i][j] = min(best[i][j], max(best[i][k], best[k][j]))
    return best


@settings(max_examples=60, deadline=None, derandomize=True)
@given(table=complete_tables(), data=st.data())
def test_bound_is_ultrametric_and_the_minimax_path(table, data):
    energies, saddles = table
    n = len(energies)
    known = data.draw(st.lists(st.sampled_from(sorted(saddles)), unique=True))
    landscape = Landscape(energies)
    for a, b in known:
        landscape.add_path(a, b, saddles[(a, b)])
    brute = minimax(n, {p: saddles[p] for p in known})
    for a, b, c in itertools.product(range(n), repeat=3):
        assert landscape.bound(a, c) <= max(landscape.bound(a, b), landscape.bound(b, c))
    for a, b in itertools.combinations(range(n), 2):
        assert landscape.bound(a, b) == brute[a][b]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(table=complete_tables())
def test_exploration_finds_the_mst_of_the_full_table(table):
    energies, saddles = table
    n = len(energies)
    table_connect = Table(saddles)
    events = []
    mst = run_landscape(Landscape(energies, on_event=events.append), table_connect)

    full = nx.Graph()
    full.add_weighted_edges_from(((a, b, s) for (a, b), s in saddles.items()), weight="saddle")
    expected = nx.minimum_spanning_tree(full, weight="saddle", algorithm="kruskal")
    assert len(mst) == n - 1
    assert sum(s for _, _, s in mst) == expected.size(weight="saddle")
    # the loop runs until a path is known for each pair, each computed once
    assert sorted(table_connect.asked) == sorted(saddles)
    assert all(saddles[(a, b)] == s for a, b, s in mst)
    # events: pairs announced in the order computed, each edge ignored once, one finish, last
    assert [e.pair for e in events if isinstance(e, PairChosen)] == table_connect.asked
    ignored = [(e.a, e.b) for e in events if isinstance(e, EdgeIgnored)]
    assert len(set(ignored)) == len(ignored)
    assert [type(e) for e in events].count(LandscapeFinished) == 1 and isinstance(events[-1], LandscapeFinished)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(table=complete_tables(min_size=3), data=st.data())
def test_restored_landscape_continues_the_same_sequence_and_events(table, data):
    energies, saddles = table
    events_full = []
    full = Table(saddles)
    run_landscape(Landscape(energies, on_event=events_full.append), full)

    stop_after = data.draw(st.integers(0, len(full.asked)))
    events = []
    landscape = Landscape(energies, on_event=events.append)
    first = Table(saddles)
    for _ in range(stop_after):
        pair = landscape.next_pair()
        landscape.add_path(*pair, first(*pair))
    restored = Landscape.from_state(json.loads(json.dumps(landscape.state_dict())), on_event=events.append)
    rest = Table(saddles)
    run_landscape(restored, rest)
    assert first.asked + rest.asked == full.asked
    assert events == events_full
