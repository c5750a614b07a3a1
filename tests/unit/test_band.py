"""The band as a piecewise-linear path: arc length, re-spacing, dense points.

Hand-checked numbers on small 2-D paths, and hypothesis properties of re-spacing
checked against a plain walk along the segments.

Tolerance of the property tests: coordinates lie in [-10, 10] and a path has at
most 8 pivots in at most 4 dimensions, so its length L is below 7 * 40 = 280.
Every position is a handful of float64 sums, products and one division away
from the exact value, each with relative error <= 2**-53 ~ 1.1e-16, so the
error of a point is a few times 1e-16 * L < 1e-13. TOL = 1e-9 leaves a margin of
four orders of magnitude and is still far below any mistake a test should catch
(a point on the wrong segment or at the wrong fraction is off by a visible
fraction of a segment).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.band.geometry import (
    arc_fractions,
    dense_alphas,
    dense_fractions,
    dense_points,
    linear_path,
    points_at,
    respace,
    segment_lengths,
)

TOL = 1e-9
PROPERTY = settings(max_examples=60, deadline=None)


def t(rows: list[list[float]] | list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# An L-shaped path: 1 along x, then 1 along y (length 2).
L_PATH = t([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])


# -- linear_path, segment_lengths, arc_fractions ------------------------------------


def test_linear_path_equal_steps_and_exact_ends() -> None:
    start, end = t([1.0, -2.0]), t([4.0, 2.0])
    path = linear_path(start, end, 4)
    assert torch.allclose(path, t([[1.0, -2.0], [2.0, -2.0 + 4 / 3], [3.0, -2.0 + 8 / 3], [4.0, 2.0]]))
    assert torch.equal(path[0], start) and torch.equal(path[-1], end)


def test_linear_path_keeps_awkward_end_points_bit_for_bit() -> None:
    start = torch.tensor([0.1, 1e-8, -3.3], dtype=torch.float32)
    end = torch.tensor([0.7, 12345.678, 1.0 / 3.0], dtype=torch.float32)
    path = linear_path(start, end, 7)
    assert path.shape == (7, 3) and path.dtype == torch.float32
    assert torch.equal(path[0], start) and torch.equal(path[-1], end)


def test_linear_path_needs_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2 points"):
        linear_path(t([0.0]), t([1.0]), 1)


def test_segment_lengths() -> None:
    pivots = t([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [3.0, 6.0]])
    assert torch.allclose(segment_lengths(pivots), t([5.0, 0.0, 2.0]))


def test_arc_fractions_of_uneven_path() -> None:
    pivots = t([[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]])  # lengths 1, 3
    assert torch.allclose(arc_fractions(pivots), t([0.0, 0.25, 1.0]))


def test_arc_fractions_with_a_repeated_pivot() -> None:
    pivots = t([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    assert torch.allclose(arc_fractions(pivots), t([0.0, 0.0, 1.0]))


def test_arc_fractions_never_exceed_one_before_the_end() -> None:
    # ends on a zero-length segment: with the total summed in another order than the
    # cumulative lengths, pivot N-2 got the fraction 1 + 2e-16 > fraction of pivot N-1
    values = [7.129019187374869, 8.44043395208491, -9.2379680501354, 4.073488852788586,
              -6.481748601715549, -6.430258247170599, -6.430258247170599]
    fractions = arc_fractions(t(values).unsqueeze(1))
    assert fractions[-2] == 1.0 and fractions[-1] == 1.0
    assert (fractions[1:] >= fractions[:-1]).all()


def test_arc_fractions_of_a_zero_length_path_are_equal() -> None:
    pivots = t([[1.0, 2.0]] * 5)
    fractions = arc_fractions(pivots)
    assert fractions.dtype == torch.float64
    assert torch.allclose(fractions, t([0.0, 0.25, 0.5, 0.75, 1.0]))


# -- points_at and respace -------------------------------------------------------


def test_points_at_on_the_l_path() -> None:
    points = points_at(L_PATH, t([0.0, 0.25, 0.5, 0.75, 1.0, 0.6]))
    expected = t([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [1.0, 1.0], [1.0, 0.2]])
    assert torch.allclose(points, expected, atol=1e-15)


def test_points_at_clamps_fractions_outside_zero_one() -> None:
    points = points_at(L_PATH, t([-0.5, 1.5]))
    assert torch.allclose(points, t([[0.0, 0.0], [1.0, 1.0]]))


def test_points_at_skips_zero_length_segments() -> None:
    pivots = t([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 2.0]])
    points = points_at(pivots, t([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert torch.allclose(points, t([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [2.0, 2.0]]))


def test_respace_equal_on_the_l_path() -> None:
    # 4 pivots crowded at the start of the L; equal spacing puts them at arc 0, 2/3, 4/3, 2
    pivots = t([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [1.0, 0.0], [1.0, 1.0]])
    moved = respace(pivots)
    expected = t([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [1.0, 1.0]])
    assert torch.allclose(moved, expected, atol=1e-15)


def test_respace_measures_arc_along_the_old_path_so_the_corner_is_cut() -> None:
    # Equal spacing is equal arc length along the OLD path: positions 0, 2/3, 4/3, 2.
    # The new chords are 2/3, sqrt(2)/3, 2/3: the corner between pivots 1 and 2 is cut,
    # so re-spacing a bent path again moves the pivots once more (not idempotent there).
    pivots = t([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.0, 1.0]])
    moved = respace(pivots)
    assert torch.allclose(moved, t([[0.0, 0.0], [2 / 3, 0.0], [1.0, 1 / 3], [1.0, 1.0]]), atol=1e-15)
    assert torch.allclose(segment_lengths(moved), t([2 / 3, math.sqrt(2) / 3, 2 / 3]))
    assert not torch.allclose(respace(moved), moved, atol=1e-6)


def test_respace_to_fractions_on_the_l_path() -> None:
    pivots = t([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [1.0, 1.0]])
    moved = respace(pivots, t([0.0, 0.25, 0.75, 1.0]))
    assert torch.allclose(moved, t([[0.0, 0.0], [0.5, 0.0], [1.0, 0.5], [1.0, 1.0]]), atol=1e-15)


def test_respace_accepts_float32_fractions_and_keeps_pivot_dtype() -> None:
    pivots = L_PATH.to(torch.float32)
    moved = respace(pivots, torch.tensor([0.0, 0.25, 1.0]))
    assert moved.dtype == torch.float32
    assert torch.allclose(moved, torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 1.0]]))


def test_respace_needs_one_fraction_per_pivot() -> None:
    with pytest.raises(ValueError, match="one fraction per pivot"):
        respace(L_PATH, t([0.0, 1.0]))


def test_respace_does_not_change_its_input() -> None:
    pivots = t([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0]])
    before = pivots.clone()
    respace(pivots)
    assert torch.equal(pivots, before)


# -- dense points ------------------------------------------------------------------


def test_dense_alphas() -> None:
    assert torch.allclose(dense_alphas(3), t([0.25, 0.5, 0.75]))
    assert torch.allclose(dense_alphas(9), torch.arange(1, 10, dtype=torch.float64) / 10)


def test_dense_points_layout() -> None:
    pivots = t([[0.0, 0.0], [3.0, 0.0], [3.0, 6.0]])
    dense = dense_points(pivots, 2)
    assert dense.shape == ((3 - 1) * (2 + 1) + 1, 2) == (7, 2)
    expected = t([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [3.0, 2.0], [3.0, 4.0], [3.0, 6.0]])
    assert torch.allclose(dense, expected)
    for i in range(3):  # row (between + 1) * i is pivot i, exactly
        assert torch.equal(dense[3 * i], pivots[i])


@pytest.mark.parametrize("count, between", [(2, 1), (3, 9), (6, 4)])
def test_dense_points_counts(count: int, between: int) -> None:
    pivots = torch.randn(count, 5, generator=torch.Generator().manual_seed(count), dtype=torch.float64)
    dense = dense_points(pivots, between)
    assert dense.shape == ((count - 1) * (between + 1) + 1, 5)
    assert torch.equal(dense[:: between + 1], pivots)
    assert dense_fractions(pivots, between).shape == (dense.shape[0],)


def test_dense_points_with_zero_between_are_the_pivots() -> None:
    assert torch.equal(dense_points(L_PATH, 0), L_PATH)
    assert torch.allclose(dense_fractions(L_PATH, 0), arc_fractions(L_PATH))


def test_dense_fractions_of_uneven_path() -> None:
    pivots = t([[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]])  # fractions 0, 1/4, 1
    assert torch.allclose(dense_fractions(pivots, 1), t([0.0, 0.125, 0.25, 0.625, 1.0]))


# -- properties --------------------------------------------------------------------

coordinate = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@st.composite
def paths(draw: st.DrawFn, min_pivots: int = 2) -> torch.Tensor:
    count = draw(st.integers(min_pivots, 8))
    dim = draw(st.integers(1, 4))
    values = draw(st.lists(coordinate, min_size=count * dim, max_size=count * dim))
    return t(values).view(count, dim)


@st.composite
def paths_with_fractions(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    pivots = draw(paths(min_pivots=2))
    inner = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=pivots.shape[0] - 2, max_size=pivots.shape[0] - 2)))
    return pivots, t([0.0, *inner, 1.0])


def walk(pivots: torch.Tensor, distance: float) -> torch.Tensor:
    """The point ``distance`` along the path, found by walking the segments one by one."""
    for k in range(pivots.shape[0] - 1):
        a, b = pivots[k], pivots[k + 1]
        length = float((b - a).norm())
        if distance <= length:
            return a if length == 0 else a + (distance / length) * (b - a)
        distance -= length
    return pivots[-1]


def distance_to_path(point: torch.Tensor, pivots: torch.Tensor) -> float:
    """Euclidean distance from ``point`` to the nearest segment of the path."""
    best = math.inf
    for k in range(pivots.shape[0] - 1):
        a, b = pivots[k], pivots[k + 1]
        step = b - a
        denom = float(step.dot(step))
        alpha = 0.0 if denom == 0 else min(max(float((point - a).dot(step)) / denom, 0.0), 1.0)
        best = min(best, float((point - (a + alpha * step)).norm()))
    return best


def total_length(pivots: torch.Tensor) -> float:
    return float(segment_lengths(pivots).sum())


@PROPERTY
@given(paths())
def test_property_respace_keeps_end_points_exactly(pivots: torch.Tensor) -> None:
    moved = respace(pivots)
    assert torch.equal(moved[0], pivots[0]) and torch.equal(moved[-1], pivots[-1])


@PROPERTY
@given(paths())
def test_property_respace_makes_equal_arc_lengths(pivots: torch.Tensor) -> None:
    moved = respace(pivots)
    count, length = pivots.shape[0], total_length(pivots)
    step = length / (count - 1)
    for j in range(count):  # pivot j sits j equal steps along the old path
        assert torch.allclose(moved[j], walk(pivots, j * step), atol=TOL, rtol=0)
    # a chord is never longer than the arc it spans
    assert (segment_lengths(moved) <= step + TOL).all()


@PROPERTY
@given(paths())
def test_property_respaced_points_lie_on_the_old_path(pivots: torch.Tensor) -> None:
    moved = respace(pivots)
    for point in moved:
        assert distance_to_path(point, pivots) <= TOL


@PROPERTY
@given(paths_with_fractions())
def test_property_respace_to_fractions_puts_pivot_i_at_fraction_i(case: tuple[torch.Tensor, torch.Tensor]) -> None:
    pivots, fractions = case
    moved = respace(pivots, fractions)
    length = total_length(pivots)
    for point, fraction in zip(moved, fractions.tolist()):
        assert torch.allclose(point, walk(pivots, fraction * length), atol=TOL, rtol=0)
        assert distance_to_path(point, pivots) <= TOL


@PROPERTY
@given(paths_with_fractions())
def test_property_respace_is_idempotent_at_the_target(case: tuple[torch.Tensor, torch.Tensor]) -> None:
    # pivots already at their target fractions do not move: respace(p, arc_fractions(p)) == p
    pivots, fractions = case
    moved = respace(pivots, fractions)
    again = respace(moved, arc_fractions(moved))
    assert torch.allclose(again, moved, atol=TOL, rtol=0)


@PROPERTY
@given(st.lists(coordinate, min_size=2, max_size=8), st.lists(coordinate, min_size=3, max_size=3),
       st.lists(coordinate, min_size=3, max_size=3))
def test_property_respace_twice_equals_once_on_a_straight_path(
    positions: list[float], origin: list[float], direction: list[float]
) -> None:
    # on a straight path walked in one direction chords equal arcs, so equal re-spacing is idempotent
    line = t(sorted(positions)).unsqueeze(1)  # (N, 1)
    pivots = t(origin) + line * t(direction)  # (N, 3)
    once = respace(pivots)
    assert torch.allclose(respace(once), once, atol=TOL, rtol=0)


@PROPERTY
@given(paths())
def test_property_arc_fractions_rise_from_zero_to_one(pivots: torch.Tensor) -> None:
    fractions = arc_fractions(pivots)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert (fractions[1:] >= fractions[:-1]).all()


@PROPERTY
@given(paths(), st.integers(0, 4))
def test_property_dense_fractions_are_the_arc_fractions_of_the_dense_points(pivots: torch.Tensor, between: int) -> None:
    if total_length(pivots) == 0:
        return  # a zero-length path has equal fractions by convention, not by geometry
    dense = dense_points(pivots, between)
    assert torch.allclose(dense_fractions(pivots, between), arc_fractions(dense), atol=TOL, rtol=0)


# -- devices ---------------------------------------------------------------------------


def test_respace_keeps_the_pivots_device_with_cpu_fractions() -> None:
    # "meta" tensors carry no data, so any CPU tensor mixed into the computation raises;
    # this stands in for CUDA pivots with the CPU float64 fractions the band keeps
    pivots = torch.empty(5, 3, device="meta")
    assert respace(pivots).device.type == "meta"
    assert respace(pivots, t([0.0, 0.1, 0.5, 0.7, 1.0])).device.type == "meta"
    assert points_at(pivots, t([0.3])).shape == (1, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_band_functions_on_cuda_pivots() -> None:
    pivots = L_PATH.cuda()
    assert torch.allclose(respace(pivots, t([0.0, 0.25, 1.0])).cpu(), t([[0.0, 0.0], [0.5, 0.0], [1.0, 1.0]]))
    assert torch.allclose(respace(pivots).cpu(), L_PATH)
    assert torch.allclose(arc_fractions(pivots).cpu(), t([0.0, 0.5, 1.0]))
    assert arc_fractions(torch.zeros(3, 2, device="cuda")).device.type == "cuda"
    assert torch.allclose(dense_fractions(pivots, 1).cpu(), t([0.0, 0.25, 0.5, 0.75, 1.0]))
