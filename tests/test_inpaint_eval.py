"""Inpainting evaluation: `authface degrade --preset mask|old-photo|paint`, metrics inside / outside the mask, bad masks,
and benchmarks/bench_inpaint.py end to end (OpenCV baselines)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from authface import io
from authface.data.benchmark import MASK_DIR, degradation_factors, replay
from authface.data.occlusions import DAMAGE_PARAMS_VERSION, MASK_PARAMS_VERSION, PAINT_PARAMS_VERSION
from authface.eval.evaluate import evaluate
from authface.eval.fr import PSNR_CAP_DB
from authface.eval.masks import MaskError, read_mask, region_scores
from authface.eval.pairing import EvalInputError
from authface.eval.registry import MetricOptions, build_metrics

ROOT = Path(__file__).resolve().parents[1]
# dlib landmarks of skimage's astronaut (as in test_eval): eyes, nose tip, mouth corners
ASTRONAUT_LANDMARKS = np.array(
    [[203.1667, 101.5], [246.8333, 104.0], [225.0, 127.0], [201.0, 140.0], [245.0, 141.0]], dtype=np.float32
)


def _run(argv: list[str]) -> int:
    from authface.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def faces(astronaut) -> list[np.ndarray]:
    """Three 128x128 aligned faces: the astronaut, its mirror, a darker copy."""
    from authface.face import align_face

    small = cv2.resize(
        align_face(astronaut, ASTRONAUT_LANDMARKS, 512)[0], (128, 128), interpolation=cv2.INTER_AREA
    )
    darker = np.clip(small.astype(np.int16) - 30, 0, 255).astype(np.uint8)
    return [small, np.ascontiguousarray(small[:, ::-1]), darker]


@pytest.fixture(scope="module")
def hq_dir(tmp_path_factory, faces) -> Path:
    root = tmp_path_factory.mktemp("hq")
    for name, img in zip(("a", "sub/b", "sub/c"), faces):
        io.write_image(root / f"{name}.png", img)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------- degrade


@pytest.mark.parametrize("preset", ["mask", "old-photo", "paint"])
def test_degrade_occlusion_preset_writes_masks_and_replays_byte_identically(tmp_path, hq_dir, preset):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(["degrade", str(hq_dir), "-o", str(a), "--preset", preset, "--seed", "7"]) == 0
    assert (
        _run(["degrade", str(hq_dir), "-o", str(b), "--preset", preset, "--seed", "7", "--workers", "2"]) == 0
    )
    fa = _files(a)
    assert fa == _files(b)
    assert {k for k in fa if k.startswith(MASK_DIR + "/")} == {
        "mask/a.png",
        "mask/sub/b.png",
        "mask/sub/c.png",
    }
    lines = [json.loads(s) for s in (a / "metadata.jsonl").read_text().splitlines()]
    assert lines[0]["preset"] == preset and lines[0]["mask_dir"] == MASK_DIR
    versions = {"mask": MASK_PARAMS_VERSION, "old-photo": DAMAGE_PARAMS_VERSION, "paint": PAINT_PARAMS_VERSION}
    assert lines[0]["params_version"] == versions[preset]
    for rec in lines[1:]:
        hq = io.read_image(a / rec["gt"]).rgb
        lq, mask = io.read_image(a / rec["lq"]).rgb, io.read_image(a / rec["mask"]).rgb[..., 0]
        assert set(np.unique(mask)) == {0, 255} and rec["mask_area"] == pytest.approx((mask > 0).mean())
        lq2, mask2 = replay(hq, preset, rec["params"])  # replayable from the recorded params
        assert np.array_equal(lq2, lq) and np.array_equal(mask2, mask)
        if preset == "mask":  # a face mask changes nothing far from its region
            changed = (lq != hq).any(-1)
            far = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
            assert not changed[far].any() and changed[mask > 0].mean() > 0.5
            assert rec["params"]["style"] and 0 < degradation_factors(rec["params"])["face_coverage"] <= 1
        elif preset == "paint":  # flat paint inside the strokes (anti-aliased rims aside), nothing changed outside
            assert np.array_equal(lq[mask == 0], hq[mask == 0])
            flat = np.abs(lq[mask > 0].astype(int) - np.round(np.asarray(rec["params"]["color"]) * 255)).max(-1) <= 1
            assert flat.mean() > 0.5 and 0 < degradation_factors(rec["params"])["paint_area"] <= 1
        else:
            assert 0 < degradation_factors(rec["params"])["damage_area"] <= 1
    # another seed in the same folder is refused; a different preset's settings too
    assert _run(["degrade", str(hq_dir), "-o", str(a), "--preset", preset, "--seed", "8"]) == 2
    assert (
        _run(["degrade", str(hq_dir), "-o", str(tmp_path / "c"), "--preset", "gfpgan", "--set", "x=1"]) == 2
    )


def test_degrade_occlusion_settings_from_the_command_line(tmp_path, hq_dir):
    out = tmp_path / "b"
    code = _run(["degrade", str(hq_dir), "-o", str(out), "--preset", "mask", "--set", "styles=[n95]",
                 "--set", "style_weights=[1]"])  # fmt: skip
    assert code == 0
    lines = [json.loads(s) for s in (out / "metadata.jsonl").read_text().splitlines()]
    assert lines[0]["config"]["styles"] == ["n95"] and {r["params"]["style"] for r in lines[1:]} == {"n95"}
    assert (
        _run(["degrade", str(hq_dir), "-o", str(tmp_path / "c"), "--preset", "mask", "--set", "nope=1"]) == 2
    )
    paint = tmp_path / "p"  # the paint preset's PaintSettings, from --set
    assert _run(["degrade", str(hq_dir), "-o", str(paint), "--preset", "paint", "--set", "white_prob=1",
                 "--set", "stroke_count=[1, 1]"]) == 0  # fmt: skip
    lines = [json.loads(s) for s in (paint / "metadata.jsonl").read_text().splitlines()]
    assert lines[0]["config"]["white_prob"] == 1.0
    assert all(r["params"]["color"] == [1.0, 1.0, 1.0] and len(r["params"]["strokes"]) == 1 for r in lines[1:])
    assert _run(["degrade", str(hq_dir), "-o", str(tmp_path / "q"), "--preset", "paint", "--set", "styles=[n95]"]) == 2


# -------------------------------------------------------------------------------------- in-mask known answers


def _box_mask(h: int = 128, w: int = 128) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[40:90, 30:100] = True
    return m


def test_region_scores_known_answers(faces):
    gt, mask = faces[0], _box_mask()
    same = region_scores(gt, gt, mask, ("psnr", "ssim", "l1"))
    assert same["psnr"] == (PSNR_CAP_DB, PSNR_CAP_DB)
    assert same["ssim"][0] == pytest.approx(1.0) and same["ssim"][1] == pytest.approx(1.0)
    assert same["l1"] == (0.0, 0.0)
    pred = gt.astype(np.int16)
    pred[mask] = np.clip(pred[mask] + np.where(pred[mask] > 200, -10, 10), 0, 255)  # exactly 10 away inside
    pred = pred.astype(np.uint8)
    s = region_scores(pred, gt, mask, ("psnr", "ssim", "l1"))
    assert s["psnr"][1] == PSNR_CAP_DB and s["psnr"][0] == pytest.approx(20 * math.log10(255 / 10))
    assert s["l1"][0] == pytest.approx(10 / 255) and s["l1"][1] == 0.0
    assert s["ssim"][0] < 1.0 and math.isfinite(s["ssim"][0])


def test_eval_reports_inside_and_outside_the_mask(tmp_path, faces):
    gt, pred, masks = tmp_path / "gt", tmp_path / "pred", tmp_path / "masks"
    mask = _box_mask()
    for i, img in enumerate(faces):
        io.write_image(gt / f"{i}.png", img)
        changed = img.copy()
        changed[mask] = 255 - changed[mask]
        io.write_image(pred / f"{i}.png", changed if i else img)  # image 0 identical
        io.write_image(masks / f"{i}.png", np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2))
    res = evaluate({"m": pred}, gt=gt, masks=masks, metrics=["psnr", "ssim", "l1"])
    names = [c.name for c in res.columns]
    for base in ("PSNR", "SSIM", "L1"):
        assert f"{base} (mask)" in names and f"{base} (unmasked)" in names
    rows = {r["key"]: r for r in res.records}
    assert rows["0"]["PSNR (mask)"] == rows["0"]["PSNR (unmasked)"] == PSNR_CAP_DB
    assert rows["1"]["PSNR (unmasked)"] == PSNR_CAP_DB and rows["1"]["PSNR (mask)"] < 20
    assert rows["1"]["L1 (unmasked)"] == 0.0 and rows["1"]["L1 (mask)"] > 0.1
    # identity as today, next to the region metrics (and l1 joins the default metrics)
    metrics, _, unavailable = build_metrics(None, MetricOptions(), True, "the GT", have_masks=True)
    keys = [m.key for m in metrics]
    assert "identity" in keys or "IDS/Deg" in unavailable
    assert {"psnr", "psnr_region", "ssim_region", "l1", "l1_region"} <= set(keys)
    # without masks: the same columns as before, nothing more
    plain = evaluate({"m": pred}, gt=gt, metrics=["psnr"])
    assert [c.name for c in plain.columns] == ["PSNR"]


def test_benchmark_masks_are_found_automatically(tmp_path, hq_dir, capsys):
    bench = tmp_path / "bench"
    assert _run(["degrade", str(hq_dir), "-o", str(bench), "--preset", "mask"]) == 0
    res = evaluate(lq=bench / "lq", gt=bench / "gt", baselines=["lq"], metrics=["psnr", "l1"])
    assert res.settings["masks"] == str(bench / "mask")
    e = res.entry("lq")
    assert e["PSNR (unmasked)"]["mean"] == PSNR_CAP_DB and e["PSNR (mask)"]["mean"] < 30
    assert any("deg_face_coverage" in r for r in res.records)
    assert _run(["eval", "--bench", str(bench), "--baseline", "lq", "--metrics", "psnr", "--no-masks"]) == 0
    assert "(mask)" not in capsys.readouterr().out
    assert _run(["eval", "--bench", str(bench), "--baseline", "lq", "--metrics", "psnr,ssim"]) == 0
    out = capsys.readouterr().out
    assert "PSNR (mask)" in out and "SSIM (unmasked)" in out


# ------------------------------------------------------------------------------------------------ bad masks


def test_bad_masks_each_get_one_clear_error_naming_the_file(tmp_path, faces, capsys):
    gt, pred, masks = tmp_path / "gt", tmp_path / "pred", tmp_path / "masks"
    good = np.repeat(_box_mask()[..., None].astype(np.uint8) * 255, 3, axis=2)
    rng = np.random.default_rng(0)
    bad = {
        "size": (np.zeros((64, 64, 3), np.uint8) + good[::2, ::2], "is 64x64 but its image is 128x128"),
        "gray": (rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), "is not binary"),
        "empty": (np.zeros((128, 128, 3), np.uint8), "is empty"),
        "full": (np.full((128, 128, 3), 255, np.uint8), "covers the whole image"),
        "broken": (None, "cannot be read"),
    }
    for name, (m, _) in bad.items():
        io.write_image(gt / f"{name}.png", faces[0])
        io.write_image(pred / f"{name}.png", faces[1])
        if m is None:
            (masks / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        else:
            io.write_image(masks / f"{name}.png", m)
    for name, (_, why) in bad.items():
        with pytest.raises(MaskError) as e:
            read_mask(masks / f"{name}.png", (128, 128))
        assert str(masks / f"{name}.png") in str(e.value) and why in str(e.value)
    with pytest.raises(EvalInputError) as e:
        evaluate({"m": pred}, gt=gt, masks=masks, metrics=["psnr"])
    assert len(e.value.problems) == len(bad)
    for name, (_, why) in bad.items():
        hits = [p for p in e.value.problems if str(masks / f"{name}.png") in p]
        assert len(hits) == 1 and why in hits[0]
    report = tmp_path / "report"
    code = _run(["eval", "--pred", f"m={pred}", "--gt", str(gt), "--masks", str(masks), "--metrics", "psnr",
                 "-o", str(report)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and all(str(masks / f"{n}.png") in err for n in bad) and not report.exists()


def test_jpeg_like_mask_is_thresholded_with_a_warning(tmp_path, faces):
    gt, pred, masks = tmp_path / "gt", tmp_path / "pred", tmp_path / "masks"
    io.write_image(gt / "a.png", faces[0])
    io.write_image(pred / "a.png", faces[1])
    m = np.repeat(_box_mask()[..., None].astype(np.uint8) * 255, 3, axis=2)
    m[40, 30:100] = 200  # a few ringing pixels
    m[39, 30:100] = 30
    io.write_image(masks / "a.png", m)
    res = evaluate({"m": pred}, gt=gt, masks=masks, metrics=["psnr"])
    assert any("thresholded at 128" in w and str(masks / "a.png") in w for w in res.warnings)
    assert math.isfinite(res.records[0]["PSNR (mask)"])
    missing = tmp_path / "masks2"
    io.write_image(missing / "other.png", m)
    with pytest.raises(ValueError, match="no mask for 1 image"):
        evaluate({"m": pred}, gt=gt, masks=missing, metrics=["psnr"])


# --------------------------------------------------------------------------------------------- bench_inpaint


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_inpaint", ROOT / "benchmarks" / "bench_inpaint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_inpaint_end_to_end(tmp_path, hq_dir, capsys, monkeypatch):
    bench = _bench_module()
    available, note = bench.authface_inpaint_available()  # the real check: `authface restore --help`
    assert isinstance(available, bool) and (available or note == bench.NOT_AVAILABLE)
    monkeypatch.setattr(bench, "authface_inpaint_available", lambda: (False, bench.NOT_AVAILABLE))
    gal = tmp_path / "masked"
    io.write_image(gal / "images" / "x.png", io.read_image(hq_dir / "a.png").rgb)
    io.write_image(
        gal / "masks" / "x.png", np.repeat(_box_mask()[..., None].astype(np.uint8) * 255, 3, axis=2)
    )
    work = tmp_path / "work"
    code = bench.main([str(hq_dir), "--limit", "2", "--work", str(work), "--gallery-dirs", str(gal)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| OpenCV Telea | 2 |" in out and "| OpenCV Navier-Stokes | 2 |" in out
    assert "AuthFace: not available (restore --mask not implemented yet)" in out
    assert "Command: `python benchmarks/bench_inpaint.py" in out and "PSNR (mask)" in out
    telea = next(line for line in out.splitlines() if line.startswith("| OpenCV Telea"))
    cells = [c.strip() for c in telea.strip("|").split("|")]
    assert float(cells[2]) < PSNR_CAP_DB and float(cells[5]) == PSNR_CAP_DB  # in mask: changed; outside: kept
    assert (work / "gallery" / f"{tmp_path.name}_masked.png").is_file()


def test_lpips_inside_and_outside_the_mask(faces):
    import torch

    from authface.eval.lpips import LPIPSNet

    torch.manual_seed(0)
    net = LPIPSNet("alex")
    for lin in net.lins:
        lin.weight.data.abs_()
    gt, mask = faces[0], _box_mask()
    assert region_scores(gt, gt, mask, ("lpips",), lpips_model=net)["lpips"] == (0.0, 0.0)
    pred = gt.copy()
    pred[mask] = 255 - pred[mask]
    inside, outside = region_scores(pred, gt, mask, ("lpips",), lpips_model=net)["lpips"]
    assert inside > outside >= 0  # receptive fields reach a little past the mask edge
    spatial = net(
        *(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (pred, gt)), spatial=True
    )
    assert spatial.shape == (1, 128, 128)
