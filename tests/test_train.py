"""Fine-tuning end to end on tiny random components: prepare -> train -> checkpoint -> resume -> restore."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from authface.config import ConfigError, TrainConfig, load_config
from authface.data.prepare import ManifestError
from authface.training import (
    COMPLETE_MARKER,
    LATEST,
    LORA_WEIGHT_NAME,
    ResumePoint,
    TrainingDataError,
    checkpoint_step,
    discriminator_step,
    generator_step,
    list_checkpoints,
    loss_trend,
    optimise_batch,
    prune_checkpoints,
    read_losses,
    setup_run,
    train,
)
from authface.training.checkpoints import resolve_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny.yaml"


def _cfg(dataset: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [f"data.dataset={dataset}", f"output.output_dir={out}",
                                           "output.validation_steps=0", *overrides])  # fmt: skip


def _trained_state(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = {f"lora.{k}": v for k, v in load_file(out / LORA_WEIGHT_NAME).items()}
    state.update(
        {
            f"cn.{k}": v
            for k, v in load_file(out / "controlnet" / "diffusion_pytorch_model.safetensors").items()
        }
    )
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
    sd = StableDiffusionPipeline(
        **comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    sd.load_lora_weights(str(out), weight_name=LORA_WEIGHT_NAME)
    # and the CLI restores with it, asking for a quality
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "restored"), "--model", str(out),
                 "--quality-target", "0.9", "--set", "face.crop_size=64", "--steps", "2"]) == 0  # fmt: skip


def test_resume_reaches_the_same_state(dataset, tmp_path, monkeypatch, caplog):
    """Resume from 'latest' skips what a killed save left and stray names, and loads no skipped sample."""
    from authface.data.dataset import FaceRestorationDataset

    common = (
        "optim.learning_rate=1e-3",
        "output.checkpointing_steps=3",
        "output.checkpoints_total_limit=null",
    )
    full = train(_cfg(dataset, tmp_path / "full", "optim.max_steps=6", *common))
    part = tmp_path / "part"
    train(_cfg(dataset, part, "optim.max_steps=3", *common))
    (part / "checkpoint-900").mkdir()  # a kill during saving: no state files
    (part / "checkpoint-900" / "model.safetensors").write_bytes(b"half")
    (part / "checkpoint-final").mkdir()
    (part / "checkpoint-100.safetensors").write_bytes(b"x")
    loaded = []
    getitem = FaceRestorationDataset.__getitem__
    monkeypatch.setattr(
        FaceRestorationDataset, "__getitem__", lambda self, i: loaded.append(i) or getitem(self, i)
    )
    resumed = train(_cfg(dataset, part, "optim.max_steps=6", "output.resume_from_checkpoint=latest", *common))
    # 2 optimiser steps per epoch: step 3 is one batch into epoch 1; the 3 remaining steps load 3 batches of 2
    assert len(loaded) == 6, loaded
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping ")]
    for name in ("checkpoint-900", "checkpoint-final", "checkpoint-100.safetensors"):
        assert sum(name + ":" in m for m in skipped) == 1, (name, skipped)  # one warning each
    assert (part / "checkpoint-6" / COMPLETE_MARKER).is_file()
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
    """Two CPU processes (DDP over gloo) train, with the region discriminators on, checkpoint once (one RNG
    state per process) and save once.

    accelerate 1.x's own launcher starts several CPU processes only through MPI (``--mpirun_hostfile``), so the
    processes are started with torchrun and ``ACCELERATE_USE_CPU=1``; accelerate then runs as MULTI_CPU."""
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(ROOT / "training" / "train.py"), "--config", str(TINY), "--data", str(dataset), "--output", str(out),
           "--set", "optim.max_steps=2", "--set", "output.checkpointing_steps=2",
           "--set", "output.validation_steps=0", "--set", "facial.gan_weight=0.1"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"]
    assert (out / "checkpoint-2" / COMPLETE_MARKER).is_file()
    assert all(
        "facial_gan_d" in json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()
    )
    states = sorted(p.name for p in (out / "checkpoint-2").glob("random_states_*.pkl"))
    assert states == ["random_states_0.pkl", "random_states_1.pkl"]  # two processes really ran
    assert (out / "model_index.json").is_file()
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2  # main-process I/O only


def test_training_options_run_together(dataset, tmp_path):
    """EMA, min-SNR weighting, gradient checkpointing, accumulation, region discriminators, the identity loss,
    ControlNet-only training and a constant facial weight all run (2 optimiser steps)."""
    out = train(_cfg(dataset, tmp_path / "opts", "optim.max_steps=2", "optim.ema=true", "optim.min_snr_gamma=5",
                     "optim.gradient_accumulation_steps=2", "model.gradient_checkpointing=true",
                     "facial.gan_weight=0.1", "facial.mode=constant", "model.train_lora=false",
                     "identity.weight=0.1", "identity.mode=constant", "identity.kind=dlib-distance",
                     "output.checkpointing_steps=100"))  # fmt: skip
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(logs) == 2 and all("facial_gan_d" in r and r["facial_weight"] == 1.0 for r in logs)
    assert all(r["identity_samples"] == 1.0 and r["identity_distance"] > 0 for r in logs)
    assert not (out / LORA_WEIGHT_NAME).exists() and (out / "controlnet").is_dir()


def test_adam_8bit_without_bitsandbytes_stops_before_loading(dataset, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'authface\[train\]'"):
        train(_cfg(dataset, tmp_path / "8bit", "optim.adam_8bit=true"),
              build_components=lambda cfg: pytest.fail("models loaded before the check"))  # fmt: skip


def _complete(folder: Path) -> Path:
    folder.mkdir()
    (folder / COMPLETE_MARKER).write_text("{}")
    return folder


def test_checkpoint_folders_latest_pruning_and_resume_point(tmp_path):
    for step in (10, 2, 100):
        _complete(tmp_path / f"checkpoint-{step}")
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


def test_incomplete_checkpoints_neither_resume_nor_take_pruning_slots(tmp_path, caplog):
    _complete(tmp_path / "checkpoint-2")
    _complete(tmp_path / "checkpoint-10")
    (tmp_path / "checkpoint-900").mkdir()  # killed while saving
    (tmp_path / "checkpoint-final").mkdir()
    (tmp_path / "checkpoint-100.safetensors").write_bytes(b"x")
    assert resolve_checkpoint(tmp_path, LATEST) == tmp_path / "checkpoint-10"
    with pytest.raises(FileNotFoundError, match="incomplete"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-900"))
    prune_checkpoints(tmp_path, 2)  # room for one more: only checkpoint-2 goes, never 10 because of 900
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-10"]
    assert (tmp_path / "checkpoint-900").is_dir()  # incomplete folders are left alone
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3 and sum("checkpoint-900:" in w and "incomplete" in w for w in warnings) == 1


def _gan_run(dataset, out, *overrides):
    return setup_run(_cfg(dataset, out, "facial.gan_weight=0.1", "facial.mode=constant", "optim.max_grad_norm=0",
                          "output.log_with=none", *overrides))  # fmt: skip


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_discriminator_update_is_the_update_of_the_discriminator_loss_alone(dataset, tmp_path):
    """The generator step leaves the discriminators' weights and gradients untouched; their step equals plain
    AdamW on their own loss, computed by hand; the identity term's gradients reach the trained parameters."""
    import copy

    run = _gan_run(dataset, tmp_path / "gan", "identity.weight=0.5", "identity.mode=constant")
    disc = run.objective.facial.discriminators
    batch = next(iter(run.loader))
    probe = run.objective(batch, run.unet, run.controlnet, run.accelerator.autocast)
    grads = torch.autograd.grad(probe.identity_loss, run.trainable, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    before = _params(disc)
    reference = copy.deepcopy(disc)
    with run.accelerator.accumulate(*run.models, run.discriminators):
        losses = generator_step(run, batch)
        assert all(torch.equal(a, b) for a, b in zip(before, _params(disc)))
        assert all(p.grad is None for p in disc.parameters())
        assert all(p.requires_grad for p in disc.parameters())  # frozen only during the generator step
        discriminator_step(run, losses)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=run.cfg.facial.disc_learning_rate)
    run.objective.facial.discriminator_loss(
        losses.pred_x0, losses.latents, losses.boxes, reference
    ).backward()
    ref_opt.step()
    after = _params(disc)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    worst = max((a - b).abs().max().item() for a, b in zip(after, _params(reference)))
    assert worst < 1e-7, worst


