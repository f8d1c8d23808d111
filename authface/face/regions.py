"""Facial component boxes and masks (eyes, nose, mouth) from 5 landmarks.

Meant for aligned crops (faces upright, as produced by
:func:`authface.face.align.align_face`); boxes are axis-aligned. Landmarks
follow :class:`authface.face.detect.Face`: image-left eye, image-right eye,
nose tip, image-left mouth corner, image-right mouth corner, in crop pixels
with pixel centres at integer coordinates.

Proportions, with ``d`` = inter-ocular distance (distance between the two eye
landmarks; ~126 px on the 512 FFHQ template):

* ``left_eye`` / ``right_eye`` (image left / image right): centred on the eye
  landmark, ``0.6 d`` wide and ``0.4 d`` high (eye corners sit ~0.23 d from
  the centre, so the whole eye plus a margin is covered, not the brow).
* ``nose``: ``0.6 d`` wide centred on the nose tip; from ``0.2 d`` below the
  eye line (where the eye boxes end; at most the tip height) to ``0.2 d``
  below the nose tip.
* ``mouth``: from ``0.15 d`` left of the left corner to ``0.15 d`` right of
  the right corner; from ``0.25 d`` above to ``0.35 d`` below the mean corner
  height (the lower lip hangs further below the corners than the upper lip
  rises above them).

Boxes are clipped to the crop ``[0, S - 1]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REGIONS", "region_boxes", "region_masks"]

REGIONS = ("left_eye", "right_eye", "nose", "mouth")

_EYE_W, _EYE_H = 0.6, 0.4
_NOSE_W, _NOSE_TOP, _NOSE_BOTTOM = 0.6, 0.2, 0.2
_MOUTH_SIDE, _MOUTH_TOP, _MOUTH_BOTTOM = 0.15, 0.25, 0.35


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"landmarks contain NaN/inf: {pts.tolist()}")
    return pts


def region_boxes(landmarks: np.ndarray, crop_size: int) -> dict[str, np.ndarray]:
    """Boxes ``x1, y1, x2, y2`` (float64 ``(4,)``, inclusive pixel-centre
    coordinates) for each of :data:`REGIONS`, in crop pixels, clipped to
    ``[0, crop_size - 1]`` (a region entirely off the crop collapses to a
    zero-width box on the crop edge). Proportions: see the module docstring.
    """
    hi = float(crop_size - 1)
    return {k: np.clip(v, 0.0, hi) for k, v in _raw_boxes(landmarks, crop_size).items()}


def _raw_boxes(landmarks: np.ndarray, crop_size: int) -> dict[str, np.ndarray]:
    """Unclipped region boxes."""
    if int(crop_size) != crop_size or crop_size < 1:
        raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
    pts = _check_landmarks(landmarks)
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    d = float(np.linalg.norm(right_eye - left_eye))
    if d < 1e-6:
        raise ValueError(f"eye landmarks coincide ({left_eye.tolist()}); cannot size facial regions")

    def around(center: np.ndarray, w: float, h: float) -> list[float]:
        return [center[0] - w / 2, center[1] - h / 2, center[0] + w / 2, center[1] + h / 2]

    eye_y = (left_eye[1] + right_eye[1]) / 2
    mouth_y = (mouth_l[1] + mouth_r[1]) / 2
    boxes = {
        "left_eye": around(left_eye, _EYE_W * d, _EYE_H * d),
        "right_eye": around(right_eye, _EYE_W * d, _EYE_H * d),
        "nose": [
            nose[0] - _NOSE_W * d / 2,
            min(eye_y + _NOSE_TOP * d, nose[1]),
            nose[0] + _NOSE_W * d / 2,
            nose[1] + _NOSE_BOTTOM * d,
        ],
        "mouth": [
            min(mouth_l[0], mouth_r[0]) - _MOUTH_SIDE * d,
            mouth_y - _MOUTH_TOP * d,
            max(mouth_l[0], mouth_r[0]) + _MOUTH_SIDE * d,
            mouth_y + _MOUTH_BOTTOM * d,
        ],
    }
    return {k: np.asarray(v, dtype=np.float64) for k, v in boxes.items()}


def region_masks(landmarks: np.ndarray, crop_size: int, grid_size: int) -> dict[str, np.ndarray]:
    """Binary float32 ``(grid_size, grid_size)`` masks of :data:`REGIONS`.

    With ``c = crop_size / grid_size``, cell ``(i, j)`` spans
    ``[j * c - 0.5, (j + 1) * c - 0.5)`` horizontally in pixel-centre
    coordinates (i.e. it holds pixels ``j * c <= p + 0.5 < (j + 1) * c``) and
    likewise vertically; it is 1 when it overlaps the region's box (a region
    entirely off the crop gives an all-zero mask). Hence
    every point ``(x, y)`` of a box, landmarks included, lies in a set cell:
    ``(floor((y + 0.5) / c), floor((x + 0.5) / c))``.
    ``grid_size = crop_size // 8`` gives the latent grid of an 8x VAE.
    """
    if int(grid_size) != grid_size or grid_size < 1:
        raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}")
    grid_size = int(grid_size)
    cell = crop_size / grid_size

    def cell_of(v: float) -> int:
        return min(max(int(np.floor((v + 0.5) / cell)), 0), grid_size - 1)

    hi = float(crop_size - 1)
    masks = {}
    for name, (x1, y1, x2, y2) in _raw_boxes(landmarks, crop_size).items():
        mask = np.zeros((grid_size, grid_size), dtype=np.float32)
        if x2 >= max(x1, 0.0) and y2 >= max(y1, 0.0) and x1 <= hi and y1 <= hi:
            x1, y1, x2, y2 = np.clip([x1, y1, x2, y2], 0.0, hi)
            mask[cell_of(y1) : cell_of(y2) + 1, cell_of(x1) : cell_of(x2) + 1] = 1.0
        masks[name] = mask
    return masks
