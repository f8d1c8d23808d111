"""The two shapes every metric shares: a reported :class:`Column` and the per-image :class:`Metric` interface."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Column", "Metric"]


@dataclass(frozen=True)
class Column:
    """One reported number: ``name`` (header), direction, unit and format."""

    name: str
    higher_better: bool
    unit: str = ""
    fmt: str = ".4f"

    @property
    def arrow(self) -> str:
        """``"↑"`` when higher is better, ``"↓"`` otherwise."""
        return "↑" if self.higher_better else "↓"

    def format(self, value: Any) -> str:
        """``value`` with this column's format; ``"—"`` for None and non-finite values."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "—"
        return format(float(value), self.fmt)


class Metric:
    """A per-image metric: ``compute(preds, targets) -> {column: (B,) float64}``.

    ``needs``: ``"gt"`` (pixel-aligned ground truth), ``"id"`` (identity target: GT, reference or LQ) or ``"none"``.
    ``target(images)`` turns target images into what ``compute`` compares against (default: the images; identity
    embeddings and landmarks are computed once per target and cached by :func:`authface.eval.evaluate`).
    Predictions are ``uint8`` RGB ``(H, W, 3)`` arrays.
    """

    key = ""
    needs = "none"
    columns: tuple[Column, ...] = ()
    info = ""

    def target(self, images: Sequence[np.ndarray]) -> list:
        return list(images)

    def compute(self, preds: Sequence[np.ndarray], targets: Sequence[Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def precomputes_targets(self) -> bool:
        """Whether :meth:`target` does more than return the images (so its results are worth caching)."""
        return type(self).target is not Metric.target
