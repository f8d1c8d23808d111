"""Synthetic face masks: :func:`sample_mask_params` (every random choice, as a JSON-ready dict),
:func:`apply_mask_params` (draws them; deterministic) and :func:`occlude_face` (both).

The shape comes from the landmarks (:mod:`.shapes`); the look from the parameters: a fabric colour, a printed
pattern for some styles, fabric noise and weave, the style's folds (surgical pleats, KN95 centre fold, cloth
seam, bandana drapes, gaiter ripples), dome shading and a directional light, an N95 valve, and ear loops or head
straps. Images are ``uint8`` RGB ``(H, W, 3)``; the mask is ``uint8`` ``(H, W)``, 255 where the image changed (the
region to fill), 0 elsewhere, where the output equals the input exactly.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from authface.data.degradations import check_image, check_rng

from .geometry import (
    FaceFrame,
    check_landmarks,
    face_region,
    landmarks_68,
    rasterize_lines,
    rasterize_polygon,
)
from .settings import MASK_STYLES, FaceMaskSettings, check_image_shape, check_params, check_settings
from .shapes import STYLE_GEOMETRY, MaskShape, build_shape
from .texture import PATTERNS, composite, hsv_color, pattern_field, random_color, value_noise

__all__ = ["MASK_PARAMS_VERSION", "apply_mask_params", "mask_coverage", "occlude_face", "sample_mask_params"]

logger = logging.getLogger(__name__)

#: Version of the dicts written by :func:`sample_mask_params`; :func:`apply_mask_params` refuses others.
MASK_PARAMS_VERSION = 1

_PATTERNED = ("cloth", "gaiter", "bandana")
_STRAPPED = ("surgical", "n95", "kn95", "cloth")


def mask_coverage(mask: np.ndarray, landmarks: Any) -> float:
    """Fraction of the face region (jaw line up to the eyebrows) that ``mask`` (``(H, W)``, nonzero = masked)
    covers, in ``[0, 1]``."""
    region = face_region(landmarks_68(landmarks), mask.shape)
    return float(np.count_nonzero(region & (mask > 0)) / max(np.count_nonzero(region), 1))


def _sample_geometry(rng: np.random.Generator, style: str, jitter: tuple[float, float]) -> dict[str, Any]:
    ranges = STYLE_GEOMETRY[style]
    size = float(rng.uniform(*jitter))
    geo: dict[str, Any] = {}
    for key in ("top", "droop", "side", "bottom", "drop"):
        if key in ranges:
            value = float(rng.uniform(*ranges[key]))
            geo[key] = value if key in ("top", "droop") else value * size
    geo["shoulder"] = [float(ranges["shoulder"][0]), float(ranges["shoulder"][1] * rng.uniform(0.8, 1.2))]
    return geo


def _sample_look(rng: np.random.Generator, style: str, cfg: FaceMaskSettings) -> dict[str, Any]:
    """Colours, pattern, texture, folds, light, straps and valve of one mask."""
    sat, val = cfg.saturation, cfg.value
    if style == "surgical" and rng.uniform() < 0.75:  # medical blue / green / white
        color = hsv_color(
            rng.uniform(0.45, 0.6), rng.uniform(0, sat[1] / 3), rng.uniform(max(val[0], 0.7), val[1])
        )
    elif style in ("n95", "kn95") and rng.uniform() < 0.75:  # white to grey
        color = hsv_color(0.0, 0.0, rng.uniform(max(val[0], 0.6), val[1]))
    else:
        color = random_color(rng, sat, val)
    pattern = None
    if style == "bandana" or (style in _PATTERNED and rng.uniform() < cfg.pattern_prob):
        pattern = {
            "kind": "dots" if style == "bandana" and rng.uniform() < 0.5 else PATTERNS[int(rng.integers(4))],
            "color": random_color(rng, sat, val),
            "period": float(rng.uniform(0.08, 0.25)),
            "angle": float(rng.uniform(-np.pi / 2, np.pi / 2)),
        }
    look: dict[str, Any] = {
        "color": color,
        "pattern": pattern,
        "texture": float(rng.uniform(*cfg.texture_strength)),
        "fold": float(rng.uniform(*cfg.fold_strength)),
        "shading": float(rng.uniform(*cfg.shading_strength)),
        "light": [float(v) for v in rng.uniform(-1, 1, 2)],
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
        "straps": None,
        "valve": None,
    }
    if style in _STRAPPED and rng.uniform() < cfg.strap_prob:
        strap = color if style != "n95" else random_color(rng, (0.0, 0.6), (0.5, 0.95))
        look["straps"] = {"width": float(rng.uniform(*cfg.strap_width)), "color": [c * 0.95 for c in strap]}
    if style == "n95" and rng.uniform() < cfg.valve_prob:
        look["valve"] = {"side": int(rng.choice([-1, 1])), "color": random_color(rng, (0.0, 0.3), (0.1, 0.9)),
                         "radius": float(rng.uniform(0.12, 0.17))}  # fmt: skip
    return look


def sample_mask_params(
    rng: np.random.Generator,
    style: str | None,
    landmarks: Any,
    image_shape: Any,
    settings: FaceMaskSettings | None = None,
) -> dict[str, Any]:
    """Draw one face mask for the face with ``landmarks`` in an image of ``image_shape``.

    Args:
        rng: the only source of randomness.
        style: one of :data:`MASK_STYLES`, or None to draw one with ``settings.style_weights``.
        landmarks: float ``(68, 2)`` dlib points or ``(5, 2)`` AuthFace points (eye centres, nose tip, mouth
            corners), image pixels; a :class:`~authface.face.Face` is taken for its 5 points.
        image_shape: ``(H, W)`` or ``(H, W, 3)`` of the image the mask goes on.
        settings: the ranges; default :class:`FaceMaskSettings()`.

    Returns:
        A JSON-ready dict (style, landmarks, shape, look, measured ``coverage``) for :func:`apply_mask_params`.
        The shape is redrawn until its coverage of the face region is inside ``settings.coverage`` and it hides
        the nose tip and the mouth centre (at most ``settings.max_tries`` draws; then the closest, logged).

    Raises:
        ValueError: a bad ``rng``, ``style``, ``landmarks`` or ``image_shape``, or ``settings``.
    """
    rng = check_rng(rng)
    cfg = check_settings(settings, FaceMaskSettings)
    pts = check_landmarks(landmarks)
    h, w = check_image_shape(image_shape)
    if style is None:
        p = np.asarray(cfg.style_weights, dtype=np.float64)
        style = str(cfg.styles[int(rng.choice(len(p), p=p / p.sum()))])
    if style not in MASK_STYLES:
        raise ValueError(f"style must be one of {', '.join(MASK_STYLES)} or None, got {style!r}")
    pts68 = landmarks_68(pts)
    region = face_region(pts68, (h, w))
    inside = [pts68[30], (pts68[48] + pts68[54]) / 2]
    lo, hi = cfg.coverage
    best: tuple[float, dict[str, Any], float] | None = None
    for _ in range(cfg.max_tries):
        geo = _sample_geometry(rng, style, cfg.size_jitter)
        body = rasterize_polygon((h, w), [build_shape(style, pts68, geo, False).body], antialias=False) > 0.5
        coverage = float(np.count_nonzero(body & region) / max(np.count_nonzero(region), 1))
        hides = all(_hit(body, p) for p in inside)
        miss = max(lo - coverage, coverage - hi, 0.0) + (0.0 if hides else 1.0)
        if best is None or miss < best[0]:
            best = (miss, geo, coverage)
        if miss == 0.0:
            break
    assert best is not None
    if best[0] > 0:
        logger.warning("%s mask: no shape in %d draws met coverage %s (closest %.3f)", style, cfg.max_tries,
                       cfg.coverage, best[2])  # fmt: skip
    return {
        "version": MASK_PARAMS_VERSION,
        "style": style,
        "image_shape": [h, w],
        "landmarks": [[float(x), float(y)] for x, y in pts],
        "shape": best[1],
        "look": _sample_look(rng, style, cfg),
        "coverage": best[2],
    }


def _hit(body: np.ndarray, point: np.ndarray) -> bool:
    x, y = int(round(point[0])), int(round(point[1]))
    return 0 <= y < body.shape[0] and 0 <= x < body.shape[1] and bool(body[y, x])


def apply_mask_params(img: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Draw the face mask of ``params`` (from :func:`sample_mask_params`) on ``img``.

    Args:
        img: ``uint8`` RGB ``(H, W, 3)`` of the ``image_shape`` the parameters were drawn for.
        params: the parameter dict; the same dict always gives byte-identical output.

    Returns:
        ``(occluded, mask)``: ``uint8`` RGB ``(H, W, 3)`` and ``uint8`` ``(H, W)`` in {0, 255}, 255 where the
        mask (body, straps, valve) changed the image; elsewhere ``occluded`` equals ``img``.

    Raises:
        ValueError: a bad image, an image of another size, or malformed parameters.
    """
    img, _ = check_params(img, params, MASK_PARAMS_VERSION, "face-mask")
    try:
        style, look = params["style"], params["look"]
        pts68 = landmarks_68(check_landmarks(params["landmarks"], "params['landmarks']"))
        shape = build_shape(style, pts68, params["shape"], look["straps"] is not None)
    except (KeyError, TypeError) as e:
        raise ValueError(f"params is not a face-mask parameter dict ({type(e).__name__}: {e})") from None
    frame = FaceFrame.from_68(pts68)
    body = rasterize_polygon(img.shape, [shape.body])
    straps = np.zeros_like(body)
    if shape.straps:
        straps = rasterize_lines(img.shape, shape.straps, max(look["straps"]["width"] * frame.scale, 1.0))
        straps *= 1 - body  # the straps pass behind the mask
    mask = (body > 0) | (straps > 0)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return img.copy(), np.zeros(img.shape[:2], dtype=np.uint8)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    x0, y0, x1, y1 = box
    u, v = frame.grid(img.shape[:2], box)
    fabric = _fabric(style, look, shape, frame, body[y0:y1, x0:x1], u, v)
    crop = img[y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255)
    out = composite(crop, fabric, body[y0:y1, x0:x1])
    if look["straps"] is not None:
        strap_rgb = np.asarray(look["straps"]["color"], dtype=np.float32)
        out = composite(out, np.broadcast_to(strap_rgb, out.shape), straps[y0:y1, x0:x1])
    result = img.copy()
    window = mask[y0:y1, x0:x1]
    result[y0:y1, x0:x1][window] = np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)[window]
    return result, mask.astype(np.uint8) * np.uint8(255)


