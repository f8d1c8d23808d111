"""The result of a run: an AuthFace model folder (the LoRA fused into its UNet) plus the LoRA alone."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .. import io
from ..models.one_step import TRAIN_CONFIG_NAME, one_step_record

logger = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
"""The LoRA alone, in diffusers' format: ``StableDiffusionPipeline.load_lora_weights(OUTPUT)`` loads it."""
__all__ = ["LORA_WEIGHT_NAME", "TRAIN_CONFIG_NAME", "assemble_pipeline", "full_precision_models", "save_model_folder"]


def assemble_pipeline(accelerator, comps: dict, unet, controlnet):
    """An :class:`authface.pipeline.AuthFacePipeline` (or :class:`~authface.pipeline.AuthFaceXLPipeline` when
    ``comps`` has SDXL's ``text_encoder_2``) on the frozen ``comps`` and the (unwrapped) trained models, progress
    bar off; it shares their modules (no copy)."""
    from ..pipeline import AuthFacePipeline, AuthFaceXLPipeline

    parts = dict(
        vae=comps["vae"], text_encoder=comps["text_encoder"], tokenizer=comps["tokenizer"],
        unet=accelerator.unwrap_model(unet), controlnet=accelerator.unwrap_model(controlnet),
        scheduler=comps["scheduler"],
    )  # fmt: skip
    if comps.get("text_encoder_2") is not None:
        pipe = AuthFaceXLPipeline(text_encoder_2=comps["text_encoder_2"], tokenizer_2=comps["tokenizer_2"], **parts)
    else:
        pipe = AuthFacePipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def full_precision_models(
    cfg, build_components, unet, controlnet
) -> tuple[dict, torch.nn.Module, torch.nn.Module]:
    """Fresh float32 components from ``build_components(cfg)``, made trainable like the run's
    (:func:`~.components.configure_trainable`), with the trained parameters of the (unwrapped) ``unet`` and
    ``controlnet`` copied in: what the model folder is saved from after mixed precision, so its frozen base keeps
    the base model's float32 weights rather than their float16/bfloat16 rounding. Returns (comps, unet, controlnet).

    Raises:
        RuntimeError: the trained parameters do not match the fresh models' names.
    """
    from .components import configure_trainable

    comps = build_components(cfg)
    configure_trainable(comps, cfg.model, mask_channel=cfg.task == "inpaint")
    for fresh, trained in ((comps["unet"], unet), (comps["controlnet"], controlnet)):
        update = {
            n: p.detach().to("cpu", torch.float32) for n, p in trained.named_parameters() if p.requires_grad
        }
        result = fresh.load_state_dict(update, strict=False)
        if result.unexpected_keys:
            raise RuntimeError(
                f"trained parameters missing from the fresh model: {result.unexpected_keys[:5]}"
            )
    return comps, comps["unet"], comps["controlnet"]


def save_model_folder(
    accelerator, comps: dict, unet, controlnet, out: Path, with_lora: bool, config: dict,
    one_step: int | None = None,
) -> None:
    """Write the model folder ``out`` (``save_pretrained`` layout, safetensors, float32).

    With ``with_lora``, the UNet's LoRA is first saved alone as :data:`LORA_WEIGHT_NAME`, then fused into the UNet
    and unloaded (the modules are changed in place: call this once, at the end). ``config`` (a plain dict) is
    saved as :data:`TRAIN_CONFIG_NAME` (``{"config": config}``), with ``"one_step": {"timestep": t*}`` added for a
    one-step model (``one_step`` = t*; :func:`authface.models.one_step.one_step_timestep` reads it back).
    """
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    pipe = assemble_pipeline(accelerator, comps, unet, controlnet)
    modules = (pipe.unet, pipe.controlnet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None))
    for module in filter(None, modules):  # a dtype only when it changes
        module.to("cpu") if module.dtype == torch.float32 else module.to("cpu", dtype=torch.float32)
    if with_lora:
        lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
        type(pipe).save_lora_weights(out, unet_lora_layers=lora, weight_name=LORA_WEIGHT_NAME)
        pipe.unet.fuse_lora()
        pipe.unet.unload_lora()
    pipe.save_pretrained(out, safe_serialization=True)
    record = {"config": config}
    if one_step is not None:
        record["one_step"] = one_step_record(one_step)
    io.write_json(Path(out) / TRAIN_CONFIG_NAME, record)
    logger.info("saved the model folder %s (LoRA also alone in %s)", out, LORA_WEIGHT_NAME)
