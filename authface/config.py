"""Typed, self-documenting configuration.

Config objects stop at entry points (CLI, training script): library functions take explicit arguments.
A config is built from defaults, then a YAML file (``--config``), then ``key=value`` overrides (``--set``),
in that order. Unknown keys are errors that name the closest valid key.

    >>> cfg = load_config(RestoreConfig, None, ["sampler.steps=30", "face.upscale=2"])
    >>> cfg.sampler.steps, cfg.face.upscale
    (30, 2)
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

# The default model: Stable Diffusion 1.5 with the v1.1 "tile" ControlNet. The tile ControlNet was trained to
# re-synthesise an image from a degraded (downsampled, blurred) copy of itself, which is exactly the restoration
# condition; SD 1.5 works natively at 512² (the FFHQ crop size), is the lightest of the family (fast on small
# GPUs, feasible on CPU), and has by far the largest LoRA/ControlNet ecosystem to fine-tune from.
DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11f1e_sd15_tile"


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


@dataclass
class ModelConfig:
    """Which weights to load and how to place them."""

    model: str = DEFAULT_BASE_MODEL
    """Base model: hub id, local diffusers folder (an AuthFace model folder included), or single-file checkpoint."""
    controlnet: str | None = "auto"
    """ControlNet: hub id, local folder or single file; "auto" = the model folder's own ControlNet if it has one,
    else the default SD 1.5 tile ControlNet; "none" only for model folders that contain one."""
    lora: str | None = None
    """Optional LoRA weights (.safetensors file or folder) loaded with diffusers' load_lora_weights."""
    lora_scale: float = 1.0
    single_file_config: str | None = None
    """For single-file checkpoints offline: a local diffusers folder holding the matching configs."""
    revision: str | None = None
    variant: str | None = None
    device: str = "auto"
    """auto | cuda | cuda:N | mps | cpu."""
    dtype: str = "auto"
    """auto (fp16 on CUDA/MPS, fp32 on CPU) | float32 | float16 | bfloat16."""
    offload: str = "none"
    """none | model (enable_model_cpu_offload) | sequential (enable_sequential_cpu_offload)."""
    vae_slicing: bool = False
    vae_tiling: bool = False
    attention: str = "auto"
    """auto (xformers if installed on CUDA, else PyTorch SDPA) | sdpa | xformers."""


@dataclass
class SamplerConfig:
    """How each aligned face crop is sampled."""

    steps: int = 20
    strength: float = 0.7
    """Fraction of the schedule run from the degraded image's latent; 1.0 starts from pure noise."""
    guidance_scale: float = 4.0
    """Classifier-free guidance scale; <= 1 disables the unconditional pass."""
    controlnet_scale: float = 1.0
    prompt: str = "a high quality, sharp, detailed photograph of a face"
    negative_prompt: str = "blurry, lowres, noise, jpeg artifacts, deformed, painting, cartoon, oversmoothed"
    scheduler: str = "default"
    """default (the model's own) | ddim | dpm++ | unipc | euler | euler_a."""
    color_fix: str = "wavelet"
    """none | wavelet | adain: match the restored face's colours to the input face."""
    seed: int = 0
    batch_size: int = 4
    """Faces per pipeline call, batched across photos."""
    quality_target: float | None = None
    """For models trained with the image-quality prior: the quality to ask for, in [0, 1] (None: 0.9)."""


@dataclass
class FaceConfig:
    """Face detection, alignment and paste-back."""

    detector: str = "dlib"
    """dlib (HOG, offline) | dlib-mmod | yunet | insightface."""
    detector_model: str | None = None
    """Local model file/folder for yunet (.onnx) and insightface (SCRFD .onnx or model folder)."""
    upsample: int = 1
    """dlib: times to upsample the photo before detection (finds smaller faces, slower)."""
    crop_size: int = 512
    only_center_face: bool = False
    min_face_size: float = 0.0
    """Ignore faces whose box is smaller than this many pixels (geometric mean of width and height)."""
    max_faces: int | None = None
    aligned: bool = False
    """Inputs already are aligned face crops: skip detection, restore the whole image as one face."""
    upscale: int = 1
    """Upscale the whole photo by this integer factor (Lanczos background, faces restored at full detail)."""


