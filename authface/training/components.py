"""What is trained: the frozen base (VAE, text encoder, UNet), LoRA on the UNet through peft, a ControlNet on the
degraded face (initialised from the UNet or loaded to fine-tune) and the image-quality prior in the ControlNet.

Every model is built on CPU in float32; :func:`place_components` moves them to the accelerator's device, in the
compute dtype for what is frozen (as diffusers' LoRA scripts do) and float32 for what trains.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch

from ..config import TINY_RANDOM_BASE, ConfigError, OptimConfig, TrainConfig, TrainModelConfig

logger = logging.getLogger(__name__)


def tiny_random_components(seed: int) -> dict:
    """Tiny RANDOM components built in code, for ``model.base: authface-tiny-random`` (tests and smoke runs only).

    This function is the ONLY place in the library that imports :mod:`authface.testing`: the id
    :data:`authface.config.TINY_RANDOM_BASE` is an explicit option for exercising the whole training loop on CPU in
    minutes without a download; a model trained from it restores nothing (its output is noise). The import is
    deferred, so nothing in ``authface.testing`` loads unless this id is asked for.

    Args:
        seed: seeds the random weights (``torch.manual_seed`` — this draws the global RNG state).

    Returns:
        dict with ``vae``, ``text_encoder``, ``tokenizer``, ``unet``, ``controlnet``, ``scheduler`` (float32, CPU).
    """
    from ..testing.tiny_model import tiny_components

    logger.warning(
        "model.base=%s: tiny RANDOM components (tests and smoke runs; output is noise)", TINY_RANDOM_BASE
    )
    return tiny_components(seed=seed)


def load_components(cfg: TrainConfig) -> dict:
    """The components to train from ``cfg.model`` (and ``cfg.seed`` for the tiny random base).

    Returns:
        dict with ``vae``, ``text_encoder``, ``tokenizer``, ``unet``, ``controlnet``, ``scheduler`` (the inference
        scheduler of the base), and for an SDXL base ``text_encoder_2``, ``tokenizer_2``; float32 on CPU. ``controlnet`` is made from the UNet when ``model.controlnet`` is
        None, else loaded from that hub id, folder or single file.

    Raises:
        authface.models.loading.ModelNotFoundError, FileNotFoundError, ValueError: from the model loader.
    """
    from diffusers import ControlNetModel

    from ..models.loading import load_base_components, load_controlnet

    m = cfg.model
    if m.base == TINY_RANDOM_BASE:
        comps = tiny_random_components(cfg.seed)
    else:
        comps, _ = load_base_components(m.base, torch.float32, m.single_file_config, m.revision, m.variant,
                                        original_config=m.single_file_original_config)  # fmt: skip
    if m.controlnet is None:
        comps["controlnet"] = ControlNetModel.from_unet(comps["unet"])
    else:
        comps["controlnet"] = load_controlnet(m.controlnet, torch.float32, m.single_file_config, m.revision)
    return comps


def add_lora(unet, rank: int, alpha: int, targets: Sequence[str]) -> None:
    """Add a trainable peft LoRA adapter (Gaussian init) to the attention projections ``targets`` of ``unet``."""
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(targets))
    unet.add_adapter(config)


def configure_trainable(comps: dict, model: TrainModelConfig, mask_channel: bool = False) -> list[torch.nn.Parameter]:
    """Freeze ``comps`` (from :func:`load_components`), add what ``model`` trains, return the trainable parameters.

    Trained: LoRA on the UNet (``model.train_lora``), the whole ControlNet (``model.train_controlnet``) or only its
    quality embedding (``model.quality_prior`` without ``train_controlnet``); gradient checkpointing on both when
    asked. ``mask_channel`` (task inpaint): the ControlNet's condition gets the zero-initialised mask channel
    (:func:`authface.models.mask_channel.add_mask_channel`). The parameters come UNet's first, then the ControlNet's. Modifies ``comps["unet"]`` and
    ``comps["controlnet"]`` in place and draws the global RNG (LoRA and prior initialisation).
    """
    from ..models.quality_prior import add_quality_prior

    unet, controlnet = comps["unet"], comps["controlnet"]
    for module in (comps["vae"], comps["text_encoder"], comps.get("text_encoder_2"), unet, controlnet):
        if module is not None:
            module.requires_grad_(False)
    if model.train_lora:
        add_lora(unet, model.lora_rank, model.lora_alpha, model.lora_targets)
    if model.quality_prior:
        add_quality_prior(controlnet)
    if mask_channel:
        from ..models.mask_channel import add_mask_channel

        add_mask_channel(controlnet)
    if model.train_controlnet:
        controlnet.requires_grad_(True)
    elif model.quality_prior:
        controlnet.class_embedding.requires_grad_(True)
    if model.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        controlnet.enable_gradient_checkpointing()
    return [p for m in (unet, controlnet) for p in m.parameters() if p.requires_grad]


def is_trained(module: torch.nn.Module) -> bool:
    """Whether any parameter of ``module`` requires a gradient."""
    return any(p.requires_grad for p in module.parameters())


def check_optimizer(optim: OptimConfig) -> None:
    """Stop before any model is loaded when ``optim`` asks for something not installed.

    Raises:
        ConfigError: ``optim.adam_8bit`` without bitsandbytes (no silent fallback to a 4x larger optimiser state).
    """
    import importlib.util

    if optim.adam_8bit and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "optim.adam_8bit=true needs bitsandbytes, which is not installed: pip install 'authface[train]' "
            "(Linux with a CUDA GPU), or set optim.adam_8bit=false for torch's AdamW"
        )


def make_optimizer(params: Iterable[torch.nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW: bitsandbytes' 8-bit AdamW with ``optim.adam_8bit``, else torch's.

    Raises:
        ConfigError: ``optim.adam_8bit`` without bitsandbytes (see :func:`check_optimizer`).
    """
    check_optimizer(optim)
    if optim.adam_8bit:
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=optim.learning_rate, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.learning_rate, weight_decay=optim.weight_decay)


