"""Argument checks and the uint8 <-> float32 conversions of the degradation pipeline.

The ops work on ``float32`` RGB ``(H, W, 3)`` images in ``[0, 1]``; the pipeline converts ``uint8`` once at its
entry (:func:`to_float`) and once at its exit (:func:`authface.io.to_uint8`: clip, x 255, round half to even).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_image", "check_rng", "to_float", "to_uint8"]

_CONVERT_HINT = {
    np.dtype(np.uint8): "convert it with authface.io.to_uint8 (floats are taken as [0, 1])",
    np.dtype(np.float32): "convert a uint8 image with authface.data.degradations.to_float",
}


def check_image(img: Any, dtype: type = np.float32, what: str = "img") -> np.ndarray:
    """Return ``img`` when it is an RGB ``(H, W, 3)`` numpy array of ``dtype`` (``np.uint8`` or ``np.float32``).

    Raises:
        ValueError: not a numpy array, not ``(H, W, 3)``, another dtype, or empty; the message says the fix.
    """
    want = np.dtype(dtype)
    if not isinstance(img, np.ndarray):
        raise ValueError(
            f"{what} must be a numpy {want} RGB array of shape (H, W, 3), got {type(img).__name__}; "
            "convert it with np.asarray(PIL_image.convert('RGB'))"
        )
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(
            f"{what} must have shape (H, W, 3) (RGB), got shape {img.shape}; convert grey/RGBA images to RGB first"
        )
    if img.dtype != want:
        raise ValueError(f"{what} must have dtype {want}, got {img.dtype}; {_CONVERT_HINT[want]}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{what} is empty (shape {img.shape})")
    return img


def check_rng(rng: Any) -> np.random.Generator:
    """Return ``rng`` when it is a :class:`numpy.random.Generator`; raise ValueError otherwise."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; pass np.random.default_rng(seed)"
        )
    return rng


def to_float(img: np.ndarray) -> np.ndarray:
    """``uint8`` RGB ``(H, W, 3)`` -> ``float32`` RGB ``(H, W, 3)`` in ``[0, 1]`` (``img * (1 / 255)``).

    Raises:
        ValueError: ``img`` is not a ``uint8`` RGB ``(H, W, 3)`` array.
    """
    return check_image(img, np.uint8).astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """``float`` RGB in ``[0, 1]`` -> ``uint8``: clip, x 255, round half to even (:func:`authface.io.to_uint8`)."""
    from authface.io import to_uint8 as io_to_uint8  # lazily: authface.io imports Pillow

    return io_to_uint8(x)
