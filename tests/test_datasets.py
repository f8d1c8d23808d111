"""The dataset recipes in ``datasets/`` on tiny fake sources (a few crops of ``skimage.data.astronaut()`` laid out and
named like the real sets): each recipe in ``--dry-run`` (writes nothing), in a real run (``--limit``) and on a
wrong source folder (a clear ``SourceError``, exit 2). The scripts run as subprocesses with this Python."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"
RECIPES = ("ffhq.py", "celeba_hq.py", "celeba_test.py", "real_world.py")


def _face(i: int, size: int) -> np.ndarray:
    """A distinct face image (a shifted, maybe mirrored, channel-rolled crop of the astronaut), size x size."""
    import cv2
    from skimage import data

    y, x = [(0, 100), (10, 130), (20, 90), (5, 115)][i % 4]
    crop = data.astronaut()[y : y + 260, x : x + 260]
    crop = np.roll(crop[:, ::-1] if i % 2 else crop, i, axis=2)
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_CUBIC)


def _save(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95)
    return path


def _run(script: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, str(DATASETS / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)  # fmt: skip


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    """Fake sources: FFHQ (512 version, 3 images), CelebA-HQ (1024 JPEG, indices 0, 1, 27000-27002), WebPhoto-Test
    (3 crops), a folder of test sets (LFW-Test with a broken file, WIDER-Test) and a folder of odd-sized photos."""
    root = tmp_path_factory.mktemp("sources")
    for i in range(3):
        _save(root / "ffhq" / "images1024x1024" / "00000" / f"{i:05d}.png", _face(i, 512))
    (root / "ffhq" / "images1024x1024" / "LICENSE.txt").write_text("licence\n")
    for n, idx in enumerate((0, 1, 27000, 27001, 27002)):
        _save(root / "CelebAMask-HQ" / "CelebA-HQ-img" / f"{idx}.jpg", _face(n, 1024))
    for i in range(3):
        _save(root / "WebPhoto-Test" / f"{i:05d}_00.jpg", _face(i, 512))
        _save(root / "test_sets" / "WIDER-Test" / f"{i}.png", _face(i + 1, 512))
    for i in range(2):
        _save(root / "test_sets" / "LFW-Test" / f"Person_{i}_0001_00.png", _face(i + 2, 512))
    (root / "test_sets" / "LFW-Test" / "Broken_0001_00.png").write_bytes(b"not a png")
    for i in range(2):
        _save(root / "holiday" / f"IMG_{i}.jpg", _face(i, 512)[:300])
    return root


def test_recipes_are_scripts_with_cards_and_a_readme_row():
    assert not (DATASETS / "__init__.py").exists()  # it would shadow Hugging Face `datasets`
    readme = (DATASETS / "README.md").read_text()
    for script in RECIPES:
        assert f"`{script}`" in readme
    for card in (
        "ffhq",
        "celeba_hq",
        "celeba_test",
        "lfw_test",
        "webphoto_test",
        "wider_test",
        "celebchild_test",
    ):
        text = (DATASETS / "cards" / f"{card}.md").read_text()
        assert "Licence" in text and "Checksums" in text and "Source" in text


def test_ffhq_dry_run_then_build(fake, tmp_path):
    src, out = fake / "ffhq" / "images1024x1024", tmp_path / "ffhq_set"
    dry = _run("ffhq.py", src, "-o", out, "--dry-run", "--allow-partial", "--limit", "2")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stderr and "authface prepare" in dry.stderr
    assert "--aligned" in dry.stderr or "--max-faces 1" in dry.stderr  # aligned sets skip detection
    assert not out.exists()
    res = _run("ffhq.py", src, "-o", out, "--allow-partial", "--limit", "2")
    assert res.returncode == 0, res.stderr
    faces = _jsonl(out / "manifest.jsonl")
    assert 1 <= len(faces) <= 2 and {f["source_rel"] for f in faces} <= {"00000.png", "00001.png"}
    assert all(f["crop_size"] == 512 for f in faces)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["set"] == "FFHQ" and recipe["images"] == 2 and recipe["prepare_exit"] == 0


def test_ffhq_refuses_a_partial_or_wrong_source(fake, tmp_path):
    res = _run("ffhq.py", fake / "ffhq" / "images1024x1024", "-o", tmp_path / "o", "--dry-run")
    assert res.returncode == 2
    assert "SourceError" in res.stderr and "3 of the 70000" in res.stderr and "--allow-partial" in res.stderr
    res = _run("ffhq.py", fake / "WebPhoto-Test", "-o", tmp_path / "o", "--allow-partial")
    assert res.returncode == 2 and "does not look like FFHQ" in res.stderr
    assert "github.com/NVlabs/ffhq-dataset" in res.stderr
    res = _run("ffhq.py", tmp_path / "missing", "-o", tmp_path / "o")
    assert res.returncode == 2 and "is not a folder" in res.stderr
    assert not (tmp_path / "o").exists()


def test_ffhq_checks_the_published_md5s(tmp_path):
    src = tmp_path / "images1024x1024"
    files = [_save(src / "00000" / f"{i:05d}.png", _face(i, 1024)) for i in range(2)]
    table = {}
    for i, path in enumerate(files):
        md5 = hashlib.md5(path.read_bytes()).hexdigest() if i == 0 else "0" * 32
        table[str(i)] = {"image": {"file_path": f"images1024x1024/00000/{path.name}",
                                   "file_size": path.stat().st_size, "file_md5": md5}}  # fmt: skip
    meta = tmp_path / "ffhq-dataset-v2.json"
    meta.write_text(json.dumps(table))
    res = _run("ffhq.py", src, "-o", tmp_path / "o", "--allow-partial", "--metadata", meta, "--dry-run")
    assert res.returncode == 1, res.stderr
    assert "1 of 2 file(s) match" in res.stderr and "FAILED" in res.stderr and "00001.png" in res.stderr
    bad = tmp_path / "not.json"
    bad.write_text("[]")
    res = _run("ffhq.py", src, "-o", tmp_path / "o", "--allow-partial", "--metadata", bad, "--dry-run")
    assert res.returncode == 2 and "not FFHQ's ffhq-dataset-v2.json" in res.stderr


def test_celeba_hq_dry_run_then_build_without_the_test_split(fake, tmp_path):
    src, out = fake / "CelebAMask-HQ", tmp_path / "chq"
    dry = _run("celeba_hq.py", src, "-o", out, "--allow-partial", "--exclude-celeba-test", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "3 image(s) of indices 27000-29999 left out" in dry.stderr and not out.exists()
    res = _run("celeba_hq.py", src, "-o", out, "--allow-partial", "--exclude-celeba-test")
    assert res.returncode == 0, res.stderr
    faces = _jsonl(out / "manifest.jsonl")
    assert faces and {f["source_rel"] for f in faces} <= {"0.jpg", "1.jpg"}
    assert json.loads((out / "recipe.json").read_text())["set"] == "CelebA-HQ"


def test_celeba_hq_refuses_another_numbered_set(fake, tmp_path):
    ffhq_like = tmp_path / "numbered"
    _save(ffhq_like / "45000.png", _face(0, 512))
    res = _run("celeba_hq.py", ffhq_like, "-o", tmp_path / "o", "--allow-partial", "--dry-run")
    assert res.returncode == 2 and "past the set's last, 29999" in res.stderr


def test_celeba_test_dry_run_then_a_reproducible_benchmark(fake, tmp_path):
    from PIL import Image

    src, out = fake / "CelebAMask-HQ" / "CelebA-HQ-img", tmp_path / "celeba_test"
    dry = _run("celeba_test.py", src, "-o", out, "--limit", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "authface degrade" in dry.stderr and "--preset gfpgan --seed 0" in dry.stderr and not out.exists()
    res = _run("celeba_test.py", src, "-o", out, "--limit", "2")
    assert res.returncode == 0, res.stderr
    lines = _jsonl(out / "bench" / "metadata.jsonl")
    header, images = lines[0], lines[1:]
    assert header["type"] == "benchmark" and header["preset"] == "gfpgan" and header["seed"] == 0
    assert [r["rel"] for r in images] == ["27000.png", "27001.png"]
    for r in images:
        with Image.open(out / "bench" / r["lq"]) as lq, Image.open(out / "bench" / r["gt"]) as gt:
            assert lq.size == gt.size == (512, 512)
    assert (out / "file_list.txt").read_text().split() == [str(i) for i in range(27000, 30000)]
    manifest = _jsonl(out / "manifest.jsonl")
    assert manifest[0]["type"] == "celeba_test" and manifest[0]["pairs"] == 2
    assert manifest[1]["celebahq_index"] == 27000 and manifest[1]["source"].endswith("27000.jpg")
    again = _run("celeba_test.py", src, "-o", tmp_path / "again", "--limit", "2")
    assert again.returncode == 0, again.stderr
    assert [r["lq_sha256"] for r in _jsonl(tmp_path / "again" / "bench" / "metadata.jsonl")[1:]] == [
        r["lq_sha256"] for r in images
    ]


def test_celeba_test_names_missing_files_and_wrong_folders(fake, tmp_path):
    src = fake / "CelebAMask-HQ"
    res = _run("celeba_test.py", src, "-o", tmp_path / "o", "--limit", "4", "--dry-run")
    assert res.returncode == 2 and "lacks 1 of the 4" in res.stderr and "27003" in res.stderr
    res = _run("celeba_test.py", fake / "WebPhoto-Test", "-o", tmp_path / "o")
    assert res.returncode == 2 and "does not look like CelebA-HQ" in res.stderr
    lst = tmp_path / "list.txt"
    lst.write_text("# two faces\n27001.jpg\n27000\n")
    res = _run("celeba_test.py", src, "-o", tmp_path / "o", "--file-list", lst, "--dry-run")
    assert res.returncode == 0 and "2 entries" in res.stderr and "this list has 2" in res.stderr
    lst.write_text("cat.jpg\n")
    res = _run("celeba_test.py", src, "-o", tmp_path / "o", "--file-list", lst, "--dry-run")
    assert res.returncode == 2 and "not a CelebA-HQ index" in res.stderr
    assert not (tmp_path / "o").exists()


def test_real_world_dry_run_then_an_eval_folder(fake, tmp_path):
    src, out = fake / "WebPhoto-Test", tmp_path / "real"
    dry = _run("real_world.py", src, "-o", out, "--allow-partial", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "WebPhoto-Test" in dry.stderr and "3 of 407" in dry.stderr and not out.exists()
    res = _run("real_world.py", src, "-o", out, "--allow-partial", "--limit", "2")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (out / "webphoto" / "lq").iterdir()) == ["00000_00.jpg", "00001_00.jpg"]
    manifest = _jsonl(out / "webphoto" / "manifest.jsonl")
    assert (
        manifest[0]["set"] == "WebPhoto-Test"
        and manifest[0]["images"] == 2
        and manifest[0]["expected"] == 407
    )
    rec = manifest[1]
    assert rec["size"] == [512, 512]
    assert rec["sha256"] == hashlib.sha256((out / "webphoto" / rec["file"]).read_bytes()).hexdigest()
    assert (out / "webphoto" / "recipe.json").is_file()


def test_real_world_parent_folder_names_broken_files(fake, tmp_path):
    out = tmp_path / "real"
    res = _run("real_world.py", fake / "test_sets", "-o", out, "--allow-partial", "--link", "symlink")
    assert res.returncode == 1, res.stderr
    assert "FAILED" in res.stderr and "Broken_0001_00.png" in res.stderr
    assert len(list((out / "lfw" / "lq").iterdir())) == 2 and len(list((out / "wider" / "lq").iterdir())) == 3
    assert (out / "wider" / "lq" / "0.png").is_symlink()


def test_real_world_refuses_folders_that_are_not_a_set(fake, tmp_path):
    res = _run("real_world.py", fake / "holiday", "-o", tmp_path / "o", "--allow-partial")
    assert res.returncode == 2 and "cannot tell which test set" in res.stderr and "--set" in res.stderr
    res = _run("real_world.py", fake / "holiday", "-o", tmp_path / "o", "--allow-partial", "--set", "wider")
    assert res.returncode == 2 and "no image is 512x512" in res.stderr and "WIDER-Test" in res.stderr
    res = _run("real_world.py", fake / "WebPhoto-Test", "-o", tmp_path / "o")
    assert res.returncode == 2 and "3 of the 407 images of WebPhoto-Test" in res.stderr
    assert not (tmp_path / "o").exists()
