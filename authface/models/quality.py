"""No-reference image quality scores, normalised to [0, 1] (higher is better).

A quality score is used two ways in AuthFace:

1. :class:`~authface.guidance.QualityGuidance` maximises a *differentiable* score of the predicted clean
   image during sampling, so the scorer must give useful gradients;
2. the training "image-quality prior" conditions the model on each training image's normalised score, so that
   at inference a user can ask for quality 0.9. The normalisation must therefore be explicit, documented and
   configurable: that is :class:`ScoreMap`.

Every scorer follows the :class:`QualityScorer` protocol::

    scorer = create_quality_scorer("sharpness")                       # built in, offline, no weights
    scorer = create_quality_scorer("niqe", model_path="niqe_pris_params.npz")   # built in, needs BasicSR's file
    scorer = create_quality_scorer("pyiqa:topiq_nr-face", model_path="topiq_nr-face.pth")  # pip install 'authface[iqa]'
    raw = scorer.raw(images)      # images: [0, 1] RGB (B, 3, H, W) -> (B,) raw metric values
    q = scorer(images)            # (B,) in [0, 1], higher is better: scorer.score_map(scorer.raw(images))

Backends:

* :class:`SharpnessScorer` — log-energy of a Laplacian-of-Gaussian of the luminance at a fixed working
  resolution. Offline, no weights, differentiable, cheap. A sharpness statistic, not a perceptual quality model.
* :class:`NIQEScorer` — NIQE (Mittal et al. 2013) exactly as BasicSR's ``niqe()`` (hence the official MATLAB
  code), written in torch and differentiable. Needs the pristine-model parameter file (no default, no download).
* :class:`PyiqaScorer` — any no-reference metric of `pyiqa <https://github.com/chaofengc/IQA-PyTorch>`_
  (``topiq_nr-face``, ``musiq``, ``clipiqa``, ``maniqa``, ``niqe``, ...). pyiqa downloads weights at run time
  unless ``pretrained_model_path`` (``model_path`` in :func:`create_quality_scorer`) points at a local file:
  pass it for offline use.

Nothing heavy happens at import time; pyiqa is imported inside :class:`PyiqaScorer`. No function prints.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ScoreMap",
    "QualityScorer",
    "SharpnessScorer",
    "NIQEScorer",
    "NIQEParams",
    "PyiqaScorer",
    "QUALITY_SCORER_NAMES",
    "PYIQA_SCORE_MAPS",
    "create_quality_scorer",
    "load_niqe_params",
    "fit_niqe_params",
    "rgb_to_y",
    "mscn",
    "aggd_fit",
    "niqe_features",
    "niqe",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`create_quality_scorer` (``<metric>`` is any pyiqa no-reference metric).
QUALITY_SCORER_NAMES = ("sharpness", "niqe", "pyiqa:<metric>")

_IQA_HINT = "pip install 'authface[iqa]'"
_NIQE_PARAMS_HINT = (
    "NIQE needs the pristine-model parameter file niqe_pris_params.npz (keys mu_pris_param, cov_pris_param, "
    "gaussian_window). Get it from BasicSR (Apache-2.0): basicsr/metrics/niqe_pris_params.npz in "
    "https://github.com/XPixelGroup/BasicSR, and pass its path (model_path= / --set guidance.quality_model=PATH)"
)


# ----------------------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ScoreMap:
    """Map a raw metric value to [0, 1], higher = better.

    ``kind="linear"``: ``(raw - lo) / (hi - lo)`` clipped to [0, 1]. ``lo`` is the raw value that maps to 0 (bad),
    ``hi`` the one that maps to 1 (good); ``hi < lo`` is allowed and inverts the map for lower-is-better metrics
    (NIQE: ``lo=10, hi=2``).

    ``kind="sigmoid"``: ``sigmoid((raw - center) / scale)``; a negative ``scale`` inverts it. Never saturates
    exactly, so it is smooth everywhere and never clips.

    Gradients at the bounds of the linear map: with ``straight_through=True`` (default) the *value* is clipped
    exactly to [0, 1] but the *gradient* is that of the unclipped line, ``1 / (hi - lo)``, everywhere — so
    guidance keeps pushing a sample whose raw score lies outside the calibrated range (an image blurrier than
    ``lo`` would otherwise get no gradient at all, exactly when it needs one). With ``straight_through=False``
    it is a plain clamp: gradient ``1 / (hi - lo)`` strictly inside the range, 0 outside it.

    The map is a plain dataclass: ``dataclasses.asdict(m)`` serialises it (e.g. into a training manifest) and
    ``ScoreMap(**d)`` restores it.
    """

    kind: str = "linear"
    lo: float = 0.0
    hi: float = 1.0
    center: float = 0.0
    scale: float = 1.0
    straight_through: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "sigmoid"):
            raise ValueError(f"ScoreMap.kind must be 'linear' or 'sigmoid', got {self.kind!r}")
        for f in ("lo", "hi", "center", "scale"):
            v = float(getattr(self, f))
            if not math.isfinite(v):
                raise ValueError(f"ScoreMap.{f} must be finite, got {v}")
            setattr(self, f, v)
        if self.kind == "linear" and self.hi == self.lo:
            raise ValueError(f"ScoreMap: linear map needs hi != lo, got lo = hi = {self.lo}")
        if self.kind == "sigmoid" and self.scale == 0.0:
            raise ValueError("ScoreMap: sigmoid map needs scale != 0 (negative scale = lower raw is better)")

    @property
    def lower_better(self) -> bool:
        """True when the map rewards lower raw values (``hi < lo``, or a negative sigmoid ``scale``)."""
        return self.hi < self.lo if self.kind == "linear" else self.scale < 0

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        """raw values (any shape) -> same shape in [0, 1]; floating dtype kept (integers become float32)."""
        raw = torch.as_tensor(raw)
        if not raw.is_floating_point():
            raw = raw.float()
        if self.kind == "sigmoid":
            return torch.sigmoid((raw - self.center) / self.scale)
        t = (raw - self.lo) / (self.hi - self.lo)
        if self.straight_through:
            # value: exactly clamp(t, 0, 1); gradient: d t (t - t.detach() is an exact zero with t's gradient)
            return t.detach().clamp(0.0, 1.0) + (t - t.detach())
        return t.clamp(0.0, 1.0)

    @classmethod
    def fit(
        cls,
        raw_scores: Sequence[float] | np.ndarray | torch.Tensor,
        lower_better: bool = False,
        quantiles: tuple[float, float] = (0.02, 0.98),
    ) -> ScoreMap:
        """A linear map calibrated on a set of raw scores (e.g. a training set for the image-quality prior):
        the ``quantiles[0]`` worst score maps to 0 and the ``quantiles[1]`` best to 1."""
        a = np.asarray(torch.as_tensor(raw_scores).detach().cpu().double().reshape(-1))
        a = a[np.isfinite(a)]
        if a.size < 2:
            raise ValueError(f"ScoreMap.fit needs at least 2 finite scores, got {a.size}")
        q_lo, q_hi = np.quantile(a, [quantiles[0], quantiles[1]])
        if q_hi <= q_lo:
            raise ValueError(
                f"ScoreMap.fit: the scores do not spread (quantiles {quantiles} give {q_lo}, {q_hi})"
            )
        lo, hi = (float(q_hi), float(q_lo)) if lower_better else (float(q_lo), float(q_hi))
        return cls(kind="linear", lo=lo, hi=hi)


@runtime_checkable
class QualityScorer(Protocol):
    """What guidance and dataset preparation need from a no-reference quality metric."""

    name: str
    differentiable: bool
    score_map: ScoreMap

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) raw metric values (the metric's own scale and orientation)."""
        ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) normalised scores in [0, 1], higher is better."""
        ...


def _check_images(images: Any, who: str) -> torch.Tensor:
    if not torch.is_tensor(images):
        raise TypeError(
            f"{who}: images must be a torch.Tensor in [0, 1] RGB (B, 3, H, W), got {type(images).__name__}; "
            "convert numpy uint8 images with authface.io"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{who}: images must have shape (B, 3, H, W) (RGB), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{who}: images must be floating point in [0, 1], got dtype {images.dtype}")
    return images


# ----------------------------------------------------------------------------------------------------------------
# Sharpness
# ----------------------------------------------------------------------------------------------------------------


def _gaussian_kernel1d(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


class SharpnessScorer(nn.Module):
    """Built-in sharpness score: ``log(var(LoG(Y)) + eps)`` at a fixed working resolution.

    Steps (all differentiable torch ops): clamp to [0, 1]; resize so the shorter side is ``working_size`` (bicubic,
    antialiased; skipped when it already is), so the score does not depend on the input size; luminance
    ``Y = 0.299 R + 0.587 G + 0.114 B``; Gaussian pre-smoothing with ``presmooth_sigma`` working pixels; 3×3
    Laplacian; population variance over the valid (unpadded) area; natural log.

    The pre-smoothing makes the score measure detail just below the working Nyquist frequency, where resampling
    filters agree: the same photo downscaled to 256 px by OpenCV INTER_AREA, PIL bicubic or PIL Lanczos scores
    within ~0.1 raw of the scorer's own resize (without it the spread is ~0.4), and mild pixel noise (σ = 10/255)
    barely moves it, so maximising it during guidance does not simply add noise.

    Default :class:`ScoreMap` — linear, ``lo=-8.40`` (→ 0), ``hi=-4.95`` (→ 1) — calibrated on scikit-image's
    ``astronaut`` (512², measured): raw -5.38 → 0.88 as is; after ``cv2.GaussianBlur`` σ=1: -5.85 → 0.74,
    σ=2: -6.75 → 0.48, σ=3: -7.62 → 0.23, σ=4: -8.36 → 0.01 (``camera``: 0.77, 0.62, 0.31, 0.01, 0). The same
    photo resized to 256² (INTER_AREA, PIL bicubic) or 1024² scores within 0.01 of the 512² one. Aligned faces
    are smoother than that photo: the shared evaluation faces (512² crops) score raw -8.1…-5.7 for 212 clean
    FFHQ / CelebA-HQ / ALAE faces (median -6.83 → 0.46) and -12.5…-7.1 for 44 real degraded crops (CodeFormer,
    GFPGAN, DiffBIR, RestoreFormer++, PGDiff inputs; median -10.7 → 0). For a training image-quality prior,
    refit the map on the training set with :meth:`ScoreMap.fit`.

    Images much smaller than ``working_size`` are upsampled and score low — correctly: they lack detail.
    """

    name = "sharpness"
    differentiable = True
    DEFAULT_SCORE_MAP = ScoreMap(kind="linear", lo=-8.40, hi=-4.95)

    def __init__(
        self,
        working_size: int = 256,
        presmooth_sigma: float = 0.7,
        eps: float = 1e-10,
        score_map: ScoreMap | None = None,
    ):
        super().__init__()
        if int(working_size) < 16:
            raise ValueError(f"SharpnessScorer: working_size must be >= 16, got {working_size}")
        if presmooth_sigma < 0:
            raise ValueError(f"SharpnessScorer: presmooth_sigma must be >= 0, got {presmooth_sigma}")
        if eps <= 0:
            raise ValueError(f"SharpnessScorer: eps must be > 0, got {eps}")
        self.working_size = int(working_size)
        self.presmooth_sigma = float(presmooth_sigma)
        self.eps = float(eps)
        self.score_map = score_map if score_map is not None else dataclasses.replace(self.DEFAULT_SCORE_MAP)
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        self.register_buffer("laplacian", lap, persistent=False)

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) log variance of the LoG of the luminance (float32)."""
        x = _check_images(images, "SharpnessScorer").float().clamp(0.0, 1.0)
        h, w = x.shape[-2:]
        if min(h, w) != self.working_size:
            s = self.working_size / min(h, w)
            size = (max(3, round(h * s)), max(3, round(w * s)))
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=s < 1)
        y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # (B, 1, h, w)
        if self.presmooth_sigma > 0:
            g = _gaussian_kernel1d(self.presmooth_sigma, y.device, y.dtype)
            y = F.conv2d(y, g.view(1, 1, 1, -1))
            y = F.conv2d(y, g.view(1, 1, -1, 1))
        lap = F.conv2d(
            y, self.laplacian.to(device=y.device, dtype=y.dtype)
        )  # valid area only: no border effects
        var = lap.flatten(1).var(dim=1, unbiased=False)
        return torch.log(var + self.eps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) in [0, 1], higher is sharper."""
        return self.score_map(self.raw(images))


# ----------------------------------------------------------------------------------------------------------------
# NIQE (torch port of BasicSR's basicsr/metrics/niqe.py)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NIQEParams:
    """A NIQE multivariate-Gaussian model: ``mu`` (36,), ``cov`` (36, 36) and the 7×7 MSCN ``window``."""

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray

    def __post_init__(self) -> None:
        mu = np.asarray(self.mu, dtype=np.float64).reshape(-1)
        cov = np.asarray(self.cov, dtype=np.float64)
        window = np.asarray(self.window, dtype=np.float64)
        if mu.shape != (36,) or cov.shape != (36, 36):
            raise ValueError(
                f"NIQE params: mu must have 36 values and cov shape (36, 36), got {mu.shape}, {cov.shape}"
            )
        if window.ndim != 2 or window.shape[0] != window.shape[1] or window.shape[0] % 2 == 0:
            raise ValueError(f"NIQE params: gaussian_window must be square with odd size, got {window.shape}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "window", window)

    def save(self, path: str | os.PathLike) -> None:
        """Write a BasicSR-compatible ``.npz`` (keys mu_pris_param (1, 36), cov_pris_param, gaussian_window)."""
        np.savez(path, mu_pris_param=self.mu[None], cov_pris_param=self.cov, gaussian_window=self.window)


def load_niqe_params(path: str | os.PathLike) -> NIQEParams:
    """Read BasicSR's ``niqe_pris_params.npz`` (no pickles are loaded)."""
    if path is None:
        raise ValueError(_NIQE_PARAMS_HINT)
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"NIQE parameter file not found: {str(p)!r}. {_NIQE_PARAMS_HINT}")
    with np.load(p, allow_pickle=False) as d:
        missing = [k for k in ("mu_pris_param", "cov_pris_param", "gaussian_window") if k not in d.files]
        if missing:
            raise ValueError(
                f"{str(p)!r} is not a NIQE parameter file: missing keys {missing}. {_NIQE_PARAMS_HINT}"
            )
        return NIQEParams(d["mu_pris_param"], d["cov_pris_param"], d["gaussian_window"])


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)`` — the window stored in BasicSR's file (7, 7/6)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (B, 3, H, W) -> (B, H, W) luma of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601), range [16, 235]."""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    return 65.481 * r + 128.553 * g + 24.966 * b + 16.0


