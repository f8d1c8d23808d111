"""``authface prepare``: a dataset from a folder built in code around scikit-image's astronaut (one real face).

The dlib detector is loaded once per module (it takes seconds) and handed to every run through
``authface.face.create_detector``; crops are 256 px to keep the runs fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io as _io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from authface import io
from authface.cli import prepare as cli_prepare
from authface.data import dedupe, manifest
from authface.data import prepare as prep
from authface.face import face_template

CROP = 256
ASTRONAUT_ID = "astronaut_png_f0"
FLIPPED_ID = "sub__flipped_jpg_f0"


def _rotate(img: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def _side_lit(img: np.ndarray) -> np.ndarray:
    """A different photo of the same face: light falling off towards the image right (pHash distance ~12)."""
    ramp = np.clip((np.arange(img.shape[1]) - 180) / 90.0, 0.0, 1.0)
    return (img.astype(np.float32) * (1.0 - 0.65 * ramp)[None, :, None]).astype(np.uint8)


def _save(path: Path, rgb: np.ndarray, **kw) -> None:
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, **kw)


def _run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="authface")
    cli_prepare.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prepare", *argv])
    err = _io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = args.func(args)
    return rc, err.getvalue()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def detector():
    from authface.face import create_detector

    return create_detector("dlib")


@pytest.fixture()
def shared_detector(monkeypatch, detector):
    import authface.face

    calls = []

    def create(name, model_path=None, **kw):
        calls.append(name)
        return detector

    monkeypatch.setattr(authface.face, "create_detector", create)
    return calls


@pytest.fixture(scope="module")
def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory, astronaut_rgb) -> Path:
    from skimage import data

    a = astronaut_rgb
    src = tmp_path_factory.mktemp("photos")
    (src / "sub").mkdir()
    _save(src / "astronaut.png", a)  # kept
    shutil.copyfile(src / "astronaut.png", src / "sub" / "astronaut_copy.png")  # exact duplicate
    _save(src / "sub" / "flipped.jpg", a[:, ::-1], quality=95)  # mirrored: a different crop, kept
    _save(src / "rotated.jpg", _rotate(a, 5, 1.05), quality=92)  # near-duplicate once aligned
    _save(src / "brighter.png", np.clip(a * 1.2 + 15, 0, 255).astype(np.uint8))  # near-duplicate
    _save(src / "coffee.jpg", data.coffee(), quality=90)  # no face
    _save(src / "tiny.png", cv2.resize(a, (240, 240), interpolation=cv2.INTER_AREA))  # face ~44 px < 64
    buf = _io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90)
    (src / "corrupt.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])  # truncated
    (src / "notes.jpg").write_text("this is not an image\n")
    return src


@pytest.fixture(scope="module")
def captions_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("captions") / "captions.csv"
    path.write_text("file,text\nastronaut.png,an astronaut in a white suit\nflipped.jpg,a mirrored astronaut\n")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, source_dir, captions_csv, detector):
    """First run over the source folder (the module's detector is reused)."""
    import authface.face

    ds = tmp_path_factory.mktemp("out") / "dataset"
    mp = pytest.MonkeyPatch()
    mp.setattr(authface.face, "create_detector", lambda *a, **k: detector)
    try:
        rc, err = _run([str(source_dir), "-o", str(ds), "--crop-size", str(CROP), "--caption-template",
                        "a photo of a face", "--captions", str(captions_csv)])  # fmt: skip
    finally:
        mp.undo()
    return ds, rc, err


# ------------------------------------------------------------------------------------------------ first run


def test_first_run_exit_code_and_report_lines(prepared, source_dir):
    ds, rc, err = prepared
    assert rc == 0, err  # rejections are not failures
    for name in ("corrupt.jpg", "notes.jpg", "coffee.jpg", "tiny.png", "astronaut_copy.png"):
        assert sum(name in line for line in err.splitlines()) == 1, (name, err)
    assert "2 face(s) kept" in err and "2 unreadable, 1 no_face, 1 too_small, 3 duplicate" in err
    assert (ds / manifest.CONFIG_NAME).is_file()


def test_manifest_records(prepared):
    ds, _, _ = prepared
    records = prep.read_manifest(ds)
    assert [r["id"] for r in records] == [ASTRONAUT_ID, FLIPPED_ID]
    template = face_template(CROP)
    for r in records:
        assert set(manifest.MANIFEST_KEYS) <= set(r)
        assert r["file"] == f"faces/{r['id']}.png" and Path(r["path"]).is_file()
        with Image.open(r["path"]) as im:
            assert im.format == "PNG" and im.size == (CROP, CROP) and im.mode == "RGB"
        assert Path(r["source"]).is_absolute() and r["crop_size"] == CROP and r["face_index"] == 0
        lm = np.asarray(r["landmarks"])
        assert lm.shape == (5, 2)
        assert np.abs(lm - template).max() < 0.05 * CROP  # the detected points land near the template ...
        assert np.abs(lm - template).max() > 0.1  # ... but are not the template itself
        src_lm = np.asarray(r["source_landmarks"])
        affine = np.asarray(r["affine"])
        np.testing.assert_allclose(src_lm @ affine[:, :2].T + affine[:, 2], lm, atol=0.02)
        for name, point in (("left_eye", 0), ("right_eye", 1), ("nose", 2), ("mouth", 3), ("mouth", 4)):
            x1, y1, x2, y2 = r["regions"][name]
            assert x1 <= lm[point, 0] <= x2 and y1 <= lm[point, 1] <= y2, (name, r["regions"][name], lm[point])
        assert set(r["quality"]) == {"sharpness"}
        assert 0.0 <= r["quality"]["sharpness"]["score"] <= 1.0
        assert r["quality_score"] == r["quality"]["sharpness"]["score"]
        assert isinstance(r["quality"]["sharpness"]["raw"], float)
        assert len(r["phash"]) == 16 and int(r["phash"], 16) >= 0
        assert r["box"][2] - r["box"][0] > 64
    by_id = {r["id"]: r for r in records}
    assert by_id[ASTRONAUT_ID]["source_rel"] == "astronaut.png"
    assert by_id[ASTRONAUT_ID]["caption"] == "an astronaut in a white suit"  # CSV, path relative to SRC
    assert by_id[FLIPPED_ID]["source_rel"] == "sub/flipped.jpg"
    assert by_id[FLIPPED_ID]["caption"] == "a mirrored astronaut"  # CSV, by basename


def test_rejected_reasons(prepared, source_dir):
    ds, _, _ = prepared
    rejected = _jsonl(ds / manifest.REJECTED_NAME)
    reasons = {r["source_rel"]: r["reason"] for r in rejected}
    assert reasons == {
        "corrupt.jpg": "unreadable",
        "notes.jpg": "unreadable",
        "coffee.jpg": "no_face",
        "tiny.png": "too_small",
        "sub/astronaut_copy.png": "duplicate",
        "rotated.jpg": "duplicate",
        "brighter.png": "duplicate",
    }
    by = {r["source_rel"]: r for r in rejected}
    assert by["sub/astronaut_copy.png"]["duplicate_of"] == ASTRONAUT_ID and by["sub/astronaut_copy.png"]["distance"] == 0
    assert by["rotated.jpg"]["duplicate_of"] == ASTRONAUT_ID and 0 < by["rotated.jpg"]["distance"] <= 6
    assert by["tiny.png"]["face_size"] < 64 and "min-face-size" in by["tiny.png"]["detail"]
    assert "truncated" in by["corrupt.jpg"]["detail"]
    for r in rejected:
        assert r["source"] == str(source_dir / r["source_rel"]) and r["detail"]


def test_dataset_card_and_histogram(prepared):
    ds, _, _ = prepared
    card = (ds / manifest.CARD_NAME).read_text()
    assert "**2 faces** kept" in card
    for reason, n in (("unreadable", 2), ("no_face", 1), ("too_small", 1), ("duplicate", 3)):
        assert f"| {reason} | {n} |" in card
    assert "| sharpness | score |" in card and manifest.HIST_NAME in card and '"crop_size": 256' in card
    with Image.open(ds / manifest.HIST_NAME) as im:
        assert im.format == "PNG" and im.size[0] >= 320
    config = json.loads((ds / manifest.CONFIG_NAME).read_text())
    assert config["crop_size"] == CROP and config["primary_quality"] == "sharpness" and len(config["runs"]) == 1


def test_rerun_adds_nothing_then_only_new_photos(prepared, source_dir, astronaut_rgb, tmp_path, shared_detector):
    ds0, _, _ = prepared
    ds = tmp_path / "dataset"
    shutil.copytree(ds0, ds)
    src = tmp_path / "photos"
    shutil.copytree(source_dir, src)
    # the sources are the same files: point the copied records at the copied folder
    for name in (manifest.MANIFEST_NAME, manifest.REJECTED_NAME):
        text = (ds / name).read_text().replace(json.dumps(str(source_dir))[1:-1], json.dumps(str(src))[1:-1])
        (ds / name).write_text(text)
    before = {n: (ds / n).read_bytes() for n in (manifest.MANIFEST_NAME, manifest.REJECTED_NAME)}

    rc, err = _run([str(src), "-o", str(ds), "--crop-size", str(CROP)])
    assert rc == 0, err
    assert "0 processed, 9 already in the dataset" in err
    assert shared_detector == []  # nothing new: the detector is not even built
    assert {n: (ds / n).read_bytes() for n in before} == before
    assert len(json.loads((ds / manifest.CONFIG_NAME).read_text())["runs"]) == 2

    _save(src / "side_lit.png", _side_lit(astronaut_rgb))  # a new photo of a new-looking face: kept
    _save(src / "blurred.png", cv2.GaussianBlur(astronaut_rgb, (0, 0), 1.5))  # near-duplicate of a kept face
    rc, err = _run([str(src), "-o", str(ds), "--crop-size", str(CROP), "--caption-template", "a photo of a face"])
    assert rc == 0, err
    assert "2 processed, 9 already in the dataset" in err
    kept, rejected = _jsonl(ds / manifest.MANIFEST_NAME), _jsonl(ds / manifest.REJECTED_NAME)
    assert [r["id"] for r in kept] == [ASTRONAUT_ID, FLIPPED_ID, "side_lit_png_f0"]
    assert kept[-1]["caption"] == "a photo of a face"
    assert len(rejected) == 8
    assert rejected[-1]["source_rel"] == "blurred.png" and rejected[-1]["reason"] == "duplicate"
    assert rejected[-1]["duplicate_of"] == ASTRONAUT_ID  # deduplicated against the earlier run's faces
    assert len(prep.read_manifest(ds)) == 3
    assert "**3 faces** kept" in (ds / manifest.CARD_NAME).read_text()


# ------------------------------------------------------------------------------------------------ usage errors


def test_usage_errors_exit_2(tmp_path, prepared, source_dir):
    ds, _, _ = prepared
    rc, err = _run([str(tmp_path / "missing"), "-o", str(tmp_path / "ds")])
    assert rc == 2 and "no such file or folder" in err
    rc, err = _run([str(source_dir), "-o", str(ds), "--crop-size", "512"])  # dataset holds 256 px crops
    assert rc == 2 and "--crop-size 256" in err
    rc, err = _run([str(source_dir), "-o", str(tmp_path / "ds2"), "--captions", str(tmp_path / "nope.csv")])
    assert rc == 2 and "nope.csv" in err
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file,caption\na.png,x\n")
    rc, err = _run([str(source_dir), "-o", str(tmp_path / "ds3"), "--captions", str(bad_csv)])
    assert rc == 2 and "--caption-column" in err
    rc, err = _run([str(source_dir), "-o", str(tmp_path / "ds4"), "--quality", "sharpness,sharpness"])
    assert rc == 2 and "twice" in err
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(_io.StringIO()):
        _run([str(source_dir), "-o", str(tmp_path / "ds5"), "--crop-size", "big"])
    assert exc.value.code == 2


# ------------------------------------------------------------------------------------------------ read_manifest


def _record(file: str, **kw) -> dict:
    template = face_template(CROP).tolist()
    rec = {"id": Path(file).stem, "file": file, "source": "/photos/a.jpg", "source_rel": "a.jpg", "face_index": 0,
           "crop_size": CROP, "box": [0, 0, 10, 10], "landmarks": template, "regions": {},
           "quality": {"sharpness": {"raw": -6.0, "score": 0.5}}, "quality_score": 0.5, "phash": "0" * 16,
           "caption": None, "created": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    rec.update(kw)
    return rec


def test_read_manifest_reports_every_bad_record_with_its_line(tmp_path):
    ds = tmp_path / "ds"
    (ds / "faces").mkdir(parents=True)
    Image.new("RGB", (CROP, CROP)).save(ds / "faces" / "good.png")
    Image.new("RGB", (CROP, CROP)).save(ds / "faces" / "high.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")  # exists, but outside the dataset
    lines = [
        _record("faces/good.png"),  # 1
        _record("faces/missing.png"),  # 2
        _record("../x.png"),  # 3
        _record("faces/high.png", quality_score=1.5),  # 4
    ]
    (ds / manifest.MANIFEST_NAME).write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(prep.ManifestError) as exc:
        prep.read_manifest(ds)
    problems = dict(exc.value.problems)
    assert sorted(problems) == [2, 3, 4]
    assert "does not exist" in problems[2] and "fix" in problems[2]
    assert "outside the dataset root" in problems[3]
    assert "quality_score 1.5" in problems[4] and "[0, 1]" in problems[4]
    msg = str(exc.value)
    for n in (2, 3, 4):
        assert f"{manifest.MANIFEST_NAME}:{n}:" in msg

    good = _record("faces/good.png")
    del good["phash"]
    (ds / manifest.MANIFEST_NAME).write_text(json.dumps(good) + "\n{truncated\n")
    with pytest.raises(prep.ManifestError) as exc:
        prep.read_manifest(ds)
    problems = dict(exc.value.problems)
    assert "phash" in problems[1] and "not valid JSON" in problems[2]

    (ds / manifest.MANIFEST_NAME).write_text(json.dumps(_record("faces/good.png")) + "\n")
    (records,) = [prep.read_manifest(ds)]
    assert len(records) == 1 and records[0]["path"] == str((ds / "faces" / "good.png").resolve())


# ------------------------------------------------------------------------------------------------ helpers


def test_face_id_is_filesystem_safe_and_deterministic():
    assert manifest.face_id("sub/IMG 1.jpg", 0) == "sub__IMG_1_jpg_f0"
    fid = manifest.face_id("../../etc/passwd", 2)
    assert "/" not in fid and ".." not in fid and not fid.startswith(".")
    long = manifest.face_id("a" * 300 + ".png", 1)
    assert len(long) < 110 and long == manifest.face_id("a" * 300 + ".png", 1)
    assert long != manifest.face_id("a" * 299 + "b.png", 1)


def test_hamming_distances_and_phash(astronaut_rgb):
    hashes = np.array([0, 0xFF, 2**64 - 1], dtype=np.uint64)
    assert dedupe.hamming_distances(hashes, 0).tolist() == [0, 8, 64]
    h1 = dedupe.phash(astronaut_rgb)
    h2 = dedupe.phash(np.clip(astronaut_rgb.astype(int) + 10, 0, 255).astype(np.uint8))
    h3 = dedupe.phash(astronaut_rgb[:, ::-1])
    d = dedupe.hamming_distances(np.array([int(h1, 16)], dtype=np.uint64), int(h2, 16))[0]
    assert d <= 4
    assert dedupe.hamming_distances(np.array([int(h1, 16)], dtype=np.uint64), int(h3, 16))[0] > 12


def test_repair_tail_drops_a_partial_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"b": ')
    io.repair_jsonl_tail(path)
    assert path.read_text() == '{"a": 1}\n'
    path.write_text('{"a": 1}\n{"b": 2}')  # complete, only its newline missing (an editor): kept
    io.repair_jsonl_tail(path)
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'


def test_settings_are_a_config_of_the_config_mechanism(tmp_path):
    from authface.config import ConfigError, load_config

    settings = load_config(prep.PrepareSettings, None, ["crop_size=256", "detector=yunet", "quality=sharpness,niqe"])
    assert (settings.crop_size, settings.detector, settings.quality) == (256, "yunet", ["sharpness", "niqe"])
    with pytest.raises(ConfigError, match="dlib-mmod"):  # a Literal choice, with a suggestion
        load_config(prep.PrepareSettings, None, ["detector=dlib-mod"])
    with pytest.raises(prep.PrepareError, match="--crop-size"):  # validate(): a range check, naming the option
        load_config(prep.PrepareSettings, None, ["crop_size=32"])
    with pytest.raises(prep.PrepareError, match="--detector"):
        prep.PrepareSettings(detector="dlib-hog").validate()


def test_usage_error_for_an_unknown_detector_exits_2(tmp_path, source_dir):
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(_io.StringIO()):
        _run([str(source_dir), "-o", str(tmp_path / "ds"), "--detector", "hog"])
    assert exc.value.code == 2


def test_aligned_inputs_skip_detection(tmp_path, astronaut_rgb):
    """FFHQ-style aligned crops: --aligned takes each image as one face (no detector is even built)."""
    import json

    src = tmp_path / "crops"
    src.mkdir()
    Image.fromarray(np.ascontiguousarray(astronaut_rgb[20:260, 110:350])).save(src / "a.png")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8) + 128).save(src / "flat.png")  # no face to detect at all
    rc, err = _run([str(src), "-o", str(tmp_path / "ds"), "--aligned", "--crop-size", "64",
                  "--min-face-size", "0", "--dedupe-threshold", "-1"])  # fmt: skip
    assert rc == 0, err
    recs = [json.loads(line) for line in (tmp_path / "ds" / "manifest.jsonl").read_text().splitlines()]
    assert len(recs) == 2
