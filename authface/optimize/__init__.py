"""Score-guided face optimisation under an identity constraint, and the learned scorers it optimises.

* :mod:`.ratings` — ratings CSV files (``image,rating`` and the other names people use); errors name the line.
* :mod:`.backbones` — frozen face feature extractors for scorers; identity models for the constraint.
* :mod:`.scorer` — :func:`train_scorer`, :func:`load_scorer`: a regression head on frozen features
  (``[0, 1]`` RGB ``(B, 3, H, W)`` -> ``(B,)``), usable as ``ScoreGuidance(module=...)``.
* :mod:`.search` — :class:`FaceSearch`: ``score - λ·max(0, τ - identity) - μ·‖offset‖`` by CMA-ES over a latent
  offset and by gradient guidance; resumable JSONL trajectory.
* :mod:`.photo` — whole photos (face stage + paste-back) and aligned crops.
* :mod:`.report` — the outputs: best image with its metadata, trade-off plot, side-by-side.

The CLI is ``authface train-scorer`` and ``authface optimize``; the method is described in docs/optimize.md.
Heavy or optional dependencies (``cma``, ``matplotlib``, ``scipy``, dlib's weights) are imported when used.
"""

from .ratings import Rating, RatingsError, read_ratings
from .scorer import ImageScorer, ScorerSettings, load_scorer, train_scorer
from .search import FaceResult, FaceSearch, Objective, OptimizeSettings, ResumeError

__all__ = [
    "FaceResult",
    "FaceSearch",
    "ImageScorer",
    "Objective",
    "OptimizeSettings",
    "Rating",
    "RatingsError",
    "ResumeError",
    "ScorerSettings",
    "load_scorer",
    "read_ratings",
    "train_scorer",
]
