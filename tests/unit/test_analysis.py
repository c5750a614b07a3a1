"""engine.analysis: Hessian spectra against known spectra and finite differences,
2-D slices against the surface, path ensembles against predictions made by hand."""

from __future__ import annotations

import pytest
import torch
from stationary import polish
from torch import nn

from engine.analysis import (
    Predictor,
    coordinate_plane,
    evaluate_slice,
    hessian_spectrum,
    network_loss,
    path_curvatures,
    path_ensemble,
    plane_through,
    surface_loss,
    tangent_curvature,
)
from engine.networks.layout import ParameterLayout
from engine.energy.surfaces import MuellerBrown

SPECTRUM = [-2.0, -0.5, 0.0, 0.0, 0.0, 1e-5, 0.3, 1.0, 4.0, 10.0] + [2.0] * 30  # D = 40, 5 near zero


def quadratic(eigenvalues: list[float]):
    """0.5 x^T A x with A = Q diag(eigenvalues) Q^T for a seeded random rotation Q."""
    dim = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    return (lambda x: 0.5 * x @ a @ x), a


@pytest.mark.parametrize("dense_limit", [1000, 0], ids=["dense", "lanczos"])
def test_quadratic_extreme_eigenvalues(dense_limit):
    loss, _ = quadratic(SPECTRUM)
    point = torch.ones(len(SPECTRUM), dtype=torch.float64)  # the Hessian is A everywhere
    spectrum = hessian_spectrum(loss, point, k=3, dense_limit=dense_limit)
    assert spectrum.largest == pytest.approx([10.0, 4.0, 2.0], abs=1e-6)
    assert spectrum.smallest == pytest.approx([-2.0, -0.5, 0.0], abs=1e-6)
    assert spectrum.method == ("dense" if dense_limit else "lanczos")
    if dense_limit:
        # tolerance 1e-3 x 10: 0, 0, 0 and 1e-5 are near zero, 0.3 is not
        assert spectrum.near_zero == 4 and spectrum.negative == 2
    else:
        assert spectrum.near_zero is None and spectrum.negative is None


def test_curvature_along_a_direction_is_the_rayleigh_quotient():
    loss, a = quadratic(SPECTRUM)
    point = torch.zeros(len(SPECTRUM), dtype=torch.float64)
    direction = torch.arange(len(SPECTRUM), dtype=torch.float64)
    expected = float(direction @ a @ direction / (direction @ direction))
    assert tangent_curvature(loss, point, direction) == pytest.approx(expected, rel=1e-10)
    # a straight path's tangent is its direction everywhere
    pivots = torch.stack([point + t * direction for t in (0.0, 0.5, 1.0)])
    assert path_curvatures(loss, pivots) == pytest.approx([expected] * 3, rel=1e-10)


