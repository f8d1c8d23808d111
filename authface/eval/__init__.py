"""Evaluation: synthetic benchmarks (``authface degrade``), metrics and reports (``authface eval``).

* :mod:`authface.eval.metrics`: PSNR / SSIM (torchmetrics or scikit-image), LPIPS (local weights), identity
  (IDS / Deg with the dlib or ArcFace judge), landmark distance (LMD, dlib), NIQE / sharpness / pyiqa no-reference
  scores, FID / KID (local TorchScript Inception), the NTIRE 2025 score; folder pairing, baselines and
  :func:`~authface.eval.metrics.evaluate`.
* :mod:`authface.eval.report`: Markdown / CSV / JSON reports, HTML gallery, plots.
* :mod:`authface.eval.commands`: :func:`~authface.eval.commands.build_benchmark` and the ``degrade`` / ``eval``
  subcommands (``add_degrade_parser``, ``add_eval_parser``).

Nothing is imported at import time: the names below load their module when first used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "evaluate": "authface.eval.metrics",
    "EvalResult": "authface.eval.metrics",
    "MetricOptions": "authface.eval.metrics",
    "PairingError": "authface.eval.metrics",
    "EvalInputError": "authface.eval.metrics",
    "pair_folders": "authface.eval.metrics",
    "make_baseline": "authface.eval.metrics",
    "psnr": "authface.eval.metrics",
    "ssim": "authface.eval.metrics",
    "landmark_distance": "authface.eval.metrics",
    "frechet_distance": "authface.eval.metrics",
    "ntire2025_score": "authface.eval.metrics",
    "write_report": "authface.eval.report",
    "summary_table": "authface.eval.report",
    "build_benchmark": "authface.eval.commands",
    "add_degrade_parser": "authface.eval.commands",
    "add_eval_parser": "authface.eval.commands",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'authface.eval' has no attribute {name!r}")
