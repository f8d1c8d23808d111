"""Optional glue to `pyiqa <https://github.com/chaofengc/IQA-PyTorch>`_: any no-reference metric as a scorer.

pyiqa (and the torchvision it pulls) is imported only when a :class:`PyiqaScorer` is built; the missing package
raises an ImportError naming the ``iqa`` extra. pyiqa downloads weights at run time unless
``pretrained_model_path`` points at a local file: pass it for offline use.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from .base import ScoreMap, check_images

__all__ = ["PYIQA_SCORE_MAPS", "PyiqaScorer", "default_pyiqa_score_map"]

logger = logging.getLogger(__name__)

_IQA_HINT = "pip install 'authface[iqa]'"

#: Default raw ranges ``(worst, best)`` of common pyiqa no-reference metrics, used as linear ScoreMaps when the
#: caller passes none. They follow pyiqa's documented output ranges (``pyiqa.list_models``/model cards); for
#: NIQE-family metrics, whose nominal range is open-ended, the practical range of natural photos is used.
#: Refit with :meth:`ScoreMap.fit` on your own data when the score conditions a model.
PYIQA_SCORE_MAPS: dict[str, tuple[float, float]] = {
    "topiq_nr": (0.0, 1.0),
    "topiq_nr-face": (0.0, 1.0),
    "topiq_nr_swin-face": (0.0, 1.0),
    "topiq_nr-flive": (0.0, 1.0),
    "topiq_nr-spaq": (0.0, 1.0),
    "musiq": (0.0, 100.0),
    "musiq-koniq": (0.0, 100.0),
    "musiq-spaq": (0.0, 100.0),
    "musiq-paq2piq": (0.0, 100.0),
    "musiq-ava": (1.0, 10.0),
    "clipiqa": (0.0, 1.0),
    "clipiqa+": (0.0, 1.0),
    "maniqa": (0.0, 1.0),
    "maniqa-kadid": (0.0, 1.0),
    "maniqa-pipal": (0.0, 1.0),
    "hyperiqa": (0.0, 1.0),
    "dbcnn": (0.0, 1.0),
    "arniqa": (0.0, 1.0),
    "qualiclip": (0.0, 1.0),
    "qualiclip+": (0.0, 1.0),
    "liqe": (1.0, 5.0),
    "liqe_mix": (1.0, 5.0),
    "nima": (1.0, 10.0),
    "paq2piq": (0.0, 100.0),
    "tres": (0.0, 100.0),
    "niqe": (10.0, 2.0),
    "niqe_matlab": (10.0, 2.0),
    "ilniqe": (60.0, 15.0),
    "brisque": (100.0, 0.0),
    "brisque_matlab": (100.0, 0.0),
    "piqe": (100.0, 0.0),
}


def _parse_score_range(text: Any) -> tuple[float, float] | None:
    """pyiqa's ``score_range`` strings ("0, 1", "~0, ~100") -> (min, max); None if open-ended or unparsable."""
    if not isinstance(text, str):
        return None
    parts = [p.strip().lstrip("~").strip() for p in text.split(",")]
    if len(parts) != 2 or not all(re.fullmatch(r"-?\d+(\.\d+)?", p) for p in parts):
        return None
    a, b = float(parts[0]), float(parts[1])
    return (a, b) if b > a else None


def default_pyiqa_score_map(metric_name: str, lower_better: bool, score_range: Any = None) -> ScoreMap:
    """The ScoreMap used for ``pyiqa:<metric_name>`` when none is given.

    Known metrics use :data:`PYIQA_SCORE_MAPS`; others fall back to the metric's own ``score_range`` (pyiqa ≥ 0.1.12)
    and then to [0, 1]; the fallbacks are oriented by ``lower_better`` (logged as a warning: calibrate them).
    """
    if metric_name in PYIQA_SCORE_MAPS:
        worst, best = PYIQA_SCORE_MAPS[metric_name]
        if (best < worst) != bool(lower_better):
            logger.warning("pyiqa metric %r: lower_better=%s disagrees with AuthFace's default map; using pyiqa's "
                           "orientation", metric_name, lower_better)  # fmt: skip
            worst, best = best, worst
        return ScoreMap(kind="linear", lo=worst, hi=best)
    rng = _parse_score_range(score_range)
    if rng is None:
        logger.warning("pyiqa metric %r: no known score range (%r); normalising as if it were [0, 1] — pass a "
                       "ScoreMap calibrated on your data", metric_name, score_range)  # fmt: skip
        rng = (0.0, 1.0)
    else:
        logger.warning("pyiqa metric %r: no AuthFace default ScoreMap; using pyiqa's nominal range %s",
                       metric_name, rng)  # fmt: skip
    lo, hi = (rng[1], rng[0]) if lower_better else rng
    return ScoreMap(kind="linear", lo=lo, hi=hi)


