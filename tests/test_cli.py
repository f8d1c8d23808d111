"""`authface restore` end to end on the tiny random model folder, with good and bad files mixed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from authface.cli import main

FAST = ["--set", "face.crop_size=64", "--steps", "2", "--batch-size", "3"]


def _records(out):
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, astronaut):
    """Photos with a face in many encodings, a photo without a face, and every kind of bad file."""
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    img = Image.fromarray(astronaut)
    img.save(d / "astronaut.jpg", quality=95)
    img.convert("RGBA").save(d / "rgba.png")
    img.convert("L").save(d / "gray.png")
    img.convert("CMYK").save(d / "cmyk.jpg")
    img.convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    Image.fromarray(astronaut[..., 0].astype(np.uint16) * 257).save(d / "sixteen.png")
    sub = d / "nested"
    sub.mkdir()
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # stored rotated, EXIF says how to turn it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(sub / "exif_rotated.jpg", exif=exif.tobytes())
    frames = [img, Image.fromarray(astronaut[::-1].copy())]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(data.coffee()).save(d / "no_face.png")  # a cup of coffee: no face
    # bad files
    (d / "zero.jpg").write_bytes(b"")
    good = (d / "astronaut.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (d / "text.jpg").write_text("this is not an image\n")
    Image.new("RGB", (1200, 1000)).save(d / "bomb.png")  # refused with --max-pixels 1000000
    (d / "notes.txt").write_text("not an image name: ignored by folder discovery")
    return d


BAD = {"zero.jpg", "truncated.jpg", "corrupt.png", "text.jpg", "bomb.png"}
GOOD_FACES = {"astronaut.jpg", "rgba.png", "gray.png", "cmyk.jpg", "palette.png", "sixteen.png",
              "nested/exif_rotated.jpg", "animated.gif"}


def test_restore_folder_mixed_good_and_bad(tiny_model_dir, photo_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["restore", str(photo_dir), "-o", str(out), "--model", str(tiny_model_dir), "--max-pixels", "1000000",
               *FAST])
    err = capsys.readouterr().err
    assert rc == 1  # some inputs failed
    # every bad file named exactly once, with a reason
    for name in BAD:
        assert len(re.findall(rf"FAILED \S*{re.escape(name)}: \S", err)) == 1, (name, err)
    assert re.search(r"bomb.png: .*1,000,000", err)  # the refused size names the limit
    assert "no face found in" in err and "no_face.png" in err
    summary = [line for line in err.splitlines() if "photo(s):" in line]
    assert len(summary) == 1
    assert "14 photo(s): 8 restored, 1 copied (no face), 0 skipped (no face), 0 already done, 5 failed" in summary[0]

    recs = _records(out)
    assert recs[0]["type"] == "run" and recs[0]["config"]["sampler"]["steps"] == 2
    photos = {r["input"].split(str(photo_dir) + "/")[1]: r for r in recs if r["type"] == "photo"}
    assert set(photos) == GOOD_FACES | BAD | {"no_face.png"}
    for name in GOOD_FACES:
        r = photos[name]
        assert r["status"] == "restored", (name, r)
        assert len(r["faces"]) == 1 and len(r["faces"][0]["box"]) == 4 and len(r["faces"][0]["landmarks"]) == 5
        assert isinstance(r["faces"][0]["seed"], int) and r["timings"]["restore_s"] >= 0
        w, h = Image.open(r["output"]).size
        assert [w, h] == r["size"] == [512, 512], name
    for name in BAD:
        assert photos[name]["status"] == "failed" and photos[name]["error"]
    assert photos["no_face.png"]["status"] == "copied"
    assert (out / "no_face.png").read_bytes() == (photo_dir / "no_face.png").read_bytes()
    # outputs keep the input's extension and folder structure; unwritable formats become png
    assert (out / "nested" / "exif_rotated.jpg").is_file() and (out / "animated.png").is_file()
    with Image.open(out / "rgba.png") as im:
        assert im.mode == "RGBA"  # transparency kept
    # nothing was written for bad inputs and no temporary files remain
    assert not any(p.name.startswith("zero") for p in out.iterdir())
    assert not [p for p in out.rglob("*") if p.suffix in (".tmp", ".part") or p.name.startswith(".tmp")]

    # re-running skips everything done; the bad files are tried again and still fail
    rc = main(["restore", str(photo_dir), "-o", str(out), "--model", str(tiny_model_dir), "--max-pixels", "1000000",
               *FAST])
    err = capsys.readouterr().err
    assert rc == 1 and "0 restored" in err and "9 already done" in err and "5 failed" in err


def test_restore_good_folder_rerun_and_upscale(tiny_model_dir, astronaut, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "a.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(src / "b.jpg")
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--upscale", "2", "--save-faces",
                 *FAST]) == 0
    assert Image.open(out / "a.png").size == (1024, 1024) and Image.open(out / "b.jpg").size == (1024, 1024)
    assert (out / "faces" / "a_00_cmp.png").is_file()
    before = (out / "a.png").read_bytes()
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), *FAST]) == 0
    assert "2 already done" in capsys.readouterr().err
    assert (out / "a.png").read_bytes() == before
    # --overwrite redoes them, reproducibly (same seeds -> same bytes)
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--upscale", "2",
                 "--overwrite", *FAST]) == 0
    assert (out / "a.png").read_bytes() == before


def test_output_never_overwrites_input(tiny_model_dir, astronaut, tmp_path, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path), "--model", str(tiny_model_dir), *FAST])
    assert rc == 2 and "would overwrite an input" in capsys.readouterr().err
    assert Image.open(tmp_path / "a.png").size == (512, 512)


def test_skip_no_face_and_aligned_mode(tiny_model_dir, astronaut, tmp_path, capsys):
    from skimage import data

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(data.coffee()).save(src / "cup.png")
    Image.fromarray(np.ascontiguousarray(astronaut[60:190, 155:285])).save(src / "crop.png")  # 130x130 face crop
    out = tmp_path / "out"
    assert main(["restore", str(src / "cup.png"), "-o", str(out), "--model", str(tiny_model_dir), "--skip-no-face",
                 *FAST]) == 0
    assert not (out / "cup.png").exists()
    assert main(["restore", str(src / "crop.png"), "-o", str(out), "--model", str(tiny_model_dir), "--aligned",
                 *FAST]) == 0
    assert Image.open(out / "crop.png").size == (130, 130)


def test_config_errors_exit_2_with_suggestion(tmp_path, capsys):
    rc = main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--set", "sampler.stpes=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "sampler.steps" in err


def test_missing_input_exit_2(tmp_path, capsys):
    rc = main(["restore", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert rc == 2 and "nope" in capsys.readouterr().err


def test_offline_hub_model_error_says_how_to_pass_local(tmp_path, astronaut, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", "someone/not-cached-model"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "someone/not-cached-model" in err and "HF_HUB_OFFLINE" in err and "--model /path/to/folder" in err
    assert "single-file" in err


def test_restore_with_guidance_records_steps_and_values(tiny_model_dir, astronaut, tmp_path):
    """`--identity-scale/--quality-scale/--fidelity-scale` run end to end; the manifest shows the steps each
    guidance ran at and its objective values per face."""
    import torch

    from authface.models.identity import iresnet

    torch.manual_seed(0)
    torch.save(iresnet("r18").state_dict(), tmp_path / "r18.pth")  # random weights stand in for ArcFace
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    out = tmp_path / "out"
    rc = main(["restore", str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_model_dir), *FAST,
               "--steps", "4", "--strength", "1.0", "--identity-scale", "0.1", "--identity-model",
               str(tmp_path / "r18.pth"), "--identity-window", "0,0.5", "--quality-scale", "0.1",
               "--quality-window", "0.5,1", "--fidelity-scale", "0.05", "--guidance-every", "1"])  # fmt: skip
    assert rc == 0
    face = [r for r in _records(out) if r["type"] == "photo"][0]["faces"][0]
    g = face["guidance"]
    assert g["identity"]["steps"] == [0, 1] and g["quality"]["steps"] == [2, 3]
    assert g["fidelity"]["steps"] == [0, 1, 2]  # default window [0, 0.6): 0/4, 1/4, 2/4
    for name in ("identity", "quality", "fidelity"):
        assert len(g[name]["values"]) == len(g[name]["steps"]) and isinstance(g[name]["final"], float)
    assert -1.0 <= g["identity"]["final"] <= 1.0 and 0.0 <= g["quality"]["final"] <= 1.0


def test_identity_guidance_works_out_of_the_box_on_aligned_crops(tiny_model_dir, astronaut, tmp_path):
    """No --identity-model: dlib's recogniser (shipped with the core) is the default; with --aligned the
    reference photos are aligned crops too (issue acceptance: --aligned --identity-scale 1 --reference DIR)."""
    crops = tmp_path / "crops"
    crops.mkdir()
    Image.fromarray(np.ascontiguousarray(astronaut[30:250, 120:340])).save(crops / "a.png")
    Image.fromarray(np.ascontiguousarray(astronaut[40:240, 130:330])).save(crops / "b.png")
    out = tmp_path / "out"
    rc = main(["restore", str(crops), "-o", str(out), "--aligned", "--model", str(tiny_model_dir), *FAST,
               "--steps", "3", "--identity-scale", "1", "--reference", str(crops)])  # fmt: skip
    assert rc == 0
    for rec in [r for r in _records(out) if r["type"] == "photo"]:
        ident = rec["faces"][0]["guidance"]["identity"]
        assert ident["steps"] and len(ident["values"]) == len(ident["steps"]) and "final" in ident


# ------------------------------------------------------------------ first-run experience: checks before any work
def test_help_shows_defaults_and_choices(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # no line wrapping inside long defaults
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "choices: default, ddim, dpm++, unipc, euler, euler_a" in out  # schedulers
    assert "choices: dlib, dlib-mmod, yunet, insightface" in out  # detectors
    assert "choices: none, wavelet, adain; default: wavelet" in out  # colour fixes
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in out  # the default model
    assert "default: 20 [sampler.steps]" in out


def test_output_equal_to_input_folder_is_refused_up_front(astronaut, tmp_path, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    Image.fromarray(astronaut).save(tmp_path / "b.jpg")
    rc = main(["restore", str(tmp_path), "-o", str(tmp_path), "--model", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2 and "is the input folder" in err and "contains no image files" not in err


@pytest.mark.parametrize("steps, strength", [("2", "0.3"), ("1", "0.9"), ("3", "0.25")])
def test_steps_times_strength_below_one_is_a_usage_error(astronaut, tmp_path, capsys, steps, strength):
    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    out = tmp_path / "out"
    rc = main(["restore", str(tmp_path / "a.jpg"), "-o", str(out), "--steps", steps, "--strength", strength])
    err = capsys.readouterr().err
    assert rc == 2 and "--steps" in err and "--strength" in err and "no denoising step" in err
    assert not out.exists()


def test_quality_target_without_the_prior_exits_2_before_any_photo(tiny_model_dir, astronaut, tmp_path, capsys):
    from diffusers import ControlNetModel

    from authface.models.quality_prior import has_quality_prior

    if has_quality_prior(ControlNetModel.from_pretrained(tiny_model_dir / "controlnet")):
        pytest.skip("the tiny model folder has the quality prior")  # then the check below cannot apply
    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    out = tmp_path / "out"
    rc = main(["restore", str(tmp_path / "a.jpg"), "-o", str(out), "--model", str(tiny_model_dir),
               "--quality-target", "0.9", *FAST])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--quality-target" in err and "quality_score" not in err
    assert not out.exists()  # nothing left behind


def test_failed_model_load_leaves_no_output_folder(astronaut, tmp_path, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    out = tmp_path / "restored"
    rc = main(["restore", str(tmp_path / "a.jpg"), "-o", str(out), "--model", str(tmp_path / "no-such-model")])
    assert rc == 2 and not out.exists()


def test_ctrl_c_prints_one_line_exits_130_and_resumes(tiny_model_dir, astronaut, tmp_path, capsys, monkeypatch):
    from authface.restorer import FaceRestorer

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(astronaut).save(src / f"{name}.png")
    out = tmp_path / "out"
    real = FaceRestorer.restore_many

    def interrupted(self, items):
        for i, result in enumerate(real(self, items)):
            if i == 1:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(FaceRestorer, "restore_many", interrupted)
    rc = main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), *FAST])
    err = capsys.readouterr().err
    assert rc == 130
    assert "Traceback" not in err and len([line for line in err.splitlines() if "interrupted" in line]) == 1
    assert "run the same command again to resume" in err
    monkeypatch.setattr(FaceRestorer, "restore_many", real)
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), *FAST]) == 0
    assert "1 already done" in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]


def test_progress_lines_when_not_a_terminal_and_no_face_hint(tiny_model_dir, astronaut, tmp_path, capsys):
    from skimage import data

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "a.png")
    Image.fromarray(data.coffee()).save(src / "cup.png")
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), *FAST]) == 0
    err = capsys.readouterr().err
    assert "authface: restoring: 2/2 photo (100%)" in err  # the periodic one-line progress (stderr is no TTY)
    assert "--detector dlib-mmod" in err and "face.upsample=2" in err  # the no-face line says what to try


# ------------------------------------------------------------------ one output per input, always
@pytest.mark.parametrize(
    "names, ext",
    [
        (["a.gif", "a.png"], None),  # GIF is written as PNG
        (["a.jpg", "a.png"], "png"),  # --ext png
        (["a.jpg", "a.jpeg", "a.webp"], "jpg"),
        (["a.tif", "a.tiff", "a.bmp", "a.png"], "png"),
        (["a.gif", "a_gif.png", "a.png"], None),  # the fallback name is itself taken
        (["A.GIF", "a.png"], None),  # case-insensitive file systems
    ],
)
def test_inputs_that_meet_at_one_output_each_get_their_own(tiny_model_dir, astronaut, tmp_path, capsys, names, ext):
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(names):  # different pixels per input, so a lost output is visible
        Image.fromarray(np.ascontiguousarray(np.roll(astronaut, 40 * i, axis=1))).save(src / name)
    out = tmp_path / "out"
    args = ["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), *FAST, "--set", "face.aligned=true"]
    assert main(args + (["--ext", ext] if ext else [])) == 0
    recs = [r for r in _records(out) if r["type"] == "photo"]
    outputs = [r["output"] for r in recs]
    assert len(recs) == len(names) and len({o.casefold() for o in outputs}) == len(names), outputs
    assert all(Path(o).is_file() for o in outputs)
    # a re-run maps every input to the same output and skips them all
    assert main(args + (["--ext", ext] if ext else [])) == 0
    assert f"{len(names)} already done" in capsys.readouterr().err


def test_seeds_depend_on_the_relative_path_not_the_folder_location(tiny_model_dir, astronaut, tmp_path):
    """Moving a folder of photos must not change any output (seeds once came from the absolute path)."""
    for place in ("first", "second/deeper"):
        src = tmp_path / place / "photos"
        (src / "sub").mkdir(parents=True)
        Image.fromarray(astronaut).save(src / "sub" / "a.png")
        assert main(["restore", str(src), "-o", str(tmp_path / place / "out"), "--model", str(tiny_model_dir),
                     *FAST]) == 0  # fmt: skip
    a = (tmp_path / "first" / "out" / "sub" / "a.png").read_bytes()
    assert a == (tmp_path / "second" / "deeper" / "out" / "sub" / "a.png").read_bytes()
    rec = [r for r in _records(tmp_path / "first" / "out") if r["type"] == "photo"][0]
    assert rec["key"] == "sub/a.png"


def test_transparency_dropped_for_jpeg_is_visible_and_noted(tiny_model_dir, astronaut, tmp_path, capsys):
    """An RGBA cut-out written as JPEG came back on black with only a debug line."""
    rgba = np.dstack([np.zeros_like(astronaut), np.zeros(astronaut.shape[:2], np.uint8)])  # transparent black...
    rgba[:, 100:400, :3] = astronaut[:, 100:400]  # ...around an opaque band with the face
    rgba[:, 100:400, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "cutout.png"), "-o", str(out), "--model", str(tiny_model_dir),
                 "--ext", "jpg", *FAST]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "transparency dropped" in err and "--ext png" in err
    rec = [r for r in _records(out) if r["type"] == "photo"][0]
    assert any("transparency dropped" in n for n in rec["notes"])
    corner = np.asarray(Image.open(out / "cutout.jpg"))[:50, :50]
    assert corner.mean() > 240  # composited onto white, not black


# ------------------------------------------------------------------ several processes
def test_two_processes_equal_one_and_merge_one_manifest(tiny_model_dir, astronaut, tmp_path):
    """`--num-processes 2` (torchrun, two CPU processes): the same bytes as one process, one merged manifest.

    Both runs use one thread per process (torchrun's default), so the arithmetic is the same."""
    import os
    import subprocess
    import sys

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.ascontiguousarray(np.roll(astronaut, 30 * i, axis=1))).save(src / f"p{i}.png")
    common = [sys.executable, "-m", "authface", "restore", str(src), "--model", str(tiny_model_dir), *FAST,
              "--batch-size", "1"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for out, extra in (("one", []), ("two", ["--num-processes", "2"])):
        proc = subprocess.run([*common, "-o", str(tmp_path / out), *extra], capture_output=True, text=True,
                              timeout=600, env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
    for i in range(3):
        assert (tmp_path / "one" / f"p{i}.png").read_bytes() == (tmp_path / "two" / f"p{i}.png").read_bytes()
    assert not list((tmp_path / "two").glob("manifest.*-of-*.jsonl"))  # shards merged away
    recs = _records(tmp_path / "two")
    assert sorted(r["input"].rsplit("/", 1)[1] for r in recs if r["type"] == "photo") == [f"p{i}.png" for i in range(3)]
    assert sorted(r["process"]["rank"] for r in recs if r["type"] == "run") == [0, 1]


def test_resume_reads_shards_a_killed_distributed_run_left(tiny_model_dir, astronaut, tmp_path, capsys):
    from authface.io.manifest import RunManifest

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"")  # placeholder output, as written before the kill
    shard = RunManifest(out, rank=1, world_size=2)
    shard.write({"type": "photo", "input": str(src / "a.png"), "status": "restored", "output": str(out / "a.png")})
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny_model_dir), *FAST]) == 0
    assert "1 already done" in capsys.readouterr().err


