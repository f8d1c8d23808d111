"""Full-reference fidelity: PSNR and SSIM (RGB or BasicSR's Y) through torchmetrics or scikit-image.

Inputs are ``uint8`` RGB images as decoded by :func:`authface.io.read_image`: one ``(H, W, 3)`` or a batch
``(B, H, W, 3)``; outputs are float64 ``(B,)``. Data range 255. PSNR of identical images is +inf, capped per image at
:data:`PSNR_CAP_DB` so means stay finite. SSIM: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, averaged over
the *valid* area (the 5 px border of the SSIM map dropped, as BasicSR / MATLAB ``ssim`` do; torchmetrics' own mean
includes a reflect-padded border, so its full map is cropped here) and over channels.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from authface.imaging import rgb_to_y

from .base import Column, Metric
from .common import EVAL_HINT, groups_by_shape, have_module, package_version, to_torch_nchw

__all__ = [
    "PSNR_CAP_DB",
    "FRBackend",
    "FRMetric",
    "as_batch",
    "fr_info",
    "l1",
    "psnr",
    "resolve_fr_backend",
    "ssim",
    "ssim_map",
]

#: Per-image PSNR cap in dB (identical images would give +inf; 100 dB is an MSE below 2.6e-6 on 0..255).
PSNR_CAP_DB = 100.0
#: PSNR/SSIM implementations (``auto``: torchmetrics on CUDA, else scikit-image).
FRBackend = Literal["auto", "torchmetrics", "skimage"]


def as_batch(images: Any, what: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) / (B, H, W, 3) / list of equal-size (H, W, 3) -> uint8 (B, H, W, 3)."""
    if isinstance(images, np.ndarray):
        arr = images[None] if images.ndim == 3 else images
    else:
        items = list(images)
        if not items:
            raise ValueError(f"{what}: empty batch")
        shapes = {np.shape(i) for i in items}
        if len(shapes) > 1:
            raise ValueError(f"{what}: images differ in size {sorted(shapes)}; pass one size per call")
        arr = np.stack(items)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3:
        raise ValueError(
            f"{what} expects uint8 RGB images (H, W, 3) or (B, H, W, 3), got {arr.dtype} {arr.shape}; "
            "read files with authface.io.read_image"
        )
    return arr


def _crop(arr: np.ndarray, border: int) -> np.ndarray:
    """(B, H, W, C) minus ``border`` pixels on each side."""
    if border <= 0:
        return arr
    if arr.shape[1] <= 2 * border or arr.shape[2] <= 2 * border:
        raise ValueError(f"crop_border={border} leaves nothing of a {arr.shape[2]}x{arr.shape[1]} image")
    return arr[:, border:-border, border:-border]


