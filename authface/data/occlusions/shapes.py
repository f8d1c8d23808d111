"""Face-mask outlines from 68 landmarks: the body polygon and the ear loops / straps of each style.

All shapes are built in the face's own frame (:class:`~.geometry.FaceFrame`, lengths in face scales) from the
landmarks themselves: the top edge crosses the nose bridge, the sides and the bottom follow the jaw line pushed
outwards, so a turned, tilted or mirrored face gets the turned, tilted or mirrored mask. Every rule is mirror
symmetric (left uses the image-left jaw half with ``-u``, right the other with ``+u``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .geometry import FaceFrame, bezier, offset_polyline

__all__ = ["STYLE_GEOMETRY", "MaskShape", "build_shape"]

#: Per-style ranges of the shape parameters (face scales): ``top`` = where the top edge crosses the nose, as a
#: fraction from landmark 27 (between the eyes) to 30 (nose tip); ``droop`` = how far the side corners sit below
#: that crossing; ``side`` / ``bottom`` = margins past the jaw line at the cheeks / at the chin; ``shoulder`` =
#: ``(u, v)`` of the top edge's control point beside the nose; ``drop`` = bandana tip below the chin / gaiter
#: length below the chin.
STYLE_GEOMETRY: dict[str, dict[str, tuple[float, float]]] = {
    "surgical": {"top": (0.35, 0.55), "droop": (0.1, 0.2), "side": (0.02, 0.08), "bottom": (0.1, 0.22),
                 "shoulder": (0.32, 0.12)},
    "n95": {"top": (0.25, 0.45), "droop": (0.18, 0.3), "side": (0.0, 0.05), "bottom": (0.12, 0.25),
            "shoulder": (0.22, 0.2)},
    "kn95": {"top": (0.3, 0.5), "droop": (0.2, 0.3), "side": (0.0, 0.05), "bottom": (0.15, 0.3),
             "shoulder": (0.3, 0.15)},
    "cloth": {"top": (0.3, 0.55), "droop": (0.12, 0.22), "side": (0.02, 0.08), "bottom": (0.1, 0.22),
              "shoulder": (0.3, 0.08)},
    "bandana": {"top": (0.45, 0.7), "droop": (0.0, 0.08), "side": (0.15, 0.3), "bottom": (0.05, 0.12),
                "shoulder": (0.35, 0.03), "drop": (0.45, 0.8)},
    "gaiter": {"top": (0.5, 0.75), "droop": (0.02, 0.1), "side": (0.08, 0.18), "bottom": (0.05, 0.1),
               "shoulder": (0.35, 0.04), "drop": (0.7, 1.2)},
}  # fmt: skip


@dataclass
class MaskShape:
    """The body polygon ``(n, 2)`` (image pixels), the strap polylines, and landmarks of the shape in face
    coordinates used by the shading (``nose`` = top crossing, ``seam`` = nose-to-chin axis)."""

    body: np.ndarray
    straps: list[np.ndarray] = field(default_factory=list)
    nose_uv: np.ndarray = field(default_factory=lambda: np.zeros(2))
    chin_uv: np.ndarray = field(default_factory=lambda: np.zeros(2))
    corner_u: float = 1.0


def _densify(pts: np.ndarray, k: int = 4) -> np.ndarray:
    t = np.linspace(0, 1, k, endpoint=False)[:, None]
    segs = [a + t * (b - a) for a, b in zip(pts[:-1], pts[1:])]
    return np.concatenate(segs + [pts[-1:]])


def _cut(half: np.ndarray, v_half: np.ndarray, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a jaw half running ear -> chin where its face ``v`` first reaches ``v``: (corner point, rest)."""
    above = np.nonzero(v_half >= v)[0]
    i = int(above[0]) if above.size else len(half) - 1
    if i == 0:
        return half[0], half[1:]
    t = float(np.clip((v - v_half[i - 1]) / max(v_half[i] - v_half[i - 1], 1e-9), 0.0, 1.0))
    return half[i - 1] + t * (half[i] - half[i - 1]), half[i:]