def mscn(y: torch.Tensor, window: torch.Tensor | np.ndarray, c: float = 1.0) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients ``(y - mu) / (sigma + c)`` (NIQE Eq. 1).

    ``y``: (H, W) or (B, H, W) on the [0, 255] scale; ``mu``/``sigma``: local mean and standard deviation under
    ``window`` with replicated borders (scipy ``convolve(..., mode='nearest')``, as BasicSR).
    """
    squeeze = y.ndim == 2
    x = y[None] if squeeze else y
    w = np.asarray(window.detach().cpu() if torch.is_tensor(window) else window, dtype=np.float64)[::-1, ::-1]
    k = w.shape[-1]  # flipped above: convolution, not correlation
    pad = k // 2
    x4 = x.unsqueeze(1)  # (B, 1, H, W)
    stack = torch.cat([x4, x4 * x4], dim=0)
    stack = F.pad(stack, (pad, pad, pad, pad), mode="replicate")
    u, s, vt = np.linalg.svd(w)
    if s[1] <= 1e-12 * s[0]:  # separable (a Gaussian window is): two 1-D passes, ~3x faster
        col = torch.as_tensor(u[:, 0] * math.sqrt(s[0]), device=x.device, dtype=x.dtype)
        row = torch.as_tensor(vt[0] * math.sqrt(s[0]), device=x.device, dtype=x.dtype)
        conv = F.conv2d(F.conv2d(stack, col.view(1, 1, k, 1)), row.view(1, 1, 1, k))
    else:
        conv = F.conv2d(stack, torch.as_tensor(w.copy(), device=x.device, dtype=x.dtype).view(1, 1, k, k))
    mu, mu2 = conv[: x.shape[0]], conv[x.shape[0] :]
    # sqrt(|E[y²] - mu²|), kept finite-gradient at 0 (value changes by < 1e-6 where the window is flat)
    sigma = torch.sqrt((mu2 - mu * mu).abs().clamp_min(1e-12))
    out = ((x4 - mu) / (sigma + c)).squeeze(1)
    return out[0] if squeeze else out


@functools.lru_cache(maxsize=4)
def _aggd_grid_np() -> tuple[np.ndarray, np.ndarray]:
    """BasicSR's shape grid ``np.arange(0.2, 10.001, 0.001)`` (9801 values) and ``r(α) = Γ(2/α)²/(Γ(1/α)Γ(3/α))``."""
    gam = np.arange(0.2, 10.001, 0.001)
    t = torch.from_numpy(1.0 / gam)
    r = torch.exp(2 * torch.lgamma(2 * t) - torch.lgamma(t) - torch.lgamma(3 * t)).numpy()
    return gam, r


