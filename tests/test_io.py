"""Tests for authface.io: decoding, encoding, conversions and input discovery.

All fixtures are made in code under tmp_path; offline, CPU only, fast.
"""

from __future__ import annotations

import io as stdio
import os
import pickle
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile
from skimage import data

from authface import io as aio
from authface.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    LoadedImage,
    copy_file,
    discover_inputs,
    numpy_to_tensor,
    read_image,
    tensor_to_numpy,
    to_uint8,
    write_image,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo, non-square so that transposes are visible: (96, 128, 3)."""
    img = Image.fromarray(data.astronaut()).resize((128, 96), Image.Resampling.BILINEAR)
    return np.asarray(img).copy()


def _save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = stdio.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _assert_clean(res: LoadedImage) -> None:
    assert res.rgb.dtype == np.uint8 and res.rgb.ndim == 3 and res.rgb.shape[2] == 3
    assert res.rgb.flags.c_contiguous
    if res.alpha is not None:
        assert res.alpha.dtype == np.uint8 and res.alpha.shape == res.rgb.shape[:2]
        assert res.alpha.flags.c_contiguous


def _read_error(path: Path, **kw) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kw)
    err = info.value
    assert type(err) is ImageReadError
    assert err.path == Path(path)
    assert str(err) == f"{path}: {err.reason}"
    assert "\n" not in str(err)
    return err


def test_constants() -> None:
    assert DEFAULT_MAX_PIXELS == 80_000_000
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"} == IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, authface.io; print('torch' in sys.modules, 'cv2' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------
# read_image: bad inputs
# --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    err = _read_error(tmp_path / "nope.jpg")
    assert err.reason == "file not found"


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    assert _read_error(p).reason == "empty file (0 bytes)"


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "folder.jpg"
    d.mkdir()
    assert "is a directory" in _read_error(d).reason


def test_text_with_image_name(tmp_path: Path) -> None:
    p = tmp_path / "x.jpg"
    p.write_text("this is a text file, not a JPEG\n" * 20)
    assert _read_error(p).reason == "not a recognised image (content does not match any image format)"


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.png"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a recognised image" in _read_error(p).reason


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")])
@pytest.mark.parametrize("fraction", [0.5, 0.95])
def test_truncated(tmp_path: Path, photo: np.ndarray, fmt: str, ext: str, fraction: float) -> None:
    full = _encoded(Image.fromarray(photo), fmt)
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(full[: int(len(full) * fraction)])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    err = _read_error(p)
    assert err.reason.startswith("truncated or corrupt image data")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never mutated


def test_truncated_header(tmp_path: Path, photo: np.ndarray) -> None:
    full = _encoded(Image.fromarray(photo), "PNG")
    p = tmp_path / "head.png"
    p.write_bytes(full[:20])
    assert _read_error(p).reason.startswith("truncated or corrupt image data: ")


def test_corrupt_png_data(tmp_path: Path, photo: np.ndarray) -> None:
    full = bytearray(_encoded(Image.fromarray(photo), "PNG"))
    start = full.index(b"IDAT") + 200
    full[start : start + 64] = bytes(range(64))
    p = tmp_path / "corrupt.png"
    p.write_bytes(bytes(full))
    assert _read_error(p).reason.startswith("truncated or corrupt image data")


def test_error_is_picklable() -> None:
    err = ImageReadError("/x/y.jpg", "empty file (0 bytes)")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ImageReadError
    assert back.path == Path("/x/y.jpg") and back.reason == err.reason and str(back) == str(err)


# --------------------------------------------------------------------------
# read_image: decompression bombs
# --------------------------------------------------------------------------


def test_bomb_refused_and_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _save(Image.new("RGB", (100, 80), (10, 20, 30)), tmp_path / "big.png")
    err = _read_error(p, max_pixels=7_999)
    assert "8,000 pixels" in err.reason and "7,999" in err.reason
    assert "--set io.max_pixels=N" in err.reason
    res = read_image(p, max_pixels=8_000)
    assert res.size == (100, 80)
    assert (res.rgb == [10, 20, 30]).all()

    # the check happens before any pixel data is decoded
    def boom(self):  # pragma: no cover - must not be reached
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    err = _read_error(p, max_pixels=100)
    assert "8,000 pixels" in err.reason


def test_bomb_independent_of_pillow_global(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _save(Image.new("RGB", (100, 100), (1, 2, 3)), tmp_path / "big.png")
    # Pillow would refuse outright (10,000 > 2 * 1,000): our limit decides.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    res = read_image(p, max_pixels=20_000)
    assert res.size == (100, 100) and (res.rgb == [1, 2, 3]).all()
    assert "10,000 pixels" in _read_error(p, max_pixels=9_999).reason
    assert Image.MAX_IMAGE_PIXELS == 1_000  # not modified by read_image
    # Pillow would only warn (1x..2x its limit): no warning escapes.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(p).size == (100, 100)


# --------------------------------------------------------------------------
# read_image: modes
# --------------------------------------------------------------------------


def test_rgb_jpeg_photo(tmp_path: Path, photo: np.ndarray) -> None:
    p = _save(Image.fromarray(photo), tmp_path / "p.jpg", quality=95)
    res = read_image(p)
    _assert_clean(res)
    assert res.format == "JPEG" and res.alpha is None and res.notes == []
    assert res.size == (128, 96) and res.path == p
    assert np.abs(res.rgb.astype(int) - photo).mean() < 3


def test_cmyk_tiff_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cmyk = rng.integers(0, 256, (16, 20, 4), dtype=np.uint8)
    p = _save(Image.frombytes("CMYK", (20, 16), cmyk.tobytes()), tmp_path / "c.tif")
    res = read_image(p)
    _assert_clean(res)
    c, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
    expected = (255 - c) * (255 - k) / 255
    assert np.abs(res.rgb - expected).max() <= 1
    assert "CMYK converted to RGB" in res.notes
    assert res.icc_profile is None


def test_cmyk_jpeg(tmp_path: Path) -> None:
    p = _save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=95)
    assert Image.open(p).mode == "CMYK"
    res = read_image(p)
    assert np.abs(res.rgb.astype(int) - [255, 0, 0]).max() <= 3
    assert "CMYK converted to RGB" in res.notes


def test_gray16_png_known_values(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 1000], [32767, 32768, 65280, 65535]], dtype=np.uint16)
    p = _save(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(p).mode.startswith("I;16")
    res = read_image(p)
    _assert_clean(res)
    expected = np.array([[0, 0, 1, 3], [127, 128, 255, 255]], dtype=np.uint8)
    for ch in range(3):
        np.testing.assert_array_equal(res.rgb[..., ch], expected)
    assert "16-bit grayscale scaled to 8-bit" in res.notes


def test_rgb16_png_written_by_cv2(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    bgr16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    p = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(p), bgr16)
    res = read_image(p)
    _assert_clean(res)
    np.testing.assert_array_equal(res.rgb, (bgr16[..., ::-1] >> 8).astype(np.uint8))
    assert "16-bit per channel scaled to 8-bit" in res.notes
    assert res.alpha is None


def test_rgba16_png_written_by_cv2(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bgra16 = rng.integers(0, 65536, (7, 5, 4), dtype=np.uint16)
    p = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(p), bgra16)
    res = read_image(p)
    np.testing.assert_array_equal(res.rgb, (bgra16[..., 2::-1] >> 8).astype(np.uint8))
    np.testing.assert_array_equal(res.alpha, (bgra16[..., 3] >> 8).astype(np.uint8))


def test_float_tiff_falls_back_to_opencv(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    bgr = rng.random((6, 8, 3)).astype(np.float32)
    p = tmp_path / "f.tif"
    assert cv2.imwrite(str(p), bgr)
    res = read_image(p)
    _assert_clean(res)
    np.testing.assert_array_equal(res.rgb, np.rint(bgr[..., ::-1] * 255).astype(np.uint8))
    assert any(n.startswith("decoded with OpenCV") for n in res.notes)


def test_float_gray_mode_f(tmp_path: Path) -> None:
    vals = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    p = _save(Image.fromarray(vals), tmp_path / "f.tif")
    res = read_image(p)
    np.testing.assert_array_equal(res.rgb[0, :, 0], [0, 64, 128, 255])
    assert any("float" in n and "[0, 1]" in n for n in res.notes)
    big = np.array([[-5.0, 10.0, 200.0, 300.0]], dtype=np.float32)
    res = read_image(_save(Image.fromarray(big), tmp_path / "g.tif"))
    np.testing.assert_array_equal(res.rgb[0, :, 1], [0, 10, 200, 255])
    assert any("clipped" in n for n in res.notes)


def test_int32_gray_mode_i(tmp_path: Path) -> None:
    small = np.array([[0, 7, 255]], dtype=np.int32)
    res = read_image(_save(Image.fromarray(small), tmp_path / "i.tif"))
    np.testing.assert_array_equal(res.rgb[0, :, 2], [0, 7, 255])
    wide = np.array([[-3, 256, 65535, 70000]], dtype=np.int32)
    res = read_image(_save(Image.fromarray(wide), tmp_path / "j.tif"))
    np.testing.assert_array_equal(res.rgb[0, :, 0], [0, 1, 255, 255])


def test_rgba_keeps_alpha(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = np.tile(np.arange(128, dtype=np.uint8) * 2, (96, 1))
    p = _save(Image.fromarray(np.dstack([photo, alpha])), tmp_path / "a.png")
    res = read_image(p)
    _assert_clean(res)
    np.testing.assert_array_equal(res.rgb, photo)
    np.testing.assert_array_equal(res.alpha, alpha)


def _palette_image() -> tuple[Image.Image, np.ndarray, np.ndarray]:
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 99, 199]], dtype=np.uint8)
    idx = (np.arange(6 * 8).reshape(6, 8) % 4).astype(np.uint8)
    img = Image.frombytes("P", (8, 6), idx.tobytes())
    img.putpalette(palette.flatten().tolist())
    return img, idx, palette


def test_palette_without_transparency(tmp_path: Path) -> None:
    img, idx, palette = _palette_image()
    res = read_image(_save(img, tmp_path / "p.png"))
    _assert_clean(res)
    assert res.alpha is None
    np.testing.assert_array_equal(res.rgb, palette[idx])
    assert "palette converted to RGB" in res.notes


def test_palette_with_transparency(tmp_path: Path) -> None:
    img, idx, palette = _palette_image()
    res = read_image(_save(img, tmp_path / "t.png", transparency=1))
    _assert_clean(res)
    assert res.alpha is not None
    np.testing.assert_array_equal(res.alpha, np.where(idx == 1, 0, 255))
    np.testing.assert_array_equal(res.rgb[idx != 1], palette[idx][idx != 1])
    assert "palette with transparency converted to RGB + alpha" in res.notes


def test_gray_l(tmp_path: Path) -> None:
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    res = read_image(_save(Image.fromarray(gray), tmp_path / "l.png"))
    _assert_clean(res)
    assert res.alpha is None
    for ch in range(3):
        np.testing.assert_array_equal(res.rgb[..., ch], gray)


def test_gray_la(tmp_path: Path) -> None:
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10)
    alpha = 255 - gray
    img = Image.fromarray(np.dstack([gray, alpha]))
    assert img.mode == "LA"
    res = read_image(_save(img, tmp_path / "la.png"))
    _assert_clean(res)
    np.testing.assert_array_equal(res.rgb, np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(res.alpha, alpha)


def test_one_bit(tmp_path: Path) -> None:
    bits = (np.indices((8, 12)).sum(0) % 2).astype(bool)
    img = Image.fromarray(bits)
    assert img.mode == "1"
    res = read_image(_save(img, tmp_path / "b.png"))
    np.testing.assert_array_equal(res.rgb[..., 0], np.where(bits, 255, 0))
    np.testing.assert_array_equal(res.rgb[..., 0], res.rgb[..., 2])


def test_lab_tiff(tmp_path: Path) -> None:
    lab = Image.new("LAB", (4, 3), (60, 150, 100))
    res = read_image(_save(lab, tmp_path / "lab.tif"))
    expected = np.asarray(lab.convert("RGB"))
    np.testing.assert_array_equal(res.rgb, expected)
    assert "LAB converted to RGB" in res.notes


def test_icc_profile_kept_and_non_rgb_dropped(tmp_path: Path, photo: np.ndarray) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    res = read_image(_save(Image.fromarray(photo), tmp_path / "icc.png", icc_profile=srgb))
    assert res.icc_profile == srgb
    gray_icc = bytearray(srgb)
    gray_icc[16:20] = b"GRAY"
    img = Image.fromarray(photo[..., 0])
    res = read_image(_save(img, tmp_path / "g.jpg", icc_profile=bytes(gray_icc)))
    assert res.icc_profile is None
    assert any("ICC profile dropped" in n for n in res.notes)


# --------------------------------------------------------------------------
# read_image: orientation, animation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("orientation,k", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation(tmp_path: Path, photo: np.ndarray, orientation: int, k: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = _save(Image.fromarray(photo), tmp_path / "r.jpg", quality=95, exif=exif)
    res = read_image(p)
    expected = np.rot90(photo, k)
    assert res.rgb.shape == expected.shape
    assert res.rgb.flags.c_contiguous
    assert np.abs(res.rgb.astype(int) - expected).mean() < 3
    assert f"EXIF orientation {orientation} applied" in res.notes
    if orientation in (6, 8):
        assert res.size == (96, 128)


@pytest.mark.parametrize("fmt,ext", [("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")])
def test_animated_first_frame(tmp_path: Path, fmt: str, ext: str) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (16, 12), c) for c in colours]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    p = tmp_path / f"anim.{ext}"
    frames[0].save(p, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
    res = read_image(p)
    _assert_clean(res)
    assert res.size == (16, 12)
    assert np.abs(res.rgb.astype(int) - [255, 0, 0]).max() <= 2
    assert "animated: first of 3 frames used" in res.notes


def test_multipage_tiff(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (8, 8), (i * 50, 0, 0)) for i in range(1, 3)]
    p = tmp_path / "pages.tif"
    pages[0].save(p, save_all=True, append_images=pages[1:])
    res = read_image(p)
    assert (res.rgb == [50, 0, 0]).all()
    assert "multi-page: first of 2 pages used" in res.notes


# --------------------------------------------------------------------------
# write_image / copy_file
# --------------------------------------------------------------------------


def test_write_png_exact_with_alpha(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = np.full(photo.shape[:2], 77, dtype=np.uint8)
    p = tmp_path / "new" / "dir" / "o.png"
    write_image(p, photo, alpha)
    res = read_image(p)
    np.testing.assert_array_equal(res.rgb, photo)
    np.testing.assert_array_equal(res.alpha, alpha)
    write_image(p, photo)
    res = read_image(p)
    np.testing.assert_array_equal(res.rgb, photo)
    assert res.alpha is None
    assert sorted(os.listdir(p.parent)) == ["o.png"]


@pytest.mark.parametrize("ext", [".bmp", ".tif", ".tiff"])
def test_write_lossless_formats(tmp_path: Path, photo: np.ndarray, ext: str) -> None:
    p = tmp_path / f"o{ext}"
    write_image(p, photo)
    np.testing.assert_array_equal(read_image(p).rgb, photo)


def test_write_tiff_alpha(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = (np.arange(photo.shape[0] * photo.shape[1]) % 256).astype(np.uint8).reshape(photo.shape[:2])
    write_image(tmp_path / "a.tif", photo, alpha)
    res = read_image(tmp_path / "a.tif")
    np.testing.assert_array_equal(res.rgb, photo)
    np.testing.assert_array_equal(res.alpha, alpha)


def test_write_jpeg_close_and_drops_alpha(tmp_path: Path, photo: np.ndarray) -> None:
    p = tmp_path / "o.JPG"
    assert write_image(p, photo, np.full(photo.shape[:2], 255, np.uint8), quality=95) == []  # opaque: nothing lost
    with Image.open(p) as im:
        assert im.format == "JPEG"
        assert [layer[1:3] for layer in im.layer] == [(1, 1)] * 3  # 4:4:4 at quality >= 90
    res = read_image(p)
    assert res.alpha is None
    assert np.abs(res.rgb.astype(int) - photo).mean() < 2.5
    small = tmp_path / "low.jpeg"
    write_image(small, photo, quality=30)
    assert small.stat().st_size < p.stat().st_size
    # transparent pixels are composited onto white with a note, never written as their (often black) RGB
    notes = write_image(p, photo, np.zeros(photo.shape[:2], np.uint8), quality=95)
    assert notes and "transparency dropped" in notes[0]
    assert read_image(p).rgb.mean() > 250


def test_write_webp(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = np.full(photo.shape[:2], 200, np.uint8)
    write_image(tmp_path / "o.webp", photo, alpha, quality=95)
    res = read_image(tmp_path / "o.webp")
    assert res.format == "WEBP"
    assert np.abs(res.rgb.astype(int) - photo).mean() < 4
    assert res.alpha is not None and np.abs(res.alpha.astype(int) - 200).max() <= 2


def test_write_keeps_icc(tmp_path: Path, photo: np.ndarray) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for ext in (".png", ".jpg", ".webp", ".tif"):
        p = tmp_path / f"icc{ext}"
        write_image(p, photo, icc_profile=icc)
        assert read_image(p).icc_profile == icc, ext


def test_write_rejects_bad_input(tmp_path: Path, photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\.xyz"):
        write_image(tmp_path / "o.xyz", photo)
    with pytest.raises(TypeError):
        write_image(tmp_path / "o.png", photo.astype(np.float32))
    with pytest.raises(ValueError):
        write_image(tmp_path / "o.png", photo[..., :2])  # (H, W, 2): neither gray nor RGB
    with pytest.raises(ValueError):
        write_image(tmp_path / "o.png", photo, np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError):
        write_image(tmp_path / "o.jpg", photo, quality=0)
    assert list(tmp_path.iterdir()) == []


def test_write_file_mode_follows_umask(tmp_path: Path, photo: np.ndarray) -> None:
    p = tmp_path / "m.png"
    write_image(p, photo)
    mask = os.umask(0o022)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_write_is_atomic(tmp_path: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "out.png"
    write_image(p, photo)
    before = p.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial data")
        raise RuntimeError("disk full midway")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full midway"):
        write_image(p, 255 - photo)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]
    # a new destination is not created at all
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "fresh.jpg", photo)
    assert os.listdir(tmp_path) == ["out.png"]


def test_copy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.bin"
    payload = os.urandom(300_000)
    src.write_bytes(payload)
    os.chmod(src, 0o640)
    dst = tmp_path / "a" / "b" / "dst.bin"
    copy_file(src, dst)
    assert dst.read_bytes() == payload
    assert dst.stat().st_mode & 0o777 == 0o640
    copy_file(dst, dst)  # onto itself: no-op
    assert dst.read_bytes() == payload
    with pytest.raises(FileNotFoundError):
        copy_file(tmp_path / "missing", tmp_path / "x")

    def broken(fsrc, fdst, length=0):
        fdst.write(b"half")
        raise OSError("I/O error midway")

    src.write_bytes(b"new content")
    monkeypatch.setattr(shutil, "copyfileobj", broken)
    with pytest.raises(OSError, match="midway"):
        copy_file(src, dst)
    assert dst.read_bytes() == payload
    assert os.listdir(dst.parent) == ["dst.bin"]


# --------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------


def test_numpy_to_tensor_shapes_and_range() -> None:
    img = np.zeros((4, 5, 3), np.uint8)
    img[0, 0] = [0, 128, 255]
    t = numpy_to_tensor(img)
    assert t.shape == (1, 3, 4, 5) and t.dtype == torch.float32 and t.is_contiguous()
    assert t[0, :, 0, 0].tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    assert numpy_to_tensor([img, img, img]).shape == (3, 3, 4, 5)
    assert numpy_to_tensor(np.stack([img, img])).shape == (2, 3, 4, 5)
    with pytest.raises(ValueError, match="differ"):
        numpy_to_tensor([img, np.zeros((5, 5, 3), np.uint8)])
    with pytest.raises(TypeError):
        numpy_to_tensor(img.astype(np.float32))
    with pytest.raises(ValueError):
        numpy_to_tensor(np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError):
        numpy_to_tensor([])


def test_numpy_tensor_round_trip_exact(photo: np.ndarray) -> None:
    every = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    for arr in (every, photo):
        t = numpy_to_tensor(arr)
        assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0
        back = tensor_to_numpy(t)
        assert back.dtype == np.uint8 and back.shape == (1, *arr.shape) and back.flags.c_contiguous
        np.testing.assert_array_equal(back[0], arr)
    # channel order is kept (RGB in, RGB out)
    np.testing.assert_allclose(numpy_to_tensor(photo)[0, 0].numpy(), photo[..., 0] / 127.5 - 1, atol=1e-6)


def test_tensor_to_numpy_rounds_clips_and_accepts_dtypes() -> None:
    vals = torch.tensor([-2.0, -1.0, 100.4 / 127.5 - 1, 100.6 / 127.5 - 1, 1.0, 3.0, float("nan")])
    t = vals.view(1, 1, 1, 7).expand(1, 3, 1, 7)
    out = tensor_to_numpy(t)
    assert out.shape == (1, 1, 7, 3)
    assert out[0, 0, :, 0].tolist() == [0, 0, 100, 101, 255, 255, 0]
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        assert tensor_to_numpy(torch.ones(2, 3, 2, 2, dtype=dtype)).min() == 255
    with pytest.raises(ValueError):
        tensor_to_numpy(torch.zeros(3, 4, 4))
    with pytest.raises(TypeError):
        tensor_to_numpy(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_to_uint8() -> None:
    f = np.array([[0.0, 0.5, 1.0, -0.2, 1.7, np.nan]], dtype=np.float64)
    np.testing.assert_array_equal(to_uint8(f), [[0, 128, 255, 0, 255, 0]])
    np.testing.assert_array_equal(to_uint8(np.array([[0, 255, 256, 65535]], np.uint16)), [[0, 0, 1, 255]])
    np.testing.assert_array_equal(to_uint8(np.array([[True, False]])), [[255, 0]])
    u = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    out = to_uint8(u)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, u)
    np.testing.assert_array_equal(to_uint8(u[:, ::-1]), u[:, ::-1])
    assert to_uint8(np.ones((2, 3, 3), np.float32)).shape == (2, 3, 3)
    with pytest.raises(TypeError):
        to_uint8(np.zeros((2, 2), np.int32))


# --------------------------------------------------------------------------
# discover_inputs
# --------------------------------------------------------------------------


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for rel in [
        "a.jpg",
        "B.PNG",
        "notes.txt",
        ".hidden.jpg",
        ".cache/c.jpg",
        "sub/d.webp",
        "sub/deeper/e.TIFF",
        "out/f.jpg",
    ]:
        _touch(root / rel)
    return root


def _rels(pairs: list[tuple[Path, Path]]) -> list[str]:
    return [rel.as_posix() for _, rel in pairs]


def test_discover_folder_recursive(tree: Path) -> None:
    pairs = discover_inputs([str(tree)])
    assert sorted(_rels(pairs)) == sorted(["a.jpg", "B.PNG", "sub/d.webp", "sub/deeper/e.TIFF", "out/f.jpg"])
    for abs_path, rel in pairs:
        assert abs_path.is_absolute() and abs_path == tree / rel
    assert pairs == discover_inputs([str(tree)])  # deterministic
    assert _rels(pairs) == ["B.PNG", "a.jpg", "out/f.jpg", "sub/d.webp", "sub/deeper/e.TIFF"]


def test_discover_folder_flat_and_exclude(tree: Path) -> None:
    assert sorted(_rels(discover_inputs([str(tree)], recursive=False))) == ["B.PNG", "a.jpg"]
    pairs = discover_inputs([str(tree)], exclude=[tree / "out"])
    assert "out/f.jpg" not in _rels(pairs) and len(pairs) == 4
    pairs = discover_inputs([str(tree)], exclude=[tree / "sub"])
    assert sorted(_rels(pairs)) == ["B.PNG", "a.jpg", "out/f.jpg"]


def test_discover_relative_input_gives_absolute_paths(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    pairs = discover_inputs(["in/sub"])
    assert _rels(pairs) == ["d.webp", "deeper/e.TIFF"]
    assert pairs[0][0] == tree / "sub" / "d.webp"


def test_discover_globs(tree: Path) -> None:
    assert _rels(discover_inputs([str(tree / "*.jpg")])) == ["a.jpg"]
    rec = discover_inputs([str(tree / "**" / "*.jpg")])
    assert sorted(_rels(rec)) == ["a.jpg", "out/f.jpg"]  # hidden ones are not matched
    rec = discover_inputs([str(tree / "**" / "*.jpg")], exclude=[tree / "out"])
    assert _rels(rec) == ["a.jpg"]
    # a pattern matching folders walks them; non-image files are skipped
    assert sorted(_rels(discover_inputs([str(tree / "s*")]))) == ["sub/d.webp", "sub/deeper/e.TIFF"]
    flat = discover_inputs([str(tree / "*")], recursive=False)  # matched folders walked flat
    assert sorted(_rels(flat)) == ["B.PNG", "a.jpg", "out/f.jpg", "sub/d.webp"]


def test_discover_explicit_files(tree: Path) -> None:
    pairs = discover_inputs([str(tree / "notes.txt"), str(tree / ".hidden.jpg"), str(tree / "sub/d.webp")])
    assert _rels(pairs) == ["notes.txt", ".hidden.jpg", "d.webp"]
    assert pairs[0][0] == tree / "notes.txt"


def test_discover_duplicates_dropped(tree: Path) -> None:
    pairs = discover_inputs([str(tree / "a.jpg"), str(tree), str(tree / "sub" / ".." / "a.jpg")])
    assert [p for p, _ in pairs].count(tree / "a.jpg") == 1
    assert len(pairs) == 5
    assert pairs[0] == (tree / "a.jpg", Path("a.jpg"))


def test_discover_collisions(tmp_path: Path) -> None:
    x = _touch(tmp_path / "a" / "x.jpg")
    y = _touch(tmp_path / "b" / "x.jpg")
    z = _touch(tmp_path / "c" / "b" / "x.jpg")
    w = _touch(tmp_path / "d" / "X.JPG")
    pairs = discover_inputs([str(x), str(y), str(z), str(w)])
    assert _rels(pairs) == ["x.jpg", "b_x.jpg", "b_x_2.jpg", "d_X.JPG"]
    assert [p for p, _ in pairs] == [x, y, z, w]
    assert len({r.as_posix().lower() for r in _rels_paths(pairs)}) == 4


def _rels_paths(pairs: list[tuple[Path, Path]]) -> list[Path]:
    return [rel for _, rel in pairs]


def test_discover_collisions_between_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "one" / "sub" / "x.png")
    _touch(tmp_path / "two" / "sub" / "x.png")
    _touch(tmp_path / "two" / "y.png")
    pairs = discover_inputs([str(tmp_path / "one"), str(tmp_path / "two")])
    assert _rels(pairs) == ["sub/x.png", "sub/two_x.png", "y.png"]


def test_discover_nothing_matched(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        discover_inputs([str(tree / "a.jpg"), str(tree / "nope.jpg")])
    with pytest.raises(FileNotFoundError, match=r"\*\.heic"):
        discover_inputs([str(tree / "*.heic")])
    with pytest.raises(FileNotFoundError, match="no image files"):
        discover_inputs([str(tree / "*.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        discover_inputs([str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError):
        discover_inputs([str(tree / ".cache")], recursive=False, exclude=[tree / ".cache"])


def test_discover_skips_write_temp_files(tmp_path: Path, photo: np.ndarray) -> None:
    _touch(tmp_path / ".x.abc123.png.tmp")
    write_image(tmp_path / "x.png", photo)
    assert _rels(discover_inputs([str(tmp_path)])) == ["x.png"]


def test_discover_accepts_single_string(tree: Path) -> None:
    assert _rels(discover_inputs(str(tree / "a.jpg"))) == ["a.jpg"]  # type: ignore[arg-type]


def test_loaded_image_size_property() -> None:
    li = LoadedImage(rgb=np.zeros((3, 7, 3), np.uint8), alpha=None, path=Path("p"), format="PNG", notes=[])
    assert li.size == (7, 3) and li.icc_profile is None


def test_module_has_public_api() -> None:
    for name in aio.__all__:
        assert hasattr(aio, name)


def test_write_gray_images_and_png_text_chunks(tmp_path: Path) -> None:
    mask = np.zeros((8, 6), np.uint8)
    mask[2:5] = 255
    write_image(tmp_path / "m.png", mask, text={"authface:optimized": "score 0.7 -> 0.9"})
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "L" and im.text == {"authface:optimized": "score 0.7 -> 0.9"}
        assert np.array_equal(np.asarray(im), mask)
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "x.png", mask, np.zeros_like(mask))


@pytest.mark.parametrize("mode", ["copy", "symlink", "hardlink"])
def test_place_file_modes_replace_an_existing_destination(tmp_path: Path, mode: str) -> None:
    from authface.io import place_file

    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    dst = tmp_path / "sub" / "dst.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"old")
    place_file(src, dst, mode)
    assert dst.read_bytes() == b"abc"
    assert dst.is_symlink() == (mode == "symlink")
    with pytest.raises(ValueError, match="mode"):
        place_file(src, dst, "move")
