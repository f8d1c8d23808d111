"""Component loaders: hub ids, local folders and single-file checkpoints, honouring ``HF_HUB_OFFLINE``.

    controlnet = load_controlnet("lllyasviel/control_v11f1e_sd15_tile", torch.float16)
    components, index = load_base_components("stable-diffusion-v1-5/stable-diffusion-v1-5", torch.float16)
    decoder = load_tiny_decoder("madebyollin/taesd", torch.float16)

A reference is resolved once, by :func:`resolve_model_ref`: an existing local path is a path; a missing one is
reported as missing (:class:`ModelPathNotFoundError`, naming it), unless it is written as a hub id
(``owner/name``). Every model goes through diffusers' own loaders (``from_pretrained`` / ``from_single_file``).
Assembling a whole :class:`~authface.pipeline.AuthFacePipeline` is the pipeline layer's job
(:func:`authface.pipeline.load_pipeline`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ..config import Dtype, SchedulerName, choices

logger = logging.getLogger(__name__)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
#: Scheduler names (``authface.config.SchedulerName`` without "default") -> diffusers scheduler classes.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
}
#: The components of a Stable Diffusion base that AuthFace uses (no safety checker, no feature extractor).
BASE_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}  # fmt: skip


class ModelNotFoundError(OSError):
    """A model could not be found locally or fetched; the message says how to pass a local copy."""


class ModelPathNotFoundError(ModelNotFoundError, FileNotFoundError):
    """A local model path (not written as a hub id ``owner/name``) does not exist; the message names it."""


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


_LOCAL_FORMS = (
    "    a diffusers folder:       --model /path/to/folder   (Python: load_pipeline('/path/to/folder'))\n"
    "    a single-file checkpoint: --model /path/to/model.safetensors "
    "[--set model.single_file_config=/path/to/diffusers-config-folder]\n"
    "    a ControlNet:             --controlnet /path/to/folder-or-file\n"
    "  For an offline smoke test: `python -m authface.testing.tiny_model tiny-model` and --model tiny-model "
    "(random weights: its output is noise)."
)


def not_found_error(what: str, ref: str, err: Exception) -> ModelNotFoundError:
    """The error for a hub id that could not be loaded: why, and how to pass a local copy instead."""
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face hub could not be reached or has no such model"
    first_line = str(err).splitlines()[0] if str(err) else ""
    return ModelNotFoundError(
        f"could not load the {what} '{ref}': no local copy was found and {why} ({type(err).__name__}: "
        f"{first_line}).\n"
        f"  Fix: pass a local copy instead of a hub id (download it where there is internet with\n"
        f"  `huggingface-cli download {ref} --local-dir /path/to/folder`) —\n{_LOCAL_FORMS}"
    )


def is_hub_id(ref: str) -> bool:
    """True for a reference written as a hub repository id ``owner/name`` (huggingface_hub's grammar).

    Anything else — a leading ``.``, ``/`` or ``~``, a backslash, more than one slash, no slash, or a
    checkpoint suffix — is a local path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if ref.startswith((".", "/", "~")) or "\\" in ref or ref.count("/") != 1:
        return False
    if ref.lower().endswith(SINGLE_FILE_SUFFIXES):
        return False
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def resolve_model_ref(ref: str | os.PathLike, what: str = "model") -> Path | str:
    """An existing local path (``Path``), or a hub id (``str``, see :func:`is_hub_id`).

    Raises:
        ModelPathNotFoundError: ``ref`` is neither an existing path nor a hub id (the message names the path).
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if is_hub_id(text):
        return text
    raise ModelPathNotFoundError(
        f"{what} path '{text}' does not exist (looked for {path.absolute()}). A hub id is written owner/name; "
        f"a local model is one of —\n{_LOCAL_FORMS}"
    )


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
        raise ValueError(f"device {name!r} asked for but CUDA is not available (torch {torch.__version__}); use --device cpu")
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


def model_index(ref: Path | str, revision: str | None = None) -> dict | None:
    """model_index.json of a resolved reference (local folder or hub id); None for a folder without one."""
    from diffusers import DiffusionPipeline

    if isinstance(ref, Path):
        index = ref / "model_index.json"
        return json.loads(index.read_text()) if index.is_file() else None
    try:
        return DiffusionPipeline.load_config(ref, revision=revision)
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not available"
        raise not_found_error("model", ref, err) from err


def check_supported(index: dict, ref: str) -> None:
    """Raise ValueError for a model family this version cannot run (SDXL)."""
    if "text_encoder_2" in index:
        raise ValueError(
            f"{ref} is an SDXL model; this version of AuthFacePipeline supports SD 1.x/2.x bases (SDXL is planned)"
        )


def load_controlnet(ref: str, dtype: torch.dtype, single_file_config: str | None = None, revision=None, variant=None):
    """A ``ControlNetModel`` from a hub id, a local folder, or a single file.

    Raises ModelPathNotFoundError (missing local path), ModelNotFoundError (hub id not available)."""
    from diffusers import ControlNetModel

    src = resolve_model_ref(ref, "ControlNet")
    if isinstance(src, Path) and src.is_file():
        return ControlNetModel.from_single_file(str(src), config=single_file_config, torch_dtype=dtype)
    if isinstance(src, Path):
        return ControlNetModel.from_pretrained(str(src), torch_dtype=dtype, revision=revision, variant=variant)
    try:
        return ControlNetModel.from_pretrained(src, torch_dtype=dtype, revision=revision, variant=variant)
    except Exception as err:  # noqa: BLE001
        raise not_found_error("ControlNet", ref, err) from err


def load_base_components(ref: str, dtype, single_file_config=None, revision=None, variant=None) -> tuple[dict, dict | None]:
    """(components, model_index or None) of a Stable Diffusion base given as folder, hub id or single file.

    ``components`` holds :data:`BASE_COMPONENTS`; diffusers' ``StableDiffusionPipeline.from_pretrained`` /
    ``from_single_file`` assembles them (the safety checker is never loaded or downloaded).
    Raises ModelPathNotFoundError, ModelNotFoundError, or ValueError (not a checkpoint file, a folder without
    model_index.json, an SDXL model).
    """
    from diffusers import StableDiffusionPipeline

    src = resolve_model_ref(ref, "model")
    none = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if isinstance(src, Path) and src.is_file():
        if not src.name.lower().endswith(SINGLE_FILE_SUFFIXES):
            raise ValueError(f"{ref}: not a checkpoint file; expected one of {', '.join(SINGLE_FILE_SUFFIXES)}")
        try:
            pipe = StableDiffusionPipeline.from_single_file(str(src), config=single_file_config, torch_dtype=dtype,
                                                            **none)  # fmt: skip
        except Exception as err:  # noqa: BLE001
            raise not_found_error("single-file checkpoint (its config)", ref, err) from err
        return {k: pipe.components[k] for k in BASE_COMPONENTS}, None
    index = model_index(src, revision)
    if index is None:
        raise ValueError(
            f"{ref} is a folder but has no model_index.json: pass a diffusers pipeline folder "
            f"(save_pretrained layout), an AuthFace model folder, or a single-file checkpoint"
        )
    check_supported(index, ref)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(str(src), revision=revision, variant=variant, **none,
                                                       **pipeline_dtype_kwargs(dtype))  # fmt: skip
    except Exception as err:  # noqa: BLE001
        if isinstance(src, Path):
            raise
        raise not_found_error("model", ref, err) from err
    return {k: pipe.components[k] for k in BASE_COMPONENTS}, index


def load_tiny_decoder(ref: str, dtype: torch.dtype):
    """A cheap ``AutoencoderTiny`` decoder for guidance (hub id such as madebyollin/taesd, or a local folder)."""
    from diffusers import AutoencoderTiny

    src = resolve_model_ref(ref, "tiny decoder")
    if isinstance(src, Path):
        return AutoencoderTiny.from_pretrained(str(src), torch_dtype=dtype)
    try:
        return AutoencoderTiny.from_pretrained(src, torch_dtype=dtype)
    except Exception as err:  # noqa: BLE001
        raise not_found_error("tiny decoder", ref, err) from err
