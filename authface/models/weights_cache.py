"""The one reader of converted-weight caches (safetensors files written next to their source or in the user cache).

dlib's ResNet, insightface ONNX recognisers and Real-ESRGAN's ncnn weights are converted once and cached; a cache
file carries ``format`` and a source key in its metadata. :func:`read_cached_tensors` returns its tensors only when
both match, and treats a damaged file as absent (logged): a cache is rebuilt, never fatal.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def read_cached_tensors(path: Path, expect: dict[str, str], what: str) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``(tensors, metadata)`` of the cache at ``path`` when its metadata has every ``expect`` item; else None
    (absent, stale or unreadable; the last two are logged as warnings naming ``what``)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if any(meta.get(k) != v for k, v in expect.items()):
                logger.warning("ignoring cached %s %s: stale (made from another source or version)", what, path)
                return None
            return {name: f.get_tensor(name) for name in f.keys()}, meta
    except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
        logger.warning("ignoring cached %s %s: unreadable (%s)", what, path, exc)
        return None
