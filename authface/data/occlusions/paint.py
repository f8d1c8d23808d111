"""Painted occlusions: :func:`sample_paint_params`, :func:`apply_paint_params`, :func:`paint_strokes`.

The region a user paints over a face to have it filled: free-form brush strokes of flat paint with round joints,
like the masked faces CodeFormer's and PGDiff's inpainting modes take (white strokes) and the free-form training
masks of DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019, Algorithm 1:
random vertices, each segment in a new direction, a random brush width). Written here because no maintained library
draws replayable free-form masks; drawing is OpenCV's anti-aliased polylines (:func:`.geometry.rasterize_lines`).

Images are ``uint8`` RGB ``(H, W, 3)``; the mask is ``uint8 (H, W)`` in {0, 255}. The output equals the input
outside the mask; inside the strokes' cores it is the flat paint colour.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from authface.data.degradations import check_image, check_rng

from .geometry import rasterize_lines
from .settings import PaintSettings, check_image_shape, check_params, check_settings
from .texture import composite

__all__ = ["PAINT_PARAMS_VERSION", "apply_paint_params", "paint_mask", "paint_strokes", "sample_paint_params"]

#: Version of the dicts written by :func:`sample_paint_params`; :func:`apply_paint_params` refuses others.
PAINT_PARAMS_VERSION = 1

logger = logging.getLogger(__name__)

_MIN_ALPHA = 1.0 / 255.0  # weaker coverage is dropped, so the image changes only inside the mask


def _sample_stroke(rng: np.random.Generator, h: int, w: int, cfg: PaintSettings) -> dict[str, Any]:
    side = min(h, w)
    centre, top = np.array([(w - 1) / 2, (h - 1) / 2]), [w - 1, h - 1]
    point = np.clip(centre + rng.uniform(-1, 1, 2) * cfg.centre_spread * side, [0, 0], top)
    points = [point]
    for _ in range(int(rng.integers(*cfg.vertices, endpoint=True)) - 1):
        angle = rng.uniform(0, 2 * np.pi)
        step = rng.uniform(*cfg.segment) * side
        point = np.clip(point + step * np.array([np.cos(angle), np.sin(angle)]), [0, 0], top)
        points.append(point)
    return {"points": np.asarray(points).tolist(), "width": max(float(rng.uniform(*cfg.width) * side), 1.0)}


def _colour(rng: np.random.Generator, white_prob: float) -> list[float]:
    if rng.uniform() < white_prob:
        return [1.0, 1.0, 1.0]
    if rng.uniform() < 1 / 3:
        return [0.0, 0.0, 0.0]
    return [float(v) for v in rng.uniform(0, 1, 3)]


def _check_stroke(stroke: Any, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """``(points float64 (n, 2), width)`` of a recorded stroke; ValueError when it is not one."""
    points = np.asarray(stroke["points"], dtype=np.float64)
    width = float(stroke["width"])
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 1 or not np.isfinite(points).all():
        raise ValueError(f"stroke points must be a finite (n, 2) array of (x, y), got shape {points.shape}")
    if not (np.isfinite(width) and 1.0 <= width <= 2 * max(shape)):
        raise ValueError(f"stroke width must be in [1, {2 * max(shape)}] pixels, got {width}")
    return points, width


def _alpha(shape: tuple[int, int], strokes: list[dict[str, Any]]) -> np.ndarray:
    alpha = np.zeros(shape, np.float32)
    for s in strokes:
        points, width = _check_stroke(s, shape)
        alpha = np.maximum(alpha, rasterize_lines(shape, [points], width))
    return np.where(alpha >= _MIN_ALPHA, alpha, 0).astype(np.float32)


def sample_paint_params(
    rng: np.random.Generator, image_shape: Any, settings: PaintSettings | None = None
) -> dict[str, Any]:
    """Draw the painted strokes for one image of ``image_shape`` (``(H, W)`` or ``(H, W, 3)``).

    Returns a JSON-ready dict (``strokes``: polylines in pixel coordinates and widths; ``color``: RGB in
    ``[0, 1]``; ``coverage``: fraction of the image under the mask) for :func:`apply_paint_params`. Strokes are
    redrawn until the coverage lies in ``settings.coverage`` (at most ``max_tries`` draws; then the closest,
    logged).

    Raises:
        ValueError: a bad ``rng``, ``image_shape`` or ``settings``.
    """
    rng = check_rng(rng)
    cfg = check_settings(settings, PaintSettings)
    h, w = check_image_shape(image_shape)
    lo, hi = cfg.coverage
    best: tuple[float, float, list[dict[str, Any]]] | None = None
    for _ in range(cfg.max_tries):
        strokes = [
            _sample_stroke(rng, h, w, cfg) for _ in range(int(rng.integers(*cfg.stroke_count, endpoint=True)))
        ]
        coverage = float(np.count_nonzero(_alpha((h, w), strokes))) / (h * w)
        miss = max(lo - coverage, coverage - hi, 0.0)
        if best is None or miss < best[0]:
            best = (miss, coverage, strokes)
        if miss == 0.0:
            break
    assert best is not None
    if best[0] > 0:
        logger.warning("paint: no draw in %d met coverage [%.3f, %.3f] (closest %.3f)", cfg.max_tries, lo, hi,
                       best[1])  # fmt: skip
    return {"version": PAINT_PARAMS_VERSION, "image_shape": [h, w], "strokes": best[2],
            "color": _colour(rng, cfg.white_prob), "coverage": best[1]}  # fmt: skip


def paint_mask(params: dict[str, Any]) -> np.ndarray:
    """The ``uint8 (H, W)`` {0, 255} mask of the strokes in ``params`` (no image needed)."""
    return (_alpha(tuple(params["image_shape"]), params["strokes"]) > 0).astype(np.uint8) * np.uint8(255)


def apply_paint_params(img: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Paint the strokes of ``params`` (from :func:`sample_paint_params`) over ``img``.

    Args:
        img: ``uint8`` RGB ``(H, W, 3)`` of the ``image_shape`` the parameters were drawn for.
        params: the parameter dict; the same dict always gives byte-identical output.

    Returns:
        ``(painted uint8 (H, W, 3), mask uint8 (H, W) in {0, 255})``; pixels outside the mask are ``img``'s.

    Raises:
        ValueError: a bad image, an image of another size, or malformed parameters.
    """
    img, shape_hw = check_params(img, params, PAINT_PARAMS_VERSION, "paint")
    try:
        alpha = _alpha(shape_hw, params["strokes"])
        colour = np.asarray(params["color"], np.float32).reshape(3)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"params is not a paint parameter dict ({type(e).__name__}: {e})") from None
    if not np.isfinite(colour).all():
        raise ValueError(f"params color must be a finite RGB triple in [0, 1], got {params['color']!r}")
    x = img.astype(np.float32) * np.float32(1 / 255)
    out = np.round(np.clip(composite(x, np.broadcast_to(colour, x.shape), alpha), 0, 1) * 255).astype(
        np.uint8
    )
    mask = alpha > 0
    return np.where(mask[..., None], out, img), mask.astype(np.uint8) * np.uint8(255)


def paint_strokes(
    img: np.ndarray, rng: np.random.Generator, settings: PaintSettings | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Paint free-form brush strokes over ``img``: :func:`sample_paint_params` then :func:`apply_paint_params`.

    Returns ``(painted uint8 (H, W, 3), mask uint8 (H, W) in {0, 255}, params)``.

    Raises:
        ValueError: a bad ``img``, ``rng`` or ``settings`` (named in the message).
    """
    img = check_image(img, np.uint8, "img")
    params = sample_paint_params(rng, img.shape, settings)
    painted, mask = apply_paint_params(img, params)
    return painted, mask, params
