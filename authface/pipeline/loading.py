"""Assemble and configure a whole :class:`AuthFacePipeline` (the components come from ``authface.models.loading``).

    pipe = load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5",
                         controlnet="lllyasviel/control_v11f1e_sd15_tile", dtype=torch.float16)
    pipe = load_pipeline("my-authface-model/")          # an AuthFace model folder (has its own ControlNet)
    pipe = load_pipeline("stabilityai/stable-diffusion-xl-base-1.0", dtype=torch.float16)  # SDXL: AuthFaceXLPipeline
    pipe = load_pipeline("realisticVision.safetensors", controlnet="control_tile.safetensors",
                         single_file_config="sd15-configs/",   # offline single files need local configs
                         controlnet_single_file_config="tile-config/")  # the ControlNet's own config.json
    set_scheduler(pipe, "dpm++")
    configure_pipeline(pipe, torch.device("cuda"), offload="model")

An AuthFace model folder (its ``model_index.json`` lists a ControlNet) is assembled by diffusers'
``AuthFacePipeline.from_pretrained`` (``AuthFaceXLPipeline`` for SDXL); a plain Stable Diffusion base (folder,
hub id or single file) by ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline`` ``from_pretrained`` /
``from_single_file`` plus a separately loaded ControlNet. The base's family, read from its JSON files or file
header before any weights load, picks the pipeline class and the default ControlNet (:mod:`.bases`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import DEFAULT_CONTROLNET, Attention, Offload, choices
from ..models.loading import (
    load_base_components,
    load_controlnet,
    load_from_hub,
    load_local,
    load_vae,
    make_scheduler,
    model_index,
    pipeline_dtype_kwargs,
)
from ..models.references import (
    check_model_folder,
    check_supported,
    detect_base,
    find_missing,
    locate,
    not_found_error,
    offline_reason,
    resolve_model_ref,
)
from .bases import check_controlnet_matches, default_controlnet
from .pipeline_authface import AuthFacePipeline
from .pipeline_authface_xl import AuthFaceXLPipeline

logger = logging.getLogger(__name__)

_NO_CONTROLNET = (None, "none", "")


def load_pipeline(
    model: str,
    controlnet: str | None = "auto",
    lora: str | None = None,
    lora_scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    single_file_config: str | None = None,
    revision: str | None = None,
    variant: str | None = None,
    controlnet_single_file_config: str | None = None,
    vae: str | None = None,
    original_config: str | None = None,
) -> AuthFacePipeline:
    """Assemble an :class:`AuthFacePipeline` (an :class:`AuthFaceXLPipeline` for SDXL bases) from a base model +
    ControlNet (+ LoRA, fused).

    ``model``: an AuthFace model folder or hub id, a diffusers Stable Diffusion (1.x, 2.x, XL) folder or hub id,
    or a single-file checkpoint. ``controlnet``: "auto" uses the model's own ControlNet if it has one, else the
    default for the base's family (SD 1.x: the SD 1.5 tile ControlNet; SDXL: xinsir/controlnet-tile-sdxl-1.0; SD
    2.x: none, an error); "none"/None requires the model to have one; anything else is a hub id, folder or file
    and replaces the model's own. ``lora``: a LoRA file or folder (``save_lora_weights`` layout), fused at
    ``lora_scale`` so sampling runs at the base model's speed. ``single_file_config``: the diffusers config folder
    (or hub id) of a single-file base; ``original_config``: its original LDM inference YAML (optional; defines
    the UNet and VAE); ``controlnet_single_file_config``: a folder holding the config.json of a single-file
    ControlNet (default: ``single_file_config``'s ``controlnet/``, else diffusers' inference).
    ``vae``: a VAE (hub id, folder or file) replacing the base's, e.g. one that is stable in float16.

    Before any weights are loaded, every reference is resolved (a missing path, or hub ids that are not cached
    while the hub cannot be used, are reported together in one error) and the base's family is read from its
    JSON files or file header. Without ``HF_HUB_OFFLINE``, "no network" is detected once (a 2 s connection
    check) and the Hugging Face cache is used.

    Raises:
        ModelPathNotFoundError (also a FileNotFoundError): a local path that does not exist (named).
        ModelNotFoundError: hub ids that are not cached and cannot be fetched (the message names the download
            command, the options that take local copies and HF_HUB_OFFLINE=1).
        UnsupportedModelError (a ValueError): a ControlNet given as the base.
        CorruptModelError (a ValueError): a damaged or incomplete local file or folder (named, with what is wrong).
        FileNotFoundError: the LoRA path does not exist.
        ValueError: a folder without model_index.json, not a checkpoint file, no ControlNet (or none by default
            for an SD 2.x base), a ControlNet made for another base family.
    """
    check_available(model, controlnet, revision)
    src = locate(model, "model", revision)
    family = detect_base(src, revision)
    check_supported(family, model)
    cls = AuthFaceXLPipeline if family == "sdxl" else AuthFacePipeline
    index = None if isinstance(src, Path) and src.is_file() else model_index(src, revision)
    cn_args = (dtype, single_file_config, revision, variant, controlnet_single_file_config)
    cn_ref = controlnet
    if index is not None and "controlnet" in index:  # an AuthFace model: diffusers assembles it
        extra = {}
        if controlnet not in (*_NO_CONTROLNET, "auto"):
            extra["controlnet"] = load_controlnet(controlnet, *cn_args)
        else:
            cn_ref = f"the ControlNet of {model}"
        pipe = _from_pretrained(cls, src, index, dtype, revision, variant, **extra)
    else:
        if controlnet in _NO_CONTROLNET:
            raise ValueError(
                f"{model} has no ControlNet of its own; pass one with --controlnet (hub id, folder or file)"
            )
        cn_ref = default_controlnet(family) if controlnet == "auto" else controlnet
        comps, _ = load_base_components(model, dtype, single_file_config, revision, variant, original_config)
        pipe = cls(**comps, controlnet=load_controlnet(cn_ref, *cn_args))
    check_controlnet_matches(pipe.controlnet, pipe.unet, str(cn_ref))
    if vae:
        pipe.vae = load_vae(vae, dtype, revision)
    if lora:
        load_lora(pipe, lora, lora_scale)
    return pipe


def check_available(model: str, controlnet: str | None, revision: str | None = None) -> None:
    """Raise one error for every reference of a load that cannot be had, before anything is loaded: missing
    local paths (ModelPathNotFoundError), or hub ids not in the cache while the hub cannot be used
    (ModelNotFoundError naming each, its download command and option). With ``controlnet="auto"`` and a model
    that is not available, the default ControlNet is checked too (it is needed unless the model has its own)."""
    refs = [("model", model)]
    if controlnet == "auto":
        if not isinstance(resolve_model_ref(model, "model"), Path):
            refs.append(("ControlNet", DEFAULT_CONTROLNET))
    elif controlnet not in _NO_CONTROLNET:
        refs.append(("ControlNet", controlnet))
    missing = find_missing(refs, revision)
    if controlnet == "auto" and missing and missing[0][0] != "model":
        return  # the model is cached: whether it needs the default ControlNet is decided after reading it
    if missing:
        raise not_found_error(missing, offline_reason() or "")


def _from_pretrained(
    cls, src: Path | str, index: dict, dtype, revision, variant, **components
) -> AuthFacePipeline:
    kwargs = dict(variant=variant, **components, **pipeline_dtype_kwargs(dtype))
    if isinstance(src, Path):
        skip = set(components)
        check_model_folder(src, {k: v for k, v in index.items() if k not in skip})
        return load_local("AuthFace model folder", src, lambda: cls.from_pretrained(str(src), **kwargs))
    return load_from_hub("model", src, lambda: cls.from_pretrained(src, revision=revision, **kwargs))


def load_lora(pipe: AuthFacePipeline, lora: str, lora_scale: float = 1.0) -> None:
    """Load a LoRA file (``.safetensors``) or folder into ``pipe`` and fuse it at ``lora_scale``.

    Raises FileNotFoundError when ``lora`` does not exist."""
    lora_path = Path(lora).expanduser()
    if not lora_path.exists():
        raise FileNotFoundError(f"LoRA path {lora} does not exist")
    if lora_path.is_file():
        pipe.load_lora_weights(str(lora_path.parent), weight_name=lora_path.name, adapter_name="authface")
    else:
        pipe.load_lora_weights(str(lora_path), adapter_name="authface")
    pipe.fuse_lora(lora_scale=lora_scale)  # fused: sampling runs at the base model's speed


def set_scheduler(pipe: AuthFacePipeline, name: str) -> None:
    """Swap the scheduler by name (``authface.config.SchedulerName``; "default" keeps the model's own), keeping
    its config (betas, prediction type). Raises ValueError for an unknown name."""
    if name != "default":
        pipe.scheduler = make_scheduler(name, pipe.scheduler.config)


def configure_pipeline(
    pipe: AuthFacePipeline,
    device: torch.device,
    offload: str = "none",
    vae_slicing: bool = False,
    vae_tiling: bool = False,
    attention: str = "auto",
    progress_bar: bool = False,
) -> AuthFacePipeline:
    """Place the pipeline and turn on memory/speed options. SDPA is diffusers' default attention.

    ``offload``: ``authface.config.Offload`` ("model": diffusers' model CPU offload, the ControlNet placed once
    per call; "sequential": per-layer offload). ``attention``: ``authface.config.Attention`` ("auto" uses
    xformers on CUDA when installed). ``progress_bar``: show diffusers' progress bar (the CLI has its own).
    Raises ValueError for unknown names, ImportError for attention="xformers" without xformers.
    """
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif offload == "none":
        pipe.to(device)
    else:
        raise ValueError(f"offload must be one of {', '.join(choices(Offload))}; got {offload!r}")
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    if attention == "xformers" or (attention == "auto" and device.type == "cuda"):
        try:
            import xformers  # noqa: F401

            pipe.enable_xformers_memory_efficient_attention()
        except ImportError:
            if attention == "xformers":
                raise ImportError(
                    "attention=xformers needs xformers: pip install 'authface[xformers]'"
                ) from None
    elif attention not in choices(Attention):
        raise ValueError(f"attention must be one of {', '.join(choices(Attention))}; got {attention!r}")
    pipe.set_progress_bar_config(disable=not progress_bar)
    return pipe
