"""The occlusion settings: :class:`FaceMaskSettings` and :class:`DamageSettings` (configs of :mod:`authface.config`).

Ranges are ``(lo, hi)`` tuples (``lo == hi`` fixes a value), drawn uniformly. Lengths of face masks are in units
of the face scale ``s`` (distance between the eye centre and the mouth centre); lengths of photo damage are
fractions of the image's shorter side unless a field says otherwise. Both classes validate on creation and in
:func:`authface.config.load_config`, e.g. ``load_config(DamageSettings, None, ["scratch_count=[2, 5]"])``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from authface.config import ConfigError, choices
from authface.data.degradations import check_image

__all__ = [
    "DAMAGE_KINDS",
    "GLOBAL_DAMAGE",
    "MASK_STYLES",
    "DamageKind",
    "DamageSettings",
    "FaceMaskSettings",
    "MaskStyle",
    "PaintSettings",
    "check_image_shape",
    "check_params",
    "check_settings",
]

MaskStyle = Literal["surgical", "n95", "kn95", "cloth", "bandana", "gaiter"]
"""Face-mask styles: pleated surgical mask, moulded N95 cup (optional valve), folded KN95, contoured cloth mask,
bandana tied over the nose, neck gaiter pulled over the nose."""
DamageKind = Literal["scratches", "creases", "tears", "stains"]
"""Local old-photo damage, each with a mask (the region to inpaint)."""

MASK_STYLES: tuple[str, ...] = choices(MaskStyle)
DAMAGE_KINDS: tuple[str, ...] = choices(DamageKind)
#: Global degradations of old photos (no mask: the whole image is restored, nothing is inpainted).
GLOBAL_DAMAGE: tuple[str, ...] = ("gray", "fading", "yellowing", "grain")


def _check_pair(owner: str, name: str, value: Any, lo: float, hi: float | None, integer: bool) -> tuple:
    try:
        pair = tuple(int(v) if integer else float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}.{name} must be a (lo, hi) pair of numbers, got {value!r}") from None
    if integer and any(float(a) != b for a, b in zip(value, pair)):
        raise ConfigError(f"{owner}.{name} must hold integers, got {value!r}")
    if len(pair) != 2 or not pair[0] <= pair[1] or pair[0] < lo or (hi is not None and pair[1] > hi):
        top = "" if hi is None else f", hi <= {hi}"
        raise ConfigError(f"{owner}.{name} must be a (lo, hi) pair with {lo} <= lo <= hi{top}; got {value!r}")
    return pair


def _validate(cfg: Any, bounds: dict[str, tuple[float, float | None]]) -> None:
    """Coerce and range-check every field of a settings dataclass (lists -> tuples, probabilities in [0, 1])."""
    owner = type(cfg).__name__
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        name, tp, value = f.name, hints[f.name], getattr(cfg, f.name)
        args = typing.get_args(tp)
        if typing.get_origin(tp) is tuple and args[-1] is Ellipsis:  # a tuple of choices or weights
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            allowed = choices(args[0])
            items = tuple(value)
            if allowed and any(v not in allowed for v in items):
                raise ConfigError(f"{owner}.{name} entries must be among {', '.join(allowed)}; got {value!r}")
            if not allowed:
                items = tuple(float(v) for v in items)
                if any(v < 0 for v in items) or (items and sum(items) <= 0):
                    raise ConfigError(f"{owner}.{name} must be non-negative weights with a positive sum")
            if not items:
                raise ConfigError(f"{owner}.{name} must not be empty")
            setattr(cfg, name, items)
        elif typing.get_origin(tp) is tuple:
            lo, hi = bounds.get(name, (0.0, None))
            setattr(cfg, name, _check_pair(owner, name, value, lo, hi, args[0] is int))
        elif tp in (float, int):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{owner}.{name} must be a number, got {value!r}")
            lo, hi = bounds.get(name, (0.0, 1.0 if name.endswith("_prob") else None))
            if not np.isfinite(value) or value < lo or (hi is not None and value > hi):
                raise ConfigError(
                    f"{owner}.{name} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}"
                )
            setattr(cfg, name, tp(value))


class _Settings:
    """Validation shared by the settings classes: ``_BOUNDS`` maps a field to its ``(lo, hi)`` (hi None: open)."""

    _BOUNDS: ClassVar[dict[str, tuple[float, float | None]]] = {}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (lists become tuples; probabilities in [0, 1]; ranges inside their bounds).

        Raises:
            ConfigError: (a ValueError) naming the field, the value and what is allowed.
        """
        _validate(self, self._BOUNDS)


