"""The accelerate training loop (CPU, one GPU or many): set up, resume, step, log, checkpoint, validate, save.

One optimiser step = ``optim.gradient_accumulation_steps`` batches. Everything a process writes to disk
(``train_log.jsonl``, validation grids, the model folder) is written by the main process only; checkpoints are
collective (one RNG state per process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..config import TrainConfig, to_dict
from ..losses import FacialFeatureLoss
from ..models.mask_channel import has_mask_channel
from .checkpoints import ResumePoint, load_checkpoint, save_checkpoint, save_final_checkpoint
from .components import (
    check_optimizer,
    configure_trainable,
    is_trained,
    load_components,
    make_optimizer,
    place_components,
    weight_dtype,
)
from .data import TrainingData, make_training_data, steps_per_epoch
from .export import full_precision_models, save_model_folder
from .inpaint import InpaintObjective
from .objective import BatchLosses, DiffusionObjective, make_identity_loss, x0_decoder
from .one_step import OneStepObjective, one_step_settings
from .steps import optimise_batch
from .tracking import TRAIN_LOG, flat_config, log_step, tracker_name
from .validation import run_validation

logger = logging.getLogger(__name__)


@dataclass
class RunBase:
    """What every training task's run holds (:func:`begin_run` and :func:`end_epochs` work on it)."""

    cfg: TrainConfig
    out: Path
    accelerator: Any
    tracker: str | None
    data: TrainingData
    loader: Any
    """The prepared loader (shards batches across processes)."""

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (at least 1)."""
        return steps_per_epoch(self.loader, self.cfg.optim.gradient_accumulation_steps)


@dataclass
class TrainingRun(RunBase):
    """Everything the restorer's loop works with, after ``accelerator.prepare``."""

    comps: dict
    """The components from :func:`~.components.load_components` (frozen parts on the device)."""
    unet: Any
    """The UNet the step calls: prepared (wrapped) when its LoRA trains."""
    controlnet: Any
    """The ControlNet the step calls: prepared when any of its parameters trains."""
    models: list
    """The prepared trained models (gradient accumulation and synchronisation run over these)."""
    trainable: list
    optimizer: Any
    lr_scheduler: Any
    objective: DiffusionObjective
    discriminators: Any = None
    """The region discriminators as prepared (DDP-wrapped on several processes); the objective's
    ``facial.discriminators`` is the same module unwrapped."""
    disc_optimizer: Any = None
    progress: Callable[[dict], None] | None = None
    ema: Any = None
    build_components: Callable[[TrainConfig], dict] | None = None

    @property
    def one_step_timestep(self) -> int | None:
        """t* of a one-step run (``model.one_step``), else None."""
        return getattr(self.objective, "timestep", None)


def train(
    cfg: TrainConfig,
    *,
    build_components: Callable[[TrainConfig], dict] | None = None,
    save_model: bool = True,
    progress: Callable[[dict], None] | None = None,
) -> Path:
    """Run the training job described by ``cfg``; returns the output (model) folder ``cfg.output.output_dir``.

    Args:
        cfg: the resolved config (``authface.config.load_config(TrainConfig, ...)``).
        build_components: ``cfg -> components`` as :func:`~.components.load_components` returns them (the
            default); benchmarks pass builders of random full-size models.
        save_model: write the model folder at the end (benchmarks skip it).
        progress: called on the main process with ``{"event": "start", "step", "max_steps", "resumed_from"}``,
            then ``{"event": "step", "step", "loss", "lr", ...}`` after each optimiser step (the CLI draws its bar
            from these), then ``{"event": "end"}``.

    Raises:
        TrainingDataError: no dataset, or unreadable images (all named).
        authface.data.ManifestError: bad manifest records (all named by ``file:line``).
        FileNotFoundError: ``output.resume_from_checkpoint`` names a missing folder, or a model path is missing.
        authface.models.loading.ModelNotFoundError: a model id cannot be resolved.

    ``cfg.task`` mask-segmenter trains the mask segmenter instead (:func:`.segmenter.train_segmenter`; no diffusion
    components are loaded).
    """
    if cfg.task == "mask-segmenter":
        from .segmenter import train_segmenter

        return train_segmenter(cfg, save_model=save_model, progress=progress)
    run = setup_run(cfg, build_components=build_components)
    start = begin_run(run, progress, "authface")
    end_epochs(run, start, _run_epochs(run, start))
    _finish(run, save_model)
    if run.progress:
        run.progress({"event": "end"})
    return run.out


def begin_run(run: RunBase, progress: Callable[[dict], None] | None, project: str) -> ResumePoint:
    """What every training task does before its first step, on a set-up ``run``: resume from ``output.resume_from_checkpoint`` (the checkpoint's task
    checked), start the tracker as ``project``, create ``out`` and repair a half-written ``train_log.jsonl`` (main
    process), keep ``progress`` on the main process only (``run.progress``) and send its start event. Returns where
    training starts."""
    cfg, acc, out = run.cfg, run.accelerator, run.out
    start = load_checkpoint(acc, out, cfg.output.resume_from_checkpoint, run.steps_per_epoch,
                            cfg.optim.gradient_accumulation_steps, task=cfg.task)  # fmt: skip
    if run.tracker:
        acc.init_trackers(project, config=flat_config(to_dict(cfg)))
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        io.repair_jsonl_tail(out / TRAIN_LOG)  # a killed run may have left half a line
    run.progress = progress if acc.is_main_process else None
    if run.progress:
        run.progress({"event": "start", "step": start.global_step, "max_steps": cfg.optim.max_steps,
                      "resumed_from": start.path})  # fmt: skip
    return start