def _fabric(style: str, look: dict[str, Any], shape: MaskShape, frame: FaceFrame, alpha: np.ndarray,
            u: np.ndarray, v: np.ndarray) -> np.ndarray:  # fmt: skip
    """The mask's colour ``float32 (h, w, 3)`` over the box: base colour and pattern, fabric noise, folds, dome
    shading and light, valve."""
    import cv2

    rng = np.random.default_rng(look["noise_seed"])
    h, w = u.shape
    base = np.broadcast_to(np.asarray(look["color"], dtype=np.float32), (h, w, 3)).copy()
    pattern = look["pattern"]
    if pattern is not None:
        noise = value_noise(rng, (h, w), 0.15 * frame.scale) if pattern["kind"] == "camo" else None
        weight = pattern_field(pattern["kind"], u, v, pattern["period"], pattern["angle"], noise)
        base = composite(base, np.broadcast_to(np.asarray(pattern["color"], np.float32), base.shape), weight)
    tex = look["texture"]
    weave_px = max(3.0, 0.05 * frame.scale)
    weave = np.sin(2 * np.pi * u * frame.scale / weave_px) * np.sin(2 * np.pi * v * frame.scale / weave_px)
    grain = 0.3 * value_noise(rng, (h, w), 0.3 * frame.scale) + 0.6 * value_noise(rng, (h, w), 2.0)
    grain += 0.3 * rng.standard_normal((h, w)).astype(np.float32)
    shade = 1 + tex * (grain + 0.5 * weave) + look["fold"] * _folds(style, shape, u, v, rng)
    inside = (alpha > 0).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3) / np.float32(0.35 * frame.scale)
    dome = 1 - (1 - np.clip(dist, 0, 1)) ** 2
    lx, ly = look["light"]
    shade *= (
        1 - look["shading"] * (1 - dome) + 0.15 * look["shading"] * np.clip(lx * u + ly * (v - 1), -1.5, 1.5)
    )
    rgb = base * shade[..., None]
    valve = look["valve"]
    if valve is not None:
        cu, cv_ = valve["side"] * 0.45 * shape.corner_u, (shape.nose_uv[1] + shape.chin_uv[1]) / 2 + 0.1
        r = np.hypot(u - cu, v - cv_) / valve["radius"]
        disc = np.clip((1 - r) * 8, 0, 1)
        ring = 1 - 0.35 * np.exp(-(((r - 0.7) / 0.08) ** 2))
        vcol = np.asarray(valve["color"], dtype=np.float32) * (ring * (1 - 0.2 * r))[..., None]
        rgb = composite(rgb, vcol, disc)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _folds(
    style: str, shape: MaskShape, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Shading offsets (about ``[-1, 1]``) of each style's folds, in face coordinates."""
    top, chin = shape.nose_uv, shape.chin_uv
    if style == "surgical":  # three horizontal pleats curving with the top edge
        span = chin[1] - top[1]
        q = (v - top[1] - 0.25 * (u / max(shape.corner_u, 1e-3)) ** 2 * 0.3) / span
        out = np.zeros_like(u)
        for qk in (0.3, 0.48, 0.66):
            d = (q - qk) / 0.025
            out += -np.exp(-(d**2)) + 0.6 * np.exp(-(((d + 2.0) / 1.5) ** 2))
        return out + 0.5 * np.exp(-(((v - top[1]) / 0.05) ** 2))  # nose wire
    t = np.clip((v - top[1]) / max(chin[1] - top[1], 1e-3), 0, 1)
    seam_u = top[0] + t * (chin[0] - top[0])
    if style == "kn95":  # two flat panels meeting at a centre fold
        return 0.5 * np.tanh((u - seam_u) / 0.02) - 0.8 * np.exp(-(((u - seam_u) / 0.015) ** 2))
    if style == "cloth":
        return -0.7 * np.exp(-(((u - seam_u) / 0.012) ** 2)) + 0.3 * value_noise(rng, u.shape, 12.0)
    if style == "n95":
        return 0.3 * value_noise(rng, u.shape, 20.0)
    if style == "bandana":  # drapes falling from the knot towards the tip
        phase = (np.abs(u) * 0.9 + (v - top[1])) * (2 * np.pi / 0.3)
        return np.sin(phase) * np.clip(v - top[1], 0, 1)
    ripples = np.sin((v - top[1]) * (2 * np.pi / 0.22) + 0.5 * value_noise(rng, u.shape, 25.0))  # gaiter
    return ripples * np.clip((v - chin[1] + 0.6), 0.2, 1.0)


def occlude_face(
    img: np.ndarray,
    landmarks: Any,
    rng: np.random.Generator,
    style: str | None = None,
    settings: FaceMaskSettings | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw a random face mask on the face with ``landmarks`` in ``img``: :func:`sample_mask_params` then
    :func:`apply_mask_params`. Returns ``(occluded uint8 (H, W, 3), mask uint8 (H, W) in {0, 255}, params)``.

    Raises:
        ValueError: a bad ``img``, ``landmarks``, ``rng``, ``style`` or ``settings`` (named in the message).
    """
    img = check_image(img, np.uint8, "img")
    params = sample_mask_params(rng, style, landmarks, img.shape, settings)
    occluded, mask = apply_mask_params(img, params)
    return occluded, mask, params