def test_realesrgan_background_upscale_offline(tiny_model_dir, astronaut, tmp_path):
    """--bg-upsampler realesrgan runs the real Real-ESRGAN x4plus weights (shipped in a pip package) offline."""
    pytest.importorskip("authface.models.realesrgan")
    from authface.models.realesrgan import realesrgan_model_files

    try:
        realesrgan_model_files()
    except ImportError as e:
        pytest.skip(f"{e}")  # CI installs the package (dev extra); this only guards other machines
    small = np.asarray(Image.fromarray(astronaut).resize((128, 128), Image.Resampling.BOX))  # fast on CPU
    Image.fromarray(small).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_model_dir), *FAST,
                 "--upscale", "2", "--bg-upsampler", "realesrgan"]) == 0  # fmt: skip
    assert Image.open(out / "a.png").size == (256, 256)
    lanczos = np.asarray(Image.fromarray(small).resize((256, 256), Image.Resampling.LANCZOS), np.float32)
    sharper = np.abs(np.diff(np.asarray(Image.open(out / "a.png"), np.float32), axis=1)).mean()
    assert sharper > np.abs(np.diff(lanczos, axis=1)).mean()  # a learned upscaler, not a resize
    rec = [r for r in _records(out) if r["type"] == "run"][0]
    assert rec["config"]["face"]["bg_upsampler"] == "realesrgan"
