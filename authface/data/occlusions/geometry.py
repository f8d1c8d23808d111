"""Face geometry for occlusions: 68 landmarks (dlib / iBUG order) from 68 or 5 points, the face frame, curves and
anti-aliased rasterisation.

Points are float ``(x, y)`` image pixels, pixel centres at integer coordinates. The 5-point layout is AuthFace's
:class:`~authface.face.Face` one (eye centres, nose tip, mouth corners, image-left first), as the FFHQ template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from authface.face.align import FFHQ_TEMPLATE_512

__all__ = [
    "MEAN_FACE_68",
    "FaceFrame",
    "bezier",
    "check_landmarks",
    "face_region",
    "landmarks_68",
    "offset_polyline",
    "rasterize_lines",
    "rasterize_polygon",
]

#: Mean 68-point face in the 512 FFHQ template frame: dlib's shape_predictor_68 averaged over 114 aligned FFHQ /
#: CelebA-HQ / ALAE faces, then made mirror-symmetric. Used to place masks from 5 landmarks.
MEAN_FACE_68 = np.array([
    114.4, 240.6, 116.3, 278.1, 121.0, 315.5, 127.7, 352.5, 140.8, 387.1, 162.6, 417.2, 190.0, 443.1, 221.0, 464.5,
    255.9, 470.7, 290.9, 464.5, 321.9, 443.1, 349.3, 417.2, 371.1, 387.1, 384.2, 352.5, 390.9, 315.5, 395.5, 278.1,
    397.4, 240.6, 138.6, 216.8, 156.5, 201.3, 181.7, 197.2, 207.2, 201.1, 231.9, 210.9, 280.0, 210.9, 304.6, 201.1,
    330.2, 197.2, 355.3, 201.3, 373.3, 216.8, 255.9, 238.0, 255.9, 263.1, 255.9, 288.3, 255.9, 313.9, 228.8, 328.5,
    241.9, 333.4, 255.9, 338.0, 270.0, 333.4, 283.1, 328.5, 168.5, 240.6, 183.9, 231.4, 202.8, 231.9, 218.5, 244.5,
    201.1, 247.5, 182.6, 247.3, 293.4, 244.5, 309.1, 231.9, 328.0, 231.4, 343.4, 240.6, 329.3, 247.3, 310.8, 247.5,
    198.7, 370.1, 220.2, 364.2, 240.7, 361.0, 255.9, 364.6, 271.2, 361.0, 291.7, 364.2, 313.2, 370.1, 292.9, 391.3,
    272.4, 400.7, 255.9, 402.5, 239.5, 400.7, 219.0, 391.3, 207.8, 372.1, 240.4, 372.9, 255.9, 374.6, 271.5, 372.9,
    304.1, 372.1, 271.7, 381.4, 255.9, 383.4, 240.2, 381.4,
], dtype=np.float64).reshape(68, 2)  # fmt: skip
MEAN_FACE_68.setflags(write=False)


def check_landmarks(landmarks: Any, what: str = "landmarks") -> np.ndarray:
    """``landmarks`` as float64 ``(68, 2)`` or ``(5, 2)``; a :class:`~authface.face.Face` gives its 5 points.

    Raises:
        ValueError: another shape, non-numeric or non-finite values; the message names ``what``.
    """
    landmarks = getattr(landmarks, "landmarks", landmarks)
    try:
        pts = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what} must be a (68, 2) or (5, 2) array of (x, y) points, got {landmarks!r}"
        ) from None
    if pts.shape not in ((68, 2), (5, 2)):
        raise ValueError(
            f"{what} must have shape (68, 2) (dlib 68 points) or (5, 2) (eye centres, nose tip, mouth corners), "
            f"got shape {pts.shape}"
        )
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{what} contain NaN or inf")
    return pts


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) taking ``src`` to ``dst``, as a ``(2, 3)`` matrix."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / max((a**2).sum(), 1e-12))
    return np.hstack([scale * rot, (md - scale * rot @ ms)[:, None]])


def landmarks_68(landmarks: Any) -> np.ndarray:
    """68 points (float64 ``(68, 2)``): the given ones, or :data:`MEAN_FACE_68` placed on 5 points by the
    similarity transform from the FFHQ template.

    Raises:
        ValueError: malformed or degenerate landmarks.
    """
    pts = check_landmarks(landmarks)
    if pts.shape[0] == 68:
        return pts
    m = _similarity(FFHQ_TEMPLATE_512.astype(np.float64), pts)
    if abs(np.linalg.det(m[:, :2])) < 1e-6:
        raise ValueError(f"landmarks are degenerate (all points together): {np.round(pts, 2).tolist()}")
    return MEAN_FACE_68 @ m[:, :2].T + m[:, 2]


@dataclass(frozen=True)
class FaceFrame:
    """A face's own axes: ``origin`` the eye centre, ``x`` unit vector from the image-left eye to the other,
    ``y`` unit vector perpendicular to it pointing to the chin, ``scale`` the eye-centre-to-mouth-centre
    distance in pixels. ``point(u, v)`` is ``origin + scale * (u * x + v * y)``."""

    origin: np.ndarray
    x: np.ndarray
    y: np.ndarray
    scale: float

    @classmethod
    def from_68(cls, pts: np.ndarray) -> FaceFrame:
        eye_l, eye_r = pts[36:42].mean(0), pts[42:48].mean(0)
        origin = (eye_l + eye_r) / 2
        mouth = (pts[48] + pts[54]) / 2
        x = eye_r - eye_l
        norm = float(np.hypot(*x))
        scale = float(np.hypot(*(mouth - origin)))
        if norm < 1e-6 or scale < 1e-6:
            raise ValueError("landmarks are degenerate: the eyes or the mouth coincide")
        x = x / norm
        return cls(origin=origin, x=x, y=np.array([-x[1], x[0]]), scale=scale)

    def point(self, u: float, v: float) -> np.ndarray:
        return self.origin + self.scale * (u * self.x + v * self.y)

    def vec(self, u: float, v: float) -> np.ndarray:
        """A displacement of ``(u, v)`` face scales, in pixels."""
        return self.scale * (u * self.x + v * self.y)

    def uv(self, pts: np.ndarray) -> np.ndarray:
        """Face coordinates ``(..., 2)`` (in face scales) of image points ``(..., 2)``."""
        d = (np.asarray(pts, dtype=np.float64) - self.origin) / self.scale
        return np.stack([d @ self.x, d @ self.y], axis=-1)

    def grid(self, shape: tuple[int, int], box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Face coordinates ``(u, v)`` of every pixel of ``box = (x0, y0, x1, y1)``, float32 ``(h, w)`` each."""
        x0, y0, x1, y1 = box
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        uv = self.uv(np.stack([xs, ys], axis=-1))
        return uv[..., 0].astype(np.float32), uv[..., 1].astype(np.float32)


