"""What follows from a base model's family: its pipeline class, default ControlNet and default crop size.

    default_crop_size(pipe)                                   # 512 (SD 1.x, SD 2.x base), 768 (SD 2.x 768-v), 1024 (SDXL)
    default_crop_size("stabilityai/stable-diffusion-2-1")    # decided from JSON files only: 768
    default_controlnet("sdxl")                                # "xinsir/controlnet-tile-sdxl-1.0"

The crop size a base was trained at is its UNet's ``sample_size`` times the VAE's downsampling (8): SD 1.5 64 ->
512, SD 2.1 (768-v) 96 -> 768, SD 2.1-base 64 -> 512, SDXL 128 -> 1024. Families whose configs cannot be read
fall back to :data:`CROP_SIZES`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import DEFAULT_CONTROLNET
from ..models.references import BaseFamily, detect_base, locate, read_json

logger = logging.getLogger(__name__)

#: The tile ControlNet for SDXL bases: trained (by xinsir) to re-synthesise an image from a blurred, downsampled,
#: degraded copy of itself at 1024² — the restoration condition, as lllyasviel's tile model is for SD 1.5.
DEFAULT_CONTROLNET_SDXL = "xinsir/controlnet-tile-sdxl-1.0"
#: Default ControlNet per base family ("auto"); SD 2.x has no tile ControlNet: one must be given.
DEFAULT_CONTROLNETS: dict[str, str] = {"sd1": DEFAULT_CONTROLNET, "sdxl": DEFAULT_CONTROLNET_SDXL}
#: The cheap guidance decoder (TAESD) matching each family's VAE latents: SDXL's latent space differs.
TINY_DECODERS: dict[str, str] = {"sd1": "madebyollin/taesd", "sd2": "madebyollin/taesd", "sd2-v": "madebyollin/taesd",
                                 "sdxl": "madebyollin/taesdxl"}  # fmt: skip
#: Crop size (pixels) per family when the UNet config cannot be read.
CROP_SIZES: dict[str, int] = {"sd1": 512, "sd2": 512, "sd2-v": 768, "sdxl": 1024}
VAE_SCALE = 8


def is_sdxl(pipe_or_unet) -> bool:
    """Whether a pipeline (or UNet) is SDXL-type: its UNet takes text and time ids as an added embedding."""
    unet = getattr(pipe_or_unet, "unet", pipe_or_unet)
    return getattr(unet.config, "addition_embed_type", None) == "text_time"


def default_tiny_decoder(pipe_or_family) -> str:
    """The TAESD decoder for guidance objectives (``guidance.decoder: tiny``) that matches a pipeline's (or a
    family's) latent space: madebyollin/taesdxl for SDXL, madebyollin/taesd otherwise."""
    family = pipe_or_family if isinstance(pipe_or_family, str) else ("sdxl" if is_sdxl(pipe_or_family) else "sd1")
    return TINY_DECODERS.get(family, TINY_DECODERS["sd1"])


def default_controlnet(family: BaseFamily | str) -> str:
    """The ControlNet "auto" uses for a base of ``family``.

    Raises:
        ValueError: no default exists (SD 2.x bases: there is no public SD 2.x tile ControlNet).
    """
    if family in DEFAULT_CONTROLNETS:
        return DEFAULT_CONTROLNETS[family]
    if family in ("sd2", "sd2-v"):
        raise ValueError(
            "there is no default ControlNet for SD 2.x bases (no public tile ControlNet exists for them); pass "
            "one trained for SD 2.x with --controlnet, or train one: authface train (a ControlNet made from the "
            "base's UNet)"
        )
    return DEFAULT_CONTROLNET


def _crop_from_sample_size(sample_size, vae_scale: int = VAE_SCALE) -> int | None:
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0] if sample_size else None
    if not isinstance(sample_size, int) or sample_size < 1:
        return None
    return sample_size * vae_scale


def default_crop_size(pipe_or_base) -> int:
    """The face crop size (pixels, square) a base model was trained at: 512 (SD 1.x, SD 2.x base), 768 (SD 2.x
    768-v), 1024 (SDXL); for other models the UNet's ``sample_size`` × the VAE's downsampling (a tiny test model:
    16 × 8 = 128).

    ``pipe_or_base``: a loaded pipeline (anything with ``.unet`` and ``.vae``), a family name ("sd1", "sd2",
    "sd2-v", "sdxl"), or a model reference (local folder, single file, hub id), read from its JSON files or
    header without loading weights.

    Raises (for references): ModelPathNotFoundError, ModelNotFoundError, CorruptModelError (see
    :func:`authface.models.references.detect_base`).
    """
    if hasattr(pipe_or_base, "unet"):
        pipe = pipe_or_base
        scale = getattr(pipe, "vae_scale_factor", VAE_SCALE)
        crop = _crop_from_sample_size(pipe.unet.config.sample_size, scale)
        return crop or CROP_SIZES["sdxl" if is_sdxl(pipe) else "sd1"]
    ref = os.fspath(pipe_or_base)
    if ref in CROP_SIZES:
        return CROP_SIZES[ref]
    src = locate(ref, "model")
    if isinstance(src, Path) and src.is_dir():
        unet = read_json(src, "unet/config.json") or {}
        crop = _crop_from_sample_size(unet.get("sample_size"))
        if crop:
            return crop
    family = detect_base(ref)
    return CROP_SIZES.get(family, CROP_SIZES["sd1"])


def check_controlnet_matches(controlnet, unet, controlnet_ref: str = "the ControlNet") -> None:
    """Raise ValueError when a ControlNet was not made for this base's UNet (e.g. the SD 1.5 tile ControlNet on
    an SDXL or SD 2.x base): its cross-attention width or added embedding differ. Named, with the fix."""
    cn, un = controlnet.config, unet.config
    mismatch = []
    if cn.cross_attention_dim != un.cross_attention_dim:
        mismatch.append(f"text width {cn.cross_attention_dim} vs the base's {un.cross_attention_dim}")
    if getattr(cn, "addition_embed_type", None) != getattr(un, "addition_embed_type", None):
        mismatch.append(f"added embedding {cn.addition_embed_type!r} vs the base's {un.addition_embed_type!r}")
    if mismatch:
        raise ValueError(
            f"{controlnet_ref} does not fit this base model ({'; '.join(mismatch)}): a ControlNet must be trained "
            f"for the same base family. Use one for this base (SD 1.x: {DEFAULT_CONTROLNET}; SDXL: "
            f"{DEFAULT_CONTROLNET_SDXL}) with --controlnet, or leave --controlnet at auto"
        )