@dataclass
class IOConfig:
    """Reading inputs and writing outputs."""

    max_pixels: int = 80_000_000
    """Refuse images above this many pixels (decompression-bomb guard)."""
    ext: str | None = None
    """Output extension (e.g. png); None keeps the input's extension when it can be written."""
    jpeg_quality: int = 95
    recursive: bool = True
    skip_no_face: bool = False
    """Photos with no face: skipped (True) or copied through (False)."""
    save_faces: bool = False
    """Also write the aligned input crops, restored crops and before|after pairs."""
    overwrite: bool = False
    """Re-process photos already done in OUTPUT (never inputs: an output never replaces an input)."""


@dataclass
class GuidanceConfig:
    """Guidance during sampling (scale 0 = off). Windows are [start, stop) fractions of the steps run.

    With ``normalize`` (default) a scale is the step, in latent standard deviations, that each active step takes
    on the predicted clean latent along the objective's gradient (see authface/guidance.py)."""

    identity_scale: float = 0.0
    identity_model: str | None = None
    """Differentiable face recogniser: ArcFace IResNet .pth/.safetensors (insightface arcface_torch) or an
    insightface ONNX recogniser such as buffalo_l/w600k_r50.onnx."""
    identity_arch: str | None = None
    """r18 | r34 | r50 | r100 for .pth files (None: inferred from the checkpoint)."""
    reference: str | None = None
    """Photo or folder of photos of the same person; their embeddings are averaged. None: each input face."""
    identity_window: list[float] = field(default_factory=lambda: [0.0, 0.7])
    quality_scale: float = 0.0
    quality_metric: str = "sharpness"
    """sharpness (built-in, offline) | niqe (built-in; its parameter file via quality_model) | pyiqa:<metric>
    (e.g. pyiqa:topiq_nr-face; pip install 'authface[iqa]')."""
    quality_model: str | None = None
    """Local file for the quality metric: NIQE's niqe_pris_params.npz, or pyiqa's pretrained_model_path."""
    quality_window: list[float] = field(default_factory=lambda: [0.3, 1.0])
    fidelity_scale: float = 0.0
    fidelity_space: str = "latent"
    """latent (low-passed latents, nearly free) | pixel (low-passed decoded image)."""
    fidelity_window: list[float] = field(default_factory=lambda: [0.0, 0.6])
    every: int = 1
    """Guide every k-th step inside each window."""
    decoder: str = "vae"
    """vae (exact) | tiny (cheap AutoencoderTiny given by tiny_decoder)."""
    tiny_decoder: str | None = None
    """AutoencoderTiny hub id or folder, e.g. madebyollin/taesd (SD 1.x/2.x)."""
    resolution: int | None = None
    """Decode guidance images at this width (e.g. 256) to save time; None = full crop size."""
    normalize: bool = True


@dataclass
class RestoreConfig:
    """Everything `authface restore` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    io: IOConfig = field(default_factory=IOConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)


C = TypeVar("C")


def _fields(cls) -> dict[str, tuple[Any, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def all_keys(cls, prefix: str = "") -> list[str]:
    """Dotted names of every leaf key of a config dataclass (for suggestions and docs)."""
    keys = []
    for name, (tp, _) in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown(key: str, root_cls) -> ConfigError:
    keys = all_keys(root_cls)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if not close:  # match on the last component too: "stpes" -> "sampler.steps"
        leaf = key.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in keys}
        hit = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(keys)}"
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: cannot be {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if as_float != int(as_float):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [v if item_tp is Any else _coerce(v, item_tp, key) for v in value]
    return value


def _apply(obj: Any, data: dict, root_cls, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {data!r}")
    fields = _fields(type(obj))
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise _unknown(dotted, root_cls)
        tp, _ = fields[key]
        if dataclasses.is_dataclass(tp):
            _apply(getattr(obj, key), value or {}, root_cls, f"{dotted}.")
        else:
            setattr(obj, key, _coerce(value, tp, dotted))


def parse_override(text: str) -> tuple[str, Any]:
    """``"sampler.steps=30"`` -> ``("sampler.steps", 30)``; the value is parsed as YAML (numbers, bools, null)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. sampler.steps=30")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_key(cfg: Any, key: str, value: Any) -> None:
    """Set one dotted key on a config, with the same checks as a file."""
    data: dict = {}
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    _apply(cfg, data, type(cfg))


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``key=value`` overrides."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        try:
            _apply(cfg, data, cls)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for text in overrides or []:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    validate(cfg)
    return cfg


