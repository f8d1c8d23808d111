"""The presets of ``authface degrade`` and what one benchmark image is under each: its generator
(:func:`bench_rng`), its occlusion (:func:`occlude_image`), its replay from recorded params (:func:`replay`) and the
scalar strengths of its degradation (:func:`degradation_factors`). :mod:`authface.data.benchmark` builds folders of
them.

Presets: the degradation presets of :data:`authface.data.degradations.PRESETS` (blind restoration), and the
:data:`OCCLUSION_PRESETS` (inpainting, from :mod:`authface.data.occlusions`): ``mask`` draws one synthetic face
mask per image (style drawn from :class:`~authface.data.occlusions.FaceMaskSettings`), ``old-photo`` ages the image
(scratches, creases, tears, stains with their mask; gray, yellowing, fading, grain without), ``paint`` paints
free-form brush strokes (:class:`~authface.data.occlusions.PaintSettings`). The face mask is placed
from the FFHQ template landmarks (:func:`authface.face.face_template`, scaled to the image; non-square images get
it stretched): the inputs are aligned crops, so the template is where the eyes, nose and mouth are to within a few
pixels, and a benchmark does not depend on whether dlib is installed (the landmarks used are in every record's
params; dlib's 68 points would change the masks from one machine to the next).

Each image's generator is ``numpy.random.default_rng(SeedSequence([seed, *w]))`` with ``w`` the eight 32-bit words of
``sha256(relative path)``: adding images to the HQ folder changes no existing LQ, the same seed gives byte-identical
files, and workers do not change the result.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from authface.config import DegradationPreset, choices

__all__ = [
    "BENCHMARK_PRESETS",
    "OCCLUSION_PRESETS",
    "BenchmarkPreset",
    "OcclusionPreset",
    "bench_rng",
    "degradation_factors",
    "occlude_image",
    "occlusion_params_version",
    "occlusion_settings",
    "occlusion_settings_class",
    "replay",
]

#: Inpainting benchmarks: synthetic face masks, old-photo damage, painted strokes (each image gets a mask in
#: ``mask/``).
OcclusionPreset = Literal["mask", "old-photo", "paint"]
OCCLUSION_PRESETS: tuple[str, ...] = choices(OcclusionPreset)
#: Every preset of ``authface degrade``: the degradation presets, then the occlusion presets.
BenchmarkPreset = Literal[DegradationPreset, OcclusionPreset]
BENCHMARK_PRESETS: tuple[str, ...] = choices(BenchmarkPreset)


class _Occlusion(NamedTuple):
    """What :mod:`authface.data.occlusions` has for one occlusion preset."""

    settings: type
    draw: Any
    """``draw(img, rng, settings) -> (occluded, mask, params)`` (the face mask's takes landmarks too)."""
    apply: Any
    """``apply(img, params) -> (occluded, mask)``, byte-identical to ``draw``."""
    version: int
    """The version of the params ``draw`` records."""


def _occlusion(preset: str) -> _Occlusion:
    """The one table of the occlusion presets (imported lazily: OpenCV and the occlusion code load on first use).

    Raises:
        ValueError: ``preset`` is not one of :data:`OCCLUSION_PRESETS`.
    """
    from authface.data import occlusions as o

    table = {
        "mask": _Occlusion(o.FaceMaskSettings, o.occlude_face, o.apply_mask_params, o.MASK_PARAMS_VERSION),
        "old-photo": _Occlusion(o.DamageSettings, o.damage_photo, o.apply_damage_params, o.DAMAGE_PARAMS_VERSION),
        "paint": _Occlusion(o.PaintSettings, o.paint_strokes, o.apply_paint_params, o.PAINT_PARAMS_VERSION),
    }
    if preset not in table:
        raise ValueError(f"occlusion preset must be one of {', '.join(OCCLUSION_PRESETS)}, got {preset!r}")
    return table[preset]


def bench_rng(seed: int, rel: str):
    """The generator of one benchmark image: depends only on ``seed`` and the POSIX relative path ``rel``."""
    import numpy as np

    words = struct.unpack("<8I", hashlib.sha256(rel.encode("utf-8")).digest())
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def occlusion_settings_class(preset: str) -> type:
    """The settings class of an occlusion preset: ``FaceMaskSettings`` (mask), ``DamageSettings`` (old-photo) or
    ``PaintSettings`` (paint), from :mod:`authface.data.occlusions`.

    Raises:
        ValueError: ``preset`` is not one of :data:`OCCLUSION_PRESETS`.
    """
    return _occlusion(preset).settings


def occlusion_params_version(preset: str) -> int:
    """The version of the params an occlusion preset records (ValueError for another preset)."""
    return _occlusion(preset).version


def occlusion_settings(preset: str, settings: Any = None) -> Any:
    """The settings object of an occlusion preset: ``settings`` when given (checked for its class and
    validated), else the defaults.

    Raises:
        ValueError: an unknown preset, settings of another class, or invalid settings.
    """
    cls = occlusion_settings_class(preset)
    if settings is None:
        return cls()
    if not isinstance(settings, cls):
        raise ValueError(f"preset {preset!r} takes {cls.__name__} settings, got {type(settings).__name__}")
    settings.validate()
    return settings


def _template_landmarks(h: int, w: int):
    """The 5 FFHQ template points scaled to an ``h`` x ``w`` image: float32 (5, 2), pixels."""
    import numpy as np

    from authface.face import face_template

    return face_template(512) * np.array([w / 512.0, h / 512.0], np.float32)


def occlude_image(img, rng, preset: str, settings: Any = None) -> tuple[Any, Any, dict[str, Any]]:
    """Occlude one clean aligned face like the ``mask`` / ``old-photo`` / ``paint`` benchmark presets.

    Args:
        img: uint8 RGB ``(H, W, 3)``.
        rng: a :class:`numpy.random.Generator` (the only randomness).
        preset: ``"mask"`` (:func:`~authface.data.occlusions.occlude_face` with a drawn style, placed from the
            FFHQ template landmarks), ``"old-photo"`` (:func:`~authface.data.occlusions.damage_photo`) or
            ``"paint"`` (:func:`~authface.data.occlusions.paint_strokes`).
        settings: :class:`~authface.data.occlusions.FaceMaskSettings` / ``DamageSettings`` / ``PaintSettings``;
            None: defaults.

    Returns:
        ``(occluded uint8 (H, W, 3), mask uint8 (H, W) in {0, 255} (255 = to fill), JSON-ready params)``.

    Raises:
        ValueError: an unknown preset, a bad image or settings.
    """
    kit, cfg = _occlusion(preset), occlusion_settings(preset, settings)
    if preset == "mask":
        h, w = img.shape[:2]
        return kit.draw(img, _template_landmarks(h, w), rng, None, cfg)
    return kit.draw(img, rng, cfg)


def replay(hq, preset: str, params: Mapping[str, Any]) -> tuple[Any, Any]:
    """The LQ image (and mask) of one benchmark record again: ``(lq uint8 (H, W, 3), mask uint8 (H, W) or
    None)`` from the HQ image and the record's ``params``, byte-identical to the benchmark's files."""
    if preset in OCCLUSION_PRESETS:
        return _occlusion(preset).apply(hq, dict(params))
    from authface.data.degradations import degrade_from_params

    return degrade_from_params(hq, dict(params)), None


def _kernel_sigma(k: Mapping | None) -> float:
    if not k or k.get("kind") == "sinc":
        return 0.0
    return float(max(k.get("sigma_x") or 0.0, k.get("sigma_y") or 0.0))


def _noise_level(n: Mapping | None) -> float:
    if not n:
        return 0.0
    return float(n["sigma"]) if n.get("type") == "gaussian" else float(n.get("scale", 0.0)) * 100.0


def degradation_factors(params: Mapping[str, Any]) -> dict[str, float]:
    """Scalar strengths of one sampled degradation (:func:`authface.data.degradations.sample_params`):
    ``blur_sigma`` (largest kernel sigma in pixels, 0 without blur), ``scale`` (downsampling factor), ``noise``
    (Gaussian sigma on 0..255, or Poisson scale x 100, 0 without), ``jpeg`` (quality, 100 without).

    Occlusion params: ``face_coverage`` (fraction of the face region under a face mask) for ``mask``;
    ``damage_area`` (fraction of the image under the damage mask) for ``old-photo``; ``paint_area`` (fraction of
    the image under the strokes) for ``paint``."""
    if "style" in params and "coverage" in params:
        return {"face_coverage": float(params["coverage"])}
    if "elements" in params and "coverage" in params:
        return {"damage_area": float(params["coverage"])}
    if "strokes" in params and "coverage" in params:
        return {"paint_area": float(params["coverage"])}
    if params.get("pipeline") == "second_order":
        first, second, final = params["first"], params["second"], params["final"]
        return {
            "blur_sigma": max(_kernel_sigma(first.get("blur")), _kernel_sigma(second.get("blur"))),
            "scale": float(params["sr_scale"]),
            "noise": max(_noise_level(first.get("noise")), _noise_level(second.get("noise"))),
            "jpeg": float(min([q["quality"] for q in (first.get("jpeg"), final.get("jpeg")) if q] or [100])),
        }
    return {
        "blur_sigma": _kernel_sigma(params.get("blur")),
        "scale": float(params["downsample"]["scale"]),
        "noise": _noise_level(params.get("noise")),
        "jpeg": float(params["jpeg"]["quality"]) if params.get("jpeg") else 100.0,
    }
