"""The face stage: detect -> select -> align, and paste back. One object shared by restoration, ``prepare``,
evaluation and training data, so every part of AuthFace sees faces the same way.

    stage = FaceStage(create_detector("dlib"), crop_size=512)
    faces = stage.align(rgb)                        # [AlignedFace]: crop uint8 RGB (S, S, 3), affine (2, 3), face
    out = stage.paste(rgb, [f.crop for f in faces], faces, upscale=2)   # uint8 RGB (2H, 2W, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .align import align_face, aligned_input_affine, face_template
from .detect import Face, FaceDetector, select_faces
from .paste import BackgroundUpsampler, LanczosUpsampler, paste_faces
from .sanity import sanitize_faces


def _box(face: Face) -> list[float]:
    return [round(float(v), 1) for v in face.box]


@dataclass
class AlignedFace:
    """One face of a photo: its detection, its aligned crop and the affine that made it.

    ``crop``: uint8 RGB ``(S, S, 3)``; ``affine``: float ``(2, 3)`` mapping photo pixels to crop pixels.
    """

    face: Face
    crop: np.ndarray
    affine: np.ndarray


class FaceStage:
    """Detect, select and align the faces of a photo; paste restored crops back over it.

    Args:
        detector: any :class:`FaceDetector`; may be None only with ``aligned=True``.
        crop_size: side of the aligned crops in pixels (FFHQ 5-point template scaled to it).
        only_center_face, min_face_size, max_faces: selection, see :func:`select_faces`.
        aligned: inputs already are aligned face crops: no detection, the whole image is one face.
        upsampler: background upsampler for ``paste(..., upscale > 1)`` (default Lanczos).

    Raises:
        ValueError: no detector and not ``aligned``.
    """

    def __init__(
        self,
        detector: FaceDetector | None,
        crop_size: int = 512,
        only_center_face: bool = False,
        min_face_size: float = 0.0,
        max_faces: int | None = None,
        aligned: bool = False,
        upsampler: BackgroundUpsampler | None = None,
    ):
        if detector is None and not aligned:
            raise ValueError("a face detector is required unless aligned=True")
        self.detector = detector
        self.crop_size = int(crop_size)
        self.only_center_face, self.min_face_size, self.max_faces = only_center_face, min_face_size, max_faces
        self.aligned = aligned
        self.upsampler = upsampler or LanczosUpsampler()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Detected and selected faces of a uint8 RGB ``(H, W, 3)`` photo, largest first."""
        return self.detect_report(rgb)[0]

    def detect_report(self, rgb: np.ndarray) -> tuple[list[Face], list[dict]]:
        """Like :meth:`detect`, plus every detection left out and why: ``[{"box": [x1, y1, x2, y2], "reason"}]``.

        After the detector, duplicate and nested boxes and implausible landmarks are removed
        (:func:`authface.face.sanity.sanitize_faces`), then the selection options apply (minimum size, centre
        face, maximum count).
        """
        if self.aligned:
            return [self._whole_image_face(rgb)], []
        faces, rejected = sanitize_faces(self.detector.detect(rgb))
        kept = select_faces(faces, rgb.shape, self.only_center_face, self.min_face_size, self.max_faces)
        dropped = [{"box": _box(f), "reason": reason} for f, reason in rejected]
        for f in faces:
            if not any(f is k for k in kept):
                if f.size < self.min_face_size:
                    why = f"smaller than --min-face-size {self.min_face_size:g} ({f.size:.0f} px)"
                elif self.only_center_face:
                    why = "not the centre face (--only-center-face)"
                else:
                    why = f"over --max-faces {self.max_faces}"
                dropped.append({"box": _box(f), "reason": why})
        return kept, dropped

    def _whole_image_face(self, rgb: np.ndarray) -> Face:
        inverse = cv2.invertAffineTransform(aligned_input_affine(rgb.shape, self.crop_size))
        landmarks = (face_template(self.crop_size) @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)
        h, w = rgb.shape[:2]
        return Face(box=np.array([0, 0, w, h], np.float32), landmarks=landmarks, score=1.0)

    def align_faces(self, rgb: np.ndarray, faces: Sequence[Face]) -> list[AlignedFace]:
        """Aligned crops of given faces (from :meth:`detect` or elsewhere)."""
        if self.aligned:
            affine = aligned_input_affine(rgb.shape, self.crop_size)
            size = (self.crop_size, self.crop_size)
            return [AlignedFace(f, cv2.warpAffine(rgb, affine, size, flags=cv2.INTER_LANCZOS4), affine) for f in faces]
        out = []
        for face in faces:
            crop, affine = align_face(rgb, face.landmarks, self.crop_size)
            out.append(AlignedFace(face, crop, affine))
        return out

    def align(self, rgb: np.ndarray) -> list[AlignedFace]:
        """Detect, select and align: the faces of a uint8 RGB ``(H, W, 3)`` photo, largest first."""
        return self.align_faces(rgb, self.detect(rgb))

    def paste(
        self, rgb: np.ndarray, restored: Sequence[np.ndarray], faces: Sequence[AlignedFace], upscale: int = 1
    ) -> np.ndarray:
        """Paste restored crops (uint8 RGB ``(S, S, 3)``, one per face) over the photo upscaled by ``upscale``.

        Returns uint8 RGB ``(H * upscale, W * upscale, 3)``. With ``aligned=True`` the output is the restored crop
        itself, resized to that size.
        """
        h, w = rgb.shape[:2]
        if self.aligned and restored:
            size = (w * upscale, h * upscale)
            crop = restored[0]
            return crop if crop.shape[1::-1] == size else cv2.resize(crop, size, interpolation=cv2.INTER_LANCZOS4)
        background = self.upsampler.upscale(rgb, upscale)
        if not restored:
            return background
        return paste_faces(background, list(restored), [f.affine for f in faces], upscale)
