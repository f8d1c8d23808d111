"""authface.optimize: the objective, CMA-ES and gradient guidance on the tiny pipeline with a toy differentiable
scorer (mean brightness of the face region), resume, learned scorers from ratings CSVs, and the two commands."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from authface import io
from authface.guidance import ScoreGuidance
from authface.optimize import (
    FaceSearch,
    Objective,
    OptimizeSettings,
    RatingsError,
    ResumeError,
    ScorerSettings,
    load_scorer,
    read_ratings,
    train_scorer,
)

needs_cma = pytest.mark.skipif(importlib.util.find_spec("cma") is None, reason="pip install cma")
SAMPLE = {"num_inference_steps": 4, "strength": 0.5, "guidance_scale": 1.0, "color_fix": "none"}


class Brightness(torch.nn.Module):
    """Toy differentiable scorer: mean brightness of the central (face) region of [0, 1] RGB (B, 3, H, W)."""

    def forward(self, x):
        h, w = x.shape[-2:]
        return x[:, :, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def pipe():
    from authface.testing.tiny_model import tiny_pipeline

    p = tiny_pipeline(seed=0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def identity():
    from authface.optimize.backbones import load_identity_model

    return load_identity_model()  # the default: dlib's ResNet, differentiable, no download


@pytest.fixture(scope="module")
def crop():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(120, 30, (64, 64, 3)), 0, 255).astype(np.uint8)


def search(pipe, crop, identity, **kw):
    settings = OptimizeSettings(**{"identity_min": 0.5, "offset_weight": 0.0, "population": 4, "sigma": 1.0, **kw})
    return FaceSearch(pipe, crop, Brightness(), identity, settings, SAMPLE)


def test_identity_penalty_is_exactly_zero_above_the_bound():
    obj = Objective(identity_min=0.7, identity_weight=10.0, offset_weight=0.5)
    for ident in (0.7, 0.70001, 0.9, 1.0):
        assert obj.penalty(ident) == 0.0
        assert obj(2.0, ident) == 2.0
    assert obj.penalty(0.6) == pytest.approx(1.0)
    assert obj(2.0, 0.6, offset_norm=1.0) == pytest.approx(2.0 - 1.0 - 0.5)


@pytest.fixture(scope="module")
def cmaes_run(pipe, crop, identity, tmp_path_factory):
    """20 CMA-ES generations of 4 candidates (shared by two tests: the search is the expensive part)."""
    s = search(pipe, crop, identity, method="cmaes", iterations=20)
    return s, s.run(tmp_path_factory.mktemp("cmaes") / "t.jsonl")


@needs_cma
def test_cmaes_raises_the_score_while_identity_stays_above_the_bound(cmaes_run, crop):
    s, res = cmaes_run
    gens = [r for r in res.records if r["method"] == "cmaes"]
    assert [r["iteration"] for r in gens] == list(range(1, 21))
    assert all(len(r["candidates"]) == 4 for r in gens)
    scores = [r["score"] for r in gens]
    assert np.mean(scores[-5:]) > np.mean(scores[:5])  # the search climbs
    best, base = res.best_record, res.baseline_record
    assert best["method"] == "cmaes" and best["score"] > base["score"] + 1e-3
    assert best["identity"] >= 0.5 and best["penalty"] == 0.0
    assert res.best.shape == crop.shape and res.best.dtype == np.uint8
    # the chosen image is the one its record measured
    again = s.measure(io.numpy_to_tensor(res.best), np.asarray([best["x"]]))[0]
    assert again["score"] == pytest.approx(best["score"], abs=2e-3)


def test_gradient_guidance_raises_the_score_monotonically_in_scale(pipe, crop, identity):
    res = search(pipe, crop, identity, method="gradient", gradient_scales=[0.25, 0.5, 1.0, 2.0]).run()
    scores = [r["score"] for r in res.records]  # baseline (scale 0), then the scales in order
    assert [r.get("scale", 0) for r in res.records] == [0, 0.25, 0.5, 1.0, 2.0]
    assert all(b > a for a, b in zip(scores, scores[1:])), scores


@needs_cma
def test_resume_continues_the_trajectory_instead_of_restarting(pipe, crop, identity, cmaes_run, tmp_path):
    path = tmp_path / "t.jsonl"
    search(pipe, crop, identity, method="cmaes", iterations=2).run(path)
    seen = []
    resumed = search(pipe, crop, identity, method="cmaes", iterations=4).run(path, callback=seen.append)
    assert [(r["method"], r["iteration"]) for r in seen] == [("cmaes", 3), ("cmaes", 4)]
    evals = [line.record for line in io.read_jsonl(path) if line.record["kind"] == "eval"]
    assert [(r["method"], r["iteration"]) for r in evals] == [("baseline", 0)] + [("cmaes", i) for i in range(1, 5)]
    # the same generations as the uninterrupted 20-generation run of the same settings
    straight = cmaes_run[1].records[:5]
    assert [r["objective"] for r in resumed.records] == pytest.approx([r["objective"] for r in straight], abs=1e-5)
    # all done: nothing is evaluated again, and the best image is re-rendered from its recorded offset
    seen.clear()
    again = search(pipe, crop, identity, method="cmaes", iterations=4).run(path, callback=seen.append)
    assert seen == [] and again.best_record == resumed.best_record
    s = search(pipe, crop, identity, method="cmaes", iterations=4)
    x = np.asarray([again.best_record["x"]]) if again.best_record["method"] == "cmaes" else None
    assert s.measure(io.numpy_to_tensor(again.best), x)[0]["score"] == pytest.approx(again.best_record["score"], abs=2e-3)
    with pytest.raises(ResumeError, match="sigma"):
        search(pipe, crop, identity, method="cmaes", iterations=4, sigma=0.3).run(path)


@needs_cma
def test_time_limit_stops_the_search_and_keeps_the_baseline(pipe, crop, identity):
    res = search(pipe, crop, identity, method="both", iterations=20, time_limit=1e-3).run()
    assert [r["method"] for r in res.records] == ["baseline"]
    assert res.best_record is res.baseline_record and np.array_equal(res.best, res.baseline)


def test_backbones_concatenate_and_stay_differentiable():
    from authface.optimize.backbones import DEFAULT_BACKBONE, load_backbone

    bb = load_backbone(DEFAULT_BACKBONE)
    assert bb.spec == "dlib-resnet+pixels" and bb.feature_dim == 128 + 198
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    feats = bb(x)
    assert feats.shape == (2, bb.feature_dim)
    feats.sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("resnet9000")


def _synthetic_ratings(folder, n=40, seed=0):
    """Noise images of varying brightness; the rating is their mean brightness in [0, 1]."""
    rng = np.random.default_rng(seed)
    lines = ["Image,MOS"]
    for i in range(n):
        img = np.clip(rng.normal(rng.uniform(40, 215), 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        io.write_image(folder / "faces" / f"{i:03d}.png", img)
        lines.append(f"faces/{i:03d}.png,{img.mean() / 255:.5f}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder / "ratings.csv"


def test_train_scorer_reaches_high_validation_srcc_and_loads_as_guidance(tmp_path):
    rows = read_ratings(_synthetic_ratings(tmp_path))
    assert len(rows) == 40 and rows[0].path.is_file()
    res = train_scorer(rows, tmp_path / "scorer", ScorerSettings(backbone="pixels", input_size=32, seed=1))
    assert res.metrics["srcc"] > 0.8 and res.metrics["plcc"] > 0.8
    assert {"rmse", "n_train", "n_val", "best_epoch"} <= set(res.metrics)
    cfg = json.loads((tmp_path / "scorer" / "scorer.json").read_text())
    assert cfg["backbone"] == "pixels" and cfg["metrics"]["srcc"] == res.metrics["srcc"]
    scorer = load_scorer(tmp_path / "scorer")
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    out = scorer(x)
    assert out.shape == (2,)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: a ScoreGuidance objective
    assert isinstance(ScoreGuidance(scorer, 1.0).module, torch.nn.Module)
    dark, bright = torch.full((1, 3, 64, 64), 0.2), torch.full((1, 3, 64, 64), 0.8)
    assert float(scorer(bright)) > float(scorer(dark))


def test_ratings_csv_column_names_and_per_rater_average(tmp_path):
    for name in ("a.png", "b.png"):
        io.write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "r1.csv").write_text("File ; Score\na.png;1.5\nb.png;2\n")
    assert [r.rating for r in read_ratings(tmp_path / "r1.csv")] == [1.5, 2.0]
    (tmp_path / "r2.csv").write_text("path,rater_1,rater_2,rater_3\na.png,1,2,\nb.png,4,,5\n")
    rows = read_ratings(tmp_path / "r2.csv")
    assert [(r.rating, r.raters) for r in rows] == [(1.5, 2), (4.5, 2)]


def test_malformed_ratings_csv_names_each_bad_line(tmp_path):
    for name in ("a.png", "b.png"):
        io.write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    csv = tmp_path / "ratings.csv"
    csv.write_text("image,rating\na.png,3\nmissing.png,2\nb.png,good\na.png,4\n")
    with pytest.raises(RatingsError) as err:
        read_ratings(csv)
    text = str(err.value)
    assert f"{csv}:3: image file missing.png not found" in text
    assert f"{csv}:4: non-numeric rating rating='good'" in text
    assert f"{csv}:5: duplicate row: a.png is already rated on line 2" in text
    (tmp_path / "nocol.csv").write_text("picture,rating\na.png,1\n")
    with pytest.raises(RatingsError, match=r"nocol.csv:1: no image column"):
        read_ratings(tmp_path / "nocol.csv")


def _cli(argv):
    from authface.cli import main

    return main(argv)


@needs_cma
def test_commands_train_scorer_then_optimize_an_aligned_face(tmp_path, tiny_model_dir, crop, capsys):
    csv = _synthetic_ratings(tmp_path, n=20)
    assert _cli(["train-scorer", str(csv), "-o", str(tmp_path / "scorer"), "--backbone", "pixels",
                 "--input-size", "32", "--epochs", "50"]) == 0  # fmt: skip
    assert "SRCC" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("image,rating\nnope.png,1\n")
    assert _cli(["train-scorer", str(bad), "-o", str(tmp_path / "s2")]) == 2
    assert "bad.csv:2" in capsys.readouterr().err

    io.write_image(tmp_path / "face.png", crop)
    out = tmp_path / "out"
    argv = ["optimize", str(tmp_path / "face.png"), "-o", str(out), "--scorer", str(tmp_path / "scorer"),
            "--identity-min", "0.5", "--method", "both", "--model", str(tiny_model_dir), "--aligned",
            "--crop-size", "64", "--steps", "2", "--strength", "1.0", "--cfg-scale", "1", "--device", "cpu",
            "--iterations", "2", "--population", "3", "--scales", "0.5,1"]  # fmt: skip
    assert _cli(argv) == 0, capsys.readouterr().err
    best = io.read_image(out / "face.png").rgb
    assert best.shape == crop.shape
    meta = json.loads((out / "face.json").read_text())["authface:optimized"]
    assert meta["optimized"] is True and meta["method"] == "both" and meta["identity_min"] == 0.5
    assert meta["scorer"]["backbone"] == "pixels" and "altered" in meta["note"]
    evals = [r.record for r in io.read_jsonl(out / "face.trajectory.jsonl") if r.record["kind"] == "eval"]
    assert [r["method"] for r in evals] == ["baseline", "gradient", "gradient", "cmaes", "cmaes"]
    assert {"iteration", "score", "identity", "penalty"} <= set(evals[-1])
    assert (out / "face.side_by_side.png").is_file()
    pytest.importorskip("matplotlib")
    assert (out / "face.tradeoff.png").is_file()


def test_whole_photo_is_optimised_and_pasted_back(pipe, identity, astronaut):
    from authface.face import create_detector
    from authface.face.stage import FaceStage
    from authface.optimize.photo import optimize_photo

    stage = FaceStage(create_detector("dlib"), 64, max_faces=1)
    settings = OptimizeSettings(method="gradient", gradient_scales=[1.0], identity_min=0.0)
    photo = optimize_photo(astronaut, stage, lambda c, i: FaceSearch(pipe, c, Brightness(), identity, settings,
                                                                        SAMPLE, face=i))  # fmt: skip
    assert photo.image.shape == astronaut.shape and len(photo.faces) == 1
    assert not np.array_equal(photo.image, astronaut) and not np.array_equal(photo.image, photo.baseline)