def end_epochs(run: RunBase, start: ResumePoint, last: int) -> None:
    """After the last optimiser step ``last``: the final checkpoint (:func:`~.checkpoints.save_final_checkpoint`)."""
    o = run.cfg.output
    save_final_checkpoint(run.accelerator, run.out, last, start.global_step, o.checkpointing_steps,
                          o.checkpoints_total_limit, run.cfg.task)  # fmt: skip


def setup_run(
    cfg: TrainConfig, *, build_components: Callable[[TrainConfig], dict] | None = None
) -> TrainingRun:
    """Everything :func:`train` needs before its first step: the accelerator, the checked data, the models on
    the device (frozen weights in the compute dtype, trained ones in float32), the objective and the optimisers,
    all prepared. Nothing is written to disk. Raises what :func:`train` raises (``ConfigError`` for
    ``optim.adam_8bit`` without bitsandbytes, before any model is loaded)."""
    from accelerate.utils import set_seed

    check_optimizer(cfg.optim)
    out = Path(cfg.output.output_dir)
    tracker = tracker_name(cfg.output.log_with, out)
    accelerator = make_accelerator(cfg, out, tracker)
    set_seed(cfg.seed, device_specific=True)
    decode_first = cfg.output.num_validation if cfg.output.validation_steps else 0
    data = make_training_data(cfg.data, cfg.facial.regions, cfg.optim.batch_size, cfg.seed, decode_first, cfg.task)
    build = build_components or load_components
    run = _setup(cfg, out, accelerator, tracker, data, build(cfg))
    run.build_components = build
    return run


def make_accelerator(cfg: TrainConfig, out: Path, tracker: str | None):
    """The run's ``accelerate.Accelerator``: gradient accumulation and mixed precision from ``cfg.optim``, the
    tracker and its logging folder ``out/logs``."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    return Accelerator(
        gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps,
        mixed_precision=cfg.optim.mixed_precision,
        log_with=tracker,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )


def _setup(cfg: TrainConfig, out: Path, accelerator, tracker: str | None, data: TrainingData,
           comps: dict) -> TrainingRun:  # fmt: skip
    """Frozen base + trained parts on the device, the objective, the optimisers, all through accelerate."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    device, dtype = accelerator.device, weight_dtype(cfg.optim.mixed_precision)
    noise_scheduler = DDPMScheduler.from_config(comps["scheduler"].config)
    trainable = configure_trainable(comps, cfg.model, mask_channel=cfg.task == "inpaint")
    place_components(comps, device, dtype)
    objective = _objective(cfg, comps, noise_scheduler, dtype, device)
    optimizer = make_optimizer(trainable, cfg.optim)
    n = accelerator.num_processes
    lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=cfg.optim.lr_warmup_steps * n,
                                 num_training_steps=cfg.optim.max_steps * n)  # fmt: skip
    unet, controlnet = comps["unet"], comps["controlnet"]
    models = [m for m in (unet, controlnet) if is_trained(m)]
    prepared = accelerator.prepare(*models, optimizer, data.loader, lr_scheduler)
    models, (optimizer, loader, lr_scheduler) = list(prepared[: len(models)]), prepared[len(models) :]
    run = TrainingRun(
        cfg, out, accelerator, tracker, data, loader, comps,
        unet=models[0] if cfg.model.train_lora else unet,
        controlnet=models[-1] if is_trained(controlnet) else controlnet,
        models=models, trainable=trainable, optimizer=optimizer, lr_scheduler=lr_scheduler, objective=objective,
    )  # fmt: skip
    discriminators = objective.facial.discriminators
    # one module, one forward per step (DDP-safe); the objective keeps it unwrapped for the generator step
    if discriminators is not None:
        disc_optimizer = torch.optim.AdamW(discriminators.parameters(), lr=cfg.facial.disc_learning_rate)
        run.discriminators, run.disc_optimizer = accelerator.prepare(discriminators, disc_optimizer)
    if cfg.optim.ema:
        run.ema = EMAModel(trainable, decay=cfg.optim.ema_decay)
        run.ema.to(device)
        accelerator.register_for_checkpointing(run.ema)
    return run


