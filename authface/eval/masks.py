"""Inpainting masks in evaluation: reading and checking mask files, and metrics inside / outside the mask.

A mask is an image of the size of its GT, **white (255) = the region that was filled** (occluded, damaged), black
(0) = known pixels; masks pair with the images by relative path, extension ignored (``mask/a/b.png`` for
``gt/a/b.jpg``), like every folder of :mod:`authface.eval.pairing`. RGB masks are read as their luma (alpha is
ignored). :func:`read_mask` refuses, with one message naming the file and the fix:

* an unreadable file;
* a mask of another size than its image (masks are never resized: a resized mask no longer marks the same pixels);
* a mask that is not binary: more than :data:`MAX_GRAY_FRACTION` of its pixels between :data:`BLACK_MAX` and
  :data:`WHITE_MIN` (a photo, a soft/feathered mask). A mask with fewer such pixels -- the ringing of a JPEG-saved
  mask, a resampled edge -- is thresholded at 128 (``>= 128`` is inside) with a warning naming the file;
* an empty mask (nothing to fill) and a full mask (nothing outside it to compare).

Region metrics (:func:`region_scores`, :class:`RegionMetric`; uint8 RGB in, float64 out), for the masked region
``M`` and its complement, each image on its own:

* PSNR (dB): ``10 log10(255^2 / MSE)`` with the MSE over the region's pixels and the 3 channels, capped at
  :data:`~authface.eval.fr.PSNR_CAP_DB` (identical regions);
* SSIM: the mean of the SSIM map (:func:`~authface.eval.fr.ssim_map`: Gaussian 11x11, sigma 1.5, channel mean)
  over the region's pixels inside the valid area (5 px image border dropped); the windows of boundary pixels
  straddle the mask edge, so a seam counts on both sides;
* L1: mean absolute difference on the ``[0, 1]`` scale (``|pred - gt| / 255``) over the region's pixels and
  channels;
* LPIPS: the mean of LPIPS' spatial distance map (``LPIPSNet(..., spatial=True)``) over the region.

An empty region (after the SSIM border) gives NaN.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from authface.io.mask import BLACK_MAX, MAX_GRAY_FRACTION, WHITE_MIN, MaskError, read_mask

from .base import Column, Metric
from .common import groups_by_shape
from .fr import PSNR_CAP_DB, as_batch, ssim_map

__all__ = [
    "BLACK_MAX",
    "MASK_DIR_NAMES",
    "MAX_GRAY_FRACTION",
    "REGION_KINDS",
    "WHITE_MIN",
    "MaskError",
    "RegionMetric",
    "find_mask_dir",
    "read_mask",
    "region_columns",
    "region_scores",
]

#: Folders next to a benchmark's ``lq/`` that hold its masks (``authface degrade`` writes ``mask/``).
MASK_DIR_NAMES = ("mask", "masks")
#: Region metrics: key -> (column base name, higher is better, unit, format).
REGION_KINDS = {
    "psnr": ("PSNR", True, "dB", ".2f"),
    "ssim": ("SSIM", True, "", ".4f"),
    "l1": ("L1", False, "", ".4f"),
    "lpips": ("LPIPS", False, "", ".4f"),
}


def find_mask_dir(lq: str | os.PathLike | None) -> Path | None:
    """The masks of a benchmark: ``mask/`` (or ``masks/``) next to an ``lq/`` folder; None when there is none."""
    if lq is None:
        return None
    parent = Path(lq).expanduser().resolve().parent
    if Path(lq).name != "lq":
        return None
    return next((parent / n for n in MASK_DIR_NAMES if (parent / n).is_dir()), None)


def _region_means(values: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Means of ``values`` (H, W[, C]) over ``mask`` (H, W) and its complement (NaN when empty)."""
    inside, outside = values[mask], values[~mask]
    return (
        float(inside.mean()) if inside.size else float("nan"),
        float(outside.mean()) if outside.size else float("nan"),
    )


def _psnr_of(mse: float, cap: float | None) -> float:
    if not np.isfinite(mse):
        return float("nan")
    value = float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
    return min(value, float(cap)) if cap is not None else value