def _aggd_grid(device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gam, r = _aggd_grid_np()
    return (torch.as_tensor(gam, device=device, dtype=dtype), torch.as_tensor(r, device=device, dtype=dtype))


def _r_of_alpha(alpha: torch.Tensor) -> torch.Tensor:
    t = 1.0 / alpha
    return torch.exp(2 * torch.lgamma(2 * t) - torch.lgamma(t) - torch.lgamma(3 * t))


def _dr_dalpha(alpha: torch.Tensor) -> torch.Tensor:
    """d r / d α = r(α) · (ψ(1/α) + 3 ψ(3/α) − 4 ψ(2/α)) / α² (> 0: r is increasing)."""
    t = 1.0 / alpha
    dlog = (torch.digamma(t) + 3 * torch.digamma(3 * t) - 4 * torch.digamma(2 * t)) * t * t
    return _r_of_alpha(alpha) * dlog


class _AGGDShape(torch.autograd.Function):
    """α = argmin over BasicSR's grid of (r(α) - ρ)²; backward: dα/dρ = 1 / r'(α) (inverse-function rule).

    The forward is BasicSR's grid search to the last digit (r is strictly increasing on the grid, so the argmin
    is a nearest-neighbour search, done with ``searchsorted``); the backward is the derivative of the continuous
    inverse of r, and 0 where α is pinned at the ends of the grid (0.2 or 10).
    """

    @staticmethod
    def forward(ctx, rho):
        gam, r = _aggd_grid(rho.device, rho.dtype)
        n = r.shape[0]
        hi = torch.searchsorted(r, rho.contiguous()).clamp(1, n - 1)
        lo = hi - 1
        pick_lo = (rho - r[lo]) ** 2 <= (r[hi] - rho) ** 2  # argmin takes the first of equal distances
        idx = torch.where(pick_lo, lo, hi)
        alpha = gam[idx]
        ctx.save_for_backward(alpha, idx)
        ctx.n = n
        return alpha

    @staticmethod
    def backward(ctx, grad):
        alpha, idx = ctx.saved_tensors
        d = 1.0 / _dr_dalpha(alpha)
        inside = (idx > 0) & (idx < ctx.n - 1) & torch.isfinite(d)
        return torch.where(inside, grad * d, torch.zeros_like(grad))


def aggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalised Gaussian fit by moment matching (BasicSR ``estimate_aggd_param``), batched.

    ``x``: (N, M) — N independent samples of M values (e.g. flattened blocks); returns ``alpha`` (shape),
    ``beta_l``, ``beta_r`` (left/right scales), each (N,). A Gaussian gives alpha ≈ 2, a Laplacian alpha ≈ 1.
    As in BasicSR: a sample with no negative (positive) values gets ``beta_l`` (``beta_r``) NaN and alpha 0.2.
    Differentiable in ``x`` (see :class:`_AGGDShape` for the shape's gradient).
    """
    if x.ndim == 1:
        x = x[None]
    neg, pos = x < 0, x > 0
    n_neg, n_pos = neg.sum(1), pos.sum(1)
    x2 = x * x
    left_var = (x2 * neg).sum(1) / n_neg.clamp_min(1)
    right_var = (x2 * pos).sum(1) / n_pos.clamp_min(1)
    tiny = torch.finfo(x.dtype).tiny
    left_std = left_var.clamp_min(tiny).sqrt()
    right_std = right_var.clamp_min(tiny).sqrt()
    ok = (n_neg > 0) & (n_pos > 0)
    gammahat = left_std / right_std
    rhat = x.abs().mean(1) ** 2 / x2.mean(1).clamp_min(tiny)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    rhatnorm = torch.where(ok, rhatnorm, torch.zeros_like(rhatnorm))
    alpha = _AGGDShape.apply(rhatnorm)
    alpha = torch.where(ok, alpha, torch.full_like(alpha, 0.2))  # BasicSR: argmin over all-NaN -> index 0
    c = torch.exp(0.5 * (torch.lgamma(1.0 / alpha) - torch.lgamma(3.0 / alpha)))
    nan = torch.full_like(alpha, float("nan"))
    beta_l = torch.where(n_neg > 0, left_std * c, nan)
    beta_r = torch.where(n_pos > 0, right_std * c, nan)
    return alpha, beta_l, beta_r


@functools.lru_cache(maxsize=32)
def _imresize_half_matrix(n: int) -> np.ndarray:
    """(ceil(n/2), n) matrix of MATLAB ``imresize(x, 0.5)`` (bicubic, antialiased, symmetric borders), as
    BasicSR's ``calculate_weights_indices`` builds it."""
    scale, kernel_width = 0.5, 4.0 / 0.5
    out_n = math.ceil(n * scale)
    x = np.arange(1, out_n + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    p = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]  # 1-based source indices
    d = np.abs((u[:, None] - idx) * scale)
    cubic = np.where(
        d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1, np.where(d <= 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0)
    )
    wts = scale * cubic
    wts = wts / wts.sum(1, keepdims=True)
    src = idx.astype(np.int64)
    src = np.where(src < 1, 1 - src, src)  # symmetric padding (edge repeated)
    src = np.where(src > n, 2 * n + 1 - src, src) - 1
    m = np.zeros((out_n, n), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_n), p), src.reshape(-1)), wts.reshape(-1))
    return m


