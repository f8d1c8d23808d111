"""Colour correction of restored faces against their input.

Diffusion decoders drift in colour; restorers (StableSR, DiffBIR) fix it by taking the low frequencies (or the
channel statistics) of the input. No maintained library ships these two small operations, so they are written
here, on ``[-1, 1] RGB (B, 3, H, W)`` tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import ColorFix, choices

#: Colour-fix names (``authface.config.ColorFix``).
COLOR_FIXES = choices(ColorFix)


def adain_color_fix(target: torch.Tensor, source: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give ``target`` the per-channel mean and std of ``source`` (both (B, 3, H, W), same range)."""
    t_mean, t_std = target.mean((2, 3), keepdim=True), target.std((2, 3), keepdim=True)
    s_mean, s_std = source.mean((2, 3), keepdim=True), source.std((2, 3), keepdim=True)
    return (target - t_mean) / (t_std + eps) * s_std + s_mean


def _wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    # 3x3 B-spline-like kernel, dilated by `radius` (à trous), replicate padding. (B, C, H, W) -> same shape.
    k = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=x.dtype, device=x.device) / 16.0
    k = k.expand(x.shape[1], 1, 3, 3)
    x = F.pad(x, (radius,) * 4, mode="replicate")
    return F.conv2d(x, k, groups=x.shape[1], dilation=radius)


def _wavelet_decompose(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into (high frequencies, low frequencies) with an à-trous wavelet of ``levels`` levels."""
    high = torch.zeros_like(x)
    for i in range(levels):
        low = _wavelet_blur(x, 2**i)
        high = high + (x - low)
        x = low
    return high, x


def wavelet_color_fix(target: torch.Tensor, source: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """High frequencies of ``target`` + low frequencies (colour, shading) of ``source``; (B, 3, H, W)."""
    if source.shape[-2:] != target.shape[-2:]:
        source = F.interpolate(source, size=target.shape[-2:], mode="bicubic", align_corners=False)
    high, _ = _wavelet_decompose(target, levels)
    _, low = _wavelet_decompose(source, levels)
    return high + low


def apply_color_fix(method: str | None, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Apply colour fix ``method`` (one of :data:`COLOR_FIXES`, or None = "none") to ``target`` against
    ``source`` (both (B, 3, H, W), same range). Raises ValueError for an unknown method."""
    if method in (None, "none"):
        return target
    if method == "wavelet":
        return wavelet_color_fix(target, source)
    if method == "adain":
        return adain_color_fix(target, source)
    raise ValueError(f"color_fix must be one of {', '.join(COLOR_FIXES)}; got {method!r}")
