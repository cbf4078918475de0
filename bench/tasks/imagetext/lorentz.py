"""MERU's Lorentz-model operations, on the space components of hyperboloid points.

A point of the hyperboloid of curvature -c is stored by its space components x in R^n;
its time component is `sqrt(1/c + ||x||^2)` (so that <x,x>_L = -1/c). geoopt's `Lorentz(k)`
is the same manifold with k = 1/c and the time component stored first (tests check the
two agree). Callers run these in float32: every function casts its inputs up.
"""

from __future__ import annotations

import functools
import math

import torch

ACOSH_EPS = 1e-6  # acosh's argument is clamped to >= 1 + ACOSH_EPS
SINH_MAX = math.asinh(2.0**15)  # expmap0's sinh input is clamped here (no overflow, no saturation to inf)
NORM_EPS = 1e-8
MIN_RADIUS = 0.1  # K in the entailment half-aperture asin(2K / (sqrt(c) ||x||))


def _f32(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(x.float() for x in xs)


def _sqrt(c: torch.Tensor | float) -> torch.Tensor | float:
    return torch.sqrt(c) if isinstance(c, torch.Tensor) else math.sqrt(c)


def fp32(fn):
    """Run `fn` with autocast off (its matmuls in float32 even inside a bf16 region)."""

    @functools.wraps(fn)
    def wrapper(x: torch.Tensor, *args, **kwargs):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return fn(x, *args, **kwargs)

    return wrapper


def time_component(x: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    (x,) = _f32(x)
    return torch.sqrt(1.0 / c + (x * x).sum(-1))


@fp32
def pairwise_inner(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """<x_i, y_j>_L = x_i . y_j - t(x_i) t(y_j), shape (len(x), len(y))."""
    x, y = _f32(x, y)
    return x @ y.T - time_component(x, c)[:, None] * time_component(y, c)[None, :]


@fp32
def inner(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Row-wise <x_i, y_i>_L."""
    x, y = _f32(x, y)
    return (x * y).sum(-1) - time_component(x, c) * time_component(y, c)


def _acosh_dist(minus_c_inner: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    sqrt_c = _sqrt(c)
    return torch.acosh(torch.clamp(minus_c_inner, min=1.0 + ACOSH_EPS)) / sqrt_c


@fp32
def pairwise_dist(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Geodesic distances d(x_i, y_j) = acosh(-c <x_i, y_j>_L) / sqrt(c)."""
    return _acosh_dist(-c * pairwise_inner(x, y, c), c)


@fp32
def dist(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Row-wise geodesic distances d(x_i, y_i)."""
    return _acosh_dist(-c * inner(x, y, c), c)


@fp32
def expmap0(v: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Exponential map at the origin: a tangent vector v -> space components
    sinh(sqrt(c)||v||) v / (sqrt(c)||v||)."""
    (v,) = _f32(v)
    sqrt_c = _sqrt(c)
    rc_norm = sqrt_c * v.norm(dim=-1, keepdim=True)
    sinh_input = torch.clamp(rc_norm, min=NORM_EPS, max=SINH_MAX)
    return torch.sinh(sinh_input) * v / torch.clamp(rc_norm, min=NORM_EPS)


@fp32
def logmap0(x: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Inverse of expmap0: space components -> tangent vector at the origin."""
    (x,) = _f32(x)
    sqrt_c = _sqrt(c)
    rc_norm = sqrt_c * x.norm(dim=-1, keepdim=True)
    dist0 = torch.asinh(rc_norm)  # = acosh(sqrt(1 + c||x||^2)), stable near the origin
    return dist0 * x / torch.clamp(rc_norm, min=NORM_EPS)


@fp32
def half_aperture(x: torch.Tensor, c: torch.Tensor | float, min_radius: float = MIN_RADIUS,
                  eps: float = 1e-6) -> torch.Tensor:
    """Half-aperture of the entailment cone at x: asin(2K / (sqrt(c) ||x||)), clamped to [0, pi/2)."""
    (x,) = _f32(x)
    sqrt_c = _sqrt(c)
    asin_input = 2.0 * min_radius / (x.norm(dim=-1) * sqrt_c + NORM_EPS)
    return torch.asin(torch.clamp(asin_input, min=-1.0 + eps, max=1.0 - eps))


@fp32
def exterior_angle(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor | float, eps: float = 1e-6) -> torch.Tensor:
    """Row-wise exterior angle at x of the triangle (origin, x, y): the angle between the
    geodesic x->y and the continuation of the geodesic origin->x (0: y lies straight 'below' x)."""
    x, y = _f32(x, y)
    x_time, y_time = time_component(x, c), time_component(y, c)
    c_xyl = c * ((x * y).sum(-1) - x_time * y_time)
    numer = y_time + c_xyl * x_time
    denom = torch.sqrt(torch.clamp(c_xyl * c_xyl - 1.0, min=NORM_EPS))
    cos_angle = numer / (x.norm(dim=-1) * denom + NORM_EPS)
    return torch.acos(torch.clamp(cos_angle, min=-1.0 + eps, max=1.0 - eps))
