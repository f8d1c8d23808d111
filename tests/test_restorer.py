"""The whole-photo Python API: FaceRestorer.from_pretrained(...)(photo), and bounded batching across photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from authface.config import ConfigError
from authface.face.stage import FaceStage
from authface.restorer import FaceRestorer

FAST = dict(crop_size=64, steps=2, device="cpu")


@pytest.fixture(scope="module")
def restorer(tiny_model_dir):
    return FaceRestorer.from_pretrained(tiny_model_dir, **FAST)


def test_from_pretrained_restores_a_photo_at_its_size(restorer, astronaut):
    from authface import FaceRestorer as Lazy

    assert Lazy is FaceRestorer
    result = restorer(astronaut)
    assert result.image.shape == astronaut.shape and result.image.dtype == np.uint8
    assert len(result.faces) == 1
    face = result.faces[0]
    assert {"box", "landmarks", "seed"} <= set(face)
    x0, y0, x1, y1 = face["box"]
    assert 150 < (x0 + x1) / 2 < 350 and 50 < (y0 + y1) / 2 < 250  # the astronaut's face
    # outside the face the photo is untouched; inside, the (random) model changed it
    assert np.array_equal(result.image[450:], astronaut[450:])
    assert not np.array_equal(result.image[80:200, 200:300], astronaut[80:200, 200:300])
    assert restorer.config.sampler.steps == 2 and restorer.pipeline is not None


def test_same_photo_as_pil_path_and_array_gives_the_same_result(restorer, astronaut, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(astronaut).save(path)
    by_array = restorer(astronaut, key="a").image
    assert np.array_equal(restorer(Image.fromarray(astronaut), key="a").image, by_array)
    assert np.array_equal(restorer(path, key="a").image, by_array)


def test_alpha_and_gray_inputs(restorer, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 77, np.uint8)])
    result = restorer(rgba)
    assert result.alpha is not None and (result.alpha == 77).all()
    gray = restorer(astronaut[..., 1])
    assert gray.image.shape == astronaut.shape


def test_options_by_short_or_dotted_name_and_unknown_suggests(tiny_model_dir):
    from authface.build import restore_config

    cfg = restore_config(steps=3, **{"face.upscale": 2})
    assert cfg.sampler.steps == 3 and cfg.face.upscale == 2
    with pytest.raises(ConfigError, match="sampler.steps"):
        restore_config(stpes=3)
    with pytest.raises(ConfigError, match="strength"):
        restore_config(strength=1.5)


class _CountingStage(FaceStage):
    """Finds a face only in photos whose first pixel is 255."""

    def __init__(self):
        super().__init__(detector=None, crop_size=8, aligned=True)

    def detect_report(self, rgb):
        return super().detect_report(rgb) if rgb[0, 0, 0] == 255 else ([], [])


def test_faceless_photos_are_yielded_at_once_and_memory_is_bounded():
    """Issue: photos without faces piled up until enough faces filled a batch (all decoded, nothing written)."""
    decoded, unwritten_peak = [], [0]
    stage = _CountingStage()
    restorer = FaceRestorer(lambda crops, seeds: (crops, []), stage, batch_size=4, max_pending_photos=3)

    def item(i, face):
        def load():
            decoded.append(i)
            img = np.zeros((16, 16, 3), np.uint8)
            img[0, 0, 0] = 255 if face else 0
            return img, None

        return (str(i), load)

    faces = {0, 150}
    items = [item(i, i in faces) for i in range(300)]
    out = []
    for key, result in restorer.restore_many(items):
        assert not isinstance(result, Exception)
        out.append(key)
        unwritten_peak[0] = max(unwritten_peak[0], len(decoded) - len(out))
    assert out == [str(i) for i in range(300)]  # input order
    assert unwritten_peak[0] <= 3  # never more photos decoded-but-unwritten than the bound


def test_faceless_photos_before_any_face_need_no_batch():
    stage = _CountingStage()
    calls = []

    def restore(crops, seeds):
        calls.append(len(crops))
        return crops, []

    restorer = FaceRestorer(restore, stage, batch_size=4)
    decoded = []

    def load():
        decoded.append(1)
        return np.zeros((16, 16, 3), np.uint8), None

    it = restorer.restore_many((str(i), load) for i in range(5))
    key, result = next(it)  # the first face-less photo comes out before the next one is even decoded
    assert key == "0" and result.faces == [] and not calls and len(decoded) == 1


# ------------------------------------------------------------------ gray and toned photos stay so
def _chroma_p99(rgb):
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb)
    return float(np.percentile(np.hypot(lab[..., 1], lab[..., 2]), 99))


def _jpeg_rgb(img, quality=75):
    import io as _io

    buf = _io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def colorizing(tiny_model_dir):
    return FaceRestorer.from_pretrained(tiny_model_dir, colorize=True, **FAST)


@pytest.mark.parametrize("kind", ["L", "rgb-gray-jpeg", "gray-with-chroma-noise"])
def test_gray_photo_comes_back_gray(restorer, colorizing, astronaut, kind):
    """The random tiny model paints colour into every face; a gray input must still come back gray."""
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    if kind == "L":
        photo = gray
    elif kind == "rgb-gray-jpeg":
        photo = _jpeg_rgb(np.repeat(gray[..., None], 3, axis=2))
    else:  # chroma noise of a few levels, as scanners and JPEG encoders leave
        rng = np.random.default_rng(0)
        photo = np.repeat(gray[..., None], 3, axis=2).astype(int) + rng.integers(-2, 3, (*gray.shape, 3))
        photo = _jpeg_rgb(np.clip(photo, 0, 255).astype(np.uint8), 90)
    result = restorer(photo)
    assert len(result.faces) == 1
    face = result.image[60:220, 150:300]
    assert _chroma_p99(face) < 4.0
    assert any("monochrome" in n for n in result.notes)
    colour = colorizing(photo)
    assert _chroma_p99(colour.image[60:220, 150:300]) > 4.0  # the model's colour, when asked for


def test_sepia_photo_keeps_its_tint(restorer, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"), np.float32)
    sepia = np.clip(gray[..., None] * np.array([1.0, 0.86, 0.66]) + np.array([20, 10, 0]), 0, 255).astype(np.uint8)
    result = restorer(sepia)
    from authface.imaging import monochrome_tone

    tone_in, tone_out = monochrome_tone(sepia), monochrome_tone(result.image)
    assert tone_in is not None and tone_out is not None and not tone_in.neutral
    mid = slice(60, 200)  # the tone curve over the luma range the face covers
    assert np.abs(tone_out.cb[mid] - tone_in.cb[mid]).max() < 3 and np.abs(tone_out.cr[mid] - tone_in.cr[mid]).max() < 3


def test_colour_photo_is_not_taken_for_monochrome(restorer, astronaut):
    assert not restorer(astronaut).notes
