"""The one loader: hub ids, local folders and single-file checkpoints, honouring ``HF_HUB_OFFLINE``.

    pipe = load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5",
                         controlnet="lllyasviel/control_v11f1e_sd15_tile", dtype=torch.float16)
    pipe = load_pipeline("my-authface-model/")          # an AuthFace model folder (has its own ControlNet)
    pipe = load_pipeline("realisticVision.safetensors", controlnet="control_tile.safetensors",
                         single_file_config="sd15-configs/")   # offline single files need local configs

Every model goes through diffusers' own loaders (``from_pretrained`` / ``from_single_file`` /
``load_lora_weights``); weights are read with safetensors where the checkpoint offers them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
}


class ModelNotFoundError(OSError):
    """A model could not be found locally or fetched; the message says how to pass a local copy."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _not_found(what: str, ref: str, err: Exception) -> ModelNotFoundError:
    why = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub could not be reached or has no such model"
    return ModelNotFoundError(
        f"could not load the {what} '{ref}': no local copy was found and {why} ({type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}).\n"
        f"  Fix: pass a local copy instead of a hub id —\n"
        f"    a diffusers folder:       --model /path/to/folder   (download it where there is internet with\n"
        f"                              `huggingface-cli download {ref} --local-dir /path/to/folder`)\n"
        f"    a single-file checkpoint: --model /path/to/model.safetensors "
        f"[--set model.single_file_config=/path/to/diffusers-config-folder]\n"
        f"    a ControlNet:             --controlnet /path/to/folder-or-file\n"
        f"  For an offline smoke test: `python -m authface.testing.tiny_model tiny-model` and --model tiny-model "
        f"(random weights: its output is noise)."
    )


def _is_path_like(ref: str) -> bool:
    return (
        os.path.exists(ref)
        or ref.startswith((".", "/", "~"))
        or ref.lower().endswith(SINGLE_FILE_SUFFIXES)
        or ref.strip("/").count("/") > 1  # a hub id is owner/name: more slashes make it a path
    )


