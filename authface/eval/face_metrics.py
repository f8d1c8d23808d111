"""Face metrics: identity similarity (IDS / Deg) and landmark distance (LMD).

* :class:`IdentityMetric`: cosine of identity embeddings (IDS, higher is better) and its angle in degrees (Deg =
  arccos IDS, lower is better), from a judge of :mod:`authface.models.identity` (``dlib``: 128-d, offline, default;
  or ArcFace from local weights), against the GT, reference photos or the LQ input.
* :class:`LandmarkMetric`: mean Euclidean distance in pixels, at :data:`LMD_SIZE` x :data:`LMD_SIZE`, between dlib
  68-point (or 5-point) landmarks of the prediction and of the GT (face box fixed on the aligned crop, or detected).

Inputs are aligned square ``uint8`` RGB crops ``(H, W, 3)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from authface.face.dlib_models import SHAPE_68, dlib_model_path

from .base import Column, Metric
from .common import dlib_version, groups_by_shape, package_version

__all__ = ["LMD_SIZE", "IdentityMetric", "LandmarkMetric", "landmark_distance", "parse_judge"]

#: Landmark distances are measured in the pixels of a LMD_SIZE x LMD_SIZE crop (coordinates scaled to it).
LMD_SIZE = 512


def parse_judge(judge: str) -> tuple[str, str | None]:
    """``dlib`` | ``arcface:PATH`` | ``arcface-onnx:PATH`` -> ``(encoder name, path or None)``; ValueError otherwise."""
    text = str(judge).strip()
    if text.lower() == "dlib":
        return "dlib", None
    m = re.fullmatch(r"(arcface|arcface-onnx|dlib):(.+)", text, flags=re.IGNORECASE)
    if m:
        name, path = m.group(1).lower(), m.group(2)
        if name == "arcface" and path.lower().endswith(".onnx"):
            name = "arcface-onnx"
        return name, path
    raise ValueError(
        f"unknown identity judge {judge!r}; use dlib (offline, default), arcface:PATH (arcface_torch backbone "
        ".pth/.safetensors) or arcface-onnx:PATH (insightface recogniser .onnx)"
    )


class IdentityMetric(Metric):
    """IDS (cosine of identity embeddings, higher is better) and Deg (its angle in degrees, lower is better)."""

    key, needs = "identity", "id"
    columns = (Column("IDS", True, "", ".4f"), Column("Deg", False, "°", ".2f"))

    def __init__(self, judge: str = "dlib", device: str = "cpu", target_desc: str = "GT"):
        from authface.models.identity import load_identity_encoder

        name, path = parse_judge(judge)
        kw = {} if name == "dlib" else {"device": device}
        self.encoder = load_identity_encoder(name, path, **kw)
        self.device = device
        if name == "dlib":
            desc = (
                f"dlib {dlib_version()} "
                f"face_recognition_resnet_model_v1 128-d (face_recognition_models {package_version('face_recognition_models')}),"
                " fixed face box on the aligned crop -> 5-point chip"
            )
        else:
            desc = f"{name} {getattr(self.encoder, 'embedding_dim', '?')}-d from {path}"
        self.info = f"{desc}; IDS = cosine of L2-normalised embeddings, Deg = arccos(IDS) in degrees; vs {target_desc}"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Aligned square uint8 RGB crops -> float64 (B, D) unit vectors."""
        import torch

        from authface.io import numpy_to_tensor

        out: list[np.ndarray | None] = [None] * len(images)
        for idx in groups_by_shape(images):
            batch = np.stack([images[i] for i in idx])
            if getattr(self.encoder, "name", "") == "dlib":
                emb = self.encoder.embed(batch)
            else:
                with torch.no_grad():
                    emb = self.encoder.embed(numpy_to_tensor(batch).to(self.device))
            emb = emb.detach().double().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = emb[j]
        return np.stack(out)

    def target(self, images):
        """Each target is one image or a list of images (reference photos of the same person: mean embedding)."""
        out = []
        for item in images:
            if isinstance(item, np.ndarray):
                out.append(self.embed([item])[0])
            else:
                e = self.embed(list(item)).mean(0)
                out.append(e / max(np.linalg.norm(e), 1e-12))
        return out

    def compute(self, preds, targets):
        e = self.embed(preds)
        t = np.stack(targets)
        cos = np.clip(
            (e * t).sum(1) / np.maximum(np.linalg.norm(e, axis=1) * np.linalg.norm(t, axis=1), 1e-12), -1, 1
        )
        return {"IDS": cos, "Deg": np.degrees(np.arccos(cos))}