def _imresize_half(y: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, ceil(H/2), ceil(W/2)), MATLAB bicubic antialiased (linear, differentiable)."""
    mh = torch.as_tensor(_imresize_half_matrix(y.shape[-2]), device=y.device, dtype=y.dtype)
    mw = torch.as_tensor(_imresize_half_matrix(y.shape[-1]), device=y.device, dtype=y.dtype)
    return mh @ y @ mw.T


_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _block_features(blocks: torch.Tensor) -> torch.Tensor:
    """(N, b, b) MSCN blocks -> (N, 18): [alpha, mean beta] + 4 orientations x [alpha, mean, beta_l, beta_r]."""
    n = blocks.shape[0]
    samples = [blocks.reshape(n, -1)]
    for s in _SHIFTS:
        samples.append((blocks * torch.roll(blocks, shifts=s, dims=(1, 2))).reshape(n, -1))
    alpha, bl, br = aggd_fit(torch.cat(samples, dim=0))  # (5N,)
    alpha, bl, br = alpha.view(5, n), bl.view(5, n), br.view(5, n)
    feats = [alpha[0], (bl[0] + br[0]) / 2]
    for i in range(1, 5):
        a = alpha[i]
        mean = (br[i] - bl[i]) * torch.exp(torch.lgamma(2.0 / a) - torch.lgamma(1.0 / a))  # Eq. 8
        feats += [a, mean, bl[i], br[i]]
    return torch.stack(feats, dim=1)


def niqe_features(y: torch.Tensor, window: torch.Tensor | np.ndarray, block_size: int = 96) -> torch.Tensor:
    """Per-block NIQE features: (H, W) or (B, H, W) luma on [0, 255] -> (B, n_blocks, 36) (or (n_blocks, 36)).

    The image is cropped to whole ``block_size`` blocks from the top-left; 18 features from the MSCN image at
    full scale and 18 at half scale (MATLAB bicubic), block by block. Rows may hold NaN (flat blocks).
    """
    squeeze = y.ndim == 2
    x = y[None] if squeeze else y
    bs = int(block_size)
    if bs % 2:
        raise ValueError(f"NIQE block_size must be even, got {block_size}")
    nh, nw = x.shape[-2] // bs, x.shape[-1] // bs
    if nh < 1 or nw < 1:
        raise ValueError(f"NIQE needs an image of at least {bs}x{bs} pixels, got {tuple(x.shape[-2:])}")
    x = x[:, : nh * bs, : nw * bs]
    b = x.shape[0]
    per_scale = []
    for scale in (1, 2):
        m = mscn(x, window)
        k = bs // scale
        blocks = m.reshape(b, nh, k, nw, k).permute(0, 1, 3, 2, 4).reshape(b * nh * nw, k, k)
        per_scale.append(_block_features(blocks).view(b, nh * nw, 18))
        if scale == 1:
            x = _imresize_half(x)
    feats = torch.cat(per_scale, dim=2)
    return feats[0] if squeeze else feats


def _mvg(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 36) features with NaNs -> column-wise nan-mean (36,) and covariance (36, 36) of the NaN-free rows."""
    valid = ~torch.isnan(feats)
    count = valid.sum(0)
    mu = torch.where(valid, feats, torch.zeros_like(feats)).sum(0) / count.clamp_min(1)
    mu = torch.where(count > 0, mu, torch.full_like(mu, float("nan")))
    rows = feats[valid.all(1)]
    if rows.shape[0] < 2:
        raise ValueError(
            f"NIQE: only {rows.shape[0]} usable {'block' if rows.shape[0] == 1 else 'blocks'} "
            "(need 2: use an image with at least two 96x96 blocks that are not flat)"
        )
    d = rows - rows.mean(0)
    cov = d.T @ d / (rows.shape[0] - 1)
    return mu, cov


