"""The training objective on one batch: diffusion MSE (ε or v; optional min-SNR-γ weights) plus λ times the
time-aware latent facial feature loss on the predicted clean latent, plus λ_id times the identity loss on the
decoded predicted clean image (:mod:`authface.losses`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config.train import IdentityLossConfig
from ..losses import FacialFeatureLoss, IdentityLoss, min_snr_weight
from ..models.one_step import predicted_x0
from ..models.quality_prior import quality_labels

TEXT_CACHE_SIZE = 1024
"""Captions whose text embeddings are kept (cleared when full)."""

__all__ = ["BatchLosses", "DiffusionObjective", "make_identity_loss", "predicted_x0", "x0_decoder"]


@dataclass
class BatchLosses:
    """The losses of one batch (``loss`` is the one to back-propagate) and what the discriminators need."""

    loss: torch.Tensor
    diffusion_loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    """Detached scalars of the facial loss (``facial_recon``, ``facial_style``, ``facial_weight``, ...)."""
    pred_x0: torch.Tensor | None = None
    """(B, 4, R/8, R/8) predicted clean latent, when the facial loss is on."""
    latents: torch.Tensor | None = None
    """(B, 4, R/8, R/8) target latent, scaled by ``vae.config.scaling_factor``."""
    boxes: torch.Tensor | None = None
    """(B, regions, 4) region boxes on the latent grid."""
    identity_loss: torch.Tensor | None = None
    """The identity term before its weight λ_id (scalar, attached to the graph), when the identity loss is on."""


def x0_decoder(decoder, resolution: int | None, image_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable decoder of predicted clean latents: scaled latents (k, 4, h, w) -> ``[-1, 1]`` RGB float32.

    ``decoder``: the frozen VAE or an ``AutoencoderTiny`` (latents are divided by its ``config.scaling_factor``
    and cast to its dtype, as the pipeline does). ``resolution``: decode a latent resized (bilinear, antialiased)
    so that the image is this many pixels wide, of a full image of ``image_size`` pixels; None = full size.
    """

    def decode(latents: torch.Tensor) -> torch.Tensor:
        if resolution is not None:
            h = max(1, round(resolution * latents.shape[-1] / image_size))
            if h != latents.shape[-1]:
                latents = F.interpolate(
                    latents, size=(h, h), mode="bilinear", align_corners=False, antialias=True
                )
        z = latents.to(decoder.dtype) / decoder.config.scaling_factor
        return decoder.decode(z, return_dict=False)[0].float()

    return decode


def make_identity_loss(cfg: IdentityLossConfig, num_train_timesteps: int, device) -> IdentityLoss:
    """The identity loss of ``cfg`` (its model from :func:`authface.models.identity.identity_encoder_for`: the
    dlib ResNet when ``cfg.model`` is None, no download), frozen, on ``device``.

    Raises:
        FileNotFoundError, ValueError: from the identity model loader; ValueError for a model that does not fit
        ``cfg.kind`` (``dlib-distance`` needs dlib-resnet).
    """
    from ..models.identity import identity_encoder_for

    encoder = identity_encoder_for(cfg.model, device=device)
    return IdentityLoss(encoder, cfg.kind, num_train_timesteps, cfg.mode, cfg.m, cfg.s, cfg.min_weight).to(
        device
    )


