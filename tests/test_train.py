"""Fine-tuning end to end on tiny random components: prepare -> train -> checkpoint -> resume -> restore."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from authface.config import TrainConfig, load_config
from authface.data.prepare import ManifestError, PrepareSettings, prepare_dataset
from authface.training import (
    LATEST,
    LORA_WEIGHT_NAME,
    ResumePoint,
    TrainingDataError,
    checkpoint_step,
    list_checkpoints,
    loss_trend,
    prune_checkpoints,
    read_losses,
    train,
)
from authface.training.checkpoints import resolve_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny.yaml"


def _photos(astronaut, folder: Path) -> Path:
    """Distinct photos of one face: shifted, scaled and recoloured copies of a packaged portrait."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = astronaut.shape[:2]
    for i, (dx, dy, scale, gain) in enumerate([(0, 0, 1.0, 1.0), (30, 10, 0.9, 1.15), (-25, 20, 1.1, 0.85),
                                               (15, -20, 0.95, 1.3)]):  # fmt: skip
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0 * i, scale)
        m[:, 2] += (dx, dy)
        img = cv2.warpAffine(astronaut, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"photo_{i}.png")
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, astronaut) -> Path:
    root = tmp_path_factory.mktemp("train")
    src = _photos(astronaut, root / "photos")
    out = root / "ds"
    prepare_dataset([str(src)], out, PrepareSettings(crop_size=64, min_face_size=32, dedupe_threshold=-1))
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4
    return out


def _cfg(dataset: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [f"data.dataset={dataset}", f"output.output_dir={out}",
                                           "output.validation_steps=0", *overrides])  # fmt: skip


def _trained_state(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = {f"lora.{k}": v for k, v in load_file(out / LORA_WEIGHT_NAME).items()}
    state.update({f"cn.{k}": v for k, v in load_file(out / "controlnet" / "diffusion_pytorch_model.safetensors").items()})
    return state


def test_overfit_run_lowers_the_loss_and_writes_a_model(dataset, tmp_path):
    out = train(_cfg(dataset, tmp_path / "run", "optim.max_steps=30", "optim.learning_rate=2e-3",
                     "output.checkpointing_steps=15", "output.validation_steps=30"))  # fmt: skip
    first, last = loss_trend(out / "train_log.jsonl", window=8)
    assert last < first, (first, last)
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(logs) == 30 and all("facial_recon" in r and r["facial_weight"] > 0 for r in logs)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-15", "checkpoint-30"]
    assert (out / "validation" / "step-000030.png").is_file()
    assert (out / LORA_WEIGHT_NAME).is_file() and (out / "model_index.json").is_file()


def test_saved_model_loads_changes_output_and_takes_quality_target(dataset, tmp_path, astronaut):
    from authface.cli import main
    from authface.models.quality_prior import has_quality_prior
    from authface.pipeline import AuthFacePipeline
    from authface.testing.tiny_model import tiny_pipeline

    out = train(_cfg(dataset, tmp_path / "run", "optim.max_steps=4", "output.checkpointing_steps=100"))
    pipe = AuthFacePipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    assert has_quality_prior(pipe.controlnet)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    kw = dict(num_inference_steps=2, strength=1.0, output_type="pt", color_fix="none")
    trained = pipe(x, generator=[torch.Generator().manual_seed(0)], quality_score=0.9, **kw).images
    base = tiny_pipeline(seed=0)
    base.controlnet = pipe.controlnet  # same ControlNet: only the fused LoRA differs from the base UNet
    assert (trained - base(x, generator=[torch.Generator().manual_seed(0)], quality_score=0.9, **kw).images
            ).abs().max() > 1e-4  # fmt: skip
    # the standalone LoRA loads into plain diffusers
    from diffusers import StableDiffusionPipeline

    from authface.testing.tiny_model import tiny_components

    comps = tiny_components(seed=0)
    comps.pop("controlnet")
    sd = StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    sd.load_lora_weights(str(out), weight_name=LORA_WEIGHT_NAME)
    # and the CLI restores with it, asking for a quality
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "restored"), "--model", str(out),
                 "--quality-target", "0.9", "--set", "face.crop_size=64", "--steps", "2"]) == 0  # fmt: skip


