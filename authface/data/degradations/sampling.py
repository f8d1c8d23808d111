"""The degradation pipelines: draw every random choice (:func:`sample_params`), apply them (:func:`degrade_from_params`),
or both (:func:`degrade`).

Two pipelines, chosen by :attr:`DegradationConfig.second_order`:

* first order (GFPGAN v1 / CodeFormer, ``FFHQDegradationDataset`` / ``FFHQBlindDataset``):
  [motion blur] -> blur -> downsample by ``s`` -> noise -> JPEG -> resize back to HQ size
  -> [colour shift] -> [gray] -> [brightness/contrast/saturation/hue jitter].
* second order (Real-ESRGAN, ``RealESRGANModel.feed_data``): [USM-sharpen HQ] -> blur -> random resize ->
  noise -> JPEG -> [blur] -> random resize -> noise -> {resize to HQ/s + sinc, JPEG} in random order
  -> resize back to HQ size -> colour steps as above.

Images are ``uint8`` RGB ``(H, W, 3)`` in and out; inside, every op runs on ``float32`` RGB in ``[0, 1]`` and the
result is rounded to ``uint8`` once, at the end (as GFPGAN / CodeFormer / Real-ESRGAN do). The parameters are a
JSON-ready dict, so the same seed gives the same parameters and the same parameters give byte-identical output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from authface.imaging import resize

from .checks import check_image, check_rng, to_float, to_uint8
from .config import DegradationConfig, resolve_config
from .kernels import kernel_from_params, random_kernel
from .ops import (
    COLOR_ADJUSTMENTS,
    add_gaussian_noise,
    add_poisson_noise,
    adjust_color,
    apply_kernel,
    color_shift,
    jpeg,
    sample_color_jitter,
    to_gray,
    usm_sharpen,
)

__all__ = ["PARAMS_VERSION", "degrade", "degrade_from_params", "sample_params"]

#: Version of the parameter dicts written by :func:`sample_params`; :func:`degrade_from_params` refuses others.
PARAMS_VERSION = 1


def _uniform(rng: np.random.Generator, r: Sequence[float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _odd_in(rng: np.random.Generator, r: Sequence[int]) -> int:
    """Uniform among the odd integers in [lo, hi] (both odd)."""
    return 2 * int(rng.integers(r[0] // 2, r[1] // 2, endpoint=True)) + 1


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


def _sample_blur(rng: np.random.Generator, cfg: DegradationConfig, prefix: str) -> dict[str, Any] | None:
    """Real-ESRGAN's kernel draw for the first (``prefix=""``) or second (``"second_"``) pass, taken with its
    ``blur_prob``: a size, then a sinc with ``sinc_prob`` (cutoff range by size), else a BasicSR mixed kernel."""
    prob = getattr(cfg, f"{prefix}blur_prob")
    if not (prob > 0 and rng.uniform() < prob):
        return None
    size = _odd_in(rng, getattr(cfg, f"{prefix}kernel_size"))
    sinc_prob = getattr(cfg, f"{prefix}sinc_prob")
    if sinc_prob > 0 and rng.uniform() < sinc_prob:
        omega = cfg.sinc_omega_small if size < 13 else cfg.sinc_omega_large
        return {"kind": "sinc", "size": size, "omega_c": _uniform(rng, omega)}
    _, params = random_kernel(
        rng, size, getattr(cfg, f"{prefix}kernel_kinds"), getattr(cfg, f"{prefix}kernel_probs"),
        getattr(cfg, f"{prefix}blur_sigma"), getattr(cfg, f"{prefix}betag_range"),
        getattr(cfg, f"{prefix}betap_range"), cfg.rotation_range,
    )  # fmt: skip
    return params


def _sample_noise(rng: np.random.Generator, cfg: DegradationConfig, prefix: str) -> dict[str, Any] | None:
    """The noise of the first (``prefix=""``) or second (``"second_"``) pass, taken with its ``noise_prob``."""
    prob, poisson_prob = getattr(cfg, f"{prefix}noise_prob"), getattr(cfg, f"{prefix}poisson_prob")
    if not (prob > 0 and rng.uniform() < prob):
        return None
    if poisson_prob > 0 and rng.uniform() < poisson_prob:
        noise: dict[str, Any] = {"type": "poisson", "scale": _uniform(rng, getattr(cfg, f"{prefix}poisson_scale_range"))}
    else:
        noise = {"type": "gaussian", "sigma": _uniform(rng, getattr(cfg, f"{prefix}noise_range"))}
    gray_prob = getattr(cfg, f"{prefix}gray_noise_prob")
    noise["gray"] = bool(gray_prob > 0 and rng.uniform() < gray_prob)
    noise["seed"] = _seed(rng)  # the noise field itself is drawn at apply time from this seed
    return noise


def _sample_jpeg(rng: np.random.Generator, r: Sequence[int], prob: float | None = None) -> dict[str, Any] | None:
    """A JPEG quality, taken with probability ``prob`` (a draw even when it is 1), or always (``None``)."""
    if prob is not None and not (prob > 0 and rng.uniform() < prob):
        return None
    return {"quality": int(rng.integers(r[0], r[1], endpoint=True))}


def _sample_updown(
    rng: np.random.Generator, probs: Sequence[float], r: Sequence[float], modes: Sequence[str]
) -> dict:
    p = np.asarray(probs, dtype=np.float64)
    direction = ("up", "down", "keep")[int(rng.choice(3, p=p / p.sum()))]
    if direction == "up":
        scale = float(rng.uniform(1.0, r[1]))
    elif direction == "down":
        scale = float(rng.uniform(r[0], 1.0))
    else:
        scale = 1.0
    return {"direction": direction, "scale": scale, "mode": _choice(rng, modes)}


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _sample_color(rng: np.random.Generator, cfg: DegradationConfig) -> dict[str, Any]:
    """GFPGAN's colour steps, in its order: shift, gray, jitter."""
    out: dict[str, Any] = {"color_shift": None, "gray": False, "color_jitter": None}
    if cfg.color_jitter_prob > 0 and rng.uniform() < cfg.color_jitter_prob:
        s = cfg.color_jitter_shift
        out["color_shift"] = [float(v) for v in rng.uniform(-s, s, 3)]
    out["gray"] = bool(cfg.gray_prob > 0 and rng.uniform() < cfg.gray_prob)
    if cfg.color_jitter_pt_prob > 0 and rng.uniform() < cfg.color_jitter_pt_prob:
        out["color_jitter"] = sample_color_jitter(
            rng, cfg.brightness_range, cfg.contrast_range, cfg.saturation_range, cfg.hue_range
        )
    return out