def bezier(ctrl: np.ndarray, n: int = 24) -> np.ndarray:
    """``n`` points ``(n, 2)`` of the Bezier curve of control points ``ctrl`` ``(k, 2)`` (any degree)."""
    ctrl = np.asarray(ctrl, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = [ctrl[i] for i in range(len(ctrl))]
    while len(pts) > 1:  # de Casteljau
        pts = [(1 - t) * a + t * b for a, b in zip(pts[:-1], pts[1:])]
    return pts[0] * np.ones((n, 1))


def offset_polyline(pts: np.ndarray, dist: float | np.ndarray) -> np.ndarray:
    """``pts`` ``(n, 2)`` moved by ``dist`` pixels along their left normal (``(-dy, dx)``), per point or for all."""
    pts = np.asarray(pts, dtype=np.float64)
    tangent = np.gradient(pts, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)[:, None]
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return pts + np.asarray(dist, dtype=np.float64).reshape(-1, 1) * normal


_SHIFT = 4  # sub-pixel bits of OpenCV's drawing functions


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def rasterize_polygon(
    shape: tuple[int, ...], polygons: list[np.ndarray], antialias: bool = True
) -> np.ndarray:
    """Coverage ``float32 (H, W)`` in ``[0, 1]`` of the filled ``polygons`` (each ``(n, 2)``), anti-aliased."""
    import cv2

    canvas = np.zeros(shape[:2], dtype=np.uint8)
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    cv2.fillPoly(canvas, [_fixed(p) for p in polygons], 255, lineType=line, shift=_SHIFT)
    return canvas.astype(np.float32) * np.float32(1 / 255)


def rasterize_lines(shape: tuple[int, ...], lines: list[np.ndarray], width: float) -> np.ndarray:
    """Coverage ``float32 (H, W)`` in ``[0, 1]`` of the open polylines ``lines`` (each ``(n, 2)``) drawn
    ``width`` pixels wide (at least 1), anti-aliased."""
    import cv2

    canvas = np.zeros(shape[:2], dtype=np.uint8)
    cv2.polylines(
        canvas, [_fixed(p) for p in lines], False, 255, max(int(round(width)), 1), cv2.LINE_AA, _SHIFT
    )
    return canvas.astype(np.float32) * np.float32(1 / 255)


def face_region(pts68: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean ``(H, W)`` face region: the polygon of the jaw line (points 0-16) and the eyebrows (26-17)."""
    polygon = np.concatenate([pts68[0:17], pts68[26:16:-1]])
    return rasterize_polygon(shape, [polygon], antialias=False) > 0.5
