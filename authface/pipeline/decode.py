"""Decoding latents to images that are finite, or failing loudly: a NaN/inf never becomes a black face.

Half-precision VAEs can overflow (a known Stable Diffusion / SDXL VAE failure): the decoded image is NaN or inf
and, mapped to uint8, a black face. :func:`decode_finite` checks every image of a batch after decoding; images
that are not finite in half precision are decoded again in float32; images still not finite (or latents that
were already non-finite, from an overflowing UNet) raise :class:`NonFiniteOutputError`, naming which images of
the batch, the dtype and the fix. ``vae.config.force_upcast`` is honoured as diffusers' SDXL pipelines do: a half
precision VAE whose config sets ``force_upcast`` decodes in float32 from the start (see :func:`force_upcast`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

HALF_DTYPES = (torch.float16, torch.bfloat16)
FIX = (
    "run in float32 (--dtype float32; Python: load_pipeline(..., dtype=torch.float32)), or load a VAE that is "
    "stable in half precision (--set model.vae=<folder, file or hub id>; Python: load_pipeline(..., vae=...))"
)


class NonFiniteOutputError(RuntimeError):
    """Sampling or decoding produced NaN/inf for some images of a batch; nothing was returned for the batch.

    ``indices``: the positions (in the batch passed to the failing call) of the non-finite images; ``dtype``:
    the precision the failing stage ran in; ``stage``: "sampling", "guidance" or "decoding"."""

    def __init__(self, message: str, indices: Sequence[int], dtype: torch.dtype, stage: str):
        super().__init__(message)
        self.indices, self.dtype, self.stage = list(indices), dtype, stage


def nonfinite_images(x: torch.Tensor) -> list[int]:
    """Indices along dim 0 of the images (any shape (B, ...)) holding a NaN or an inf."""
    if x.shape[0] == 0:
        return []
    ok = torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    return [int(i) for i in torch.nonzero(~ok).flatten()]


def _describe(indices: Sequence[int], total: int) -> str:
    return f"image{'s' if len(indices) > 1 else ''} {', '.join(map(str, indices))} of the batch of {total}"


def check_latents(latents: torch.Tensor, stage: str = "sampling", detail: str = "") -> None:
    """Raise :class:`NonFiniteOutputError` when any of ``latents`` (B, C, h, w) is not finite."""
    bad = nonfinite_images(latents)
    if bad:
        raise NonFiniteOutputError(
            f"{stage} produced NaN/inf latents for {_describe(bad, latents.shape[0])} (in {latents.dtype}{detail}), "
            f"so there is no image to decode; this is a numerical overflow, usually of half precision. Fix: {FIX}",
            bad, latents.dtype, stage,
        )  # fmt: skip


def decode_finite(
    vae, latents: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor], upcast: bool | None = None
) -> torch.Tensor:
    """Scaled latents (B, C, h, w) -> float32 [-1, 1]-ish RGB (B, 3, H, W), every image finite.

    ``decode``: the pipeline's decode (latents -> image in ``vae.dtype``); it is called again with the VAE cast
    to float32 (and cast back afterwards) for a half-precision VAE that has ``config.force_upcast`` set (before
    any half-precision decode) or whose half-precision result is not finite (only the failing images).
    ``upcast``: whether a half-precision VAE decodes in float32 from the start (default: :func:`force_upcast`).

    Raises:
        NonFiniteOutputError: ``latents`` are not finite, or an image is not finite even in float32 decoding.
    """
    check_latents(latents)
    vae_dtype = vae.dtype
    half = vae_dtype in HALF_DTYPES
    if half and (force_upcast(vae) if upcast is None else upcast):
        decoded = decode_fp32(vae, latents, decode)
        retried = True
    else:
        decoded = decode(latents).float()
        retried = False
    bad = nonfinite_images(decoded)
    if bad and half and not retried:
        logger.warning(
            "the VAE decode in %s gave NaN/inf for %s; decoding again in float32",
            vae_dtype, _describe(bad, latents.shape[0]),
        )  # fmt: skip
        decoded[bad] = decode_fp32(vae, latents[bad], decode)
        bad = nonfinite_images(decoded)
        retried = True
    if bad:
        tried = f"in {vae_dtype} and again in float32" if retried else f"in {vae_dtype}"
        raise NonFiniteOutputError(
            f"the VAE decode gave NaN/inf for {_describe(bad, latents.shape[0])} (decoded {tried}); nothing is "
            f"returned for them rather than a black face. Fix: {FIX}; if it persists in float32, the VAE weights "
            f"are damaged or do not belong to this base model",
            bad, torch.float32 if retried else vae_dtype, "decoding",
        )  # fmt: skip
    return decoded


def force_upcast(vae) -> bool:
    """True when the VAE's config sets ``force_upcast`` (SDXL VAEs do). A config that predates the key (SD 1.x
    VAEs) gets diffusers' default ``True`` filled in on loading, listed in ``_use_default_values``: that default is
    not honoured, as diffusers' SD 1.x/2.x pipelines do not upcast (the float32 retry is the safety net)."""
    config = vae.config
    return bool(getattr(config, "force_upcast", False)) and "force_upcast" not in config.get(
        "_use_default_values", []
    )


def sdxl_force_upcast(vae) -> bool:
    """SDXL's rule: its VAE overflows in float16, so it is upcast unless its config explicitly sets
    ``force_upcast: false`` (an fp16-fixed VAE such as madebyollin/sdxl-vae-fp16-fix); a config without the key
    (e.g. made from the original YAML) gets diffusers' default, True. Used by the SDXL pipeline and by training."""
    config = vae.config
    return bool(getattr(config, "force_upcast", True)) or "force_upcast" in config.get("_use_default_values", [])


def decode_fp32(vae, latents: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``decode(latents)`` with the VAE temporarily cast to float32 (as diffusers' ``upcast_vae``); float32 out.

    The cast is ``torch.nn.Module.to``: diffusers' ``ModelMixin.to`` logs a "should be kept in float32" warning at
    every dtype cast, which would repeat at every batch."""
    dtype = vae.dtype
    torch.nn.Module.to(vae, dtype=torch.float32)
    try:
        return decode(latents.float()).float()
    finally:
        torch.nn.Module.to(vae, dtype=dtype)


def check_guidance(noise_pred: torch.Tensor, records: Sequence[dict], step: int) -> None:
    """Raise :class:`NonFiniteOutputError` when the objectives' values or the guided noise prediction
    (B, C, h, w) of step ``step`` are not finite (a NaN in an objective's decode would poison every later step).
    ``records``: ``authface.guidance.apply_guidance``'s records (``name``, ``values`` per image)."""
    names = sorted({r["name"] for r in records if not all(map(_finite, r["values"]))})
    bad = nonfinite_images(noise_pred)
    if names or bad:
        which = f"objective{'s' if len(names) > 1 else ''} {', '.join(names)}" if names else "the objectives"
        bad = bad or list(range(noise_pred.shape[0]))
        raise NonFiniteOutputError(
            f"guidance step {step}: {which} gave NaN/inf for {_describe(bad, noise_pred.shape[0])} (in "
            f"{noise_pred.dtype}); nothing is returned for them. Fix: {FIX}, or lower the objective's scale",
            bad, noise_pred.dtype, "guidance",
        )  # fmt: skip


def _finite(value) -> bool:
    try:
        return bool(torch.isfinite(torch.as_tensor(value, dtype=torch.float64)).all())
    except (TypeError, ValueError):
        return True
