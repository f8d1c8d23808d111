"""Synthetic old-photo damage: :func:`sample_damage_params`, :func:`apply_damage_params`, :func:`damage_photo`.

Local damage, each element with its mask (the region to inpaint): scratches (thin cubic Bezier curves, light or
dark), creases (long folds: a light crack between a highlight and a shadow), tears (a torn corner or edge with a
jagged outline, filled with paper or scanner background) and stains / blotches (soft irregular blobs, darker or
bleached, some with a darker rim). Global degradations, with no mask (the whole print is restored, not
inpainted): black-and-white, yellowing (sepia), fading (contrast lost towards the paper tone) and film grain.

Order: gray -> yellowing -> fading -> local damage -> grain. Images are ``uint8`` RGB ``(H, W, 3)``; the mask is
``uint8 (H, W)`` in {0, 255}. Without global degradations the output equals the input outside the mask.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from authface.data.degradations import check_image, check_rng
from authface.imaging import luma

from .geometry import bezier, offset_polyline, rasterize_lines, rasterize_polygon
from .settings import DAMAGE_KINDS, DamageSettings, check_image_shape, check_params, check_settings
from .texture import composite

__all__ = [
    "DAMAGE_PARAMS_VERSION",
    "apply_damage_params",
    "damage_mask",
    "damage_photo",
    "sample_damage_params",
]

logger = logging.getLogger(__name__)

#: Version of the dicts written by :func:`sample_damage_params`; :func:`apply_damage_params` refuses others.
DAMAGE_PARAMS_VERSION = 1

_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)
_MIN_ALPHA = 1.0 / 255.0  # weaker coverage is dropped, so the image changes only inside the mask


def _gray(rng: np.random.Generator, lo: float, hi: float) -> list[float]:
    g = float(rng.uniform(lo, hi))
    return [g, g, g]


def _sample_scratch(rng: np.random.Generator, h: int, w: int, cfg: DamageSettings) -> dict[str, Any]:
    side = min(h, w)
    start = rng.uniform([0, 0], [w, h])
    length = rng.uniform(*cfg.scratch_length) * side
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    end = start + length * direction
    bend = np.array([-direction[1], direction[0]]) * length
    ctrl = [start, start + (end - start) / 3 + bend * rng.uniform(-0.2, 0.2),
            start + 2 * (end - start) / 3 + bend * rng.uniform(-0.2, 0.2), end]  # fmt: skip
    light = rng.uniform() < 0.7
    return {
        "kind": "scratches",
        "points": np.asarray(ctrl).tolist(),
        "width": max(float(rng.uniform(*cfg.scratch_width) * side), 1.0),
        "color": _gray(rng, 0.85, 1.0) if light else _gray(rng, 0.03, 0.25),
        "opacity": float(rng.uniform(0.6, 1.0)),
    }


def _edge_point(rng: np.random.Generator, h: int, w: int, edge: int) -> np.ndarray:
    """A random point on edge 0 top, 1 right, 2 bottom, 3 left (pixel centres of the border rows)."""
    t = rng.uniform(0.0, 1.0)
    return np.array([[t * (w - 1), 0], [w - 1, t * (h - 1)], [t * (w - 1), h - 1], [0, t * (h - 1)]][edge])


def _sample_crease(rng: np.random.Generator, h: int, w: int, cfg: DamageSettings) -> dict[str, Any]:
    first = int(rng.integers(4))
    a, b = _edge_point(rng, h, w, first), _edge_point(rng, h, w, (first + 2) % 4)  # across the print
    normal = np.array([-(b - a)[1], (b - a)[0]])
    ctrl = [
        a,
        a + (b - a) / 3 + normal * rng.uniform(-0.05, 0.05),
        a + 2 * (b - a) / 3 + normal * rng.uniform(-0.05, 0.05),
        b,
    ]
    return {
        "kind": "creases",
        "points": np.asarray(ctrl).tolist(),
        "width": max(float(rng.uniform(*cfg.crease_width) * min(h, w)), 2.0),
        "strength": float(rng.uniform(0.3, 0.8)),
    }


def _jagged(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, depth: int = 6) -> np.ndarray:
    """Midpoint displacement from ``a`` to ``b``: a torn-paper line of ``2**depth + 1`` points."""
    pts = [a, b]
    amp = 0.12 * float(np.hypot(*(b - a)))
    for _ in range(depth):
        new = [pts[0]]
        for p, q in zip(pts[:-1], pts[1:]):
            d = q - p
            normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
            new += [(p + q) / 2 + normal * rng.uniform(-amp, amp), q]
        pts, amp = new, amp * 0.55
    return np.asarray(pts)


def _sample_tear(rng: np.random.Generator, h: int, w: int, cfg: DamageSettings) -> dict[str, Any]:
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    i = int(rng.integers(4))
    corner = corners[i]
    size = rng.uniform(*cfg.tear_size, size=2) * min(h, w)
    along = [corners[(i + 1) % 4] - corner, corners[(i - 1) % 4] - corner]
    a = corner + along[0] / np.hypot(*along[0]) * size[0]
    b = corner + along[1] / np.hypot(*along[1]) * size[1]
    line = _jagged(rng, a, b)
    outside = [corner + (corner - (a + b) / 2) * 0.05]  # a hair outside the image, so the border is covered
    paper = rng.uniform() < 0.6
    return {
        "kind": "tears",
        "outline": np.concatenate([line, outside]).tolist(),
        "edge": line.tolist(),
        "fill": _gray(rng, 0.82, 0.97) if paper else _gray(rng, 0.02, 0.12),
        "edge_width": max(float(rng.uniform(0.004, 0.01) * min(h, w)), 1.0),
    }


def _sample_stain(rng: np.random.Generator, h: int, w: int, cfg: DamageSettings) -> dict[str, Any]:
    dark = rng.uniform() < 0.7  # else a bleached blotch, painted towards a pale paper tone
    tint = [0.55, 0.4, 0.2] if dark else [0.95, 0.93, 0.86]
    return {
        "kind": "stains",
        "center": rng.uniform([0, 0], [w, h]).tolist(),
        "radius": float(rng.uniform(*cfg.stain_radius) * min(h, w)),
        "harmonics": [
            [float(rng.uniform(0, 0.35) / k), float(rng.uniform(0, 2 * np.pi))] for k in range(2, 7)
        ],
        "color": [float(min(c * rng.uniform(0.85, 1.05), 1.0)) for c in tint],
        "multiply": bool(dark),
        "opacity": float(rng.uniform(*cfg.stain_opacity)),
        "rim": float(rng.uniform(0.0, 0.6)) if dark else 0.0,
    }


_SAMPLERS = {
    "scratches": _sample_scratch,
    "creases": _sample_crease,
    "tears": _sample_tear,
    "stains": _sample_stain,
}
_PREFIX = {
    "scratches": "scratch",
    "creases": "crease",
    "tears": "tear",
    "stains": "stain",
}  # settings field names


def _sample_elements(rng: np.random.Generator, h: int, w: int, cfg: DamageSettings) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    for kind in DAMAGE_KINDS:
        prob = getattr(cfg, f"{_PREFIX[kind]}_prob")
        if prob > 0 and rng.uniform() < prob:
            count = int(rng.integers(*getattr(cfg, f"{_PREFIX[kind]}_count"), endpoint=True))
            elements += [_SAMPLERS[kind](rng, h, w, cfg) for _ in range(count)]
    if not elements:  # never an empty mask: one element of a kind allowed by the settings (else a scratch)
        probs = np.array([getattr(cfg, f"{_PREFIX[k]}_prob") for k in DAMAGE_KINDS])
        kind = (
            DAMAGE_KINDS[int(rng.choice(len(probs), p=probs / probs.sum()))]
            if probs.sum() > 0
            else "scratches"
        )
        elements.append(_SAMPLERS[kind](rng, h, w, cfg))
    return elements


def sample_damage_params(
    rng: np.random.Generator, image_shape: Any, settings: DamageSettings | None = None
) -> dict[str, Any]:
    """Draw the damage of one old photo of ``image_shape`` (``(H, W)`` or ``(H, W, 3)``).

    Returns a JSON-ready dict (``elements``: the local damage in pixel coordinates; ``global``: gray, yellowing,
    fading, grain; ``coverage``: fraction of the image under the mask) for :func:`apply_damage_params`. The
    elements are redrawn until the mask covers at most ``settings.max_coverage`` (at most ``max_tries`` draws;
    then the smallest, logged); there is always at least one element.

    Raises:
        ValueError: a bad ``rng``, ``image_shape`` or ``settings``.
    """
    rng = check_rng(rng)
    cfg = check_settings(settings, DamageSettings)
    h, w = check_image_shape(image_shape)
    best: tuple[float, list[dict[str, Any]]] | None = None
    for _ in range(cfg.max_tries):
        elements = _sample_elements(rng, h, w, cfg)
        coverage = float(np.count_nonzero(_alphas((h, w), elements)[1])) / (h * w)
        if best is None or coverage < best[0]:
            best = (coverage, elements)
        if coverage <= cfg.max_coverage:
            break
    assert best is not None
    if best[0] > cfg.max_coverage:
        logger.warning("damage: no draw in %d met max_coverage %.3f (smallest %.3f)", cfg.max_tries,
                       cfg.max_coverage, best[0])  # fmt: skip
    glob: dict[str, Any] = {"gray": bool(rng.uniform() < cfg.gray_prob), "yellowing": None, "fading": None,
                            "paper": [float(v) for v in np.array([0.95, 0.92, 0.84]) + rng.uniform(-0.04, 0.04, 3)],
                            "grain": None}  # fmt: skip
    if rng.uniform() < cfg.yellowing_prob:
        glob["yellowing"] = float(rng.uniform(*cfg.yellowing))
    if rng.uniform() < cfg.fading_prob:
        glob["fading"] = float(rng.uniform(*cfg.fading))
    if rng.uniform() < cfg.grain_prob:
        glob["grain"] = {
            "sigma": float(rng.uniform(*cfg.grain_sigma)),
            "seed": int(rng.integers(0, 2**31 - 1)),
        }
    return {"version": DAMAGE_PARAMS_VERSION, "image_shape": [h, w], "elements": best[1], "global": glob,
            "coverage": best[0]}  # fmt: skip


def _stain_alpha(shape: tuple[int, int], e: dict[str, Any]) -> np.ndarray:
    import cv2

    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    radius = e["radius"] * (1 + sum(a * np.cos(k * theta + p) for k, (a, p) in enumerate(e["harmonics"], 2)))
    outline = np.asarray(e["center"]) + np.stack([np.cos(theta), np.sin(theta)], 1) * radius[:, None]
    blob = rasterize_polygon(shape, [outline])
    sigma = max(0.15 * e["radius"], 0.5)
    soft = np.clip((cv2.GaussianBlur(blob, (0, 0), sigma) - 0.15) / 0.85, 0, 1)  # soft edge, finite extent
    rim = np.clip(soft * (1 - soft) * 4, 0, 1) * e["rim"]  # coffee-ring darkening at the edge
    return np.clip(soft * e["opacity"] + rim * (1 - e["opacity"]), 0, 1)


def _element_layers(shape: tuple[int, int], e: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """``(alpha (H, W), colour (3,), multiply)`` layers of one element: paint the colour over the image, or (for
    stains) multiply the image by it."""
    kind = e["kind"]
    if kind == "scratches":
        line = bezier(np.asarray(e["points"]), 48)
        return [(rasterize_lines(shape, [line], e["width"]) * e["opacity"], np.asarray(e["color"]), False)]
    if kind == "creases":
        line, wd = bezier(np.asarray(e["points"]), 64), e["width"]
        s = e["strength"]
        return [
            (rasterize_lines(shape, [offset_polyline(line, wd / 2)], wd) * s * 0.6, np.full(3, 0.05), False),
            (rasterize_lines(shape, [offset_polyline(line, -wd / 2)], wd) * s * 0.6, np.full(3, 0.98), False),
            (rasterize_lines(shape, [line], max(wd / 3, 1.0)) * s, np.full(3, 0.92), False),
        ]
    if kind == "tears":
        fill = rasterize_polygon(shape, [np.asarray(e["outline"])])
        edge = rasterize_lines(shape, [np.asarray(e["edge"])], e["edge_width"])
        return [(fill, np.asarray(e["fill"]), False), (edge * 0.8, np.full(3, 0.97), False)]
    if kind == "stains":
        return [(_stain_alpha(shape, e), np.asarray(e["color"]), e["multiply"])]
    raise ValueError(f"unknown damage kind {kind!r}; expected one of {', '.join(DAMAGE_KINDS)}")


def _alphas(shape: tuple[int, int], elements: list[dict[str, Any]]) -> tuple[list, np.ndarray]:
    layers, mask = [], np.zeros(shape, dtype=bool)
    for e in elements:
        for alpha, color, multiply in _element_layers(shape, e):
            alpha = np.where(alpha >= _MIN_ALPHA, alpha, 0).astype(np.float32)
            mask |= alpha > 0
            layers.append((alpha, color.astype(np.float32), multiply))
    return layers, mask


def damage_mask(params: dict[str, Any]) -> np.ndarray:
    """The ``uint8 (H, W)`` {0, 255} mask of the local damage in ``params`` (no image needed)."""
    return _alphas(tuple(params["image_shape"]), params["elements"])[1].astype(np.uint8) * np.uint8(255)


def apply_damage_params(img: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Age ``img`` with the damage of ``params`` (from :func:`sample_damage_params`).

    Args:
        img: ``uint8`` RGB ``(H, W, 3)`` of the ``image_shape`` the parameters were drawn for.
        params: the parameter dict; the same dict always gives byte-identical output.

    Returns:
        ``(damaged uint8 (H, W, 3), mask uint8 (H, W) in {0, 255})``: the mask marks the local damage only.

    Raises:
        ValueError: a bad image, an image of another size, or malformed parameters.
    """
    img, shape_hw = check_params(img, params, DAMAGE_PARAMS_VERSION, "damage")
    try:
        glob = params["global"]
        layers, mask = _alphas(shape_hw, params["elements"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"params is not a damage parameter dict ({type(e).__name__}: {e})") from None
    x = img.astype(np.float32) * np.float32(1 / 255)
    x = _global_before(x, glob)
    for alpha, color, multiply in layers:
        layer = x * color if multiply else np.broadcast_to(color, x.shape)
        x = composite(x, layer, alpha)
    if glob["grain"] is not None:
        import cv2

        noise = np.random.default_rng(glob["grain"]["seed"]).standard_normal(shape_hw).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), 0.6) * np.float32(glob["grain"]["sigma"] / 255 * 1.6)
        x = x + noise[..., None]
    out = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    if not _is_global(glob):
        out = np.where(mask[..., None], out, img)
    return out, mask.astype(np.uint8) * np.uint8(255)


