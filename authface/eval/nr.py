"""No-reference quality metrics (NIQE, sharpness, any pyiqa metric) and the NTIRE 2025 composite score.

Every metric here is a :mod:`authface.models.quality` scorer's raw value on the prediction alone
(:class:`ScorerMetric`): NIQE is AuthFace's torch port of BasicSR's ``niqe`` with a local pristine-model file, the
sharpness is the log variance of a Laplacian of Gaussian, and pyiqa names (``musiq``, ``maniqa``, ``clipiqa``,
``topiq_nr-face``, ``qalign``, ...) go through :class:`authface.models.quality.PyiqaScorer` when pyiqa is installed.
"""

from __future__ import annotations

import numpy as np

from .base import Column, Metric
from .common import groups_by_shape, package_version

__all__ = [
    "NTIRE2025_COMPONENTS",
    "NTIRE2025_INFO",
    "PYIQA_NAMES",
    "ScorerMetric",
    "niqe_metric",
    "ntire2025_score",
    "pyiqa_column_name",
    "pyiqa_metric",
    "sharpness_metric",
]

#: NTIRE 2025 score components (column names) and their pyiqa metric names.
NTIRE2025_COMPONENTS = {"CLIPIQA": "clipiqa", "MANIQA": "maniqa", "MUSIQ": "musiq", "QALIGN": "qalign"}
#: Report columns of well-known pyiqa metrics (others keep their pyiqa name).
PYIQA_NAMES = {
    "clipiqa": "CLIPIQA", "clipiqa+": "CLIPIQA+", "maniqa": "MANIQA", "musiq": "MUSIQ", "qalign": "QALIGN",
    "topiq_nr-face": "TOPIQ-face", "topiq_nr": "TOPIQ", "niqe": "NIQE-pyiqa", "brisque": "BRISQUE",
}  # fmt: skip
#: How the report describes the NTIRE 2025 column.
NTIRE2025_INFO = (
    "NTIRE 2025 real-world face restoration score = CLIPIQA + MANIQA + MUSIQ/100 + QALIGN/5 + "
    "max(0, (10 - NIQE)/10) + max(0, (100 - FID)/100), from the means over all images (the challenge's FID "
    "reference is FFHQ; its AdaFace identity check is not part of the score)"
)


def ntire2025_score(
    clipiqa: float, maniqa: float, musiq: float, qalign: float, niqe: float, fid: float
) -> float:
    """NTIRE 2025 Real-World Face Restoration challenge score (zhengchen1999/NTIRE2025_RealWorld_Face_Restoration,
    ``eval.py``; report arXiv:2504.14600), higher is better, at most 6::

        CLIPIQA + MANIQA + MUSIQ / 100 + QALIGN / 5 + max(0, (10 - NIQE) / 10) + max(0, (100 - FID) / 100)

    from the mean no-reference scores of a method (pyiqa's clipiqa, maniqa, musiq, qalign; NIQE) and its FID against
    FFHQ. The challenge also requires AdaFace identity similarity to the LQ input above a per-dataset threshold;
    that check is not part of the score.
    """
    return float(
        clipiqa
        + maniqa
        + musiq / 100.0
        + qalign / 5.0
        + max(0.0, (10.0 - niqe) / 10.0)
        + max(0.0, (100.0 - fid) / 100.0)
    )


class ScorerMetric(Metric):
    """A :mod:`authface.models.quality` scorer's raw value (NIQE, sharpness, pyiqa) on ``[0, 1]`` RGB."""

    needs = "none"

    def __init__(self, key: str, scorer, column: Column, info: str, device: str):
        self.key, self.scorer, self.columns, self.info, self.device = key, scorer, (column,), info, device

    def compute(self, preds, targets):
        import torch

        from authface.io import numpy_to_tensor

        out = np.full(len(preds), np.nan)
        for idx in groups_by_shape(preds):
            x = (
                numpy_to_tensor([preds[i] for i in idx]).to(self.device) + 1.0
            ) / 2.0  # [0, 1] RGB (B, 3, H, W)
            with torch.no_grad():
                out[idx] = self.scorer.raw(x).detach().double().cpu().numpy()
        return {self.columns[0].name: out}


def niqe_metric(params: str, device: str) -> ScorerMetric:
    """NIQE (lower is better) with BasicSR's pristine-model file ``params``; OSError / ValueError for a bad file."""
    from authface.models.quality import create_quality_scorer

    scorer = create_quality_scorer("niqe", model_path=params)
    info = (
        "AuthFace NIQEScorer (torch port of BasicSR niqe, MATLAB-compatible, float64, Y of rgb2ycbcr "
        f"rounded, 96x96 blocks), params {params}"
    )
    return ScorerMetric("niqe", scorer, Column("NIQE", False, "", ".3f"), info, device)


def sharpness_metric(device: str) -> ScorerMetric:
    """The sharpness scorer's raw value (higher is better; no weights)."""
    from authface.models.quality import create_quality_scorer

    scorer = create_quality_scorer("sharpness")
    info = (
        "AuthFace SharpnessScorer raw value: log variance of a Laplacian of Gaussian of the luma at 256 px "
        "(no weights)"
    )
    return ScorerMetric("sharpness", scorer, Column("Sharpness", True, "", ".3f"), info, device)


def pyiqa_column_name(name: str) -> str:
    """The report column of the pyiqa metric ``name``."""
    return PYIQA_NAMES.get(name, name)


def pyiqa_metric(name: str, weights: str | None, device: str) -> ScorerMetric:
    """The pyiqa no-reference metric ``name`` (local ``weights`` or pyiqa's cache); raises whatever pyiqa raises."""
    from authface.models.quality import create_quality_scorer

    scorer = create_quality_scorer(f"pyiqa:{name}", model_path=weights, device=device, differentiable=False)
    col = Column(pyiqa_column_name(name), not scorer.lower_better, "", ".4f")
    info = f"pyiqa {package_version('pyiqa')} '{name}' ({'lower' if scorer.lower_better else 'higher'} is better)"
    info += f", weights {weights}" if weights else ", weights from pyiqa's cache"
    return ScorerMetric(name, scorer, col, info, device)
