"""AutoNEB's refinement: residuals of the dense profile against the linear
interpolation of the pivot losses, the choice of segments, and the insertion.

Profiles have 3 pivots and between = 3 dense points per segment, so 9 rows:
pivots at rows 0, 4, 8 and inner points at alpha = 1/4, 1/2, 3/4.
"""

from __future__ import annotations

import pytest
import torch

from engine.band.geometry import arc_fractions, dense_points
from engine.band.insertion import Insertion, choose_insertions, insert_pivots, residuals


def t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# pivots 0, 0, 2; a bump 1, 2, 1 in segment 0; segment 1 flat at 0.5
BUMP = t([0.0, 1.0, 2.0, 1.0, 0.0, 0.5, 0.5, 0.5, 2.0])


# -- residuals ----------------------------------------------------------------------------


def test_residuals_hand_numbers() -> None:
    # segment 0: linear 0 -> 0 is 0, residuals = the bump; segment 1: linear 0 -> 2 is 0.5, 1, 1.5
    expected = t([[1.0, 2.0, 1.0], [0.0, -0.5, -1.0]])
    assert torch.allclose(residuals(BUMP, 3), expected)


def test_residuals_of_a_linear_profile_are_zero() -> None:
    profile = t([1.0, 1.25, 1.5, 1.75, 2.0, 1.5, 1.0, 0.5, 0.0])
    assert torch.allclose(residuals(profile, 3), torch.zeros(2, 3, dtype=torch.float64))


def test_residuals_accept_float32() -> None:
    assert torch.allclose(residuals(BUMP.to(torch.float32), 3), t([[1.0, 2.0, 1.0], [0.0, -0.5, -1.0]]))


@pytest.mark.parametrize("length", [8, 10, 1])
def test_residuals_reject_a_profile_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="dense losses"):
        residuals(torch.zeros(length, dtype=torch.float64), 3)


# -- choose_insertions ---------------------------------------------------------------------

# pivots 0, 0, 1. Segment 0 has a bump of 2 (residual 2 at alpha 1/2); segment 1 rises
# 0 -> 1 with residual 0.3 everywhere. Dense range = 2, pivot range = 1, so the scores are
#   dense:  segment 0: 2 / 2 = 1.0,  segment 1: 0.3 / 2 = 0.15
#   pivots: segment 0: 2 / 1 = 2.0,  segment 1: 0.3 / 1 = 0.3
TWO_BUMPS = t([0.0, 1.0, 2.0, 1.0, 0.0, 0.55, 0.8, 1.05, 1.0])


def test_threshold_rule_with_dense_scale() -> None:
    chosen = choose_insertions(TWO_BUMPS, 3, threshold=0.2, scale="dense")
    assert chosen == [Insertion(segment=0, alpha=0.5, score=pytest.approx(1.0))]


def test_threshold_rule_with_pivot_scale_refines_more() -> None:
    chosen = choose_insertions(TWO_BUMPS, 3, threshold=0.2, scale="pivots")
    assert [c.segment for c in chosen] == [0, 1]
    assert [c.score for c in chosen] == pytest.approx([2.0, 0.3])
    assert chosen[0].alpha == 0.5
    assert chosen[1].alpha in (0.25, 0.5, 0.75)  # equal residuals: any of them


def test_threshold_rule_respects_a_limit() -> None:
    assert [c.segment for c in choose_insertions(TWO_BUMPS, 3, threshold=0.2, scale="pivots", limit=1)] == [0]


def test_threshold_is_strict() -> None:
    assert choose_insertions(TWO_BUMPS, 3, threshold=1.0, scale="dense") == []
    assert [c.segment for c in choose_insertions(TWO_BUMPS, 3, threshold=0.999, scale="dense")] == [0]


def test_best_point_of_a_segment_is_its_largest_residual() -> None:
    profile = t([0.0, 0.1, 0.2, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0])
    (chosen,) = choose_insertions(profile, 3, threshold=0.1)
    assert chosen.segment == 0 and chosen.alpha == 0.75 and chosen.score == pytest.approx(1.0)


def test_candidates_are_sorted_best_first() -> None:
    # residual peaks 0.2 (segment 0), 1.0 (segment 1), 0.5 (segment 2); dense range 1
    profile = t([0.0, 0.2, 0.0, 1.0, 0.0, 0.5, 0.0])
    chosen = choose_insertions(profile, 1, threshold=0.1)
    assert [c.segment for c in chosen] == [1, 2, 0]
    assert [c.score for c in chosen] == pytest.approx([1.0, 0.5, 0.2])


def test_equal_scores_keep_segment_order() -> None:
    profile = t([0.0, 1.0, 0.0, 1.0, 0.0])
    assert [c.segment for c in choose_insertions(profile, 1, threshold=0.5)] == [0, 1]


