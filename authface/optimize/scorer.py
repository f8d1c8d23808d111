"""Learned image scorers: a small regression head on frozen face features, trained on human ratings.

    rows = read_ratings("ratings.csv")                        # authface.optimize.ratings
    result = train_scorer(rows, "scorer/", ScorerSettings(backbone="dlib-resnet"))
    result.metrics                                             # {"plcc": .., "srcc": .., "rmse": .., ...}
    scorer = load_scorer("scorer/")                            # nn.Module: [0, 1] RGB (B, 3, H, W) -> (B,)
    pipe(image=crops, objectives=[ScoreGuidance(scorer, scale=1.0)])      # steer sampling by it
    # or: the target of authface.optimize.search (CMA-ES / gradient guidance)

The folder holds ``scorer.safetensors`` (the head, the feature and target normalisation) and ``scorer.json``
(backbone name, input size, validation metrics, training settings); the backbone is rebuilt from its name
(:mod:`.backbones`). Scores come out in the ratings' own units.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import io
from ..config import ConfigError
from .backbones import DEFAULT_BACKBONE, FeatureBackbone, load_backbone
from .ratings import Rating

__all__ = ["SCORER_CONFIG", "SCORER_WEIGHTS", "ImageScorer", "ScorerSettings", "TrainResult", "load_scorer",
           "regression_metrics", "train_scorer"]  # fmt: skip

logger = logging.getLogger(__name__)

SCORER_WEIGHTS = "scorer.safetensors"
SCORER_CONFIG = "scorer.json"
_FORMAT = "authface-scorer/1"
#: callback(stage, done, total, values): stage "features" (per image) or "train" (per epoch).
TrainCallback = Callable[[str, int, int, dict], None]


@dataclass
class ScorerSettings:
    """How ``authface train-scorer`` trains (a dataclass of :mod:`authface.config`)."""

    backbone: str = DEFAULT_BACKBONE
    """dlib-resnet+pixels (default) | dlib-resnet | pixels | arcface:PATH | arcface-onnx:PATH | torchscript:PATH,
    or several joined by + (see optimize/backbones.py)."""
    input_size: int = 256
    """Images are resized to this square size before the backbone (FFHQ-aligned crops expected)."""
    hidden: int = 64
    """Hidden units of the head (0: a linear head)."""
    epochs: int = 300
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    val_fraction: float = 0.2
    patience: int = 30
    """Stop when the validation loss has not improved for this many epochs (the best epoch is kept)."""
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        if self.input_size < 16:
            raise ConfigError(f"input_size must be >= 16, got {self.input_size}")
        if self.hidden < 0 or self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ConfigError("hidden must be >= 0 and epochs, batch_size, patience >= 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ConfigError("learning_rate must be > 0 and weight_decay >= 0")


class ImageScorer(nn.Module):
    """Frozen backbone + trained head: ``[0, 1]`` RGB ``(B, 3, H, W)`` FFHQ-aligned crops -> float32 ``(B,)``.

    Differentiable with respect to the input (usable as ``ScoreGuidance(module=...)``); the input is resized
    (antialiased bilinear) to ``input_size`` first. Scores are in the units of the ratings it was trained on.
    """

    differentiable = True

    def __init__(self, backbone: FeatureBackbone, input_size: int, hidden: int, name: str = "scorer"):
        super().__init__()
        d = backbone.feature_dim
        self.backbone, self.input_size, self.hidden, self.name = backbone, int(input_size), int(hidden), name
        self.head = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, 1)) if hidden else nn.Linear(d, 1)
        self.register_buffer("feature_mean", torch.zeros(d))
        self.register_buffer("feature_std", torch.ones(d))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, D)`` of ``[0, 1]`` RGB ``(B, 3, H, W)`` (resized to ``input_size``)."""
        x = images.float()
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        return self.backbone(x)

    def score_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of precomputed features ``(B, D)``."""
        z = (feats - self.feature_mean) / self.feature_std
        return self.head(z).squeeze(-1) * self.target_std + self.target_mean

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.score_features(self.features(images.to(self.feature_mean.device)))

    def head_state(self) -> dict[str, torch.Tensor]:
        """What is saved: the head and the normalisation buffers (not the frozen backbone)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}


