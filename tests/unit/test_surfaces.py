"""The analytic surfaces' energies and gradients against their formulas written term by term."""

from __future__ import annotations

import pytest
import torch

from engine.energy.surfaces import MuellerBrown


def _mueller_brown_term_by_term(mb: MuellerBrown, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    px, py = x[:, 0], x[:, 1]
    total, grad = torch.zeros_like(px), torch.zeros_like(x)
    for A, a, b, c, x0, y0 in zip(mb.A, mb.a, mb.b, mb.c, mb.x0, mb.y0):
        dx, dy = px - x0, py - y0
        term = A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        total += term
        grad[:, 0] += term * (2 * a * dx + b * dy)
        grad[:, 1] += term * (b * dx + 2 * c * dy)
    return total, grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count", [1, 5, 12, 33])
def test_mueller_brown_terms_side_by_side_give_the_term_by_term_bits(dtype, count):
    mb = MuellerBrown()
    generator = torch.Generator().manual_seed(count)
    for _ in range(20):
        x = (torch.rand(count, 2, generator=generator, dtype=torch.float64) * 3 - 1.5).to(dtype)
        total, grad = mb.potential_and_gradient(x)
        expected_total, expected_grad = _mueller_brown_term_by_term(mb, x)
        assert total.dtype == grad.dtype == dtype
        assert torch.equal(total, expected_total) and torch.equal(grad, expected_grad)
        assert torch.equal(mb.potential(x), expected_total)


def test_mueller_brown_gradient_is_the_potentials():
    mb = MuellerBrown()
    x = torch.tensor([[-0.3, 0.9], [0.5, 0.1], [-1.0, 1.5]], dtype=torch.float64, requires_grad=True)
    mb.potential(x).sum().backward()
    assert torch.allclose(mb.potential_and_gradient(x.detach())[1], x.grad, rtol=1e-12, atol=1e-12)
