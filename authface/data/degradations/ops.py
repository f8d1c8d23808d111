"""Image ops of the degradation pipelines, each on ``float32`` RGB ``(H, W, 3)`` images in ``[0, 1]``.

One version of each op: images come in and go out as ``float32`` ``[0, 1]`` (convert ``uint8`` with
:func:`~.checks.to_float` and back with :func:`authface.io.to_uint8`; :func:`~.sampling.degrade` does both, once).
Ops that keep values in range clip to ``[0, 1]``; :func:`apply_kernel` and :func:`resize` do not (as BasicSR).
Randomness comes only from an explicit :class:`numpy.random.Generator`. Thin wrappers over OpenCV / NumPy:

* :func:`apply_kernel` (``cv2.filter2D``), :func:`resize` (:func:`authface.imaging.resize`),
* :func:`add_gaussian_noise`, :func:`add_poisson_noise` (BasicSR's, noise levels in 0-255 units),
* :func:`jpeg` (OpenCV's libjpeg), :func:`to_gray`, :func:`color_shift`,
* :func:`adjust_color` / :func:`color_jitter` (torchvision's ``adjust_*`` formulas, as GFPGAN's ``color_jitter_pt``),
* :func:`usm_sharpen` (BasicSR's ``usm_sharp``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from authface.imaging import resize

from .checks import check_image, check_rng, to_float, to_uint8

__all__ = [
    "COLOR_ADJUSTMENTS",
    "add_gaussian_noise",
    "add_poisson_noise",
    "adjust_color",
    "apply_kernel",
    "color_jitter",
    "color_shift",
    "jpeg",
    "resize",
    "sample_color_jitter",
    "to_gray",
    "usm_sharpen",
]

#: The adjustments of :func:`adjust_color` / :func:`color_jitter`, in their default order.
COLOR_ADJUSTMENTS = ("brightness", "contrast", "saturation", "hue")
# torchvision's grayscale weights (used by its adjust_contrast / adjust_saturation, which GFPGAN calls).
_TV_GRAY = (0.2989, 0.587, 0.114)


def _non_negative(value: Any, what: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    return v


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter ``float32 RGB (H, W, 3)`` with a 2-D float kernel with odd sides (correlation, ``cv2.filter2D`` with
    ``BORDER_REFLECT_101``, as BasicSR / Real-ESRGAN's ``filter2D``). Returns ``float32 RGB (H, W, 3)``, unclipped.

    Raises:
        ValueError: a bad image, or a kernel that is not 2-D float with odd sides and finite values.
    """
    img = check_image(img)
    k = np.asarray(kernel)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0 or not np.issubdtype(k.dtype, np.floating):
        raise ValueError(f"kernel must be a 2-D float array with odd sides, got {k.dtype} {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("kernel contains NaN or infinity")
    return cv2.filter2D(img, -1, k.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


def add_gaussian_noise(img: np.ndarray, rng: np.random.Generator, sigma: float, gray: bool = False) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (0-255 units) to ``float32 RGB (H, W, 3)``;
    ``gray=True`` adds the same noise to the three channels. BasicSR ``add_gaussian_noise(clip=True,
    rounds=False)``. Returns ``float32 RGB`` clipped to ``[0, 1]``."""
    img = check_image(img)
    check_rng(rng)
    scale = np.float32(_non_negative(sigma, "sigma (0-255 units)") / 255.0)
    if gray:
        noise = rng.standard_normal(img.shape[:2], dtype=np.float32)[:, :, None] * scale
    else:
        noise = rng.standard_normal(img.shape, dtype=np.float32) * scale
    return np.clip(img + noise, 0.0, 1.0)


def _gray_plane(x: np.ndarray) -> np.ndarray:
    """float32 RGB (H, W, 3) -> float32 (H, W) luma 0.299 R + 0.587 G + 0.114 B, computed by OpenCV in float32.

    Not :func:`authface.imaging.luma`: that one computes in float64, whose last bits differ, and recorded
    degradations must replay byte for byte.
    """
    return cv2.cvtColor(np.ascontiguousarray(x, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def add_poisson_noise(img: np.ndarray, rng: np.random.Generator, scale: float, gray: bool = False) -> np.ndarray:
    """Add Poisson (shot) noise to ``float32 RGB (H, W, 3)``, scaled by ``scale`` (BasicSR / Real-ESRGAN
    convention, 0.05-3 in Real-ESRGAN); ``gray=True`` draws it on the luma and adds it to all channels.

    BasicSR ``add_poisson_noise(clip=True, rounds=False)``: the image, rounded to 8 bits, is taken as photon counts
    with ``vals = 2**ceil(log2(#distinct levels))`` levels; noise = (Poisson(img * vals) / vals - img) * scale.
    Returns ``float32 RGB`` clipped to ``[0, 1]``.
    """
    img = check_image(img)
    check_rng(rng)
    scale = _non_negative(scale, "scale")
    src = _gray_plane(img) if gray else img
    levels = np.clip(np.rint(src * 255.0), 0, 255)
    n_unique = int(np.count_nonzero(np.bincount(levels.astype(np.int64).ravel(), minlength=256)))
    vals = float(2.0 ** math.ceil(math.log2(max(n_unique, 1))))
    q = levels / 255.0  # float64, as BasicSR
    noise = (rng.poisson(q * vals) / vals - q) * scale
    if gray:
        noise = noise[:, :, None]
    return np.clip(img + noise.astype(np.float32), 0.0, 1.0)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress and decode ``float32 RGB (H, W, 3)`` at ``quality`` (integer 0-100) with OpenCV's libjpeg
    (``cv2.imencode`` / ``cv2.imdecode``, default 4:2:0 chroma subsampling); the image is rounded to ``uint8``
    first. Returns ``float32 RGB`` in ``[0, 1]``."""
    img = check_image(img)
    if isinstance(quality, bool) or int(quality) != quality or not (0 <= int(quality) <= 100):
        raise ValueError(f"JPEG quality must be an integer in [0, 100], got {quality!r}")
    bgr = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:  # pragma: no cover - OpenCV always has a JPEG encoder
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    return to_float(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def to_gray(img: np.ndarray) -> np.ndarray:
    """Grayscale ``float32 RGB (H, W, 3)`` with three equal channels (OpenCV luma 0.299 R + 0.587 G + 0.114 B,
    as GFPGAN's ``gray_prob`` step). Returns ``float32 RGB``."""
    return np.repeat(_gray_plane(check_image(img))[:, :, None], 3, axis=2)


def color_shift(img: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Add a per-channel offset ``shift`` = ``(r, g, b)`` in 0-255 units to ``float32 RGB (H, W, 3)``, clipped to
    ``[0, 1]`` (GFPGAN's numpy ``color_jitter``, which draws each offset uniformly in ``+-color_jitter_shift``)."""
    img = check_image(img)
    s = np.asarray(shift, dtype=np.float64)
    if s.shape != (3,) or not np.isfinite(s).all():
        raise ValueError(f"shift must be three finite numbers (R, G, B offsets, 0-255 units), got {shift!r}")
    return np.clip(img + (s.astype(np.float32) / np.float32(255.0)), 0.0, 1.0)


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
    # hue: rotate the hue by factor turns
    hsv = cv2.cvtColor(np.ascontiguousarray(np.clip(x, 0.0, 1.0)), cv2.COLOR_RGB2HSV)  # H in [0, 360)
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + np.float32(factor * 360.0), np.float32(360.0))
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


def adjust_color(
    img: np.ndarray,
    brightness: float | None = None,
    contrast: float | None = None,
    saturation: float | None = None,
    hue: float | None = None,
    order: Sequence[str] = COLOR_ADJUSTMENTS,
) -> np.ndarray:
    """Apply torchvision-style ``adjust_brightness / contrast / saturation / hue`` (factors; None skips one)
    to ``float32 RGB (H, W, 3)`` in ``order`` (distinct names from :data:`COLOR_ADJUSTMENTS`). ``hue`` is in
    turns, ``[-0.5, 0.5]``. Returns ``float32 RGB`` in ``[0, 1]``."""
    x = check_image(img)
    if len(order) != len(set(order)) or not set(order) <= set(COLOR_ADJUSTMENTS):
        raise ValueError(f"order must list distinct names from {', '.join(COLOR_ADJUSTMENTS)}, got {list(order)}")
    factors = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
    for name in order:
        if factors[name] is not None:
            x = _adjust(x, name, float(factors[name]))
    return x


def sample_color_jitter(
    rng: np.random.Generator,
    brightness: Sequence[float] | None,
    contrast: Sequence[float] | None,
    saturation: Sequence[float] | None,
    hue: Sequence[float] | None,
) -> dict[str, Any]:
    """The draw of :func:`color_jitter` (GFPGAN ``color_jitter_pt``), without an image and without checking the
    ranges: ``{"order": [4 names in a random order], "brightness": factor | None, "contrast": ..., "saturation":
    ..., "hue": ...}``, each factor uniform in its ``(lo, hi)`` range (None when the range is None)."""
    order = [COLOR_ADJUSTMENTS[int(i)] for i in rng.permutation(4)]
    out: dict[str, Any] = {"order": order}
    for name, r in zip(COLOR_ADJUSTMENTS, (brightness, contrast, saturation, hue)):
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
    """Random colour jitter of ``float32 RGB (H, W, 3)``, as GFPGAN's ``color_jitter_pt``: the four
    adjustments in a random order, each factor uniform in its ``(lo, hi)`` range (None skips it); GFPGAN
    uses brightness (0.5, 1.5), contrast (0.5, 1.5), saturation (0, 1.5), hue (-0.1, 0.1).

    Returns:
        ``(float32 RGB image, {"order": [...], "brightness": f, "contrast": f, "saturation": f, "hue": f})``.
    """
    img = check_image(img)
    check_rng(rng)
    for name, r in zip(COLOR_ADJUSTMENTS, (brightness, contrast, saturation, hue)):
        if r is not None and (len(r) != 2 or float(r[0]) > float(r[1])):
            raise ValueError(f"{name} must be None or (lo, hi) with lo <= hi, got {r!r}")
    params = sample_color_jitter(rng, brightness, contrast, saturation, hue)
    factors = {name: params[name] for name in COLOR_ADJUSTMENTS}
    return adjust_color(img, **factors, order=params["order"]), params


def usm_sharpen(img: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10.0) -> np.ndarray:
    """Unsharp-mask ``float32 RGB (H, W, 3)`` as BasicSR's ``usm_sharp`` (Real-ESRGAN sharpens the HQ with it
    before degrading): a Gaussian of odd side ``radius`` (+1 when even), ``weight`` of the residual added where
    the detail exceeds ``threshold`` (0-255 units), blended with a soft mask. Returns ``float32 RGB``."""
    x = check_image(img)
    radius = int(radius) + (1 - int(radius) % 2)
    blur = cv2.GaussianBlur(x, (radius, radius), 0)
    residual = x - blur
    mask = (np.abs(residual) * 255 > float(threshold)).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (radius, radius), 0)
    sharp = np.clip(x + np.float32(weight) * residual, 0.0, 1.0)
    return soft * sharp + (1 - soft) * x
