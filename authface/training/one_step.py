"""One-step training (``model.one_step``): the UNet LoRA and the ControlNet learn to map the degraded crop's
latent, given to the UNet as the noisy latent at one fixed timestep t*, directly to the clean latent
(:mod:`authface.models.one_step` defines the mapping and the choice of t*).

What trains: the UNet LoRA and the ControlNet (with its quality prior), as in multi-step training; the VAE encoder
stays frozen (OSEDiff trains a LoRA on it instead of a ControlNet: AuthFace already has the ControlNet on the
degraded crop, which plays that part). The loss of a batch, on the predicted clean latent x̂0:

* latent reconstruction: MSE(x̂0, z_hq) (logged as ``diffusion_loss`` and ``one_step_latent``);
* pixel reconstruction: ``pixel_weight`` · MSE(D(x̂0), x_hq) through the objective's x̂0 decoder (the full VAE,
  or the cheap decoder / reduced resolution of ``identity.decoder`` / ``identity.resolution``), logged as
  ``one_step_pixel``; OSEDiff adds LPIPS, which needs downloaded weights (not used: AuthFace trains offline);
* the time-aware facial feature loss at t* (its w(t*): at t* = 500 the logit-normal weight is at its peak; at 999
  it is ~0 — use ``facial.mode=constant`` there), with the region discriminators' GAN term when
  ``facial.gan_weight`` > 0 (their own step is the multi-step one, :func:`~.steps.discriminator_step`);
* the identity loss at t* when ``identity.weight`` > 0.

There is no caption dropout: a one-step model runs without classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.one_step import DEFAULT_ONE_STEP_T, check_timestep, predicted_x0
from .objective import BatchLosses, DiffusionObjective, x0_decoder


def one_step_settings(model_cfg) -> tuple[int, float] | None:
    """``(t*, pixel_weight)`` when ``model_cfg`` (a :class:`authface.config.TrainModelConfig`) asks for one-step
    training (``one_step: true``, ``one_step_t``, ``one_step_pixel_weight``), else None. Fields missing from an
    older config class count as their defaults (off, :data:`DEFAULT_ONE_STEP_T`, 1.0)."""
    if not getattr(model_cfg, "one_step", False):
        return None
    return (int(getattr(model_cfg, "one_step_t", DEFAULT_ONE_STEP_T)),
            float(getattr(model_cfg, "one_step_pixel_weight", 1.0)))  # fmt: skip


@dataclass
class OneStepObjective(DiffusionObjective):
    """:class:`~.objective.DiffusionObjective`'s inputs and outputs, one-step losses (module docstring).

    ``timestep``: t*; ``pixel_weight``: weight of the pixel MSE (0: no decode unless the identity loss needs one).
    ``BatchLosses.pred_x0`` / ``latents`` / ``boxes`` are filled as the discriminator step needs them.
    """

    timestep: int = DEFAULT_ONE_STEP_T
    pixel_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.timestep = check_timestep(self.timestep, self.noise_scheduler.config.num_train_timesteps)
        if self.pixel_weight < 0:
            raise ValueError(f"one-step pixel_weight must be >= 0, got {self.pixel_weight}")
        if self.decode_x0 is None:
            self.decode_x0 = x0_decoder(self.vae, None, 0)

    def __call__(self, batch: dict, unet, controlnet, autocast) -> BatchLosses:
        """The one-step losses of ``batch`` through ``controlnet`` and ``unet`` run under ``autocast()``."""
        device, dtype = self.vae.device, self.vae.dtype  # the VAE's: SDXL's stays float32 under fp16
        hq = batch["hq"].to(device, dtype=dtype)
        lq = batch["lq"].to(device, dtype=dtype)
        b, sf = hq.shape[0], self.vae.config.scaling_factor
        with torch.no_grad():
            latents = (self.vae.encode(hq).latent_dist.sample() * sf).float()  # (B, 4, R/8, R/8) target
            lq_latents = (self.vae.encode(lq).latent_dist.mode() * sf).float()  # the UNet's input at t*
        t = torch.full((b,), self.timestep, device=latents.device, dtype=torch.long)
        embeds, added = self.encode_text(list(batch["caption"]))
        pred = self.model_output(batch, lq_latents, t, embeds, lq, unet, controlnet, autocast, added)
        a = self.alphas[t].view(-1, 1, 1, 1).float()
        x0 = predicted_x0(lq_latents, pred, a, self.prediction_type)
        latent_loss = F.mse_loss(x0, latents)
        out = BatchLosses(latent_loss, latent_loss, pred_x0=x0, latents=latents)
        out.parts["one_step_latent"] = latent_loss.detach()
        if self.pixel_weight > 0:
            decoded = self.decode_x0(x0)  # [-1, 1] (B, 3, r, r), r = the decoder's resolution
            target = batch["hq"].to(decoded.device, torch.float32)
            if target.shape[-2:] != decoded.shape[-2:]:
                target = F.interpolate(target, size=decoded.shape[-2:], mode="bilinear", antialias=True,
                                       align_corners=False)  # fmt: skip
            pixel_loss = F.mse_loss(decoded, target)
            out.parts["one_step_pixel"] = pixel_loss.detach()
            out.loss = out.loss + self.pixel_weight * pixel_loss
        if self.use_facial:
            out.boxes = batch["boxes"].to(latents.device) / self.vae_factor
            facial_loss, parts = self.facial(x0, latents, out.boxes, t)
            out.parts.update(parts)
            out.loss = out.loss + self.facial_weight * facial_loss
        if self.use_identity:
            out.identity_loss, parts = self.identity(x0, batch["hq"], t, self.decode_x0)
            out.parts.update(parts)
            out.loss = out.loss + self.identity_weight * out.identity_loss
        return out
