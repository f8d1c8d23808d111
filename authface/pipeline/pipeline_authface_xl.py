"""AuthFaceXLPipeline: the AuthFace restoration pipeline on a Stable Diffusion XL base.

A sibling of :class:`~authface.pipeline.AuthFacePipeline` that shares its whole ``__call__``: the numbered steps,
the denoising loop, the guidance-objectives hook, the NaN-safe decode and the colour fix. Only what SDXL
conditions on differs, and only that is here:

- two text encoders (CLIP ViT-L ``text_encoder``, OpenCLIP bigG ``text_encoder_2`` with projection): the
  penultimate hidden states of both, concatenated (B, 77, 2048), and the pooled, projected embedding of the second
  (B, 1280), as diffusers' ``StableDiffusionXLPipeline.encode_prompt`` computes them;
- the micro-conditioning ``add_time_ids`` (original size, crop top-left, target size): the crop's own size, no
  crop, the same size, i.e. "a whole, uncropped photo of this size";
- both go to the UNet and to the SDXL ControlNet (``addition_embed_type="text_time"``) as ``added_cond_kwargs``;
- LoRAs load through diffusers' ``StableDiffusionXLLoraLoaderMixin`` (UNet and both text encoders).

SDXL's VAE overflows in float16 (NaN: a black face): its config sets ``force_upcast`` (and a VAE config made
from the original YAML, which lacks the key, is treated as setting it), so a half-precision VAE encodes and
decodes in float32, and any NaN left is caught before an image is made
(:mod:`authface.pipeline.decode`). A VAE that is stable in float16 (e.g. madebyollin/sdxl-vae-fp16-fix, whose
config clears ``force_upcast``) can replace it: ``load_pipeline(..., vae=...)``.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, UNet2DConditionModel
from diffusers.loaders import StableDiffusionXLLoraLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .decode import sdxl_force_upcast
from .pipeline_authface import AuthFacePipeline


class AuthFaceXLPipeline(StableDiffusionXLLoraLoaderMixin, AuthFacePipeline):
    """Restore aligned face crops with Stable Diffusion XL + an SDXL ControlNet (+ LoRA).

    Components: ``vae``, ``text_encoder`` (CLIPTextModel), ``text_encoder_2`` (CLIPTextModelWithProjection),
    ``tokenizer``, ``tokenizer_2``, ``unet`` (SDXL UNet, ``addition_embed_type="text_time"``), ``controlnet`` (an
    SDXL ControlNet, e.g. xinsir/controlnet-tile-sdxl-1.0, conditioned on the degraded crop in [0, 1]),
    ``scheduler``, optional ``guidance_decoder`` (e.g. madebyollin/taesdxl). ``force_zeros_for_empty_prompt``
    (diffusers' SDXL option, default True): an empty negative prompt is the zero embedding, as SDXL was trained.
    Calling it is :meth:`AuthFacePipeline.__call__` (same arguments, outputs and errors).
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"
    _callback_tensor_inputs: list[str] = [
        "latents", "prompt_embeds", "control_image", "add_text_embeds", "add_time_ids",
    ]  # fmt: skip

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel,
        scheduler: KarrasDiffusionSchedulers,
        guidance_decoder: AutoencoderTiny | None = None,
        force_zeros_for_empty_prompt: bool = True,
    ):
        super().__init__(vae, text_encoder, tokenizer, unet, controlnet, scheduler, guidance_decoder)
        self.register_modules(text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)

    def vae_needs_upcast(self) -> bool:
        """SDXL's VAE overflows in float16: upcast unless its config explicitly sets ``force_upcast: false`` (an
        fp16-fixed VAE). A config without the key (e.g. made from the original YAML) gets diffusers' default, True."""
        return sdxl_force_upcast(self.vae)

    def load_lora_weights(self, *args, **kwargs):  # a LoRA may touch the text encoders: embeddings change
        self.clear_prompt_cache()
        return StableDiffusionXLLoraLoaderMixin.load_lora_weights(self, *args, **kwargs)

    # ------------------------------------------------------------------ prompts
    @torch.no_grad()
    def _embed(self, text: str, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate hidden states of both encoders, concatenated (1, 77, D1 + D2); pooled (1, P))."""
        embeds, pooled = encode_sdxl_text(
            (self.tokenizer, self.tokenizer_2), (self.text_encoder, self.text_encoder_2), [text]
        )
        return embeds.to(device=device, dtype=dtype), pooled.to(device=device, dtype=dtype)

    def encode_prompt(self, prompt: str, negative_prompt: str, device: torch.device, dtype: torch.dtype, do_cfg: bool):
        """(cond, uncond or None), each ``(embeds (1, 77, D), pooled (1, P))``, cached like the base pipeline's.
        An empty negative prompt gives zeros when ``force_zeros_for_empty_prompt`` is set (diffusers' SDXL)."""
        key = (prompt, negative_prompt if do_cfg else None, str(device), dtype)
        if key not in self._prompt_cache:
            cond = self._embed(prompt, device, dtype)
            uncond = None
            if do_cfg and not negative_prompt and self.config.force_zeros_for_empty_prompt:
                uncond = (torch.zeros_like(cond[0]), torch.zeros_like(cond[1]))
            elif do_cfg:
                uncond = self._embed(negative_prompt, device, dtype)
            self._prompt_cache[key] = (cond, uncond)
        return self._prompt_cache[key]

    # ------------------------------------------------------------------ conditioning
    def add_time_ids(self, height: int, width: int, batch: int, device, dtype) -> torch.Tensor:
        """SDXL micro-conditioning for crops of ``height`` x ``width`` (see :func:`sdxl_time_ids`)."""
        return sdxl_time_ids(self.unet, self.text_encoder_2.config.projection_dim, height, width, batch, device, dtype)

    def text_condition(self, cond, uncond, image: torch.Tensor) -> dict:
        """``prompt_embeds`` (B or 2B, 77, D), ``add_text_embeds`` (B or 2B, P) and ``add_time_ids`` (B or 2B, 6),
        [uncond, cond] with CFG."""
        b = image.shape[0]
        (embeds, pooled), dtype = cond, cond[0].dtype
        embeds, pooled = embeds.expand(b, -1, -1), pooled.expand(b, -1)
        if uncond is not None:
            embeds = torch.cat([uncond[0].expand(b, -1, -1), embeds])
            pooled = torch.cat([uncond[1].expand(b, -1), pooled])
        time_ids = self.add_time_ids(image.shape[2], image.shape[3], embeds.shape[0], image.device, dtype)
        return {"prompt_embeds": embeds, "add_text_embeds": pooled, "add_time_ids": time_ids}


def encode_sdxl_text(tokenizers, text_encoders, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's text condition of ``texts`` (N prompts): (the penultimate hidden states of both text encoders,
    concatenated, (N, 77, D1 + D2); the pooled, projected embedding of the second, (N, P)), on the second
    encoder's device, as diffusers' ``StableDiffusionXLPipeline.encode_prompt``. Differentiable (the caller
    decides on ``no_grad``); used by the pipeline and by training."""
    hidden, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, text_encoders):
        ids = tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        out = encoder(ids.to(encoder.device), output_hidden_states=True)
        if out[0].ndim == 2:  # the projected, pooled embedding (text_encoder_2)
            pooled = out[0]
        hidden.append(out.hidden_states[-2])
    device = hidden[-1].device
    return torch.cat([h.to(device) for h in hidden], dim=-1), pooled


def sdxl_time_ids(unet, projection_dim: int, height: int, width: int, batch: int, device, dtype) -> torch.Tensor:
    """SDXL micro-conditioning of crops of ``height`` x ``width``: (batch, 6) = (original H, W, crop top, crop
    left, target H, W) = (H, W, 0, 0, H, W), "a whole, uncropped photo of this size". ``projection_dim``: the
    second text encoder's (its pooled embedding joins the time ids in the UNet's added embedding).

    Raises ValueError when the UNet's added embedding expects another size (e.g. a refiner, which conditions on
    an aesthetic score: not supported)."""
    ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=dtype)
    expected = unet.add_embedding.linear_1.in_features
    passed = unet.config.addition_time_embed_dim * ids.shape[1] + projection_dim
    if expected != passed:
        raise ValueError(
            f"this SDXL UNet's added embedding expects {expected} features but the time ids and pooled text "
            f"embedding give {passed}; only SDXL base-type UNets are supported (not the refiner)"
        )
    return ids.expand(batch, -1)