@dataclass
class FaceMaskSettings(_Settings):
    """Ranges of the synthetic face masks (:func:`~authface.data.occlusions.occlude_face`).

    Coverage is the fraction of the face region (jaw line up to the eyebrows, from the 68 landmarks) that the
    mask body hides; the sampler redraws a shape up to ``max_tries`` times until it falls inside ``coverage``.
    """

    styles: tuple[MaskStyle, ...] = MASK_STYLES
    """Styles drawn from when no style is given."""
    style_weights: tuple[float, ...] = (1.0,) * len(MASK_STYLES)
    """Weights of ``styles`` (normalised)."""
    coverage: tuple[float, float] = (0.35, 0.85)
    """Allowed fraction of the face region hidden by the mask body."""
    size_jitter: tuple[float, float] = (0.85, 1.15)
    """Factor on each style's margins (how far the mask reaches past the jaw line and below the chin)."""
    saturation: tuple[float, float] = (0.0, 0.85)
    """HSV saturation of the fabric colour (surgical masks stay pale: at most a third of this)."""
    value: tuple[float, float] = (0.15, 0.97)
    """HSV value (brightness) of the fabric colour."""
    texture_strength: tuple[float, float] = (0.02, 0.08)
    """Amplitude of the fabric noise and weave, fraction of full scale."""
    fold_strength: tuple[float, float] = (0.06, 0.2)
    """Depth of pleats, seams and wrinkles (shading amplitude)."""
    shading_strength: tuple[float, float] = (0.1, 0.35)
    """Dome shading (edges darker than the middle) and directional light."""
    pattern_prob: float = 0.5
    """Probability of a printed pattern (stripes, dots, plaid, camo) on cloth masks and gaiters (bandanas always
    have one)."""
    strap_prob: float = 0.9
    """Probability of drawing the ear loops / head straps of the styles that have them."""
    strap_width: tuple[float, float] = (0.025, 0.05)
    """Width of ear loops and straps, in face scales."""
    valve_prob: float = 0.3
    """Probability of an exhalation valve on N95 masks."""
    max_tries: int = 20
    """Redraws of the shape to meet ``coverage`` before giving up with the closest one (logged)."""

    _BOUNDS: ClassVar[dict[str, tuple[float, float | None]]] = {
        "coverage": (0.0, 1.0), "saturation": (0.0, 1.0), "value": (0.0, 1.0), "texture_strength": (0.0, 0.5),
        "fold_strength": (0.0, 0.8), "shading_strength": (0.0, 0.8), "size_jitter": (0.1, 5.0),
        "max_tries": (1, 1000), "strap_width": (0.0, 0.5),
    }  # fmt: skip

    def validate(self) -> None:
        """Check every field, and that there is one weight per style.

        Raises:
            ConfigError: (a ValueError) naming the field, the value and what is allowed.
        """
        super().validate()
        if len(self.style_weights) != len(self.styles):
            raise ConfigError(
                f"FaceMaskSettings.style_weights must hold {len(self.styles)} weights (one per style), "
                f"got {self.style_weights!r}"
            )


@dataclass
class DamageSettings(_Settings):
    """Ranges of the synthetic old-photo damage (:func:`~authface.data.occlusions.damage_photo`).

    Each local kind is drawn with its probability; at least one local element is always drawn, so the mask is
    never empty. The damage mask may cover at most ``max_coverage`` of the image (redrawn up to ``max_tries``).
    """

    scratch_prob: float = 0.8
    scratch_count: tuple[int, int] = (1, 10)
    scratch_width: tuple[float, float] = (0.002, 0.006)
    """Line width, fraction of the shorter side (at least 1 pixel)."""
    scratch_length: tuple[float, float] = (0.1, 0.9)
    """Chord length of a scratch, fraction of the shorter side."""
    crease_prob: float = 0.35
    crease_count: tuple[int, int] = (1, 2)
    crease_width: tuple[float, float] = (0.006, 0.015)
    tear_prob: float = 0.25
    tear_count: tuple[int, int] = (1, 2)
    tear_size: tuple[float, float] = (0.06, 0.3)
    """How far a torn corner or edge reaches into the photo, fraction of the shorter side."""
    stain_prob: float = 0.5
    stain_count: tuple[int, int] = (1, 5)
    stain_radius: tuple[float, float] = (0.02, 0.1)
    stain_opacity: tuple[float, float] = (0.25, 0.75)
    gray_prob: float = 0.4
    """Probability of a black-and-white print (before yellowing)."""
    fading_prob: float = 0.8
    fading: tuple[float, float] = (0.05, 0.45)
    """Loss of contrast towards the paper tone (0 = none)."""
    yellowing_prob: float = 0.7
    yellowing: tuple[float, float] = (0.1, 0.8)
    """Blend towards the sepia-toned image (0 = none, 1 = full sepia)."""
    grain_prob: float = 0.8
    grain_sigma: tuple[float, float] = (2.0, 10.0)
    """Film grain standard deviation, 0-255 units (monochrome, slightly blurred)."""
    max_coverage: float = 0.3
    max_tries: int = 20

    _BOUNDS: ClassVar[dict[str, tuple[float, float | None]]] = {
        "scratch_count": (1, 200), "crease_count": (1, 20), "tear_count": (1, 8), "stain_count": (1, 100),
        "fading": (0.0, 1.0), "yellowing": (0.0, 1.0), "stain_opacity": (0.0, 1.0), "max_coverage": (0.0, 1.0),
        "max_tries": (1, 1000), "scratch_width": (0.0, 0.1), "crease_width": (0.0, 0.1), "tear_size": (0.0, 0.5),
        "stain_radius": (0.0, 0.5), "scratch_length": (0.0, 2.0), "grain_sigma": (0.0, 100.0),
    }  # fmt: skip


