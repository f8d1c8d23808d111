"""Component loaders: hub ids, local folders and single-file checkpoints, honouring ``HF_HUB_OFFLINE``.

    controlnet = load_controlnet("lllyasviel/control_v11f1e_sd15_tile", torch.float16)
    components, index = load_base_components("stable-diffusion-v1-5/stable-diffusion-v1-5", torch.float16)
    decoder = load_tiny_decoder("madebyollin/taesd", torch.float16)
    vae = load_vae("stabilityai/sd-vae-ft-mse", torch.float16)

What a reference is (local folder, single file, hub id, missing path; its model family; whether a local model is
intact) is decided first, without loading weights, by :mod:`authface.models.references` (:func:`locate`,
:func:`detect_base`, :func:`check_single_file`, :func:`check_model_folder`): the base's family (SD 1.x/2.x or SDXL)
picks the diffusers pipeline that assembles it, a ControlNet given as the base is refused up front, a
damaged local file is reported as such (named, with what is wrong), and when the hub cannot be used (HF_HUB_OFFLINE,
or no network) a hub id is loaded from its Hugging Face cache folder, so the hub is never asked. Every model then
goes through diffusers' own loaders (``from_pretrained`` / ``from_single_file``): a failure on a local path is a
:class:`CorruptModelError` naming it, a failure on a hub id a :class:`ModelNotFoundError` naming the download
command. Assembling a whole :class:`~authface.pipeline.AuthFacePipeline` is the pipeline layer's job
(:func:`authface.pipeline.load_pipeline`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch

from ..config import Dtype, SchedulerName, choices
from .few_step import FEW_STEP_SCHEDULERS
from .references import (
    SINGLE_FILE_SUFFIXES,
    CorruptModelError,
    ModelNotFoundError,
    ModelPathNotFoundError,
    UnsupportedModelError,
    cached_snapshot,
    check_model_folder,
    check_single_file,
    check_supported,
    detect_base,
    download_command,
    family_of_checkpoint,
    family_of_folder,
    hub_offline,
    is_hub_id,
    locate,
    not_found_error,
    offline_reason,
    read_json,
    resolve_model_ref,
)

logger = logging.getLogger(__name__)

__all__ = [  # the loaders, and (for compatibility) the reference names that used to live here
    "BASE_COMPONENTS", "BASE_COMPONENTS_XL", "SCHEDULERS", "SINGLE_FILE_SUFFIXES", "CorruptModelError", "ModelNotFoundError",
    "ModelPathNotFoundError", "UnsupportedModelError", "detect_base", "download_command", "hub_offline", "is_hub_id",
    "load_base_components", "load_controlnet", "load_from_hub", "load_local", "load_tiny_decoder", "load_vae",
    "make_scheduler", "model_index", "not_found_error", "pipeline_dtype_kwargs", "resolve_device", "resolve_dtype",
    "resolve_model_ref", "single_file_config_kwargs",
]  # fmt: skip

#: Scheduler names (``authface.config.SchedulerName`` without "default") -> diffusers scheduler classes.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    **FEW_STEP_SCHEDULERS,  # lcm, tcd: authface.models.few_step
}
#: The components of a Stable Diffusion base that AuthFace uses (no safety checker, no feature extractor).
BASE_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
#: The components of an SDXL base that AuthFace uses (two text encoders and tokenizers; no image encoder).
BASE_COMPONENTS_XL = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")
#: Suffixes of original (LDM) inference configs, accepted by single-file loading as ``original_config``.
YAML_SUFFIXES = (".yaml", ".yml")
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}  # fmt: skip


def resolve_device(name: str = "auto") -> torch.device:
    """auto -> cuda if available, else mps, else cpu; explicit names are checked (ValueError if unavailable)."""
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
        raise ValueError(
            f"device {name!r} asked for but CUDA is not available (torch {torch.__version__}); use --device cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for but MPS is not available; use --device cpu")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto -> float16 on CUDA/MPS, float32 on CPU; other names from ``authface.config.Dtype``."""
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(choices(Dtype))}")
    return _DTYPES[name]


def pipeline_dtype_kwargs(dtype: torch.dtype) -> dict:
    """The dtype keyword of ``DiffusionPipeline.from_pretrained``: ``dtype=`` in diffusers versions that have it
    (they deprecate ``torch_dtype=`` with a FutureWarning), ``torch_dtype=`` in older ones (which would ignore
    ``dtype=`` and load float32). Feature-detected: diffusers resolves the two with ``utils._resolve_dtype``."""
    import diffusers.utils

    return {"dtype": dtype} if hasattr(diffusers.utils, "_resolve_dtype") else {"torch_dtype": dtype}


