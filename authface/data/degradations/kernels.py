"""Blur kernels: Gaussian (iso / aniso), generalised Gaussian, plateau, sinc (circular low-pass) and motion.

Every kernel is ``float32 (size, size)`` with an odd ``size`` and sums to 1. The maths follow BasicSR's kernel
generators (XPixelGroup/BasicSR, ``basicsr/data/degradations.py``: ``bivariate_Gaussian``,
``bivariate_generalized_Gaussian``, ``bivariate_plateau``, ``random_mixed_kernels``, ``circular_lowpass_kernel``),
re-implemented here -- no library offers them. :func:`random_kernel` draws one as ``random_mixed_kernels`` does
and records what it drew; :func:`kernel_from_params` rebuilds it from that record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from authface.config.base import choices

from .checks import check_rng

__all__ = [
    "KERNEL_KINDS",
    "KernelKind",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "kernel_from_params",
    "motion_kernel",
    "plateau_kernel",
    "random_kernel",
    "sinc_kernel",
]

#: Kernel kinds :func:`random_kernel` can draw (BasicSR's names).
KernelKind = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
KERNEL_KINDS: tuple[str, ...] = choices(KernelKind)


def _odd_size(size: Any, what: str = "size") -> int:
    if isinstance(size, bool) or int(size) != size or int(size) < 1 or int(size) % 2 == 0:
        raise ValueError(f"{what} must be an odd integer >= 1, got {size!r}; use e.g. 21 or 41")
    return int(size)


def _positive(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return v


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the kernel centre: x along columns, y along rows (downwards), float64 (size, size)."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    xx, yy = np.meshgrid(ax, ax)
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``[x y] Sigma^-1 [x y]^T`` on the kernel grid, with ``Sigma = U diag(sx^2, sy^2) U^T`` and ``U`` the
    rotation by ``theta`` (BasicSR ``sigma_matrix2`` / ``pdf2``); the inverse is written out analytically."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinate along the sigma_x axis
    v = -s * xx + c * yy  # coordinate along the sigma_y axis
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(kernel: np.ndarray) -> np.ndarray:
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0
) -> np.ndarray:
    """Bivariate Gaussian blur kernel, ``float32 (size, size)``, sum 1.

    Isotropic with standard deviation ``sigma_x`` when ``sigma_y`` is None (``theta`` is then ignored);
    otherwise anisotropic with standard deviations ``sigma_x`` / ``sigma_y`` along axes rotated by ``theta``
    radians (the ``sigma_x`` axis points at angle ``theta`` from the +x / column axis towards +y / down).
    BasicSR ``bivariate_Gaussian``. ``size`` must be odd; ``sigma`` in pixels.
    """
    size = _odd_size(size)
    sx = _positive(sigma_x, "sigma_x")
    if sigma_y is None:
        sy, theta = sx, 0.0
    else:
        sy = _positive(sigma_y, "sigma_y")
    return _normalise(np.exp(-0.5 * _quadratic_form(size, sx, sy, float(theta))))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """Generalised Gaussian kernel ``exp(-0.5 * q**beta)``, ``q`` the Gaussian's quadratic form
    (BasicSR ``bivariate_generalized_Gaussian``, after Pascal et al. 2013). ``beta = 1`` is the Gaussian;
    ``beta < 1`` has heavier tails, ``beta > 1`` a flatter top. ``float32 (size, size)``, sum 1.
    Pass ``sigma_y = sigma_x`` for the isotropic kind."""
    size = _odd_size(size)
    q = _quadratic_form(size, _positive(sigma_x, "sigma_x"), _positive(sigma_y, "sigma_y"), float(theta))
    return _normalise(np.exp(-0.5 * np.power(q, _positive(beta, "beta"))))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (1 + q**beta)``, ``q`` the Gaussian's quadratic form (BasicSR
    ``bivariate_plateau``). ``float32 (size, size)``, sum 1. Pass ``sigma_y = sigma_x`` for the isotropic kind."""
    size = _odd_size(size)
    q = _quadratic_form(size, _positive(sigma_x, "sigma_x"), _positive(sigma_y, "sigma_y"), float(theta))
    return _normalise(1.0 / (np.power(q, _positive(beta, "beta")) + 1.0))


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1, from Bessel's integral
    ``J1(x) = 1/(2 pi) int_0^{2 pi} cos(t - x sin t) dt`` with the trapezoidal rule on ``n`` nodes, exact
    up to terms of order ``J_{n-1}(x)``: negligible (< 1e-15) for ``n >= 2 |x| + 64``, which ``n`` is.

    Written in NumPy (not ``scipy.special.j1``) so kernels are the same bits whether or not SciPy is
    installed; the tests compare it with SciPy."""
    x = np.asarray(x, dtype=np.float64)
    n = max(256, int(np.abs(x).max(initial=0.0)) * 2 + 64)
    t = np.arange(n, dtype=np.float64) * (2.0 * np.pi / n)
    return np.cos(t - x[..., None] * np.sin(t)).mean(axis=-1)


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """Circularly symmetric 2-D sinc (ideal low-pass) kernel with cutoff ``omega_c`` radians per pixel
    (``pi`` = Nyquist), truncated to ``size`` x ``size`` (odd): ``omega_c J1(omega_c r) / (2 pi r)``, centre
    ``omega_c**2 / (4 pi)``, normalised to sum 1 (BasicSR ``circular_lowpass_kernel``; Real-ESRGAN uses it
    to mimic ringing and overshoot). ``float32 (size, size)``."""
    size = _odd_size(size)
    omega_c = float(omega_c)
    if not (0.0 < omega_c <= math.pi + 1e-9):
        raise ValueError(f"omega_c must be in (0, pi] radians, got {omega_c!r}")
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    centre = (size - 1) // 2
    r[centre, centre] = 1.0  # placeholder: the centre value is set below
    kernel = omega_c * _bessel_j1(omega_c * r) / (2.0 * np.pi * r)
    kernel[centre, centre] = omega_c**2 / (4.0 * np.pi)
    return _normalise(kernel)


def motion_kernel(size: int, length: float, angle: float) -> np.ndarray:
    """Linear motion-blur kernel: a centred line segment ``length`` pixels long at ``angle`` degrees
    (counter-clockwise on screen from the +x / column axis), drawn anti-aliased by bilinear splatting of
    dense samples. ``float32 (size, size)``, sum 1, point-symmetric. ``length`` must be in
    ``[0, size - 1]`` (0 gives the identity kernel)."""
    size = _odd_size(size)
    length = float(length)
    if not (0.0 <= length <= size - 1):
        raise ValueError(
            f"motion length must be in [0, size - 1] = [0, {size - 1}], got {length!r}; use a larger size"
        )
    c = (size - 1) / 2.0
    n = max(2, int(math.ceil(length * 8)) + 1)
    t = np.linspace(-length / 2.0, length / 2.0, n)
    rad = math.radians(float(angle))
    px = c + t * math.cos(rad)
    py = c - t * math.sin(rad)  # rows grow downwards
    x0 = np.clip(np.floor(px).astype(np.int64), 0, size - 1)
    y0 = np.clip(np.floor(py).astype(np.int64), 0, size - 1)
    fx, fy = px - x0, py - y0
    x1, y1 = np.minimum(x0 + 1, size - 1), np.minimum(y0 + 1, size - 1)
    kernel = np.zeros((size, size), dtype=np.float64)
    np.add.at(kernel, (y0, x0), (1 - fx) * (1 - fy))
    np.add.at(kernel, (y0, x1), fx * (1 - fy))
    np.add.at(kernel, (y1, x0), (1 - fx) * fy)
    np.add.at(kernel, (y1, x1), fx * fy)
    return _normalise(kernel)


def _split_beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    """BasicSR's beta draw: with probability 1/2 uniform in [lo, 1], else in [1, hi] (1 clipped to the
    range, so the draw never leaves [lo, hi]; for BasicSR's plateau range [1, 2] half the draws are 1)."""
    pivot = min(max(1.0, lo), hi)
    if rng.uniform() < 0.5:
        return float(rng.uniform(lo, pivot))
    return float(rng.uniform(pivot, hi))


