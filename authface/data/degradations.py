"""Synthetic degradations: clean high-quality (HQ) faces -> low-quality (LQ) faces.

Used (1) to make training pairs on the fly and (2) to build CelebA-Test-style synthetic benchmarks, where every
sampled parameter is recorded so a benchmark can be rebuilt and verified exactly.

Images are ``uint8`` RGB ``(H, W, 3)`` arrays in and out; inside, everything runs on ``float32`` RGB in
``[0, 1]`` and is rounded to ``uint8`` once, at the end (as GFPGAN / CodeFormer / Real-ESRGAN do). Every
function is pure: randomness comes only from an explicit :class:`numpy.random.Generator` argument (never the
global NumPy RNG, never OpenCV's RNG), so the same seed gives byte-identical output.

Three layers:

* **kernels** -- :func:`gaussian_kernel` (iso / aniso + rotation), :func:`generalized_gaussian_kernel`,
  :func:`plateau_kernel`, :func:`sinc_kernel` (circular low-pass), :func:`motion_kernel` and
  :func:`random_kernel`. ``float32``, odd size, sum 1. The maths follow BasicSR's kernel generators
  (XPixelGroup/BasicSR, ``basicsr/data/degradations.py``: ``bivariate_Gaussian``,
  ``bivariate_generalized_Gaussian``, ``bivariate_plateau``, ``random_mixed_kernels``,
  ``circular_lowpass_kernel``), re-implemented here -- no library offers them.
* **ops** -- :func:`apply_kernel`, :func:`resize`, :func:`add_gaussian_noise`, :func:`add_poisson_noise`,
  :func:`jpeg`, :func:`color_shift`, :func:`color_jitter` / :func:`adjust_color`, :func:`to_gray`,
  :func:`usm_sharpen`: thin wrappers over OpenCV / NumPy.
* **pipelines** -- :class:`DegradationConfig` (every range configurable), :data:`PRESETS`,
  :func:`sample_params` (draws every random choice into a JSON-ready dict, without touching an image),
  :func:`degrade_from_params` (applies such a dict; deterministic) and :func:`degrade` (both).

Two pipelines, chosen by :attr:`DegradationConfig.second_order`:

* first order (GFPGAN v1 / CodeFormer, ``FFHQDegradationDataset`` / ``FFHQBlindDataset``):
  [motion blur] -> blur -> downsample by ``s`` -> noise -> JPEG -> resize back to HQ size
  -> [colour shift] -> [gray] -> [brightness/contrast/saturation/hue jitter].
* second order (Real-ESRGAN, ``RealESRGANModel.feed_data``): [USM-sharpen HQ] -> blur -> random resize ->
  noise -> JPEG -> [blur] -> random resize -> noise -> {resize to HQ/s + sinc, JPEG} in random order
  -> resize back to HQ size -> colour steps as above.

The LQ always comes back at the HQ size (downsampled, then resized back, as GFPGAN / CodeFormer do for
training), so ``degrade(hq) -> lq`` pairs are pixel-aligned.

Only NumPy and OpenCV are imported at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "KERNEL_KINDS",
    "PRESETS",
    "RESIZE_MODES",
    "DegradationConfig",
    "add_gaussian_noise",
    "add_poisson_noise",
    "adjust_color",
    "apply_kernel",
    "color_jitter",
    "color_shift",
    "degrade",
    "degrade_from_params",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "get_preset",
    "jpeg",
    "kernel_from_params",
    "motion_kernel",
    "plateau_kernel",
    "random_kernel",
    "resize",
    "sample_params",
    "sinc_kernel",
    "to_gray",
    "usm_sharpen",
]

#: Version of the parameter dicts written by :func:`sample_params`; :func:`degrade_from_params` refuses others.
PARAMS_VERSION = 1

#: Kernel kinds :func:`random_kernel` can draw (BasicSR's names).
KERNEL_KINDS: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)

#: Interpolation modes of :func:`resize` and the OpenCV flag each maps to.
RESIZE_MODES: dict[str, int] = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
    "lanczos": cv2.INTER_LANCZOS4,
}

# torchvision's grayscale weights (used by its adjust_contrast / adjust_saturation, which GFPGAN calls).
_TV_GRAY = (0.2989, 0.587, 0.114)
_COLOR_FNS = ("brightness", "contrast", "saturation", "hue")


# --------------------------------------------------------------------------
# validation and float <-> uint8
# --------------------------------------------------------------------------


def _check_image(img: Any, what: str = "img") -> np.ndarray:
    """Validate a ``uint8`` RGB ``(H, W, 3)`` array and return it."""
    if not isinstance(img, np.ndarray):
        raise ValueError(
            f"{what} must be a numpy uint8 RGB array of shape (H, W, 3), got {type(img).__name__}; "
            "convert it with np.asarray(PIL_image.convert('RGB'))"
        )
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(
            f"{what} must have shape (H, W, 3) (RGB), got shape {img.shape}; convert grey/RGBA images to RGB first"
        )
    if img.dtype != np.uint8:
        raise ValueError(
            f"{what} must have dtype uint8, got {img.dtype}; convert it with authface.io.to_uint8 "
            "(floats are taken as [0, 1])"
        )
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{what} is empty (shape {img.shape})")
    return img


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "pass np.random.default_rng(seed)"
        )
    return rng


def _to_float(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (H, W, 3) in [0, 1]."""
    return img.astype(np.float32) * np.float32(1.0 / 255.0)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float (H, W, 3) in [0, 1] -> uint8: clip, x 255, round half to even (authface.io.to_uint8)."""
    from authface.io import to_uint8

    return to_uint8(x)


def _odd_size(size: Any, what: str = "size") -> int:
    if isinstance(size, bool) or int(size) != size or int(size) < 1 or int(size) % 2 == 0:
        raise ValueError(f"{what} must be an odd integer >= 1, got {size!r}; use e.g. 21 or 41")
    return int(size)


def _positive(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return v


# --------------------------------------------------------------------------
# kernels (maths after BasicSR's basicsr/data/degradations.py; see the module docstring)
# --------------------------------------------------------------------------


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


def _sample_kernel_params(
    rng: np.random.Generator,
    size: int,
    kinds: Sequence[str],
    probs: Sequence[float],
    sigma_range: Sequence[float],
    beta_gaussian_range: Sequence[float],
    beta_plateau_range: Sequence[float],
    rotation_range: Sequence[float] = (-math.pi, math.pi),
) -> dict[str, Any]:
    """BasicSR ``random_mixed_kernels`` (noise_range=None), parameters only."""
    p = np.asarray(probs, dtype=np.float64)
    kind = str(kinds[int(rng.choice(len(kinds), p=p / p.sum()))])
    if kind not in KERNEL_KINDS:
        raise ValueError(f"unknown kernel kind {kind!r}; choose from {', '.join(KERNEL_KINDS)}")
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
    return {
        "kind": kind,
        "size": int(size),
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "theta": theta,
        "beta": beta,
    }


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
    _check_rng(rng)
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
    params = _sample_kernel_params(
        rng, size, kinds, probs, sigma_range, beta_gaussian_range, beta_plateau_range, rotation_range
    )
    return kernel_from_params(params), params


# --------------------------------------------------------------------------
# ops: float32 [0, 1] (H, W, 3) implementations + uint8 public wrappers
# --------------------------------------------------------------------------


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # correlation, as cv2.filter2D and BasicSR/Real-ESRGAN's filter2D (F.conv2d, reflect padding) compute it
    return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter ``uint8 RGB (H, W, 3)`` with a 2-D kernel (``cv2.filter2D``, ``BORDER_REFLECT_101``).
    Returns ``uint8 RGB (H, W, 3)``."""
    img = _check_image(img)
    k = np.asarray(kernel)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0 or not np.issubdtype(k.dtype, np.floating):
        raise ValueError(f"kernel must be a 2-D float array with odd sides, got {k.dtype} {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("kernel contains NaN or infinity")
    return _to_uint8(_filter(_to_float(img), k.astype(np.float32)))


def _resize(x: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    out = cv2.resize(x, (int(width), int(height)), interpolation=RESIZE_MODES[mode])
    return out if out.ndim == 3 else out[:, :, None]


def _check_mode(mode: Any, what: str = "mode") -> str:
    if mode not in RESIZE_MODES:
        raise ValueError(f"{what} {mode!r} is not a resize mode; choose from {', '.join(RESIZE_MODES)}")
    return str(mode)


def resize(
    img: np.ndarray,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    mode: str = "bicubic",
) -> np.ndarray:
    """Resize ``uint8 RGB (H, W, 3)`` with OpenCV.

    Give exactly one of ``scale`` (output ``floor(H * scale) x floor(W * scale)``, at least 1 pixel, as
    ``torch.nn.functional.interpolate(scale_factor=...)``) or ``size`` = ``(height, width)`` -- note the
    NumPy order, not OpenCV's. ``mode``: one of :data:`RESIZE_MODES` (``"bicubic"``, ``"bilinear"``,
    ``"area"``, ``"nearest"``, ``"lanczos"``). Returns ``uint8 RGB``.
    """
    img = _check_image(img)
    _check_mode(mode)
    h, w = img.shape[:2]
    if (scale is None) == (size is None):
        raise ValueError("resize: give exactly one of scale= or size=(height, width)")
    if scale is not None:
        s = _positive(scale, "scale")
        oh, ow = max(1, int(math.floor(h * s))), max(1, int(math.floor(w * s)))
    else:
        if len(size) != 2 or any(int(v) != v or int(v) < 1 for v in size):
            raise ValueError(f"size must be (height, width) with positive integers, got {size!r}")
        oh, ow = int(size[0]), int(size[1])
    return _to_uint8(_resize(_to_float(img), oh, ow, mode))


def _gaussian_noise(x: np.ndarray, gen: np.random.Generator, sigma: float, gray: bool) -> np.ndarray:
    """BasicSR ``add_gaussian_noise(clip=True, rounds=False)``: sigma in 0-255 units."""
    scale = float(sigma) / 255.0
    if gray:
        noise = gen.standard_normal(x.shape[:2], dtype=np.float32)[:, :, None] * np.float32(scale)
    else:
        noise = gen.standard_normal(x.shape, dtype=np.float32) * np.float32(scale)
    return np.clip(x + noise, 0.0, 1.0)


def _gray_plane(x: np.ndarray) -> np.ndarray:
    """float32 RGB (H, W, 3) -> float32 (H, W) luma (OpenCV's 0.299 / 0.587 / 0.114)."""
    return cv2.cvtColor(np.ascontiguousarray(x, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def _poisson_noise(x: np.ndarray, gen: np.random.Generator, scale: float, gray: bool) -> np.ndarray:
    """BasicSR ``add_poisson_noise(clip=True, rounds=False)``: the image, rounded to 8 bits, is taken as
    photon counts with ``vals = 2**ceil(log2(#distinct levels))`` levels; noise = (Poisson(img * vals) / vals
    - img) * scale."""
    src = _gray_plane(x) if gray else x
    levels = np.clip(np.rint(src * 255.0), 0, 255)
    n_unique = int(np.count_nonzero(np.bincount(levels.astype(np.int64).ravel(), minlength=256)))
    vals = float(2.0 ** math.ceil(math.log2(max(n_unique, 1))))
    q = levels / 255.0  # float64, as BasicSR
    noise = (gen.poisson(q * vals) / vals - q) * float(scale)
    if gray:
        noise = noise[:, :, None]
    return np.clip(x + noise.astype(np.float32), 0.0, 1.0)


def add_gaussian_noise(
    img: np.ndarray, rng: np.random.Generator, sigma: float, gray: bool = False
) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (0-255 units) to ``uint8 RGB (H, W, 3)``;
    ``gray=True`` adds the same noise to the three channels. Clipped; returns ``uint8 RGB``."""
    img = _check_image(img)
    _check_rng(rng)
    if not (math.isfinite(float(sigma)) and float(sigma) >= 0):
        raise ValueError(f"sigma must be >= 0 (0-255 units), got {sigma!r}")
    return _to_uint8(_gaussian_noise(_to_float(img), rng, float(sigma), bool(gray)))


def add_poisson_noise(
    img: np.ndarray, rng: np.random.Generator, scale: float, gray: bool = False
) -> np.ndarray:
    """Add Poisson (shot) noise to ``uint8 RGB (H, W, 3)``, scaled by ``scale`` (BasicSR / Real-ESRGAN
    convention, 0.05-3 in Real-ESRGAN); ``gray=True`` draws it on the luma and adds it to all channels.
    Clipped; returns ``uint8 RGB``."""
    img = _check_image(img)
    _check_rng(rng)
    if not (math.isfinite(float(scale)) and float(scale) >= 0):
        raise ValueError(f"scale must be >= 0, got {scale!r}")
    return _to_uint8(_poisson_noise(_to_float(img), rng, float(scale), bool(gray)))


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    u8 = _to_uint8(x)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV always has a JPEG encoder
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    return _to_float(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def _check_quality(quality: Any) -> int:
    if isinstance(quality, bool) or int(quality) != quality or not (0 <= int(quality) <= 100):
        raise ValueError(f"JPEG quality must be an integer in [0, 100], got {quality!r}")
    return int(quality)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress and decode ``uint8 RGB (H, W, 3)`` at ``quality`` (0-100) with OpenCV's libjpeg
    (``cv2.imencode`` / ``cv2.imdecode``, default 4:2:0 chroma subsampling). Returns ``uint8 RGB``."""
    img = _check_image(img)
    return _to_uint8(_jpeg(_to_float(img), _check_quality(quality)))


def _to_gray(x: np.ndarray) -> np.ndarray:
    return np.repeat(_gray_plane(x)[:, :, None], 3, axis=2)


def to_gray(img: np.ndarray) -> np.ndarray:
    """Grayscale ``uint8 RGB (H, W, 3)`` with three equal channels (OpenCV luma 0.299 R + 0.587 G + 0.114 B,
    as GFPGAN's ``gray_prob`` step)."""
    return _to_uint8(_to_gray(_to_float(_check_image(img))))


def _color_shift(x: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    return np.clip(x + (np.asarray(shift, dtype=np.float32) / np.float32(255.0)), 0.0, 1.0)


def color_shift(img: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Add a per-channel offset ``shift`` = ``(r, g, b)`` in 0-255 units to ``uint8 RGB (H, W, 3)``, clipped
    (GFPGAN's numpy ``color_jitter``, which draws each offset uniformly in ``+-color_jitter_shift``)."""
    img = _check_image(img)
    s = np.asarray(shift, dtype=np.float64)
    if s.shape != (3,) or not np.isfinite(s).all():
        raise ValueError(f"shift must be three finite numbers (R, G, B offsets, 0-255 units), got {shift!r}")
    return _to_uint8(_color_shift(_to_float(img), s))


def _tv_gray(x: np.ndarray) -> np.ndarray:
    return x[:, :, 0] * _TV_GRAY[0] + x[:, :, 1] * _TV_GRAY[1] + x[:, :, 2] * _TV_GRAY[2]


def _adjust(x: np.ndarray, name: str, factor: float) -> np.ndarray:
    """One torchvision ``adjust_*`` on float RGB in [0, 1] (same formulas as torchvision's tensor path)."""
    f = np.float32(factor)
    if name == "brightness":  # blend with black
        return np.clip(x * f, 0.0, 1.0)
    if name == "contrast":  # blend with the mean gray level
        mean = np.float32(_tv_gray(x).mean(dtype=np.float64))
        return np.clip(f * x + (1 - f) * mean, 0.0, 1.0)
    if name == "saturation":  # blend with the grayscale image
        return np.clip(f * x + (1 - f) * _tv_gray(x)[:, :, None], 0.0, 1.0)
    if name == "hue":  # rotate the hue by factor turns
        hsv = cv2.cvtColor(np.ascontiguousarray(np.clip(x, 0.0, 1.0)), cv2.COLOR_RGB2HSV)  # H in [0, 360)
        hsv[:, :, 0] = np.mod(hsv[:, :, 0] + np.float32(factor * 360.0), np.float32(360.0))
        return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)
    raise ValueError(f"unknown colour adjustment {name!r}; choose from {', '.join(_COLOR_FNS)}")


def _adjust_color(x: np.ndarray, factors: Mapping[str, Any], order: Sequence[str]) -> np.ndarray:
    for name in order:
        if factors.get(name) is not None:
            x = _adjust(x, name, float(factors[name]))
    return x


def adjust_color(
    img: np.ndarray,
    brightness: float | None = None,
    contrast: float | None = None,
    saturation: float | None = None,
    hue: float | None = None,
    order: Sequence[str] = _COLOR_FNS,
) -> np.ndarray:
    """Apply torchvision-style ``adjust_brightness / contrast / saturation / hue`` (factors; None skips one)
    to ``uint8 RGB (H, W, 3)`` in ``order`` (names from ``brightness, contrast, saturation, hue``).
    ``hue`` is in turns, ``[-0.5, 0.5]``. Returns ``uint8 RGB``."""
    img = _check_image(img)
    if sorted(order) != sorted(set(order)) or not set(order) <= set(_COLOR_FNS):
        raise ValueError(f"order must list distinct names from {', '.join(_COLOR_FNS)}, got {list(order)}")
    factors = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
    return _to_uint8(_adjust_color(_to_float(img), factors, order))


def _sample_color_jitter(
    rng: np.random.Generator,
    brightness: Sequence[float] | None,
    contrast: Sequence[float] | None,
    saturation: Sequence[float] | None,
    hue: Sequence[float] | None,
) -> dict[str, Any]:
    """GFPGAN ``color_jitter_pt``: a random order of the four adjustments, each factor uniform in its range."""
    order = [_COLOR_FNS[int(i)] for i in rng.permutation(4)]
    out: dict[str, Any] = {"order": order}
    for name, r in zip(_COLOR_FNS, (brightness, contrast, saturation, hue)):
        out[name] = None if r is None else float(rng.uniform(r[0], r[1]))
    return out


def color_jitter(
    img: np.ndarray,
    rng: np.random.Generator,
    brightness: Sequence[float] | None,
    contrast: Sequence[float] | None,
    saturation: Sequence[float] | None,
    hue: Sequence[float] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Random colour jitter of ``uint8 RGB (H, W, 3)``, as GFPGAN's ``color_jitter_pt``: the four
    adjustments in a random order, each factor uniform in its ``(lo, hi)`` range (None skips it); GFPGAN
    uses brightness (0.5, 1.5), contrast (0.5, 1.5), saturation (0, 1.5), hue (-0.1, 0.1).

    Returns:
        ``(uint8 RGB image, {"order": [...], "brightness": f, "contrast": f, "saturation": f, "hue": f})``.
    """
    img = _check_image(img)
    _check_rng(rng)
    for name, r in zip(_COLOR_FNS, (brightness, contrast, saturation, hue)):
        if r is not None and (len(r) != 2 or float(r[0]) > float(r[1])):
            raise ValueError(f"{name} must be None or (lo, hi) with lo <= hi, got {r!r}")
    params = _sample_color_jitter(rng, brightness, contrast, saturation, hue)
    return _to_uint8(_adjust_color(_to_float(img), params, params["order"])), params


def _usm_sharpen(x: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10.0) -> np.ndarray:
    """BasicSR ``usm_sharp``: unsharp mask with a soft mask of where the detail exceeds ``threshold``/255."""
    if radius % 2 == 0:
        radius += 1
    blur = cv2.GaussianBlur(x, (radius, radius), 0)
    residual = x - blur
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (radius, radius), 0)
    sharp = np.clip(x + np.float32(weight) * residual, 0.0, 1.0)
    return soft * sharp + (1 - soft) * x


def usm_sharpen(
    img: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10.0
) -> np.ndarray:
    """Unsharp-mask ``uint8 RGB (H, W, 3)`` as BasicSR's ``usm_sharp`` (Real-ESRGAN sharpens the HQ with it
    before degrading). Returns ``uint8 RGB``."""
    img = _check_image(img)
    return _to_uint8(_usm_sharpen(_to_float(img), float(weight), int(radius), float(threshold)))


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------

_PI = math.pi


@dataclass(frozen=True)
class DegradationConfig:
    """Every knob of the degradation pipelines; ranges are ``(lo, hi)`` tuples (``lo == hi`` fixes a value)
    and values are drawn uniformly within them. Defaults are GFPGAN v1's (``PRESETS["gfpgan"]``); the
    ``second_*`` / ``final_*`` / ``resize_prob`` / ``resize_range`` fields are used only when
    ``second_order`` is True and default to Real-ESRGAN's values. Frozen: derive variants with
    ``dataclasses.replace(PRESETS["gfpgan"], noise_range=(0, 10))``; every field is validated on creation
    (a bad one raises ValueError naming it). Lists are accepted wherever tuples are (YAML configs).
    """

    # ---- pipeline ----
    second_order: bool = False
    """False: GFPGAN/CodeFormer first-order pipeline; True: Real-ESRGAN second-order pipeline."""
    usm_sharpen: bool = False
    """Unsharp-mask the HQ before degrading it (Real-ESRGAN degrades the USM-sharpened ground truth)."""

    # ---- blur (first pass) ----
    blur_prob: float = 1.0
    """Probability of the (first) blur."""
    kernel_size: tuple[int, int] = (41, 41)
    """Odd kernel sizes, drawn uniformly among the odd values in the range (GFPGAN: 41; Real-ESRGAN: 7-21)."""
    kernel_kinds: tuple[str, ...] = ("iso", "aniso")
    """Kernel kinds to draw from (:data:`KERNEL_KINDS`)."""
    kernel_probs: tuple[float, ...] = (0.5, 0.5)
    """Weights of ``kernel_kinds`` (normalised)."""
    blur_sigma: tuple[float, float] = (0.1, 10.0)
    """Kernel standard deviations in pixels (both axes of anisotropic kinds)."""
    rotation_range: tuple[float, float] = (-_PI, _PI)
    """Rotation of anisotropic kernels, radians."""
    betag_range: tuple[float, float] = (0.5, 4.0)
    """Shape ``beta`` of generalised-Gaussian kernels (half the draws below 1, half above)."""
    betap_range: tuple[float, float] = (1.0, 2.0)
    """Shape ``beta`` of plateau kernels."""
    sinc_prob: float = 0.0
    """Probability that the first blur kernel is a sinc instead (Real-ESRGAN: 0.1; the second blur has
    ``second_sinc_prob``)."""
    sinc_omega_small: tuple[float, float] = (_PI / 3, _PI)
    """Sinc cutoff (radians) for kernels smaller than 13 (Real-ESRGAN)."""
    sinc_omega_large: tuple[float, float] = (_PI / 5, _PI)
    """Sinc cutoff (radians) for kernels of size 13 and more (Real-ESRGAN)."""
    motion_prob: float = 0.0
    """Probability of a linear motion blur before the blur (CodeFormer has the option, off in its configs)."""
    motion_length: tuple[float, float] = (5.0, 25.0)
    """Motion-blur length in pixels (angle uniform in [0, 180) degrees)."""

    # ---- resize ----
    downsample_range: tuple[float, float] = (0.8, 8.0)
    """HQ / LQ size factor. First order: drawn, LQ = ``int(W // s) x int(H // s)``. Second order: the final
    LQ size before resizing back (Real-ESRGAN: its x4 scale, ``(4, 4)``)."""
    resize_modes: tuple[str, ...] = ("bilinear",)
    """Interpolation modes, one drawn uniformly per resize (GFPGAN: bilinear; Real-ESRGAN: area, bilinear,
    bicubic)."""
    resize_back_mode: str = "bilinear"
    """Mode of the last resize, back to the HQ size (GFPGAN / CodeFormer: bilinear)."""
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Second order, first pass: weights of resizing up / down / keeping the size."""
    resize_range: tuple[float, float] = (0.15, 1.5)
    """Second order, first pass: scale factor; 'up' draws in [1, hi], 'down' in [lo, 1]."""

    # ---- noise (first pass) ----
    noise_prob: float = 1.0
    """Probability of adding noise at all."""
    noise_range: tuple[float, float] = (0.0, 20.0)
    """Gaussian noise sigma, 0-255 units."""
    poisson_prob: float = 0.0
    """When noise is added, probability that it is Poisson instead of Gaussian (Real-ESRGAN: 0.5)."""
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    """Poisson noise scale."""
    gray_noise_prob: float = 0.0
    """Probability that the noise is the same on the three channels (Real-ESRGAN: 0.4)."""

    # ---- JPEG (first pass) ----
    jpeg_prob: float = 1.0
    """Probability of JPEG compression."""
    jpeg_range: tuple[int, int] = (60, 100)
    """JPEG quality, integers drawn uniformly, both ends included."""

    # ---- colour (LQ only, at the end, after resizing back) ----
    color_jitter_prob: float = 0.3
    """Probability of a random per-channel shift (GFPGAN ``color_jitter``)."""
    color_jitter_shift: float = 20.0
    """Per-channel shift drawn in [-shift, shift], 0-255 units (GFPGAN: 20)."""
    color_jitter_pt_prob: float = 0.3
    """Probability of the brightness / contrast / saturation / hue jitter (GFPGAN ``color_jitter_pt``)."""
    brightness_range: tuple[float, float] = (0.5, 1.5)
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.0, 1.5)
    hue_range: tuple[float, float] = (-0.1, 0.1)
    """Factor ranges of the jitter (GFPGAN's defaults); hue in turns."""
    gray_prob: float = 0.01
    """Probability of turning the LQ gray (three equal channels)."""

    # ---- second pass (second_order only; Real-ESRGAN x4plus values) ----
    second_blur_prob: float = 0.8
    second_kernel_size: tuple[int, int] = (7, 21)
    second_kernel_kinds: tuple[str, ...] = KERNEL_KINDS
    second_kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    second_blur_sigma: tuple[float, float] = (0.2, 1.5)
    second_betag_range: tuple[float, float] = (0.5, 4.0)
    second_betap_range: tuple[float, float] = (1.0, 2.0)
    second_sinc_prob: float = 0.1
    second_resize_prob: tuple[float, float, float] = (0.3, 0.4, 0.3)
    second_resize_range: tuple[float, float] = (0.3, 1.2)
    second_noise_prob: float = 1.0
    second_noise_range: tuple[float, float] = (1.0, 25.0)
    second_poisson_prob: float = 0.5
    second_poisson_scale_range: tuple[float, float] = (0.05, 2.5)
    second_gray_noise_prob: float = 0.4
    second_jpeg_range: tuple[int, int] = (30, 95)
    """JPEG quality of the final compression (always applied in the second-order pipeline)."""
    final_sinc_prob: float = 0.8
    """Probability of the final sinc filter (Real-ESRGAN: 0.8)."""
    final_sinc_kernel_size: tuple[int, int] = (7, 21)
    final_sinc_omega: tuple[float, float] = (_PI / 3, _PI)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(
                    f"DegradationConfig.{name} must be True or False, got {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, bool(getattr(self, name)))
        for name in _PROB_FIELDS:
            object.__setattr__(self, name, _check_prob(name, getattr(self, name)))
        object.__setattr__(
            self, "color_jitter_shift", _check_scalar("color_jitter_shift", self.color_jitter_shift, 0)
        )
        for name, (lo_min, hi_max, integer) in _RANGE_FIELDS.items():
            object.__setattr__(self, name, _check_range(name, getattr(self, name), lo_min, hi_max, integer))
        for name in _KERNEL_SIZE_FIELDS:
            for v in getattr(self, name):
                if v % 2 == 0:
                    raise ValueError(
                        f"DegradationConfig.{name}: kernel sizes must be odd, got {getattr(self, name)!r}"
                    )
        for name in ("resize_range", "second_resize_range"):
            lo, hi = getattr(self, name)
            if not lo <= 1.0 <= hi:
                raise ValueError(
                    f"DegradationConfig.{name} = {(lo, hi)!r} must contain 1 ('down' draws in [lo, 1], 'up' in [1, hi])"
                )
        for kinds_name, probs_name in (
            ("kernel_kinds", "kernel_probs"),
            ("second_kernel_kinds", "second_kernel_probs"),
        ):
            kinds, probs = getattr(self, kinds_name), getattr(self, probs_name)
            if isinstance(kinds, str) or not kinds:
                raise ValueError(
                    f"DegradationConfig.{kinds_name} must be a non-empty tuple of kernel kinds, got {kinds!r}"
                )
            bad = [k for k in kinds if k not in KERNEL_KINDS]
            if bad:
                raise ValueError(
                    f"DegradationConfig.{kinds_name}: unknown kind(s) {bad}; choose from {', '.join(KERNEL_KINDS)}"
                )
            object.__setattr__(self, probs_name, _check_weights(probs_name, probs, len(kinds)))
        for name in ("resize_prob", "second_resize_prob"):
            object.__setattr__(self, name, _check_weights(name, getattr(self, name), 3))
        if isinstance(self.resize_modes, str) or not self.resize_modes:
            raise ValueError(
                f"DegradationConfig.resize_modes must be a non-empty tuple of modes, got {self.resize_modes!r}"
            )
        for m in self.resize_modes:
            _check_mode(m, "DegradationConfig.resize_modes: mode")
        _check_mode(self.resize_back_mode, "DegradationConfig.resize_back_mode:")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples as lists); :meth:`from_dict` reads it back."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], base: DegradationConfig | str | None = None
    ) -> DegradationConfig:
        """Config from a dict (e.g. YAML), starting from ``base`` (a config or preset name; default the
        GFPGAN defaults). Unknown keys raise ValueError with the closest field name."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown degradation setting {key!r}{hint}")
        start = cls() if base is None else _resolve_config(base)
        return dataclasses.replace(start, **dict(data))


def _check_prob(name: str, value: Any) -> float:
    v = _check_scalar(name, value, 0.0)
    if v > 1.0:
        raise ValueError(f"DegradationConfig.{name} is a probability and must be in [0, 1], got {value!r}")
    return v


def _check_scalar(name: str, value: Any, lo_min: float) -> float:
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"DegradationConfig.{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo_min:
        raise ValueError(f"DegradationConfig.{name} must be a finite number >= {lo_min}, got {value!r}")
    return v


def _check_range(name: str, value: Any, lo_min: float | None, hi_max: float | None, integer: bool) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"DegradationConfig.{name} must be a (lo, hi) pair, got {value!r}")
    out = []
    for v in value:
        if (
            isinstance(v, (bool, str))
            or not isinstance(v, (int, float, np.integer, np.floating))
            or not math.isfinite(v)
        ):
            raise ValueError(f"DegradationConfig.{name} must hold two finite numbers, got {value!r}")
        if integer and int(v) != v:
            raise ValueError(f"DegradationConfig.{name} must hold integers, got {value!r}")
        out.append(int(v) if integer else float(v))
    lo, hi = out
    if lo > hi:
        raise ValueError(f"DegradationConfig.{name}: lo {lo} is above hi {hi}; give (lo, hi) with lo <= hi")
    if lo_min is not None and lo < lo_min:
        raise ValueError(f"DegradationConfig.{name} = {tuple(out)!r}: values must be >= {lo_min}")
    if hi_max is not None and hi > hi_max:
        raise ValueError(f"DegradationConfig.{name} = {tuple(out)!r}: values must be <= {hi_max}")
    return tuple(out)


def _check_weights(name: str, value: Any, n: int) -> tuple[float, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != n:
        raise ValueError(f"DegradationConfig.{name} must hold {n} weights, got {value!r}")
    w = tuple(float(v) for v in value)
    if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
        raise ValueError(
            f"DegradationConfig.{name} must be non-negative weights with a positive sum, got {value!r}"
        )
    return w


_SMALL = 1e-12  # strictly-positive lower bound
_PI_TOL = _PI + 1e-9
# name -> (minimum allowed lo, maximum allowed hi, integers only)
_RANGE_FIELDS: dict[str, tuple[float | None, float | None, bool]] = {
    "kernel_size": (1, None, True),
    "blur_sigma": (_SMALL, None, False),
    "rotation_range": (None, None, False),
    "betag_range": (_SMALL, None, False),
    "betap_range": (_SMALL, None, False),
    "sinc_omega_small": (_SMALL, _PI_TOL, False),
    "sinc_omega_large": (_SMALL, _PI_TOL, False),
    "motion_length": (0.0, None, False),
    "downsample_range": (_SMALL, None, False),
    "resize_range": (_SMALL, None, False),
    "noise_range": (0.0, None, False),
    "poisson_scale_range": (0.0, None, False),
    "jpeg_range": (0, 100, True),
    "brightness_range": (0.0, None, False),
    "contrast_range": (0.0, None, False),
    "saturation_range": (0.0, None, False),
    "hue_range": (-0.5, 0.5, False),
    "second_kernel_size": (1, None, True),
    "second_blur_sigma": (_SMALL, None, False),
    "second_betag_range": (_SMALL, None, False),
    "second_betap_range": (_SMALL, None, False),
    "second_resize_range": (_SMALL, None, False),
    "second_noise_range": (0.0, None, False),
    "second_poisson_scale_range": (0.0, None, False),
    "second_jpeg_range": (0, 100, True),
    "final_sinc_kernel_size": (1, None, True),
    "final_sinc_omega": (_SMALL, _PI_TOL, False),
}
_KERNEL_SIZE_FIELDS = ("kernel_size", "second_kernel_size", "final_sinc_kernel_size")
_BOOL_FIELDS = ("second_order", "usm_sharpen")
_PROB_FIELDS = (
    "blur_prob",
    "sinc_prob",
    "motion_prob",
    "noise_prob",
    "poisson_prob",
    "gray_noise_prob",
    "jpeg_prob",
    "color_jitter_prob",
    "color_jitter_pt_prob",
    "gray_prob",
    "second_blur_prob",
    "second_sinc_prob",
    "second_noise_prob",
    "second_poisson_prob",
    "second_gray_noise_prob",
    "final_sinc_prob",
)

_REALESRGAN_KINDS = KERNEL_KINDS
_REALESRGAN_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)

#: Named configurations. Sources (values copied from the published training configs):
#:
#: * ``"gfpgan"`` -- TencentARC/GFPGAN ``options/train_gfpgan_v1.yml`` + ``FFHQDegradationDataset``:
#:   41x41 iso/aniso 50/50 kernels, sigma 0.1-10, downsample x0.8-8 (bilinear both ways), Gaussian noise
#:   0-20, JPEG 60-100, colour shift p 0.3 (+-20/255), brightness/contrast/saturation/hue jitter p 0.3,
#:   gray p 0.01.
#: * ``"codeformer"`` -- sczhou/CodeFormer ``options/CodeFormer_stage2.yml`` + ``FFHQBlindDataset``:
#:   41x41 iso/aniso 50/50, sigma 1-15, downsample x4-30, noise 0-20, JPEG 30-80, no colour jitter,
#:   gray p 0 (the dataset's default; the stage-2 config sets neither).
#: * ``"realesrgan"`` -- xinntao/Real-ESRGAN ``options/train_realesrgan_x4plus.yml`` + ``RealESRGANDataset`` /
#:   ``RealESRGANModel``: second order, x4, USM-sharpened HQ, both passes and the final sinc as published.
#: * ``"mild"`` -- AuthFace's own light setting (not published): sigma 0.1-3 (21x21), x1-4, noise 0-10,
#:   JPEG 70-100, no colour changes.
PRESETS: dict[str, DegradationConfig] = {
    "gfpgan": DegradationConfig(
        kernel_size=(41, 41),
        kernel_kinds=("iso", "aniso"),
        kernel_probs=(0.5, 0.5),
        blur_sigma=(0.1, 10.0),
        downsample_range=(0.8, 8.0),
        resize_modes=("bilinear",),
        resize_back_mode="bilinear",
        noise_range=(0.0, 20.0),
        jpeg_range=(60, 100),
        color_jitter_prob=0.3,
        color_jitter_shift=20.0,
        color_jitter_pt_prob=0.3,
        gray_prob=0.01,
    ),
    "codeformer": DegradationConfig(
        kernel_size=(41, 41),
        kernel_kinds=("iso", "aniso"),
        kernel_probs=(0.5, 0.5),
        blur_sigma=(1.0, 15.0),
        downsample_range=(4.0, 30.0),
        resize_modes=("bilinear",),
        resize_back_mode="bilinear",
        noise_range=(0.0, 20.0),
        jpeg_range=(30, 80),
        color_jitter_prob=0.0,
        color_jitter_pt_prob=0.0,
        gray_prob=0.0,
    ),
    "realesrgan": DegradationConfig(
        second_order=True,
        usm_sharpen=True,
        kernel_size=(7, 21),
        kernel_kinds=_REALESRGAN_KINDS,
        kernel_probs=_REALESRGAN_PROBS,
        blur_sigma=(0.2, 3.0),
        betag_range=(0.5, 4.0),
        betap_range=(1.0, 2.0),
        sinc_prob=0.1,
        downsample_range=(4.0, 4.0),
        resize_modes=("area", "bilinear", "bicubic"),
        resize_back_mode="bilinear",
        resize_prob=(0.2, 0.7, 0.1),
        resize_range=(0.15, 1.5),
        noise_prob=1.0,
        noise_range=(1.0, 30.0),
        poisson_prob=0.5,
        poisson_scale_range=(0.05, 3.0),
        gray_noise_prob=0.4,
        jpeg_range=(30, 95),
        color_jitter_prob=0.0,
        color_jitter_pt_prob=0.0,
        gray_prob=0.0,
        second_blur_prob=0.8,
        second_kernel_size=(7, 21),
        second_kernel_kinds=_REALESRGAN_KINDS,
        second_kernel_probs=_REALESRGAN_PROBS,
        second_blur_sigma=(0.2, 1.5),
        second_betag_range=(0.5, 4.0),
        second_betap_range=(1.0, 2.0),
        second_sinc_prob=0.1,
        second_resize_prob=(0.3, 0.4, 0.3),
        second_resize_range=(0.3, 1.2),
        second_noise_range=(1.0, 25.0),
        second_poisson_prob=0.5,
        second_poisson_scale_range=(0.05, 2.5),
        second_gray_noise_prob=0.4,
        second_jpeg_range=(30, 95),
        final_sinc_prob=0.8,
        final_sinc_kernel_size=(7, 21),
        final_sinc_omega=(_PI / 3, _PI),
    ),
    "mild": DegradationConfig(
        kernel_size=(21, 21),
        kernel_kinds=("iso", "aniso"),
        kernel_probs=(0.5, 0.5),
        blur_sigma=(0.1, 3.0),
        downsample_range=(1.0, 4.0),
        resize_modes=("bilinear",),
        resize_back_mode="bilinear",
        noise_range=(0.0, 10.0),
        jpeg_range=(70, 100),
        color_jitter_prob=0.0,
        color_jitter_pt_prob=0.0,
        gray_prob=0.0,
    ),
}


def get_preset(name: str) -> DegradationConfig:
    """The preset called ``name``; an unknown name raises ValueError listing the presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def _resolve_config(config: DegradationConfig | str) -> DegradationConfig:
    if isinstance(config, str):
        return get_preset(config)
    if not isinstance(config, DegradationConfig):
        raise ValueError(
            f"config must be a DegradationConfig or a preset name ({', '.join(sorted(PRESETS))}), "
            f"got {type(config).__name__}"
        )
    return config


# --------------------------------------------------------------------------
# sampling: config + rng -> JSON-ready params
# --------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, r: Sequence[float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _odd_in(rng: np.random.Generator, r: Sequence[int]) -> int:
    """Uniform among the odd integers in [lo, hi] (both odd)."""
    return 2 * int(rng.integers(r[0] // 2, r[1] // 2, endpoint=True)) + 1


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


def _sample_blur(
    rng: np.random.Generator,
    size_range: Sequence[int],
    sinc_prob: float,
    kinds: Sequence[str],
    probs: Sequence[float],
    sigma: Sequence[float],
    betag: Sequence[float],
    betap: Sequence[float],
    cfg: DegradationConfig,
) -> dict[str, Any]:
    """Real-ESRGAN's kernel draw: a size, then a sinc with ``sinc_prob`` (cutoff range by size), else a
    BasicSR mixed kernel."""
    size = _odd_in(rng, size_range)
    if sinc_prob > 0 and rng.uniform() < sinc_prob:
        omega = cfg.sinc_omega_small if size < 13 else cfg.sinc_omega_large
        return {"kind": "sinc", "size": size, "omega_c": _uniform(rng, omega)}
    return _sample_kernel_params(rng, size, kinds, probs, sigma, betag, betap, cfg.rotation_range)


def _sample_noise(
    rng: np.random.Generator,
    prob: float,
    poisson_prob: float,
    sigma: Sequence[float],
    poisson_scale: Sequence[float],
    gray_prob: float,
) -> dict[str, Any] | None:
    if not (prob > 0 and rng.uniform() < prob):
        return None
    if poisson_prob > 0 and rng.uniform() < poisson_prob:
        noise: dict[str, Any] = {"type": "poisson", "scale": _uniform(rng, poisson_scale)}
    else:
        noise = {"type": "gaussian", "sigma": _uniform(rng, sigma)}
    noise["gray"] = bool(gray_prob > 0 and rng.uniform() < gray_prob)
    noise["seed"] = _seed(rng)  # the noise field itself is drawn at apply time from this seed
    return noise


def _sample_jpeg(rng: np.random.Generator, r: Sequence[int]) -> dict[str, Any]:
    return {"quality": int(rng.integers(r[0], r[1], endpoint=True))}


def _sample_updown(
    rng: np.random.Generator, probs: Sequence[float], r: Sequence[float], modes: Sequence[str]
) -> dict:
    p = np.asarray(probs, dtype=np.float64)
    direction = ("up", "down", "keep")[int(rng.choice(3, p=p / p.sum()))]
    if direction == "up":
        scale = float(rng.uniform(1.0, r[1]))
    elif direction == "down":
        scale = float(rng.uniform(r[0], 1.0))
    else:
        scale = 1.0
    return {"direction": direction, "scale": scale, "mode": _choice(rng, modes)}


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _sample_color(rng: np.random.Generator, cfg: DegradationConfig) -> dict[str, Any]:
    """GFPGAN's colour steps, in its order: shift, gray, jitter."""
    out: dict[str, Any] = {"color_shift": None, "gray": False, "color_jitter": None}
    if cfg.color_jitter_prob > 0 and rng.uniform() < cfg.color_jitter_prob:
        s = cfg.color_jitter_shift
        out["color_shift"] = [float(v) for v in rng.uniform(-s, s, 3)]
    out["gray"] = bool(cfg.gray_prob > 0 and rng.uniform() < cfg.gray_prob)
    if cfg.color_jitter_pt_prob > 0 and rng.uniform() < cfg.color_jitter_pt_prob:
        out["color_jitter"] = _sample_color_jitter(
            rng, cfg.brightness_range, cfg.contrast_range, cfg.saturation_range, cfg.hue_range
        )
    return out


def sample_params(rng: np.random.Generator, config: DegradationConfig | str) -> dict[str, Any]:
    """Draw every random choice of one degradation, without touching an image.

    Returns a JSON-ready dict (plain ``int`` / ``float`` / ``str`` / ``bool`` / ``None`` / lists / dicts)
    that :func:`degrade_from_params` applies deterministically. Noise fields are not stored; their seeds
    are (``noise["seed"]``), and the noise is drawn from ``np.random.default_rng(seed)`` when applied.

    Keys (first order): ``version, pipeline="first_order", usm_sharpen, motion, blur, downsample
    {scale, mode}, noise {type, sigma | scale, gray, seed}, jpeg {quality}, resize_back_mode, color_shift,
    gray, color_jitter``; a step that was not drawn is ``None``. Second order: ``version,
    pipeline="second_order", usm_sharpen, sr_scale, first {motion, blur, resize, noise, jpeg},
    second {blur, resize, noise}, final {sinc_first, resize_mode, sinc, jpeg}, resize_back_mode`` and the
    colour keys. Kernel dicts: ``kind, size`` and ``sigma_x, sigma_y, theta, beta`` (BasicSR kinds),
    ``omega_c`` (sinc) or ``length, angle`` (motion).
    """
    cfg = _resolve_config(config)
    _check_rng(rng)
    params: dict[str, Any] = {
        "version": PARAMS_VERSION,
        "pipeline": "second_order" if cfg.second_order else "first_order",
        "usm_sharpen": cfg.usm_sharpen,
    }
    motion = None
    if cfg.motion_prob > 0 and rng.uniform() < cfg.motion_prob:
        length = _uniform(rng, cfg.motion_length)
        size = 2 * math.ceil(length / 2) + 1
        motion = {"kind": "motion", "size": size, "length": length, "angle": float(rng.uniform(0.0, 180.0))}
    blur = None
    if cfg.blur_prob > 0 and rng.uniform() < cfg.blur_prob:
        blur = _sample_blur(
            rng, cfg.kernel_size, cfg.sinc_prob, cfg.kernel_kinds, cfg.kernel_probs,
            cfg.blur_sigma, cfg.betag_range, cfg.betap_range, cfg,
        )  # fmt: skip

    if not cfg.second_order:
        params["motion"] = motion
        params["blur"] = blur
        params["downsample"] = {
            "scale": _uniform(rng, cfg.downsample_range),
            "mode": _choice(rng, cfg.resize_modes),
        }
        params["noise"] = _sample_noise(
            rng,
            cfg.noise_prob,
            cfg.poisson_prob,
            cfg.noise_range,
            cfg.poisson_scale_range,
            cfg.gray_noise_prob,
        )
        params["jpeg"] = (
            _sample_jpeg(rng, cfg.jpeg_range) if cfg.jpeg_prob > 0 and rng.uniform() < cfg.jpeg_prob else None
        )
        params["resize_back_mode"] = cfg.resize_back_mode
    else:
        params["sr_scale"] = _uniform(rng, cfg.downsample_range)
        first: dict[str, Any] = {"motion": motion, "blur": blur}
        first["resize"] = _sample_updown(rng, cfg.resize_prob, cfg.resize_range, cfg.resize_modes)
        first["noise"] = _sample_noise(
            rng,
            cfg.noise_prob,
            cfg.poisson_prob,
            cfg.noise_range,
            cfg.poisson_scale_range,
            cfg.gray_noise_prob,
        )
        first["jpeg"] = (
            _sample_jpeg(rng, cfg.jpeg_range) if cfg.jpeg_prob > 0 and rng.uniform() < cfg.jpeg_prob else None
        )
        second: dict[str, Any] = {"blur": None}
        if cfg.second_blur_prob > 0 and rng.uniform() < cfg.second_blur_prob:
            second["blur"] = _sample_blur(
                rng, cfg.second_kernel_size, cfg.second_sinc_prob, cfg.second_kernel_kinds,
                cfg.second_kernel_probs, cfg.second_blur_sigma, cfg.second_betag_range,
                cfg.second_betap_range, cfg,
            )  # fmt: skip
        second["resize"] = _sample_updown(
            rng, cfg.second_resize_prob, cfg.second_resize_range, cfg.resize_modes
        )
        second["noise"] = _sample_noise(
            rng, cfg.second_noise_prob, cfg.second_poisson_prob, cfg.second_noise_range,
            cfg.second_poisson_scale_range, cfg.second_gray_noise_prob,
        )  # fmt: skip
        final: dict[str, Any] = {
            "sinc_first": bool(rng.uniform() < 0.5),
            "resize_mode": _choice(rng, cfg.resize_modes),
        }
        final["sinc"] = None
        if cfg.final_sinc_prob > 0 and rng.uniform() < cfg.final_sinc_prob:
            final["sinc"] = {
                "kind": "sinc",
                "size": _odd_in(rng, cfg.final_sinc_kernel_size),
                "omega_c": _uniform(rng, cfg.final_sinc_omega),
            }
        final["jpeg"] = _sample_jpeg(rng, cfg.second_jpeg_range)
        params.update(first=first, second=second, final=final, resize_back_mode=cfg.resize_back_mode)
    params.update(_sample_color(rng, cfg))
    return params


# --------------------------------------------------------------------------
# applying params
# --------------------------------------------------------------------------


def _apply_noise(x: np.ndarray, noise: Mapping[str, Any] | None) -> np.ndarray:
    if noise is None:
        return x
    gen = np.random.default_rng(int(noise["seed"]))
    if noise["type"] == "gaussian":
        return _gaussian_noise(x, gen, float(noise["sigma"]), bool(noise["gray"]))
    if noise["type"] == "poisson":
        return _poisson_noise(x, gen, float(noise["scale"]), bool(noise["gray"]))
    raise ValueError(f"unknown noise type {noise['type']!r} in params; expected 'gaussian' or 'poisson'")


def _apply_blur(x: np.ndarray, kernel_params: Mapping[str, Any] | None) -> np.ndarray:
    return x if kernel_params is None else _filter(x, kernel_from_params(kernel_params))


def _apply_jpeg(x: np.ndarray, jpeg_params: Mapping[str, Any] | None) -> np.ndarray:
    return x if jpeg_params is None else _jpeg(x, _check_quality(jpeg_params["quality"]))


def _first_order(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    h, w = x.shape[:2]
    x = _apply_blur(x, p["motion"])
    x = _apply_blur(x, p["blur"])
    s = float(p["downsample"]["scale"])
    x = _resize(x, max(1, int(h // s)), max(1, int(w // s)), _check_mode(p["downsample"]["mode"]))
    x = _apply_noise(x, p["noise"])
    x = _apply_jpeg(x, p["jpeg"])
    return _resize(x, h, w, _check_mode(p["resize_back_mode"]))


def _second_order(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    h, w = x.shape[:2]
    sr = float(p["sr_scale"])
    first, second, final = p["first"], p["second"], p["final"]
    # first pass
    x = _apply_blur(x, first["motion"])
    x = _apply_blur(x, first["blur"])
    s1 = float(first["resize"]["scale"])
    xh, xw = x.shape[:2]
    x = _resize(
        x, max(1, math.floor(xh * s1)), max(1, math.floor(xw * s1)), _check_mode(first["resize"]["mode"])
    )
    x = _apply_noise(x, first["noise"])
    x = _apply_jpeg(np.clip(x, 0.0, 1.0), first["jpeg"])
    # second pass
    x = _apply_blur(x, second["blur"])
    s2 = float(second["resize"]["scale"])
    x = _resize(x, max(1, int(h / sr * s2)), max(1, int(w / sr * s2)), _check_mode(second["resize"]["mode"]))
    x = _apply_noise(x, second["noise"])
    # [resize to the LQ size + sinc] and JPEG, in either order
    lq_h, lq_w = max(1, int(h // sr)), max(1, int(w // sr))
    mode = _check_mode(final["resize_mode"])
    if final["sinc_first"]:
        x = _apply_blur(_resize(x, lq_h, lq_w, mode), final["sinc"])
        x = _apply_jpeg(np.clip(x, 0.0, 1.0), final["jpeg"])
    else:
        x = _apply_jpeg(np.clip(x, 0.0, 1.0), final["jpeg"])
        x = _apply_blur(_resize(x, lq_h, lq_w, mode), final["sinc"])
    return _resize(x, h, w, _check_mode(p["resize_back_mode"]))


_REQUIRED = {
    "first_order": ("usm_sharpen", "motion", "blur", "downsample", "noise", "jpeg", "resize_back_mode"),
    "second_order": ("usm_sharpen", "sr_scale", "first", "second", "final", "resize_back_mode"),
}
_COLOR_KEYS = ("color_shift", "gray", "color_jitter")


def degrade_from_params(img: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Apply a recorded degradation (a dict from :func:`sample_params` / :func:`degrade`, also after a JSON
    round trip) to HQ ``uint8 RGB (H, W, 3)``; returns the LQ ``uint8 RGB (H, W, 3)`` at the same size.
    Deterministic: byte-identical to what :func:`degrade` returned with the generator that drew ``params``
    (same NumPy / OpenCV builds)."""
    img = _check_image(img)
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict from sample_params/degrade, got {type(params).__name__}")
    if params.get("version") != PARAMS_VERSION:
        raise ValueError(
            f"params version {params.get('version')!r} is not supported (expected {PARAMS_VERSION}); "
            "re-sample them with sample_params"
        )
    pipeline = params.get("pipeline")
    if pipeline not in _REQUIRED:
        raise ValueError(f"params['pipeline'] must be 'first_order' or 'second_order', got {pipeline!r}")
    missing = [k for k in (*_REQUIRED[pipeline], *_COLOR_KEYS) if k not in params]
    if missing:
        raise ValueError(f"params lack {missing}; pass a dict produced by sample_params or degrade")

    x = _to_float(img)  # float32 RGB [0, 1] from here on
    if params["usm_sharpen"]:
        x = _usm_sharpen(x)
    x = _first_order(x, params) if pipeline == "first_order" else _second_order(x, params)
    x = np.clip(x, 0.0, 1.0)
    if params["color_shift"] is not None:
        x = _color_shift(x, params["color_shift"])
    if params["gray"]:
        x = _to_gray(x)
    jitter = params["color_jitter"]
    if jitter is not None:
        x = _adjust_color(x, jitter, jitter["order"])
    return _to_uint8(x)


def degrade(
    img: np.ndarray, rng: np.random.Generator, config: DegradationConfig | str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Degrade one HQ face: ``uint8 RGB (H, W, 3)`` -> LQ ``uint8 RGB (H, W, 3)`` at the same size.

    ``config`` is a :class:`DegradationConfig` or a preset name (:data:`PRESETS`). All randomness comes
    from ``rng`` (a :class:`numpy.random.Generator`): the same generator state gives byte-identical output.

    Returns:
        ``(lq, params)``: ``params`` is the JSON-ready dict of every sampled parameter
        (:func:`sample_params`); :func:`degrade_from_params` replays it exactly.
    """
    img = _check_image(img)
    params = sample_params(rng, config)
    return degrade_from_params(img, params), params
