"""The degradation settings: :class:`DegradationConfig` (every knob, every range) and the named :data:`PRESETS`."""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authface.config import ConfigError, ResizeMode, set_key
from authface.config.base import choices

from .kernels import KERNEL_KINDS, KernelKind

__all__ = ["PRESETS", "DegradationConfig", "get_preset", "resolve_config"]

_PI = math.pi


@dataclass
class DegradationConfig:
    """Every knob of the degradation pipelines; ranges are ``(lo, hi)`` tuples (``lo == hi`` fixes a value)
    and values are drawn uniformly within them. Defaults are GFPGAN v1's (``PRESETS["gfpgan"]``); the
    ``second_*`` / ``final_*`` / ``resize_prob`` / ``resize_range`` fields are used only when
    ``second_order`` is True and default to Real-ESRGAN's values.

    A config of :mod:`authface.config`'s mechanism: choices are ``Literal`` types, :meth:`validate` checks the
    ranges, so ``load_config(DegradationConfig, "degradation.yaml", ["noise_range=[0, 10]"])`` works. Derive
    variants with ``dataclasses.replace(get_preset("gfpgan"), noise_range=(0, 10))``; every field is validated on
    creation (a bad one raises :class:`~authface.config.ConfigError`, a ValueError, naming it). Lists are accepted
    wherever tuples are (YAML configs) and stored as tuples.
    """

    # ---- pipeline ----
    second_order: bool = False
    """False: GFPGAN/CodeFormer first-order pipeline; True: Real-ESRGAN second-order pipeline."""
    usm_sharpen: bool = False
    """Unsharp-mask the HQ before degrading it (Real-ESRGAN degrades the USM-sharpened ground truth)."""

    # ---- blur (first pass) ----
    blur_prob: float = 1.0
    """Probability of the (first) blur."""
    kernel_size: tuple[int, int] = (41, 41)
    """Odd kernel sizes, drawn uniformly among the odd values in the range (GFPGAN: 41; Real-ESRGAN: 7-21)."""
    kernel_kinds: tuple[KernelKind, ...] = ("iso", "aniso")
    """Kernel kinds to draw from (:data:`KERNEL_KINDS`)."""
    kernel_probs: tuple[float, ...] = (0.5, 0.5)
    """Weights of ``kernel_kinds`` (normalised)."""
    blur_sigma: tuple[float, float] = (0.1, 10.0)
    """Kernel standard deviations in pixels (both axes of anisotropic kinds)."""
    rotation_range: tuple[float, float] = (-_PI, _PI)
    """Rotation of anisotropic kernels, radians."""
    betag_range: tuple[float, float] = (0.5, 4.0)
    """Shape ``beta`` of generalised-Gaussian kernels (half the draws below 1, half above)."""
    betap_range: tuple[float, float] = (1.0, 2.0)
    """Shape ``beta`` of plateau kernels."""
    sinc_prob: float = 0.0
    """Probability that the first blur kernel is a sinc instead (Real-ESRGAN: 0.1; the second blur has
    ``second_sinc_prob``)."""
    sinc_omega_small: tuple[float, float] = (_PI / 3, _PI)
    """Sinc cutoff (radians) for kernels smaller than 13 (Real-ESRGAN)."""
    sinc_omega_large: tuple[float, float] = (_PI / 5, _PI)
    """Sinc cutoff (radians) for kernels of size 13 and more (Real-ESRGAN)."""
    motion_prob: float = 0.0
    """Probability of a linear motion blur before the blur (CodeFormer has the option, off in its configs)."""
    motion_length: tuple[float, float] = (5.0, 25.0)
    """Motion-blur length in pixels (angle uniform in [0, 180) degrees)."""

    # ---- resize ----
    downsample_range: tuple[float, float] = (0.8, 8.0)
    """HQ / LQ size factor. First order: drawn, LQ = ``int(W // s) x int(H // s)``. Second order: the final
    LQ size before resizing back (Real-ESRGAN: its x4 scale, ``(4, 4)``)."""
    resize_modes: tuple[ResizeMode, ...] = ("bilinear",)
    """Interpolation modes, one drawn uniformly per resize (GFPGAN: bilinear; Real-ESRGAN: area, bilinear,
    bicubic)."""
    resize_back_mode: ResizeMode = "bilinear"
    """Mode of the last resize, back to the HQ size (GFPGAN / CodeFormer: bilinear)."""
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Second order, first pass: weights of resizing up / down / keeping the size."""
    resize_range: tuple[float, float] = (0.15, 1.5)
    """Second order, first pass: scale factor; 'up' draws in [1, hi], 'down' in [lo, 1]."""

    # ---- noise (first pass) ----
    noise_prob: float = 1.0
    """Probability of adding noise at all."""
    noise_range: tuple[float, float] = (0.0, 20.0)
    """Gaussian noise sigma, 0-255 units."""
    poisson_prob: float = 0.0
    """When noise is added, probability that it is Poisson instead of Gaussian (Real-ESRGAN: 0.5)."""
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    """Poisson noise scale."""
    gray_noise_prob: float = 0.0
    """Probability that the noise is the same on the three channels (Real-ESRGAN: 0.4)."""

    # ---- JPEG (first pass) ----
    jpeg_prob: float = 1.0
    """Probability of JPEG compression."""
    jpeg_range: tuple[int, int] = (60, 100)
    """JPEG quality, integers drawn uniformly, both ends included."""

    # ---- colour (LQ only, at the end, after resizing back) ----
    color_jitter_prob: float = 0.3
    """Probability of a random per-channel shift (GFPGAN ``color_jitter``)."""
    color_jitter_shift: float = 20.0
    """Per-channel shift drawn in [-shift, shift], 0-255 units (GFPGAN: 20)."""
    color_jitter_pt_prob: float = 0.3
    """Probability of the brightness / contrast / saturation / hue jitter (GFPGAN ``color_jitter_pt``)."""
    brightness_range: tuple[float, float] = (0.5, 1.5)
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.0, 1.5)
    hue_range: tuple[float, float] = (-0.1, 0.1)
    """Factor ranges of the jitter (GFPGAN's defaults); hue in turns."""
    gray_prob: float = 0.01
    """Probability of turning the LQ gray (three equal channels)."""

    # ---- second pass (second_order only; Real-ESRGAN x4plus values) ----
    second_blur_prob: float = 0.8
    second_kernel_size: tuple[int, int] = (7, 21)
    second_kernel_kinds: tuple[KernelKind, ...] = KERNEL_KINDS
    second_kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    second_blur_sigma: tuple[float, float] = (0.2, 1.5)
    second_betag_range: tuple[float, float] = (0.5, 4.0)
    second_betap_range: tuple[float, float] = (1.0, 2.0)
    second_sinc_prob: float = 0.1
    second_resize_prob: tuple[float, float, float] = (0.3, 0.4, 0.3)
    second_resize_range: tuple[float, float] = (0.3, 1.2)
    second_noise_prob: float = 1.0
    second_noise_range: tuple[float, float] = (1.0, 25.0)
    second_poisson_prob: float = 0.5
    second_poisson_scale_range: tuple[float, float] = (0.05, 2.5)
    second_gray_noise_prob: float = 0.4
    second_jpeg_range: tuple[int, int] = (30, 95)
    """JPEG quality of the final compression (always applied in the second-order pipeline)."""
    final_sinc_prob: float = 0.8
    """Probability of the final sinc filter (Real-ESRGAN: 0.8)."""
    final_sinc_kernel_size: tuple[int, int] = (7, 21)
    final_sinc_omega: tuple[float, float] = (_PI / 3, _PI)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field, and store lists as tuples and numbers as ``float`` / ``int`` of their type.

        Scalars go through :func:`authface.config.set_key` (the one coercion of the config mechanism); tuples are
        checked here by their declared item types; then the ranges types cannot express: probabilities in
        ``[0, 1]``, ``(lo, hi)`` pairs with ``lo <= hi`` inside each field's bounds, odd kernel sizes, weights,
        one weight per kernel kind, resize ranges containing 1.

        Raises:
            ConfigError: (a ValueError) naming the field, the value and what is allowed.
        """
        for f in dataclasses.fields(self):
            name, tp, value = f.name, _hints()[f.name], getattr(self, f.name)
            if typing.get_origin(tp) is tuple:
                object.__setattr__(self, name, _check_tuple(name, value, typing.get_args(tp)))
            elif not _is_already(value, tp):  # coerce or refuse, as a config file's value would be
                try:
                    set_key(self, name, value)
                except ConfigError as e:
                    raise ConfigError(f"DegradationConfig.{e}") from None
            if tp is float:
                _check_number(name, getattr(self, name), 0.0, 1.0 if name.endswith("_prob") else None)
        for name, (lo_min, hi_max) in _PAIR_BOUNDS.items():
            for v in getattr(self, name):
                _check_number(name, v, lo_min, hi_max, getattr(self, name))
        for name in ("kernel_size", "second_kernel_size", "final_sinc_kernel_size"):
            if any(v % 2 == 0 for v in getattr(self, name)):
                raise ConfigError(f"DegradationConfig.{name}: kernel sizes must be odd, got {getattr(self, name)!r}")
        for name in ("resize_range", "second_resize_range"):
            lo, hi = getattr(self, name)
            if not lo <= 1.0 <= hi:
                raise ConfigError(f"DegradationConfig.{name} = {(lo, hi)!r} must contain 1 ('down' draws in "
                                  "[lo, 1], 'up' in [1, hi])")  # fmt: skip
        for prefix in ("", "second_"):
            kinds, probs = getattr(self, f"{prefix}kernel_kinds"), getattr(self, f"{prefix}kernel_probs")
            if len(probs) != len(kinds):
                raise ConfigError(f"DegradationConfig.{prefix}kernel_probs must hold {len(kinds)} weights (one per "
                                  f"{prefix}kernel_kinds entry), got {probs!r}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples as lists); :meth:`from_dict` reads it back."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: DegradationConfig | str | None = None) -> DegradationConfig:
        """Config from a dict (e.g. YAML), starting from ``base`` (a config or preset name; default the
        GFPGAN defaults). Unknown keys raise :class:`~authface.config.ConfigError` with the closest field name."""
        cfg = cls() if base is None else dataclasses.replace(resolve_config(base))
        for key, value in data.items():
            set_key(cfg, str(key), value)
        cfg.validate()
        return cfg


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(DegradationConfig)


def _is_already(value: Any, tp: Any) -> bool:
    """``value`` is exactly of scalar type ``tp`` (bool, float or a Literal): no coercion needed."""
    if tp is bool or tp is float:
        return type(value) is tp
    return isinstance(value, str) and value in choices(tp)


def _check_number(name: str, v: float, lo_min: float | None, hi_max: float | None, whole: Any = None) -> None:
    shown = f" = {whole!r}" if whole is not None else f" = {v!r}"
    if not math.isfinite(v):
        raise ConfigError(f"DegradationConfig.{name}{shown}: values must be finite numbers")
    if lo_min is not None and v < lo_min:
        raise ConfigError(f"DegradationConfig.{name}{shown}: values must be >= {lo_min}")
    if hi_max is not None and v > hi_max:
        what = "is a probability and must be in [0, 1]" if name.endswith("_prob") else f"values must be <= {hi_max}"
        raise ConfigError(f"DegradationConfig.{name}{shown}: {what}")


def _check_tuple(name: str, value: Any, args: tuple) -> tuple:
    """A tuple field: ``(lo, hi)`` pairs (``lo <= hi``), 3 weights, or a non-empty tuple of choices / weights."""
    variadic = len(args) == 2 and args[1] is Ellipsis
    item_tp = args[0]
    n = None if variadic else len(args)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value or len(value) != (n or len(value)):
        shape = {2: "a (lo, hi) pair", 3: "3 weights", None: "a non-empty tuple"}[n]
        raise ConfigError(f"DegradationConfig.{name} must be {shape}, got {value!r}")
    allowed = choices(item_tp)
    if allowed:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ConfigError(f"DegradationConfig.{name}: unknown value(s) {bad}; choose from {', '.join(allowed)}")
        return tuple(value)
    out = []
    for v in value:
        if isinstance(v, (bool, str)) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
            raise ConfigError(f"DegradationConfig.{name} must hold numbers, got {value!r}")
        if not math.isfinite(float(v)):
            raise ConfigError(f"DegradationConfig.{name} must hold finite numbers, got {value!r}")
        if item_tp is int and int(v) != v:
            raise ConfigError(f"DegradationConfig.{name} must hold integers, got {value!r}")
        out.append(int(v) if item_tp is int else float(v))
    if n == 2 and out[0] > out[1]:
        raise ConfigError(f"DegradationConfig.{name}: lo {out[0]} is above hi {out[1]}; give (lo, hi) with lo <= hi")
    if n != 2 and (any(v < 0 for v in out) or sum(out) <= 0):
        raise ConfigError(f"DegradationConfig.{name} must be non-negative weights with a positive sum, got {value!r}")
    return tuple(out)


_SMALL = 1e-12  # strictly-positive lower bound
_PI_TOL = _PI + 1e-9
#: (lo, hi) fields -> (minimum allowed lo, maximum allowed hi); integer-ness and lo <= hi come from the types.
_PAIR_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "kernel_size": (1, None),
    "blur_sigma": (_SMALL, None),
    "betag_range": (_SMALL, None),
    "betap_range": (_SMALL, None),
    "sinc_omega_small": (_SMALL, _PI_TOL),
    "sinc_omega_large": (_SMALL, _PI_TOL),
    "motion_length": (0.0, None),
    "downsample_range": (_SMALL, None),
    "resize_range": (_SMALL, None),
    "noise_range": (0.0, None),
    "poisson_scale_range": (0.0, None),
    "jpeg_range": (0, 100),
    "brightness_range": (0.0, None),
    "contrast_range": (0.0, None),
    "saturation_range": (0.0, None),
    "hue_range": (-0.5, 0.5),
    "second_kernel_size": (1, None),
    "second_blur_sigma": (_SMALL, None),
    "second_betag_range": (_SMALL, None),
    "second_betap_range": (_SMALL, None),
    "second_resize_range": (_SMALL, None),
    "second_noise_range": (0.0, None),
    "second_poisson_scale_range": (0.0, None),
    "second_jpeg_range": (0, 100),
    "final_sinc_kernel_size": (1, None),
    "final_sinc_omega": (_SMALL, _PI_TOL),
}

_REALESRGAN_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)

#: Named configurations. Sources (values copied from the published training configs):
#:
#: * ``"gfpgan"`` -- TencentARC/GFPGAN ``options/train_gfpgan_v1.yml`` + ``FFHQDegradationDataset``:
#:   41x41 iso/aniso 50/50 kernels, sigma 0.1-10, downsample x0.8-8 (bilinear both ways), Gaussian noise
#:   0-20, JPEG 60-100, colour shift p 0.3 (+-20/255), brightness/contrast/saturation/hue jitter p 0.3,
#:   gray p 0.01.
#: * ``"codeformer"`` -- sczhou/CodeFormer ``options/CodeFormer_stage2.yml`` + ``FFHQBlindDataset``:
#:   41x41 iso/aniso 50/50, sigma 1-15, downsample x4-30, noise 0-20, JPEG 30-80, no colour jitter,
#:   gray p 0 (the dataset's default; the stage-2 config sets neither).
#: * ``"realesrgan"`` -- xinntao/Real-ESRGAN ``options/train_realesrgan_x4plus.yml`` + ``RealESRGANDataset`` /
#:   ``RealESRGANModel``: second order, x4, USM-sharpened HQ, both passes and the final sinc as published.
#: * ``"mild"`` -- AuthFace's own light setting (not published): sigma 0.1-3 (21x21), x1-4, noise 0-10,
#:   JPEG 70-100, no colour changes.
#: Treat them as read-only (:func:`get_preset` hands out copies).
PRESETS: dict[str, DegradationConfig] = {
    "gfpgan": DegradationConfig(
        kernel_size=(41, 41),
        kernel_kinds=("iso", "aniso"),
        kernel_probs=(0.5, 0.5),
        blur_sigma=(0.1, 10.0),
        downsample_range=(0.8, 8.0),
        resize_modes=("bilinear",),
        resize_back_mode="bilinear",
        noise_range=(0.0, 20.0),
        jpeg_range=(60, 100),
        color_jitter_prob=0.3,
        color_jitter_shift=20.0,
        color_jitter_pt_prob=0.3,
        gray_prob=0.01,
    ),
    "codeformer": DegradationConfig(
        kernel_size=(41, 41),
        kernel_kinds=("iso", "aniso"),
        kernel_probs=(0.5, 0.5),
        blur_sigma=(1.0, 15.0),
        downsample_range=(4.0, 30.0),
        resize_modes=("bilinear",),
        resize_back_mode="bilinear",
        noise_range=(0.0, 20.0),
        jpeg_range=(30, 80),
        color_jitter_prob=0.0,
        color_jitter_pt_prob=0.0,
        gray_prob=0.0,
    ),
    "realesrgan": DegradationConfig(
        second_order=True,
        usm_sharpen=True,
        kernel_size=(7, 21),
        kernel_kinds=KERNEL_KINDS,
        kernel_probs=_REALESRGAN_PROBS,
        blur_sigma=(0.2, 3.0),
        betag_range=(0.5, 4.0),
        betap_range=(1.0, 2.0),
        sinc_prob=0.1,
        downsample_range=(4.0, 4.0),
        resize_modes=("area", "bilinear", "bicubic"),
        resize_back_mode="bilinear",
        resize_prob=(0.2, 0.7, 0.1),
        resize_range=(0.15, 1.5),
        noise_prob=1.0,
        noise_range=(1.0, 30.0),
        poisson_prob=0.5,
        poisson_scale_range=(0.05, 3.0),
        gray_noise_prob=0.4,
        jpeg_range=(30, 95),
        color_jitter_prob=0.0,
        color_jitter_pt_prob=0.0,
        gray_prob=0.0,
        second_blur_prob=0.8,
        second_kernel_size=(7, 21),
        second_kernel_kinds=KERNEL_KINDS,
        second_kernel_probs=_REALESRGAN_PROBS,
        second_blur_sigma=(0.2, 1.5),
        second_betag_range=(0.5, 4.0),
        second_betap_range=(1.0, 2.0),
        second_sinc_prob=0.1,
        second_resize_prob=(0.3, 0.4, 0.3),
        second_resize_range=(0.3, 1.2),
        second_noise_range=(1.0, 25.0),
        second_poisson_prob=0.5,
        second_poisson_scale_range=(0.05, 2.5),
        second_gray_noise_prob=0.4,
        second_jpeg_range=(30, 95),
        final_sinc_prob=0.8,
        final_sinc_kernel_size=(7, 21),
        final_sinc_omega=(_PI / 3, _PI),
    ),
    "mild": DegradationConfig(
        kernel_size=(21, 21),
        kernel_kinds=("iso", "aniso"),
        kernel_probs=(0.5, 0.5),
        blur_sigma=(0.1, 3.0),
        downsample_range=(1.0, 4.0),
        resize_modes=("bilinear",),
        resize_back_mode="bilinear",
        noise_range=(0.0, 10.0),
        jpeg_range=(70, 100),
        color_jitter_prob=0.0,
        color_jitter_pt_prob=0.0,
        gray_prob=0.0,
    ),
}


def get_preset(name: str) -> DegradationConfig:
    """A copy of the preset called ``name`` (:data:`PRESETS`); an unknown name raises ConfigError (a ValueError)
    listing the presets."""
    return dataclasses.replace(resolve_config(name))


def resolve_config(config: DegradationConfig | str) -> DegradationConfig:
    """``config`` itself, or the preset it names (the shared object of :data:`PRESETS`: do not modify it).

    Raises:
        ConfigError: (a ValueError) an unknown preset name, or neither a config nor a name.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ConfigError(f"unknown degradation preset {config!r}; choose from {', '.join(sorted(PRESETS))}")
        return PRESETS[config]
    if not isinstance(config, DegradationConfig):
        raise ConfigError(
            f"config must be a DegradationConfig or a preset name ({', '.join(sorted(PRESETS))}), "
            f"got {type(config).__name__}"
        )
    return config
