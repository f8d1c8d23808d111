"""Inpainting aligned crops with the restoration pipeline: generate what a mask hides (a face mask, a scratch),
keep everything else exactly as plain restoration makes it.

Two passes over the same crops (each face keeps its own seed):

1. plain restoration -> ``R`` (the result without a mask);
2. generation from noise (strength 1) with the masked pixels of the control image pre-filled by OpenCV's Telea
   inpainting (so the ControlNet does not copy the occluder), where after every step the latents outside the mask
   are replaced by ``R``'s latent noised to the next timestep (latent blending, as diffusers' inpainting
   pipelines do; Lugmayr et al., "RePaint", CVPR 2022, without resampling): the generated region grows out of,
   and matches, its restored surroundings.

A ControlNet trained with ``--task inpaint`` has the mask as a fourth condition channel
(:mod:`authface.models.mask_channel`): the second pass then gives it the crop as it is (occluder included) and the
mask, as in training, instead of the pre-filled crop; the plain pass gives it an empty mask.

The output is ``m * generated + (1 - m) * R`` with ``m`` the mask feathered by a few pixels, so outside the mask
(and its feather) the output equals plain restoration exactly. Hand-written: diffusers' inpainting pipelines do
not take a ControlNet restoration pass and per-face generators. A ControlNet without the mask channel sees the mask only
through the pre-filled image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .models.mask_channel import has_mask_channel

logger = logging.getLogger(__name__)

#: Pixels the mask is grown by before blending (covers the occluder's soft edge), and the feather of the composite.
GROW_PX = 4
FEATHER_PX = 3


def crop_mask(photo_mask: np.ndarray, affine: np.ndarray, crop_size: int) -> np.ndarray | None:
    """The part of a photo's bool ``(H, W)`` mask inside one aligned crop: bool ``(S, S)``, None when empty."""
    warped = cv2.warpAffine(photo_mask.astype(np.uint8) * 255, affine, (crop_size, crop_size),
                            flags=cv2.INTER_LINEAR, borderValue=0)  # fmt: skip
    mask = warped >= 128
    return mask if mask.any() else None


def prefill(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 RGB crop with the masked pixels filled by OpenCV's Telea inpainting (radius 5 px)."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=GROW_PX)
    return cv2.inpaint(crop, grown, 5, cv2.INPAINT_TELEA)


def _latent_mask(masks: Sequence[np.ndarray], size: int, device, dtype) -> torch.Tensor:
    """(B, 1, h, w) float: 1 where a latent cell touches the (grown) mask."""
    grown = [cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=GROW_PX) for m in masks]
    t = torch.from_numpy(np.stack(grown)).to(device=device, dtype=torch.float32)[:, None]
    return (F.adaptive_max_pool2d(t, size) > 0).to(dtype)


def _feather(mask: np.ndarray) -> np.ndarray:
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=GROW_PX).astype(np.float32)
    k = 2 * FEATHER_PX + 1
    return np.maximum(cv2.GaussianBlur(grown, (k, k), 0), mask.astype(np.float32))[..., None]


def _encode(pipe, images: np.ndarray) -> torch.Tensor:
    """Latents (posterior mode, scaled) of uint8 RGB (B, S, S, 3) images, through the pipeline's encoder (a
    half-precision SDXL VAE encodes in float32 there: no overflow)."""
    from . import io

    x = io.numpy_to_tensor(images).to(device=pipe._execution_device, dtype=torch.float32)
    with torch.no_grad():
        return pipe.encode_image(x)


def inpaint_crops(
    pipe, crops: list[np.ndarray], masks: list[np.ndarray | None], seeds: list[int], **call: Any
) -> tuple[list[np.ndarray], Any]:
    """Restore ``crops`` (uint8 RGB (S, S, 3)) and generate the region of each bool (S, S) mask (None: plain).

    ``call``: the pipeline arguments of plain restoration (prompt, steps, strength, cfg, objectives, ...).
    Returns the crops and the plain pass's pipeline output (its objective records are the faces' records).
    """
    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    plain = pipe(image=crops, generator=gens, output_type="np", **call)
    restored = [np.asarray(img) for img in plain.images]
    todo = [i for i, m in enumerate(masks) if m is not None]
    if not todo:
        return restored, plain
    generated = _generate(pipe, [crops[i] for i in todo], [masks[i] for i in todo], [restored[i] for i in todo],
                          [seeds[i] for i in todo], call)  # fmt: skip
    for k, i in enumerate(todo):
        m = _feather(masks[i])
        restored[i] = np.clip(np.rint(m * generated[k] + (1.0 - m) * restored[i]), 0, 255).astype(np.uint8)
    return restored, plain


def _generate(pipe, crops, masks, restored, seeds, call: dict) -> list[np.ndarray]:
    """The second pass: generation inside the masks, latents outside pinned to the restored crops' latents."""
    known = _encode(pipe, np.stack(restored))  # (B, C, h, w)
    lat_mask = _latent_mask(masks, known.shape[-1], known.device, known.dtype)
    noise = torch.stack([torch.randn(known.shape[1:], generator=torch.Generator("cpu").manual_seed(s + 1))
                         for s in seeds]).to(known.device, known.dtype)  # fmt: skip

    def blend(p, step: int, t, tensors: dict) -> dict:
        timesteps = p.scheduler.timesteps
        later = (timesteps < t).nonzero()
        latents = tensors["latents"]
        if len(later):  # the latents now belong to the next timestep: pin the known region at that noise level
            t_next = timesteps[later[0, 0]].reshape(1)
            pinned = p.scheduler.add_noise(known, noise, t_next)
        else:
            pinned = known
        return {"latents": lat_mask * latents + (1.0 - lat_mask) * pinned.to(latents.dtype)}

    args = {k: v for k, v in call.items() if k not in ("strength", "batch_size", "objectives")}
    if has_mask_channel(pipe.controlnet):  # trained on occluded crops + their masks: give it exactly that
        control, args["mask"] = list(crops), list(masks)
    else:
        control = [prefill(c, m) for c, m in zip(crops, masks)]
    out = pipe(image=control, strength=1.0, batch_size=len(crops),
               generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], output_type="np",
               callback_on_step_end=blend, callback_on_step_end_tensor_inputs=["latents"], **args)  # fmt: skip
    return [np.asarray(img, dtype=np.float32) for img in out.images]
