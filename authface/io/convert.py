"""dtype, value-range and layout conversions between numpy images and torch tensors.

``uint8`` RGB ``(B, H, W, 3)`` arrays <-> float ``[-1, 1]`` RGB ``(B, 3, H, W)`` tensors; torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert an image array ``(H, W[, C])`` to ``uint8`` (C-contiguous).

    * ``uint8``: returned as is (made contiguous).
    * ``bool``: False -> 0, True -> 255.
    * ``uint16``: ``value >> 8`` (65535 -> 255), as for 16-bit files.
    * float (any width): taken as [0, 1]; clipped to it, times 255, rounded;
      NaN -> 0.

    Raises:
        TypeError: any other dtype (signed or wider integers are ambiguous:
            scale them yourself).
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr.astype(np.uint8) * np.uint8(255))
    if arr.dtype == np.uint16:
        return np.ascontiguousarray((arr >> 8).astype(np.uint8))
    if np.issubdtype(arr.dtype, np.floating):
        a = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
        return np.ascontiguousarray(np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8))
    raise TypeError(
        f"to_uint8: unsupported dtype {arr.dtype}; expected uint8, uint16, bool or float in [0, 1]"
    )


def numpy_to_tensor(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB image(s) -> float32 RGB tensor in [-1, 1], shape (B, 3, H, W), on CPU.

    ``images`` is one ``(H, W, 3)`` array, a list of them (all the same size)
    or a ``(B, H, W, 3)`` array.  ``x / 127.5 - 1``: 0 -> -1, 255 -> 1.

    Raises:
        TypeError: not uint8 (convert with :func:`to_uint8` first).
        ValueError: wrong shape, empty list, or sizes that differ.
    """
    import torch

    if isinstance(images, np.ndarray):
        batch = images[None] if images.ndim == 3 else images
    else:
        items = list(images)
        if not items:
            raise ValueError("numpy_to_tensor: empty list of images")
        for i, item in enumerate(items):
            if not isinstance(item, np.ndarray) or item.ndim != 3:
                raise ValueError(f"numpy_to_tensor: item {i} is not an (H, W, 3) array")
        shapes = {item.shape for item in items}
        if len(shapes) > 1:
            raise ValueError(f"numpy_to_tensor: images differ in size: {sorted(shapes)}")
        batch = np.stack(items)
    if batch.dtype != np.uint8:
        raise TypeError(f"numpy_to_tensor: expected uint8, got {batch.dtype} (use to_uint8 first)")
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise ValueError(f"numpy_to_tensor: expected (H, W, 3) or (B, H, W, 3), got {batch.shape}")
    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).to(torch.float32)
    return (t / 127.5 - 1.0).contiguous()


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """float RGB tensor in [-1, 1], shape (B, 3, H, W), any float dtype and
    device -> uint8 RGB array (B, H, W, 3): ``(x + 1) * 127.5``, rounded,
    clipped to 0..255; NaN -> 0.

    Raises:
        TypeError: not a floating-point torch tensor.
        ValueError: not of shape (B, 3, H, W).
    """
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"tensor_to_numpy: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"tensor_to_numpy: expected a floating-point tensor, got {t.dtype}")
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"tensor_to_numpy: expected shape (B, 3, H, W), got {tuple(t.shape)}")
    x = t.detach().to(torch.float32)
    x = torch.nan_to_num((x + 1.0) * 127.5, nan=0.0, posinf=255.0, neginf=0.0)
    x = x.round().clamp(0.0, 255.0).to(torch.uint8)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).cpu().numpy())


def as_rgb_alpha(image: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Any in-memory image -> (uint8 RGB ``(H, W, 3)``, uint8 alpha ``(H, W)`` or None).

    Accepts a numpy array ``(H, W)`` (gray), ``(H, W, 1)``, ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA) of
    uint8, uint16, bool or float in [0, 1] (see :func:`to_uint8`), or a PIL image of any mode (palette and
    gray-with-alpha included). Files are read with :func:`authface.io.read_image` instead.

    Raises:
        TypeError: not a numpy array or PIL image, or an unsupported dtype.
        ValueError: an unsupported shape or an empty image.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a core dependency
        Image = None  # noqa: N806
    if Image is not None and isinstance(image, Image.Image):
        has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        image = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"expected a numpy array or a PIL image, got {type(image).__name__}; pass a file path to read it"
        )
    arr = to_uint8(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"the image is empty: shape {arr.shape}")
    if arr.shape[2] == 4:
        return np.ascontiguousarray(arr[:, :, :3]), np.ascontiguousarray(arr[:, :, 3])
    return np.ascontiguousarray(arr), None
