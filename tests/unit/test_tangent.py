"""Tangents at the interior pivots: the paper's rule, Henkelman & Jonsson's improved
tangent and the authors' code's variant, on hand-computed 2-D cases.

The bent band used throughout: p0 = (0, 0), p1 = (1, 0), p2 = (1, 2), so at p1
tau+ = p2 - p1 = (0, 2) and tau- = p1 - p0 = (1, 0) (unit: (0, 1) and (1, 0)).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.band.tangent import TANGENTS, improved_tangent, paper_tangent, reference_tangent

BENT = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
UP = [0.0, 1.0]  # unit tau+
RIGHT = [1.0, 0.0]  # unit tau-


def losses(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def unit(*v: float) -> torch.Tensor:
    vector = torch.tensor([v], dtype=torch.float64)
    return vector / vector.norm()


def test_registry_names() -> None:
    assert TANGENTS == {"paper": paper_tangent, "improved": improved_tangent, "reference": reference_tangent}


# -- the paper's rule --------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [
        ((0.0, 1.0, 2.0), UP),  # rising: next is higher
        ((2.0, 1.0, 0.0), RIGHT),  # falling: previous is higher
        ((0.0, 3.0, 1.0), UP),  # local max, next (1) above previous (0)
        ((2.0, 0.0, 1.0), RIGHT),  # local min, previous (2) above next (1)
        ((1.0, 1.0, 1.0), RIGHT),  # tie: "otherwise" takes the backward segment
    ],
)
def test_paper_tangent_points_to_the_higher_neighbour(values: tuple[float, ...], expected: list[float]) -> None:
    assert torch.allclose(paper_tangent(BENT, losses(*values)), unit(*expected))


# -- Henkelman & Jonsson's improved tangent ------------------------------------------


def test_improved_tangent_monotone_cases_take_one_segment() -> None:
    assert torch.allclose(improved_tangent(BENT, losses(0.0, 1.0, 2.0)), unit(*UP))
    assert torch.allclose(improved_tangent(BENT, losses(2.0, 1.0, 0.0)), unit(*RIGHT))


def test_improved_tangent_at_a_local_max() -> None:
    # V = (0, 3, 1): dV+ = 2, dV- = 3 -> dVmax = 3, dVmin = 2; next (1) > previous (0)
    # tau = tau+ dVmax + tau- dVmin = (0, 2) * 3 + (1, 0) * 2 = (2, 6)
    tangent = improved_tangent(BENT, losses(0.0, 3.0, 1.0))
    assert torch.allclose(tangent, unit(2.0, 6.0))
    assert torch.allclose(tangent, torch.tensor([[1.0, 3.0]], dtype=torch.float64) / math.sqrt(10))


def test_improved_tangent_at_a_local_min() -> None:
    # V = (2, 0, 1): dV+ = 1, dV- = 2; next (1) < previous (2)
    # tau = tau+ dVmin + tau- dVmax = (0, 2) * 1 + (1, 0) * 2 = (2, 2)
    assert torch.allclose(improved_tangent(BENT, losses(2.0, 0.0, 1.0)), unit(1.0, 1.0))


def test_improved_tangent_uses_raw_segment_vectors() -> None:
    # a longer forward segment pulls harder: p2 = (1, 10), V = (0, 3, 1): (0, 10) * 3 + (1, 0) * 2
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 10.0]], dtype=torch.float64)
    assert torch.allclose(improved_tangent(pivots, losses(0.0, 3.0, 1.0)), unit(2.0, 30.0))


def test_improved_tangent_with_one_equal_neighbour_takes_the_other_segment() -> None:
    # V = (0, 0, 1): not strictly rising; dVmax = 1, dVmin = 0 -> tau+ only
    assert torch.allclose(improved_tangent(BENT, losses(0.0, 0.0, 1.0)), unit(*UP))


def test_improved_tangent_on_a_flat_band_is_the_sum_of_segments() -> None:
    assert torch.allclose(improved_tangent(BENT, losses(1.0, 1.0, 1.0)), unit(1.0, 2.0))


# -- the authors' code: normalised segments, weights swapped at extrema -------------------


def test_reference_tangent_monotone_cases_match_the_text() -> None:
    assert torch.allclose(reference_tangent(BENT, losses(0.0, 1.0, 2.0)), unit(*UP))
    assert torch.allclose(reference_tangent(BENT, losses(2.0, 1.0, 0.0)), unit(*RIGHT))


def test_reference_tangent_at_a_local_max_weights_the_lower_neighbour_more() -> None:
    # V = (0, 3, 1): the previous pivot (0) is lower, so tau- gets dVmax = 3, tau+ gets dVmin = 2
    # with unit segments: (0, 1) * 2 + (1, 0) * 3 = (3, 2)
    assert torch.allclose(reference_tangent(BENT, losses(0.0, 3.0, 1.0)), unit(3.0, 2.0))


def test_reference_tangent_at_a_local_min_weights_the_lower_neighbour_more() -> None:
    # V = (2, 0, 1): the next pivot (1) is lower, so tau+ gets dVmax = 2, tau- gets dVmin = 1
    assert torch.allclose(reference_tangent(BENT, losses(2.0, 0.0, 1.0)), unit(1.0, 2.0))


def test_reference_tangent_normalises_segments_first() -> None:
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 10.0]], dtype=torch.float64)
    assert torch.allclose(reference_tangent(pivots, losses(0.0, 3.0, 1.0)), unit(3.0, 2.0))
    assert torch.allclose(reference_tangent(pivots, losses(2.0, 0.0, 1.0)), unit(1.0, 2.0))


@pytest.mark.parametrize(
    "values, expected",
    [
        ((1.0, 1.0, 2.0), UP),  # the next is higher: towards it
        ((1.0, 2.0, 2.0), UP),
        ((1.0, 1.0, 1.0), UP),  # all equal: "else" takes the next segment, no bisector
        ((2.0, 1.0, 1.0), RIGHT),  # the previous is higher: towards it
        ((2.0, 2.0, 1.0), RIGHT),
    ],
)
def test_reference_tangent_at_equal_neighbour_losses_takes_the_authors_segment(
    values: tuple[float, ...], expected: list[float]
) -> None:
    """The code's strict comparisons see no extremum when a neighbour's loss equals
    the pivot's, and take one segment; its swapped weights would pick the other
    (and the bisector for three equal losses)."""
    assert torch.allclose(reference_tangent(BENT, losses(*values)), unit(*expected))


# -- several pivots at once; unit length ---------------------------------------------------


def test_tangents_per_interior_pivot() -> None:
    # a zig-zag of 5 pivots with a max at pivot 1 and a min at pivot 2, rising at pivot 3
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    values = losses(0.0, 4.0, 1.0, 2.0, 5.0)
    # pivot 1: tau+ = (0, 1), tau- = (1, 0), dV+ = 3, dV- = 4; next (1) > previous (0)
    #          -> improved (0,1)*4 + (1,0)*3, reference (0,1)*3 + (1,0)*4
    # pivot 2: tau+ = (1, 0), tau- = (0, 1), dV+ = 1, dV- = 3; next (2) < previous (4)
    #          -> improved (1,0)*1 + (0,1)*3, reference (1,0)*3 + (0,1)*1
    # pivot 3: rising -> tau+ = (0, 2)
    expected = torch.cat([unit(3.0, 4.0), unit(1.0, 3.0), unit(0.0, 1.0)])
    assert torch.allclose(improved_tangent(pivots, values), expected)
    reference = torch.cat([unit(4.0, 3.0), unit(3.0, 1.0), unit(0.0, 1.0)])
    assert torch.allclose(reference_tangent(pivots, values), reference)
    # paper: pivot 1 next (1) > previous (0) -> tau+ = (0, 1); pivot 2 previous higher -> tau- = (0, 1)
    paper = torch.cat([unit(0.0, 1.0), unit(0.0, 1.0), unit(0.0, 1.0)])
    assert torch.allclose(paper_tangent(pivots, values), paper)


@settings(max_examples=50, deadline=None)
@given(st.integers(3, 7), st.integers(2, 5), st.integers(0, 2**31 - 1), st.sampled_from(sorted(TANGENTS)))
def test_property_tangents_have_unit_length(count: int, dim: int, seed: int, name: str) -> None:
    generator = torch.Generator().manual_seed(seed)
    pivots = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    values = torch.randint(0, 3, (count,), generator=generator).to(torch.float64)  # many ties and extrema
    tangents = TANGENTS[name](pivots, values)
    assert tangents.shape == (count - 2, dim)
    assert torch.allclose(tangents.norm(dim=1), torch.ones(count - 2, dtype=torch.float64))


def test_tangent_keeps_float32() -> None:
    for name, tangent in TANGENTS.items():
        result = tangent(BENT.to(torch.float32), losses(0.0, 3.0, 1.0).to(torch.float32))
        assert result.dtype == torch.float32, name