def kernel_from_params(params: Mapping[str, Any]) -> np.ndarray:
    """Rebuild a kernel from the dict :func:`random_kernel` / :func:`sample_params` recorded
    (``kind`` one of :data:`KERNEL_KINDS`, ``"sinc"`` or ``"motion"``)."""
    kind = params.get("kind")
    size = params.get("size")
    if kind in ("iso", "aniso"):
        return gaussian_kernel(size, params["sigma_x"], params["sigma_y"], params["theta"])
    if kind in ("generalized_iso", "generalized_aniso"):
        return generalized_gaussian_kernel(
            size, params["sigma_x"], params["sigma_y"], params["theta"], params["beta"]
        )
    if kind in ("plateau_iso", "plateau_aniso"):
        return plateau_kernel(size, params["sigma_x"], params["sigma_y"], params["theta"], params["beta"])
    if kind == "sinc":
        return sinc_kernel(size, params["omega_c"])
    if kind == "motion":
        return motion_kernel(size, params["length"], params["angle"])
    raise ValueError(
        f"unknown kernel kind {kind!r} in kernel params; expected one of {', '.join(KERNEL_KINDS)}, sinc, motion"
    )


def random_kernel(
    rng: np.random.Generator,
    size: int,
    kinds: Sequence[str],
    probs: Sequence[float],
    sigma_range: Sequence[float],
    beta_gaussian_range: Sequence[float],
    beta_plateau_range: Sequence[float],
    rotation_range: Sequence[float] = (-math.pi, math.pi),
) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw a blur kernel as BasicSR's ``random_mixed_kernels`` does (no multiplicative kernel noise).

    The kind is drawn from ``kinds`` (names in :data:`KERNEL_KINDS`) with weights ``probs``; ``sigma_x`` is
    uniform in ``sigma_range``; anisotropic kinds also draw ``sigma_y`` from ``sigma_range`` and ``theta``
    from ``rotation_range`` (isotropic: ``sigma_y = sigma_x``, ``theta = 0``); generalised / plateau kinds
    draw ``beta`` half the time below 1 and half the time above 1 within their range.

    Returns:
        ``(kernel, params)``: the ``float32 (size, size)`` kernel (sum 1) and the JSON-ready dict of what was
        drawn (``kind, size, sigma_x, sigma_y, theta, beta``), which :func:`kernel_from_params` rebuilds.
    """
    check_rng(rng)
    size = _odd_size(size)
    if isinstance(kinds, str) or len(kinds) == 0 or len(kinds) != len(probs):
        raise ValueError(f"kinds and probs must be non-empty and of equal length, got {kinds!r} / {probs!r}")
    bad = [k for k in kinds if k not in KERNEL_KINDS]
    if bad:
        raise ValueError(f"unknown kernel kind(s) {bad}; choose from {', '.join(KERNEL_KINDS)}")
    p = np.asarray(probs, dtype=np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"probs must be non-negative weights with a positive sum, got {probs!r}")
    for name, rng_range in (
        ("sigma_range", sigma_range),
        ("beta_gaussian_range", beta_gaussian_range),
        ("beta_plateau_range", beta_plateau_range),
        ("rotation_range", rotation_range),
    ):
        if len(rng_range) != 2 or float(rng_range[0]) > float(rng_range[1]):
            raise ValueError(f"{name} must be (lo, hi) with lo <= hi, got {rng_range!r}")
    kind = str(kinds[int(rng.choice(len(kinds), p=p / p.sum()))])
    sigma_x = float(rng.uniform(sigma_range[0], sigma_range[1]))
    if kind.endswith("aniso"):
        sigma_y = float(rng.uniform(sigma_range[0], sigma_range[1]))
        theta = float(rng.uniform(rotation_range[0], rotation_range[1]))
    else:
        sigma_y, theta = sigma_x, 0.0
    beta = None
    if kind.startswith("generalized"):
        beta = _split_beta(rng, float(beta_gaussian_range[0]), float(beta_gaussian_range[1]))
    elif kind.startswith("plateau"):
        beta = _split_beta(rng, float(beta_plateau_range[0]), float(beta_plateau_range[1]))
    params = {"kind": kind, "size": size, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta, "beta": beta}
    return kernel_from_params(params), params