@dataclass
class DiffusionObjective:
    """Computes :class:`BatchLosses` for a batch of the training loader with the frozen VAE and text encoder.

    SD 1.x/2.x and SDXL (``text_encoder_2``, ``tokenizer_2`` and ``add_time_ids`` given: two text encoders, pooled
    embedding and micro-conditioning passed to the ControlNet and the UNet as ``added_cond_kwargs``, as diffusers'
    SDXL ControlNet training script does). Batches hold ``hq``/``lq`` ``[-1, 1]`` RGB ``(B, 3, R, R)``, ``caption`` (B strings), ``boxes`` (B, regions, 4)
    in crop pixels and ``quality`` (B,) in [0, 1]. Random draws (VAE posterior sample, noise, timesteps, caption
    dropout) use the global RNG, whose state checkpoints save and restore.
    """

    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    noise_scheduler: object
    facial: FacialFeatureLoss
    facial_weight: float
    """λ; the facial loss is skipped when 0 or when ``facial.weight_mode == "off"``."""
    caption_dropout: float
    min_snr_gamma: float | None
    quality_prior: bool
    weight_dtype: torch.dtype
    """dtype of the frozen VAE and text encoder (and of the inputs given to them)."""
    identity: IdentityLoss | None = None
    identity_weight: float = 0.0
    """λ_id; the identity loss is skipped when 0, when ``identity`` is None or its weight mode is ``"off"``."""
    decode_x0: Callable[[torch.Tensor], torch.Tensor] | None = None
    """Decoder of predicted clean latents for the identity loss (:func:`x0_decoder`); default: the full VAE."""
    text_encoder_2: torch.nn.Module | None = None
    """SDXL's second text encoder (CLIPTextModelWithProjection); None for SD 1.x/2.x."""
    tokenizer_2: object | None = None
    add_time_ids: torch.Tensor | None = None
    """SDXL: the (1, 6) micro-conditioning of a whole training crop (:func:`authface.pipeline.sdxl_time_ids`)."""
    mask_channel: bool = False
    """The ControlNet takes RGB + mask (:mod:`authface.models.mask_channel`)."""

    def __post_init__(self) -> None:
        self._text_cache: dict[str, tuple[torch.Tensor, ...]] = {}
        if self.text_encoder_2 is not None and self.add_time_ids is None:
            raise ValueError("an SDXL objective (text_encoder_2) needs add_time_ids (authface.pipeline.sdxl_time_ids)")
        self.alphas = self.noise_scheduler.alphas_cumprod.to(self.vae.device)
        self.prediction_type = self.noise_scheduler.config.prediction_type
        if self.prediction_type == "epsilon" and float(self.alphas[-1]) == 0:
            raise ValueError(
                "a zero-terminal-SNR noise schedule (rescale_betas_zero_snr) with epsilon prediction: the clean "
                "latent cannot be recovered at the last timestep (Lin et al., WACV 2024); train a v_prediction model "
                "or use a scheduler without rescale_betas_zero_snr"
            )
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.use_facial = self.facial_weight > 0 and self.facial.weight_mode != "off"
        self.use_identity = (
            self.identity is not None and self.identity_weight > 0 and self.identity.weight_mode != "off"
        )
        if self.use_identity and self.decode_x0 is None:
            self.decode_x0 = x0_decoder(self.vae, None, 0)

    @torch.no_grad()
    def encode_text(self, captions: list[str], dropped: list[bool] | None = None) -> tuple[torch.Tensor, dict]:
        """The text condition of ``captions`` (B strings): ``(embeds, added)`` in ``weight_dtype`` on the text
        encoder's device, where ``embeds`` is (B, 77, D) and ``added`` is ``{}`` for SD 1.x/2.x, or for SDXL the
        UNet's and ControlNet's ``added_cond_kwargs``: ``text_embeds`` (B, P) pooled, ``time_ids`` (B, 6).

        ``dropped`` (B flags, caption dropout): the empty prompt for SD 1.x/2.x (diffusers' training scripts); for
        SDXL the zero embedding and zero pooled embedding, the null condition SDXL base was trained with and that
        its pipeline feeds for an empty negative prompt (``force_zeros_for_empty_prompt``). As with any negative
        prompt, a non-empty ``--negative-prompt`` (AuthFace's default) replaces that null condition in CFG.

        Each distinct caption is encoded alone (a batch of one) and cached (the text encoders are frozen; most
        faces share the default prompt), so an embedding never depends on which captions shared its batch: a
        resumed run, whose cache starts empty, gets the very same embeddings as an uninterrupted one.
        """
        dropped = dropped or [False] * len(captions)
        texts = ["" if d else c for c, d in zip(captions, dropped)]
        if len(self._text_cache) + len(set(texts)) > TEXT_CACHE_SIZE:
            self._text_cache.clear()
        for text in dict.fromkeys(texts):
            if text not in self._text_cache:
                self._text_cache[text] = tuple(x[0] for x in self._encode([text]))
        rows = [self._text_cache[t] for t in texts]
        embeds = torch.stack([r[0] for r in rows])
        if self.text_encoder_2 is None:
            return embeds, {}
        pooled = torch.stack([r[1] for r in rows])
        keep = torch.tensor([not d for d in dropped], device=embeds.device, dtype=embeds.dtype)
        embeds, pooled = embeds * keep.view(-1, 1, 1), pooled * keep.view(-1, 1)
        time_ids = self.add_time_ids.to(embeds.device, embeds.dtype).expand(len(texts), -1)
        return embeds, {"text_embeds": pooled, "time_ids": time_ids}

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, ...]:
        """(embeds (N, 77, D),) for SD 1.x/2.x; (embeds (N, 77, D1 + D2), pooled (N, P)) for SDXL."""
        if self.text_encoder_2 is None:
            ids = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids.to(self.text_encoder.device)  # fmt: skip
            return (self.text_encoder(ids)[0].to(self.weight_dtype),)
        from ..pipeline import encode_sdxl_text

        embeds, pooled = encode_sdxl_text(
            (self.tokenizer, self.tokenizer_2), (self.text_encoder, self.text_encoder_2), texts
        )
        return embeds.to(self.weight_dtype), pooled.to(self.weight_dtype)

    def __call__(self, batch: dict, unet, controlnet, autocast) -> BatchLosses:
        """The losses of ``batch`` through ``controlnet`` and ``unet`` run under the ``autocast()`` context."""
        device, dtype = self.vae.device, self.vae.dtype  # the VAE's: SDXL's stays float32 under fp16
        hq = batch["hq"].to(device, dtype=dtype)
        lq = batch["lq"].to(device, dtype=dtype)
        b = hq.shape[0]
        with torch.no_grad():
            posterior = self.vae.encode(hq).latent_dist
            latents = (posterior.sample() * self.vae.config.scaling_factor).float()  # (B, 4, R/8, R/8)
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (b,), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        dropped = [bool(torch.rand(()) < self.caption_dropout) for _ in batch["caption"]]
        embeds, added = self.encode_text(list(batch["caption"]), dropped)
        pred = self.model_output(batch, noisy, t, embeds, lq, unet, controlnet, autocast, added)
        if self.prediction_type == "epsilon":
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latents, noise, t)
        mse = self.sample_mse(pred, target, batch)  # (B,)
        if self.min_snr_gamma:
            mse = mse * min_snr_weight(t, self.alphas, self.min_snr_gamma, self.prediction_type)
        diffusion_loss = mse.mean()
        out = BatchLosses(diffusion_loss, diffusion_loss)
        if self.use_facial or self.use_identity:
            a = self.alphas[t].view(-1, 1, 1, 1).float()
            out.pred_x0 = self.composite(predicted_x0(noisy, pred, a, self.prediction_type), latents, batch)
            out.latents = latents
        if self.use_facial:
            out.boxes = batch["boxes"].to(latents.device) / self.vae_factor  # (B, R, 4) on the latent grid
            facial_loss, out.parts = self.facial(out.pred_x0, latents, out.boxes, t)
            out.loss = out.loss + self.facial_weight * facial_loss
        if self.use_identity:
            out.identity_loss, parts = self.identity(out.pred_x0, batch["hq"], t, self.decode_x0)
            out.parts.update(parts)
            out.loss = out.loss + self.identity_weight * out.identity_loss
        return out

    def model_output(
        self, batch: dict, latents, t, embeds, lq, unet, controlnet, autocast, added: dict | None = None
    ) -> torch.Tensor:
        """The ControlNet (on the degraded crops ``lq`` in [-1, 1], with the batch's quality labels when the
        prior is on) + UNet output on ``latents`` (B, 4, h, w) at timesteps ``t`` (B,), run under ``autocast()``;
        float32 (B, 4, h, w). ``added``: SDXL's ``added_cond_kwargs`` (from :meth:`encode_text`), given to both."""
        kwargs = {"added_cond_kwargs": added} if added else {}
        cn_kwargs = dict(kwargs)
        if self.quality_prior:
            cn_kwargs["class_labels"] = quality_labels(batch["quality"].float(), latents.shape[0], latents.device)
        with autocast():
            down, mid = controlnet(latents, t, encoder_hidden_states=embeds,
                                   controlnet_cond=self.control_image(batch, lq), return_dict=False,
                                   **cn_kwargs)  # fmt: skip
            pred = unet(latents, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid, return_dict=False, **kwargs)[0]  # fmt: skip
        return pred.float()

    # Hooks of the inpainting objective (authface/training/inpaint.py): what the ControlNet sees, which latent
    # elements the diffusion loss averages, and the clean latent the facial / identity / GAN losses look at.
    def control_image(self, batch: dict, lq: torch.Tensor) -> torch.Tensor:
        """The ControlNet condition: the degraded crops ``lq`` ([-1, 1]) in [0, 1], (B, 3, R, R); for a ControlNet
        with the mask channel (an inpainter trained further as a plain restorer), an empty mask as its 4th
        channel, (B, 4, R, R), as the restorer's plain pass gives it."""
        if self.mask_channel:
            from ..models.mask_channel import with_mask_channel

            return with_mask_channel(lq)
        return (lq + 1) / 2

    def sample_mse(self, pred: torch.Tensor, target: torch.Tensor, batch: dict) -> torch.Tensor:
        """Per-sample MSE (B,) of the model output against its target, both (B, 4, h, w)."""
        return F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))

    def composite(self, pred_x0: torch.Tensor, latents: torch.Tensor, batch: dict) -> torch.Tensor:
        """The predicted clean latent the region losses see: ``pred_x0`` itself."""
        return pred_x0

    def discriminator_loss(
        self, losses: BatchLosses, discriminators: torch.nn.Module | None = None
    ) -> torch.Tensor:
        """The region discriminators' loss on the batch of ``losses`` (facial loss on, discriminators on);
        ``discriminators``: the prepared (e.g. DDP-wrapped) module to call, default the facial loss's own."""
        return self.facial.discriminator_loss(losses.pred_x0, losses.latents, losses.boxes, discriminators)
