"""No-reference image quality scores, normalised to [0, 1] (higher is better).

A quality score is used two ways in AuthFace:

1. :class:`~authface.guidance.QualityGuidance` maximises a *differentiable* score of the predicted clean
   image during sampling, so the scorer must give useful gradients;
2. the training "image-quality prior" conditions the model on each training image's normalised score, so that
   at inference a user can ask for quality 0.9. The normalisation must therefore be explicit, documented and
   configurable: that is :class:`ScoreMap`.

Every scorer follows the :class:`QualityScorer` protocol::

    scorer = create_quality_scorer("sharpness")                       # built in, offline, no weights
    scorer = create_quality_scorer("niqe", model_path="niqe_pris_params.npz")   # built in, needs BasicSR's file
    scorer = create_quality_scorer("pyiqa:topiq_nr-face", model_path="topiq_nr-face.pth")  # pip install 'authface[iqa]'
    raw = scorer.raw(images)      # images: [0, 1] RGB (B, 3, H, W) -> (B,) raw metric values
    q = scorer(images)            # (B,) in [0, 1], higher is better: scorer.score_map(scorer.raw(images))

Backends:

* :class:`SharpnessScorer` — log-energy of a Laplacian-of-Gaussian of the luminance at a fixed working
  resolution. Offline, no weights, differentiable, cheap. A sharpness statistic, not a perceptual quality model.
* :class:`NIQEScorer` — NIQE (Mittal et al. 2013) exactly as BasicSR's ``niqe()`` (hence the official MATLAB
  code), written in torch and differentiable. Needs the pristine-model parameter file (no default, no download).
* :class:`PyiqaScorer` — any no-reference metric of `pyiqa <https://github.com/chaofengc/IQA-PyTorch>`_
  (``topiq_nr-face``, ``musiq``, ``clipiqa``, ``maniqa``, ``niqe``, ...). pyiqa downloads weights at run time
  unless ``pretrained_model_path`` (``model_path`` in :func:`create_quality_scorer`) points at a local file:
  pass it for offline use.

Modules: :mod:`.base` (ScoreMap, protocol, input check), :mod:`.sharpness`, :mod:`.niqe`, :mod:`.pyiqa`.
Nothing heavy happens at import time; pyiqa is imported inside :class:`PyiqaScorer`. No function prints.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .base import QualityScorer, ScoreMap, check_images
from .niqe import (
    NIQE_PARAMS_HINT,
    NIQEParams,
    NIQEScorer,
    aggd_fit,
    fit_niqe_params,
    load_niqe_params,
    mscn,
    niqe_features,
)
from .pyiqa import PYIQA_SCORE_MAPS, PyiqaScorer, default_pyiqa_score_map
from .sharpness import SharpnessScorer

__all__ = [
    "NIQE_PARAMS_HINT",
    "PYIQA_SCORE_MAPS",
    "QUALITY_SCORER_NAMES",
    "NIQEParams",
    "NIQEScorer",
    "PyiqaScorer",
    "QualityScorer",
    "ScoreMap",
    "SharpnessScorer",
    "aggd_fit",
    "check_images",
    "create_quality_scorer",
    "default_pyiqa_score_map",
    "fit_niqe_params",
    "load_niqe_params",
    "mscn",
    "niqe_features",
]

#: Names accepted by :func:`create_quality_scorer` (``<metric>`` is any pyiqa no-reference metric).
QUALITY_SCORER_NAMES = ("sharpness", "niqe", "pyiqa:<metric>")


def create_quality_scorer(
    name: str,
    model_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    score_map: ScoreMap | None = None,
    **kw: Any,
) -> QualityScorer:
    """Build a quality scorer by name.

    * ``"sharpness"`` — :class:`SharpnessScorer` (``kw``: working_size, presmooth_sigma, eps); ``model_path``
      must be None.
    * ``"niqe"`` — :class:`NIQEScorer`; ``model_path`` = BasicSR's ``niqe_pris_params.npz`` (required).
    * ``"pyiqa:<metric>"`` — :class:`PyiqaScorer`; ``model_path`` = local weights (pyiqa's
      ``pretrained_model_path``; without it pyiqa downloads them); ``kw``: differentiable and pyiqa options.

    ``score_map`` overrides the backend's default normalisation.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"quality metric name must be a non-empty string, got {name!r}; choose from "
                         f"{', '.join(QUALITY_SCORER_NAMES)}")  # fmt: skip
    key = name.strip()
    low = key.lower()
    if low == "sharpness":
        if model_path is not None:
            raise ValueError(
                f"the 'sharpness' quality metric uses no model file, got model_path={str(model_path)!r}"
            )
        scorer = SharpnessScorer(score_map=score_map, **kw)
        return scorer.to(device) if device is not None else scorer
    if low == "niqe":
        if model_path is None:
            raise ValueError(f"the 'niqe' quality metric needs model_path. {NIQE_PARAMS_HINT}")
        return NIQEScorer(model_path, score_map=score_map, **kw)
    if low.startswith("pyiqa:"):
        metric = key.split(":", 1)[1].strip()
        if not metric:
            raise ValueError(
                "'pyiqa:' needs a metric name, e.g. 'pyiqa:topiq_nr-face', 'pyiqa:musiq', 'pyiqa:clipiqa'"
            )
        return PyiqaScorer(metric, device=device, pretrained_model_path=model_path, score_map=score_map, **kw)
    raise ValueError(
        f"unknown quality metric {name!r}; choose from {', '.join(QUALITY_SCORER_NAMES)} "
        "(e.g. 'pyiqa:topiq_nr-face', which needs pip install 'authface[iqa]')"
    )
