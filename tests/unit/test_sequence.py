"""Several pairs at once: the pair sequence gives the same pairs, order and MST
whatever the timing, and with the all-pairs rule the same MST as one at a time."""

from __future__ import annotations

import heapq
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import PairChosen
from engine.landscape.graph import Landscape
from engine.landscape.sequence import PairSequence


@st.composite
def tables(draw, min_size=3, max_size=8):
    """Energies and a saddle for every pair (saddle >= both ends), with many ties."""
    n = draw(st.integers(min_size, max_size))
    energies = [float(draw(st.integers(0, 12))) for _ in range(n)]
    saddles = {
        (a, b): max(energies[a], energies[b]) + float(draw(st.integers(0, 12)))
        for a in range(n) for b in range(a + 1, n)
    }
    return energies, saddles


def simulate(sequence: PairSequence, saddles, workers: int, rng: random.Random, crash_at: int | None = None):
    """Run the sequence on ``workers`` simulated workers with random durations.
    Returns the pairs in the order their paths were applied, and the pairs started;
    with ``crash_at``, stops after that many finishes and returns the state too."""
    clock, busy, started, applied, finishes = 0.0, [], [], [], 0
    while True:
        running = {pair for _, pair in busy}
        for pair in sequence.open():
            if len(busy) >= workers:
                break
            if pair not in running:
                started.append(pair)
                heapq.heappush(busy, (clock + rng.choice([0.1, 1.0, 1.0, 5.0]), pair))
        if not busy:
            return applied, started, None
        clock, pair = heapq.heappop(busy)
        applied += sequence.add(pair, saddles[pair])
        finishes += 1
        if crash_at is not None and finishes == crash_at:
            return applied, started, json.loads(json.dumps(sequence.state_dict()))


def sequential(energies, saddles, lookahead: int, **options):
    events = []
    sequence = PairSequence(Landscape(energies, on_event=events.append, **options), lookahead)
    applied, _, _ = simulate(sequence, saddles, 1, random.Random(0))
    return sequence, applied, events


@settings(max_examples=60, deadline=None, derandomize=True)
@given(table=tables(), workers=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_the_result_does_not_depend_on_which_worker_finishes_first(table, workers, seed):
    energies, saddles = table
    lookahead = workers + 1
    reference, reference_applied, reference_events = sequential(energies, saddles, lookahead)

    events = []
    sequence = PairSequence(Landscape(energies, on_event=events.append), lookahead)
    applied, started, _ = simulate(sequence, saddles, workers, random.Random(seed))

    assert applied == reference_applied == reference.order
    assert sequence.landscape.mst() == reference.landscape.mst()
    assert events == reference_events
    assert len(set(started)) == len(started)  # never a pair twice


@settings(max_examples=40, deadline=None, derandomize=True)
@given(table=tables(), workers=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_all_pairs_ends_in_the_mst_of_one_pair_at_a_time(table, workers, seed):
    energies, saddles = table
    one, _, _ = sequential(energies, saddles, 1)
    sequence = PairSequence(Landscape(energies), 2 * workers)
    applied, _, _ = simulate(sequence, saddles, workers, random.Random(seed))
    assert sequence.landscape.finished_reason == one.landscape.finished_reason == "all_pairs"
    assert sorted(applied) == sorted(saddles)
    assert sequence.landscape.mst() == one.landscape.mst()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(table=tables(min_size=4), workers=st.integers(2, 5), seed=st.integers(0, 2**16), data=st.data())
def test_a_crash_and_resume_changes_nothing(table, workers, seed, data):
    energies, saddles = table
    lookahead = 2 * workers
    reference, reference_applied, _ = sequential(energies, saddles, lookahead)

    crash_at = data.draw(st.integers(1, len(reference_applied)))
    sequence = PairSequence(Landscape(energies), lookahead)
    before, _, state = simulate(sequence, saddles, workers, random.Random(seed), crash_at=crash_at)
    if state is None:  # finished before the crash
        assert before == reference_applied
        return
    # what finished but waited for an earlier pair is lost in the crash: computed again
    state["waiting"] = {}
    resumed = PairSequence.from_state(state)
    after, _, _ = simulate(resumed, saddles, workers, random.Random(seed + 1))
    assert before + after == reference_applied
    assert resumed.landscape.mst() == reference.landscape.mst()


@pytest.mark.parametrize("lookahead", [1, 3, 8])
def test_a_stop_rule_drops_what_it_did_not_need_and_counts_it(lookahead):
    energies = [0.0, 1.0, 2.0, 3.0, 4.0]
    saddles = {(a, b): 10.0 + a + b for a in range(5) for b in range(a + 1, 5)}
    saddles.update({(0, 1): 5.0, (0, 2): 5.1, (0, 3): 5.2, (0, 4): 5.3})  # the star meets the tolerance
    events = []
    sequence = PairSequence(Landscape(energies, stop="tolerance", tolerance=0.5, on_event=events.append), lookahead)
    applied, started, _ = simulate(sequence, saddles, lookahead, random.Random(1))
    assert sequence.landscape.finished_reason == "tolerance"
    assert applied == [(0, 1), (0, 2), (0, 3), (0, 4)]
    chosen = [e.pair for e in events if isinstance(e, PairChosen)]
    assert chosen == applied + sequence.beyond_need
    assert len(sequence.beyond_need) <= lookahead - 1
    assert sequence.open() == [] and sequence.add((1, 2), 11.0) == []


def test_lookahead_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="lookahead"):
            PairSequence(Landscape([0.0, 1.0]), bad)
