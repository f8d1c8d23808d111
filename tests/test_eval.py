"""Evaluation: metrics with known answers, backend agreement, `authface degrade` determinism, folder pairing
errors, reports. Images are made in code from ``skimage.data.astronaut()``; weights are random and built here."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap

import cv2
import numpy as np
import pytest

from authface import io
from authface.cli import degrade as degrade_cli
from authface.cli import evaluate as eval_cli
from authface.data.benchmark import build_benchmark, degradation_factors
from authface.eval.baselines import make_baseline
from authface.eval.common import have_module
from authface.eval.evaluate import evaluate
from authface.eval.face_metrics import IdentityMetric, LandmarkMetric, landmark_distance
from authface.eval.fid import frechet_distance, kernel_inception_distance
from authface.eval.fr import PSNR_CAP_DB, psnr, ssim
from authface.eval.lpips import LPIPSNet, load_lpips
from authface.eval.nr import ntire2025_score
from authface.eval.pairing import EvalInputError, PairingError, pair_folders
from authface.eval.registry import MetricOptions, build_metrics
from authface.eval.report import write_report
from authface.imaging import rgb_to_y

# dlib's HOG detector + 68-point predictor on skimage's astronaut (DlibDetector, upsample 0), hard-coded so the
# tests do not pay for detection: image-left eye, image-right eye, nose tip, mouth corners.
ASTRONAUT_LANDMARKS = np.array(
    [[203.1667, 101.5], [246.8333, 104.0], [225.0, 127.0], [201.0, 140.0], [245.0, 141.0]], dtype=np.float32
)


@pytest.fixture(scope="module")
def face512(astronaut) -> np.ndarray:
    """The astronaut's face aligned to the FFHQ template: uint8 RGB (512, 512, 3)."""
    from authface.face import align_face

    return align_face(astronaut, ASTRONAUT_LANDMARKS, 512)[0]


@pytest.fixture(scope="module")
def faces128(face512) -> list[np.ndarray]:
    """Three different 128x128 aligned 'faces' (the crop, its mirror, a darker copy)."""
    small = cv2.resize(face512, (128, 128), interpolation=cv2.INTER_AREA)
    darker = np.clip(small.astype(np.int16) - 30, 0, 255).astype(np.uint8)
    return [small, np.ascontiguousarray(small[:, ::-1]), darker]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="authface")
    sub = p.add_subparsers(dest="command", required=True)
    degrade_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    return p


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def _write_set(folder, images, names, ext=".png"):
    for img, name in zip(images, names):
        io.write_image(folder / f"{name}{ext}", img)


def _bsr_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR's _ssim (cv2 11x11 Gaussian, valid area), averaged over channels: the reference answer."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    w = np.outer(k, k.T)
    out = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        f = lambda z: cv2.filter2D(z, -1, w)[5:-5, 5:-5]  # noqa: E731
        mx, my = f(x), f(y)
        sx, sy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        out.append((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sx + sy + c2))).mean())
    return float(np.mean(out))


# ----------------------------------------------------------------------------------------------- PSNR / SSIM