def sample_params(rng: np.random.Generator, config: DegradationConfig | str) -> dict[str, Any]:
    """Draw every random choice of one degradation, without touching an image.

    Returns a JSON-ready dict (plain ``int`` / ``float`` / ``str`` / ``bool`` / ``None`` / lists / dicts)
    that :func:`degrade_from_params` applies deterministically. Noise fields are not stored; their seeds
    are (``noise["seed"]``), and the noise is drawn from ``np.random.default_rng(seed)`` when applied.

    Keys (first order): ``version, pipeline="first_order", usm_sharpen, motion, blur, downsample
    {scale, mode}, noise {type, sigma | scale, gray, seed}, jpeg {quality}, resize_back_mode, color_shift,
    gray, color_jitter``; a step that was not drawn is ``None``. Second order: ``version,
    pipeline="second_order", usm_sharpen, sr_scale, first {motion, blur, resize, noise, jpeg},
    second {blur, resize, noise}, final {sinc_first, resize_mode, sinc, jpeg}, resize_back_mode`` and the
    colour keys. Kernel dicts: ``kind, size`` and ``sigma_x, sigma_y, theta, beta`` (BasicSR kinds),
    ``omega_c`` (sinc) or ``length, angle`` (motion).
    """
    cfg = resolve_config(config)
    check_rng(rng)
    params: dict[str, Any] = {
        "version": PARAMS_VERSION,
        "pipeline": "second_order" if cfg.second_order else "first_order",
        "usm_sharpen": cfg.usm_sharpen,
    }
    motion = None
    if cfg.motion_prob > 0 and rng.uniform() < cfg.motion_prob:
        length = _uniform(rng, cfg.motion_length)
        size = 2 * math.ceil(length / 2) + 1
        motion = {"kind": "motion", "size": size, "length": length, "angle": float(rng.uniform(0.0, 180.0))}
    blur = _sample_blur(rng, cfg, "")
    if not cfg.second_order:
        params.update(motion=motion, blur=blur)
        params["downsample"] = {"scale": _uniform(rng, cfg.downsample_range), "mode": _choice(rng, cfg.resize_modes)}
        params["noise"] = _sample_noise(rng, cfg, "")
        params["jpeg"] = _sample_jpeg(rng, cfg.jpeg_range, cfg.jpeg_prob)
    else:
        params["sr_scale"] = _uniform(rng, cfg.downsample_range)
        params["first"] = {
            "motion": motion,
            "blur": blur,
            "resize": _sample_updown(rng, cfg.resize_prob, cfg.resize_range, cfg.resize_modes),
            "noise": _sample_noise(rng, cfg, ""),
            "jpeg": _sample_jpeg(rng, cfg.jpeg_range, cfg.jpeg_prob),
        }
        params["second"] = {
            "blur": _sample_blur(rng, cfg, "second_"),
            "resize": _sample_updown(rng, cfg.second_resize_prob, cfg.second_resize_range, cfg.resize_modes),
            "noise": _sample_noise(rng, cfg, "second_"),
        }
        params["final"] = _sample_final(rng, cfg)
    params["resize_back_mode"] = cfg.resize_back_mode
    params.update(_sample_color(rng, cfg))
    return params