def test_highest_rule_takes_the_best_limit() -> None:
    profile = t([0.0, 0.2, 0.0, 1.0, 0.0, 0.5, 0.0])
    assert [c.segment for c in choose_insertions(profile, 1, threshold=0.1, rule="highest", limit=2)] == [1, 2]
    assert [c.segment for c in choose_insertions(profile, 1, threshold=0.1, rule="highest")] == [1]
    # still only segments over the threshold
    assert [c.segment for c in choose_insertions(profile, 1, threshold=0.3, rule="highest", limit=5)] == [1, 2]


@pytest.mark.parametrize("scale", ["dense", "pivots"])
@pytest.mark.parametrize("rule", ["threshold", "highest"])
def test_no_insertion_on_flat_or_linear_profiles(scale: str, rule: str) -> None:
    flat = torch.full((9,), 0.7, dtype=torch.float64)
    linear = torch.linspace(3.0, 1.0, 9, dtype=torch.float64)
    for profile in (flat, linear):
        assert choose_insertions(profile, 3, threshold=0.01, scale=scale, rule=rule, limit=3) == []


def test_no_insertion_for_a_dip_below_the_line() -> None:
    profile = t([1.0, 0.5, 0.0, 0.5, 1.0])
    assert choose_insertions(profile, 3, threshold=0.01) == []


def test_pivot_scale_with_equal_pivot_losses_still_sees_the_barrier() -> None:
    # two ends with exactly the same loss (e.g. minima related by a permutation) and a
    # barrier in between: the pivot range is 0, so the dense range normalises instead
    profile = t([0.0, 1.0, 2.0, 1.0, 0.0])
    chosen = choose_insertions(profile, 3, threshold=0.2, scale="pivots")
    assert chosen == [Insertion(segment=0, alpha=0.5, score=pytest.approx(1.0))]


def test_too_short_profile_has_nothing_to_refine() -> None:
    assert choose_insertions(t([0.0, 5.0, 0.0]), 3, threshold=0.1) == []


@pytest.mark.parametrize("bad", [{"scale": "pivot"}, {"rule": "top"}])
def test_unknown_scale_or_rule_is_an_error(bad: dict) -> None:
    with pytest.raises(ValueError, match="scale|rule"):
        choose_insertions(BUMP, 3, threshold=0.2, **bad)


# -- insert_pivots -----------------------------------------------------------------------------


def test_insert_pivots_hand_numbers() -> None:
    pivots = t([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0]])
    fractions = t([0.0, 0.5, 1.0])
    chosen = [Insertion(segment=1, alpha=0.5, score=2.0), Insertion(segment=0, alpha=0.25, score=1.0)]
    new_pivots, new_fractions, new_indices = insert_pivots(pivots, fractions, chosen)
    assert torch.allclose(new_pivots, t([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [4.0, 2.0], [4.0, 4.0]]))
    assert torch.allclose(new_fractions, t([0.0, 0.125, 0.5, 0.75, 1.0]))
    assert new_fractions.dtype == torch.float64
    assert new_indices == [1, 3]
    # the old pivots are all still there, in order
    assert torch.equal(new_pivots[[0, 2, 4]], pivots)


def test_insert_pivots_splits_the_target_fraction_not_the_arc_length() -> None:
    # targets follow the insertion history: segment 0 holds 0.2 of the band although it is half its length
    pivots = t([[0.0], [1.0], [2.0]])
    new_pivots, new_fractions, new_indices = insert_pivots(
        pivots, t([0.0, 0.2, 1.0]), [Insertion(segment=0, alpha=0.75, score=1.0)]
    )
    assert torch.allclose(new_pivots, t([[0.0], [0.75], [1.0], [2.0]]))
    assert torch.allclose(new_fractions, t([0.0, 0.15, 0.2, 1.0]))
    assert new_indices == [1]


def test_insert_pivots_without_insertions_is_the_same_band() -> None:
    pivots = t([[0.0, 1.0], [2.0, 3.0]])
    new_pivots, new_fractions, new_indices = insert_pivots(pivots, t([0.0, 1.0]), [])
    assert torch.equal(new_pivots, pivots) and torch.equal(new_fractions, t([0.0, 1.0])) and new_indices == []


def test_chosen_point_is_the_dense_point_that_was_evaluated() -> None:
    # the new pivot lands exactly on the dense evaluation point of highest residual
    pivots = t([[0.0, 0.0], [3.0, 0.0], [3.0, 1.0]])
    dense = dense_points(pivots, 3)
    profile = t([0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.9, 0.4, 0.0])
    chosen = choose_insertions(profile, 3, threshold=0.2)
    assert [(c.segment, c.alpha) for c in chosen] == [(1, 0.5)]
    new_pivots, _, (index,) = insert_pivots(pivots, arc_fractions(pivots), chosen)
    assert torch.allclose(new_pivots[index], dense[6])


def test_residuals_stay_on_the_profile_device() -> None:
    # "meta" tensors raise when a CPU tensor is mixed in: a stand-in for a CUDA profile
    assert residuals(torch.empty(9, device="meta"), 3).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_choose_insertions_on_a_cuda_profile() -> None:
    assert choose_insertions(TWO_BUMPS.cuda(), 3, threshold=0.2) == choose_insertions(TWO_BUMPS, 3, threshold=0.2)
