"""Textures, patterns, shading and compositing shared by the face masks and the photo damage.

Every field is ``float32``; colours are RGB in ``[0, 1]``. Random fields are drawn from a
:class:`numpy.random.Generator` the caller seeds from a recorded integer, so they replay exactly.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

__all__ = [
    "PATTERNS",
    "composite",
    "hsv_color",
    "pattern_field",
    "random_color",
    "value_noise",
]

#: Printed fabric patterns: ``"stripes"``, ``"dots"``, ``"plaid"``, ``"camo"``.
PATTERNS: tuple[str, ...] = ("stripes", "dots", "plaid", "camo")


def hsv_color(h: float, s: float, v: float) -> list[float]:
    """RGB ``[r, g, b]`` in ``[0, 1]`` of a hue in turns, saturation and value in ``[0, 1]``."""
    return [float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v)]


def random_color(
    rng: np.random.Generator, saturation: Sequence[float], value: Sequence[float]
) -> list[float]:
    """A colour of uniform hue, saturation in ``saturation`` and value in ``value`` (RGB ``[0, 1]``)."""
    h, s, v = rng.uniform(), rng.uniform(*saturation), rng.uniform(*value)
    return hsv_color(float(h), float(s), float(v))


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth noise ``float32 (h, w)`` of zero mean and unit-ish amplitude: a random grid with one value every
    ``cell`` pixels, upsampled bicubically."""
    import cv2

    h, w = shape
    cell = max(float(cell), 1.0)
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(round(gw * cell)), int(round(gh * cell))), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:h, :w])


def pattern_field(kind: str, u: np.ndarray, v: np.ndarray, period: float, angle: float,
                  noise: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Weight ``float32`` in ``[0, 1]`` of the second colour of a printed pattern at face coordinates ``(u, v)``
    (``period`` in the same units; ``angle`` in radians). ``"camo"`` needs a smooth ``noise`` field."""
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    a, b = (u * c + v * s) / period, (-u * s + v * c) / period
    if kind == "stripes":
        return (np.sin(2 * np.pi * a) > 0.3).astype(np.float32)
    if kind == "dots":
        da, db = a - np.round(a), b - np.round(b)
        return (da * da + db * db < 0.07).astype(np.float32)
    if kind == "plaid":
        return 0.5 * (np.sin(2 * np.pi * a) > 0.5) + 0.5 * (np.sin(2 * np.pi * b) > 0.5)
    if kind == "camo":
        if noise is None:
            raise ValueError("pattern 'camo' needs a noise field")
        return (noise > 0.35).astype(np.float32) + 0.5 * (noise < -0.6)
    raise ValueError(f"unknown pattern {kind!r}; choose from {', '.join(PATTERNS)}")


def composite(img: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``img * (1 - alpha) + layer * alpha`` on ``float32`` RGB ``(H, W, 3)``; ``alpha`` is ``(H, W)``."""
    a = alpha[..., None]
    return img * (1 - a) + layer * a