def _sample_final(rng: np.random.Generator, cfg: DegradationConfig) -> dict[str, Any]:
    """Real-ESRGAN's last steps: the order of {resize + sinc} and JPEG, the resize mode, the sinc, the JPEG."""
    final: dict[str, Any] = {"sinc_first": bool(rng.uniform() < 0.5), "resize_mode": _choice(rng, cfg.resize_modes)}
    final["sinc"] = None
    if cfg.final_sinc_prob > 0 and rng.uniform() < cfg.final_sinc_prob:
        final["sinc"] = {
            "kind": "sinc",
            "size": _odd_in(rng, cfg.final_sinc_kernel_size),
            "omega_c": _uniform(rng, cfg.final_sinc_omega),
        }
    final["jpeg"] = _sample_jpeg(rng, cfg.second_jpeg_range)
    return final


# --------------------------------------------------------------------------
# applying params (float32 RGB [0, 1] throughout)
# --------------------------------------------------------------------------


def _apply_noise(x: np.ndarray, noise: Mapping[str, Any] | None) -> np.ndarray:
    if noise is None:
        return x
    gen = np.random.default_rng(int(noise["seed"]))
    if noise["type"] == "gaussian":
        return add_gaussian_noise(x, gen, float(noise["sigma"]), bool(noise["gray"]))
    if noise["type"] == "poisson":
        return add_poisson_noise(x, gen, float(noise["scale"]), bool(noise["gray"]))
    raise ValueError(f"unknown noise type {noise['type']!r} in params; expected 'gaussian' or 'poisson'")


def _apply_blur(x: np.ndarray, kernel_params: Mapping[str, Any] | None) -> np.ndarray:
    return x if kernel_params is None else apply_kernel(x, kernel_from_params(kernel_params))


def _apply_jpeg(x: np.ndarray, jpeg_params: Mapping[str, Any] | None) -> np.ndarray:
    return x if jpeg_params is None else jpeg(x, jpeg_params["quality"])


def _resize(x: np.ndarray, height: float, width: float, mode: str) -> np.ndarray:
    """Resize to ``(max(1, int(height)), max(1, int(width)))``."""
    return resize(x, size=(max(1, int(height)), max(1, int(width))), mode=mode)