def finite_difference_hessian(surface: MuellerBrown, point: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    rows = []
    for i in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[i] = h
        _, up = surface.potential_and_gradient((point + step).unsqueeze(0))
        _, down = surface.potential_and_gradient((point - step).unsqueeze(0))
        rows.append((up[0] - down[0]) / (2 * h))
    hessian = torch.stack(rows)
    return (hessian + hessian.T) / 2


@pytest.mark.parametrize("kind, index", [("minimum", 0), ("minimum", 1), ("minimum", 2), ("saddle", 0), ("saddle", 1)])
def test_mueller_brown_hessian_matches_finite_differences(kind, index):
    surface = MuellerBrown()
    known = (surface.minima if kind == "minimum" else surface.saddles)[index]
    point = polish(surface, torch.tensor(known.position, dtype=torch.float64))
    expected = torch.linalg.eigvalsh(finite_difference_hessian(surface, point)).tolist()  # ascending
    spectrum = hessian_spectrum(surface_loss(surface), point, k=2)
    assert spectrum.smallest == pytest.approx(expected, rel=1e-6)
    assert spectrum.negative == (0 if kind == "minimum" else 1)


def test_mueller_brown_slice_is_the_surface_at_grid_points():
    surface = MuellerBrown()
    xs = torch.linspace(-1.5, 1.2, 7, dtype=torch.float64)
    ys = torch.linspace(-0.3, 2.0, 5, dtype=torch.float64)
    grid = evaluate_slice(surface, coordinate_plane(), xs, ys, chunk=4)
    assert grid.losses.shape == (5, 7)
    for j in (0, 2, 4):
        for i in (0, 3, 6):
            expected = float(surface.potential(torch.tensor([[xs[i], ys[j]]], dtype=torch.float64))[0])
            assert float(grid.losses[j, i]) == pytest.approx(expected, rel=1e-12)
    # the known minimum at (-0.55822, 1.44173) is the lowest value near it
    assert float(evaluate_slice(surface, coordinate_plane(), torch.tensor([-0.55822]), torch.tensor([1.44173])).losses) \
        == pytest.approx(-146.6995, abs=1e-3)


def test_plane_through_three_points():
    generator = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(6, generator=generator, dtype=torch.float64) for _ in range(3))
    plane = plane_through(a, b, c)
    coordinates = plane.project(torch.stack([a, b, c]))
    assert coordinates[0].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert coordinates[1].tolist() == pytest.approx([float((b - a).norm()), 0.0], abs=1e-12)
    assert float(coordinates[2, 1]) > 0
    # the three points lie in the plane: back from their coordinates exactly
    assert torch.allclose(plane.points(coordinates), torch.stack([a, b, c]), atol=1e-12)
    with pytest.raises(ValueError, match="one line"):
        plane_through(a, b, a + 2 * (b - a))


def test_network_loss_matches_the_module_on_its_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    loss = network_loss(model, x, y)
    theta = ParameterLayout.from_module(model).flatten(model)
    model.train()  # batch statistics, as network_loss uses
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(model(x), y))
    assert float(loss(theta)) == pytest.approx(expected, rel=1e-6)
    spectrum = hessian_spectrum(loss, theta.double(), k=2)
    assert spectrum.method == "dense" and len(spectrum.largest) == 2


def test_path_ensemble_averages_softmax_predictions():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))
    layout = ParameterLayout.from_module(model)
    start = layout.flatten(model)
    end = start + 0.8 * torch.randn(start.shape[0])
    pivots = torch.stack([start, (start + end) / 2 + 0.3, end])
    x, y = torch.randn(200, 3), torch.randint(0, 4, (200,))
    result = path_ensemble(Predictor(model, x), pivots, x, y, k=3)

    def probabilities(theta):
        layout.load_into(model, theta)
        with torch.no_grad():
            return torch.softmax(model(x).double(), dim=1)

    def accuracy(p):
        return float((p.argmax(dim=1) == y).double().mean())

    ends = probabilities(start), probabilities(end)
    middle = probabilities(pivots[1])  # equal arc length: k=3 puts the middle member at half the length
    lengths = (pivots[1:] - pivots[:-1]).norm(dim=1)
    if abs(float(lengths[0] - lengths[1])) > 1e-6:
        fraction = float(lengths.sum() / 2)
        t = fraction / float(lengths[0]) if fraction <= lengths[0] else (fraction - float(lengths[0])) / float(lengths[1])
        segment = (pivots[0], pivots[1]) if fraction <= lengths[0] else (pivots[1], pivots[2])
        middle = probabilities(segment[0] + t * (segment[1] - segment[0]))
    assert result.positions == [0.0, 0.5, 1.0]
    assert result.start == accuracy(ends[0]) and result.end == accuracy(ends[1])
    assert result.pair == accuracy((ends[0] + ends[1]) / 2)
    assert result.path == pytest.approx(accuracy((ends[0] + middle + ends[1]) / 3), abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        path_ensemble(Predictor(model, x), pivots, x, y, k=1)
