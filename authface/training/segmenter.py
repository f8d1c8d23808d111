"""Training the mask segmenter (``training/train.py --task mask-segmenter``): the small U-Net of
:mod:`authface.models.mask_segmenter` learns, on aligned crops with synthetic occlusions (``data.occlusions``,
``data.occlusion_prob``), the mask of what hides the face.

The same machinery as the restorer's loop (:mod:`.loop`): accelerate (CPU, one GPU or many), AdamW from
``optim`` (``learning_rate``, ``weight_decay``, ``adam_8bit``, ``lr_scheduler``, ``max_grad_norm``, gradient
accumulation, mixed precision), deterministic data (:func:`.data.make_training_data`), checkpoints every
``output.checkpointing_steps`` with ``output.checkpoints_total_limit`` and exact resume from
``output.resume_from_checkpoint`` (:mod:`.checkpoints`), one ``train_log.jsonl`` line per step (:mod:`.tracking`).
The model works at ``data.resolution``. Not used here: the ``model``, ``facial`` and ``identity`` sections,
``optim.ema``, ``optim.min_snr_gamma`` and validation grids.

Loss: binary cross-entropy on the logits + soft Dice (1 - 2|P∩M| / (|P| + |M|), per face, smoothed by 1 so an
empty mask asks for an empty prediction). Each log line also has ``bce``, ``dice`` and the batch's ``iou`` of the
thresholded prediction (1 when both prediction and mask are empty).

Output: the segmenter is saved with ``save_pretrained`` to ``OUT/mask_segmenter/`` (config.json + safetensors):
the same subfolder an AuthFace model folder holds, so it can be copied into one; ``authface restore --mask auto
--mask-model OUT`` (or ``OUT/mask_segmenter``) loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..models.mask_segmenter import SUBFOLDER, MaskSegmenter
from .checkpoints import ResumePoint, save_checkpoint
from .components import check_optimizer, make_optimizer
from .data import make_training_data
from .loop import RunBase, begin_run, end_epochs, make_accelerator
from .tracking import log_step, tracker_name

logger = logging.getLogger(__name__)


def segmentation_losses(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """BCE-with-logits + soft Dice of logits ``(B, 1, H, W)`` against a float mask ``(B, 1, H, W)`` in {0, 1}.

    Returns ``{"loss", "bce", "dice", "iou"}`` (scalars; ``iou`` of the prediction ``logits > 0`` over the whole
    batch, detached, 1.0 when prediction and mask are both empty).
    """
    logits, mask = logits.float(), mask.float()
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    probs = torch.sigmoid(logits)
    inter = (probs * mask).flatten(1).sum(1)
    dice = (1.0 - (2.0 * inter + 1.0) / (probs.flatten(1).sum(1) + mask.flatten(1).sum(1) + 1.0)).mean()
    with torch.no_grad():
        pred, truth = logits > 0, mask > 0.5
        union = (pred | truth).sum()
        iou = (pred & truth).sum() / union if union > 0 else torch.ones((), device=logits.device)
    return {"loss": bce + dice, "bce": bce, "dice": dice, "iou": iou.float()}


@dataclass
class _SegmenterRun(RunBase):
    model: Any
    optimizer: Any
    lr_scheduler: Any
    progress: Callable[[dict], None] | None = None


def train_segmenter(cfg: TrainConfig, *, save_model: bool = True, progress: Callable[[dict], None] | None = None
                    ) -> Path:  # fmt: skip
    """Train the mask segmenter described by ``cfg`` (``cfg.task`` mask-segmenter); returns the output folder
    ``cfg.output.output_dir``, where the segmenter is saved as ``mask_segmenter/`` (with ``save_model``).

    ``progress`` gets the events of :func:`.loop.train` (start, one per step with ``loss``, ``lr``, ``bce``,
    ``dice``, ``iou``, end), on the main process.

    Raises:
        TrainingDataError, authface.data.ManifestError: as :func:`.loop.train`.
        FileNotFoundError: ``output.resume_from_checkpoint`` names a missing or incomplete folder.
        ConfigError: ``optim.adam_8bit`` without bitsandbytes.
    """
    run = _setup(cfg)
    acc, out = run.accelerator, run.out
    start = begin_run(run, progress, "authface-mask-segmenter")
    end_epochs(run, start, _train_epochs(run, start))
    acc.wait_for_everyone()
    if acc.is_main_process and save_model:
        acc.unwrap_model(run.model).save_pretrained(out / SUBFOLDER, safe_serialization=True)
        logger.info("mask segmenter saved to %s", out / SUBFOLDER)
    acc.end_training()
    if run.progress:
        run.progress({"event": "end"})
    return out


def _setup(cfg: TrainConfig) -> _SegmenterRun:
    """The accelerator, the checked data, the segmenter (seeded initialisation), its optimiser and LR schedule,
    all prepared; nothing written to disk."""
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    check_optimizer(cfg.optim)
    if cfg.optim.ema:
        logger.warning("optim.ema is not used by task mask-segmenter; training without EMA")
    out = Path(cfg.output.output_dir)
    tracker = tracker_name(cfg.output.log_with, out)
    accelerator = make_accelerator(cfg, out, tracker)
    set_seed(cfg.seed, device_specific=True)
    data = make_training_data(cfg.data, cfg.facial.regions, cfg.optim.batch_size, cfg.seed, 0, cfg.task)
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    model = MaskSegmenter(resolution=cfg.data.resolution)
    optimizer = make_optimizer(model.parameters(), cfg.optim)
    n = accelerator.num_processes
    schedule = get_scheduler(cfg.optim.lr_scheduler, optimizer=optimizer,
                             num_warmup_steps=cfg.optim.lr_warmup_steps * n,
                             num_training_steps=cfg.optim.max_steps * n)  # fmt: skip
    model, optimizer, loader, schedule = accelerator.prepare(model, optimizer, data.loader, schedule)
    return _SegmenterRun(cfg, out, accelerator, tracker, data, loader, model, optimizer, schedule)


def _train_epochs(run: _SegmenterRun, start: ResumePoint) -> int:
    """Optimiser steps from ``start`` to ``optim.max_steps`` (the batches of :meth:`.data.TrainingData.batches`);
    returns the last step."""
    acc, max_steps, step = run.accelerator, run.cfg.optim.max_steps, start.global_step
    if step >= max_steps:
        return step
    run.model.train()
    accumulation = run.cfg.optim.gradient_accumulation_steps
    for epoch, batch in run.data.batches(acc, run.loader, start, max_steps, accumulation):
        with acc.accumulate(run.model):
            logs = _optimise(run, batch)
        if acc.sync_gradients:
            step += 1
            _log_and_checkpoint(run, step, epoch, logs)
            if step >= max_steps:
                break
    return step


def _optimise(run: _SegmenterRun, batch: dict) -> dict[str, float]:
    """Forward, backward and (when gradients sync) the clipped optimiser and LR steps of one micro-batch."""
    acc, optim = run.accelerator, run.cfg.optim
    with acc.autocast():
        logits = run.model(batch["lq"])
    losses = segmentation_losses(logits, batch["mask"])
    acc.backward(losses["loss"])
    if acc.sync_gradients and optim.max_grad_norm:
        acc.clip_grad_norm_(run.model.parameters(), optim.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return {k: float(v.detach()) for k, v in losses.items()}


def _log_and_checkpoint(run: _SegmenterRun, step: int, epoch: int, losses: dict[str, float]) -> None:
    logs = {**losses, "lr": run.lr_scheduler.get_last_lr()[0]}
    log_step(run.accelerator, run.out, run.tracker, step, epoch, logs)
    if run.progress:
        run.progress({"event": "step", "step": step, **logs})
    output = run.cfg.output
    if step % output.checkpointing_steps == 0:
        save_checkpoint(run.accelerator, run.out, step, output.checkpoints_total_limit, run.cfg.task)
