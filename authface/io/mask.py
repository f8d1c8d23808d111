"""Reading inpainting masks: white (255) = the region to fill, black (0) = known pixels.

Used by ``authface restore --mask`` and by evaluation inside/outside the mask. :func:`read_mask` refuses, with one
message naming the file and the fix: an unreadable file; a mask of another size than its image (masks are never
resized: a resized mask no longer marks the same pixels); a mask that is not binary (more than
:data:`MAX_GRAY_FRACTION` of its pixels between :data:`BLACK_MAX` and :data:`WHITE_MIN`: a photo, a feathered
mask) -- fewer such pixels (JPEG ringing, a resampled edge) are thresholded at 128 with a warning; an empty mask
(nothing to fill) and a full one (nothing known around it). RGB masks are read as their luma; alpha is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..imaging import luma
from .read import DEFAULT_MAX_PIXELS, ImageReadError, read_image

#: Pixel values up to this count as black, from :data:`WHITE_MIN` as white, for the binary check.
BLACK_MAX = 16
WHITE_MIN = 239
#: A mask with more of its pixels strictly between black and white than this fraction is not binary (an error).
MAX_GRAY_FRACTION = 0.01
class MaskError(ValueError):
    """A mask file that cannot be used; ``path`` is the file, the message names it and says what to do."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"mask {self.path}: {reason}")


def read_mask(
    path: str | os.PathLike, shape: tuple[int, int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str | None]:
    """Read and check one mask (rules in the module doc).

    Args:
        path: the mask file.
        shape: ``(H, W)`` the mask must have (its image's size); None: any.

    Returns:
        ``(bool (H, W) mask, True = region to fill; warning or None)`` -- the warning says the mask was
        thresholded.

    Raises:
        MaskError: unreadable, wrong size, not binary, empty or full (one message naming the file).
    """
    try:
        img = read_image(path, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise MaskError(path, f"cannot be read: {exc.reason}") from None
    rgb = img.rgb
    gray = rgb[..., 0] if (rgb == rgb[..., :1]).all() else np.rint(luma(rgb.astype(np.float32), -1))
    h, w = gray.shape
    if shape is not None and (h, w) != tuple(shape):
        raise MaskError(
            path, f"is {w}x{h} but its image is {shape[1]}x{shape[0]}; masks are never resized: make the mask the "
            "size of the image",
        )  # fmt: skip
    gray_px = int(np.count_nonzero((gray > BLACK_MAX) & (gray < WHITE_MIN)))
    if gray_px > MAX_GRAY_FRACTION * gray.size:
        raise MaskError(
            path, f"is not binary: {100 * gray_px / gray.size:.1f}% of its pixels are gray (between {BLACK_MAX} and "
            f"{WHITE_MIN}); save it as a PNG with only black (0, known) and white (255, to fill)",
        )  # fmt: skip
    mask = gray >= 128
    warning = None
    if np.any((gray != 0) & (gray != 255)):
        warning = (
            f"mask {Path(path)}: {np.count_nonzero((gray != 0) & (gray != 255))} pixel(s) neither 0 nor 255 "
            "(JPEG-like); thresholded at 128"
        )
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise MaskError(
            path, "is empty (all black): there is no region to fill; white (255) marks the region"
        )
    if n == mask.size:
        raise MaskError(path, "covers the whole image (all white): nothing is known outside it; white marks only "
                        "the region to fill")  # fmt: skip
    return mask, warning
