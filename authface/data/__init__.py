"""Training and benchmark data for AuthFace.

* :mod:`authface.data.degradations`: synthesise low-quality faces from clean aligned faces (GFPGAN,
  CodeFormer and Real-ESRGAN pipelines), reproducibly from an explicit ``numpy.random.Generator``.
* :mod:`authface.data.prepare`: the library side of ``authface prepare`` (photos -> aligned, deduplicated, scored
  faces + manifest), with its settings (:mod:`.prepare_settings`), captions (:mod:`.captions`), near-duplicate
  index (:mod:`.dedupe`) and dataset card (:mod:`.card`).
* :mod:`authface.data.manifest`: the dataset folder's files and ``read_manifest`` (what training reads).
* :mod:`authface.data.dataset`: manifest records -> training samples (HQ, synthetic LQ, quality, caption, boxes).

Nothing is imported at import time: the names below load their module when first used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "DegradationConfig": "authface.data.degradations",
    "PRESETS": "authface.data.degradations",
    "degrade": "authface.data.degradations",
    "degrade_from_params": "authface.data.degradations",
    "get_preset": "authface.data.degradations",
    "sample_params": "authface.data.degradations",
    "ManifestError": "authface.data.manifest",
    "read_manifest": "authface.data.manifest",
    "PrepareError": "authface.data.prepare_settings",
    "PrepareSettings": "authface.data.prepare_settings",
    "prepare_dataset": "authface.data.prepare",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'authface.data' has no attribute {name!r}")
