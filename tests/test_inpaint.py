"""Inpainting (face masks, old-photo damage) and colourisation through the restorer and `authface restore`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from authface.cli import main
from authface.restorer import FaceRestorer

FAST = dict(crop_size=64, steps=2, device="cpu")
CLI_FAST = ["--set", "face.crop_size=64", "--steps", "2"]


@pytest.fixture(scope="module")
def restorer(tiny_model_dir):
    return FaceRestorer.from_pretrained(tiny_model_dir, **FAST)


@pytest.fixture(scope="module")
def mouth_mask(astronaut):
    m = np.zeros(astronaut.shape[:2], bool)
    m[140:200, 180:280] = True  # where a face mask would be
    m[400:415, 20:300] = True  # a scratch across the background
    return m


def test_keep_unmasked_changes_only_the_masked_pixels(tiny_model_dir, astronaut, mouth_mask):
    r = FaceRestorer.from_pretrained(tiny_model_dir, keep_unmasked=True, mask="x", **FAST)
    out = r(astronaut, mask=mouth_mask)
    assert np.array_equal(out.image[~mouth_mask], astronaut[~mouth_mask])
    assert (out.image[mouth_mask] != astronaut[mouth_mask]).mean() > 0.5
    assert out.faces[0]["inpainted_px"] > 0


def test_outside_the_mask_equals_plain_restoration(restorer, astronaut, mouth_mask):
    plain = restorer(astronaut).image
    masked = restorer(astronaut, mask=mouth_mask).image
    # the crop-space feather (grow + blur, a few crop pixels) maps to ~25 photo pixels at this crop scale
    near = cv2.dilate(mouth_mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=30) > 0
    assert np.array_equal(masked[~near], plain[~near])
    assert not np.array_equal(masked[mouth_mask], plain[mouth_mask])
    # the background scratch, outside any face, is filled (OpenCV Telea) instead of restored as is
    scratch = np.zeros_like(mouth_mask)
    scratch[400:415, 20:300] = True
    assert not np.array_equal(masked[scratch], plain[scratch])


@pytest.mark.parametrize(
    "name, make, why",
    [
        ("wrong_size.png", lambda h, w: np.zeros((h // 2, w), np.uint8), "masks are never resized"),
        ("photo.png", lambda h, w: np.random.default_rng(0).integers(0, 256, (h, w), dtype=np.uint8), "not binary"),
        ("empty.png", lambda h, w: np.zeros((h, w), np.uint8), "is empty"),
        ("full.png", lambda h, w: np.full((h, w), 255, np.uint8), "whole image"),
        ("unreadable.png", None, "cannot be read"),
    ],
)
def test_bad_masks_fail_their_photo_with_one_clear_error(tiny_model_dir, astronaut, tmp_path, capsys, name, make,
                                                         why):  # fmt: skip
    src, masks = tmp_path / "in", tmp_path / "masks"
    src.mkdir()
    masks.mkdir()
    Image.fromarray(astronaut).save(src / "bad.png")
    Image.fromarray(astronaut).save(src / "good.png")
    good = np.zeros(astronaut.shape[:2], np.uint8)
    good[150:190, 200:260] = 255
    Image.fromarray(good).save(masks / "good.png")
    if make is None:
        (masks / "bad.png").write_text("not an image")
    else:
        Image.fromarray(make(*astronaut.shape[:2])).save(masks / "bad.png")
    out = tmp_path / "out"
    rc = main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), *CLI_FAST, "--mask", str(masks)])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [line for line in err.splitlines() if "FAILED" in line]
    assert len(lines) == 1 and "masks/bad.png" in lines[0] and why in lines[0], err
    assert (out / "good.png").is_file() and not (out / "bad.png").exists()  # nothing lost, nothing half-written


def test_mask_options_checked_before_any_work(astronaut, tmp_path, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    for extra, msg in ((["--mask", "auto"], "mask segmenter"), (["--task", "old-photo"], "--task old-photo needs"),
                       (["--keep-unmasked"], "needs io.mask")):  # fmt: skip
        rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *extra])
        assert rc == 2 and msg in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def test_old_photo_task_fills_damage_and_keeps_the_tone(tiny_model_dir, astronaut, tmp_path):
    from authface.data.occlusions import damage_photo
    from authface.imaging import monochrome_tone

    gray = np.repeat(np.asarray(Image.fromarray(astronaut).convert("L"))[..., None], 3, axis=2)
    damaged, mask, _ = damage_photo(gray, np.random.default_rng(3))
    damaged = np.repeat(np.asarray(Image.fromarray(damaged).convert("L"))[..., None], 3, axis=2)
    Image.fromarray(damaged).save(tmp_path / "old.png")
    Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).save(tmp_path / "old_mask.png")
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "old.png"), "-o", str(out), "--model", str(tiny_model_dir), *CLI_FAST,
                 "--task", "old-photo", "--mask", str(tmp_path / "old_mask.png")]) == 0  # fmt: skip
    result = np.asarray(Image.open(out / "old.png").convert("RGB"))
    tone = monochrome_tone(result)
    assert tone is not None and tone.neutral  # a gray print stays gray
    rec = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()][-1]
    assert rec["status"] == "restored"


def test_colorize_keeps_the_luminance_of_a_gray_photo(tiny_model_dir, astronaut):
    from authface.imaging import luma

    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    r = FaceRestorer.from_pretrained(tiny_model_dir, colorize=True, **FAST)
    result = r(gray)
    src, out = result.crops_in[0], result.crops_out[0]
    diff = np.abs(luma(out.astype(np.float64)) - luma(src.astype(np.float64)))
    assert np.percentile(diff, 99) <= 1.0 and diff.mean() < 0.5  # within rounding of 1/255
    assert np.abs(out.astype(int) - out[..., [1, 2, 0]].astype(int)).mean() > 1  # and it has colour
    assert any("coloured" in n for n in result.notes)


def test_missing_mask_path_is_a_usage_error_and_unmatched_photos_are_noted(tiny_model_dir, astronaut, tmp_path,
                                                                          capsys, mouth_mask):  # fmt: skip
    """--mask naming nothing stops before any work (exit 2); with a mask folder, a photo without a mask there is
    restored without one and its manifest record says so."""
    (tmp_path / "in").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "in" / "a.png")
    Image.fromarray(astronaut[:, ::-1].copy()).save(tmp_path / "in" / "b.png")
    rc = main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir),
               "--mask", str(tmp_path / "nosuch.png"), *CLI_FAST])  # fmt: skip
    assert rc == 2 and "no such file or folder" in capsys.readouterr().err and not (tmp_path / "o").exists()
    (tmp_path / "masks").mkdir()
    Image.fromarray(mouth_mask.astype(np.uint8) * 255).save(tmp_path / "masks" / "a.png")
    rc = main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir),
               "--mask", str(tmp_path / "masks"), *CLI_FAST])  # fmt: skip
    assert rc == 0
    records = {Path(r["input"]).name: r for r in map(json.loads, (tmp_path / "o" / "manifest.jsonl").read_text()
               .splitlines()) if r.get("type") == "photo"}  # fmt: skip
    assert any("no mask for this photo" in n for n in records["b.png"]["notes"])
    assert not any("no mask for this photo" in n for n in records["a.png"]["notes"])
