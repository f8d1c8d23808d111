"""Small helpers shared by the evaluation modules: package versions, optional-package checks, batching by shape."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EVAL_HINT",
    "dlib_version",
    "groups_by_shape",
    "have_module",
    "json_safe",
    "package_version",
    "to_torch_nchw",
]

#: How to install the evaluation extra (named in ImportErrors).
EVAL_HINT = "pip install 'authface[eval]'"


def package_version(dist: str) -> str:
    """Installed version of the distribution ``dist``, ``"?"`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def dlib_version() -> str:
    """dlib's version, whether it came from ``dlib`` or the ``dlib-bin`` wheel (``"?"`` when neither)."""
    return package_version("dlib-bin") if package_version("dlib") == "?" else package_version("dlib")


def have_module(module: str) -> bool:
    """Whether ``module`` can be imported (found, and not a stray namespace folder), without importing it."""
    try:
        spec = importlib.util.find_spec(module)
        return spec is not None and spec.origin is not None
    except (ImportError, ValueError):
        return False


def groups_by_shape(images: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``images`` grouped by shape, in first-seen order (so variable-size batches can be stacked)."""
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return list(groups.values())


def to_torch_nchw(x: np.ndarray, dtype, device: str = "cpu"):
    """float ``(B, H, W, C)`` numpy -> torch ``(B, C, H, W)`` of ``dtype`` (a metric-internal layout change)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device=device, dtype=dtype)


def json_safe(v: Any) -> Any:
    """``v`` with non-finite floats as None, numpy scalars as Python numbers, paths as strings (recursively)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return json_safe(v.item())
    if isinstance(v, Path):
        return str(v)
    return v
