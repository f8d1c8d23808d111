"""Whole photos (face stage + paste-back) and aligned crops through :class:`~.search.FaceSearch`.

    stage, pipe = restorer.stage, restorer.pipeline          # authface.restorer.FaceRestorer
    result = optimize_photo(rgb, stage, lambda crop, i: FaceSearch(pipe, crop, scorer, identity, settings,
                                                                   sample, face=i), "out/photo.trajectory.jsonl")
    result.image                     # uint8 RGB (H, W, 3): every face optimised and pasted back
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..face.stage import AlignedFace, FaceStage
from .search import FaceResult, FaceSearch, SearchCallback

__all__ = ["NoFaceError", "OptimizedPhoto", "optimize_photo"]


class NoFaceError(ValueError):
    """The photo has no face to optimise."""


@dataclass
class OptimizedPhoto:
    """``image``: the photo with every face's best crop pasted back (with ``aligned`` stages: the crop itself);
    ``baseline``: the same with the baseline crops (plain restoration, no offset, no guidance), uint8 RGB
    ``(H, W, 3)``; ``faces``: per face, its :class:`FaceResult`; ``aligned``: the faces' aligned crops."""

    image: np.ndarray
    baseline: np.ndarray
    faces: list[FaceResult]
    aligned: list[AlignedFace]


def optimize_photo(
    rgb: np.ndarray,
    stage: FaceStage,
    make_search: Callable[[np.ndarray, int], FaceSearch],
    trajectory: str | Path | None = None,
    callback: SearchCallback | None = None,
) -> OptimizedPhoto:
    """Detect and align the faces of ``rgb`` (uint8 RGB ``(H, W, 3)``), optimise each (``make_search(crop,
    index)``), and paste the results back at the photo's size.

    Raises:
        NoFaceError: the stage found no face. Whatever the search raised (e.g. ``ResumeError``).
    """
    aligned = stage.align(rgb)
    if not aligned:
        raise NoFaceError("no face found (for an aligned face crop, use --aligned)")
    faces = [make_search(a.crop, i).run(trajectory, callback) for i, a in enumerate(aligned)]
    image = stage.paste(rgb, [f.best for f in faces], aligned)
    baseline = stage.paste(rgb, [f.baseline for f in faces], aligned)
    return OptimizedPhoto(image, baseline, faces, aligned)
