"""Detections every detector gets wrong sometimes: duplicates, faces nested in faces, impossible landmarks.

Detectors that suppress only by IoU (YuNet, SCRFD and the like) can return the same face twice (shifted by a few
pixels or scaled a few percent) or a tiny "face" inside a real one (an eye); restoring each would paste a second,
shifted face or a micro-face into the eye. :func:`sanitize_faces` runs after any detector and before selection.
Hand-written: a few lines of box geometry that no face library exposes on its own.
"""

from __future__ import annotations

import numpy as np

from .detect import Face

#: Two boxes overlapping more than this (intersection over union) are one face.
DUPLICATE_IOU = 0.5
#: A box whose area lies this much inside a larger face's box (intersection over its own area), and which is at
#: most :data:`NESTED_AREA_RATIO` of that face's area, is a part of that face, not another face.
NESTED_COVERAGE = 0.7
NESTED_AREA_RATIO = 0.5


def _area(box: np.ndarray) -> float:
    return max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(float(w), 0.0) * max(float(h), 0.0)


def implausible_landmarks(face: Face) -> str | None:
    """Why the 5 landmarks cannot belong to a face in this box, or None when they can.

    Checked, with the eye distance ``d`` as the unit: the eyes are apart (``d`` between 0.15 and 1.2 face sizes);
    every point lies within the box grown by half its size; the mouth centre is below the eye line (on the side
    the face's "down" points to) at 0.4-2.5 ``d``; the mouth is 0.2-1.6 ``d`` wide.
    """
    lm = face.landmarks.astype(np.float64)
    size = face.size
    if size <= 0:
        return "empty box"
    left_eye, right_eye, _, mouth_l, mouth_r = lm
    eyes = right_eye - left_eye
    d = float(np.hypot(*eyes))
    if not 0.15 * size <= d <= 1.2 * size:
        return f"eye distance {d:.1f} px is implausible for a {size:.0f} px face"
    margin = 0.5 * size
    x0, y0, x1, y1 = face.box
    if (lm[:, 0] < x0 - margin).any() or (lm[:, 0] > x1 + margin).any() or \
            (lm[:, 1] < y0 - margin).any() or (lm[:, 1] > y1 + margin).any():  # fmt: skip
        return "landmarks far outside the face box"
    down = np.array([-eyes[1], eyes[0]]) / d  # the eye line turned 90 degrees towards the chin (y grows down)
    drop = float(((mouth_l + mouth_r) / 2 - (left_eye + right_eye) / 2) @ down)
    if not 0.4 * d <= drop <= 2.5 * d:
        return f"mouth {drop / d:.2f} eye distances below the eyes (0.4-2.5 expected)"
    width = float(np.hypot(*(mouth_r - mouth_l)))
    if not 0.2 * d <= width <= 1.6 * d:
        return f"mouth width {width / d:.2f} eye distances (0.2-1.6 expected)"
    return None


def sanitize_faces(faces: list[Face]) -> tuple[list[Face], list[tuple[Face, str]]]:
    """Drop implausible, duplicate and nested detections.

    Returns ``(kept, dropped)``; ``kept`` keeps the detector's order; ``dropped`` pairs each removed face with the
    reason. Among duplicates the highest score wins (the earliest on ties); a nested box loses to the face that
    contains it whatever the scores.
    """
    dropped: list[tuple[Face, str]] = []
    candidates = []
    for f in faces:
        reason = implausible_landmarks(f)
        if reason:
            dropped.append((f, reason))
        else:
            candidates.append(f)
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].score)  # stable: ties keep their order
    kept_idx: list[int] = []
    for i in order:
        f = candidates[i]
        reason = None
        for j in kept_idx:
            g = candidates[j]
            inter = _intersection(f.box, g.box)
            union = _area(f.box) + _area(g.box) - inter
            if union > 0 and inter / union > DUPLICATE_IOU:
                reason = f"duplicate of the face at {np.round(g.box, 1).tolist()}"
                break
        if reason is None:
            for g in candidates:
                if g is f or _area(f.box) > NESTED_AREA_RATIO * _area(g.box):
                    continue
                if _area(f.box) > 0 and _intersection(f.box, g.box) / _area(f.box) > NESTED_COVERAGE:
                    reason = f"inside the larger face at {np.round(g.box, 1).tolist()}"
                    break
        if reason is None:
            kept_idx.append(i)
        else:
            dropped.append((f, reason))
    return [candidates[i] for i in sorted(kept_idx)], dropped
