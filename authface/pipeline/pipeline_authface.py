"""AuthFacePipeline: aligned face crops in, restored face crops out.

A diffusers ``DiffusionPipeline`` made of a Stable Diffusion base (VAE, CLIP text encoder, UNet + optional LoRA),
a ControlNet conditioned on the degraded crop, and a scheduler. ``__call__`` runs in numbered steps as diffusers
pipelines do; guidance objectives (``authface.guidance``) hook into the loop on the predicted clean latent.

Where diffusers users expect diffusers' behaviour, the pipeline has it: ``guidance_scale`` is classifier-free
guidance, ``output_type`` is checked ("pil" included), ``self.progress_bar`` (off with
``set_progress_bar_config(disable=True)``), ``callback_on_step_end`` / ``interrupt``, and
``maybe_free_model_hooks()`` at the end. Two deliberate differences: ``output_type="np"`` is uint8 (not float),
and ``"pt"`` is [-1, 1] (the range of the input tensors).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, DiffusionPipeline, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from .. import io
from ..colorfix import apply_color_fix
from ..guidance import Guidance, GuidanceContext, apply_guidance, final_values
from ..models.few_step import few_step_settings, guidance_scale_embedding, img2img_timesteps
from ..models.mask_channel import control_condition, mask_tensor
from ..models.one_step import one_step_timestep as read_one_step_timestep
from ..models.one_step import predicted_x0
from ..models.quality_prior import DEFAULT_QUALITY, has_quality_prior, quality_labels
from ..models.speed import cache_condition_embedding
from .checks import InputChecks, resolve_aliases
from .decode import HALF_DTYPES, check_guidance, check_latents, decode_finite, decode_fp32, force_upcast
from .output import AuthFacePipelineOutput

#: Entries of the sampling state passed to the UNet and ControlNet as ``added_cond_kwargs`` (state key -> name).
ADDED_CONDITIONS = {"add_text_embeds": "text_embeds", "add_time_ids": "time_ids"}


@dataclass
class _Sampling:
    """One call's settings, shared by its batches."""

    num_inference_steps: int
    strength: float
    controlnet_conditioning_scale: float
    color_fix: str | None
    objectives: list[Guidance]
    quality_target: float | None
    output_type: str
    dtype: torch.dtype
    callback: Callable | None
    callback_inputs: Sequence[str]
    progress: Any
    one_step: int | None = None
    """t* of the one-step mode (one ControlNet + UNet call on the degraded latent, no CFG), or None."""
    guidance_embedding: float | None = None
    """w of a guidance-embedded LCM UNet (``timestep_cond``), or None."""
    step_kwargs: dict | None = None
    """Extra ``scheduler.step`` keywords (TCD's ``eta``)."""


