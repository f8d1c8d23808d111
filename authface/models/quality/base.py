"""The common ground of quality scorers: the :class:`ScoreMap` normalisation, the :class:`QualityScorer`
protocol and the input check every scorer runs.

Images are ``[0, 1] RGB (B, 3, H, W)`` floating tensors; raw scores are ``(B,)`` in the metric's own scale;
normalised scores are ``(B,)`` in [0, 1], higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["QualityScorer", "ScoreMap", "check_images"]


@dataclass
class ScoreMap:
    """Map a raw metric value to [0, 1], higher = better.

    ``kind="linear"``: ``(raw - lo) / (hi - lo)`` clipped to [0, 1]. ``lo`` is the raw value that maps to 0 (bad),
    ``hi`` the one that maps to 1 (good); ``hi < lo`` is allowed and inverts the map for lower-is-better metrics
    (NIQE: ``lo=10, hi=2``).

    ``kind="sigmoid"``: ``sigmoid((raw - center) / scale)``; a negative ``scale`` inverts it. Never saturates
    exactly, so it is smooth everywhere and never clips.

    Gradients at the bounds of the linear map: with ``straight_through=True`` (default) the *value* is clipped
    exactly to [0, 1] but the *gradient* is that of the unclipped line, ``1 / (hi - lo)``, everywhere — so
    guidance keeps pushing a sample whose raw score lies outside the calibrated range (an image blurrier than
    ``lo`` would otherwise get no gradient at all, exactly when it needs one). With ``straight_through=False``
    it is a plain clamp: gradient ``1 / (hi - lo)`` strictly inside the range, 0 outside it.

    The map is a plain dataclass: ``dataclasses.asdict(m)`` serialises it (e.g. into a training manifest) and
    ``ScoreMap(**d)`` restores it.
    """

    kind: str = "linear"
    lo: float = 0.0
    hi: float = 1.0
    center: float = 0.0
    scale: float = 1.0
    straight_through: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "sigmoid"):
            raise ValueError(f"ScoreMap.kind must be 'linear' or 'sigmoid', got {self.kind!r}")
        for f in ("lo", "hi", "center", "scale"):
            v = float(getattr(self, f))
            if not math.isfinite(v):
                raise ValueError(f"ScoreMap.{f} must be finite, got {v}")
            setattr(self, f, v)
        if self.kind == "linear" and self.hi == self.lo:
            raise ValueError(f"ScoreMap: linear map needs hi != lo, got lo = hi = {self.lo}")
        if self.kind == "sigmoid" and self.scale == 0.0:
            raise ValueError("ScoreMap: sigmoid map needs scale != 0 (negative scale = lower raw is better)")

    @property
    def lower_better(self) -> bool:
        """True when the map rewards lower raw values (``hi < lo``, or a negative sigmoid ``scale``)."""
        return self.hi < self.lo if self.kind == "linear" else self.scale < 0

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        """raw values (any shape) -> same shape in [0, 1]; floating dtype kept (integers become float32)."""
        raw = torch.as_tensor(raw)
        if not raw.is_floating_point():
            raw = raw.float()
        if self.kind == "sigmoid":
            return torch.sigmoid((raw - self.center) / self.scale)
        t = (raw - self.lo) / (self.hi - self.lo)
        if self.straight_through:
            # value: exactly clamp(t, 0, 1); gradient: d t (t - t.detach() is an exact zero with t's gradient)
            return t.detach().clamp(0.0, 1.0) + (t - t.detach())
        return t.clamp(0.0, 1.0)

    @classmethod
    def fit(
        cls,
        raw_scores: Sequence[float] | np.ndarray | torch.Tensor,
        lower_better: bool = False,
        quantiles: tuple[float, float] = (0.02, 0.98),
    ) -> ScoreMap:
        """A linear map calibrated on a set of raw scores (e.g. a training set for the image-quality prior):
        the ``quantiles[0]`` worst score maps to 0 and the ``quantiles[1]`` best to 1."""
        a = np.asarray(torch.as_tensor(raw_scores).detach().cpu().double().reshape(-1))
        a = a[np.isfinite(a)]
        if a.size < 2:
            raise ValueError(f"ScoreMap.fit needs at least 2 finite scores, got {a.size}")
        q_lo, q_hi = np.quantile(a, [quantiles[0], quantiles[1]])
        if q_hi <= q_lo:
            raise ValueError(
                f"ScoreMap.fit: the scores do not spread (quantiles {quantiles} give {q_lo}, {q_hi})"
            )
        lo, hi = (float(q_hi), float(q_lo)) if lower_better else (float(q_lo), float(q_hi))
        return cls(kind="linear", lo=lo, hi=hi)


@runtime_checkable
class QualityScorer(Protocol):
    """What guidance and dataset preparation need from a no-reference quality metric."""

    name: str
    differentiable: bool
    score_map: ScoreMap

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) raw metric values (the metric's own scale and orientation)."""
        ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) normalised scores in [0, 1], higher is better."""
        ...


def check_images(images: Any, who: str) -> torch.Tensor:
    """Validate a scorer's input and return it unchanged: a floating ``[0, 1]`` RGB tensor ``(B, 3, H, W)``.

    Raises ``TypeError`` for a non-tensor, ``ValueError`` for another shape or an integer dtype; ``who`` names
    the caller in the message.
    """
    if not torch.is_tensor(images):
        raise TypeError(
            f"{who}: images must be a torch.Tensor in [0, 1] RGB (B, 3, H, W), got {type(images).__name__}; "
            "convert numpy uint8 images with authface.io"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{who}: images must have shape (B, 3, H, W) (RGB), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{who}: images must be floating point in [0, 1], got dtype {images.dtype}")
    return images