def _objective(
    cfg: TrainConfig, comps: dict, noise_scheduler, dtype: torch.dtype, device
) -> DiffusionObjective:
    f, ident, num_t = cfg.facial, cfg.identity, noise_scheduler.config.num_train_timesteps
    facial = FacialFeatureLoss(num_t, f.mode, f.m, f.s, f.recon_weight, f.style_weight, f.gan_weight,
                               f.regions).to(device)  # fmt: skip
    identity = decode = None
    if ident.weight > 0 and ident.mode != "off":
        identity = make_identity_loss(ident, num_t, device)
        decoder = comps["vae"]
        if ident.decoder == "tiny":
            from ..models.loading import load_tiny_decoder

            decoder = load_tiny_decoder(ident.tiny_decoder, dtype).to(device).requires_grad_(False)
        decode = x0_decoder(decoder, ident.resolution, cfg.data.resolution)
    kwargs = dict(
        facial_weight=f.weight, caption_dropout=cfg.data.caption_dropout, min_snr_gamma=cfg.optim.min_snr_gamma,
        quality_prior=cfg.model.quality_prior, weight_dtype=dtype, identity=identity, identity_weight=ident.weight,
        decode_x0=decode,
    )  # fmt: skip
    cls, one_step = (InpaintObjective if cfg.task == "inpaint" else DiffusionObjective), one_step_settings(cfg.model)
    if one_step is not None:  # no caption dropout: a one-step model runs without CFG
        cls = OneStepObjective
        kwargs.update(timestep=one_step[0], pixel_weight=one_step[1], caption_dropout=0.0)
        logger.info("one-step training at t*=%d (pixel loss weight %g)", *one_step)
    kwargs.update(sdxl_conditioning(comps, cfg.data.resolution))
    kwargs["mask_channel"] = has_mask_channel(comps["controlnet"])
    return cls(comps["vae"], comps["text_encoder"], comps["tokenizer"], noise_scheduler, facial, **kwargs)


def sdxl_conditioning(comps: dict, resolution: int) -> dict:
    """The objective's SDXL fields for an SDXL ``comps`` (``text_encoder_2``, ``tokenizer_2``, ``add_time_ids``
    of a whole ``resolution`` crop), ``{}`` for SD 1.x/2.x. Raises ValueError for a UNet that is not SDXL
    base-type (a refiner)."""
    if comps.get("text_encoder_2") is None:
        return {}
    from ..pipeline import sdxl_time_ids

    encoder = comps["text_encoder_2"]
    ids = sdxl_time_ids(comps["unet"], encoder.config.projection_dim, resolution, resolution, 1, encoder.device,
                        torch.float32)  # fmt: skip
    return {"text_encoder_2": encoder, "tokenizer_2": comps["tokenizer_2"], "add_time_ids": ids}


def _run_epochs(run: TrainingRun, start: ResumePoint) -> int:
    """Train from ``start`` until ``optim.max_steps`` optimiser steps are done; returns the last step."""
    max_steps, step = run.cfg.optim.max_steps, start.global_step
    if step >= max_steps:
        return step
    run.unet.train()
    run.controlnet.train()
    accumulation = run.cfg.optim.gradient_accumulation_steps
    for epoch, batch in run.data.batches(run.accelerator, run.loader, start, max_steps, accumulation):
        losses = optimise_batch(run, batch)
        if not run.accelerator.sync_gradients:
            continue
        step += 1
        _after_step(run, step, epoch, losses)
        if step >= max_steps:
            break
    return step


def _after_step(run: TrainingRun, step: int, epoch: int, losses: BatchLosses) -> None:
    """EMA update, the step's log line, and the periodic checkpoint and validation grid."""
    acc, output = run.accelerator, run.cfg.output
    if run.ema is not None:
        run.ema.step(run.trainable)
    logs = {"loss": float(losses.loss.detach()), "diffusion_loss": float(losses.diffusion_loss.detach()),
            "lr": run.lr_scheduler.get_last_lr()[0], **{k: float(v) for k, v in losses.parts.items()}}  # fmt: skip
    log_step(acc, run.out, run.tracker, step, epoch, logs)
    if run.progress:
        run.progress({"event": "step", "step": step, **logs})
    if step % output.checkpointing_steps == 0:
        save_checkpoint(acc, run.out, step, output.checkpoints_total_limit, run.cfg.task)
    if acc.is_main_process and output.validation_steps and step % output.validation_steps == 0:
        run_validation(acc, run.comps, run.unet, run.controlnet, run.data.dataset, out=run.out, step=step,
                       num_faces=output.num_validation, prompt=run.cfg.data.prompt, tracker=run.tracker,
                       one_step=run.one_step_timestep)  # fmt: skip


def _finish(run: TrainingRun, save_model: bool) -> None:
    """EMA weights into the models, then the model folder (main process), then the trackers' end."""
    acc = run.accelerator
    acc.wait_for_everyone()
    if acc.is_main_process:
        if run.ema is not None:
            run.ema.copy_to(run.trainable)
        if save_model:
            comps, unet, controlnet = run.comps, acc.unwrap_model(run.unet), acc.unwrap_model(run.controlnet)
            # the frozen base was cast to the compute dtype: save from a float32 reload with the trained weights
            if run.objective.weight_dtype != torch.float32:
                comps, unet, controlnet = full_precision_models(
                    run.cfg, run.build_components, unet, controlnet
                )
            save_model_folder(acc, comps, unet, controlnet, run.out, run.cfg.model.train_lora,
                              to_dict(run.cfg), one_step=run.one_step_timestep)  # fmt: skip
    acc.end_training()
