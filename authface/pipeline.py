"""AuthFacePipeline: aligned face crops in, restored face crops out.

A diffusers ``DiffusionPipeline`` made of a Stable Diffusion base (VAE, CLIP text encoder, UNet + optional LoRA),
a ControlNet conditioned on the degraded crop, and a scheduler. ``__call__`` runs in numbered steps as diffusers
pipelines do; guidance objects (``authface.guidance``) hook into the loop on the predicted clean latent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from . import io
from .colorfix import COLOR_FIXES, apply_color_fix
from .guidance import Guidance, GuidanceContext, apply_guidance, final_values
from .models.quality_prior import DEFAULT_QUALITY, has_quality_prior, quality_labels


@dataclass
class AuthFacePipelineOutput(BaseOutput):
    """``images``: uint8 RGB (B, H, W, 3) for output_type "np", [-1, 1] RGB (B, 3, H, W) for "pt", latents for
    "latent". ``guidance_log``: per image, the records of every guidance step that ran (name, step, t, value).
    ``guidance_final``: per image, each guidance's objective on the final clean latent (name -> value)."""

    images: np.ndarray | torch.Tensor
    guidance_log: list[list[dict]]
    guidance_final: list[dict]


class AuthFacePipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Restore aligned face crops with Stable Diffusion + ControlNet (+ LoRA).

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel), ``tokenizer`` (CLIPTokenizer), ``unet``
    (UNet2DConditionModel), ``controlnet`` (ControlNetModel, conditioned on the degraded crop in [0, 1]) and
    ``scheduler`` (any diffusers scheduler). Optional ``guidance_decoder``: a cheap decoder (e.g. an
    ``AutoencoderTiny`` such as madebyollin/taesd) that guidance may decode through instead of the full VAE.
    Save/load with ``save_pretrained`` / ``from_pretrained``.
    """

    model_cpu_offload_seq = "text_encoder->controlnet->unet->vae"
    _optional_components: list[str] = ["guidance_decoder"]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel,
        scheduler: KarrasDiffusionSchedulers,
        guidance_decoder: AutoencoderTiny | None = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, controlnet=controlnet,
            scheduler=scheduler, guidance_decoder=guidance_decoder,
        )  # fmt: skip
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self._prompt_cache: dict = {}

    # ------------------------------------------------------------------ prompts
    def clear_prompt_cache(self) -> None:
        """Forget cached prompt embeddings (call after changing the text encoder's weights)."""
        self._prompt_cache.clear()

    def load_lora_weights(self, *args, **kwargs):  # a LoRA may touch the text encoder: embeddings change
        self.clear_prompt_cache()
        return super().load_lora_weights(*args, **kwargs)

    @torch.no_grad()
    def _embed(self, text: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        ids = self.tokenizer(
            text,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0].to(device=device, dtype=dtype)  # (1, 77, D)

    def encode_prompt(
        self, prompt: str, negative_prompt: str, device: torch.device, dtype: torch.dtype, do_cfg: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(cond (1, L, D), uncond (1, L, D) or None), cached per (prompt, negative prompt, device, dtype)."""
        key = (prompt, negative_prompt if do_cfg else None, str(device), dtype)
        if key not in self._prompt_cache:
            cond = self._embed(prompt, device, dtype)
            uncond = self._embed(negative_prompt, device, dtype) if do_cfg else None
            self._prompt_cache[key] = (cond, uncond)
        return self._prompt_cache[key]

    # ------------------------------------------------------------------ checks and preparation
    def check_inputs(self, image, num_inference_steps, strength, guidance, color_fix, batch_size, generator):
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1] (1.0 starts from pure noise), got {strength!r}")
        if int(num_inference_steps * strength) < 1:
            raise ValueError(
                f"strength={strength} with num_inference_steps={num_inference_steps} runs no step; "
                f"raise either so that steps * strength >= 1"
            )
        if color_fix not in COLOR_FIXES and color_fix is not None:
            raise ValueError(f"color_fix must be one of {', '.join(COLOR_FIXES)}; got {color_fix!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        for g in guidance or []:
            if not isinstance(g, Guidance):
                raise ValueError(f"guidance entries must be authface.guidance.Guidance objects, got {type(g).__name__}")
        h, w = image.shape[-2:]
        if h % self.vae_scale_factor or w % self.vae_scale_factor:
            raise ValueError(
                f"image size {w}x{h} must be divisible by {self.vae_scale_factor} (the VAE's downsampling); "
                f"use a crop size such as 512"
            )
        if isinstance(generator, list) and len(generator) != image.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {image.shape[0]} images; pass one per image")

    @staticmethod
    def _to_tensor(image) -> torch.Tensor:
        """Accept [-1, 1] tensors (B, 3, H, W) / (3, H, W), or uint8 RGB arrays / PIL images (single or list)."""
        if torch.is_tensor(image):
            image = image.unsqueeze(0) if image.ndim == 3 else image
            if image.ndim != 4 or image.shape[1] != 3:
                raise ValueError(f"image tensor must be [-1, 1] RGB (B, 3, H, W), got shape {tuple(image.shape)}")
            return image
        if not isinstance(image, (list, tuple)):
            image = [image]
        arrays = [np.asarray(im.convert("RGB")) if hasattr(im, "convert") else np.asarray(im) for im in image]
        if any(a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 for a in arrays):
            raise ValueError("image arrays must be uint8 RGB (H, W, 3)")
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"all crops must have the same size, got {sorted({a.shape for a in arrays})}")
        return io.numpy_to_tensor(arrays)

    def get_timesteps(self, num_inference_steps: int, strength: float, device) -> torch.Tensor:
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        init = min(int(num_inference_steps * strength), num_inference_steps)
        t_start = max(num_inference_steps - init, 0)
        timesteps = self.scheduler.timesteps[t_start * self.scheduler.order :]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(t_start * self.scheduler.order)
        return timesteps

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """[-1, 1] (B, 3, H, W) -> latents (B, 4, H/8, W/8), scaled by vae.config.scaling_factor (posterior mode)."""
        dist = self.vae.encode(image.to(device=self.vae.device, dtype=self.vae.dtype)).latent_dist
        return dist.mode() * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, 4, h, w) -> [-1, 1] RGB (B, 3, H, W); differentiable."""
        return self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]

    def decode_latents_tiny(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> [-1, 1] RGB through the cheap ``guidance_decoder``; differentiable."""
        dec = self.guidance_decoder
        return dec.decode(latents.to(dec.dtype) / dec.config.scaling_factor, return_dict=False)[0]

    def guidance_decoders(self) -> dict:
        decoders = {"vae": self.decode_latents}
        if getattr(self, "guidance_decoder", None) is not None:
            decoders["tiny"] = self.decode_latents_tiny
        return decoders

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        image,
        prompt: str = "a high quality, sharp, detailed photograph of a face",
        negative_prompt: str = "",
        num_inference_steps: int = 20,
        strength: float = 0.7,
        guidance_scale: float = 4.0,
        controlnet_conditioning_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        batch_size: int = 4,
        color_fix: str | None = "wavelet",
        guidance: Sequence[Guidance] | None = None,
        quality_score: float | None = None,
        output_type: str = "np",
    ) -> AuthFacePipelineOutput:
        """Restore aligned crops.

        image: [-1, 1] RGB tensor (B, 3, H, W) or uint8 RGB arrays (H, W, 3) / PIL images; all the same size.
        strength: 1.0 starts from pure noise; below 1 starts from the degraded crop's latent, noised to that level.
        generator: one generator, or one per image (then each output depends only on its own generator, so results
        do not depend on how faces are batched).
        batch_size: images per UNet call. output_type: "np" (uint8 (B, H, W, 3)), "pt" ([-1, 1]) or "latent".
        quality_score: in [0, 1], for models trained with the image-quality prior (default 0.9 for them); an
        error for models without it.
        """
        # 1. check inputs
        image = self._to_tensor(image)
        self.check_inputs(image, num_inference_steps, strength, guidance, color_fix, batch_size, generator)
        device = self._execution_device
        dtype = self.unet.dtype
        do_cfg = guidance_scale > 1.0
        guidance = [g for g in (guidance or []) if g.scale != 0.0]
        if has_quality_prior(self.controlnet):
            quality_score = DEFAULT_QUALITY if quality_score is None else quality_score
            quality_labels(quality_score, 1, "cpu")  # validates the range before any work
        elif quality_score is not None:
            raise ValueError(
                "quality_score was given but this model has no image-quality prior (its ControlNet was not trained "
                "with one); fine-tune with the quality prior (authface train) or leave quality_score unset"
            )

        # 2. encode the prompt once for all faces
        cond, uncond = self.encode_prompt(prompt, negative_prompt, device, dtype, do_cfg)

        outputs, logs, finals = [], [], []
        for start in range(0, image.shape[0], batch_size):
            chunk = image[start : start + batch_size].to(device=device, dtype=torch.float32)
            gen = generator[start : start + batch_size] if isinstance(generator, list) else generator
            out, log, final = self._restore_batch(
                chunk, cond, uncond, num_inference_steps, strength, guidance_scale,
                controlnet_conditioning_scale, gen, color_fix, guidance, output_type, dtype, quality_score,
            )  # fmt: skip
            outputs.append(out)
            logs.extend(log)
            finals.extend(final)

        # 7. output
        images = np.concatenate(outputs) if output_type == "np" else torch.cat(outputs)
        return AuthFacePipelineOutput(images=images, guidance_log=logs, guidance_final=finals)

    def _restore_batch(
        self, image, cond, uncond, steps, strength, guidance_scale, cn_scale, generator, color_fix, guidance,
        output_type, dtype, quality_score=None,
    ):  # fmt: skip
        device, b = image.device, image.shape[0]
        do_cfg = uncond is not None
        cn_kwargs = {}
        if quality_score is not None:  # the quality prior: a class label added to the ControlNet's time embedding
            cn_kwargs["class_labels"] = quality_labels(quality_score, b * (2 if do_cfg else 1), device)

        # 3. prepare the ControlNet condition (degraded crop in [0, 1]) and the text embeddings for the batch
        control = ((image + 1) / 2).to(dtype)  # (B, 3, H, W)
        embeds = cond.expand(b, -1, -1)
        if do_cfg:
            control = torch.cat([control, control])
            embeds = torch.cat([uncond.expand(b, -1, -1), embeds])

        # 4. timesteps for this strength
        timesteps = self.get_timesteps(steps, strength, device)

        # 5. initial latents: noise, or the degraded crop's latent noised to the first timestep
        lq_latents = self.encode_image(image).to(dtype) if strength < 1.0 else None  # (B, 4, H/8, W/8)
        shape = (b, self.vae.config.latent_channels, image.shape[2] // self.vae_scale_factor,
                 image.shape[3] // self.vae_scale_factor)  # fmt: skip
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if strength >= 1.0:
            latents = noise * self.scheduler.init_noise_sigma
        else:
            latents = self.scheduler.add_noise(lq_latents, noise, timesteps[:1].repeat(b))

        # 6. denoising loop
        log: list[list[dict]] = [[] for _ in range(b)]
        n = len(timesteps)
        decoders, cache = (self.guidance_decoders(), {}) if guidance else (None, None)
        if lq_latents is not None and guidance:
            cache["lq_latents"] = lq_latents
        encode_lq = (lambda: self.encode_image(image).to(dtype)) if guidance else None  # noqa: E731
        for i, t in enumerate(timesteps):
            x_in = torch.cat([latents] * 2) if do_cfg else latents
            x_in = self.scheduler.scale_model_input(x_in, t)
            down, mid = self.controlnet(
                x_in, t, encoder_hidden_states=embeds, controlnet_cond=control,
                conditioning_scale=cn_scale, return_dict=False, **cn_kwargs,
            )  # fmt: skip
            noise_pred = self.unet(
                x_in, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                mid_block_additional_residual=mid, return_dict=False,
            )[0]  # fmt: skip
            if do_cfg:
                uncond_pred, cond_pred = noise_pred.chunk(2)
                noise_pred = uncond_pred + guidance_scale * (cond_pred - uncond_pred)
            if guidance:
                ctx = GuidanceContext(i, n, t, image, decoders, cache, encode_lq)
                noise_pred, records = apply_guidance(guidance, self.scheduler, latents, noise_pred, ctx)
                for rec in records:
                    for j in range(b):
                        log[j].append({"name": rec["name"], "step": rec["step"], "t": rec["t"], "value": rec["values"][j]})
            latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]

        final = [{} for _ in range(b)]
        decoded = self.decode_latents(latents).float() if output_type != "latent" else None  # (B, 3, H, W)
        if guidance:  # each objective on the result, for the manifest (reusing the decode above)
            ctx = GuidanceContext(n, n, timesteps[-1], image, decoders, cache, encode_lq)
            for name, values in final_values(guidance, latents, ctx, decoded).items():
                for j in range(b):
                    final[j][name] = values[j]
        if output_type == "latent":
            return latents, log, final
        restored = decoded.clamp(-1, 1)
        restored = apply_color_fix(color_fix, restored, image.float()).clamp(-1, 1)
        if output_type == "np":
            return io.tensor_to_numpy(restored), log, final
        return restored, log, final