def _first_order(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    h, w = x.shape[:2]
    x = _apply_blur(x, p["motion"])
    x = _apply_blur(x, p["blur"])
    s = float(p["downsample"]["scale"])
    x = _resize(x, h // s, w // s, p["downsample"]["mode"])
    x = _apply_noise(x, p["noise"])
    x = _apply_jpeg(x, p["jpeg"])
    return _resize(x, h, w, p["resize_back_mode"])


def _second_order(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    h, w = x.shape[:2]
    sr = float(p["sr_scale"])
    first, second, final = p["first"], p["second"], p["final"]
    # first pass
    x = _apply_blur(x, first["motion"])
    x = _apply_blur(x, first["blur"])
    s1 = float(first["resize"]["scale"])
    x = _resize(x, math.floor(x.shape[0] * s1), math.floor(x.shape[1] * s1), first["resize"]["mode"])
    x = _apply_noise(x, first["noise"])
    x = _apply_jpeg(np.clip(x, 0.0, 1.0), first["jpeg"])
    # second pass
    x = _apply_blur(x, second["blur"])
    s2 = float(second["resize"]["scale"])
    x = _resize(x, h / sr * s2, w / sr * s2, second["resize"]["mode"])
    x = _apply_noise(x, second["noise"])
    # [resize to the LQ size + sinc] and JPEG, in either order
    lq_h, lq_w, mode = h // sr, w // sr, final["resize_mode"]
    if final["sinc_first"]:
        x = _apply_blur(_resize(x, lq_h, lq_w, mode), final["sinc"])
        x = _apply_jpeg(np.clip(x, 0.0, 1.0), final["jpeg"])
    else:
        x = _apply_jpeg(np.clip(x, 0.0, 1.0), final["jpeg"])
        x = _apply_blur(_resize(x, lq_h, lq_w, mode), final["sinc"])
    return _resize(x, h, w, p["resize_back_mode"])


_REQUIRED = {
    "first_order": ("usm_sharpen", "motion", "blur", "downsample", "noise", "jpeg", "resize_back_mode"),
    "second_order": ("usm_sharpen", "sr_scale", "first", "second", "final", "resize_back_mode"),
}
_COLOR_KEYS = ("color_shift", "gray", "color_jitter")


def degrade_from_params(img: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Apply a recorded degradation (a dict from :func:`sample_params` / :func:`degrade`, also after a JSON
    round trip) to HQ ``uint8 RGB (H, W, 3)``; returns the LQ ``uint8 RGB (H, W, 3)`` at the same size.
    Deterministic: byte-identical to what :func:`degrade` returned with the generator that drew ``params``
    (same NumPy / OpenCV builds).

    Raises:
        ValueError: a bad image, or params of another version, pipeline or with missing keys.
    """
    img = check_image(img, np.uint8)
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict from sample_params/degrade, got {type(params).__name__}")
    if params.get("version") != PARAMS_VERSION:
        raise ValueError(
            f"params version {params.get('version')!r} is not supported (expected {PARAMS_VERSION}); "
            "re-sample them with sample_params"
        )
    pipeline = params.get("pipeline")
    if pipeline not in _REQUIRED:
        raise ValueError(f"params['pipeline'] must be 'first_order' or 'second_order', got {pipeline!r}")
    missing = [k for k in (*_REQUIRED[pipeline], *_COLOR_KEYS) if k not in params]
    if missing:
        raise ValueError(f"params lack {missing}; pass a dict produced by sample_params or degrade")

    x = to_float(img)  # float32 RGB [0, 1] from here on
    if params["usm_sharpen"]:
        x = usm_sharpen(x)
    x = _first_order(x, params) if pipeline == "first_order" else _second_order(x, params)
    x = np.clip(x, 0.0, 1.0)
    if params["color_shift"] is not None:
        x = color_shift(x, params["color_shift"])
    if params["gray"]:
        x = to_gray(x)
    jitter = params["color_jitter"]
    if jitter is not None:
        x = adjust_color(x, **{name: jitter[name] for name in COLOR_ADJUSTMENTS}, order=jitter["order"])
    return to_uint8(x)


def degrade(
    img: np.ndarray, rng: np.random.Generator, config: DegradationConfig | str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Degrade one HQ face: ``uint8 RGB (H, W, 3)`` -> LQ ``uint8 RGB (H, W, 3)`` at the same size.

    ``config`` is a :class:`DegradationConfig` or a preset name (:data:`PRESETS`). All randomness comes
    from ``rng`` (a :class:`numpy.random.Generator`): the same generator state gives byte-identical output.

    Returns:
        ``(lq, params)``: ``params`` is the JSON-ready dict of every sampled parameter
        (:func:`sample_params`); :func:`degrade_from_params` replays it exactly.
    """
    img = check_image(img, np.uint8)
    params = sample_params(rng, config)
    return degrade_from_params(img, params), params