@pytest.mark.parametrize("backend", ["torchmetrics", "skimage"])
def test_identical_images_psnr_capped_ssim_one(backend, astronaut):
    pytest.importorskip(backend)
    x = astronaut[:96, :96]
    assert psnr(x, x, backend=backend)[0] == PSNR_CAP_DB
    assert psnr(x, x, backend=backend, cap=None)[0] == np.inf
    assert ssim(x, x, backend=backend)[0] == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, x, backend=backend, y_channel=True)[0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("sigma", [5.0, 10.0, 20.0])
def test_psnr_of_known_gaussian_noise(sigma, astronaut):
    mid = (
        (40 + astronaut[:128, 200:328].astype(np.float64) * (175 / 255)).round().astype(np.uint8)
    )  # no clipping
    noise = np.random.default_rng(0).normal(0.0, sigma, mid.shape)
    noisy = np.clip(np.round(mid + noise), 0, 255).astype(np.uint8)
    expected = 20 * np.log10(255 / sigma)
    for backend in [b for b in ("torchmetrics", "skimage") if have_module(b)]:
        assert abs(psnr(noisy, mid, backend=backend)[0] - expected) < 0.2


def test_backends_agree_with_each_other_and_basicsr(astronaut):
    pytest.importorskip("torchmetrics")
    pytest.importorskip("skimage")
    ref = astronaut[100:196, 150:246]
    rng = np.random.default_rng(1)
    noisy = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(ref, (0, 0), 1.5)
    batch_p, batch_t = np.stack([noisy, blurred]), np.stack([ref, ref])
    for y in (False, True):
        for border in (0, 4):
            p_tm = psnr(batch_p, batch_t, y_channel=y, crop_border=border, backend="torchmetrics")
            p_sk = psnr(batch_p, batch_t, y_channel=y, crop_border=border, backend="skimage")
            np.testing.assert_allclose(p_tm, p_sk, atol=1e-9)
            s_tm = ssim(batch_p, batch_t, y_channel=y, crop_border=border, backend="torchmetrics")
            s_sk = ssim(batch_p, batch_t, y_channel=y, crop_border=border, backend="skimage")
            np.testing.assert_allclose(s_tm, s_sk, atol=1e-4)
    # SSIM known answer: BasicSR's cv2 implementation (valid area, channel mean)
    assert ssim(noisy, ref, backend="skimage")[0] == pytest.approx(_bsr_ssim(noisy, ref), abs=1e-9)
    # PSNR known answer: 10 log10(255^2 / MSE)
    mse = np.mean((noisy.astype(np.float64) - ref) ** 2)
    assert psnr(noisy, ref)[0] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    # BasicSR's Y: 16 for black, 235 for white
    np.testing.assert_allclose(rgb_to_y(np.array([[0, 0, 0], [255, 255, 255]])), [16.0, 235.0])


# ----------------------------------------------------------------------------------------------- identity / LMD


def test_deg_grows_with_rotation_dlib_judge(face512):
    judge = IdentityMetric("dlib")

    def rot(a):
        m = cv2.getRotationMatrix2D((255.5, 255.5), a, 1.0)
        return cv2.warpAffine(face512, m, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    target = judge.target([face512])
    angles = [0, 30, 60]
    deg = judge.compute([rot(a) for a in angles], target * len(angles))["Deg"]
    assert deg[0] < 0.5  # same image: ~0 degrees
    assert np.all(np.diff(deg) > 0), deg  # monotone in the rotation
    assert deg[-1] > 10


def test_landmark_distance_equals_the_shift(face512):
    pts = np.random.default_rng(0).integers(0, 512, (2, 68, 2)).astype(np.float64)  # dlib: integer pixels
    assert landmark_distance(pts, pts + np.array([3.0, 4.0])).tolist() == [5.0, 5.0]
    assert landmark_distance(pts[0], pts[0] - np.array([6.0, 8.0]))[0] == 10.0
    lmd = LandmarkMetric(points=5)
    same = lmd.compute([face512], lmd.target([face512]))["LMD"]
    assert same[0] == 0.0
    assert lmd.landmarks([face512]).shape == (1, 5, 2)


# ----------------------------------------------------------------------------------------------- LPIPS / FID / NTIRE


def test_lpips_glue_loads_lpips_and_torchvision_layouts(tmp_path, astronaut):
    import torch

    torch.manual_seed(0)
    net = LPIPSNet("alex")
    for lin in net.lins:
        torch.nn.init.uniform_(lin.weight, 0.0, 1.0)
    heads = {f"lin{i}.model.1.weight": lin.weight.detach().clone() for i, lin in enumerate(net.lins)}
    backbone = {f"features.{k}": v.clone() for k, v in net.features.state_dict().items()}
    taps = (1, 4, 7, 9, 11)
    full = dict(heads)
    for k, v in net.features.state_dict().items():
        idx = int(k.split(".")[0])
        full[f"net.slice{sum(idx > t for t in taps) + 1}.{k}"] = v.clone()
    torch.save(heads, tmp_path / "alex.pth")
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(full, tmp_path / "lpips_full.pth")
    a = io.numpy_to_tensor(astronaut[:64, :64])
    b = io.numpy_to_tensor(np.clip(astronaut[:64, :64].astype(int) + 40, 0, 255).astype(np.uint8))
    m1 = load_lpips(tmp_path / "alex.pth", tmp_path / "alexnet.pth")
    m2 = load_lpips(tmp_path / "lpips_full.pth")
    with torch.no_grad():
        assert m1(a, a).item() == pytest.approx(0.0, abs=1e-7)
        d1, d2, ref = m1(a, b).item(), m2(a, b).item(), net(a, b).item()
    assert d1 > 0 and d1 == pytest.approx(d2) and d1 == pytest.approx(ref)
    with pytest.raises(ValueError, match="backbone"):
        load_lpips(tmp_path / "alex.pth")


def test_frechet_distance_and_kid_known_answers():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([3.0, 5.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 16.0])
    # diagonal: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(25.0 + 4.0 + 4.0)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    f, g = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))  # two samples of one distribution
    same, shifted = (
        kernel_inception_distance(f, g, num_subsets=10),
        kernel_inception_distance(f, g + 1.0, num_subsets=10),
    )
    assert abs(same) < shifted / 20 and shifted > 0.5
    assert ntire2025_score(1.0, 1.0, 100.0, 5.0, 0.0, 0.0) == pytest.approx(6.0)
    assert ntire2025_score(0.5, 0.4, 60.0, 3.0, 12.0, 150.0) == pytest.approx(0.5 + 0.4 + 0.6 + 0.6)


def _random_lpips_file(path) -> None:
    """A random LPIPS (alex) saved as an lpips.LPIPS-style state dict (net.sliceK.N.* + linK.model.1.weight)."""
    import torch

    torch.manual_seed(1)
    net = LPIPSNet("alex")
    sd = {f"lin{i}.model.1.weight": lin.weight.detach().abs() for i, lin in enumerate(net.lins)}
    for k, v in net.features.state_dict().items():
        sd[f"net.slice{sum(int(k.split('.')[0]) > t for t in (1, 4, 7, 9, 11)) + 1}.{k}"] = v
    torch.save(sd, path)


def _tiny_inception(path):
    import torch

    class Feats(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            x = x / 255.0
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3)), (x * x).mean(dim=(2, 3))], dim=1)

    torch.jit.script(Feats()).save(str(path))