def _is_global(glob: dict[str, Any]) -> bool:
    return bool(glob["gray"] or glob["yellowing"] or glob["fading"] or glob["grain"])


def _global_before(x: np.ndarray, glob: dict[str, Any]) -> np.ndarray:
    """Gray, yellowing and fading on ``float32`` RGB ``[0, 1]``."""
    if glob["gray"]:
        x = np.repeat(luma(x, channel_axis=-1)[..., None], 3, axis=-1).astype(np.float32)
    if glob["yellowing"]:
        x = composite(x, np.clip(x @ _SEPIA.T, 0, 1), np.full(x.shape[:2], glob["yellowing"], np.float32))
    if glob["fading"]:
        f = np.float32(glob["fading"])
        gray = luma(x, channel_axis=-1)[..., None]
        x = (x + (gray - x) * f * 0.5) * (1 - f) + np.asarray(glob["paper"], np.float32) * f
    return x.astype(np.float32)


def damage_photo(
    img: np.ndarray, rng: np.random.Generator, settings: DamageSettings | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Age ``img`` like an old print: :func:`sample_damage_params` then :func:`apply_damage_params`.

    Returns ``(damaged uint8 (H, W, 3), mask uint8 (H, W) in {0, 255}, params)``.

    Raises:
        ValueError: a bad ``img``, ``rng`` or ``settings`` (named in the message).
    """
    img = check_image(img, np.uint8, "img")
    params = sample_damage_params(rng, img.shape, settings)
    damaged, mask = apply_damage_params(img, params)
    return damaged, mask, params