@dataclass
class PaintSettings(_Settings):
    """Ranges of the painted occlusions (:func:`~authface.data.occlusions.paint_strokes`): free-form brush strokes
    of flat paint, the region a user paints over a face for inpainting.

    Each stroke is a polyline of ``vertices`` points, each segment ``segment`` long (fraction of the shorter side)
    in a new random direction, drawn ``width`` wide with round joints. The strokes are redrawn (up to
    ``max_tries``) until they cover between ``coverage[0]`` and ``coverage[1]`` of the image.
    """

    stroke_count: tuple[int, int] = (1, 4)
    vertices: tuple[int, int] = (2, 8)
    """Points per stroke (2: one straight dab)."""
    segment: tuple[float, float] = (0.08, 0.3)
    """Length of each segment, fraction of the shorter side."""
    width: tuple[float, float] = (0.05, 0.15)
    """Brush width, fraction of the shorter side (at least 1 pixel)."""
    centre_spread: float = 0.3
    """Strokes start at most this fraction of the shorter side from the image centre along x and along y (the face
    of an aligned crop), clipped to the image."""
    white_prob: float = 0.8
    """Probability of white paint (as CodeFormer's and PGDiff's masked faces); else black (a third) or a colour."""
    coverage: tuple[float, float] = (0.03, 0.45)
    max_tries: int = 20

    _BOUNDS: ClassVar[dict[str, tuple[float, float | None]]] = {
        "stroke_count": (1, 50), "vertices": (2, 100), "segment": (0.0, 2.0), "width": (0.0, 0.5),
        "centre_spread": (0.0, 1.0), "coverage": (0.0, 1.0), "max_tries": (1, 1000),
    }  # fmt: skip


def check_settings(settings: Any, cls: type) -> Any:
    """``settings`` itself (validated), or ``cls()`` for ``None``; anything else raises ValueError."""
    if settings is None:
        return cls()
    if not isinstance(settings, cls):
        raise ValueError(f"settings must be a {cls.__name__} or None, got {type(settings).__name__}")
    settings.validate()
    return settings


def check_image_shape(image_shape: Any) -> tuple[int, int]:
    """``(H, W)`` of ``image_shape`` (``(H, W)`` or ``(H, W, C)``); ValueError naming ``image_shape`` otherwise."""
    try:
        h, w = (int(v) for v in tuple(image_shape)[:2])
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be (H, W) or (H, W, 3), got {image_shape!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"image_shape must be at least 2 x 2, got {image_shape!r}")
    return h, w


def check_params(img: Any, params: Any, version: int, what: str) -> tuple[np.ndarray, tuple[int, int]]:
    """``(img, (H, W))`` when ``img`` is ``uint8`` RGB of the size ``params`` (a ``what`` dict of ``version``)
    were drawn for.

    Raises:
        ValueError: a bad image, another size, another version, or not a parameter dict.
    """
    img = check_image(img, np.uint8, "img")
    if not isinstance(params, dict) or "version" not in params or "image_shape" not in params:
        raise ValueError(f"params is not a {what} parameter dict (no 'version' / 'image_shape')")
    if params["version"] != version:
        raise ValueError(f"params version {params['version']!r} is not {version}")
    shape_hw = check_image_shape(params["image_shape"])
    if img.shape[:2] != shape_hw:
        raise ValueError(f"img has shape {img.shape[:2]} but the params were drawn for {shape_hw}")
    return img, shape_hw