def region_scores(
    pred: Any,
    target: Any,
    mask: np.ndarray,
    kinds: Sequence[str] = ("psnr", "ssim", "l1"),
    *,
    backend: str = "auto",
    device: str = "cpu",
    lpips_model: Any = None,
    cap: float | None = PSNR_CAP_DB,
) -> dict[str, tuple[float, float]]:
    """Scores of one prediction inside and outside ``mask``: ``{kind: (in mask, outside)}``.

    Args:
        pred, target: uint8 RGB ``(H, W, 3)``.
        mask: bool ``(H, W)``, True = the filled region (:func:`read_mask`).
        kinds: among :data:`REGION_KINDS` (``lpips`` needs ``lpips_model``, an ``LPIPSNet``).
        backend, device: the SSIM implementation (:func:`~authface.eval.fr.resolve_fr_backend`).

    Raises:
        ValueError: shapes that differ, non-uint8 images, an unknown kind, ``lpips`` without a model.
    """
    p, t = as_batch(pred, "region_scores")[0], as_batch(target, "region_scores")[0]
    mask = np.asarray(mask, dtype=bool)
    if p.shape != t.shape or mask.shape != p.shape[:2]:
        raise ValueError(
            f"region_scores: prediction {p.shape}, target {t.shape}, mask {mask.shape} differ in size"
        )
    out: dict[str, tuple[float, float]] = {}
    diff = p.astype(np.float64) - t.astype(np.float64)
    for kind in kinds:
        if kind == "psnr":
            mse_in, mse_out = _region_means(diff**2, mask)
            out[kind] = (_psnr_of(mse_in, cap), _psnr_of(mse_out, cap))
        elif kind == "l1":
            out[kind] = _region_means(np.abs(diff) / 255.0, mask)
        elif kind == "ssim":
            smap = ssim_map(p, t, backend=backend, device=device)[0]
            out[kind] = _region_means(smap, mask[5:-5, 5:-5])
        elif kind == "lpips":
            if lpips_model is None:
                raise ValueError("region_scores: lpips needs lpips_model (authface.eval.lpips.load_lpips)")
            out[kind] = _region_means(_lpips_map(lpips_model, [p], [t], device)[0], mask)
        else:
            raise ValueError(f"unknown region metric {kind!r}; choose among {', '.join(REGION_KINDS)}")
    return out


def _lpips_map(
    model: Any, preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], device: str
) -> np.ndarray:
    """LPIPS spatial maps of equal-size uint8 RGB images: float64 (B, H, W)."""
    import torch

    from authface.io import numpy_to_tensor

    a = numpy_to_tensor(list(preds)).to(device)
    b = numpy_to_tensor(list(targets)).to(device)
    with torch.no_grad():
        return model(a, b, spatial=True).double().cpu().numpy()


def region_columns(kind: str) -> tuple[Column, Column]:
    """The two report columns of a region metric: ``"<NAME> (mask)"`` and ``"<NAME> (unmasked)"``."""
    name, hb, unit, fmt = REGION_KINDS[kind]
    return Column(f"{name} (mask)", hb, unit, fmt), Column(f"{name} (unmasked)", hb, unit, fmt)


class RegionMetric(Metric):
    """One of :data:`REGION_KINDS` inside the mask and outside it; targets are ``(gt, bool mask)`` pairs
    (``needs = "mask"``: :func:`authface.eval.evaluate` pairs every GT with its checked mask)."""

    needs = "mask"

    def __init__(self, kind: str, backend: str = "auto", device: str = "cpu", lpips_model: Any = None,
                 crop_border: int = 0, base_info: str = ""):  # fmt: skip
        if kind not in REGION_KINDS:
            raise ValueError(f"unknown region metric {kind!r}; choose among {', '.join(REGION_KINDS)}")
        self.kind, self.key = kind, f"{kind}_region"
        self.backend, self.device, self.lpips_model = backend, device, lpips_model
        self.crop_border = int(crop_border)
        self.columns = region_columns(kind)
        where = {
            "psnr": f"MSE over the region's pixels and channels, capped at {PSNR_CAP_DB:g} dB",
            "ssim": "mean of the SSIM map over the region (valid area: 5 px border dropped)",
            "l1": "mean |pred - GT| / 255 over the region's pixels and channels",
            "lpips": "mean of LPIPS' spatial map (layers upsampled bilinearly) over the region",
        }[kind]
        self.info = (
            f"inside the mask (white) / outside it: {where}"
            + (f"; {base_info}" if base_info else "")
            + (f"; crop border {self.crop_border}" if self.crop_border else "")
        )

    def _crop(self, x: np.ndarray) -> np.ndarray:
        b = self.crop_border
        return x[b:-b, b:-b] if b > 0 else x

    def compute(self, preds, targets):
        cin, cout = (c.name for c in self.columns)
        out = {cin: np.full(len(preds), np.nan), cout: np.full(len(preds), np.nan)}
        if self.kind == "lpips":  # batched: one network pass per group of equal sizes
            for idx in groups_by_shape(preds):
                maps = _lpips_map(self.lpips_model, [self._crop(preds[i]) for i in idx],
                                  [self._crop(targets[i][0]) for i in idx], self.device)  # fmt: skip
                for j, i in enumerate(idx):
                    out[cin][i], out[cout][i] = _region_means(maps[j], self._crop(targets[i][1]))
            return out
        for i, (pred, (gt, mask)) in enumerate(zip(preds, targets)):
            vin, vout = region_scores(
                self._crop(pred), self._crop(gt), self._crop(mask), (self.kind,), backend=self.backend,
                device=self.device,
            )[self.kind]  # fmt: skip
            out[cin][i], out[cout][i] = vin, vout
        return out
