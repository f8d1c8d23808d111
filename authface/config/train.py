"""Settings of `authface train` / `training/train.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .base import ConfigError
from .literals import (
    DegradationPreset,
    FacialRegion,
    GuidanceDecoder,
    LogWith,
    LRScheduler,
    MixedPrecision,
    OcclusionKind,
    TimeWeightMode,
    TrainTask,
)
from .restore import DEFAULT_BASE_MODEL

IdentityLossKind = Literal["cosine", "dlib-distance"]
"""How the training identity loss compares two faces: 1 - cosine of the L2-normalised embeddings, or the
Euclidean distance of dlib's raw 128-d descriptors (dlib's scale: 0.6 = same-person threshold)."""

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
    """For a single-file base: a folder or hub id with the diffusers configs (text encoders, tokenizers,
    scheduler)."""
    single_file_original_config: str | None = None
    """For a single-file base: the original LDM inference YAML (v1-inference.yaml, sd_xl_base.yaml)."""
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
    one_step: bool = False
    """Train a one-step restorer: the degraded latent at the fixed timestep ``one_step_t`` maps straight to the
    clean latent (LoRA + ControlNet); the saved model restores with one UNet call and no CFG."""
    one_step_t: int = 500
    """The fixed timestep t* of one-step training, in [1, 999] (500: the time-aware losses keep full weight)."""
    one_step_pixel_weight: float = 1.0
    """Weight of the pixel-space reconstruction loss of one-step training (on the decoded x0)."""


@dataclass
class TrainDataConfig:
    dataset: str | None = None
    """A folder written by `authface prepare` (manifest.jsonl + faces/); --data sets it."""
    resolution: int = 512
    degradation: DegradationPreset = "gfpgan"
    """Degradation preset for LQ synthesis: gfpgan | codeformer | realesrgan | mild."""
    prompt: str = "a high quality, sharp, detailed photograph of a face"
    """Used for faces without a caption in the manifest."""
    caption_dropout: float = 0.1
    """Probability of training with the empty prompt (keeps classifier-free guidance working)."""
    num_workers: int = 0
    occlusions: OcclusionKind = "all"
    """task inpaint / mask-segmenter: what hides part of each training face: synthetic face masks (placed from the
    landmarks), old-photo damage (scratches, creases, tears, stains), paint (free-form brush strokes, mostly white:
    the region a user paints over a face to have it filled), both (face mask or damage, half and half) or all
    (each of the three, a third each)."""
    occlusion_prob: float | None = None
    """task inpaint / mask-segmenter: the fraction of training faces that get an occlusion; None: 0.8 for inpaint
    (whole faces train the plain restoration the same weights also do, with an empty mask channel) and 0.9 for the
    segmenter (whole faces teach it to find nothing)."""
    validate_images: bool = True
    """Check every image before training (header and, for PNG, chunk checksums: no pixel decode; the validation
    faces are decoded in full) and stop with a list of unreadable files."""


@dataclass
class OptimConfig:
    max_steps: int = 2000
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: LRScheduler = "constant"
    """constant | constant_with_warmup | cosine | linear (diffusers.optimization.get_scheduler)."""
    lr_warmup_steps: int = 0
    adam_8bit: bool = False
    """bitsandbytes' 8-bit AdamW (`pip install 'authface[train]'`, Linux/CUDA); a run asking for it without
    bitsandbytes stops before loading any model (no silent fallback)."""
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: MixedPrecision = "no"
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
    mode: TimeWeightMode = "logit_normal"
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
    regions: list[FacialRegion] = field(default_factory=lambda: ["left_eye", "right_eye", "mouth"])


@dataclass
class IdentityLossConfig:
    """The training identity loss on the decoded predicted clean image x̂0 vs the HQ face (authface/losses.py)."""

    weight: float = 0.0
    """λ_id; 0 (the default) turns the loss off and loads no identity model."""
    kind: IdentityLossKind = "cosine"
    """cosine (1 - cosine similarity of embeddings) | dlib-distance (Euclidean distance of dlib descriptors,
    needs the dlib-resnet model)."""
    model: str | None = None
    """Identity model as `--identity-model` takes it: None/dlib-resnet (no download), ArcFace .pth/.safetensors
    or an insightface .onnx."""
    mode: TimeWeightMode = "logit_normal"
    """Time weighting w(t), as facial.mode: logit_normal | constant | off."""
    m: float = 0.0
    s: float = 1.0
    min_weight: float = 0.25
    """Samples whose w(t) is at most this are not decoded, which bounds the cost (with the logit-normal default,
    0.25 skips 15% of timesteps and keeps 98.8% of the weight)."""
    decoder: GuidanceDecoder = "vae"
    """vae (exact) | tiny (cheap AutoencoderTiny from identity.tiny_decoder)."""
    tiny_decoder: str | None = None
    """AutoencoderTiny hub id or folder, e.g. madebyollin/taesd (SD 1.x/2.x)."""
    resolution: int | None = None
    """Decode x̂0 at this image width (the latent is resized first; None = full size): memory and time fall with
    its square; the identity models look at 112-150 px chips."""


@dataclass
class TrainOutputConfig:
    output_dir: str = "authface-model"
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None
    """A checkpoint folder, or "latest"."""
    validation_steps: int = 500
    num_validation: int = 4
    log_with: LogWith = "tensorboard"
    """tensorboard | wandb | none."""


@dataclass
class TrainConfig:
    """Everything `training/train.py` needs."""

    model: TrainModelConfig = field(default_factory=TrainModelConfig)
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    facial: FacialLossConfig = field(default_factory=FacialLossConfig)
    identity: IdentityLossConfig = field(default_factory=IdentityLossConfig)
    output: TrainOutputConfig = field(default_factory=TrainOutputConfig)
    seed: int = 0
    task: TrainTask = "restore"
    """restore: LoRA + ControlNet restorer; inpaint: the same with a mask channel in the ControlNet condition and
    the losses on the composite (only the synthetic occlusion's region is learned); mask-segmenter: the small U-Net
    that finds face masks, damage and painted regions (``authface restore --mask auto``)."""

    def validate(self) -> None:
        """Range checks that types alone cannot express (choices are checked by their Literal types)."""
        o, d = self.optim, self.data
        for key, value in (("optim.max_steps", o.max_steps), ("optim.batch_size", o.batch_size),
                           ("optim.gradient_accumulation_steps", o.gradient_accumulation_steps)):  # fmt: skip
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        if d.resolution < 64 or d.resolution % 8:
            raise ConfigError(f"data.resolution must be a multiple of 8 and >= 64, got {d.resolution}")
        if d.occlusion_prob is not None and not 0 <= d.occlusion_prob <= 1:
            raise ConfigError(f"data.occlusion_prob must be in [0, 1], got {d.occlusion_prob}")
        if not 0 <= d.caption_dropout < 1:
            raise ConfigError(f"data.caption_dropout must be in [0, 1), got {d.caption_dropout}")
        if not (self.model.train_lora or self.model.train_controlnet):
            raise ConfigError("nothing to train: set model.train_lora or model.train_controlnet to true")
        if not 1 <= self.model.one_step_t < 1000:
            raise ConfigError(f"model.one_step_t must be in [1, 999], got {self.model.one_step_t}")
        if self.model.one_step_pixel_weight < 0:
            raise ConfigError(f"model.one_step_pixel_weight must be >= 0, got {self.model.one_step_pixel_weight}")
        if self.task == "inpaint" and self.model.one_step:
            raise ConfigError("task inpaint trains the multi-step inpainter: set model.one_step=false")
        if self.task == "inpaint" and not self.model.train_controlnet:
            raise ConfigError("task inpaint trains the ControlNet's new mask channel: set model.train_controlnet=true")
        if self.facial.s <= 0:
            raise ConfigError(f"facial.s must be > 0, got {self.facial.s}")
        i = self.identity
        if i.weight < 0 or i.s <= 0:
            raise ConfigError(f"identity.weight must be >= 0 and identity.s > 0, got {i.weight} and {i.s}")
        if i.weight > 0 and i.decoder == "tiny" and not i.tiny_decoder:
            raise ConfigError(
                "identity.decoder=tiny needs identity.tiny_decoder (e.g. madebyollin/taesd or a folder)"
            )
        if i.resolution is not None and (i.resolution < 32 or i.resolution % 8):
            raise ConfigError(f"identity.resolution must be a multiple of 8 and >= 32, got {i.resolution}")
