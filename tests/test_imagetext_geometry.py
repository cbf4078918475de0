"""MERU's Lorentz operations against geoopt (where the parametrisations match) and against
independent formulas (hyperbolic law of cosines, constructed points)."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch

from bench.tasks.imagetext import lorentz

CURVATURES = (0.5, 1.0, 2.0)


def points(n: int, dim: int = 5, scale: float = 0.8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float() * scale


def with_time(x: torch.Tensor, c: float) -> torch.Tensor:
    """geoopt's layout: time component first; its k is MERU's 1/c."""
    return torch.cat([lorentz.time_component(x, c)[:, None], x], 1)


@pytest.mark.parametrize("c", CURVATURES)
def test_distance_matches_geoopt_lorentz_with_k_equal_one_over_c(c):
    x, y = points(64, seed=1), points(64, seed=2)
    ours = lorentz.dist(x, y, c)
    theirs = geoopt.Lorentz(k=1.0 / c).dist(with_time(x, c).double(), with_time(y, c).double())
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(lorentz.pairwise_dist(x, y, c).diagonal(), ours)


@pytest.mark.parametrize("c", CURVATURES)
def test_expmap0_matches_geoopt_and_logmap0_inverts_it(c):
    v = points(64, scale=1.2, seed=3)
    x = lorentz.expmap0(v, c)
    theirs = geoopt.Lorentz(k=1.0 / c).expmap0(torch.cat([torch.zeros(64, 1), v], 1).double())
    torch.testing.assert_close(x.double(), theirs[:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lorentz.time_component(x, c).double(), theirs[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lorentz.logmap0(x, c), v, rtol=1e-5, atol=1e-5)
    # the distance to the origin of expmap0(v) is ||v||
    origin = torch.zeros(1, 5)
    torch.testing.assert_close(lorentz.pairwise_dist(origin, x, c)[0], v.norm(dim=1), rtol=1e-4, atol=1e-3)


def test_distance_to_self_is_zero_up_to_the_clamp_and_symmetric():
    for c in CURVATURES:
        x = points(32, seed=4)
        floor = math.acosh(1 + lorentz.ACOSH_EPS) / math.sqrt(c)
        assert torch.all(lorentz.dist(x, x, c) <= floor + 1e-6)
        d = lorentz.pairwise_dist(x, x, c)
        torch.testing.assert_close(d, d.T)


def test_triangle_inequality_on_samples():
    for c in CURVATURES:
        x, y, z = points(200, seed=5), points(200, seed=6), points(200, seed=7)
        lhs = lorentz.dist(x, z, c)
        rhs = lorentz.dist(x, y, c) + lorentz.dist(y, z, c)
        assert torch.all(lhs <= rhs + 1e-4)


def test_expmap0_clamps_the_sinh_input_instead_of_overflowing():
    x = lorentz.expmap0(torch.tensor([[1e4, 0.0]]), 1.0)
    assert torch.isfinite(x).all() and x[0, 0].item() == pytest.approx(math.sinh(lorentz.SINH_MAX), rel=1e-5)


@pytest.mark.parametrize("c", CURVATURES)
def test_half_aperture_on_constructed_points(c):
    # ||x|| chosen so that 2K / (sqrt(c) ||x||) = 1/2: the half-aperture is asin(1/2) = pi/6
    r = 2 * lorentz.MIN_RADIUS / (math.sqrt(c) * 0.5)
    x = torch.tensor([[r, 0.0, 0.0], [0.0, 0.0, 2 * r]])
    torch.testing.assert_close(lorentz.half_aperture(x, c), torch.tensor([math.pi / 6, math.asin(0.25)]))
    # near the origin the argument is clamped below 1: the cone is (almost) a half-space
    assert lorentz.half_aperture(torch.tensor([[1e-4, 0.0, 0.0]]), c).item() == pytest.approx(math.pi / 2, abs=2e-3)


def _exterior_angle_by_law_of_cosines(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """pi minus the interior angle at x of the triangle (O, x, y), from its three side lengths."""
    o = torch.zeros_like(x)
    a, b, e = (lorentz.dist(p, q, c).double() * math.sqrt(c) for p, q in ((o, x), (x, y), (o, y)))
    cos_interior = (torch.cosh(a) * torch.cosh(b) - torch.cosh(e)) / (torch.sinh(a) * torch.sinh(b))
    return math.pi - torch.acos(cos_interior.clamp(-1, 1))


@pytest.mark.parametrize("c", CURVATURES)
def test_exterior_angle_matches_the_law_of_cosines(c):
    x, y = points(100, scale=1.0, seed=8), points(100, scale=1.0, seed=9)
    ours = lorentz.exterior_angle(x, y, c).double()
    torch.testing.assert_close(ours, _exterior_angle_by_law_of_cosines(x, y, c), rtol=1e-3, atol=2e-3)


def test_exterior_angle_on_a_ray_from_the_origin():
    x = torch.tensor([[0.6, 0.8, 0.0]])
    beyond, between = 2.0 * x, 0.5 * x  # y further out on the same ray: angle 0; y between O and x: pi
    assert lorentz.exterior_angle(x, beyond, 1.0).item() == pytest.approx(0.0, abs=2e-3)
    assert lorentz.exterior_angle(x, between, 1.0).item() == pytest.approx(math.pi, abs=2e-3)
    side = torch.tensor([[-0.8, 0.6, 0.0]]) * 1.0  # orthogonal direction: angle strictly between
    assert 0.5 < lorentz.exterior_angle(x, side, 1.0).item() < math.pi - 0.5


def test_lorentz_ops_run_in_float32_under_autocast():
    """Inside a bf16 autocast region (the towers' forward) the geometry is still computed in float32."""
    x, y = points(16, scale=2.0, seed=10), points(16, scale=2.0, seed=11)
    plain = (lorentz.pairwise_dist(x, y, 1.0), lorentz.exterior_angle(x, y, 1.0), lorentz.expmap0(x, 1.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = (lorentz.pairwise_dist(x, y, 1.0), lorentz.exterior_angle(x, y, 1.0), lorentz.expmap0(x, 1.0))
    for a, b in zip(plain, mixed):
        assert b.dtype == torch.float32 and torch.equal(a, b)