def _prepare(
    pred: Any, target: Any, y_channel: bool, crop_border: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_batch(pred, what), as_batch(target, what)
    if p.shape != t.shape:
        raise ValueError(f"{what}: prediction {p.shape} and target {t.shape} differ in shape")
    p, t = _crop(p, int(crop_border)), _crop(t, int(crop_border))
    if y_channel:
        return rgb_to_y(p)[..., None], rgb_to_y(t)[..., None]  # (B, H, W, 1) float64 on [16, 235]
    return p.astype(np.float64), t.astype(np.float64)


def resolve_fr_backend(backend: str = "auto", device: str = "cpu") -> str:
    """``auto`` -> torchmetrics on CUDA, otherwise scikit-image when installed (3x faster than torchmetrics'
    SSIM on CPU, and BasicSR's convention natively), otherwise torchmetrics.

    Raises:
        ValueError: an unknown backend name.
        ImportError: the chosen backend (or, for ``auto``, both) is missing; the message names the extra.
    """
    key = str(backend).strip().lower()
    if key not in ("auto", "torchmetrics", "skimage"):
        raise ValueError(f"unknown PSNR/SSIM backend {backend!r}; choose auto, torchmetrics or skimage")
    have_tm, have_sk = have_module("torchmetrics"), have_module("skimage")
    if key == "auto":
        if str(device).startswith("cuda") and have_tm:
            return "torchmetrics"
        if have_sk:
            return "skimage"
        if have_tm:
            return "torchmetrics"
        raise ImportError(f"PSNR/SSIM need torchmetrics or scikit-image, neither is installed: {EVAL_HINT}")
    if key == "torchmetrics" and not have_tm:
        raise ImportError(
            f"the torchmetrics backend needs torchmetrics: {EVAL_HINT} (or use --fr-backend skimage)"
        )
    if key == "skimage" and not have_sk:
        raise ImportError(
            f"the skimage backend needs scikit-image: {EVAL_HINT} (or use --fr-backend torchmetrics)"
        )
    return key


def psnr(
    pred: Any,
    target: Any,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    backend: str = "auto",
    cap: float | None = PSNR_CAP_DB,
    device: str = "cpu",
) -> np.ndarray:
    """PSNR in dB of uint8 RGB images (one (H, W, 3) or a batch (B, H, W, 3)) -> float64 (B,).

    Data range 255; ``y_channel`` compares BasicSR's Y (:func:`authface.imaging.rgb_to_y`) instead of RGB;
    ``crop_border`` pixels are dropped on each side first. Identical images give +inf, capped at ``cap``
    (None: no cap). Raises ValueError for mismatched shapes or non-uint8 input.
    """
    backend = resolve_fr_backend(backend, device)
    p, t = _prepare(pred, target, y_channel, crop_border, "psnr")
    if backend == "torchmetrics":
        import torch
        from torchmetrics.functional.image import peak_signal_noise_ratio

        with torch.no_grad():
            out = peak_signal_noise_ratio(
                to_torch_nchw(p, torch.float64, device), to_torch_nchw(t, torch.float64, device),
                data_range=255.0, reduction="none", dim=(1, 2, 3),
            )  # fmt: skip
        values = out.reshape(-1).cpu().numpy().astype(np.float64)
    else:
        from skimage.metrics import peak_signal_noise_ratio

        with np.errstate(divide="ignore"):
            values = np.array(
                [peak_signal_noise_ratio(b, a, data_range=255) for a, b in zip(p, t)], dtype=np.float64
            )
    if cap is not None:
        values = np.minimum(values, float(cap))
    return values


def ssim_map(pred: Any, target: Any, *, y_channel: bool = False, crop_border: int = 0, backend: str = "auto",
             device: str = "cpu") -> np.ndarray:  # fmt: skip
    """The SSIM map of uint8 RGB images (one (H, W, 3) or a batch (B, H, W, 3)) over its valid area, averaged over
    channels: float64 ``(B, H - 10, W - 10)`` (after ``crop_border``); entry ``(i, j)`` is the SSIM of the 11x11
    Gaussian window centred on pixel ``(i + 5, j + 5)``. Same conventions and errors as :func:`ssim`, whose value
    is this map's mean.
    """
    backend = resolve_fr_backend(backend, device)
    p, t = _prepare(pred, target, y_channel, crop_border, "ssim")
    if min(p.shape[1:3]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {p.shape[2]}x{p.shape[1]}")
    if backend == "torchmetrics":
        import torch
        from torchmetrics.functional.image import structural_similarity_index_measure

        with torch.no_grad():
            _, full = structural_similarity_index_measure(
                to_torch_nchw(p, torch.float32, device), to_torch_nchw(t, torch.float32, device),
                gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0, k1=0.01, k2=0.03,
                reduction="none", return_full_image=True,
            )  # fmt: skip
        valid = full[..., 5:-5, 5:-5]  # (B, C, H - 10, W - 10): drop the reflect-padded border
        return valid.mean(1).double().cpu().numpy()
    from skimage.metrics import structural_similarity

    maps = []
    for a, b in zip(p, t):
        _, full = structural_similarity(
            a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=255.0, K1=0.01, K2=0.03, full=True,
        )  # fmt: skip
        maps.append(full[5:-5, 5:-5].mean(-1))
    return np.stack(maps).astype(np.float64)


def ssim(
    pred: Any,
    target: Any,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    backend: str = "auto",
    device: str = "cpu",
) -> np.ndarray:
    """SSIM of uint8 RGB images (one (H, W, 3) or a batch (B, H, W, 3)) -> float64 (B,).

    Wang et al. 2004 with a Gaussian 11x11 window (sigma 1.5), K1 0.01, K2 0.03, data range 255, averaged over the
    valid area of the SSIM map (5 px border dropped; BasicSR / MATLAB convention) and over channels
    (:func:`ssim_map`). The two backends agree to ~1e-5 (torchmetrics runs in float32 for speed, skimage in float64).
    Images must be at least 11x11 after ``crop_border`` (ValueError otherwise).
    """
    maps = ssim_map(
        pred, target, y_channel=y_channel, crop_border=crop_border, backend=backend, device=device
    )
    return maps.reshape(maps.shape[0], -1).mean(1)


def fr_info(name: str, backend: str, y: bool, crop_border: int) -> str:
    """One line for the report: the implementation of ``name`` (``"PSNR"`` or ``"SSIM"``) and its settings."""
    chan = "Y (BasicSR rgb2ycbcr, not rounded)" if y else "RGB"
    if name == "PSNR":
        impl = (
            f"torchmetrics {package_version('torchmetrics')} peak_signal_noise_ratio"
            if backend == "torchmetrics"
            else f"scikit-image {package_version('scikit-image')} peak_signal_noise_ratio"
        )
        return (
            f"{impl}, {chan}, data range 255, crop border {crop_border}, float64; per-image values capped at "
            f"{PSNR_CAP_DB:g} dB"
        )
    impl = (
        f"torchmetrics {package_version('torchmetrics')} structural_similarity_index_measure (float32, full map "
        "cropped)"
        if backend == "torchmetrics"
        else f"scikit-image {package_version('scikit-image')} structural_similarity (float64)"
    )
    return (
        f"{impl}, Gaussian 11x11 sigma 1.5, K1 0.01 K2 0.03, {chan}, data range 255, valid area (5 px map border "
        f"dropped, BasicSR/MATLAB convention), crop border {crop_border}"
    )


def l1(pred: Any, target: Any, *, crop_border: int = 0, **_: Any) -> np.ndarray:
    """Mean absolute difference of uint8 RGB images on the ``[0, 1]`` scale (``|pred - target| / 255`` over pixels
    and channels): one (H, W, 3) or a batch (B, H, W, 3) -> float64 (B,). ValueError as :func:`psnr`."""
    p, t = _prepare(pred, target, False, crop_border, "l1")
    return np.abs(p - t).reshape(p.shape[0], -1).mean(1) / 255.0


class FRMetric(Metric):
    """PSNR / SSIM / L1 (``key``: ``psnr``, ``ssim``, ``psnr_y``, ``ssim_y`` or ``l1``) against the pixel-aligned
    GT."""

    needs = "gt"

    def __init__(self, key: str, backend: str, crop_border: int, device: str):
        self.key = key
        self.y = key.endswith("_y")
        self.kind = {"psnr": "PSNR", "ssim": "SSIM", "l1": "L1"}[key.split("_")[0]]
        self.backend, self.crop_border, self.device = backend, int(crop_border), device
        name = self.kind + ("-Y" if self.y else "")
        self.columns = (
            Column(name, True, "dB", ".2f")
            if self.kind == "PSNR"
            else Column(name, self.kind != "L1", "", ".4f"),
        )
        self.info = (
            fr_info(self.kind, backend, self.y, self.crop_border)
            if self.kind != "L1"
            else f"mean |pred - GT| / 255 over pixels and RGB channels (numpy float64), crop border {self.crop_border}"
        )

    def compute(self, preds, targets):
        fn = {"PSNR": psnr, "SSIM": ssim, "L1": l1}[self.kind]
        out = np.full(len(preds), np.nan)
        for idx in groups_by_shape(preds):
            out[idx] = fn(
                np.stack([preds[i] for i in idx]), np.stack([targets[i] for i in idx]), y_channel=self.y,
                crop_border=self.crop_border, backend=self.backend, device=self.device,
            )  # fmt: skip
        return {self.columns[0].name: out}