def niqe(
    y: torch.Tensor,
    params: NIQEParams,
    block_size: int = 96,
) -> torch.Tensor:
    """NIQE of luma images: (H, W) or (B, H, W) on [0, 255] -> () or (B,), lower is better (Eq. 10).

    Follows BasicSR's ``niqe()`` step by step; pass ``y`` already rounded to integers to match
    ``calculate_niqe`` (``NIQEScorer`` does). Computed in the dtype of ``y`` (use float64 to match BasicSR).
    """
    squeeze = y.ndim == 2
    x = y[None] if squeeze else y
    feats = niqe_features(x, params.window, block_size)  # (B, n, 36)
    mu_p = torch.as_tensor(params.mu, device=x.device, dtype=x.dtype)
    cov_p = torch.as_tensor(params.cov, device=x.device, dtype=x.dtype)
    out = []
    for f in feats:
        mu, cov = _mvg(f)
        d = (mu_p - mu)[None]  # (1, 36)
        inv = torch.linalg.pinv((cov_p + cov) / 2, rtol=1e-15)
        q = (d @ inv @ d.T).squeeze()
        out.append(q.clamp_min(1e-20).sqrt())
    res = torch.stack(out)
    return res[0] if squeeze else res


def fit_niqe_params(
    images: Sequence[torch.Tensor] | torch.Tensor,
    block_size: int = 96,
    window: np.ndarray | None = None,
) -> NIQEParams:
    """A pristine NIQE model fitted on your own clean images (e.g. high-quality aligned faces).

    ``images``: [0, 1] RGB tensors (B, 3, H, W) or (3, H, W). Every block of every image is used (the official
    model additionally keeps only the sharpest patches of its 125 pristine photos), so scores against such a
    model are comparable with each other but not with published NIQE numbers.
    """
    window = gaussian_window() if window is None else np.asarray(window, dtype=np.float64)
    batch = [images] if torch.is_tensor(images) else list(images)
    feats = []
    for im in batch:
        im = im[None] if im.ndim == 3 else im
        im = _check_images(im, "fit_niqe_params").detach().double().clamp(0, 1)
        y = rgb_to_y(im).round()
        feats.append(niqe_features(y, window, block_size).reshape(-1, 36))
    mu, cov = _mvg(torch.cat(feats))
    return NIQEParams(mu.cpu().numpy(), cov.cpu().numpy(), window)


