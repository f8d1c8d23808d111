"""ArcFace (insightface ``arcface_torch``) in PyTorch: the fixed FFHQ -> ArcFace warp, state-dict loading of
released backbones and the differentiable :class:`ArcFaceEncoder` (the network itself: :mod:`.iresnet`).

The ArcFace networks want 112x112 crops aligned to insightface's 5-point template (:data:`ARCFACE_TEMPLATE_112`).
An FFHQ crop already is a similarity transform of the face, so one *fixed* affine
(:func:`ffhq_to_arcface_affine`) takes any FFHQ crop to the ArcFace frame; :func:`warp_to_arcface` applies it
differentiably with ``F.grid_sample``.

Weights come from explicit local paths, read with safetensors or ``torch.load(weights_only=True)``; nothing is
downloaded. Tensors are ``[-1, 1] RGB (B, 3, H, W)`` unless stated otherwise.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .iresnet import IRESNET_LAYERS, check_state_dict, iresnet, iresnet_arch_name

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "ARCFACE_WEIGHTS_HINT",
    "ArcFaceEncoder",
    "check_faces",
    "ffhq_to_arcface_affine",
    "require_file",
    "warp_to_arcface",
]

logger = logging.getLogger(__name__)

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

ARCFACE_WEIGHTS_HINT = (
    "AuthFace never downloads weights. Get an insightface arcface_torch backbone yourself, e.g. "
    "ms1mv3_arcface_r50_fp16/backbone.pth or glint360k_cosface_r100_fp16_0.1/backbone.pth from the arcface_torch "
    "model zoo (https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch), and pass its "
    "local path (.pth, or a .safetensors conversion of the same state dict)"
)

# ============================================================================ input checks


def require_file(path: str | os.PathLike, what: str, hint: str) -> Path:
    """``path`` as an expanded :class:`~pathlib.Path`; ``FileNotFoundError`` naming ``what`` and ``hint`` when
    it is not a file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {str(p)!r}. {hint}")
    return p


def check_faces(faces: Any, who: str) -> torch.Tensor:
    """Validate FFHQ-aligned crops for a differentiable encoder and return them unchanged: a floating
    ``[-1, 1] RGB (B, 3, S, S)`` tensor. ``TypeError`` for a non-tensor or an integer dtype, ``ValueError`` for
    another shape; ``who`` names the caller."""
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


# ============================================================================ ArcFaceEncoder


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
    return iresnet_arch_name(counts)


class ArcFaceEncoder(nn.Module):
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

    differentiable = True

    def __init__(self, backbone: nn.Module, antialias: bool = True, name: str = "arcface"):
        super().__init__()
        self.backbone = backbone
        self.antialias = bool(antialias)
        self.name = name
        self.input_size = int(getattr(backbone, "input_size", 112))
        self.embedding_dim = int(getattr(backbone, "num_features", 512))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ArcFaceEncoder:
        """Always inference mode: BatchNorm statistics and dropout never change, whatever the parent does."""
        return super().train(False)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.embed(faces)

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
        p = require_file(path, "ArcFace backbone", ARCFACE_WEIGHTS_HINT)
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
                    + ARCFACE_WEIGHTS_HINT
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
        check_state_dict(model, sd, f"{str(p)!r} is not an arcface_torch iresnet {key} state dict{hint}")
        model.load_state_dict(sd, strict=False)
        enc = cls(model, antialias=antialias, name=f"arcface-{key}")
        if device is not None or dtype is not None:
            enc = enc.to(device=device, dtype=dtype)
        logger.debug("loaded ArcFace %s backbone from %s", key, p)
        return enc

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        """``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> L2-normalised float32 ``(B, D)``."""
        faces = check_faces(faces, f"{type(self).__name__}.embed")
        floats = (t for t in itertools.chain(self.parameters(), self.buffers()) if t.is_floating_point())
        ref = next(floats, torch.empty(0))  # the encoder's device and floating dtype
        x = faces.to(device=ref.device, dtype=ref.dtype)
        x = warp_to_arcface(x, size=self.input_size, antialias=self.antialias)  # (B, 3, 112, 112) [-1, 1]
        return F.normalize(self.backbone(self.backbone_input(x)).float(), dim=1)

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """The warped ``[-1, 1] RGB (B, 3, n, n)`` crops as the backbone wants them (here: unchanged)."""
        return x
