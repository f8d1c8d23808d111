"""The mask segmenter (authface.models.mask_segmenter), its training (training/train.py --task mask-segmenter) and
`authface restore --mask auto` / `--task old-photo` on the tiny model folder."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from authface.cli import main
from authface.config import TrainConfig, load_config
from authface.models.mask_segmenter import (
    SUBFOLDER,
    MaskSegmenter,
    load_mask_segmenter,
    predict_masks,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny.yaml"
CLI_FAST = ["--set", "face.crop_size=64", "--steps", "2"]
HOW = "training/train.py --task mask-segmenter"


def _cfg(dataset: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, ["task=mask-segmenter", f"data.dataset={dataset}", f"output.output_dir={out}",
                                           "output.validation_steps=0", *overrides])  # fmt: skip


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_shapes_and_dtypes():
    torch.manual_seed(0)
    model = MaskSegmenter(widths=(8, 16, 32), resolution=64)
    logits = model(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert logits.shape == (2, 1, 64, 64) and logits.dtype == torch.float32
    crops = np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    masks = predict_masks(model, crops)
    assert masks.shape == (3, 96, 96) and masks.dtype == bool
    assert np.array_equal(predict_masks(model, list(crops)), masks)  # a list of crops works the same
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 3, 66, 66))
    with pytest.raises(ValueError, match=r"\(N, S, S, 3\)"):
        predict_masks(model, crops[..., 0])


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = MaskSegmenter(widths=(8, 16), resolution=64)
    model.save_pretrained(tmp_path / "out" / SUBFOLDER)
    crops = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for ref in (tmp_path / "out", tmp_path / "out" / SUBFOLDER):  # the training output folder or the segmenter's
        loaded = load_mask_segmenter(ref, "cpu")
        assert loaded.config.widths == [8, 16] and loaded.config.resolution == 64
        for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), k
        assert np.array_equal(predict_masks(loaded, crops), predict_masks(model, crops))


def test_missing_or_bad_segmenter_folders_say_how_to_train_one(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match=f"nowhere: no such folder.*{HOW}"):
        load_mask_segmenter(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"empty: no config.json.*{HOW}"):
        load_mask_segmenter(tmp_path / "empty")
    with pytest.raises(ValueError, match=f"UNet2DConditionModel, not a MaskSegmenter.*{HOW}"):
        load_mask_segmenter(tiny_model_dir / "unet")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir / SUBFOLDER, broken)
    (broken / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=f"broken: its weights do not load.*{HOW}"):
        load_mask_segmenter(broken)


def test_a_few_cpu_steps_lower_the_loss_and_raise_iou(dataset, tmp_path):
    from authface.training import train

    out = train(_cfg(dataset, tmp_path / "run", "optim.max_steps=40", "optim.learning_rate=3e-3",
                     "data.occlusions=facemask", "data.occlusion_prob=1",
                     "output.checkpointing_steps=100"))  # fmt: skip
    logs = _log(out)
    assert [r["step"] for r in logs] == list(range(1, 41))
    assert all({"loss", "bce", "dice", "iou", "lr"} <= r.keys() for r in logs)

    def mean(key, part):
        return float(np.mean([r[key] for r in part]))

    assert mean("loss", logs[-8:]) < 0.8 * mean("loss", logs[:8]), logs
    assert mean("iou", logs[-8:]) > mean("iou", logs[:8]) + 0.1, logs
    segmenter = load_mask_segmenter(out, "cpu")  # what train_segmenter writes loads as is
    assert segmenter.config.resolution == 64
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-40"]  # the run's end (none periodic)


def test_resume_reaches_the_same_weights(dataset, straight_and_resumed):
    from safetensors.torch import load_file

    full, resumed = straight_and_resumed(functools.partial(_cfg, dataset), steps=6, every=3)
    assert sorted(p.name for p in resumed.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    a = load_file(full / SUBFOLDER / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / SUBFOLDER / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-6, worst
    assert [r["step"] for r in _log(resumed)] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in _log(resumed)][3:] == pytest.approx([r["loss"] for r in _log(full)][3:], abs=1e-6)


def test_restore_mask_auto_and_old_photo_run_end_to_end(tiny_model_dir, astronaut, tmp_path, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    out = tmp_path / "auto"
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_model_dir), *CLI_FAST,
                 "--mask", "auto", "--keep-unmasked"]) == 0  # fmt: skip
    assert (out / "a.png").is_file()
    rec = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()][-1]
    assert rec["status"] == "restored" and rec["faces"]
    # the tiny random segmenter's masks are arbitrary, but they reach the inpainting of the face
    assert rec["faces"][0].get("inpainted_px", 0) > 0, rec["faces"]
    gray = np.repeat(np.asarray(Image.fromarray(astronaut).convert("L"))[..., None], 3, axis=2)
    Image.fromarray(gray).save(tmp_path / "old.png")
    out = tmp_path / "old"
    assert main(["restore", str(tmp_path / "old.png"), "-o", str(out), "--model", str(tiny_model_dir), *CLI_FAST,
                 "--task", "old-photo", "--colorize"]) == 0  # fmt: skip
    assert (out / "old.png").is_file()
    run = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert run["config"]["io"]["mask"] == "auto"  # old-photo without --mask: the segmenter's masks
    # --mask-model: a training output folder (OUT/mask_segmenter) given explicitly
    shutil.copytree(tiny_model_dir / SUBFOLDER, tmp_path / "seg_run" / SUBFOLDER)
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "explicit"), "--model", str(tiny_model_dir),
                 *CLI_FAST, "--mask", "auto", "--mask-model", str(tmp_path / "seg_run")]) == 0  # fmt: skip


def test_mask_auto_without_a_segmenter_exits_2_before_any_work(tiny_model_dir, astronaut, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model, ignore=shutil.ignore_patterns(SUBFOLDER))
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    for extra, msg in ((["--mask", "auto"], "--mask auto needs a trained mask segmenter"),
                       (["--task", "old-photo"], "--task old-photo needs a damage mask"),
                       (["--mask", "auto", "--mask-model", str(tmp_path / "none")],
                        "none: no such folder")):  # fmt: skip
        rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(model), *CLI_FAST,
                   *extra])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and HOW in err, err
        assert not (tmp_path / "o").exists()
    rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--mask-model", str(model)])
    assert rc == 2 and "--mask-model" in capsys.readouterr().err


def test_restorer_inpaints_each_face_with_its_crop_mask(astronaut):
    """The crop masker's masks reach restore_crops per face; an empty one means plain restoration; the photo
    mask (union of the crop masks warped back) bounds what --keep-unmasked lets change."""
    from authface.face.stage import FaceStage
    from authface.restorer import FaceRestorer

    calls = []

    def restore_crops(crops, seeds, masks=None):
        calls.append(masks)
        return [np.full_like(c, 255) for c in crops], [{} for _ in crops]

    def masker(crops):
        out = np.zeros((len(crops), *crops[0].shape[:2]), bool)
        out[:, 20:40, 10:30] = True
        return list(out)

    photo = np.ascontiguousarray(astronaut[:256, 128:384])
    stage = FaceStage(None, 64, aligned=True)
    r = FaceRestorer(restore_crops, stage, crop_masker=masker, keep_unmasked=True)
    result = r(photo)
    (masks,) = calls
    assert len(masks) == 1 and masks[0].shape == (64, 64) and masks[0][30, 20] and not masks[0][0, 0]
    changed = np.any(result.image != photo, axis=-1)
    assert changed.any() and changed.mean() < 0.25  # only inside the warped-back crop mask
    empty = FaceRestorer(restore_crops, stage, crop_masker=lambda crops: [np.zeros(c.shape[:2], bool) for c in crops])
    empty(photo)
    assert calls[-1] is None  # nothing found: the face is restored without a mask


def test_training_script_task_flag_trains_the_segmenter_and_says_where(dataset, tmp_path, capsys, train_script):
    """`training/train.py --task mask-segmenter` (the acceptance command), then `--mask-model` takes its output."""
    out = tmp_path / "seg-run"
    rc = train_script(["--config", str(TINY), "--data", str(dataset), "--output", str(out),
                               "--max-steps", "2", "--task", "mask-segmenter"])  # fmt: skip
    assert rc == 0
    assert "mask segmenter written to" in capsys.readouterr().err
    assert (out / SUBFOLDER / "config.json").is_file() and not (out / "model_index.json").exists()
    assert isinstance(load_mask_segmenter(out, "cpu"), MaskSegmenter)


def test_a_short_run_ends_with_a_checkpoint_so_latest_continues_it(dataset, tmp_path, train_script):
    """3 steps with checkpoints every 10: the end of the run is still a checkpoint, and resuming from 'latest'
    with more steps continues it (steps 4-5 only in the log) instead of starting over."""
    out = tmp_path / "short"
    common = ["--config", str(TINY), "--data", str(dataset), "--output", str(out), "--task", "mask-segmenter",
              "--set", "output.checkpointing_steps=10"]  # fmt: skip
    assert train_script([*common, "--max-steps", "3"]) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3"]
    assert train_script([*common, "--max-steps", "5", "--resume-from-checkpoint", "latest"]) == 0
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-5"]


def test_resuming_another_tasks_checkpoint_is_refused_by_name(dataset, tmp_path, capsys, train_script):
    out = tmp_path / "mixed"
    base = ["--config", str(TINY), "--data", str(dataset), "--output", str(out), "--max-steps", "2",
            "--set", "output.validation_steps=0"]  # fmt: skip
    assert train_script([*base, "--task", "inpaint"]) == 0
    capsys.readouterr()
    rc = train_script([*base, "--task", "mask-segmenter", "--max-steps", "4", "--resume-from-checkpoint", "latest"])
    err = capsys.readouterr().err
    assert rc == 2 and "written by training task 'inpaint', not 'mask-segmenter'" in err and "--output" in err
    assert len(err.splitlines()) <= 3  # one message, no traceback
