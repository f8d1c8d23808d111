"""Paste restored face crops back into the (upscaled) full image.

Images are ``uint8`` RGB ``(H, W, 3)`` arrays. Affines are the image-to-crop
``(2, 3)`` matrices returned by :func:`authface.face.align.align_face` for the
*original* (not upscaled) image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .align import _warp
from .detect import _check_rgb_image

__all__ = ["BackgroundUpsampler", "LanczosUpsampler", "paste_mask", "paste_faces"]

logger = logging.getLogger(__name__)


@runtime_checkable
class BackgroundUpsampler(Protocol):
    """Upscales the whole image before faces are pasted.

    ``upscale(image, scale)`` takes a ``uint8`` RGB ``(H, W, 3)`` array and
    returns a ``uint8`` RGB ``(H * scale, W * scale, 3)`` array.
    """

    def upscale(self, image: np.ndarray, scale: int) -> np.ndarray: ...


def _check_upscale(upscale: int) -> int:
    if isinstance(upscale, bool) or int(upscale) != upscale or upscale < 1:
        raise ValueError(f"upscale must be an integer >= 1, got {upscale!r}")
    return int(upscale)


class LanczosUpsampler:
    """Background upsampler using ``cv2.resize`` with ``INTER_LANCZOS4``.

    With ``scale == 1`` the input array itself is returned (no copy); callers
    must not mutate it if they need the original.
    """

    name = "lanczos"

    def upscale(self, image: np.ndarray, scale: int) -> np.ndarray:
        """Return the ``uint8`` RGB image ``scale`` times larger."""
        import cv2

        image = _check_rgb_image(image)
        scale = _check_upscale(scale)
        if scale == 1:
            return image
        h, w = image.shape[:2]
        return cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4)


def _inverse_affine(affine: np.ndarray, upscale: int) -> np.ndarray:
    """Crop-to-output affine: inverse of ``affine``, scaled to the upscaled grid.

    With pixel centres at integers, pixel ``x`` of the original is at
    ``x * up + (up - 1) / 2`` in an image enlarged ``up`` times by
    ``cv2.resize`` (or any upsampler that maps each pixel to an ``up x up``
    block), hence the offset.
    """
    import cv2

    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (2, 3) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite (2, 3) matrix as returned by align_face, got {affine!r}")
    if abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise ValueError(f"affine is singular and cannot be inverted: {affine.tolist()}")
    inverse = cv2.invertAffineTransform(affine) * upscale
    inverse[:, 2] += 0.5 * (upscale - 1)
    return inverse


def _soft_mask_roi(inverse: np.ndarray, crop_size: int, out_h: int, out_w: int, upscale: int):
    """Soft paste mask restricted to the bounding box of the pasted crop.

    Returns ``(mask, (y0, y1, x0, x1), inverse_roi)`` where ``mask`` is
    float32 over ``[y0:y1, x0:x1]`` of the output and ``inverse_roi`` maps
    crop pixels to ROI pixels; ``mask`` is ``None`` when the crop misses the
    output. Identical to computing the mask on the full output (the mask is
    zero well inside the ROI border, and the ROI is only clipped at the image
    border, where the full computation is clipped too).
    """
    import cv2

    s = crop_size
    corners = np.array(
        [[-0.5, -0.5, 1.0], [s - 0.5, -0.5, 1.0], [-0.5, s - 0.5, 1.0], [s - 0.5, s - 0.5, 1.0]]
    )
    pts = corners @ inverse.T
    pad = 3
    x0 = max(int(math.floor(pts[:, 0].min())) - pad, 0)
    y0 = max(int(math.floor(pts[:, 1].min())) - pad, 0)
    x1 = min(int(math.ceil(pts[:, 0].max())) + pad + 1, out_w)
    y1 = min(int(math.ceil(pts[:, 1].max())) + pad + 1, out_h)
    if x0 >= x1 or y0 >= y1:
        return None, (0, 0, 0, 0), inverse
    inverse_roi = inverse.copy()
    inverse_roi[0, 2] -= x0
    inverse_roi[1, 2] -= y0
    size = (x1 - x0, y1 - y0)
    ones = np.ones((s, s), dtype=np.float32)
    mask = cv2.warpAffine(
        ones, inverse_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    # facexlib / GFPGAN recipe: erode away the interpolated rim of the warp,
    # then shrink by 2 * w_edge and blur with a (2 * w_edge + 1) Gaussian so
    # the mask falls smoothly to 0 inside the face quad.
    k = 2 * upscale
    mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    area = float(mask.sum())
    w_edge = max(int(math.sqrt(area)) // 20, 1)
    mask = cv2.erode(mask, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
    mask = cv2.GaussianBlur(mask, (2 * w_edge + 1, 2 * w_edge + 1), 0)
    np.clip(mask, 0.0, 1.0, out=mask)
    return mask, (y0, y1, x0, x1), inverse_roi


def paste_mask(affine: np.ndarray, crop_size: int, out_hw: tuple[int, int], upscale: int = 1) -> np.ndarray:
    """Feathered paste mask of one face.

    Args:
        affine: image-to-crop ``(2, 3)`` affine of the original image.
        crop_size: side of the square crop.
        out_hw: ``(H, W)`` of the original image.
        upscale: integer output scale.

    Returns:
        float32 ``(H * upscale, W * upscale)`` in ``[0, 1]``: the crop square
        warped back by the inverse affine, eroded by ``2 * upscale`` px, then
        eroded by ``2 * w_edge`` and Gaussian-blurred with kernel
        ``2 * w_edge + 1`` where ``w_edge = sqrt(area) // 20`` (facexlib /
        GFPGAN recipe), so the mask reaches 1 inside the face and fades to 0
        with no visible seam.
    """
    upscale = _check_upscale(upscale)
    if int(crop_size) != crop_size or crop_size < 1:
        raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
    h, w = int(out_hw[0]) * upscale, int(out_hw[1]) * upscale
    full = np.zeros((h, w), dtype=np.float32)
    mask, (y0, y1, x0, x1), _ = _soft_mask_roi(
        _inverse_affine(affine, upscale), int(crop_size), h, w, upscale
    )
    if mask is not None:
        full[y0:y1, x0:x1] = mask
    return full


def paste_faces(
    background: np.ndarray,
    crops: Sequence[np.ndarray],
    affines: Sequence[np.ndarray],
    upscale: int = 1,
) -> np.ndarray:
    """Composite restored crops onto the background.

    Args:
        background: ``uint8`` RGB ``(H * upscale, W * upscale, 3)``: the
            original image already brought to the output size (e.g. by
            :class:`LanczosUpsampler`).
        crops: restored ``uint8`` RGB ``(S, S, 3)`` faces.
        affines: the matching image-to-crop affines from
            :func:`authface.face.align.align_face` on the *original* image.
        upscale: integer factor between the original image and ``background``.

    Returns:
        A new ``uint8`` RGB array (``background`` is not modified). Faces are
        blended one after another with their soft masks (later faces on top);
        pixels where every mask is 0 are bit-identical to ``background``.
    """
    import cv2

    background = _check_rgb_image(background, "background")
    upscale = _check_upscale(upscale)
    crops = list(crops)
    affines = list(affines)
    if len(crops) != len(affines):
        raise ValueError(f"got {len(crops)} crops but {len(affines)} affines; pass one affine per crop")
    out = background.copy()
    h, w = out.shape[:2]
    for i, (crop, affine) in enumerate(zip(crops, affines)):
        crop = _check_rgb_image(crop, f"crops[{i}]")
        if crop.shape[0] != crop.shape[1]:
            raise ValueError(f"crops[{i}] must be square (S, S, 3), got {crop.shape}")
        s = crop.shape[0]
        mask, (y0, y1, x0, x1), inverse_roi = _soft_mask_roi(
            _inverse_affine(affine, upscale), s, h, w, upscale
        )
        if mask is None:
            logger.warning("face %d lies outside the %dx%d output; not pasted", i, w, h)
            continue
        warped = _warp(
            np.ascontiguousarray(crop),
            inverse_roi,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_CUBIC,
            border_mode=cv2.BORDER_REPLICATE,
        )
        region = out[y0:y1, x0:x1]
        m = mask[:, :, None]
        blended = m * warped.astype(np.float32) + (1.0 - m) * region.astype(np.float32)
        blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        inside = mask > 0
        region[inside] = blended[inside]
    return out