def test_resume_reaches_the_same_state(dataset, tmp_path):
    common = ("optim.learning_rate=1e-3", "output.checkpointing_steps=3", "output.checkpoints_total_limit=null")
    full = train(_cfg(dataset, tmp_path / "full", "optim.max_steps=6", *common))
    part = tmp_path / "part"
    train(_cfg(dataset, part, "optim.max_steps=3", *common))
    resumed = train(_cfg(dataset, part, "optim.max_steps=6", "output.resume_from_checkpoint=latest", *common))
    a, b = _trained_state(full), _trained_state(resumed)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-5, worst
    steps = [json.loads(line)["step"] for line in (part / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_bad_data_is_reported_by_file(dataset, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    lines = (bad / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["file"] = "../outside.png"
    lines[1] = json.dumps(rec)
    (bad / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2: .*outside the dataset root"):
        train(_cfg(bad, tmp_path / "r1", "optim.max_steps=1"))
    shutil.rmtree(bad)
    shutil.copytree(dataset, bad)
    first = json.loads((bad / "manifest.jsonl").read_text().splitlines()[0])
    (bad / first["file"]).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(TrainingDataError, match=first["file"]):
        train(_cfg(bad, tmp_path / "r2", "optim.max_steps=1"))
    with pytest.raises(TrainingDataError, match="--data"):
        train(load_config(TrainConfig, TINY, [f"output.output_dir={tmp_path / 'r3'}"]))


def _free_port() -> int:
    """A TCP port nobody listens on now (bound to port 0, the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_launch_writes_one_checkpoint(dataset, tmp_path):
    """Two CPU processes (DDP over gloo) train, checkpoint once (one RNG state per process) and save once.

    accelerate 1.x's own launcher starts several CPU processes only through MPI (``--mpirun_hostfile``), so the
    processes are started with torchrun and ``ACCELERATE_USE_CPU=1``; accelerate then runs as MULTI_CPU."""
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(ROOT / "training" / "train.py"), "--config", str(TINY), "--data", str(dataset), "--output", str(out),
           "--set", "optim.max_steps=2", "--set", "output.checkpointing_steps=2",
           "--set", "output.validation_steps=0"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"]
    states = sorted(p.name for p in (out / "checkpoint-2").glob("random_states_*.pkl"))
    assert states == ["random_states_0.pkl", "random_states_1.pkl"]  # two processes really ran
    assert (out / "model_index.json").is_file()
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2  # main-process I/O only


def test_training_options_run_together(dataset, tmp_path):
    """EMA, min-SNR weighting, gradient checkpointing, accumulation, region discriminators, 8-bit Adam fallback,
    ControlNet-only training and a constant facial weight all run (2 optimiser steps)."""
    out = train(_cfg(dataset, tmp_path / "opts", "optim.max_steps=2", "optim.ema=true", "optim.min_snr_gamma=5",
                     "optim.gradient_accumulation_steps=2", "optim.adam_8bit=true", "model.gradient_checkpointing=true",
                     "facial.gan_weight=0.1", "facial.mode=constant", "model.train_lora=false",
                     "output.checkpointing_steps=100"))  # fmt: skip
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(logs) == 2 and all("facial_gan_d" in r and r["facial_weight"] == 1.0 for r in logs)
    assert not (out / LORA_WEIGHT_NAME).exists() and (out / "controlnet").is_dir()


def test_checkpoint_folders_latest_pruning_and_resume_point(tmp_path):
    for step in (10, 2, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-tmp").mkdir()  # not a checkpoint: ignored
    (tmp_path / "checkpoint-7").write_text("a file, not a folder")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10", "checkpoint-100"]
    assert resolve_checkpoint(tmp_path, LATEST) == tmp_path / "checkpoint-100"
    assert resolve_checkpoint(tmp_path / "empty", LATEST) is None
    with pytest.raises(FileNotFoundError, match="latest"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-5"))
    assert checkpoint_step(tmp_path / "checkpoint-10") == 10
    with pytest.raises(ValueError, match="checkpoint-500"):
        checkpoint_step("checkpoint-tmp")
    prune_checkpoints(tmp_path, 2)  # room for the one about to be saved: keep the newest limit - 1
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-100"]
    prune_checkpoints(tmp_path, None)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-100"]
    # 4 optimiser steps per epoch, 2 batches each: step 10 is 2 steps (4 batches) into epoch 2
    assert ResumePoint.at(10, 4, 2) == ResumePoint(global_step=10, first_epoch=2, skip_batches=4)
    assert ResumePoint() == ResumePoint(0, 0, 0)


def test_train_log_reading(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate([4, 3, 2, 1])))
    assert read_losses(log) == [4.0, 3.0, 2.0, 1.0]
    assert loss_trend(log, window=2) == (3.5, 1.5)
    log.write_text(log.read_text() + '{"step": 5, "lo')
    with pytest.raises(ValueError, match=r"train_log\.jsonl:5"):
        read_losses(log)
    with pytest.raises(FileNotFoundError):
        read_losses(tmp_path / "missing.jsonl")


def test_cli_flags_are_config_overrides_and_errors_exit_2(tmp_path, capsys):
    import argparse

    from authface.cli.train import add_arguments, overrides_from_args, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "ds", "--output", "out", "--resume-from-checkpoint", "latest",
                              "--max_steps", "7", "--set", "optim.learning_rate=5e-5"])  # fmt: skip
    assert overrides_from_args(args) == ["data.dataset=ds", "output.output_dir=out",
                                         "output.resume_from_checkpoint=latest", "optim.max_steps=7",
                                         "optim.learning_rate=5e-5"]  # fmt: skip
    assert run(parser.parse_args(["--config", str(TINY), "--set", "optim.max_stpes=3"])) == 2
    assert "did you mean 'optim.max_steps'" in capsys.readouterr().err
    assert run(parser.parse_args(["--config", str(TINY), "--output", str(tmp_path / "o")])) == 2
    assert "--data" in capsys.readouterr().err
