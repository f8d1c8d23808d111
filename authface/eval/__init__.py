"""Evaluation: metrics and reports (``authface eval``) for restored faces.

* :mod:`.fr`: PSNR / SSIM (torchmetrics or scikit-image); :mod:`.lpips`: LPIPS from local weights, no torchvision;
  :mod:`.fid`: FID / KID from a local TorchScript Inception; :mod:`.face_metrics`: identity (IDS / Deg with the dlib
  or ArcFace judge) and landmark distance (LMD, dlib); :mod:`.nr`: NIQE / sharpness / pyiqa no-reference scores and
  the NTIRE 2025 score.
* :mod:`.registry`: :class:`MetricOptions` and ``build_metrics`` (metric names -> metric objects);
  :mod:`.base`: ``Column`` and the ``Metric`` interface.
* :mod:`.masks`: inpainting masks (checked by ``read_mask``) and PSNR / SSIM / L1 / LPIPS inside and outside them.
* :mod:`.pairing`: folder pairing and input checks; :mod:`.baselines`: non-learned baselines;
  :mod:`.evaluate`: :func:`evaluate` -> :class:`EvalResult` (:mod:`.result`).
* :mod:`.report`: Markdown / CSV / JSON reports; :mod:`.gallery`: the HTML gallery; :mod:`.plots`: plots.

Synthetic benchmarks (``authface degrade``) are built by :func:`authface.data.benchmark.build_benchmark`; the
command-line side of both commands lives in :mod:`authface.cli.degrade` and :mod:`authface.cli.evaluate`.

Nothing is imported at import time: the names below load their module when first used.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

_LAZY = {
    "evaluate": "authface.eval.evaluate",
    "EvalResult": "authface.eval.result",
    "MetricOptions": "authface.eval.registry",
    "PairingError": "authface.eval.pairing",
    "EvalInputError": "authface.eval.pairing",
    "pair_folders": "authface.eval.pairing",
    "make_baseline": "authface.eval.baselines",
    "psnr": "authface.eval.fr",
    "ssim": "authface.eval.fr",
    "read_mask": "authface.eval.masks",
    "region_scores": "authface.eval.masks",
    "MaskError": "authface.eval.masks",
    "landmark_distance": "authface.eval.face_metrics",
    "frechet_distance": "authface.eval.fid",
    "ntire2025_score": "authface.eval.nr",
    "write_report": "authface.eval.report",
    "summary_table": "authface.eval.report",
    "build_benchmark": "authface.data.benchmark",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
