"""Tests for authface.data.degradations: kernels, ops, presets, reproducibility, validation."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from authface.data import degradations as D
from authface.data.degradations import PRESETS, DegradationConfig
from authface.data.degradations import kernels as K
from authface.io import to_uint8

PRESET_NAMES = sorted(PRESETS)


@pytest.fixture(scope="module")
def face128(astronaut) -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def face64(astronaut) -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA))


def _gray_image(value: int = 128, size: int = 256) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def _high_freq_energy(img: np.ndarray) -> float:
    """Mean power of the spectrum outside half the Nyquist radius (luma, Hann-windowed against leakage)."""
    y = img.astype(np.float64).mean(axis=2)
    h, w = y.shape
    f = np.fft.fftshift(np.fft.fft2((y - y.mean()) * np.outer(np.hanning(h), np.hanning(w))))
    fy, fx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    return float((np.abs(f) ** 2)[np.hypot(fx, fy) > 0.25].mean())


def _u8(op, img: np.ndarray, *args, **kwargs) -> np.ndarray:
    """Run a float32 [0, 1] op on a uint8 image and round its result back to uint8 (as the pipeline does)."""
    out = op(D.to_float(img), *args, **kwargs)
    return to_uint8(out[0]) if isinstance(out, tuple) else to_uint8(out)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


# --------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_same_seed_gives_identical_output_and_params(face128, preset):
    lq1, p1 = D.degrade(face128, np.random.default_rng(1234), preset)
    lq2, p2 = D.degrade(face128, np.random.default_rng(1234), preset)
    assert lq1.tobytes() == lq2.tobytes()
    assert p1 == p2
    assert json.loads(json.dumps(p1)) == p1  # JSON-ready, exactly


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_different_seeds_differ(face128, preset):
    lq0, p0 = D.degrade(face128, np.random.default_rng(0), preset)
    lq1, p1 = D.degrade(face128, np.random.default_rng(1), preset)
    assert p0 != p1
    assert not np.array_equal(lq0, lq1)


def test_preset_name_and_config_object_agree(face64):
    a, pa = D.degrade(face64, np.random.default_rng(5), "gfpgan")
    b, pb = D.degrade(face64, np.random.default_rng(5), PRESETS["gfpgan"])
    assert np.array_equal(a, b) and pa == pb


def test_global_and_opencv_rngs_are_not_used(face64):
    np.random.seed(0)
    cv2.setRNGSeed(0)
    state = np.random.get_state()
    a, _ = D.degrade(face64, np.random.default_rng(3), "realesrgan")
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    np.random.seed(99)
    cv2.setRNGSeed(99)
    b, _ = D.degrade(face64, np.random.default_rng(3), "realesrgan")
    assert np.array_equal(a, b)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_degrade_from_params_replays_exactly(face64, preset):
    for seed in range(6):
        lq, params = D.degrade(face64, np.random.default_rng(seed), preset)
        replay = D.degrade_from_params(face64, json.loads(json.dumps(params)))
        assert replay.tobytes() == lq.tobytes(), (preset, seed)


def test_replay_covers_every_branch(face64):
    """A config that switches on every optional step; replay must still be exact."""
    everything = dataclasses.replace(
        PRESETS["realesrgan"],
        motion_prob=1.0,
        motion_length=(3.0, 9.0),
        color_jitter_prob=1.0,
        color_jitter_pt_prob=1.0,
        gray_prob=0.5,
        sinc_prob=0.5,
        second_sinc_prob=0.5,
        final_sinc_prob=0.5,
    )
    seen = set()
    for seed in range(24):
        lq, params = D.degrade(face64, np.random.default_rng(seed), everything)
        assert D.degrade_from_params(face64, json.loads(json.dumps(params))).tobytes() == lq.tobytes()
        seen.add(params["first"]["noise"]["type"])
        seen.add(("gray", params["gray"]))
        seen.add(("sinc_first", params["final"]["sinc_first"]))
    assert {
        "gaussian",
        "poisson",
        ("gray", True),
        ("gray", False),
        ("sinc_first", True),
        ("sinc_first", False),
    } <= seen


# --------------------------------------------------------------------------
# pipeline outputs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("shape", [(64, 64, 3), (48, 80, 3), (16, 16, 3)])
def test_degrade_keeps_shape_and_dtype(face128, preset, shape):
    hq = np.ascontiguousarray(cv2.resize(face128, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))
    for seed in range(3):
        lq, _ = D.degrade(hq, np.random.default_rng(seed), preset)
        assert lq.shape == shape and lq.dtype == np.uint8 and lq.flags.c_contiguous


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_degrade_degrades_but_keeps_the_picture(face128, preset):
    scores = [_psnr(face128, D.degrade(face128, np.random.default_rng(s), preset)[0]) for s in range(8)]
    assert max(scores) < 45  # something happened
    assert np.median(scores) > 12  # still the same picture, pixel-aligned


def test_presets_are_ordered_by_strength(face128):
    def median_psnr(preset):
        return np.median(
            [_psnr(face128, D.degrade(face128, np.random.default_rng(s), preset)[0]) for s in range(10)]
        )

    assert median_psnr("mild") > median_psnr("gfpgan") > median_psnr("codeformer")


def test_degrade_does_not_modify_its_input(face64):
    before = face64.copy()
    D.degrade(face64, np.random.default_rng(0), "realesrgan")
    assert np.array_equal(before, face64)


# --------------------------------------------------------------------------
# presets and sampled ranges
# --------------------------------------------------------------------------


def test_presets_hold_the_published_values():
    g = PRESETS["gfpgan"]  # TencentARC/GFPGAN options/train_gfpgan_v1.yml
    assert (g.kernel_size, g.kernel_kinds, g.kernel_probs) == ((41, 41), ("iso", "aniso"), (0.5, 0.5))
    assert (g.blur_sigma, g.downsample_range, g.noise_range, g.jpeg_range) == (
        (0.1, 10),
        (0.8, 8),
        (0, 20),
        (60, 100),
    )
    assert (g.color_jitter_prob, g.color_jitter_shift, g.color_jitter_pt_prob, g.gray_prob) == (
        0.3,
        20,
        0.3,
        0.01,
    )
    assert (g.brightness_range, g.contrast_range, g.saturation_range, g.hue_range) == (
        (0.5, 1.5), (0.5, 1.5), (0, 1.5), (-0.1, 0.1))  # fmt: skip
    assert g.resize_modes == ("bilinear",) and g.resize_back_mode == "bilinear" and not g.second_order
    assert DegradationConfig() == g

    c = PRESETS["codeformer"]  # sczhou/CodeFormer options/CodeFormer_stage2.yml
    assert (c.kernel_size, c.kernel_kinds, c.kernel_probs) == ((41, 41), ("iso", "aniso"), (0.5, 0.5))
    assert (c.blur_sigma, c.downsample_range, c.noise_range, c.jpeg_range) == (
        (1, 15),
        (4, 30),
        (0, 20),
        (30, 80),
    )
    assert (c.color_jitter_prob, c.color_jitter_pt_prob, c.gray_prob) == (0, 0, 0)

    r = PRESETS["realesrgan"]  # xinntao/Real-ESRGAN options/train_realesrgan_x4plus.yml
    assert r.second_order and r.usm_sharpen and r.downsample_range == (4, 4)
    assert r.kernel_kinds == r.second_kernel_kinds == D.KERNEL_KINDS
    assert r.kernel_probs == r.second_kernel_probs == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert (r.kernel_size, r.blur_sigma, r.betag_range, r.betap_range, r.sinc_prob) == (
        (7, 21), (0.2, 3), (0.5, 4), (1, 2), 0.1)  # fmt: skip
    assert (r.resize_prob, r.resize_range, r.noise_range, r.poisson_scale_range) == (
        (0.2, 0.7, 0.1), (0.15, 1.5), (1, 30), (0.05, 3))  # fmt: skip
    assert (r.poisson_prob, r.gray_noise_prob, r.jpeg_range) == (0.5, 0.4, (30, 95))
    assert (r.second_blur_prob, r.second_kernel_size, r.second_blur_sigma, r.second_sinc_prob) == (
        0.8,
        (7, 21),
        (0.2, 1.5),
        0.1,
    )
    assert (r.second_resize_prob, r.second_resize_range, r.second_noise_range) == (
        (0.3, 0.4, 0.3),
        (0.3, 1.2),
        (1, 25),
    )
    assert (r.second_poisson_scale_range, r.second_poisson_prob, r.second_gray_noise_prob) == (
        (0.05, 2.5),
        0.5,
        0.4,
    )
    assert (r.second_jpeg_range, r.final_sinc_prob, r.final_sinc_kernel_size) == ((30, 95), 0.8, (7, 21))
    assert r.final_sinc_omega == pytest.approx((math.pi / 3, math.pi))
    assert r.sinc_omega_small == pytest.approx((math.pi / 3, math.pi))
    assert r.sinc_omega_large == pytest.approx((math.pi / 5, math.pi))
    assert set(r.resize_modes) == {"area", "bilinear", "bicubic"}

    m = PRESETS["mild"]
    assert (m.blur_sigma, m.downsample_range, m.noise_range, m.jpeg_range) == (
        (0.1, 3),
        (1, 4),
        (0, 10),
        (70, 100),
    )


def _within(value, r, what):
    assert r[0] <= value <= r[1], f"{what} = {value} outside {r}"


def _check_kernel(k, cfg, prefix, what):
    """Check a sampled kernel dict against the config fields of one pass."""
    kinds = getattr(cfg, f"{prefix}kernel_kinds")
    size_range = getattr(cfg, f"{prefix}kernel_size")
    assert k["size"] % 2 == 1
    _within(k["size"], size_range, f"{what}.size")
    if k["kind"] == "sinc":
        omega = cfg.sinc_omega_small if k["size"] < 13 else cfg.sinc_omega_large
        _within(k["omega_c"], omega, f"{what}.omega_c")
        return
    assert k["kind"] in kinds
    sigma = getattr(cfg, f"{prefix}blur_sigma")
    _within(k["sigma_x"], sigma, f"{what}.sigma_x")
    _within(k["sigma_y"], sigma, f"{what}.sigma_y")
    if k["kind"].endswith("aniso"):
        _within(k["theta"], cfg.rotation_range, f"{what}.theta")
    else:
        assert k["sigma_y"] == k["sigma_x"] and k["theta"] == 0.0
    if k["kind"].startswith("generalized"):
        _within(k["beta"], getattr(cfg, f"{prefix}betag_range"), f"{what}.beta")
    elif k["kind"].startswith("plateau"):
        _within(k["beta"], getattr(cfg, f"{prefix}betap_range"), f"{what}.beta")
    else:
        assert k["beta"] is None


def _check_noise(n, noise_range, poisson_range, what):
    assert isinstance(n["gray"], bool) and isinstance(n["seed"], int)
    if n["type"] == "gaussian":
        _within(n["sigma"], noise_range, f"{what}.sigma")
    else:
        assert n["type"] == "poisson"
        _within(n["scale"], poisson_range, f"{what}.scale")


def _check_updown(r, probs, scale_range, modes, what):
    assert r["mode"] in modes
    if r["direction"] == "up":
        _within(r["scale"], (1.0, scale_range[1]), what)
    elif r["direction"] == "down":
        _within(r["scale"], (scale_range[0], 1.0), what)
    else:
        assert r["direction"] == "keep" and r["scale"] == 1.0
    assert probs[("up", "down", "keep").index(r["direction"])] > 0


def _check_params(p, cfg):
    """Every sampled value of one params dict lies within its config range."""
    assert p["version"] == D.PARAMS_VERSION and p["usm_sharpen"] == cfg.usm_sharpen
    if cfg.second_order:
        assert p["pipeline"] == "second_order"
        _within(p["sr_scale"], cfg.downsample_range, "sr_scale")
        first, second, final = p["first"], p["second"], p["final"]
        if first["blur"] is not None:
            _check_kernel(first["blur"], cfg, "", "first.blur")
        _check_updown(first["resize"], cfg.resize_prob, cfg.resize_range, cfg.resize_modes, "first.resize")
        if first["noise"] is not None:
            _check_noise(first["noise"], cfg.noise_range, cfg.poisson_scale_range, "first.noise")
        if first["jpeg"] is not None:
            _within(first["jpeg"]["quality"], cfg.jpeg_range, "first.jpeg")
        if second["blur"] is not None:
            _check_kernel(second["blur"], cfg, "second_", "second.blur")
        _check_updown(
            second["resize"],
            cfg.second_resize_prob,
            cfg.second_resize_range,
            cfg.resize_modes,
            "second.resize",
        )
        if second["noise"] is not None:
            _check_noise(
                second["noise"], cfg.second_noise_range, cfg.second_poisson_scale_range, "second.noise"
            )
        assert final["resize_mode"] in cfg.resize_modes and isinstance(final["sinc_first"], bool)
        if final["sinc"] is not None:
            _within(final["sinc"]["size"], cfg.final_sinc_kernel_size, "final.sinc.size")
            _within(final["sinc"]["omega_c"], cfg.final_sinc_omega, "final.sinc.omega_c")
        _within(final["jpeg"]["quality"], cfg.second_jpeg_range, "final.jpeg")
        motion = first["motion"]
    else:
        assert p["pipeline"] == "first_order"
        if p["blur"] is not None:
            _check_kernel(p["blur"], cfg, "", "blur")
        _within(p["downsample"]["scale"], cfg.downsample_range, "downsample.scale")
        assert p["downsample"]["mode"] in cfg.resize_modes
        if p["noise"] is not None:
            _check_noise(p["noise"], cfg.noise_range, cfg.poisson_scale_range, "noise")
        if p["jpeg"] is not None:
            _within(p["jpeg"]["quality"], cfg.jpeg_range, "jpeg")
            assert isinstance(p["jpeg"]["quality"], int)
        motion = p["motion"]
    if motion is not None:
        _within(motion["length"], cfg.motion_length, "motion.length")
        _within(motion["angle"], (0.0, 180.0), "motion.angle")
    assert p["resize_back_mode"] == cfg.resize_back_mode
    if p["color_shift"] is not None:
        assert len(p["color_shift"]) == 3
        for v in p["color_shift"]:
            _within(v, (-cfg.color_jitter_shift, cfg.color_jitter_shift), "color_shift")
    assert isinstance(p["gray"], bool)
    if p["color_jitter"] is not None:
        j = p["color_jitter"]
        assert sorted(j["order"]) == sorted(["brightness", "contrast", "saturation", "hue"])
        for name, r in (("brightness", cfg.brightness_range), ("contrast", cfg.contrast_range),
                        ("saturation", cfg.saturation_range), ("hue", cfg.hue_range)):  # fmt: skip
            _within(j[name], r, f"color_jitter.{name}")


def _rate(values, k):
    return sum(1 for v in values if v) / k


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_sampled_params_stay_in_range_over_1000_draws(preset):
    cfg = PRESETS[preset]
    rng = np.random.default_rng(2024)
    draws = [D.sample_params(rng, cfg) for _ in range(1000)]
    for p in draws:
        _check_params(p, cfg)
    n = len(draws)
    # the draws also cover their ranges and hit the published probabilities (binomial, >= 4 sd margins)
    if not cfg.second_order:
        blurs = [p["blur"] for p in draws]
        sig = [b["sigma_x"] for b in blurs]
        assert min(sig) < cfg.blur_sigma[0] + 0.05 * (cfg.blur_sigma[1] - cfg.blur_sigma[0])
        assert max(sig) > cfg.blur_sigma[1] - 0.05 * (cfg.blur_sigma[1] - cfg.blur_sigma[0])
        assert 0.43 < _rate([b["kind"] == "iso" for b in blurs], n) < 0.57
        scales = [p["downsample"]["scale"] for p in draws]
        span = cfg.downsample_range[1] - cfg.downsample_range[0]
        assert (
            min(scales) < cfg.downsample_range[0] + 0.02 * span
            and max(scales) > cfg.downsample_range[1] - 0.02 * span
        )
        q = [p["jpeg"]["quality"] for p in draws]
        assert min(q) == cfg.jpeg_range[0] and max(q) == cfg.jpeg_range[1]
        assert all(p["noise"]["type"] == "gaussian" for p in draws)
    else:
        kinds = [p["first"]["blur"]["kind"] for p in draws]
        assert 0.06 < _rate([k == "sinc" for k in kinds], n) < 0.14  # sinc_prob 0.1
        assert 0.36 < _rate([k == "iso" for k in kinds], n) < 0.46  # 0.9 * 0.45
        assert 0.74 < _rate([p["second"]["blur"] is not None for p in draws], n) < 0.86
        assert 0.74 < _rate([p["final"]["sinc"] is not None for p in draws], n) < 0.86
        assert 0.44 < _rate([p["first"]["noise"]["type"] == "poisson" for p in draws], n) < 0.56
        assert 0.34 < _rate([p["first"]["noise"]["gray"] for p in draws], n) < 0.46
        assert 0.64 < _rate([p["first"]["resize"]["direction"] == "down" for p in draws], n) < 0.76
        sizes = {p["first"]["blur"]["size"] for p in draws}
        assert sizes == set(range(7, 22, 2))
    assert 0.25 < _rate([p["color_shift"] is not None for p in draws], n) < 0.35 or cfg.color_jitter_prob == 0
    assert (
        0.25 < _rate([p["color_jitter"] is not None for p in draws], n) < 0.35
        or cfg.color_jitter_pt_prob == 0
    )
    grays = sum(p["gray"] for p in draws)
    assert (1 <= grays <= 25) if cfg.gray_prob == 0.01 else grays == 0


def test_range_check_catches_out_of_range_values():
    """The range checker itself must be able to fail."""
    p = D.sample_params(np.random.default_rng(0), "gfpgan")
    p["jpeg"]["quality"] = 59
    with pytest.raises(AssertionError, match="jpeg"):
        _check_params(p, PRESETS["gfpgan"])


def test_sample_params_does_not_depend_on_images_and_is_fast():
    rng = np.random.default_rng(0)
    import time

    t = time.perf_counter()
    for _ in range(200):
        D.sample_params(rng, "realesrgan")
    assert (time.perf_counter() - t) / 200 < 0.01


# --------------------------------------------------------------------------
# config validation
# --------------------------------------------------------------------------


def test_unknown_preset_lists_presets(face64):
    with pytest.raises(ValueError) as err:
        D.degrade(face64, np.random.default_rng(0), "gfpgan2")
    for name in PRESETS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="codeformer"):
        D.get_preset("nope")


@pytest.mark.parametrize(
    "field, value",
    [
        ("blur_sigma", (5.0, 1.0)),
        ("downsample_range", (8, 2)),
        ("noise_range", (20, 0)),
        ("jpeg_range", (90, 60)),
        ("second_resize_range", (1.2, 0.3)),
        ("kernel_size", (41, 21)),
        ("hue_range", (0.1, -0.1)),
    ],
)
def test_range_with_lo_above_hi_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(PRESETS["gfpgan"], **{field: value})


def test_every_field_is_validated():
    for f in dataclasses.fields(DegradationConfig):
        with pytest.raises(ValueError, match=f.name):
            DegradationConfig(**{f.name: "garbage"})


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"gray_prob": 1.5}, "gray_prob"),
        ({"kernel_size": (40, 40)}, "odd"),
        ({"kernel_kinds": ("iso", "box"), "kernel_probs": (0.5, 0.5)}, "box"),
        ({"kernel_probs": (1.0,)}, "kernel_probs"),
        ({"resize_modes": ("bilinear", "magic")}, "magic"),
        ({"resize_back_mode": "cubic"}, "resize_back_mode"),
        ({"jpeg_range": (60, 101)}, "jpeg_range"),
        ({"jpeg_range": (60.5, 90)}, "integers"),
        ({"resize_range": (1.1, 1.5)}, "resize_range"),
        ({"sinc_omega_large": (0.5, 4.0)}, "sinc_omega_large"),
        ({"noise_range": (-1, 5)}, "noise_range"),
        ({"second_order": 1}, "second_order"),
    ],
)
def test_bad_config_values(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(PRESETS["gfpgan"], **changes)


def test_config_accepts_lists_and_round_trips_through_json():
    cfg = DegradationConfig(blur_sigma=[0.5, 2], kernel_kinds=["iso"], kernel_probs=[1])
    assert cfg.blur_sigma == (0.5, 2.0) and cfg.kernel_kinds == ("iso",)
    for preset in PRESETS.values():
        assert DegradationConfig.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset
    assert DegradationConfig.from_dict({"noise_range": [0, 5]}, base="mild").blur_sigma == (0.1, 3.0)
    with pytest.raises(ValueError, match="noise_range"):
        DegradationConfig.from_dict({"noise_rnage": [0, 5]})


def test_config_loads_through_the_config_mechanism(tmp_path):
    from authface.config import ConfigError, load_config

    path = tmp_path / "degradation.yaml"
    path.write_text("second_order: true\nkernel_kinds: [iso, plateau_aniso]\nkernel_probs: [1, 3]\n")
    cfg = load_config(DegradationConfig, path, ["noise_range=[0, 5]", "resize_back_mode=area", "gray_prob=0.5"])
    assert cfg.second_order and cfg.kernel_kinds == ("iso", "plateau_aniso") and cfg.kernel_probs == (1.0, 3.0)
    assert cfg.noise_range == (0.0, 5.0) and cfg.resize_back_mode == "area" and cfg.gray_prob == 0.5
    with pytest.raises(ConfigError, match="bicubic"):  # a Literal choice, with a suggestion
        load_config(DegradationConfig, None, ["resize_back_mode=bicubik"])
    with pytest.raises(ConfigError, match="gray_prob"):
        load_config(DegradationConfig, None, ["gray_prob=2"])
    with pytest.raises(ConfigError, match="noise_range"):
        load_config(DegradationConfig, None, ["noise_rnage=[0, 5]"])


def test_get_preset_hands_out_copies():
    cfg = D.get_preset("gfpgan")
    cfg.noise_range = (0.0, 1.0)
    assert PRESETS["gfpgan"].noise_range == (0.0, 20.0) and D.get_preset("gfpgan").noise_range == (0.0, 20.0)


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------

ALL_KERNELS = [
    ("iso", lambda: D.gaussian_kernel(21, 2.5)),
    ("aniso", lambda: D.gaussian_kernel(21, 3.0, 1.0, 0.7)),
    ("generalized", lambda: D.generalized_gaussian_kernel(21, 3.0, 1.5, -0.4, 0.6)),
    ("generalized_flat", lambda: D.generalized_gaussian_kernel(21, 3.0, 1.5, 1.1, 3.5)),
    ("plateau", lambda: D.plateau_kernel(21, 2.0, 1.0, 0.3, 1.5)),
    ("sinc", lambda: D.sinc_kernel(21, math.pi / 4)),
    ("motion", lambda: D.motion_kernel(15, 10.0, 30.0)),
    ("tiny_sigma", lambda: D.gaussian_kernel(41, 0.1)),
]


@pytest.mark.parametrize("name, make", ALL_KERNELS, ids=[k[0] for k in ALL_KERNELS])
def test_kernels_are_float32_odd_and_sum_to_one(name, make):
    k = make()
    assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(float(k.astype(np.float64).sum()) - 1.0) < 1e-5
    assert np.isfinite(k).all()
    # every one of these kernels is point-symmetric (k(x) = k(-x))
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-6)


@pytest.mark.parametrize("size, sigma", [(7, 0.8), (21, 1.3), (21, 3.0), (41, 6.0)])
def test_iso_gaussian_matches_opencv(size, sigma):
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    np.testing.assert_allclose(D.gaussian_kernel(size, sigma), g @ g.T, rtol=1e-5, atol=1e-8)


def test_gaussian_symmetries_and_orientation():
    iso = D.gaussian_kernel(21, 2.0)
    for flipped in (iso.T, iso[::-1], iso[:, ::-1]):
        np.testing.assert_array_equal(iso, flipped)
    # theta = 0: wider along x (columns) when sigma_x > sigma_y; mirror-symmetric about both axes
    a = D.gaussian_kernel(41, 4.0, 1.0, 0.0).astype(np.float64)
    np.testing.assert_allclose(a, a[::-1], atol=1e-7)
    np.testing.assert_allclose(a, a[:, ::-1], atol=1e-7)
    ax = np.arange(41) - 20
    var_x, var_y = (a.sum(0) * ax**2).sum(), (a.sum(1) * ax**2).sum()
    assert var_x == pytest.approx(16.0, rel=0.02) and var_y == pytest.approx(1.0, rel=0.02)
    assert not np.allclose(a, a.T, atol=1e-4)
    # a quarter turn swaps the axes
    np.testing.assert_allclose(
        D.gaussian_kernel(21, 4.0, 1.0, math.pi / 2), D.gaussian_kernel(21, 1.0, 4.0, 0.0), atol=1e-7
    )
    # sigma_y == sigma_x is the iso kernel whatever theta
    np.testing.assert_allclose(D.gaussian_kernel(21, 2.0, 2.0, 1.0), iso, atol=1e-7)


def test_generalized_and_plateau_shapes():
    g = D.gaussian_kernel(21, 3.0, 1.5, 0.4)
    np.testing.assert_allclose(D.generalized_gaussian_kernel(21, 3.0, 1.5, 0.4, 1.0), g, atol=1e-7)

    # beta > 1 flattens the top, beta < 1 sharpens it: compare the fall-off one pixel from the centre
    def falloff(k):
        return k[10, 11] / k[10, 10]

    flat = D.generalized_gaussian_kernel(21, 3.0, 3.0, 0.0, 4.0)
    peaky = D.generalized_gaussian_kernel(21, 3.0, 3.0, 0.0, 0.5)
    assert falloff(peaky) < falloff(D.gaussian_kernel(21, 3.0)) < falloff(flat) < 1.0
    p = D.plateau_kernel(21, 2.0, 2.0, 0.0, 2.0)
    np.testing.assert_allclose(p, p.T, atol=1e-7)
    assert p[10, 10] == p.max()


def test_random_kernel_params_rebuild_the_kernel():
    rng = np.random.default_rng(7)
    kinds = D.KERNEL_KINDS
    seen = set()
    for _ in range(60):
        k, params = D.random_kernel(rng, 21, kinds, [1] * 6, (0.2, 3), (0.5, 4), (1, 2))
        np.testing.assert_array_equal(k, D.kernel_from_params(json.loads(json.dumps(params))))
        seen.add(params["kind"])
    assert seen == set(kinds)
    with pytest.raises(ValueError, match="box"):
        D.random_kernel(rng, 21, ("box",), (1,), (0.2, 3), (0.5, 4), (1, 2))
    with pytest.raises(ValueError, match="sigma_range"):
        D.random_kernel(rng, 21, ("iso",), (1,), (3, 0.2), (0.5, 4), (1, 2))


def _frequency_response(kernel: np.ndarray, n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    big = np.zeros((n, n))
    s = kernel.shape[0]
    big[:s, :s] = kernel
    big = np.roll(big, (-(s // 2), -(s // 2)), axis=(0, 1))
    resp = np.abs(np.fft.fft2(big))
    w = np.fft.fftfreq(n) * 2 * np.pi
    wy, wx = np.meshgrid(w, w, indexing="ij")
    return resp, np.hypot(wx, wy)


def test_sinc_kernel_is_low_pass():
    omega = math.pi / 2
    resp, radius = _frequency_response(D.sinc_kernel(21, omega).astype(np.float64))
    assert resp[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert resp[radius < 0.6 * omega].mean() > 0.9
    assert resp[radius > 1.4 * omega].mean() < 0.1
    # a lower cutoff passes less
    low, _ = _frequency_response(D.sinc_kernel(21, math.pi / 5).astype(np.float64))
    band = (radius > 0.3 * math.pi) & (radius < 0.45 * math.pi)
    assert low[band].mean() < 0.2 < resp[band].mean()


def test_bessel_j1_matches_scipy():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(0, 50, 2001)
    np.testing.assert_allclose(K._bessel_j1(x), special.j1(x), atol=1e-12)


def test_motion_kernel_geometry():
    h = D.motion_kernel(15, 10.0, 0.0)
    assert np.count_nonzero(h.sum(axis=1)) == 1 and h[7].sum() == pytest.approx(1.0, abs=1e-6)
    ax = np.arange(15) - 7
    assert (h.sum(0) * ax**2).sum() == pytest.approx(10.0**2 / 12, rel=0.1)  # uniform on [-L/2, L/2]
    v = D.motion_kernel(15, 10.0, 90.0)
    np.testing.assert_allclose(v, h.T, atol=1e-6)
    np.testing.assert_array_equal(D.motion_kernel(5, 0.0, 10.0), np.pad([[1.0]], 2).astype(np.float32))
    with pytest.raises(ValueError, match="size"):
        D.motion_kernel(9, 12.0, 0.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: D.gaussian_kernel(20, 1.0),
        lambda: D.sinc_kernel(8, 1.0),
        lambda: D.plateau_kernel(0, 1.0, 1.0, 0.0, 1.0),
    ],
)
def test_even_kernel_sizes_are_refused(call):
    with pytest.raises(ValueError, match="odd"):
        call()


def test_bad_kernel_parameters():
    with pytest.raises(ValueError, match="sigma_x"):
        D.gaussian_kernel(21, 0.0)
    with pytest.raises(ValueError, match="omega_c"):
        D.sinc_kernel(21, 4.0)
    with pytest.raises(ValueError, match="beta"):
        D.generalized_gaussian_kernel(21, 1, 1, 0, -1)


# --------------------------------------------------------------------------
# ops
# --------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [5.0, 15.0, 30.0])
def test_gaussian_noise_has_the_requested_std(sigma):
    clean = _gray_image(128)
    noisy = _u8(D.add_gaussian_noise, clean, np.random.default_rng(0), sigma)
    diff = noisy.astype(np.float64) - clean
    assert diff.std() == pytest.approx(sigma, rel=0.03)
    assert abs(diff.mean()) < 0.05 * sigma
    # channels are independent
    assert abs(np.corrcoef(diff[..., 0].ravel(), diff[..., 1].ravel())[0, 1]) < 0.02


def test_gray_gaussian_noise_has_equal_channels():
    clean = _gray_image(128)
    noisy = _u8(D.add_gaussian_noise, clean, np.random.default_rng(0), 10.0, gray=True)
    assert np.array_equal(noisy[..., 0], noisy[..., 1]) and np.array_equal(noisy[..., 1], noisy[..., 2])
    assert (noisy.astype(np.float64) - clean).std() == pytest.approx(10.0, rel=0.03)
    assert np.array_equal(_u8(D.add_gaussian_noise, clean, np.random.default_rng(0), 0.0), clean)


def test_poisson_noise(face128):
    quiet = _u8(D.add_poisson_noise, face128, np.random.default_rng(0), 0.0)
    assert np.array_equal(quiet, face128)
    stds = [
        (_u8(D.add_poisson_noise, face128, np.random.default_rng(0), s).astype(np.float64) - face128).std()
        for s in (0.5, 1.0, 2.0)
    ]
    assert stds[0] < stds[1] < stds[2]
    gray_in = _u8(D.to_gray, face128)
    noisy = _u8(D.add_poisson_noise, gray_in, np.random.default_rng(0), 1.0, gray=True)
    assert np.array_equal(noisy[..., 0], noisy[..., 1]) and np.array_equal(noisy[..., 1], noisy[..., 2])
    assert not np.array_equal(noisy, gray_in)


def test_jpeg_lower_quality_larger_error(face128):
    errors = [np.mean((_u8(D.jpeg, face128, q).astype(np.float64) - face128) ** 2) for q in (95, 60, 30, 10)]
    assert errors == sorted(errors) and errors[0] < errors[-1] / 4
    with pytest.raises(ValueError, match="quality"):
        D.jpeg(D.to_float(face128), 101)


def test_jpeg_keeps_rgb_order():
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    out = _u8(D.jpeg, red, 90).astype(int)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 20


def test_to_gray_has_equal_channels(face64):
    g = _u8(D.to_gray, face64)
    assert g.shape == face64.shape and g.dtype == np.uint8
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    ref = cv2.cvtColor(face64, cv2.COLOR_RGB2GRAY)
    assert np.abs(g[..., 0].astype(int) - ref).max() <= 1


def test_blur_reduces_high_frequencies_monotonically(face128):
    energies = [_high_freq_energy(face128)]
    for sigma in (0.5, 1.0, 2.0, 4.0, 8.0):
        energies.append(_high_freq_energy(_u8(D.apply_kernel, face128, D.gaussian_kernel(41, sigma))))
    assert all(a > b for a, b in zip(energies, energies[1:])), energies
    assert energies[-1] < energies[0] / 50


def test_usm_sharpen_adds_high_frequencies(face128):
    soft = _u8(D.apply_kernel, face128, D.gaussian_kernel(21, 1.5))
    assert _high_freq_energy(_u8(D.usm_sharpen, soft)) > 1.2 * _high_freq_energy(soft)


def test_resize_sizes_and_modes(face64):
    assert D.resize(face64, scale=0.5).shape == (32, 32, 3)
    assert D.resize(face64, size=(20, 48), mode="area").shape == (20, 48, 3)  # (height, width)
    for mode in D.RESIZE_MODES:
        assert D.resize(face64, scale=1.5, mode=mode).shape == (96, 96, 3)
    assert np.array_equal(D.resize(face64, size=(64, 64), mode="nearest"), face64)
    x = D.to_float(face64)
    assert D.resize(x, scale=0.5).dtype == np.float32 and D.resize(x, size=(20, 48)).shape == (20, 48, 3)
    with pytest.raises(ValueError, match="bicubic"):
        D.resize(face64, scale=2, mode="cubic")
    with pytest.raises(ValueError, match="exactly one"):
        D.resize(face64, scale=2, size=(3, 3))


def test_color_shift_and_jitter(face64):
    out = _u8(D.color_shift, _gray_image(128, 8), (10, 0, -10))
    assert out[..., 0].mean() == 138 and out[..., 1].mean() == 128 and out[..., 2].mean() == 118
    x = D.to_float(face64)
    a, pa = D.color_jitter(x, np.random.default_rng(4), (0.5, 1.5), (0.5, 1.5), (0, 1.5), (-0.1, 0.1))
    b, pb = D.color_jitter(x, np.random.default_rng(4), (0.5, 1.5), (0.5, 1.5), (0, 1.5), (-0.1, 0.1))
    assert np.array_equal(a, b) and pa == pb and sorted(pa["order"]) == sorted(D.COLOR_ADJUSTMENTS)
    assert np.array_equal(
        a, D.adjust_color(x, pa["brightness"], pa["contrast"], pa["saturation"], pa["hue"], pa["order"])
    )
    # identity factors leave the image (almost) unchanged; saturation 0 gives gray; brightness 0 gives black
    same = _u8(D.adjust_color, face64, brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0)
    assert np.abs(same.astype(int) - face64).max() <= 1
    gray = _u8(D.adjust_color, face64, saturation=0.0)
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 1
    assert D.adjust_color(x, brightness=0.0).max() == 0
    _, none = D.color_jitter(x, np.random.default_rng(0), None, (0.9, 1.1), None, None)
    assert none["brightness"] is None and 0.9 <= none["contrast"] <= 1.1


OPS = [
    ("apply_kernel", lambda im: D.apply_kernel(im, D.gaussian_kernel(7, 1.0))),
    ("resize_same", lambda im: D.resize(im, size=im.shape[:2], mode="bicubic")),
    ("gaussian_noise", lambda im: D.add_gaussian_noise(im, np.random.default_rng(0), 5)),
    ("poisson_noise", lambda im: D.add_poisson_noise(im, np.random.default_rng(0), 1)),
    ("jpeg", lambda im: D.jpeg(im, 50)),
    (
        "color_jitter",
        lambda im: D.color_jitter(im, np.random.default_rng(0), (0.5, 1.5), None, None, (-0.1, 0.1))[0],
    ),
    ("color_shift", lambda im: D.color_shift(im, (5, -5, 0))),
    ("to_gray", D.to_gray),
    ("usm_sharpen", D.usm_sharpen),
]


@pytest.mark.parametrize("name, op", OPS, ids=[o[0] for o in OPS])
def test_ops_preserve_dtype_and_shape(face128, name, op):
    hq = D.to_float(np.ascontiguousarray(face128[:100, :90]))
    out = op(hq)
    assert out.dtype == np.float32 and out.shape == hq.shape
    if name not in ("apply_kernel", "resize_same", "usm_sharpen"):  # the ops that clip
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_uint8_conversion_round_trips(face64):
    x = D.to_float(face64)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert np.array_equal(to_uint8(x), face64)


# --------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------

BAD_IMAGES = [
    (np.zeros((16, 16, 3), np.float32), "uint8"),
    (np.zeros((16, 16, 3), np.uint16), "uint8"),
    (np.zeros((16, 16), np.uint8), "shape"),
    (np.zeros((16, 16, 4), np.uint8), "shape"),
    (np.zeros((0, 16, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy"),
]


@pytest.mark.parametrize("bad, match", BAD_IMAGES, ids=["float32", "uint16", "2d", "rgba", "empty", "list"])
def test_bad_images_raise_value_error(bad, match):
    """The pipeline takes uint8 RGB."""
    rng = np.random.default_rng(0)
    calls = [
        lambda: D.degrade(bad, rng, "gfpgan"),
        lambda: D.degrade_from_params(bad, D.sample_params(np.random.default_rng(0), "gfpgan")),
        lambda: D.to_float(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=match):
            call()


BAD_FLOAT_IMAGES = [
    (np.zeros((16, 16, 3), np.uint8), "float32"),
    (np.zeros((16, 16, 3), np.float64), "float32"),
    (np.zeros((16, 16), np.float32), "shape"),
    (np.zeros((16, 16, 4), np.float32), "shape"),
    (np.zeros((0, 16, 3), np.float32), "empty"),
    ([[0, 0, 0]], "numpy"),
]


@pytest.mark.parametrize("bad, match", BAD_FLOAT_IMAGES, ids=["uint8", "float64", "2d", "rgba", "empty", "list"])
def test_bad_images_for_ops_raise_value_error(bad, match):
    """The ops take float32 RGB in [0, 1]."""
    rng = np.random.default_rng(0)
    calls = [
        lambda: D.apply_kernel(bad, D.gaussian_kernel(3, 1.0)),
        lambda: D.add_gaussian_noise(bad, rng, 5),
        lambda: D.add_poisson_noise(bad, rng, 1),
        lambda: D.jpeg(bad, 50),
        lambda: D.to_gray(bad),
        lambda: D.color_shift(bad, (1, 2, 3)),
        lambda: D.adjust_color(bad, brightness=1.1),
        lambda: D.color_jitter(bad, rng, (0.5, 1.5), None, None, None),
        lambda: D.usm_sharpen(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=match):
            call()


def test_rng_must_be_a_generator(face64):
    for bad in (0, np.random.RandomState(0), None):
        with pytest.raises(ValueError, match="default_rng"):
            D.degrade(face64, bad, "gfpgan")
        with pytest.raises(ValueError, match="default_rng"):
            D.add_gaussian_noise(D.to_float(face64), bad, 5)


def test_bad_params_are_refused(face64):
    params = D.sample_params(np.random.default_rng(0), "gfpgan")
    with pytest.raises(ValueError, match="version"):
        D.degrade_from_params(face64, {**params, "version": 99})
    with pytest.raises(ValueError, match="jpeg"):
        D.degrade_from_params(face64, {k: v for k, v in params.items() if k != "jpeg"})
    with pytest.raises(ValueError, match="pipeline"):
        D.degrade_from_params(face64, {**params, "pipeline": "third_order"})
    with pytest.raises(ValueError, match="config"):
        D.sample_params(np.random.default_rng(0), {"noise_range": (0, 5)})


def test_apply_kernel_checks_the_kernel(face64):
    with pytest.raises(ValueError, match="kernel"):
        D.apply_kernel(D.to_float(face64), np.ones((4, 4), np.float32) / 16)
    with pytest.raises(ValueError, match="kernel"):
        D.apply_kernel(D.to_float(face64), np.ones((3, 3), np.int64))


def test_import_is_light():
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, authface.data, authface.data.degradations\n"
        "heavy = [m for m in ('torch', 'scipy', 'PIL', 'skimage', 'diffusers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=repo)