def landmark_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance between corresponding landmarks: (B, P, 2) and (B, P, 2) (or (P, 2)) -> (B,)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.shape[-1] != 2:
        raise ValueError(f"landmark_distance: shapes {a.shape} and {b.shape} must match and end in 2")
    d = np.linalg.norm(a - b, axis=-1).mean(-1)
    return np.atleast_1d(d)


class LandmarkMetric(Metric):
    """LMD: mean distance (px at :data:`LMD_SIZE`) between dlib landmarks of prediction and GT.

    ``box="fixed"`` (default) places dlib's face box at :data:`authface.models.identity.DLIB_FACE_BOX` of the aligned
    crop for both images (deterministic, never misses a face, and the same box for both sides, so the distance
    measures where the predictor puts the features inside it); ``box="detect"`` runs dlib's HOG detector first and
    falls back to the fixed box when it finds nothing. ``points``: 68 (all) or 5 (eye centres, nose tip, mouth
    corners, as :class:`authface.face.DlibDetector`). dlib returns integer pixel positions at the native size;
    they are scaled to ``LMD_SIZE``.
    """

    key, needs = "lmd", "gt"
    columns = (Column("LMD", False, "px", ".2f"),)

    def __init__(self, points: int = 68, box: str = "fixed", models_dir: str | None = None):
        if int(points) not in (68, 5):
            raise ValueError(f"LMD points must be 68 or 5, got {points!r}")
        if box not in ("fixed", "detect"):
            raise ValueError(f"LMD box must be 'fixed' or 'detect', got {box!r}")
        import dlib

        path = dlib_model_path(SHAPE_68, models_dir, needed_by="LMD")
        self._dlib = dlib
        self._sp = dlib.shape_predictor(path)
        self._det = dlib.get_frontal_face_detector() if box == "detect" else None
        self.points, self.box = int(points), box
        self.info = (
            f"dlib {dlib_version()} "
            f"shape_predictor_68_face_landmarks ({self.points} points), face box {box}"
            f"{' (HOG, fallback fixed)' if box == 'detect' else ' on the aligned crop'}; mean Euclidean distance in "
            f"pixels at {LMD_SIZE}x{LMD_SIZE}"
        )

    def landmarks(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB crops -> float64 (B, points, 2) (x, y) in LMD_SIZE pixels."""
        from authface.models.identity import DLIB_FACE_BOX

        out = []
        for img in images:
            img = np.ascontiguousarray(img)
            h, w = img.shape[:2]
            rect = None
            if self._det is not None:
                dets = self._det(img, 0)
                if len(dets):
                    rect = max(dets, key=lambda r: r.width() * r.height())
            if rect is None:
                left, top, right, bottom = DLIB_FACE_BOX
                rect = self._dlib.rectangle(
                    int(round(left * w)), int(round(top * h)), int(round(right * w)), int(round(bottom * h))
                )
            shape = self._sp(img, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)  # (68, 2)
            if self.points == 5:
                pts = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
            out.append(pts * np.array([LMD_SIZE / w, LMD_SIZE / h]))
        return np.stack(out)

    def target(self, images):
        return list(self.landmarks(images))

    def compute(self, preds, targets):
        return {"LMD": landmark_distance(self.landmarks(preds), np.stack(targets))}