def test_discriminators_step_once_per_accumulated_step(dataset, tmp_path):
    run = _gan_run(dataset, tmp_path / "acc", "optim.gradient_accumulation_steps=2")
    disc = run.objective.facial.discriminators
    batches = iter(run.loader)
    before = _params(disc)
    optimise_batch(run, next(batches))
    assert not run.accelerator.sync_gradients
    assert all(torch.equal(a, b) for a, b in zip(before, _params(disc)))  # accumulating, no step
    assert all(p.grad is not None for p in disc.parameters())
    optimise_batch(run, next(batches))
    assert run.accelerator.sync_gradients
    assert any(not torch.equal(a, b) for a, b in zip(before, _params(disc)))
    assert all(p.grad is None for p in disc.parameters())  # zeroed after the step


def test_mixed_precision_casts_the_frozen_base_and_saves_it_in_float32(dataset, tmp_path, request):
    """Frozen weights in the compute dtype, trained ones in float32 (what a GPU run gets; CPU autocast keeps the
    UNet and ControlNet float32); the saved model's frozen weights are the float32 base, not their bf16 rounding."""
    from accelerate.state import AcceleratorState
    from safetensors.torch import load_file

    from authface.testing.tiny_model import tiny_components
    from authface.training.components import configure_trainable, load_components, place_components
    from authface.training.export import full_precision_models

    cfg = _cfg(dataset, tmp_path / "bf16", "optim.mixed_precision=bf16", "optim.max_steps=1",
               "output.checkpointing_steps=100", "model.train_controlnet=false")  # fmt: skip
    c = load_components(cfg)
    configure_trainable(c, cfg.model)
    place_components(c, "cpu", torch.bfloat16, cast_denoisers=True)
    assert {p.dtype for m in (c["vae"], c["text_encoder"]) for p in m.parameters()} == {torch.bfloat16}
    unet = dict(c["unet"].named_parameters())
    assert {p.dtype for n, p in unet.items() if "lora_" in n} == {torch.float32}
    assert {p.dtype for n, p in unet.items() if "lora_" not in n} == {torch.bfloat16}
    cn = dict(c["controlnet"].named_parameters())
    assert {p.dtype for n, p in cn.items() if n.startswith("class_embedding")} == {torch.float32}
    assert {p.dtype for n, p in cn.items() if not n.startswith("class_embedding")} == {torch.bfloat16}
    with torch.no_grad():
        unet[next(n for n in unet if "lora_B" in n)].add_(1.0)  # "trained"
    fresh, f_unet, _ = full_precision_models(cfg, load_components, c["unet"], c["controlnet"])
    assert all(p.dtype == torch.float32 for p in f_unet.parameters())
    assert all(torch.equal(p, unet[n]) for n, p in f_unet.named_parameters() if "lora_" in n)
    assert torch.equal(
        dict(f_unet.named_parameters())["conv_in.weight"], tiny_components(seed=0)["unet"].conv_in.weight
    )
    # a whole bf16 run (CPU autocast): the VAE saved is the float32 one
    AcceleratorState._reset_state(True)  # accelerate keeps one mixed-precision setting per process
    request.addfinalizer(lambda: AcceleratorState._reset_state(True))
    out = train(cfg)
    saved = load_file(out / "vae" / "diffusion_pytorch_model.safetensors")
    base = tiny_components(seed=0)["vae"].state_dict()
    assert all(torch.equal(saved[k], base[k]) for k in saved)