class NIQEScorer:
    """NIQE (Mittal, Soundararajan & Bovik 2013, "Making a completely blind image quality analyzer").

    A torch port of BasicSR's ``calculate_niqe(img, crop_border=0, convert_to='y')``: luma of MATLAB
    ``rgb2ycbcr`` rounded to integers, image cropped to whole 96×96 blocks, MSCN with the 7×7 Gaussian window,
    AGGD moment-matching fits over BasicSR's α grid, products of neighbours at 4 orientations, two scales
    (MATLAB bicubic half-size), Mahalanobis-like distance to the pristine model. It runs in float64 and
    agrees with BasicSR's code run in float64 to ~1e-5 on natural photos (astronaut 3.10046); BasicSR as
    published computes in float32 and differs from both by up to ~0.03 (astronaut 3.0646). Images with exactly
    flat areas (saturated backgrounds) have MSCN values that are pure rounding noise there, whose signs enter the
    AGGD fits: on such images any two implementations differ by ~1e-3 (0.1 for float32 vs float64).

    ``params``: path of BasicSR's ``niqe_pris_params.npz`` (or a :class:`NIQEParams`). There is no default path
    and nothing is downloaded; see the error message for where to get the file.

    Differentiable (``differentiable = True``): every step is a torch op except two, which get these gradients:
    the α grid search (the forward is BasicSR's exact grid value; the backward is the derivative of the
    continuous inverse of the moment ratio r(α), ``1 / r'(α)``) and the rounding to integer grey levels
    (straight-through: identity gradient). A step of 0.5/255 against the gradient lowers NIQE markedly where a
    random step of the same size does not (tested). Cost for a 512² image on 2 CPU threads: ~0.2 s forward,
    ~0.4 s with backward (float64 throughout).
    Note that NIQE is meant for whole images; guidance on it is an experiment, not a tuned recipe.

    Default :class:`ScoreMap`: linear, ``lo=10`` (→ 0) to ``hi=2`` (→ 1); lower NIQE is better. Measured with the
    official parameters on the shared evaluation faces (512² aligned crops): clean faces FFHQ 2.94–4.35 (median
    3.76 → 0.78), CelebA-HQ 2.77–5.58 (median 4.08), ALAE 2.64–8.26 (median 4.38); real degraded crops
    CodeFormer 10.4–15.5 (median 13.4 → 0), PGDiff 11.9–17.3, RestoreFormer++ 8.9–15.3, GFPGAN 7.7–12.6,
    DiffBIR 5.2–13.3 — so the map spreads clean training faces over ~0.2–0.95 and puts degraded inputs near 0
    (where the straight-through map still gives guidance a gradient).
    """

    name = "niqe"
    differentiable = True
    DEFAULT_SCORE_MAP = ScoreMap(kind="linear", lo=10.0, hi=2.0)

    def __init__(
        self,
        params: str | os.PathLike | NIQEParams,
        score_map: ScoreMap | None = None,
        block_size: int = 96,
        round_y: bool = True,
    ):
        if params is None:
            raise ValueError(_NIQE_PARAMS_HINT)
        self.params = params if isinstance(params, NIQEParams) else load_niqe_params(params)
        self.score_map = score_map if score_map is not None else dataclasses.replace(self.DEFAULT_SCORE_MAP)
        self.block_size = int(block_size)
        self.round_y = bool(round_y)

    def to(self, *args, **kwargs) -> NIQEScorer:
        """No-op (computation follows the images' device); kept so callers can treat scorers alike."""
        return self

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) NIQE (lower is better), in the images' floating dtype."""
        x = _check_images(images, "NIQEScorer")
        y = rgb_to_y(x.double().clamp(0.0, 1.0))
        if self.round_y:
            y = y + (y.round() - y).detach()  # straight-through rounding
        return niqe(y, self.params, self.block_size).to(x.dtype)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) in [0, 1], higher is better."""
        return self.score_map(self.raw(images))

    def __repr__(self) -> str:
        return f"NIQEScorer(block_size={self.block_size}, round_y={self.round_y}, score_map={self.score_map})"


# ----------------------------------------------------------------------------------------------------------------
# pyiqa
# ----------------------------------------------------------------------------------------------------------------

#: Default raw ranges ``(worst, best)`` of common pyiqa no-reference metrics, used as linear ScoreMaps when the
#: caller passes none. They follow pyiqa's documented output ranges (``pyiqa.list_models``/model cards); for
#: NIQE-family metrics, whose nominal range is open-ended, the practical range of natural photos is used.
#: Refit with :meth:`ScoreMap.fit` on your own data when the score conditions a model.
PYIQA_SCORE_MAPS: dict[str, tuple[float, float]] = {
    "topiq_nr": (0.0, 1.0),
    "topiq_nr-face": (0.0, 1.0),
    "topiq_nr_swin-face": (0.0, 1.0),
    "topiq_nr-flive": (0.0, 1.0),
    "topiq_nr-spaq": (0.0, 1.0),
    "musiq": (0.0, 100.0),
    "musiq-koniq": (0.0, 100.0),
    "musiq-spaq": (0.0, 100.0),
    "musiq-paq2piq": (0.0, 100.0),
    "musiq-ava": (1.0, 10.0),
    "clipiqa": (0.0, 1.0),
    "clipiqa+": (0.0, 1.0),
    "maniqa": (0.0, 1.0),
    "maniqa-kadid": (0.0, 1.0),
    "maniqa-pipal": (0.0, 1.0),
    "hyperiqa": (0.0, 1.0),
    "dbcnn": (0.0, 1.0),
    "arniqa": (0.0, 1.0),
    "qualiclip": (0.0, 1.0),
    "qualiclip+": (0.0, 1.0),
    "liqe": (1.0, 5.0),
    "liqe_mix": (1.0, 5.0),
    "nima": (1.0, 10.0),
    "paq2piq": (0.0, 100.0),
    "tres": (0.0, 100.0),
    "niqe": (10.0, 2.0),
    "niqe_matlab": (10.0, 2.0),
    "ilniqe": (60.0, 15.0),
    "brisque": (100.0, 0.0),
    "brisque_matlab": (100.0, 0.0),
    "piqe": (100.0, 0.0),
}


def _parse_score_range(text: Any) -> tuple[float, float] | None:
    """pyiqa's ``score_range`` strings ("0, 1", "~0, ~100") -> (min, max); None if open-ended or unparsable."""
    if not isinstance(text, str):
        return None
    parts = [p.strip().lstrip("~").strip() for p in text.split(",")]
    if len(parts) != 2 or not all(re.fullmatch(r"-?\d+(\.\d+)?", p) for p in parts):
        return None
    a, b = float(parts[0]), float(parts[1])
    return (a, b) if b > a else None


