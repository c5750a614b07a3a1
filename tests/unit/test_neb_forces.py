"""NEB forces: the perpendicular loss force, the parallel spring force, the
climbing image, and how neb_forces puts them together (hand numbers in 2-D)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.band.forces import neb_forces, project_perpendicular, spring_force


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# -- projection and loss force -------------------------------------------------------------


def test_project_perpendicular_hand_numbers() -> None:
    grads = t([[3.0, 4.0], [1.0, 0.0], [2.0, 2.0]])
    tangents = t([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # (3,4) - 3 (1,0) = (0,4);  (1,0) - 0.6 (0.6,0.8) = (0.64,-0.48);  (2,2) - 2 (0,1) = (2,0)
    expected = t([[0.0, 4.0], [0.64, -0.48], [2.0, 0.0]])
    assert torch.allclose(project_perpendicular(grads, tangents), expected)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_property_projection_removes_exactly_the_tangent_component(rows: int, dim: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    grads = torch.randn(rows, dim, generator=generator, dtype=torch.float64)
    tangents = torch.randn(rows, dim, generator=generator, dtype=torch.float64)
    tangents = tangents / tangents.norm(dim=1, keepdim=True)
    perpendicular = project_perpendicular(grads, tangents)
    # orthogonal to the tangent ...
    assert torch.allclose((perpendicular * tangents).sum(dim=1), torch.zeros(rows, dtype=torch.float64), atol=1e-12)
    # ... and what was removed lies along it, with the gradient's own tangent component
    removed = grads - perpendicular
    along = (grads * tangents).sum(dim=1, keepdim=True)
    assert torch.allclose(removed, along * tangents, atol=1e-12)
    # projecting twice changes nothing
    assert torch.allclose(project_perpendicular(perpendicular, tangents), perpendicular, atol=1e-12)


# -- spring force ----------------------------------------------------------------------------


def test_spring_force_hand_numbers() -> None:
    # pivot 1: |fwd| = 3, |bwd| = 1 -> 2 * (3 - 1) = 4 along (1, 0)
    # pivot 2: |fwd| = 4 (to (4,4)), |bwd| = 3 -> 2 * (4 - 3) = 2 along (0.6, 0.8)
    pivots = t([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [4.0, 4.0]])
    tangents = t([[1.0, 0.0], [0.6, 0.8]])
    assert torch.allclose(spring_force(pivots, tangents, 2.0), t([[4.0, 0.0], [1.2, 1.6]]))


def test_spring_force_vanishes_for_equal_segments() -> None:
    pivots = t([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(spring_force(pivots, t([[0.6, 0.8]]), 5.0), torch.zeros(1, 2, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 6), st.integers(2, 5), st.floats(0.01, 100.0), st.integers(0, 2**31 - 1))
def test_property_spring_force_is_parallel_with_magnitude_k_times_length_difference(
    count: int, dim: int, k: float, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    pivots = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    tangents = torch.randn(count - 2, dim, generator=generator, dtype=torch.float64)
    tangents = tangents / tangents.norm(dim=1, keepdim=True)
    force = spring_force(pivots, tangents, k)
    lengths = (pivots[1:] - pivots[:-1]).norm(dim=1)  # (N-1,)
    signed = k * (lengths[1:] - lengths[:-1])  # (N-2,)
    assert torch.allclose(force, signed.unsqueeze(1) * tangents, atol=1e-10)
    assert torch.allclose(force.norm(dim=1), signed.abs(), atol=1e-10)


# -- neb_forces -------------------------------------------------------------------------------

PIVOTS = t([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [4.0, 4.0]])  # (4, 2)
GRADS = t([[9.0, 9.0], [3.0, 4.0], [1.0, 2.0], [9.0, 9.0]])  # end rows must not matter
TANGENTS = t([[1.0, 0.0], [0.6, 0.8]])


def test_neb_forces_without_spring_are_the_loss_forces() -> None:
    forces = neb_forces(PIVOTS, GRADS, TANGENTS)
    # pivot 1: -(3,4) + 3 (1,0) = (0,-4); pivot 2: -(1,2) + 2.2 (0.6,0.8) = (0.32,-0.24)
    assert torch.allclose(forces, t([[0.0, -4.0], [0.32, -0.24]]))
    assert torch.equal(neb_forces(PIVOTS, GRADS, TANGENTS, spring=math.inf), forces)


def test_neb_forces_with_spring_add_the_spring_force() -> None:
    forces = neb_forces(PIVOTS, GRADS, TANGENTS, spring=2.0)
    assert torch.allclose(forces, t([[0.0, -4.0], [0.32, -0.24]]) + t([[4.0, 0.0], [1.2, 1.6]]))


def test_neb_forces_ignore_the_end_gradients() -> None:
    other = GRADS.clone()
    other[0], other[-1] = t([-100.0, 7.0]), t([0.5, 1e6])
    assert torch.equal(neb_forces(PIVOTS, other, TANGENTS, spring=2.0), neb_forces(PIVOTS, GRADS, TANGENTS, spring=2.0))


@pytest.mark.parametrize("spring", [math.inf, 2.0])
def test_climber_index_counts_pivots_and_replaces_only_its_row(spring: float) -> None:
    plain = neb_forces(PIVOTS, GRADS, TANGENTS, spring=spring)
    climbing = neb_forces(PIVOTS, GRADS, TANGENTS, spring=spring, climber=2)  # pivot 2 = interior row 1
    assert torch.equal(climbing[0], plain[0])
    # -(1,2) + 2 * 2.2 * (0.6, 0.8) = (1.64, 1.52), and no spring on the climber
    assert torch.allclose(climbing[1], t([1.64, 1.52]))
    first = neb_forces(PIVOTS, GRADS, TANGENTS, spring=spring, climber=1)
    assert torch.allclose(first[0], t([3.0, -4.0]))
    assert torch.equal(first[1], plain[1])


@pytest.mark.parametrize("climber", [0, 3, 4, -1])
def test_climber_must_be_an_interior_pivot(climber: int) -> None:
    with pytest.raises(ValueError, match="interior pivot"):
        neb_forces(PIVOTS, GRADS, TANGENTS, climber=climber)


def test_neb_forces_do_not_change_their_inputs() -> None:
    grads, tangents = GRADS.clone(), TANGENTS.clone()
    neb_forces(PIVOTS, grads, tangents, spring=2.0, climber=1)
    assert torch.equal(grads, GRADS) and torch.equal(tangents, TANGENTS)