def sdxl_vae_needs_upcast(comps: dict) -> bool:
    """Whether ``comps`` is SDXL (has ``text_encoder_2``) with a VAE that overflows in float16, by the SDXL
    pipeline's rule (:func:`authface.pipeline.decode.sdxl_force_upcast`)."""
    from ..pipeline.decode import sdxl_force_upcast

    return comps.get("text_encoder_2") is not None and sdxl_force_upcast(comps["vae"])


def weight_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype of the frozen weights: float16 / bfloat16 under mixed precision, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def place_components(comps: dict, device, dtype: torch.dtype, cast_denoisers: bool | None = None) -> None:
    """Move the VAE, text encoder(s), UNet and ControlNet of ``comps`` to ``device``, frozen weights in ``dtype``
    (the compute dtype) and every trainable parameter (LoRA, a trained ControlNet, the quality embedding) in
    float32, as diffusers' LoRA scripts do (``cast_training_params``).

    The VAE and text encoder(s) are always cast, except SDXL's VAE in float16, which overflows (NaN) there and stays
    float32 unless its config clears ``force_upcast`` (as the SDXL pipeline decides, :func:`sdxl_vae_needs_upcast`). The UNet's and ControlNet's frozen weights are cast when
    ``cast_denoisers`` (default: ``device`` is not the CPU): CPU autocast does not cover GroupNorm, so a bf16
    GroupNorm fed by a float32 LoRA sum fails there; on CPU they stay float32. Call after
    :func:`configure_trainable` and before the optimiser is built. In place; the parameter objects stay the same.
    """
    from diffusers.training_utils import cast_training_params

    if cast_denoisers is None:
        cast_denoisers = torch.device(device).type != "cpu"
    for key in ("vae", "text_encoder", "text_encoder_2", "unet", "controlnet"):
        if comps.get(key) is None:  # text_encoder_2: SDXL only
            continue
        cast = key in ("vae", "text_encoder", "text_encoder_2") or cast_denoisers
        if key == "vae" and dtype == torch.float16 and sdxl_vae_needs_upcast(comps):
            cast = False
            logger.info("SDXL's VAE overflows in float16: it stays float32 (an fp16-fixed VAE config clears "
                        "force_upcast)")  # fmt: skip
        want = dtype if cast else torch.float32
        # a dtype only when it changes: diffusers logs a note for every .to(dtype=...) of some models
        comps[key].to(device) if comps[key].dtype == want else comps[key].to(device, dtype=want)
    if dtype != torch.float32:
        cast_training_params([comps["unet"], comps["controlnet"]], dtype=torch.float32)
        if not cast_denoisers:
            logger.info("mixed precision on %s: the UNet and ControlNet stay float32 (CPU autocast)", device)