def default_pyiqa_score_map(metric_name: str, lower_better: bool, score_range: Any = None) -> ScoreMap:
    """The ScoreMap used for ``pyiqa:<metric_name>`` when none is given.

    Known metrics use :data:`PYIQA_SCORE_MAPS`; others fall back to the metric's own ``score_range`` (pyiqa ≥ 0.1.12)
    and then to [0, 1]; the fallbacks are oriented by ``lower_better`` (logged as a warning: calibrate them).
    """
    if metric_name in PYIQA_SCORE_MAPS:
        worst, best = PYIQA_SCORE_MAPS[metric_name]
        if (best < worst) != bool(lower_better):
            logger.warning("pyiqa metric %r: lower_better=%s disagrees with AuthFace's default map; using pyiqa's "
                           "orientation", metric_name, lower_better)  # fmt: skip
            worst, best = best, worst
        return ScoreMap(kind="linear", lo=worst, hi=best)
    rng = _parse_score_range(score_range)
    if rng is None:
        logger.warning("pyiqa metric %r: no known score range (%r); normalising as if it were [0, 1] — pass a "
                       "ScoreMap calibrated on your data", metric_name, score_range)  # fmt: skip
        rng = (0.0, 1.0)
    else:
        logger.warning("pyiqa metric %r: no AuthFace default ScoreMap; using pyiqa's nominal range %s",
                       metric_name, rng)  # fmt: skip
    lo, hi = (rng[1], rng[0]) if lower_better else rng
    return ScoreMap(kind="linear", lo=lo, hi=hi)