# ----------------------------------------------------------------------------------------------- degrade


@pytest.fixture(scope="module")
def hq_dir(tmp_path_factory, faces128):
    d = tmp_path_factory.mktemp("hq")
    (d / "set1").mkdir()
    io.write_image(d / "set1" / "a.png", faces128[0])
    io.write_image(d / "set1" / "b.jpg", faces128[1])
    io.write_image(d / "c.png", faces128[2])
    return d


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_degrade_is_deterministic_and_records_every_parameter(tmp_path, hq_dir):
    from authface.data.degradations import degrade_from_params

    r1 = build_benchmark(hq_dir, tmp_path / "b1", preset="gfpgan", seed=3)
    build_benchmark(hq_dir, tmp_path / "b2", preset="gfpgan", seed=3, workers=2)
    assert r1.made == ["c.png", "set1/a.png", "set1/b.jpg"] and not r1.failed
    f1, f2 = _files(tmp_path / "b1"), _files(tmp_path / "b2")
    assert f1 == f2  # byte-identical, whatever the number of workers
    assert set(f1) == {
        "gt/c.png",
        "gt/set1/a.png",
        "gt/set1/b.jpg",
        "lq/c.png",
        "lq/set1/a.png",
        "lq/set1/b.png",
        "metadata.jsonl",
    }
    assert f1["gt/set1/b.jpg"] == (hq_dir / "set1" / "b.jpg").read_bytes()
    lines = [json.loads(x) for x in f1["metadata.jsonl"].decode().splitlines()]
    assert lines[0]["type"] == "benchmark" and lines[0]["preset"] == "gfpgan" and lines[0]["seed"] == 3
    assert lines[0]["config"]["downsample_range"] == [0.8, 8.0]
    images = lines[1:]
    assert [r["rel"] for r in images] == ["c.png", "set1/a.png", "set1/b.jpg"]
    for rec in images:
        hq = io.read_image(hq_dir / rec["rel"]).rgb
        lq = io.read_image(tmp_path / "b1" / rec["lq"]).rgb
        assert rec["hq"] == str(hq_dir / rec["rel"]) and rec["size"] == [128, 128]
        assert {"blur", "downsample", "noise", "jpeg"} <= set(rec["params"])
        np.testing.assert_array_equal(degrade_from_params(hq, rec["params"]), lq)  # replayable exactly
    # another seed changes the LQ; adding an image changes no other image
    r3 = build_benchmark(hq_dir, tmp_path / "b3", preset="gfpgan", seed=4)
    assert _files(tmp_path / "b3")["lq/c.png"] != f1["lq/c.png"] and not r3.failed
    sub = build_benchmark([(hq_dir / "c.png", "c.png")], tmp_path / "b4", preset="gfpgan", seed=3)
    assert sub.made == ["c.png"] and _files(tmp_path / "b4")["lq/c.png"] == f1["lq/c.png"]
    assert degradation_factors(images[0]["params"])["scale"] == images[0]["params"]["downsample"]["scale"]