def make_scheduler(name: str, config):
    """A diffusers scheduler by AuthFace name (``authface.config.SchedulerName`` except "default"), built from
    ``config`` (the model's own scheduler config: betas, prediction type)."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; use one of {', '.join(choices(SchedulerName))}")
    return getattr(diffusers, SCHEDULERS[name]).from_config(config)


_CONFIG_FILES = ("*.json", "*.txt")  # what a single-file checkpoint needs from its config repo


def load_local(what: str, path: Path, load):
    """``load()`` for a checked local path; any failure is reported as a problem of that path (not as "not
    found"): CorruptModelError naming the path, the loader's error type and first line."""
    try:
        return load()
    except (CorruptModelError, ModelNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001 - diffusers/transformers raise many types for a bad local model
        first = str(err).splitlines()[0] if str(err) else ""
        raise CorruptModelError(
            f"{path}: could not be loaded as a {what}: {type(err).__name__}: {first}"
        ) from err


def load_from_hub(what: str, ref: str, load):
    """``load()`` for a hub id; any failure becomes the :class:`ModelNotFoundError` that says how to pass a local
    copy (with the download command of the installed huggingface_hub)."""
    try:
        return load()
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not available"
        reason = (
            offline_reason()
            or "the Hugging Face hub has no such repository, denied access, or the download failed"
        )
        raise not_found_error([(what, ref)], reason, err) from err


def model_index(src: Path | str, revision: str | None = None) -> dict | None:
    """model_index.json of a located reference (local folder or hub id); None for a folder without one."""
    from diffusers import DiffusionPipeline

    if isinstance(src, Path):
        return read_json(src, "model_index.json")
    return load_from_hub("model", src, lambda: DiffusionPipeline.load_config(src, revision=revision))


def single_file_config_kwargs(
    src: Path, shapes: dict, config: str | None, what: str, option: str, subfolder: str = ""
):
    """The ``config=`` (and ``subfolder=``) keywords of diffusers' ``from_single_file`` for the file ``src``:
    ``config`` if given (a folder — one holding ``subfolder``/ is used with it — or a hub id; for a model such as
    a ControlNet, also an original inference YAML, passed as ``original_config=``), else the repo
    diffusers infers from the file's tensors, taken from the Hugging Face cache when the hub cannot be used.

    Raises ModelPathNotFoundError (``config`` missing), CorruptModelError (a folder without the config file),
    ModelNotFoundError (the inferred repo is not cached while offline; the message names ``option``)."""
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    if config is not None:
        where = locate(config, f"{what} config")
        if isinstance(where, str):
            return {"config": where}
        if where.is_file() and where.suffix.lower() in YAML_SUFFIXES:  # the original LDM/ControlNet YAML
            return {"original_config": str(where)}
        if subfolder and (where / subfolder).is_dir() and not (where / "config.json").is_file():
            return {"config": str(where), "subfolder": subfolder}
        needed = "model_index.json" if what == "checkpoint" else "config.json"  # a pipeline's configs, or a model's
        if not subfolder and not (where / needed).is_file():
            raise CorruptModelError(f"{where}: no {needed}, which the single-file {what} {src} needs ({option})")
        return {"config": str(where)}
    repo = fetch_diffusers_config(shapes)["pretrained_model_name_or_path"]
    reason = offline_reason()
    if reason is None:
        return {"config": repo}
    snapshot = cached_snapshot(repo)
    if snapshot is None:
        raise ModelNotFoundError(
            f"the single-file {what} {src} needs its diffusers config, which diffusers takes from the hub repo "
            f"'{repo}': {reason} and it is not in the Hugging Face cache.\n"
            f"  Fix: pass a folder holding the config: {option}/path/to/config-folder "
            f"(download one where there is internet: {download_command(repo, '/path/to/config-folder', _CONFIG_FILES)});"
            f"\n  with network, run once without HF_HUB_OFFLINE=1 so that diffusers caches it."
        )
    return {"config": str(snapshot)}


def controlnet_source(src: Path) -> dict:
    """``subfolder="controlnet"`` for an AuthFace model folder given as a ControlNet, else nothing."""
    if not (src / "config.json").is_file() and (src / "controlnet" / "config.json").is_file():
        return {"subfolder": "controlnet"}
    return {}


def controlnet_config_from_yaml(yaml: str, shapes: dict) -> dict:
    """The diffusers ``ControlNetModel`` config of an original ControlNet inference YAML (e.g.
    control_v11f1e_sd15_tile.yaml) and the file's tensor shapes, by diffusers' own mapping.

    diffusers' ``create_controlnet_diffusers_config_from_ldm`` (used by ``from_single_file(original_config=...)``)
    calls ``create_unet_diffusers_config_from_ldm`` without the checkpoint in diffusers 0.42 (a TypeError); the
    same mapping is done here with it."""
    from diffusers.loaders import single_file_utils as sfu

    original = sfu.fetch_original_config(yaml, local_files_only=True)
    try:
        return {"_class_name": "ControlNetModel", **sfu.create_controlnet_diffusers_config_from_ldm(original, shapes)}
    except TypeError:
        pass
    unet = sfu.create_unet_diffusers_config_from_ldm(original, shapes, image_size=sfu.set_image_size(shapes))
    keys = ("in_channels", "down_block_types", "block_out_channels", "layers_per_block", "cross_attention_dim",
            "attention_head_dim", "use_linear_projection", "class_embed_type", "addition_embed_type",
            "addition_time_embed_dim", "projection_class_embeddings_input_dim", "transformer_layers_per_block")  # fmt: skip
    hint = original["model"]["params"]["control_stage_config"]["params"]["hint_channels"]
    return {"_class_name": "ControlNetModel", "conditioning_channels": hint, **{k: unet.get(k) for k in keys}}


def variant_if_present(folder: Path, variant: str | None) -> str | None:
    """``variant`` when ``folder`` holds weights of that variant (``*.{variant}.safetensors`` / ``.bin``), else
    None (with a note in the log): a base's ``--set model.variant=fp16`` must not fail on a ControlNet or VAE
    folder that ships only the main weights."""
    if variant and not any(folder.glob(f"*.{variant}.*")):
        logger.info("%s has no %s-variant weights; loading its main weights", folder, variant)
        return None
    return variant


def load_controlnet(ref: str, dtype: torch.dtype, single_file_config: str | None = None, revision=None, variant=None,
                    config: str | None = None):  # fmt: skip
    """A ``ControlNetModel`` from a hub id, a local folder (an AuthFace model folder: its ``controlnet/``), or a
    single file. A single file's config: ``config`` (a folder with config.json, or a hub id), else the
    ``controlnet/`` folder of ``single_file_config`` (the base's config folder) if it has one, else the repo
    diffusers infers from the file (cached when offline). The base's own config is never used for a ControlNet.

    Raises ModelPathNotFoundError (missing local path), ModelNotFoundError (hub id or config not available),
    CorruptModelError (a damaged or incomplete local file or folder, named)."""
    from diffusers import ControlNetModel

    src = locate(ref, "ControlNet", revision)
    if isinstance(src, Path) and src.is_file():
        shapes = check_single_file(src)
        if (
            config is None
            and single_file_config
            and (Path(single_file_config) / "controlnet" / "config.json").is_file()
        ):
            config = single_file_config
        kwargs = single_file_config_kwargs(
            src, shapes, config, "ControlNet", "--set model.controlnet_single_file_config=", subfolder="controlnet"
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="authface-controlnet-config-") as tmp:
            if "original_config" in kwargs:  # the original YAML -> a diffusers config folder (see below)
                yaml = kwargs.pop("original_config")
                config_json = load_local("ControlNet YAML", Path(yaml), lambda: controlnet_config_from_yaml(yaml, shapes))
                (Path(tmp) / "config.json").write_text(json.dumps(config_json))
                kwargs["config"] = tmp
            return load_local("ControlNet", src, lambda: ControlNetModel.from_single_file(
                str(src), torch_dtype=dtype, local_files_only=offline_reason() is not None, **kwargs))  # fmt: skip
    if isinstance(src, Path):
        sub = controlnet_source(src)
        folder = src / sub.get("subfolder", "")
        check_model_folder(folder, None)
        variant = variant_if_present(folder, variant)
        return load_local("ControlNet", src, lambda: ControlNetModel.from_pretrained(
            str(src), torch_dtype=dtype, variant=variant, **sub))  # fmt: skip
    return load_from_hub("ControlNet", src, lambda: ControlNetModel.from_pretrained(
        src, torch_dtype=dtype, revision=revision, variant=variant))  # fmt: skip


def _base_pipeline_class(family: str):
    """The diffusers pipeline class that assembles a base of ``family`` (and the components AuthFace keeps)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if family == "sdxl":
        return StableDiffusionXLPipeline, BASE_COMPONENTS_XL
    return StableDiffusionPipeline, BASE_COMPONENTS


def load_base_components(
    ref: str, dtype, single_file_config=None, revision=None, variant=None, original_config: str | None = None
) -> tuple[dict, dict | None]:
    """(components, model_index or None) of a Stable Diffusion (1.x, 2.x or XL) base: folder, hub id or single file.

    The family is decided first, from JSON files or the single file's header (:func:`detect_base`), before any
    weights are loaded. ``components`` holds :data:`BASE_COMPONENTS` (SD 1.x/2.x) or :data:`BASE_COMPONENTS_XL`
    (SDXL), assembled by diffusers' ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline``
    ``from_pretrained`` / ``from_single_file`` (no safety checker). ``original_config``: for a single file, the
    original LDM inference YAML (e.g. v1-inference.yaml, sd_xl_base.yaml) that defines the UNet and VAE; the
    text encoders, tokenizers and scheduler still come from ``single_file_config``.
    Raises ModelPathNotFoundError, ModelNotFoundError, UnsupportedModelError (a ControlNet), or
    CorruptModelError / ValueError (not a checkpoint file, damaged, a folder without model_index.json).
    """
    src = locate(ref, "model", revision)
    none = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if isinstance(src, Path) and src.is_file():
        shapes = check_single_file(src)
        family = family_of_checkpoint(shapes)
        check_supported(family, ref)
        cls, keep = _base_pipeline_class(family)
        none = none if cls.__name__ == "StableDiffusionPipeline" else {}
        kwargs = single_file_config_kwargs(src, shapes, single_file_config, "checkpoint",
                                           "--set model.single_file_config=")  # fmt: skip
        if original_config:
            kwargs["original_config"] = str(locate(original_config, "original config"))
        pipe = load_local("single-file checkpoint", src, lambda: cls.from_single_file(
            str(src), torch_dtype=dtype, local_files_only=offline_reason() is not None, **kwargs, **none))  # fmt: skip
        return {k: pipe.components[k] for k in keep}, None
    family = family_of_folder(src) if isinstance(src, Path) else detect_base(src, revision)
    check_supported(family, ref)
    cls, keep = _base_pipeline_class(family)
    none = none if cls.__name__ == "StableDiffusionPipeline" else {}
    index = model_index(src, revision)
    if index is None:
        raise CorruptModelError(
            f"{ref} is a folder but has no model_index.json: pass a diffusers pipeline folder "
            f"(save_pretrained layout), an AuthFace model folder, or a single-file checkpoint"
        )
    kwargs = dict(variant=variant, **none, **pipeline_dtype_kwargs(dtype))
    if isinstance(src, Path):
        check_model_folder(src, index)
        pipe = load_local("Stable Diffusion folder", src, lambda: cls.from_pretrained(str(src), **kwargs))
    else:
        pipe = load_from_hub("model", src, lambda: cls.from_pretrained(src, revision=revision, **kwargs))
    return {k: pipe.components[k] for k in keep}, index


def load_tiny_decoder(ref: str, dtype: torch.dtype):
    """A cheap ``AutoencoderTiny`` decoder for guidance (hub id such as madebyollin/taesd, or a local folder)."""
    from diffusers import AutoencoderTiny

    src = locate(ref, "tiny decoder")
    if isinstance(src, Path):
        check_model_folder(src, None)
        return load_local(
            "tiny decoder", src, lambda: AutoencoderTiny.from_pretrained(str(src), torch_dtype=dtype)
        )
    return load_from_hub("tiny decoder", src, lambda: AutoencoderTiny.from_pretrained(src, torch_dtype=dtype))


def load_vae(ref: str, dtype: torch.dtype, revision: str | None = None):
    """An ``AutoencoderKL`` to replace a base's VAE (e.g. one stable in float16): a hub id, a folder (a
    pipeline folder: its ``vae/``) or a single file (config inferred by diffusers; cached when offline)."""
    from diffusers import AutoencoderKL

    src = locate(ref, "VAE", revision)
    if isinstance(src, Path) and src.is_file():
        check_single_file(src)
        return load_local("VAE", src, lambda: AutoencoderKL.from_single_file(
            str(src), torch_dtype=dtype, local_files_only=offline_reason() is not None))  # fmt: skip
    if isinstance(src, Path):
        sub = {"subfolder": "vae"} if (src / "vae" / "config.json").is_file() else {}
        check_model_folder(src / sub.get("subfolder", ""), None)
        return load_local(
            "VAE", src, lambda: AutoencoderKL.from_pretrained(str(src), torch_dtype=dtype, **sub)
        )
    return load_from_hub(
        "VAE", src, lambda: AutoencoderKL.from_pretrained(src, torch_dtype=dtype, revision=revision)
    )