class PyiqaScorer:
    """Any pyiqa no-reference metric as a :class:`QualityScorer`.

    Wraps ``pyiqa.create_metric(metric_name, as_loss=differentiable, device=device,
    pretrained_model_path=...)``. With ``differentiable=True`` the metric is created as a loss (gradients enabled)
    with ``loss_reduction="none"`` so it still returns one value per image; otherwise it runs without gradients.

    Weights: without ``pretrained_model_path`` pyiqa downloads the metric's weights on first use (to its cache,
    ``~/.cache/torch/hub/pyiqa``), which fails offline; pass a local weights file for offline use (for
    ``niqe`` in pyiqa that is its ``.mat`` parameter file, or use the built-in :class:`NIQEScorer`).

    Orientation comes from the metric's ``lower_better``; the default map is :func:`default_pyiqa_score_map`.
    Inputs are clamped to [0, 1] (pyiqa rejects values outside it).
    """

    def __init__(
        self,
        metric_name: str,
        device: str | torch.device | None = None,
        differentiable: bool = True,
        pretrained_model_path: str | os.PathLike | None = None,
        score_map: ScoreMap | None = None,
        **metric_kwargs: Any,
    ):
        try:
            import pyiqa
        except ImportError as exc:
            raise ImportError(
                f"the quality metric 'pyiqa:{metric_name}' needs pyiqa, which is not installed: {_IQA_HINT} "
                "(it pulls torchvision; install the torch/torchvision pair for your platform first). The built-in "
                "metrics need nothing extra: 'sharpness', or 'niqe' with its parameter file."
            ) from exc
        kwargs = dict(metric_kwargs)
        if pretrained_model_path is not None:
            p = Path(pretrained_model_path).expanduser()
            if not p.is_file():
                raise FileNotFoundError(
                    f"pyiqa:{metric_name}: pretrained_model_path {str(p)!r} is not a file"
                )
            kwargs["pretrained_model_path"] = str(p)
        if differentiable:
            kwargs.setdefault("loss_reduction", "none")
        try:
            metric = pyiqa.create_metric(metric_name, as_loss=bool(differentiable), device=device, **kwargs)
        except (AssertionError, KeyError) as exc:
            raise ValueError(
                f"pyiqa has no metric {metric_name!r} ({exc}); list the no-reference ones with "
                "`python -c \"import pyiqa; print(pyiqa.list_models(metric_mode='NR'))\"`"
            ) from exc
        mode = getattr(metric, "metric_mode", "NR")
        if mode not in (None, "NR"):
            raise ValueError(f"pyiqa metric {metric_name!r} is {mode} (needs a reference image); "
                             "a quality scorer needs a no-reference (NR) metric")  # fmt: skip
        self.metric = metric
        self.metric_name = metric_name
        self.name = f"pyiqa:{metric_name}"
        self.differentiable = bool(differentiable)
        self.lower_better = bool(getattr(metric, "lower_better", False))
        if score_map is None:
            score_map = default_pyiqa_score_map(
                metric_name, self.lower_better, getattr(metric, "score_range", None)
            )
        elif score_map.lower_better != self.lower_better:
            logger.warning("pyiqa:%s has lower_better=%s but the given ScoreMap rewards %s raw values",
                           metric_name, self.lower_better, "lower" if score_map.lower_better else "higher")  # fmt: skip
        self.score_map = score_map

    def to(self, device) -> PyiqaScorer:
        if hasattr(self.metric, "to"):
            self.metric = self.metric.to(device)
        return self

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) raw metric values on the images' device."""
        x = _check_images(images, self.name).clamp(0.0, 1.0)
        out = self.metric(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = torch.as_tensor(out)
        if out.numel() != x.shape[0]:
            raise RuntimeError(f"{self.name} returned {tuple(out.shape)} for a batch of {x.shape[0]} images; "
                               "expected one score per image")  # fmt: skip
        return out.reshape(x.shape[0]).to(images.device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) in [0, 1], higher is better."""
        return self.score_map(self.raw(images))

    def __repr__(self) -> str:
        return f"PyiqaScorer({self.metric_name!r}, differentiable={self.differentiable}, score_map={self.score_map})"


# ----------------------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------------------


def create_quality_scorer(
    name: str,
    model_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    score_map: ScoreMap | None = None,
    **kw: Any,
) -> QualityScorer:
    """Build a quality scorer by name.

    * ``"sharpness"`` — :class:`SharpnessScorer` (``kw``: working_size, presmooth_sigma, eps); ``model_path``
      must be None.
    * ``"niqe"`` — :class:`NIQEScorer`; ``model_path`` = BasicSR's ``niqe_pris_params.npz`` (required).
    * ``"pyiqa:<metric>"`` — :class:`PyiqaScorer`; ``model_path`` = local weights (pyiqa's
      ``pretrained_model_path``; without it pyiqa downloads them); ``kw``: differentiable and pyiqa options.

    ``score_map`` overrides the backend's default normalisation.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"quality metric name must be a non-empty string, got {name!r}; choose from "
                         f"{', '.join(QUALITY_SCORER_NAMES)}")  # fmt: skip
    key = name.strip()
    low = key.lower()
    if low == "sharpness":
        if model_path is not None:
            raise ValueError(
                f"the 'sharpness' quality metric uses no model file, got model_path={str(model_path)!r}"
            )
        scorer = SharpnessScorer(score_map=score_map, **kw)
        return scorer.to(device) if device is not None else scorer
    if low == "niqe":
        if model_path is None:
            raise ValueError(f"the 'niqe' quality metric needs model_path. {_NIQE_PARAMS_HINT}")
        return NIQEScorer(model_path, score_map=score_map, **kw)
    if low.startswith("pyiqa:"):
        metric = key.split(":", 1)[1].strip()
        if not metric:
            raise ValueError(
                "'pyiqa:' needs a metric name, e.g. 'pyiqa:topiq_nr-face', 'pyiqa:musiq', 'pyiqa:clipiqa'"
            )
        return PyiqaScorer(metric, device=device, pretrained_model_path=model_path, score_map=score_map, **kw)
    raise ValueError(
        f"unknown quality metric {name!r}; choose from {', '.join(QUALITY_SCORER_NAMES)} "
        "(e.g. 'pyiqa:topiq_nr-face', which needs pip install 'authface[iqa]')"
    )