def resolve_device(name: str = "auto") -> torch.device:
    """auto -> cuda if available, else mps, else cpu; explicit names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available (torch {torch.__version__}); use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for but MPS is not available; use --device cpu")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto -> float16 on CUDA/MPS, float32 on CPU."""
    table = {
        "float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
        "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    }  # fmt: skip
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; use auto, float32, float16 or bfloat16")
    return table[name]


def _model_index(ref: str, revision: str | None) -> dict | None:
    """model_index.json of a local folder or hub repo; None for a repo/folder without one."""
    from diffusers import DiffusionPipeline

    path = Path(ref).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        return json.loads(index.read_text()) if index.is_file() else None
    try:
        return DiffusionPipeline.load_config(ref, revision=revision)
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not available"
        raise _not_found("base model", ref, err) from err


def load_controlnet(ref: str, dtype: torch.dtype, single_file_config: str | None = None, revision=None, variant=None):
    """A ControlNet from a hub id, a local folder, or a single file."""
    from diffusers import ControlNetModel

    path = Path(ref).expanduser()
    try:
        if path.is_file():
            return ControlNetModel.from_single_file(str(path), config=single_file_config, torch_dtype=dtype)
        if _is_path_like(ref) and not path.exists():
            raise FileNotFoundError(f"ControlNet path {ref} does not exist")
        return ControlNetModel.from_pretrained(str(path) if path.exists() else ref, torch_dtype=dtype,
                                               revision=revision, variant=variant)  # fmt: skip
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _not_found("ControlNet", ref, err) from err


def load_base_components(ref: str, dtype, single_file_config=None, revision=None, variant=None) -> tuple[dict, dict | None]:
    """(components dict, model_index or None) of a base model given as folder, hub id or single file."""
    from diffusers import StableDiffusionPipeline

    path = Path(ref).expanduser()
    if path.is_file():
        if not path.name.lower().endswith(SINGLE_FILE_SUFFIXES):
            raise ValueError(f"{ref}: not a checkpoint file; expected one of {', '.join(SINGLE_FILE_SUFFIXES)}")
        try:
            pipe = StableDiffusionPipeline.from_single_file(
                str(path), config=single_file_config, torch_dtype=dtype, safety_checker=None
            )
        except Exception as err:  # noqa: BLE001
            raise _not_found("single-file checkpoint (its config)", ref, err) from err
        return dict(pipe.components), None
    if _is_path_like(ref) and not path.exists():
        raise FileNotFoundError(f"model path {ref} does not exist (a hub id looks like owner/name)")
    index = _model_index(ref, revision)
    if index is None:
        raise ValueError(
            f"{ref} is a folder but has no model_index.json: pass a diffusers pipeline folder "
            f"(save_pretrained layout), an AuthFace model folder, or a single-file checkpoint"
        )
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.schedulers import DDIMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    src = str(path) if path.exists() else ref
    kw = dict(revision=revision)
    try:
        comps = dict(
            vae=AutoencoderKL.from_pretrained(src, subfolder="vae", torch_dtype=dtype, variant=variant, **kw),
            text_encoder=CLIPTextModel.from_pretrained(src, subfolder="text_encoder", dtype=dtype, variant=variant, **kw),
            tokenizer=CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", **kw),
            unet=UNet2DConditionModel.from_pretrained(src, subfolder="unet", torch_dtype=dtype, variant=variant, **kw),
        )
        sched_cls = index.get("scheduler", [None, "DDIMScheduler"])[1]
        import diffusers

        comps["scheduler"] = getattr(diffusers, sched_cls, DDIMScheduler).from_pretrained(src, subfolder="scheduler", **kw)
    except (FileNotFoundError, ValueError):
        raise
    except Exception as err:  # noqa: BLE001
        raise _not_found("base model", ref, err) from err
    if "text_encoder_2" in index:
        raise ValueError(
            f"{ref} is an SDXL model; this version of AuthFacePipeline supports SD 1.x/2.x bases (SDXL is planned)"
        )
    return comps, index


def load_tiny_decoder(ref: str, dtype: torch.dtype):
    """A cheap ``AutoencoderTiny`` decoder for guidance (hub id such as madebyollin/taesd, or a local folder)."""
    from diffusers import AutoencoderTiny

    path = Path(ref).expanduser()
    if _is_path_like(ref) and not path.exists():
        raise FileNotFoundError(f"tiny decoder path {ref} does not exist")
    try:
        return AutoencoderTiny.from_pretrained(str(path) if path.exists() else ref, torch_dtype=dtype)
    except Exception as err:  # noqa: BLE001
        raise _not_found("tiny decoder", ref, err) from err


def set_scheduler(pipe, name: str) -> None:
    """Swap the scheduler by name ("default" keeps the model's own), keeping its config (betas, prediction type)."""
    if name == "default":
        return
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; use default or one of {', '.join(SCHEDULERS)}")
    pipe.scheduler = getattr(diffusers, SCHEDULERS[name]).from_config(pipe.scheduler.config)


def load_pipeline(
    model: str,
    controlnet: str | None = "auto",
    lora: str | None = None,
    lora_scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    single_file_config: str | None = None,
    revision: str | None = None,
    variant: str | None = None,
):
    """Assemble an :class:`AuthFacePipeline` from a base model + ControlNet (+ LoRA).

    ``controlnet``: "auto" uses the model folder's own ControlNet if it has one, else the default SD 1.5 tile
    ControlNet; "none"/None requires the model folder to have one; anything else is a hub id, folder or file.
    """
    from ..config import DEFAULT_CONTROLNET
    from ..pipeline import AuthFacePipeline

    comps, index = load_base_components(model, dtype, single_file_config, revision, variant)
    has_own = index is not None and "controlnet" in index
    if controlnet in ("auto", None, "none", "") and has_own:
        src = str(Path(model).expanduser()) if Path(model).expanduser().exists() else model
        from diffusers import ControlNetModel

        try:
            comps["controlnet"] = ControlNetModel.from_pretrained(src, subfolder="controlnet", torch_dtype=dtype,
                                                                  revision=revision)  # fmt: skip
        except Exception as err:  # noqa: BLE001
            raise _not_found("ControlNet of", model, err) from err
    elif controlnet in (None, "none", ""):
        raise ValueError(f"{model} has no ControlNet of its own; pass one with --controlnet (hub id, folder or file)")
    else:
        ref = DEFAULT_CONTROLNET if controlnet == "auto" else controlnet
        comps["controlnet"] = load_controlnet(ref, dtype, single_file_config, revision)
    keep = ("vae", "text_encoder", "tokenizer", "unet", "controlnet", "scheduler")
    pipe = AuthFacePipeline(**{k: comps[k] for k in keep})
    if lora:
        lora_path = Path(lora).expanduser()
        if not lora_path.exists():
            raise FileNotFoundError(f"LoRA path {lora} does not exist")
        if lora_path.is_file():
            pipe.load_lora_weights(str(lora_path.parent), weight_name=lora_path.name, adapter_name="authface")
        else:
            pipe.load_lora_weights(str(lora_path), adapter_name="authface")
        pipe.fuse_lora(lora_scale=lora_scale)  # fused: sampling runs at the base model's speed
    return pipe


def configure_pipeline(
    pipe,
    device: torch.device,
    offload: str = "none",
    vae_slicing: bool = False,
    vae_tiling: bool = False,
    attention: str = "auto",
):
    """Place the pipeline and turn on memory/speed options. SDPA is diffusers' default attention."""
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif offload == "none":
        pipe.to(device)
    else:
        raise ValueError(f"offload must be none, model or sequential; got {offload!r}")
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
                raise ImportError("attention=xformers needs xformers: pip install 'authface[xformers]'") from None
    elif attention not in ("auto", "sdpa"):
        raise ValueError(f"attention must be auto, sdpa or xformers; got {attention!r}")
    pipe.set_progress_bar_config(disable=True)
    return pipe