_CHOICES = {
    "model.device": None,  # free-form: checked by the device resolver
    "model.dtype": ("auto", "float32", "float16", "bfloat16", "fp32", "fp16", "bf16"),
    "model.offload": ("none", "model", "sequential"),
    "model.attention": ("auto", "sdpa", "xformers"),
    "sampler.scheduler": ("default", "ddim", "dpm++", "unipc", "euler", "euler_a"),
    "sampler.color_fix": ("none", "wavelet", "adain"),
    "face.detector": ("dlib", "dlib-mmod", "yunet", "insightface"),
    "guidance.fidelity_space": ("latent", "pixel"),
    "guidance.decoder": ("vae", "tiny"),
}


def _check_choices(cfg: Any, table: dict[str, tuple | None]) -> None:
    for key, choices in table.items():
        if choices is None:
            continue
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def validate(cfg: Any) -> None:
    """Range and choice checks that types alone cannot express."""
    if isinstance(cfg, TrainConfig):
        _validate_train(cfg)
    if isinstance(cfg, RestoreConfig):
        _check_choices(cfg, _CHOICES)
        s = cfg.sampler
        if not 0.0 < s.strength <= 1.0:
            raise ConfigError(f"sampler.strength must be in (0, 1], got {s.strength}")
        if s.steps < 1:
            raise ConfigError(f"sampler.steps must be >= 1, got {s.steps}")
        if s.batch_size < 1:
            raise ConfigError(f"sampler.batch_size must be >= 1, got {s.batch_size}")
        if s.quality_target is not None and not 0.0 <= s.quality_target <= 1.0:
            raise ConfigError(f"sampler.quality_target must be in [0, 1], got {s.quality_target}")
        f = cfg.face
        if f.crop_size < 64 or f.crop_size % 8:
            raise ConfigError(f"face.crop_size must be a multiple of 8 and >= 64, got {f.crop_size}")
        if f.upscale < 1:
            raise ConfigError(f"face.upscale must be an integer >= 1, got {f.upscale}")
        if f.max_faces is not None and f.max_faces < 1:
            raise ConfigError(f"face.max_faces must be >= 1 or null, got {f.max_faces}")
        if not 1 <= cfg.io.jpeg_quality <= 100:
            raise ConfigError(f"io.jpeg_quality must be in [1, 100], got {cfg.io.jpeg_quality}")
        g = cfg.guidance
        for name in ("identity", "quality", "fidelity"):
            window, scale = getattr(g, f"{name}_window"), getattr(g, f"{name}_scale")
            if len(window) != 2 or not 0.0 <= window[0] < window[1] <= 1.0:
                raise ConfigError(f"guidance.{name}_window must be START,STOP with 0 <= START < STOP <= 1, got {window}")
            if scale < 0:
                raise ConfigError(f"guidance.{name}_scale must be >= 0, got {scale}")
        if g.identity_scale > 0 and not g.identity_model:
            raise ConfigError(
                "guidance.identity_scale > 0 needs a differentiable face recogniser: pass --identity-model PATH "
                "(ArcFace IResNet .pth/.safetensors from insightface arcface_torch, or buffalo_l/w600k_r50.onnx)"
            )
        if g.decoder == "tiny" and not g.tiny_decoder:
            raise ConfigError("guidance.decoder=tiny needs guidance.tiny_decoder (e.g. madebyollin/taesd or a folder)")
        if g.every < 1:
            raise ConfigError(f"guidance.every must be >= 1, got {g.every}")


def to_dict(cfg: Any) -> dict:
    """Plain nested dict (JSON/YAML-ready) of a config dataclass."""
    return dataclasses.asdict(cfg)


# ------------------------------------------------------------------------------------------------ training
TINY_RANDOM_BASE = "authface-tiny-random"
"""A special base model id: tiny random components built in code (tests and smoke runs only; output is noise)."""


@dataclass
class TrainModelConfig:
    """What is trained: LoRA on the UNet and a ControlNet on the degraded image (+ the quality prior)."""

    base: str = DEFAULT_BASE_MODEL
    """Base model: hub id, local folder or single file; "authface-tiny-random" for smoke tests."""
    controlnet: str | None = None
    """None: initialise the ControlNet from the UNet; else fine-tune this ControlNet (hub id, folder or file)."""
    single_file_config: str | None = None
    revision: str | None = None
    variant: str | None = None
    train_lora: bool = True
    train_controlnet: bool = True
    lora_rank: int = 16
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    quality_prior: bool = True
    """Add (or keep) the zero-initialised quality embedding in the ControlNet and train it with each face's score."""
    gradient_checkpointing: bool = False