class PyiqaScorer:
    """Any pyiqa no-reference metric as a :class:`QualityScorer`.

    Wraps ``pyiqa.create_metric(metric_name, as_loss=differentiable, device=device,
    pretrained_model_path=...)``. With ``differentiable=True`` the metric is created as a loss (gradients enabled)
    with ``loss_reduction="none"`` so it still returns one value per image; otherwise it runs without gradients.

    Weights: without ``pretrained_model_path`` pyiqa downloads the metric's weights on first use (to its cache,
    ``~/.cache/torch/hub/pyiqa``), which fails offline; pass a local weights file for offline use (for
    ``niqe`` in pyiqa that is its ``.mat`` parameter file, or use the built-in :class:`NIQEScorer`).

    Orientation comes from the metric's ``lower_better``; the default map is :func:`default_pyiqa_score_map`.
    Inputs are clamped to [0, 1] (pyiqa rejects values outside it).
    """

    def __init__(
        self,
        metric_name: str,
        device: str | torch.device | None = None,
        differentiable: bool = True,
        pretrained_model_path: str | os.PathLike | None = None,
        score_map: ScoreMap | None = None,
        **metric_kwargs: Any,
    ):
        try:
            import pyiqa
        except ImportError as exc:
            raise ImportError(
                f"the quality metric 'pyiqa:{metric_name}' needs pyiqa, which is not installed: {_IQA_HINT} "
                "(it pulls torchvision; install the torch/torchvision pair for your platform first). The built-in "
                "metrics need nothing extra: 'sharpness', or 'niqe' with its parameter file."
            ) from exc
        kwargs = dict(metric_kwargs)
        if pretrained_model_path is not None:
            p = Path(pretrained_model_path).expanduser()
            if not p.is_file():
                raise FileNotFoundError(
                    f"pyiqa:{metric_name}: pretrained_model_path {str(p)!r} is not a file"
                )
            kwargs["pretrained_model_path"] = str(p)
        if differentiable:
            kwargs.setdefault("loss_reduction", "none")
        try:
            metric = pyiqa.create_metric(metric_name, as_loss=bool(differentiable), device=device, **kwargs)
        except (AssertionError, KeyError) as exc:
            raise ValueError(
                f"pyiqa has no metric {metric_name!r} ({exc}); list the no-reference ones with "
                "`python -c \"import pyiqa; print(pyiqa.list_models(metric_mode='NR'))\"`"
            ) from exc
        mode = getattr(metric, "metric_mode", "NR")
        if mode not in (None, "NR"):
            raise ValueError(f"pyiqa metric {metric_name!r} is {mode} (needs a reference image); "
                             "a quality scorer needs a no-reference (NR) metric")  # fmt: skip
        self.metric = metric
        self.metric_name = metric_name
        self.name = f"pyiqa:{metric_name}"
        self.differentiable = bool(differentiable)
        self.lower_better = bool(getattr(metric, "lower_better", False))
        if score_map is None:
            score_map = default_pyiqa_score_map(
                metric_name, self.lower_better, getattr(metric, "score_range", None)
            )
        elif score_map.lower_better != self.lower_better:
            logger.warning("pyiqa:%s has lower_better=%s but the given ScoreMap rewards %s raw values",
                           metric_name, self.lower_better, "lower" if score_map.lower_better else "higher")  # fmt: skip
        self.score_map = score_map

    def to(self, device) -> PyiqaScorer:
        if hasattr(self.metric, "to"):
            self.metric = self.metric.to(device)
        return self

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) raw metric values on the images' device."""
        x = check_images(images, self.name).clamp(0.0, 1.0)
        out = self.metric(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = torch.as_tensor(out)
        if out.numel() != x.shape[0]:
            raise RuntimeError(f"{self.name} returned {tuple(out.shape)} for a batch of {x.shape[0]} images; "
                               "expected one score per image")  # fmt: skip
        return out.reshape(x.shape[0]).to(images.device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) -> (B,) in [0, 1], higher is better."""
        return self.score_map(self.raw(images))

    def __repr__(self) -> str:
        return f"PyiqaScorer({self.metric_name!r}, differentiable={self.differentiable}, score_map={self.score_map})"