@dataclass
class TrainResult:
    """What :func:`train_scorer` did: the folder, validation metrics, the split sizes and the best epoch."""

    folder: Path
    metrics: dict
    config: dict = field(default_factory=dict)


def regression_metrics(pred: Sequence[float], target: Sequence[float]) -> dict[str, float]:
    """PLCC, SRCC (``scipy.stats``) and RMSE of predictions against targets; NaN correlations for constants."""
    from scipy import stats

    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    rmse = float(np.sqrt(np.mean((p - t) ** 2)))
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return {"plcc": math.nan, "srcc": math.nan, "rmse": rmse}
    return {"plcc": float(stats.pearsonr(p, t)[0]), "srcc": float(stats.spearmanr(p, t)[0]), "rmse": rmse}


def _load_images(rows: Sequence[Rating], size: int) -> torch.Tensor:
    """[0, 1] RGB (N, 3, size, size) float32 of the rated images."""
    from ..imaging import resize

    arrays = []
    for r in rows:
        rgb = io.read_image(r.path).rgb
        arrays.append(rgb if rgb.shape[:2] == (size, size) else resize(rgb, size=(size, size), mode="area"))
    return (io.numpy_to_tensor(arrays) + 1) / 2


@torch.no_grad()
def _extract(scorer: ImageScorer, rows: Sequence[Rating], batch: int, callback: TrainCallback | None) -> torch.Tensor:
    feats = []
    for i in range(0, len(rows), batch):
        images = _load_images(rows[i : i + batch], scorer.input_size).to(scorer.feature_mean.device)
        feats.append(scorer.features(images).float())
        if callback:
            callback("features", min(i + batch, len(rows)), len(rows), {})
    return torch.cat(feats)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_val = max(3, int(round(n * fraction)))
    if n - n_val < 2:
        raise ValueError(f"{n} rated images are too few for a train/validation split (need at least 5)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _fit(scorer: ImageScorer, feats, y, tr, va, s: ScorerSettings, callback) -> tuple[int, int]:
    """Train the head with Adam + early stopping on the validation MSE; loads the best epoch. -> (best, ran)."""
    gen = torch.Generator().manual_seed(s.seed)
    opt = torch.optim.AdamW(scorer.head.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    x_tr, y_tr, x_va, y_va = feats[tr], y[tr], feats[va], y[va]
    best, best_epoch, best_state, epoch = math.inf, 0, copy.deepcopy(scorer.head.state_dict()), 0
    for epoch in range(1, s.epochs + 1):
        scorer.head.train()
        for idx in torch.randperm(len(tr), generator=gen).split(s.batch_size):
            loss = F.mse_loss(scorer.score_features(x_tr[idx]) / scorer.target_std, y_tr[idx] / scorer.target_std)
            opt.zero_grad()
            loss.backward()
            opt.step()
        scorer.head.eval()
        with torch.no_grad():
            val = float(F.mse_loss(scorer.score_features(x_va), y_va))
        if val < best - 1e-9:
            best, best_epoch, best_state = val, epoch, copy.deepcopy(scorer.head.state_dict())
        if callback:
            callback("train", epoch, s.epochs, {"val_rmse": math.sqrt(val)})
        if epoch - best_epoch >= s.patience:
            break
    scorer.head.load_state_dict(best_state)
    return best_epoch, epoch


def train_scorer(
    rows: Sequence[Rating],
    out_dir: str | os.PathLike,
    settings: ScorerSettings | None = None,
    callback: TrainCallback | None = None,
    source: str | None = None,
) -> TrainResult:
    """Train a scorer on rated images and save it to ``out_dir`` (created).

    ``rows``: from :func:`~.ratings.read_ratings` (FFHQ-aligned face crops, any size). The backbone is frozen:
    its features are computed once, then the head is trained with AdamW on standardised features and targets,
    early-stopped on a seeded validation split whose PLCC/SRCC/RMSE (rating units) go to the JSON config.
    ``source``: recorded in the config (e.g. the CSV path). ``callback``: progress (see :data:`TrainCallback`).

    Raises:
        ConfigError: bad settings. ValueError: too few images for the split. Whatever reading an image raised.
    """
    s = settings or ScorerSettings()
    s.validate()
    torch.manual_seed(s.seed)
    scorer = ImageScorer(load_backbone(s.backbone, s.device), s.input_size, s.hidden).to(s.device)
    tr, va = _split(len(rows), s.val_fraction, s.seed)
    feats = _extract(scorer, list(rows), s.batch_size, callback)
    y = torch.tensor([r.rating for r in rows], dtype=torch.float32, device=feats.device)
    scorer.feature_mean.copy_(feats[tr].mean(0))
    scorer.feature_std.copy_(feats[tr].std(0).clamp_min(1e-6) if len(tr) > 1 else torch.ones_like(feats[0]))
    scorer.target_mean.copy_(y[tr].mean())
    scorer.target_std.copy_(y[tr].std().clamp_min(1e-6))
    best_epoch, ran = _fit(scorer, feats, y, torch.as_tensor(tr), torch.as_tensor(va), s, callback)
    with torch.no_grad():
        pred = scorer.score_features(feats[va]).cpu().numpy()
    metrics = regression_metrics(pred, y[va].cpu().numpy())
    metrics.update(n_train=int(len(tr)), n_val=int(len(va)), best_epoch=best_epoch, epochs_run=ran)
    config = {
        "format": _FORMAT, "backbone": scorer.backbone.spec, "input_size": s.input_size, "hidden": s.hidden,
        "feature_dim": scorer.backbone.feature_dim, "metrics": metrics, "source": source,
        "rating_range": [float(y.min()), float(y.max())], "settings": asdict(s),
    }  # fmt: skip
    save_scorer(scorer, out_dir, config)
    return TrainResult(Path(out_dir), metrics, config)


def save_scorer(scorer: ImageScorer, out_dir: str | os.PathLike, config: dict) -> None:
    """Write ``scorer.safetensors`` (head + normalisation) and ``scorer.json`` into ``out_dir``."""
    from safetensors.torch import save

    out = Path(out_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in scorer.head_state().items()}
    io.write_bytes(out / SCORER_WEIGHTS, save(tensors, metadata={"format": _FORMAT}))
    io.write_json(out / SCORER_CONFIG, config)


def load_scorer(folder: str | os.PathLike, device: str | torch.device | None = None) -> ImageScorer:
    """The scorer saved in ``folder``, frozen, in ``eval`` mode, on ``device`` (default CPU).

    Raises:
        FileNotFoundError: no ``scorer.json`` / ``scorer.safetensors`` in ``folder``.
        ValueError: not an AuthFace scorer folder, or weights that do not match the config.
    """
    import json

    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / SCORER_CONFIG, folder / SCORER_WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: {folder} is not a scorer folder from `authface train-scorer`")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if config.get("format") != _FORMAT:
        raise ValueError(f"{cfg_path}: unknown format {config.get('format')!r} (expected {_FORMAT})")
    backbone = load_backbone(config["backbone"], device)
    scorer = ImageScorer(backbone, config["input_size"], config["hidden"], name=folder.name or "scorer")
    try:
        result = scorer.load_state_dict(load_file(w_path), strict=False)
    except RuntimeError as exc:
        raise ValueError(f"{w_path}: weights do not match {cfg_path}: {exc}") from None
    missing = [k for k in result.missing_keys if not k.startswith("backbone.")] + list(result.unexpected_keys)
    if missing:
        raise ValueError(f"{w_path}: weights do not match {cfg_path}: {', '.join(missing)}")
    scorer.config = config
    return scorer.to(device or "cpu").requires_grad_(False).eval()
