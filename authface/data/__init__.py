"""Training and benchmark data for AuthFace.

* :mod:`authface.data.degradations`: synthesise low-quality faces from clean aligned faces (GFPGAN,
  CodeFormer and Real-ESRGAN pipelines), reproducibly from an explicit ``numpy.random.Generator``.
* :mod:`authface.data.prepare`: the library side of ``authface prepare`` (photos -> aligned, deduplicated, scored
  faces + manifest), with its settings (:mod:`.prepare_settings`), captions (:mod:`.captions`), near-duplicate
  index (:mod:`.dedupe`) and dataset card (:mod:`.card`).
* :mod:`authface.data.manifest`: the dataset folder's files and ``read_manifest`` (what training reads).
* :mod:`authface.data.occlusions`: synthetic face masks, old-photo damage and painted strokes with their masks
  (inpainting data).
* :mod:`authface.data.benchmark`: the library side of ``authface degrade`` (replayable synthetic benchmarks).
* :mod:`authface.data.dataset`: manifest records -> training samples (HQ, synthetic LQ, quality, caption, boxes).

Nothing is imported at import time: the names below load their module when first used.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

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
    "MASK_STYLES": "authface.data.occlusions",
    "DAMAGE_KINDS": "authface.data.occlusions",
    "FaceMaskSettings": "authface.data.occlusions",
    "DamageSettings": "authface.data.occlusions",
    "occlude_face": "authface.data.occlusions",
    "damage_photo": "authface.data.occlusions",
    "sample_mask_params": "authface.data.occlusions",
    "apply_mask_params": "authface.data.occlusions",
    "sample_damage_params": "authface.data.occlusions",
    "apply_damage_params": "authface.data.occlusions",
    "PaintSettings": "authface.data.occlusions",
    "paint_strokes": "authface.data.occlusions",
    "sample_paint_params": "authface.data.occlusions",
    "apply_paint_params": "authface.data.occlusions",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
