"""The one place for small image helpers shared across layers: luma, Gaussian kernels and blur, resizing.

Each helper works on numpy arrays and, where a differentiable version is needed, on torch tensors. They are
hand-written because each is a few lines and the alternatives either pull torchvision (torchvision's transforms)
or differ in a convention the callers depend on (MATLAB's ``rgb2ycbcr`` luma, MATLAB's ``fspecial`` window).

Conventions: numpy images are ``(..., H, W, C)`` (channels last); torch images are ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "RESIZE_MODES",
    "gaussian_blur",
    "gaussian_kernel1d",
    "gaussian_window",
    "luma",
    "resize",
    "rgb_to_y",
]

#: BT.601 full-range luma weights (OpenCV's ``COLOR_RGB2GRAY``, PIL's ``convert("L")``).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: MATLAB ``rgb2ycbcr`` Y row (BT.601 studio range), for inputs on [0, 1]; offset 16.
_YCBCR_Y = (65.481, 128.553, 24.966)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _weighted_channels(x: Any, weights: tuple[float, float, float], channel_axis: int) -> Any:
    if _is_torch(x):
        import torch

        w = torch.tensor(weights, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
        x = x.to(w.dtype).movedim(channel_axis, -1)
        if x.shape[-1] != 3:
            raise ValueError(f"expected 3 channels on axis {channel_axis}, got shape {tuple(x.shape)}")
        return x @ w
    arr = np.moveaxis(np.asarray(x, dtype=np.float64), channel_axis, -1)
    if arr.shape[-1] != 3:
        raise ValueError(f"expected 3 channels on axis {channel_axis}, got shape {arr.shape}")
    return arr @ np.asarray(weights, dtype=np.float64)


def luma(x: Any, channel_axis: int = -1) -> Any:
    """Full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's gray), same value range as ``x``.

    ``x``: RGB numpy array (float64 result) or torch tensor (float result, differentiable); the channel axis is
    removed. Raises ValueError when that axis does not hold 3 channels.
    """
    return _weighted_channels(x, LUMA_WEIGHTS, channel_axis)


def rgb_to_y(x: Any, data_range: float = 255.0, channel_axis: int = -1) -> Any:
    """Luma Y of MATLAB's ``rgb2ycbcr`` (BT.601 studio range), on [16, 235] whatever ``data_range`` is.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / data_range`` — BasicSR's ``to_y_channel``, used by PSNR-Y,
    SSIM-Y and NIQE. ``x``: RGB on ``[0, data_range]``, numpy (float64 result) or torch (differentiable);
    the channel axis is removed. Not rounded.
    """
    w = tuple(c / float(data_range) for c in _YCBCR_Y)
    return _weighted_channels(x, w, channel_axis) + 16.0


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: float64 ``(size, size)``, sum 1 (NIQE's window: 7, 7/6)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def gaussian_kernel1d(sigma: float, radius: int | None = None, device=None, dtype=None) -> torch.Tensor:
    """Normalised 1-D Gaussian, float tensor of length ``2 * radius + 1`` (radius ``ceil(3 sigma)``, at least 1)."""
    import torch

    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = max(1, int(math.ceil(3.0 * sigma))) if radius is None else int(radius)
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype or torch.float32)
    k = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, padding: str = "reflect") -> torch.Tensor:
    """Separable Gaussian blur of a float tensor ``(B, C, H, W)`` (differentiable); same shape out.

    ``sigma`` in pixels; the kernel radius is ``ceil(3 sigma)``; ``padding``: ``"reflect"`` or ``"replicate"``
    (a reflect pad wider than the image falls back to replicate).
    """
    import torch.nn.functional as F

    k = gaussian_kernel1d(sigma, device=x.device, dtype=x.dtype)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    mode = padding if padding != "reflect" or min(x.shape[-2:]) > r else "replicate"
    kh = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), kh, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), kh.transpose(-1, -2), groups=c)


#: Resampling filters by name (OpenCV flags).
RESIZE_MODES = ("bicubic", "bilinear", "area", "nearest", "lanczos")


def _cv2_flag(mode: str) -> int:
    import cv2

    flags = {
        "bicubic": cv2.INTER_CUBIC,
        "bilinear": cv2.INTER_LINEAR,
        "area": cv2.INTER_AREA,
        "nearest": cv2.INTER_NEAREST,
        "lanczos": cv2.INTER_LANCZOS4,
    }
    if mode not in flags:
        raise ValueError(f"resize mode {mode!r} is unknown; choose from {', '.join(RESIZE_MODES)}")
    return flags[mode]


def resize(
    img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None, mode: str = "bicubic"
) -> np.ndarray:
    """Resize an image ``(H, W[, C])`` (uint8 or float32) with OpenCV; the dtype is kept (uint8 is rounded).

    Give exactly one of ``scale`` (output ``floor(H * scale) x floor(W * scale)``, at least 1 pixel, as
    ``torch.nn.functional.interpolate(scale_factor=...)``) or ``size`` = ``(height, width)`` — NumPy order, not
    OpenCV's. ``mode``: one of :data:`RESIZE_MODES`. Float inputs are resized without clipping.

    Raises:
        ValueError: both or neither of ``scale``/``size``, a non-positive size or scale, an unknown mode.
    """
    import cv2

    flag = _cv2_flag(mode)
    h, w = img.shape[:2]
    if (scale is None) == (size is None):
        raise ValueError("resize: give exactly one of scale= or size=(height, width)")
    if scale is not None:
        if isinstance(scale, bool) or not float(scale) > 0 or not math.isfinite(float(scale)):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        oh, ow = max(1, int(math.floor(h * float(scale)))), max(1, int(math.floor(w * float(scale))))
    else:
        if len(size) != 2 or any(int(v) != v or int(v) < 1 for v in size):
            raise ValueError(f"size must be (height, width) with positive integers, got {size!r}")
        oh, ow = int(size[0]), int(size[1])
    src = img.astype(np.float32) if img.dtype == np.uint8 else img
    out = cv2.resize(src, (ow, oh), interpolation=flag)
    if img.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------------- monochrome (gray, toned) photos
#: Residual chroma (99th percentile, in Cb/Cr levels of 0..255) under which a photo counts as monochrome.
#: Measured with :func:`monochrome_tone` (tolerance off): gray photos, also as RGB JPEGs with chroma noise, 0-5
#: (John Lennon in CodeFormer's gray_faces 4.8); a sepia-toned astronaut 0.5 as PNG, 8.3-9.7 as 4:2:0 JPEG at
#: quality 85-50; colour photos 14.7 (a faded sepia print with a pink bow) to 105, most above 20; the faded colour
#: childhood photos among CodeFormer's gray_faces 20-47 (they are colour photos).
MONOCHROME_TOLERANCE = 12.0
_CB = (-0.168736, -0.331264, 0.5)
_CR = (0.5, -0.418688, -0.081312)


@dataclass(frozen=True)
class Tone:
    """The colour of a monochrome photo as a function of its luma: ``cb[y]``, ``cr[y]`` for y in 0..255 (offsets
    from neutral, in Cb/Cr levels). All zeros for a neutral gray photo; a warm curve for sepia or faded prints."""

    cb: np.ndarray
    cr: np.ndarray

    @property
    def neutral(self) -> bool:
        return bool(np.abs(self.cb).max() < 0.5 and np.abs(self.cr).max() < 0.5)


def _ycc(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rgb.reshape(-1, 3).astype(np.float32)
    return x @ np.float32(LUMA_WEIGHTS), x @ np.float32(_CB), x @ np.float32(_CR)


def monochrome_tone(rgb: np.ndarray, tolerance: float = MONOCHROME_TOLERANCE, max_pixels: int = 1_000_000) -> Tone | None:
    """The :class:`Tone` of a uint8 RGB ``(H, W, 3)`` photo when it is monochrome, else None.

    A photo is monochrome when its chroma is a function of its luma alone (gray, sepia, cyanotype, faded toned
    prints): chroma is fitted per luma bin (median of 32 bins), and the 99th percentile of the residual must be
    under ``tolerance`` Cb/Cr levels (default :data:`MONOCHROME_TOLERANCE`), which tolerates JPEG chroma noise.
    Large photos are subsampled to about ``max_pixels``.
    """
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / max_pixels)))
    y, cb, cr = _ycc(np.ascontiguousarray(rgb[::step, ::step]))
    bins = np.clip((y / 8.0).astype(np.int32), 0, 31)
    centres, mcb, mcr = [], [], []
    for b in range(32):
        sel = bins == b
        if sel.sum() >= 16:
            centres.append(b * 8.0 + 4.0)
            mcb.append(float(np.median(cb[sel])))
            mcr.append(float(np.median(cr[sel])))
    if not centres:
        return None
    grid = np.arange(256, dtype=np.float32)
    lut_cb = np.interp(grid, centres, mcb).astype(np.float32)
    lut_cr = np.interp(grid, centres, mcr).astype(np.float32)
    yi = np.clip(np.rint(y), 0, 255).astype(np.int32)
    residual = np.hypot(cb - lut_cb[yi], cr - lut_cr[yi])
    if float(np.percentile(residual, 99)) >= tolerance:
        return None
    return Tone(lut_cb, lut_cr)


def apply_tone(rgb: np.ndarray, tone: Tone) -> np.ndarray:
    """Re-colour a uint8 RGB image with a monochrome photo's :class:`Tone`: its luma is kept, its chroma becomes
    the tone's chroma at that luma (exactly gray for a neutral tone). Returns uint8 RGB of the same shape."""
    shape = rgb.shape
    y, _, _ = _ycc(rgb)
    yi = np.clip(np.rint(y), 0, 255).astype(np.int32)
    cb, cr = tone.cb[yi], tone.cr[yi]
    out = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(shape)


def keep_luma(source: np.ndarray, coloured: np.ndarray) -> np.ndarray:
    """uint8 RGB with ``source``'s luma and ``coloured``'s chroma (colourisation that keeps the original's
    luminance); both uint8 RGB of one shape. Where the chroma would push a channel out of 0..255 it is reduced
    (desaturated) just enough, so the luma is kept to within rounding."""
    y, _, _ = _ycc(source)
    _, cb, cr = _ycc(coloured)
    offsets = np.stack([1.402 * cr, -0.344136 * cb - 0.714136 * cr, 1.772 * cb], axis=-1)  # (N, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(offsets > 0, (255.0 - y)[:, None] / offsets, np.inf)
        down = np.where(offsets < 0, (0.0 - y)[:, None] / offsets, np.inf)
    k = np.clip(np.minimum(up, down).min(axis=1), 0.0, 1.0)[:, None]
    out = y[:, None] + k * offsets
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(source.shape)
