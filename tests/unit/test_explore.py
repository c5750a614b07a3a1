"""The landscape exploration driving AutoNEB on Himmelblau's four minima, whose
saddles are known: the MST must hold the three lowest connecting saddles."""

from __future__ import annotations

import pytest

from engine import Exploration, Himmelblau, load_schedule
from engine.events import LandscapeFinished, PairChosen

SURFACE = Himmelblau()
MINIMA = SURFACE.minimum_positions()
SCHEDULE = load_schedule("surface").scaled(0.5).with_climbing()
# Going round the four minima: 0 -(13.31)- 3 -(178.34)- 2 -(104.02)- 1 -(67.72)- 0
MST_SADDLES = [13.311926, 67.719150, 104.015163]


def test_all_pairs_exploration_finds_the_three_lowest_saddles():
    trace = []
    exploration = Exploration(SURFACE, MINIMA, SCHEDULE, on_event=trace.append)
    result = exploration.run()
    assert sorted(s for _, _, s in result.mst) == pytest.approx(MST_SADDLES, abs=0.01)
    assert result.finished_reason == "all_pairs"
    assert len(result.paths) == 6
    # AutoNEB finds the direct local MEP between 2 and 3 over the highest saddle;
    # the MST leaves it out, and the ultrametric bound goes round it
    assert result.paths[(2, 3)].saddle_energy == pytest.approx(178.337, abs=0.01)
    assert (2, 3) not in {(a, b) for a, b, _ in result.mst}
    assert exploration.landscape.bound(2, 3) == pytest.approx(104.015, abs=0.01)
    chosen = [e for e in trace if isinstance(e, PairChosen)]
    assert [e.reason for e in chosen[:3]] == ["initial"] * 3
    assert isinstance(trace[-1], LandscapeFinished)


def test_star_variant_connects_the_lowest_minimum_to_all_others_only():
    result = Exploration(SURFACE, MINIMA, SCHEDULE.scaled(0.5), variant="star").run()
    assert set(result.paths) == {(0, 1), (0, 2), (0, 3)}
    assert result.finished_reason == "star"


def test_too_few_minima_or_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="at least 2 minima"):
        Exploration(SURFACE, MINIMA[:1], SCHEDULE)
    with pytest.raises(ValueError, match=r"\(M, 2\) tensor"):
        Exploration(SURFACE, MINIMA.reshape(-1), SCHEDULE)