def test_image_check_decodes_only_the_validation_faces(dataset, tmp_path, monkeypatch):
    import shutil

    from authface import io
    from authface.training.data import make_training_data

    decoded = []
    read = io.read_image
    monkeypatch.setattr(io, "read_image", lambda path, *a, **k: decoded.append(path) or read(path, *a, **k))
    cfg = _cfg(dataset, tmp_path / "unused")
    make_training_data(cfg.data, cfg.facial.regions, 2, 0, decode_first=1)
    assert len(decoded) == 1  # the one validation face; the other 3 are checked without a pixel decode
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    rec = json.loads((bad / "manifest.jsonl").read_text().splitlines()[-1])
    data = (bad / rec["file"]).read_bytes()
    (bad / rec["file"]).write_bytes(data[: len(data) // 2])  # truncated: header fine, pixels cut
    cfg = _cfg(bad, tmp_path / "unused")
    with pytest.raises(TrainingDataError, match=rec["file"]):
        make_training_data(cfg.data, cfg.facial.regions, 2, 0)


def test_x0_decoder_resizes_and_decodes_with_a_tiny_autoencoder(tmp_path):
    from diffusers import AutoencoderTiny

    from authface.training.objective import x0_decoder

    torch.manual_seed(0)
    tiny = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))  # fmt: skip
    latents = torch.randn(2, 4, 8, 8, requires_grad=True)  # a 64 px image's latent
    full = x0_decoder(tiny, None, 64)(latents)
    half = x0_decoder(tiny, 32, 64)(latents)
    assert full.shape == (2, 3, 64, 64) and half.shape == (2, 3, 32, 32) and full.dtype == torch.float32
    half.mean().backward()
    assert latents.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="tiny_decoder"):
        load_config(TrainConfig, TINY, ["identity.weight=0.1", "identity.decoder=tiny"])
    with pytest.raises(ConfigError, match="identity.kind"):
        load_config(TrainConfig, TINY, ["identity.kind=l2"])