def _top_edge(frame: FaceFrame, left: np.ndarray, nose: np.ndarray, right: np.ndarray,
              shoulder: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """Right corner -> nose -> left corner, two quadratic Bezier arcs with control points beside the nose."""
    su, sv = shoulder
    to_nose = bezier(np.stack([right, nose + frame.vec(su, sv), nose]), 16)
    from_nose = bezier(np.stack([nose, nose + frame.vec(-su, sv), left]), 16)
    return np.concatenate([to_nose, from_nose[1:]])


def build_shape(style: str, pts: np.ndarray, geo: dict[str, Any], straps: bool) -> MaskShape:
    """The outline of ``style`` on the 68 points ``pts`` with the shape parameters ``geo`` (see
    :data:`STYLE_GEOMETRY`), with its ear loops / straps when ``straps``."""
    frame = FaceFrame.from_68(pts)
    nose = pts[27] + geo["top"] * (pts[30] - pts[27])
    nose_v = float(frame.uv(nose)[1])
    jaw = _densify(pts[0:17])
    n = len(jaw)
    weight = np.abs(np.linspace(-1.0, 1.0, n))  # 1 at the ears, 0 at the chin
    margin = frame.scale * (geo["bottom"] * (1 - weight) + geo["side"] * weight)
    jaw = offset_polyline(jaw, margin)
    v_jaw = frame.uv(jaw)[:, 1]
    mid = n // 2
    corner_v = nose_v + geo["droop"]
    left_corner, left_rest = _cut(jaw[: mid + 1], v_jaw[: mid + 1], corner_v)
    right_corner, right_rest = _cut(jaw[mid:][::-1], v_jaw[mid:][::-1], corner_v)
    top = _top_edge(frame, left_corner, nose, right_corner, geo["shoulder"])
    chin = pts[8]
    if style in ("bandana", "gaiter"):
        lower = _hanging(style, frame, left_corner, right_corner, left_rest, right_rest, chin, geo["drop"])
    else:
        lower = np.concatenate([left_rest, right_rest[::-1]])
    body = np.concatenate([top, lower])
    shape = MaskShape(body=body, nose_uv=frame.uv(nose), chin_uv=frame.uv(chin + frame.vec(0, geo["bottom"])),
                      corner_u=float(abs(frame.uv(left_corner)[0] - frame.uv(right_corner)[0]) / 2))  # fmt: skip
    if straps:
        shape.straps = _straps(style, frame, jaw, v_jaw, left_corner, right_corner, corner_v)
    return shape


def _hanging(style: str, frame: FaceFrame, left_corner: np.ndarray, right_corner: np.ndarray,
             left_rest: np.ndarray, right_rest: np.ndarray, chin: np.ndarray,
             drop: float) -> np.ndarray:  # fmt: skip
    """Lower outline of loose styles: the bandana's sides fall to a tip below the chin, the gaiter's tube
    follows the jaw to below the mouth, then falls straight down over the neck. Runs left corner -> right."""
    if style == "bandana":
        tip = chin + frame.vec(0, drop)
        left_fall = left_corner + frame.vec(0.06, 0.55)
        right_fall = right_corner + frame.vec(-0.06, 0.55)
        return np.stack([left_corner, left_fall, tip, right_fall, right_corner])
    chin_v = float(frame.uv(chin)[1])
    keep = 0.6  # follow the jaw this far down the cheek (fraction of the half), then fall
    lk, rk = max(int(len(left_rest) * keep), 1), max(int(len(right_rest) * keep), 1)
    left_side, right_side = left_rest[:lk], right_rest[:rk]
    bottom_v = chin_v + drop
    left_low = left_side[-1] + frame.vec(0.08, bottom_v - float(frame.uv(left_side[-1])[1]))
    right_low = right_side[-1] + frame.vec(-0.08, bottom_v - float(frame.uv(right_side[-1])[1]))
    hem = bezier(np.stack([left_low, (left_low + right_low) / 2 + frame.vec(0, 0.08), right_low]), 12)
    return np.concatenate([left_corner[None], left_side, hem, right_side[::-1], right_corner[None]])


def _straps(style: str, frame: FaceFrame, jaw: np.ndarray, v_jaw: np.ndarray, left_corner: np.ndarray,
            right_corner: np.ndarray, corner_v: float) -> list[np.ndarray]:  # fmt: skip
    """Ear loops (surgical, kn95, cloth) from the upper corner round the ear back to the lower edge, or the two
    head straps of an N95 running back from the cup's sides. Loose styles have none."""
    if style in ("bandana", "gaiter"):
        return []
    n = len(jaw)
    mid = n // 2
    low_v = corner_v + 0.7
    lines = []
    for sign, corner, half, v_half in ((-1, left_corner, jaw[: mid + 1], v_jaw[: mid + 1]),
                                       (1, right_corner, jaw[mid:][::-1], v_jaw[mid:][::-1])):  # fmt: skip
        low, _ = _cut(half, v_half, low_v)
        ear_v = max(corner_v - 0.05, 0.3)
        ear, _ = _cut(half, v_half, ear_v)
        if style == "n95":  # two elastic head straps going back over the cheeks
            lines.append(bezier(np.stack([corner, corner + frame.vec(sign * 0.35, -0.02),
                                          ear + frame.vec(sign * 0.6, 0.0)]), 12))  # fmt: skip
            lines.append(bezier(np.stack([low, low + frame.vec(sign * 0.3, 0.05),
                                          low + frame.vec(sign * 0.65, 0.1)]), 12))  # fmt: skip
            continue
        ear_top = ear + frame.vec(sign * 0.28, 0.0)
        ear_back = ear + frame.vec(sign * 0.33, 0.45)
        lines.append(bezier(np.stack([corner, ear_top, ear_back, low]), 24))
    return lines
