"""Few-step sampling: the img2img timestep schedule of every scheduler (strength × steps checked up front), and the
classifier-free-guidance handling that LCM and TCD need.

**Schedules.** For most schedulers the img2img schedule is diffusers' ``StableDiffusionImg2ImgPipeline`` one: set
``steps`` timesteps over the whole range, keep the last ``int(steps × strength)`` of them (so ``steps = 4,
strength = 0.5`` runs 2 steps, and ``steps × strength < 1`` runs none: refused). LCM and TCD (the consistency /
trajectory-consistency schedulers of LCM-LoRA, TCD-LoRA, Hyper-SD and DMD2 distillations) take the strength
themselves, as diffusers' LCM img2img pipeline does: ``steps`` timesteps are picked from the distillation grid
(``original_inference_steps``, 50) below ``strength × T``, so ``--steps`` is the number of steps run at every
strength, and only ``int(50 × strength) < steps`` is refused (e.g. 4 steps at strength 0.05).
:func:`img2img_timesteps` computes either and raises ``ValueError`` with the fix for every combination that runs no
step or that the scheduler cannot make.

**CFG.** LCM: a UNet distilled with a guidance embedding (``unet.config.time_cond_proj_dim`` set, e.g.
LCM-Dreamshaper) takes w = guidance_scale - 1 through ``timestep_cond`` (:func:`guidance_scale_embedding`) and runs
ONE pass (no unconditional batch); a LoRA-distilled model (LCM-LoRA, Hyper-SD, DMD2) was distilled with guidance
baked in, so CFG is switched off (guidance_scale 1: one pass), as their model cards prescribe. TCD: CFG as asked
(TCD-LoRA works with a low scale, 1-2), plus ``eta`` (the paper's gamma, stochasticity: 0 deterministic, default
0.3) passed to every ``step``. :func:`few_step_settings` returns what the pipeline must do.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

FEW_STEP_SCHEDULERS = {"lcm": "LCMScheduler", "tcd": "TCDScheduler"}
"""AuthFace scheduler names of the few-step schedulers -> diffusers classes."""
DEFAULT_TCD_ETA = 0.3
"""TCD's default gamma (``eta`` of ``TCDScheduler.step``)."""


def takes_strength(scheduler) -> bool:
    """Whether ``scheduler.set_timesteps`` applies the img2img strength itself (LCM, TCD)."""
    return "strength" in inspect.signature(scheduler.set_timesteps).parameters


def img2img_timesteps(scheduler, steps: int, strength: float, device=None) -> torch.Tensor:
    """Set ``scheduler``'s timesteps for img2img at ``strength`` and return the ones to run (1-D long/float).

    Sets the scheduler's begin index where it has one (so ``add_noise`` and ``step`` start at the right place).

    Raises:
        ValueError: the combination runs no step or the scheduler cannot make it; the message names both
            values and the smallest fix.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1] (1.0 starts from pure noise), got {strength!r}")
    name = type(scheduler).__name__
    if takes_strength(scheduler):
        grid = int(scheduler.config.original_inference_steps * strength)
        if grid < steps:
            raise ValueError(
                f"{name}: --steps {steps} at --strength {strength} is more steps than its distillation grid has "
                f"below that strength (int({scheduler.config.original_inference_steps} x {strength}) = {grid}): use "
                f"--steps {max(grid, 1)} or fewer, or --strength {steps / scheduler.config.original_inference_steps:.2f} "
                "or more"
            )
        _set_timesteps(scheduler, steps, device, strength=strength)
        timesteps = scheduler.timesteps
        begin = 0
    else:
        run = min(int(steps * strength), steps)
        if run < 1:
            need = math.ceil(1.0 / strength)
            need += int(need * strength) < 1  # float rounding
            raise ValueError(
                f"--steps {steps} x --strength {strength} runs no step (the img2img schedule keeps "
                f"int(steps x strength) = 0 steps): use --steps {need} or more, or a higher --strength"
            )
        _set_timesteps(scheduler, steps, device)
        begin = (steps - run) * scheduler.order
        timesteps = scheduler.timesteps[begin:]
        num_train = scheduler.config.num_train_timesteps
        if strength >= 1.0 and len(timesteps) and float(timesteps[0]) < num_train // 2:
            raise ValueError(
                f"{name}: --steps {steps} at --strength 1 starts from pure noise but runs its first step at "
                f"t={int(timesteps[0])} of {num_train} (its '{scheduler.config.get('timestep_spacing')}' timestep "
                "spacing), which returns noise: use --steps 2 or more, or --scheduler lcm / tcd (schedules made for "
                "1-4 steps)"
            )
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    if len(timesteps) == 0:  # a scheduler with an unusual schedule
        raise ValueError(f"{name}: --steps {steps} at --strength {strength} gives no timestep")
    return timesteps


def _set_timesteps(scheduler, steps: int, device, **kwargs) -> None:
    """``scheduler.set_timesteps``, its failures on short schedules (PNDM's PLMS warm-up needs several steps)
    turned into a ValueError that says what to change."""
    try:
        scheduler.set_timesteps(steps, device=device, **kwargs)
    except (ValueError, RuntimeError, IndexError) as e:
        raise ValueError(
            f"{type(scheduler).__name__} cannot make a {steps}-step schedule ({e}): use more --steps, or "
            "--scheduler ddim / euler / lcm / tcd"
        ) from e


def guidance_scale_embedding(w: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The LCM guidance-scale embedding (sinusoidal, VDM) of ``w`` (B,) -> (B, ``dim``), as diffusers' LCM
    pipelines compute it for ``timestep_cond`` (``w`` = guidance_scale - 1)."""
    w = w.float() * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=w.device)
                      * -(torch.log(torch.tensor(10000.0)) / (half - 1)))  # fmt: skip
    emb = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb.to(dtype)


@dataclass(frozen=True)
class FewStepSettings:
    """What a scheduler needs from the pipeline (see the module docstring)."""

    guidance_scale: float
    """The CFG scale to run with (1.0: one pass, no unconditional batch)."""
    embed_guidance: float | None = None
    """For a guidance-embedded LCM UNet: w (= asked scale - 1) to pass as ``timestep_cond``; else None."""
    step_kwargs: dict | None = None
    """Extra ``scheduler.step`` keywords (TCD: ``eta``)."""


def few_step_settings(scheduler, unet, guidance_scale: float, eta: float | None = None) -> FewStepSettings:
    """The CFG / step settings for ``scheduler`` with ``unet`` at the asked ``guidance_scale`` (logged when
    changed). ``eta``: TCD's gamma (None: :data:`DEFAULT_TCD_ETA`); ignored by other schedulers."""
    name = type(scheduler).__name__
    if name == "LCMScheduler":
        if getattr(unet.config, "time_cond_proj_dim", None) is not None:
            return FewStepSettings(1.0, embed_guidance=max(guidance_scale - 1.0, 0.0))
        if guidance_scale > 1.0:
            logger.info(
                "LCM with a LoRA-distilled UNet: classifier-free guidance off (scale %g -> 1)", guidance_scale
            )
        return FewStepSettings(1.0)
    if name == "TCDScheduler":
        return FewStepSettings(guidance_scale, step_kwargs={"eta": DEFAULT_TCD_ETA if eta is None else eta})
    return FewStepSettings(guidance_scale)