def test_cli_shows_progress_and_the_checkpoint_it_resumed_from(dataset, tmp_path, capsys):
    """Long work shows progress everywhere: a periodic line when stderr is not a terminal, the resume point."""
    from authface.cli import main

    out = tmp_path / "run"
    args = ["train", "--config", str(TINY), "--data", str(dataset), "--output", str(out),
            "--set", "output.log_with=none", "--set", "output.validation_steps=0",
            "--set", "output.checkpointing_steps=2"]  # fmt: skip
    assert main([*args, "--max_steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "authface: training: 2/2 step (100%)" in err and "loss=" in err and "lr=" in err
    assert main([*args, "--max_steps", "3", "--resume-from-checkpoint", "latest"]) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "checkpoint-2 at step 2" in err and "training: 3/3 step" in err


# ---------------------------------------------------------------- one-step training (issue 13)
def _one_step_cfg(dataset: Path, out: Path, *overrides: str, t: int = 500) -> TrainConfig:
    cfg = _cfg(dataset, out, *overrides)
    # set as attributes: works whether or not TrainModelConfig declares the one-step fields yet
    cfg.model.one_step, cfg.model.one_step_t, cfg.model.one_step_pixel_weight = True, t, 1.0
    return cfg


def test_one_step_training_lowers_the_loss_and_records_t(dataset, tmp_path):
    from authface.models.one_step import one_step_timestep
    from authface.training.one_step import OneStepObjective

    cfg = _one_step_cfg(dataset, tmp_path / "run", "optim.max_steps=24", "optim.learning_rate=2e-3",
                        "output.checkpointing_steps=100", "facial.gan_weight=0.1",
                        "output.validation_steps=24")  # fmt: skip
    run = setup_run(cfg)
    assert isinstance(run.objective, OneStepObjective) and run.objective.caption_dropout == 0.0
    out = train(cfg)
    first, last = loss_trend(out / "train_log.jsonl", window=6)
    assert last < first, (first, last)
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert all({"one_step_latent", "one_step_pixel", "facial_recon", "facial_gan_d"} <= r.keys() for r in logs)
    assert all(r["facial_weight"] > 1.0 for r in logs)  # t* = 500: the logit-normal weight at its peak
    assert one_step_timestep(out) == 500
    assert (out / "validation" / "step-000024.png").is_file()  # the grid restored in the one-step mode
    assert one_step_timestep(tmp_path) is None  # no record: a multi-step model


def test_one_step_losses_are_deterministic_for_a_fixed_timestep(dataset, tmp_path):
    """The one-step objective draws no timestep and no noise: the same batch gives the same loss."""
    run = setup_run(_one_step_cfg(dataset, tmp_path / "run", "facial.weight=0.5"))
    batch = next(iter(run.loader))
    torch.manual_seed(0)
    a = run.objective(batch, run.unet, run.controlnet, run.accelerator.autocast)
    torch.manual_seed(1)  # only the VAE posterior sample of the target draws randomness
    b = run.objective(batch, run.unet, run.controlnet, run.accelerator.autocast)
    assert abs(float(a.parts["one_step_pixel"]) - float(b.parts["one_step_pixel"])) < 5e-2
    assert a.pred_x0.shape == a.latents.shape and a.loss.requires_grad


def test_one_step_resume_reaches_the_same_state(dataset, straight_and_resumed):
    full, resumed = straight_and_resumed(functools.partial(_one_step_cfg, dataset), steps=6, every=3)
    a, b = _trained_state(full), _trained_state(resumed)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-5, worst


def test_one_step_timestep_is_checked(dataset, tmp_path):
    with pytest.raises(ValueError, match="one-step timestep"):
        setup_run(_one_step_cfg(dataset, tmp_path / "run", t=1000))
