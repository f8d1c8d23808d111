"""Training and benchmark data for AuthFace.

* :mod:`authface.data.degradations`: synthesise low-quality faces from clean aligned faces (GFPGAN,
  CodeFormer and Real-ESRGAN pipelines), reproducibly from an explicit ``numpy.random.Generator``.
* :mod:`authface.data.prepare`: ``authface prepare`` (photos -> aligned, deduplicated, scored faces + manifest)
  and ``read_manifest``.

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
    "ManifestError": "authface.data.prepare",
    "prepare_dataset": "authface.data.prepare",
    "read_manifest": "authface.data.prepare",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'authface.data' has no attribute {name!r}")