class AuthFacePipeline(InputChecks, DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Restore aligned face crops with Stable Diffusion + ControlNet (+ LoRA).

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel), ``tokenizer`` (CLIPTokenizer), ``unet``
    (UNet2DConditionModel), ``controlnet`` (ControlNetModel, conditioned on the degraded crop in [0, 1]) and
    ``scheduler`` (any diffusers scheduler). Optional ``guidance_decoder``: a cheap decoder (e.g. an
    ``AutoencoderTiny`` such as madebyollin/taesd) that objectives may decode through instead of the full VAE.
    Save/load with ``save_pretrained`` / ``from_pretrained``.

    With ``enable_model_cpu_offload()`` the ControlNet (and ``guidance_decoder``), which run at every step, are
    kept out of the offload chain, as in diffusers' ControlNet pipelines: each is moved to the device once, on
    first use, and offloaded by ``maybe_free_model_hooks()`` at the end of the call.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components: list[str] = ["guidance_decoder"]
    _callback_tensor_inputs: list[str] = ["latents", "prompt_embeds", "control_image"]

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
        self._guidance_scale, self._interrupt, self._num_timesteps = 1.0, False, 0
        self.one_step_timestep: int | None = None
        """t* when this is a one-step model (read from its folder by :meth:`from_pretrained`): every call then
        runs one ControlNet + UNet call per batch without CFG (see :mod:`authface.models.one_step`)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' ``from_pretrained``; a local model folder whose training record marks a one-step model
        (:func:`authface.models.one_step.one_step_timestep`) sets :attr:`one_step_timestep`."""
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        path = pretrained_model_name_or_path
        if isinstance(path, (str, os.PathLike)) and os.path.isdir(path):
            pipe.one_step_timestep = read_one_step_timestep(path)
        return pipe

    # ------------------------------------------------------------------ call state (as diffusers pipelines)
    @property
    def guidance_scale(self) -> float:
        """Classifier-free guidance scale of the running call (a step-end callback may change it)."""
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set ``pipe._interrupt = True`` from ``callback_on_step_end`` to skip the remaining steps."""
        return self._interrupt

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

    # ------------------------------------------------------------------ preparation
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
        """The img2img timesteps to run (:func:`authface.models.few_step.img2img_timesteps`: LCM and TCD take
        the strength themselves and run ``num_inference_steps`` steps; ValueError for what cannot run)."""
        return img2img_timesteps(self.scheduler, num_inference_steps, strength, device)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """[-1, 1] (B, 3, H, W) -> latents (B, 4, H/8, W/8), scaled by vae.config.scaling_factor (posterior mode).
        A half-precision VAE whose config sets ``force_upcast`` (SDXL's) encodes in float32, as diffusers does."""
        def encode(x: torch.Tensor) -> torch.Tensor:
            dist = self.vae.encode(x.to(device=self.vae.device, dtype=self.vae.dtype)).latent_dist
            return dist.mode() * self.vae.config.scaling_factor

        if self.vae.dtype in HALF_DTYPES and self.vae_needs_upcast():  # SDXL's VAE overflows in float16
            return decode_fp32(self.vae, image, encode)
        return encode(image)

    def vae_needs_upcast(self) -> bool:
        """Whether a half-precision VAE encodes and decodes in float32: its config sets ``force_upcast``
        (:func:`~authface.pipeline.decode.force_upcast`)."""
        return force_upcast(self.vae)

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
        objectives: Sequence[Guidance] | None = None,
        quality_target: float | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        one_step_timestep: int | None = None,
        mask=None,
        **kwargs,
    ) -> AuthFacePipelineOutput | tuple:
        """Restore aligned crops.

        image: [-1, 1] RGB tensor (B, 3, H, W) or uint8 RGB arrays (H, W, 3) / PIL images; all the same size.
        strength: 1.0 starts from pure noise; below 1 starts from the degraded crop's latent, noised to that level.
        guidance_scale: classifier-free guidance (diffusers' meaning); <= 1 runs the UNet on B, not 2B, samples.
        generator: one generator, or one per image (then each output depends only on its own generator, so results
        do not depend on how faces are batched).
        batch_size: images per UNet call. color_fix: one of ``authface.config.ColorFix`` (or None).
        objectives: guidance objectives (``authface.guidance``: identity, quality, fidelity, any scorer) that steer
        each step through the predicted clean image; deprecated alias ``guidance=``.
        quality_target: in [0, 1], for models trained with the image-quality prior (default 0.9 for them); an
        error for models without it. Deprecated alias ``quality_score=``.
        output_type: "np" (uint8 (B, H, W, 3)), "pil" (list of PIL images), "pt" ([-1, 1] (B, 3, H, W)) or
        "latent". return_dict: False returns ``(images, objective_log, objective_final)``.
        callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> dict`` after every step of every batch, with
        ``tensors`` holding ``callback_on_step_end_tensor_inputs`` (of "latents", "prompt_embeds",
        "control_image"); returned entries replace them. Set ``pipe._interrupt = True`` to skip the remaining
        steps (the current latents are still decoded).
        one_step_timestep: run the one-step mode at this t* (default: the model's own :attr:`one_step_timestep`;
        ``num_inference_steps``, ``strength``, ``guidance_scale`` and objectives are then not used).
        mask: for a ControlNet with the mask channel (:mod:`authface.models.mask_channel`, ``--task inpaint``): the
        region to generate per crop ((B, 1, H, W) / (B, H, W) tensor or B (H, W) arrays, nonzero = generate), its
        fourth condition channel; None = zeros. A ValueError for a ControlNet without that channel.
        LCM and TCD schedulers get the CFG handling they need (:func:`authface.models.few_step.few_step_settings`).
        Raises ValueError for invalid arguments (see :meth:`check_inputs`); ``NonFiniteOutputError`` (a
        RuntimeError, :mod:`authface.pipeline.decode`) when sampling or decoding gives NaN/inf for an image even
        after a float32 retry of the VAE decode — never a black image.
        """
        objectives, quality_target = resolve_aliases(kwargs, objectives, quality_target)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs

        # 1. check inputs
        image = self._to_tensor(image)
        mask = None if mask is None else mask_tensor(mask, image)
        one_step = self.one_step_timestep if one_step_timestep is None else one_step_timestep
        self.check_inputs(image, num_inference_steps, strength, batch_size, generator, color_fix, objectives,
                          quality_target, output_type, callback_on_step_end_tensor_inputs, one_step)  # fmt: skip
        few = few_step_settings(self.scheduler, self.unet, guidance_scale)
        self._guidance_scale = 1.0 if one_step is not None else few.guidance_scale
        self._interrupt = False
        device, dtype = self._execution_device, self.unet.dtype
        if quality_target is None and has_quality_prior(self.controlnet):
            quality_target = DEFAULT_QUALITY

        # 2. encode the prompt once for all faces
        cond, uncond = self.encode_prompt(prompt, negative_prompt, device, dtype, self.do_classifier_free_guidance)

        # 3.-6. per batch: condition, timesteps, initial latents, denoising loop, decode + colour fix
        self._num_timesteps = (
            1 if one_step is not None else len(self.get_timesteps(num_inference_steps, strength, device))
        )
        starts = range(0, image.shape[0], batch_size)
        outputs, logs, finals = [], [], []
        with self.progress_bar(total=len(starts) * self._num_timesteps) as progress:
            run = _Sampling(
                num_inference_steps, strength, controlnet_conditioning_scale, color_fix,
                [g for g in (objectives or []) if g.scale != 0.0], quality_target, output_type, dtype,
                callback_on_step_end, callback_on_step_end_tensor_inputs, progress, one_step,
                few.embed_guidance, few.step_kwargs,
            )  # fmt: skip
            for start in starts:
                chunk = image[start : start + batch_size].to(device=device, dtype=torch.float32)
                gen = generator[start : start + batch_size] if isinstance(generator, list) else generator
                part = None if mask is None else mask[start : start + batch_size].to(device)
                out, log, final = self._restore_batch(chunk, cond, uncond, gen, run, part)
                outputs.append(out)
                logs.extend(log)
                finals.extend(final)

        # 7. output
        images = self.postprocess(torch.cat(outputs), output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, logs, finals
        return AuthFacePipelineOutput(images=images, objective_log=logs, objective_final=finals)

    @staticmethod
    def postprocess(images: torch.Tensor, output_type: str):
        """[-1, 1] RGB (B, 3, H, W) (or latents for "latent") -> the ``output_type`` form."""
        if output_type in ("pt", "latent"):
            return images
        arrays = io.tensor_to_numpy(images)  # uint8 (B, H, W, 3)
        return arrays if output_type == "np" else [PIL.Image.fromarray(a) for a in arrays]

    def _prepare_condition(self, image, cond, uncond, run: _Sampling, mask=None) -> dict:
        """The (CFG-doubled: [uncond, cond]) text condition, ControlNet condition and quality class labels."""
        state = self.text_condition(cond, uncond, image)
        control = control_condition(self.controlnet, image, mask).to(run.dtype)  # crop in [0, 1] (+ mask)
        if uncond is not None:
            control = torch.cat([control, control])
        labels = None  # the quality prior: a class label added to the ControlNet's time embedding
        if run.quality_target is not None:
            labels = quality_labels(run.quality_target, state["prompt_embeds"].shape[0], image.device)
        return {**state, "control_image": control, "class_labels": labels}

    def text_condition(self, cond, uncond, image: torch.Tensor) -> dict:
        """The text condition of a batch of crops (B, 3, H, W) from :meth:`encode_prompt`'s (cond, uncond):
        ``{"prompt_embeds": (B or 2B, L, D)}`` ([uncond, cond] with CFG). Sibling pipelines add their own
        entries (SDXL: ``add_text_embeds``, ``add_time_ids``), passed to the UNet and ControlNet as
        ``added_cond_kwargs``."""
        b = image.shape[0]
        embeds = cond.expand(b, -1, -1)
        if uncond is not None:
            embeds = torch.cat([uncond.expand(b, -1, -1), embeds])
        return {"prompt_embeds": embeds}

    def prepare_latents(self, image, timesteps, generator, dtype, strength):
        """(input latents or None, initial latents): noise, or the degraded crop's latent noised to the first step."""
        b = image.shape[0]
        lq_latents = self.encode_image(image).to(dtype) if strength < 1.0 else None  # (B, 4, H/8, W/8)
        shape = (b, self.vae.config.latent_channels, image.shape[2] // self.vae_scale_factor,
                 image.shape[3] // self.vae_scale_factor)  # fmt: skip
        noise = randn_tensor(shape, generator=generator, device=image.device, dtype=dtype)
        if lq_latents is None:
            return None, noise * self.scheduler.init_noise_sigma
        return lq_latents, self.scheduler.add_noise(lq_latents, noise, timesteps[:1].repeat(b))

    def prepare_extra_step_kwargs(self, generator) -> dict:
        """``generator`` for schedulers whose step draws noise (Euler ancestral, DDPM...), as diffusers does, so
        their results are reproducible and independent of batching."""
        accepted = inspect.signature(self.scheduler.step).parameters
        return {"generator": generator} if "generator" in accepted else {}

    def predict_noise(self, latents, t, state: dict, cn_scale: float, scale_input: bool = True) -> torch.Tensor:
        """ControlNet + UNet on the current latents (B, 4, h, w), CFG-combined: the noise prediction (B, 4, h, w)."""
        b = latents.shape[0]
        embeds, control, labels = state["prompt_embeds"], state["control_image"], state["class_labels"]
        added = {name: state[key] for key, name in ADDED_CONDITIONS.items() if state.get(key) is not None}
        do_cfg = self.do_classifier_free_guidance and embeds.shape[0] == 2 * b
        if not do_cfg:  # one pass on B samples (a callback may switch CFG off mid-run: keep the conditional half)
            embeds, control = embeds[-b:], control[-b:]
            labels = None if labels is None else labels[-b:]
            added = {name: value[-b:] for name, value in added.items()}
        x_in = torch.cat([latents] * 2) if do_cfg else latents
        x_in = self.scheduler.scale_model_input(x_in, t) if scale_input else x_in
        extra = {"added_cond_kwargs": added} if added else {}
        cn_kwargs = dict(extra) if labels is None else {"class_labels": labels, **extra}
        if state.get("timestep_cond") is not None:  # a guidance-embedded (LCM-distilled) UNet
            extra = {**extra, "timestep_cond": state["timestep_cond"][-x_in.shape[0] :]}
            if getattr(self.controlnet.config, "time_cond_proj_dim", None):
                cn_kwargs["timestep_cond"] = extra["timestep_cond"]
        down, mid = self.controlnet(
            x_in, t, encoder_hidden_states=embeds, controlnet_cond=control, conditioning_scale=cn_scale,
            return_dict=False, **cn_kwargs,
        )  # fmt: skip
        noise_pred = self.unet(
            x_in, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
            mid_block_additional_residual=mid, return_dict=False, **extra,
        )[0]  # fmt: skip
        if do_cfg:
            uncond_pred, cond_pred = noise_pred.chunk(2)
            noise_pred = uncond_pred + self.guidance_scale * (cond_pred - uncond_pred)
        return noise_pred

    def _restore_batch(self, image, cond, uncond, generator, run: _Sampling, mask=None):
        """One batch of crops [-1, 1] (B, 3, H, W) (+ masks (B, 1, H, W)) -> (restored [-1, 1] or latents, log,
        final)."""
        b = image.shape[0]
        state = self._prepare_condition(image, cond, uncond, run, mask)
        if run.one_step is not None:
            latents = self.one_step_latents(image, state, run)
            return self._finish_batch(image, latents, [[] for _ in range(b)], None, None, run)
        if run.guidance_embedding is not None:
            w = torch.full((state["prompt_embeds"].shape[0],), run.guidance_embedding, device=image.device)
            state["timestep_cond"] = guidance_scale_embedding(w, self.unet.config.time_cond_proj_dim, run.dtype)
        timesteps = self.get_timesteps(run.num_inference_steps, run.strength, image.device)
        lq_latents, state["latents"] = self.prepare_latents(image, timesteps, generator, run.dtype, run.strength)
        step_kwargs = {**self.prepare_extra_step_kwargs(generator), **(run.step_kwargs or {})}
        log: list[list[dict]] = [[] for _ in range(b)]
        context = None
        if run.objectives:  # what the objectives may look at, shared across the steps of this batch
            cache = {} if lq_latents is None else {"lq_latents": lq_latents}
            context = functools.partial(
                GuidanceContext, num_steps=len(timesteps), lq_image=image, decoders=self.guidance_decoders(),
                cache=cache, encode_lq=lambda: self.encode_image(image).to(run.dtype),
            )  # fmt: skip

        with cache_condition_embedding(self.controlnet):  # the condition's embedding once per batch
            self._denoise(timesteps, state, context, step_kwargs, log, run)
        return self._finish_batch(image, state["latents"], log, context, timesteps, run)

    def one_step_latents(self, image: torch.Tensor, state: dict, run: _Sampling) -> torch.Tensor:
        """The one-step mode: the degraded crops' latents (B, 4, h, w) at t* through ONE ControlNet + UNet call
        (no CFG, no scheduler scaling), turned into the clean latent x̂0 (:mod:`authface.models.one_step`)."""
        lq = self.encode_image(image).to(run.dtype)
        t = torch.tensor(run.one_step, device=image.device)
        pred = self.predict_noise(lq, t, state, run.controlnet_conditioning_scale, scale_input=False)
        alpha_bar = self.scheduler.alphas_cumprod.to(image.device)[run.one_step].to(run.dtype)
        run.progress.update()
        return predicted_x0(lq, pred, alpha_bar, self.scheduler.config.prediction_type)

    def _denoise(self, timesteps, state: dict, context, step_kwargs: dict, log: list, run: _Sampling) -> None:
        """The denoising loop of one batch: updates ``state["latents"]`` and the objectives' ``log``."""
        b = state["latents"].shape[0]
        for i, t in enumerate(timesteps):
            if self.interrupt:
                continue
            latents = state["latents"]
            noise_pred = self.predict_noise(latents, t, state, run.controlnet_conditioning_scale)
            if context is not None:
                ctx = context(step_index=i, timestep=t)
                noise_pred, records = apply_guidance(run.objectives, self.scheduler, latents, noise_pred, ctx)
                check_guidance(noise_pred, records, i)
                for rec in records:
                    for j in range(b):
                        log[j].append({"name": rec["name"], "step": rec["step"], "t": rec["t"], "value": rec["values"][j]})
            state["latents"] = self.scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]
            if run.callback is not None:
                outputs = run.callback(self, i, t, {k: state[k] for k in run.callback_inputs}) or {}
                state.update({k: v for k, v in outputs.items() if k in self._callback_tensor_inputs})
            run.progress.update()

    def _finish_batch(self, image, latents, log, context, timesteps, run: _Sampling):
        """Decode (never a non-finite image), the objectives' final values, the colour fix."""
        b = latents.shape[0]
        final: list[dict] = [{} for _ in range(b)]
        if run.output_type == "latent":
            check_latents(latents)
            decoded = None
        else:  # float32 (B, 3, H, W), every image finite (else NonFiniteOutputError: never a black face)
            decoded = decode_finite(self.vae, latents, self.decode_latents, self.vae_needs_upcast())
        if context is not None:  # each objective on the result, for the manifest (reusing the decode above)
            ctx = context(step_index=len(timesteps), timestep=timesteps[-1])
            for name, values in final_values(run.objectives, latents, ctx, decoded).items():
                for j in range(b):
                    final[j][name] = values[j]
        if decoded is None:
            return latents, log, final
        restored = apply_color_fix(run.color_fix, decoded.clamp(-1, 1), image.float()).clamp(-1, 1)
        return restored, log, final
