"""One-step restoration (the OSEDiff / OSDFace recipe adapted to AuthFace): what a one-step model is and how its
single UNet output becomes the clean latent.

A one-step model is an AuthFace model folder whose UNet LoRA and ControlNet were trained (``model.one_step`` in
:mod:`authface.config.train`) to map the degraded crop's latent z_lq, presented to the UNet AS IF it were the noisy
latent at one fixed timestep t*, directly to the clean latent:

    x̂0 = (z_lq - sqrt(1 - ᾱ_t*) · ε̂) / sqrt(ᾱ_t*)          (ε-prediction; v-prediction likewise)

No noise is added and there is no classifier-free guidance: restoring a face costs one VAE encode, one ControlNet
+ UNet call and one VAE decode. The model folder records t* in its :data:`TRAIN_CONFIG_NAME` under
:data:`ONE_STEP_KEY` (``{"timestep": t*}``); :func:`one_step_timestep` reads it back.

Choice of t* (default :data:`DEFAULT_ONE_STEP_T` = 500): OSEDiff uses t* = 999, where ᾱ ≈ 0.005 and the ε→x̂0
conversion multiplies the UNet's error by ~15 (fragile in float16), and where AuthFace's time-aware facial and
identity losses (logit-normal w(t), largest at mid-schedule) weigh almost nothing. At t* = 500, ᾱ ≈ 0.28 (SD's
scaled-linear betas): the error gain is ~1.9 and w(t*) is at its maximum, so the facial loss works at full strength.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

TRAIN_CONFIG_NAME = "authface_train.json"
"""The training record next to a trained model: ``{"config": {...}, "one_step": {"timestep": t*}}`` (the second
key for one-step models only)."""
ONE_STEP_KEY = "one_step"
DEFAULT_ONE_STEP_T = 500
"""The default fixed timestep t* of one-step training and inference (see the module docstring)."""


def predicted_x0(noisy: torch.Tensor, pred: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str):
    """The clean latent implied by the model output: ``pred`` is ε (``"epsilon"``) or v (``"v_prediction"``).

    ``noisy``, ``pred``: (B, C, h, w); ``alpha_bar``: ᾱ_t per sample, broadcastable to ``noisy`` (e.g.
    (B, 1, 1, 1)). Returns (B, C, h, w) in the dtype of the inputs' promotion.

    Raises:
        ValueError: an unknown ``prediction_type`` (``"sample"`` models predict x̂0 themselves).
    """
    if prediction_type == "epsilon":
        return (noisy - (1 - alpha_bar).sqrt() * pred) / alpha_bar.sqrt()
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * pred
    if prediction_type == "sample":
        return pred
    raise ValueError(f"unknown prediction_type {prediction_type!r} (epsilon, v_prediction or sample)")


def check_timestep(timestep: int, num_train_timesteps: int) -> int:
    """``timestep`` as an int, checked to lie in [1, ``num_train_timesteps`` - 1].

    Raises:
        ValueError: out of range (t = 0 would ask the UNet to remove no noise at all).
    """
    t = int(timestep)
    if not 1 <= t < num_train_timesteps:
        raise ValueError(f"the one-step timestep must be in [1, {num_train_timesteps - 1}], got {timestep!r}")
    return t


def one_step_record(timestep: int) -> dict:
    """The :data:`ONE_STEP_KEY` entry a one-step model folder's :data:`TRAIN_CONFIG_NAME` holds."""
    return {"timestep": int(timestep)}


def one_step_timestep(model_dir: str | Path) -> int | None:
    """t* of the one-step model in the folder ``model_dir``; None for a multi-step model (no record, no
    :data:`TRAIN_CONFIG_NAME`, or not a folder: hub ids and single files are multi-step models).

    Raises:
        ValueError: the record is there but unreadable (not JSON, or a timestep that is not an integer).
    """
    path = Path(model_dir) / TRAIN_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8")).get(ONE_STEP_KEY)
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"{path}: not a valid training record ({e})") from e
    if not record:
        return None
    t = record.get("timestep") if isinstance(record, dict) else None
    if not isinstance(t, int) or isinstance(t, bool):
        raise ValueError(f"{path}: {ONE_STEP_KEY}.timestep must be an integer, got {t!r}")
    logger.info("%s is a one-step model (t* = %d): one UNet call per face batch, no CFG", model_dir, t)
    return t