@dataclass
class TrainDataConfig:
    dataset: str | None = None
    """A folder written by `authface prepare` (manifest.jsonl + faces/); --data sets it."""
    resolution: int = 512
    degradation: str = "gfpgan"
    """Degradation preset for LQ synthesis: gfpgan | codeformer | realesrgan | mild."""
    prompt: str = "a high quality, sharp, detailed photograph of a face"
    """Used for faces without a caption in the manifest."""
    caption_dropout: float = 0.1
    """Probability of training with the empty prompt (keeps classifier-free guidance working)."""
    num_workers: int = 0
    validate_images: bool = True
    """Decode every image once before training and stop with a list of unreadable files."""


@dataclass
class OptimConfig:
    max_steps: int = 2000
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"
    """constant | constant_with_warmup | cosine | linear (diffusers.optimization.get_scheduler)."""
    lr_warmup_steps: int = 0
    adam_8bit: bool = False
    """bitsandbytes' 8-bit AdamW when installed (falls back to torch AdamW with a warning)."""
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    """no | fp16 | bf16 (passed to accelerate)."""
    min_snr_gamma: float | None = None
    """Min-SNR-γ loss weighting (e.g. 5.0); None = plain MSE."""
    ema: bool = False
    ema_decay: float = 0.999


@dataclass
class FacialLossConfig:
    """The time-aware latent facial feature loss (authface/losses.py)."""

    weight: float = 0.1
    """λ: the facial loss is added to the diffusion loss with this factor."""
    mode: str = "logit_normal"
    """logit_normal | constant | off (ablations)."""
    m: float = 0.0
    """Location of the logit-normal density over normalised time."""
    s: float = 1.0
    """Scale of the logit-normal density."""
    recon_weight: float = 1.0
    style_weight: float = 1.0
    gan_weight: float = 0.0
    """> 0 turns on per-region patch discriminators."""
    disc_learning_rate: float = 1e-4
    regions: list[str] = field(default_factory=lambda: ["left_eye", "right_eye", "mouth"])


@dataclass
class TrainOutputConfig:
    output_dir: str = "authface-model"
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None
    """A checkpoint folder, or "latest"."""
    validation_steps: int = 500
    num_validation: int = 4
    log_with: str = "tensorboard"
    """tensorboard | wandb | none."""


@dataclass
class TrainConfig:
    """Everything `training/train.py` needs."""

    model: TrainModelConfig = field(default_factory=TrainModelConfig)
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    facial: FacialLossConfig = field(default_factory=FacialLossConfig)
    output: TrainOutputConfig = field(default_factory=TrainOutputConfig)
    seed: int = 0


_TRAIN_CHOICES = {
    "data.degradation": ("gfpgan", "codeformer", "realesrgan", "mild"),
    "optim.lr_scheduler": ("constant", "constant_with_warmup", "cosine", "linear"),
    "optim.mixed_precision": ("no", "fp16", "bf16"),
    "facial.mode": ("logit_normal", "constant", "off"),
    "output.log_with": ("tensorboard", "wandb", "none"),
}


def _validate_train(cfg: TrainConfig) -> None:
    _check_choices(cfg, _TRAIN_CHOICES)
    o, d = cfg.optim, cfg.data
    for key, value in (("optim.max_steps", o.max_steps), ("optim.batch_size", o.batch_size),
                       ("optim.gradient_accumulation_steps", o.gradient_accumulation_steps)):  # fmt: skip
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if d.resolution < 64 or d.resolution % 8:
        raise ConfigError(f"data.resolution must be a multiple of 8 and >= 64, got {d.resolution}")
    if not 0 <= d.caption_dropout < 1:
        raise ConfigError(f"data.caption_dropout must be in [0, 1), got {d.caption_dropout}")
    if not (cfg.model.train_lora or cfg.model.train_controlnet):
        raise ConfigError("nothing to train: set model.train_lora or model.train_controlnet to true")
    if cfg.facial.s <= 0:
        raise ConfigError(f"facial.s must be > 0, got {cfg.facial.s}")
    unknown = set(cfg.facial.regions) - {"left_eye", "right_eye", "nose", "mouth"}
    if unknown:
        raise ConfigError(f"facial.regions: unknown {sorted(unknown)}; use left_eye, right_eye, nose, mouth")
