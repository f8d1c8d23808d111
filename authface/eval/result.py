"""What an evaluation produces (:class:`EvalResult`) and how per-image records become summaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Column
from .baselines import Baseline, target_size
from .pairing import Pairing

__all__ = ["EvalResult", "Timer", "summarize"]


@dataclass
class EvalResult:
    """Everything :mod:`authface.eval.report` needs.

    ``records``: one dict per (method, image): ``method, key, subset`` + one value per column (NaN when it could
    not be computed) + ``deg_*`` degradation factors when the benchmark metadata is known. ``summary``: one dict per
    (method, subset) with ``n`` and ``{column: {"mean", "std", "n"}}`` (std: sample standard deviation, ddof 1).
    ``set_metrics``: ``{method: {"FID": ..., "KID": ..., "NTIRE2025": ...}}`` (all images). ``throughput``:
    ``{metric: {"images", "seconds", "images_per_s"}}``. ``method_kinds``: ``prediction``, ``baseline`` or
    ``reference`` (the GT row).
    """

    methods: list[str]
    method_kinds: dict[str, str]
    method_desc: dict[str, str]
    columns: list[Column]
    set_columns: list[Column]
    records: list[dict]
    summary: list[dict]
    set_metrics: dict[str, dict[str, float]]
    metric_info: dict[str, str]
    unavailable: dict[str, str]
    throughput: dict[str, dict[str, float]]
    warnings: list[str]
    settings: dict[str, Any]
    pairing: Pairing
    subsets: list[str]
    baselines: dict[str, Baseline] = field(default_factory=dict, repr=False)
    max_pixels: int | None = None

    def image(self, method: str, key: str) -> np.ndarray | None:
        """The uint8 RGB image ``method`` produced for ``key`` (read, or recomputed for a baseline); None when
        unknown. ``method`` may also be ``"GT"`` or ``"LQ"``."""
        from authface import io

        mp = self.max_pixels or io.DEFAULT_MAX_PIXELS
        p = self.pairing
        if method in self.baselines:
            if p.lq is None or key not in p.lq:
                return None
            lq = io.read_image(p.lq[key], max_pixels=mp).rgb
            gt = io.read_image(p.gt[key], max_pixels=mp).rgb if p.gt and key in p.gt else None
            return self.baselines[method].fn(lq, target_size(lq, gt))
        paths = p.preds.get(method)
        if paths is None:
            paths = {"GT": p.gt, "LQ": p.lq}.get(method)
        if not paths or key not in paths:
            return None
        return io.read_image(paths[key], max_pixels=mp).rgb

    def column(self, name: str) -> Column | None:
        """The per-image or dataset-level column called ``name``."""
        return next((c for c in [*self.columns, *self.set_columns] if c.name == name), None)

    def entry(self, method: str, subset: str = "all") -> dict | None:
        """The summary entry of ``method`` on ``subset`` (None when the method has no image there)."""
        return next((e for e in self.summary if e["method"] == method and e["subset"] == subset), None)

    def label(self, method: str) -> str:
        """``method``, with ``(baseline)`` or ``(reference)`` appended for those kinds."""
        kind = self.method_kinds.get(method, "prediction")
        return f"{method} ({kind})" if kind in ("baseline", "reference") else method


class Timer:
    """Seconds and images per step, summed over calls (for the throughput table)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.images: dict[str, int] = {}

    def add(self, name: str, seconds: float, images: int = 0) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.images[name] = self.images.get(name, 0) + images


def summarize(
    records: Sequence[dict], methods: Sequence[str], columns: Sequence[Column], subsets: Sequence[str]
) -> list[dict]:
    """One entry per (method, subset) with ``n`` and ``{column: {"mean", "std" (ddof 1), "n"}}`` over finite
    values; subset ``"all"`` takes every record of the method."""
    out = []
    for m in methods:
        rows = [r for r in records if r["method"] == m]
        for s in subsets:
            sub = rows if s == "all" else [r for r in rows if r["subset"] == s]
            if not sub:
                continue
            entry: dict[str, Any] = {"method": m, "subset": s, "n": len(sub)}
            for c in columns:
                v = np.array([r.get(c.name, np.nan) for r in sub], dtype=np.float64)
                v = v[np.isfinite(v)]
                if v.size:
                    entry[c.name] = {
                        "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
                    }  # fmt: skip
            out.append(entry)
    return out