def test_degrade_cli_reports_bad_files_and_never_overwrites(tmp_path, hq_dir, capsys):
    src = tmp_path / "hq"
    (src / "set1").mkdir(parents=True)
    for p in hq_dir.rglob("*.*"):
        (src / p.relative_to(hq_dir)).write_bytes(p.read_bytes())
    (src / "broken.png").write_bytes(b"this is not a png")
    out = tmp_path / "bench"
    assert _run(["degrade", str(src), "-o", str(out), "--preset", "mild", "--seed", "0"]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "3 made" in err and "1 failed" in err
    before = _files(out)
    (src / "broken.png").unlink()
    assert _run(["degrade", str(src), "-o", str(out), "--preset", "mild", "--seed", "0"]) == 0
    assert "3 already there" in capsys.readouterr().err and _files(out) == before
    # a foreign file where an LQ would go is kept and reported
    io.write_image(src / "new.png", np.zeros((32, 32, 3), np.uint8))
    io.write_image(out / "lq" / "new.png", np.full((32, 32, 3), 7, np.uint8))
    assert _run(["degrade", str(src), "-o", str(out), "--preset", "mild", "--seed", "0"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert io.read_image(out / "lq" / "new.png").rgb.max() == 7
    # other settings in the same folder: usage error naming both
    assert _run(["degrade", str(src), "-o", str(out), "--preset", "gfpgan", "--seed", "0"]) == 2
    assert "preset 'mild'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- evaluate + report


@pytest.fixture(scope="module")
def bench(tmp_path_factory, hq_dir):
    d = tmp_path_factory.mktemp("bench")
    build_benchmark(hq_dir, d, preset="mild", seed=0)
    return d


def test_evaluate_end_to_end_and_report_files(tmp_path, bench):
    pytest.importorskip("skimage")
    inc = tmp_path / "inc.pt"
    _tiny_inception(inc)
    _random_lpips_file(tmp_path / "lpips.pth")
    opts = MetricOptions(fid_inception=str(inc), lpips_weights=str(tmp_path / "lpips.pth"))
    res = evaluate(
        {"perfect": bench / "gt"}, gt=bench / "gt", lq=bench / "lq", baselines=["lq", "bicubic"],
        metrics=["psnr", "ssim", "ids", "lmd", "sharpness", "fid", "lpips", "niqe", "ntire2025"], options=opts,
        gt_row=True, batch_size=2,
    )  # fmt: skip
    assert res.methods == ["perfect", "lq", "bicubic", "GT"]
    assert res.subsets == ["all", "set1"]
    perfect = [r for r in res.records if r["method"] == "perfect"]
    assert len(perfect) == 3 and all(r["PSNR"] == PSNR_CAP_DB and r["LMD"] == 0.0 for r in perfect)
    assert all(r["SSIM"] == pytest.approx(1.0) and r["IDS"] == pytest.approx(1.0) for r in perfect)
    assert all(r["LPIPS"] == pytest.approx(0.0, abs=1e-6) for r in perfect)
    assert all(r["LPIPS"] > 0 for r in res.records if r["method"] == "lq")
    assert all(r["Deg"] < 0.5 for r in perfect)
    lq_rows = [r for r in res.records if r["method"] == "lq"]
    assert all(r["PSNR"] < 60 and "deg_scale" in r for r in lq_rows)
    assert res.set_metrics["perfect"]["FID"] == pytest.approx(0.0, abs=1e-6)
    assert res.set_metrics["lq"]["FID"] > 0
    assert {"NIQE", "NTIRE2025"} <= set(res.unavailable) and "LPIPS" not in res.unavailable
    assert "IDS/Deg" in {n for n in res.throughput} and res.throughput["PSNR"]["images_per_s"] > 0

    files = write_report(res, tmp_path / "report", thumb_size=48)
    md = files["report.md"].read_text()
    assert md.startswith("# AuthFace evaluation report")
    for line in (
        "## Metrics",
        "- **PSNR** (↑, dB): ",
        "- **IDS** (↑) / **Deg** (↓, °): dlib",
        "face_recognition_resnet_model_v1 128-d",
        "- **LPIPS** (↓): LPIPS v0.1 (alex)",
        "- **NIQE**: unavailable",
        "## Results: all images",
        "## Results: set1",
        "## Metric throughput",
        "| lq (baseline) | 3 |",
        "images/s",
    ):
        assert line in md, line
    with open(files["summary.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method"], r["subset"]) for r in rows} >= {
        ("perfect", "all"),
        ("bicubic", "set1"),
        ("GT", "all"),
    }
    assert (
        float(next(r for r in rows if r["method"] == "perfect" and r["subset"] == "all")["PSNR_mean"])
        == 100.0
    )
    with open(files["per_image.csv"], newline="") as f:
        assert len(list(csv.DictReader(f))) == len(res.records)
    page = files["gallery.html"].read_text()
    for key in res.pairing.keys:
        assert f'data-key="{key}"' in page
    assert page.count('<tr class="img"') == 3 and "<script>" in page and "http" not in page.split("<body>")[1]
    assert len(list((tmp_path / "report" / "gallery").glob("*.jpg"))) == 3 * 5  # LQ, 3 methods, GT
    data = json.loads(files["report.json"].read_text())
    assert data["summary"] and data["unavailable"]["NIQE"]
    if have_module("matplotlib"):
        assert (tmp_path / "report" / "plots" / "psnr_vs_degradation.png").is_file()
        assert io.read_image(tmp_path / "report" / "plots" / "identity_vs_quality.png").rgb.shape[2] == 3
        assert "![psnr_vs_degradation](plots/psnr_vs_degradation.png)" in md
    else:
        assert "plots skipped: matplotlib is not installed" in md


def test_eval_cli_prints_table_and_notes(tmp_path, bench, capsys):
    code = _run([
        "eval", "--bench", str(bench), "--baseline", "lanczos", "--metrics", "psnr,musiq,pyiqa:niqe",
        "-o", str(tmp_path / "r"), "--no-gallery", "--no-plots",
    ])  # fmt: skip
    assert code == 0
    cap = capsys.readouterr()
    assert "| lanczos (baseline) | 3 |" in cap.out
    if not have_module("pyiqa"):
        assert "MUSIQ unavailable: pyiqa is not installed" in cap.err
    assert (tmp_path / "r" / "report.md").is_file() and not (tmp_path / "r" / "gallery.html").exists()


# ----------------------------------------------------------------------------------------------- pairing errors


@pytest.fixture()
def folders(tmp_path, faces128):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write_set(gt, faces128, ["a", "b", "c"])
    _write_set(pred, faces128, ["a", "b", "c"], ext=".jpg")  # other extension: pairs by stem
    return gt, pred


def test_pairing_by_stem_and_missing_or_extra_files_are_named(folders, faces128):
    gt, pred = folders
    assert pair_folders({"m": pred}, gt=gt).keys == ["a", "b", "c"]
    (pred / "c.jpg").unlink()
    io.write_image(pred / "zzz.png", faces128[0])
    with pytest.raises(PairingError) as e:
        pair_folders({"m": pred}, gt=gt)
    msg = str(e.value)
    assert str(gt / "c.png") in msg and str(pred / "zzz.png") in msg and "--allow-missing" in msg
    p = pair_folders({"m": pred}, gt=gt, allow_missing=True)
    assert p.keys == ["a", "b"] and any("c.png" in w for w in p.warnings)
    io.write_image(pred / "a.png", faces128[0])  # a.jpg and a.png: ambiguous
    with pytest.raises(PairingError, match="a.jpg and .*a.png|a.png and .*a.jpg"):
        pair_folders({"m": pred}, gt=gt, allow_missing=True)


def test_size_mismatch_and_non_images_are_named(folders, capsys):
    gt, pred = folders
    io.write_image(pred / "b.jpg", np.zeros((64, 64, 3), np.uint8))
    (pred / "c.jpg").write_bytes(b"<html>not an image</html>")
    (pred / "notes.txt").write_text("a log")
    with pytest.raises(EvalInputError) as e:
        evaluate({"m": pred}, gt=gt, metrics=["psnr"])
    msg = str(e.value)
    assert (
        str(pred / "b.jpg") in msg and "64x64" in msg and str(gt / "b.png") in msg and "--resize-pred" in msg
    )
    assert str(pred / "c.jpg") in msg and "not a recognised image" in msg
    assert _run(["eval", "--pred", f"m={pred}", "--gt", str(gt), "--metrics", "psnr"]) == 1
    assert str(pred / "b.jpg") in capsys.readouterr().err
    io.write_image(pred / "c.jpg", np.zeros((128, 128, 3), np.uint8))
    res = evaluate({"m": pred}, gt=gt, metrics=["psnr"], resize_pred=True)
    assert len(res.records) == 3 and any("resized" in w for w in res.warnings)
    assert any("notes.txt" in w for w in res.warnings)


# ----------------------------------------------------------------------------------------------- baselines, misc


def test_baselines_and_hooks(tmp_path, monkeypatch, faces128):
    x = faces128[0]
    assert make_baseline("lq").fn(x, (128, 128)) is x
    assert make_baseline("lq").fn(x[:32, :32], (128, 128)).shape == (128, 128, 3)
    bic = make_baseline("bicubic")
    same = bic.fn(x, (128, 128))  # same size: down x4 and up again
    assert same.shape == x.shape and 15 < psnr(same, x)[0] < 60
    assert bic.fn(x[::4, ::4], (128, 128)).shape == (128, 128, 3)
    mod = tmp_path / "my_upsampler.py"
    mod.write_text(
        textwrap.dedent("""
        import numpy as np
        def up(lq, size):
            return np.zeros((*size, 3), np.uint8)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    hook = make_baseline("py:my_upsampler:up")
    assert hook.name == "up" and hook.fn(x, (64, 64)).shape == (64, 64, 3)
    with pytest.raises(ImportError):
        make_baseline("py:no_such_module_here:up")
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("nearest-ish")
    sys.modules.pop("my_upsampler", None)


def test_unavailable_metrics_are_notes_not_errors(tmp_path):
    metrics, set_metrics, unavailable = build_metrics(
        ["lpips", "fid", "kid", "niqe", "topiq_nr-face", "ntire2025", "psnr", "lmd"], MetricOptions(),
        have_gt=False, id_target=None,
    )  # fmt: skip
    assert metrics == [] and set_metrics == {}
    assert {"LPIPS", "FID", "KID", "NIQE", "NTIRE2025", "PSNR", "LMD"} <= set(unavailable)
    assert "CLIPIQA" in unavailable["NTIRE2025"] and "--gt" in unavailable["PSNR"]
    with pytest.raises(ValueError, match="judge"):
        build_metrics(["ids"], MetricOptions(judge="facenet"), have_gt=True, id_target="the GT")


def test_degradation_factors_of_both_pipelines():
    from authface.data.degradations import sample_params

    for preset in ("codeformer", "realesrgan"):
        f = degradation_factors(sample_params(np.random.default_rng(0), preset))
        assert (
            set(f) == {"blur_sigma", "scale", "noise", "jpeg"} and f["scale"] >= 1.0 and 0 < f["jpeg"] <= 100
        )


def test_reference_photos_pair_by_key_or_identity_folder(tmp_path, faces128):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    _write_set(pred, faces128[:2], ["alice/1", "bob/2"])
    _write_set(ref, faces128, ["alice/1", "bob/x", "bob/y"])
    p = pair_folders({"m": pred}, reference=ref)
    assert p.reference["alice/1"] == [ref / "alice" / "1.png"]  # same relative path
    assert p.reference["bob/2"] == [ref / "bob" / "x.png", ref / "bob" / "y.png"]  # the person's folder
    (ref / "bob" / "x.png").unlink()
    (ref / "bob" / "y.png").unlink()
    with pytest.raises(PairingError, match="bob/2"):
        pair_folders({"m": pred}, reference=ref)


def test_arcface_judge_from_local_weights(tmp_path, faces128):
    import torch

    from authface.models.identity import iresnet

    torch.manual_seed(0)
    torch.save(iresnet("r18").state_dict(), tmp_path / "backbone.pth")
    judge = IdentityMetric(f"arcface:{tmp_path / 'backbone.pth'}")
    out = judge.compute(faces128[:2], judge.target(faces128[:2]))
    np.testing.assert_allclose(out["IDS"], 1.0, atol=1e-5)
    assert "arcface 512-d" in judge.info


def test_pyiqa_metrics_and_ntire2025_composite(tmp_path, monkeypatch, face512):
    """A stand-in pyiqa (pyiqa itself pulls torchvision): metrics are created through authface's PyiqaScorer, and
    the NTIRE 2025 score appears once all of its components are there."""
    import importlib.machinery
    import types

    from authface.models.quality import fit_niqe_params

    class FakeMetric:
        lower_better, metric_mode, score_range = False, "NR", "0, 1"

        def __init__(self, scale):
            self.scale = scale

        def __call__(self, x):
            return x.mean(dim=(1, 2, 3)) * self.scale

    fake = types.ModuleType("pyiqa")
    fake.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None, origin="fake")
    scales = {"clipiqa": 1.0, "maniqa": 0.5, "musiq": 100.0, "qalign": 5.0}
    fake.create_metric = lambda name, as_loss=False, device=None, **kw: FakeMetric(scales[name])
    monkeypatch.setitem(sys.modules, "pyiqa", fake)

    faces = [cv2.resize(face512, (256, 256), interpolation=cv2.INTER_AREA)]
    faces.append(np.ascontiguousarray(faces[0][:, ::-1]))
    gt = tmp_path / "gt"
    _write_set(gt, faces, ["a", "b"])
    fit_niqe_params(io.numpy_to_tensor(face512).add(1).div(2)).save(tmp_path / "niqe.npz")
    _tiny_inception(tmp_path / "inc.pt")
    opts = MetricOptions(niqe_params=str(tmp_path / "niqe.npz"), fid_inception=str(tmp_path / "inc.pt"))
    res = evaluate(
        {"same": gt}, gt=gt, options=opts,
        metrics=["clipiqa", "maniqa", "musiq", "qalign", "niqe", "fid", "ntire2025"],
    )  # fmt: skip
    assert {"CLIPIQA", "MANIQA", "MUSIQ", "QALIGN", "NIQE"} <= {c.name for c in res.columns}
    means = {
        c: next(e for e in res.summary if e["subset"] == "all")[c]["mean"]
        for c in ("CLIPIQA", "MANIQA", "MUSIQ", "QALIGN", "NIQE")
    }
    expected = ntire2025_score(means["CLIPIQA"], means["MANIQA"], means["MUSIQ"], means["QALIGN"], means["NIQE"],
                                 res.set_metrics["same"]["FID"])  # fmt: skip
    assert res.set_metrics["same"]["NTIRE2025"] == pytest.approx(expected)
    assert means["MUSIQ"] == pytest.approx(100 * means["CLIPIQA"]) and "pyiqa" in res.metric_info["MUSIQ"]


# ----------------------------------------------------------------------------------------------- options, metadata, API


def test_metric_options_use_the_config_mechanism(tmp_path):
    from authface.config import ConfigError, load_config

    opts = load_config(MetricOptions, None, ["lmd_points=5", "fr_backend=skimage", "crop_border=4"])
    assert (opts.lmd_points, opts.fr_backend, opts.crop_border) == (5, "skimage", 4)
    with pytest.raises(ConfigError, match="lmd_points must be one of 68, 5"):
        load_config(MetricOptions, None, ["lmd_points=7"])
    with pytest.raises(ConfigError, match="did you mean 'fr_backend'"):
        load_config(MetricOptions, None, ["fr_backnd=skimage"])
    for bad, match in (
        (MetricOptions(crop_border=-1), "crop_border"),
        (MetricOptions(lmd_box="guess"), "lmd_box"),
        (MetricOptions(judge="arcface"), "judge"),
    ):
        with pytest.raises(ConfigError, match=match):
            bad.validate()


def test_benchmark_metadata_reader_names_bad_lines(tmp_path, bench):
    from authface.data.benchmark import read_benchmark_metadata
    from authface.eval.evaluate import load_bench_metadata

    header, records = read_benchmark_metadata(bench / "metadata.jsonl")
    assert header["preset"] == "mild" and sorted(records) == ["c.png", "set1/a.png", "set1/b.jpg"]
    _, by_key = load_bench_metadata(bench / "metadata.jsonl")
    assert sorted(by_key) == ["c", "set1/a", "set1/b"]
    broken = tmp_path / "metadata.jsonl"
    broken.write_text(
        (bench / "metadata.jsonl").read_text().replace('"type": "image"', '{"type": "image"', 1)
    )
    with pytest.raises(ValueError, match=r"metadata.jsonl:2: not valid JSON"):
        read_benchmark_metadata(broken)
    assert read_benchmark_metadata(tmp_path / "none.jsonl", missing_ok=True) == (None, {})


def test_public_names_and_columns():
    import authface.eval
    from authface.eval.base import Column

    for name in authface.eval.__all__:
        assert getattr(authface.eval, name) is not None, name
    col = Column("LMD", False, "px", ".2f")
    assert (col.arrow, col.format(1.234), col.format(float("nan")), col.format(None)) == (
        "↓",
        "1.23",
        "—",
        "—",
    )


def test_realesrgan_baseline_is_a_learned_upscaler(faces128):
    pytest.importorskip("authface.models.realesrgan")
    from authface.eval.baselines import BASELINE_NAMES, make_baseline
    from authface.models.realesrgan import realesrgan_model_files

    try:
        realesrgan_model_files()
    except ImportError as e:
        pytest.skip(str(e))
    assert "realesrgan" in BASELINE_NAMES
    base = make_baseline("realesrgan")
    lq = np.ascontiguousarray(faces128[0][::4, ::4])
    out = base.fn(lq, (128, 128))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
