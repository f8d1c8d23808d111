"""Settings of `authface train` / `training/train.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import ConfigError
from .literals import DegradationPreset, FacialRegion, LogWith, LRScheduler, MixedPrecision, TimeWeightMode
from .restore import DEFAULT_BASE_MODEL

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
    degradation: DegradationPreset = "gfpgan"
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
    lr_scheduler: LRScheduler = "constant"
    """constant | constant_with_warmup | cosine | linear (diffusers.optimization.get_scheduler)."""
    lr_warmup_steps: int = 0
    adam_8bit: bool = False
    """bitsandbytes' 8-bit AdamW when installed (falls back to torch AdamW with a warning)."""
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
    output: TrainOutputConfig = field(default_factory=TrainOutputConfig)
    seed: int = 0

    def validate(self) -> None:
        """Range checks that types alone cannot express (choices are checked by their Literal types)."""
        o, d = self.optim, self.data
        for key, value in (("optim.max_steps", o.max_steps), ("optim.batch_size", o.batch_size),
                           ("optim.gradient_accumulation_steps", o.gradient_accumulation_steps)):  # fmt: skip
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        if d.resolution < 64 or d.resolution % 8:
            raise ConfigError(f"data.resolution must be a multiple of 8 and >= 64, got {d.resolution}")
        if not 0 <= d.caption_dropout < 1:
            raise ConfigError(f"data.caption_dropout must be in [0, 1), got {d.caption_dropout}")
        if not (self.model.train_lora or self.model.train_controlnet):
            raise ConfigError("nothing to train: set model.train_lora or model.train_controlnet to true")
        if self.facial.s <= 0:
            raise ConfigError(f"facial.s must be > 0, got {self.facial.s}")
