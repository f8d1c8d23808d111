"""Speed features (issue 13): the condition-embedding cache, speed options, few-step schedules over a grid, and the
GPU suite's CPU dry run (so that it cannot rot)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import diffusers
import pytest
import torch

from authface.models.few_step import (
    DEFAULT_TCD_ETA,
    few_step_settings,
    guidance_scale_embedding,
    img2img_timesteps,
)
from authface.models.speed import cache_condition_embedding, speed_up, warm_up

ROOT = Path(__file__).resolve().parents[1]
SCHEDULERS = ["DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "EulerDiscreteScheduler",
              "EulerAncestralDiscreteScheduler", "LCMScheduler", "TCDScheduler", "PNDMScheduler",
              "DDPMScheduler"]  # fmt: skip


@pytest.fixture(scope="module")
def pipe():
    from authface.testing.tiny_model import tiny_pipeline

    return tiny_pipeline(seed=0)


def _call(pipe, **kw):
    x = torch.linspace(-1, 1, 2 * 3 * 64 * 64).reshape(2, 3, 64, 64)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    args = dict(num_inference_steps=3, strength=1.0, guidance_scale=3.0, color_fix="none", output_type="pt",
                batch_size=2)  # fmt: skip
    return pipe(x, generator=gens, **{**args, **kw}).images


def test_condition_embedding_is_computed_once_per_batch_with_the_same_result(pipe):
    embedding = pipe.controlnet.controlnet_cond_embedding
    plain = _call(pipe)
    with cache_condition_embedding(pipe.controlnet) as stats:
        cached = _call(pipe)
        assert "forward" in vars(embedding)
    assert "forward" not in vars(embedding)  # restored: the model is unchanged afterwards
    assert stats == {"computed": 1, "reused": 2}  # 3 steps, one batch
    assert torch.equal(plain, cached)
    with cache_condition_embedding(pipe.controlnet) as stats:
        _call(pipe, batch_size=1)  # two batches: two condition tensors
    assert stats == {"computed": 2, "reused": 4}


def test_condition_embedding_cache_stays_out_of_autograd(pipe):
    cond = torch.rand(1, 3, 64, 64)
    with cache_condition_embedding(pipe.controlnet) as stats:
        with torch.enable_grad():
            pipe.controlnet.controlnet_cond_embedding(cond)
            pipe.controlnet.controlnet_cond_embedding(cond)
        with torch.no_grad():
            a = pipe.controlnet.controlnet_cond_embedding(cond)
            cond.add_(0.5)  # in place: a new version, recomputed
            b = pipe.controlnet.controlnet_cond_embedding(cond)
    assert stats == {"computed": 2, "reused": 0} and not torch.equal(a, b)


def test_speed_up_channels_last_and_warm_up(pipe):
    from authface.testing.tiny_model import tiny_pipeline

    fast = tiny_pipeline(seed=0)
    speed_up(fast, channels_last=True, compile=False)
    weight = fast.unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert warm_up(fast, size=64, batch_size=2, num_inference_steps=2, strength=1.0) > 0
    assert (_call(fast) - _call(pipe)).abs().max() < 1e-4


@pytest.mark.parametrize("name", SCHEDULERS)
def test_strength_times_steps_grid_runs_or_is_refused_up_front(pipe, name):
    """Every (steps, strength) either gives timesteps that sample (finite) or a ValueError naming the fix."""
    scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config)
    for steps in (1, 2, 4):
        for strength in (0.1, 0.3, 0.5, 1.0):
            try:
                timesteps = img2img_timesteps(scheduler, steps, strength)
            except ValueError as e:
                assert "--steps" in str(e) or "--scheduler" in str(e), str(e)
                assert name not in ("LCMScheduler", "TCDScheduler"), (steps, strength, e)
                continue
            latents = torch.randn(1, 4, 8, 8)
            if strength < 1:
                latents = scheduler.add_noise(latents, torch.randn_like(latents), timesteps[:1])
            else:
                latents = latents * scheduler.init_noise_sigma
            for t in timesteps:
                scheduler.scale_model_input(latents, t)
                latents = scheduler.step(torch.randn_like(latents) * 0.1, t, latents, return_dict=False)[0]
            assert torch.isfinite(latents).all(), (name, steps, strength)
            if name in ("LCMScheduler", "TCDScheduler"):
                assert len(timesteps) == steps  # few-step schedulers run --steps steps at every strength
            elif strength == 1.0:
                assert float(timesteps[0]) >= scheduler.config.num_train_timesteps // 2


def test_few_step_cfg_handling():
    from diffusers import DDIMScheduler, LCMScheduler, TCDScheduler

    class Unet:
        def __init__(self, dim):
            self.config = type("C", (), {"time_cond_proj_dim": dim})()

    lcm = LCMScheduler()
    assert few_step_settings(lcm, Unet(None), 4.0).guidance_scale == 1.0  # LoRA-distilled: CFG off
    embedded = few_step_settings(lcm, Unet(256), 8.5)
    assert embedded.guidance_scale == 1.0 and embedded.embed_guidance == 7.5
    tcd = few_step_settings(TCDScheduler(), Unet(None), 1.5)
    assert tcd.guidance_scale == 1.5 and tcd.step_kwargs == {"eta": DEFAULT_TCD_ETA}
    assert few_step_settings(DDIMScheduler(), Unet(None), 4.0).guidance_scale == 4.0
    emb = guidance_scale_embedding(torch.tensor([7.5, 0.0]), 256)
    assert emb.shape == (2, 256) and torch.equal(emb[1, :128], torch.zeros(128))


def test_gpu_suite_dry_run_passes_on_cpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    env.pop("OUT", None)
    proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "--dry-run", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    table = (tmp_path / "suite.md").read_text()
    for case in ("AuthFace 64²", "1-step (tiny", "4-step (tiny", "guidance: plain", "training:"):
        assert case in table, table


# ---------------------------------------------------------------- through the pipeline
def _count_unet_calls(pipe):
    calls = []
    handle = pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("name", SCHEDULERS)
def test_pipeline_grid_every_combination_runs_or_is_refused_before_any_work(pipe, name):
    from diffusers import DDIMScheduler

    x = torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)
    pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config)
    calls, handle = _count_unet_calls(pipe)
    try:
        for steps in (1, 2, 4):
            for strength in (0.1, 0.3, 0.5, 1.0):
                calls.clear()
                try:
                    out = pipe(
                        x,
                        num_inference_steps=steps,
                        strength=strength,
                        guidance_scale=2.0,
                        color_fix="none",
                        output_type="pt",
                        generator=torch.Generator().manual_seed(0),
                    )
                except ValueError as e:  # fmt: skip
                    assert not calls, (name, steps, strength)  # refused up front: no model call
                    assert "--steps" in str(e) or "--scheduler" in str(e), str(e)
                    continue
                assert torch.isfinite(out.images).all()
                if name in ("LCMScheduler", "TCDScheduler"):
                    cfg = 2 if name == "TCDScheduler" else 1  # LCM (LoRA-distilled UNet): CFG off
                    assert len(calls) == steps and pipe.guidance_scale == (2.0 if cfg == 2 else 1.0)
    finally:
        handle.remove()
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)


def test_one_step_model_folder_restores_in_one_unet_call(tmp_path, pipe):
    from authface.models.one_step import TRAIN_CONFIG_NAME
    from authface.pipeline import AuthFacePipeline

    pipe.save_pretrained(tmp_path, safe_serialization=True)
    multi = AuthFacePipeline.from_pretrained(tmp_path)
    assert multi.one_step_timestep is None
    (tmp_path / TRAIN_CONFIG_NAME).write_text('{"config": {}, "one_step": {"timestep": 500}}')
    one = AuthFacePipeline.from_pretrained(tmp_path)
    one.set_progress_bar_config(disable=True)
    assert one.one_step_timestep == 500
    calls, handle = _count_unet_calls(one)
    x = torch.linspace(-1, 1, 3 * 3 * 64 * 64).reshape(3, 3, 64, 64)
    out = one(x, num_inference_steps=20, guidance_scale=7.0, batch_size=3, color_fix="none", output_type="pt")
    handle.remove()
    assert len(calls) == 1 and out.images.shape == (3, 3, 64, 64) and torch.isfinite(out.images).all()
    assert one.guidance_scale == 1.0  # no CFG
    calls, handle = _count_unet_calls(one)
    one(x, batch_size=2, color_fix="none", output_type="pt")
    handle.remove()
    assert len(calls) == 2  # one call per face batch
    # the same through the explicit argument of a multi-step pipeline
    calls, handle = _count_unet_calls(multi)
    again = multi(x, one_step_timestep=500, batch_size=3, color_fix="none", output_type="pt").images
    handle.remove()
    assert len(calls) == 1 and torch.allclose(again, out.images, atol=1e-5)


def test_lcm_with_a_guidance_embedded_unet_passes_timestep_cond():
    from diffusers import LCMScheduler, UNet2DConditionModel

    from authface.pipeline import AuthFacePipeline
    from authface.testing.tiny_model import tiny_components

    comps = tiny_components(seed=0)
    torch.manual_seed(0)
    comps["unet"] = UNet2DConditionModel.from_config(comps["unet"].config, time_cond_proj_dim=32)
    seen = []
    comps["unet"].register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw.get("timestep_cond")), with_kwargs=True
    )
    p = AuthFacePipeline(**{**comps, "scheduler": LCMScheduler.from_config(comps["scheduler"].config)})
    p.set_progress_bar_config(disable=True)
    x = torch.zeros(2, 3, 64, 64)
    p(
        x,
        num_inference_steps=2,
        strength=0.5,
        guidance_scale=8.0,
        color_fix="none",
        output_type="pt",
        batch_size=2,
    )
    assert len(seen) == 2 and all(c is not None and c.shape == (2, 32) for c in seen)


def test_one_step_mode_refuses_guidance_objectives(pipe):
    from authface.guidance import FidelityGuidance

    with pytest.raises(ValueError, match="one-step mode has no loop"):
        pipe(torch.zeros(1, 3, 64, 64), one_step_timestep=500, objectives=[FidelityGuidance(scale=0.5)])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from authface.testing.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


@pytest.mark.parametrize("scheduler", ["lcm", "tcd"])
def test_cli_restores_with_few_step_schedulers(tiny_model, tmp_path, astronaut, scheduler):
    from PIL import Image

    from authface.cli import main

    Image.fromarray(astronaut).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                 "--scheduler", scheduler, "--steps", "2", "--set", "face.crop_size=64"]) == 0  # fmt: skip
    assert (tmp_path / "out" / "a.png").is_file()


def test_cli_restores_a_one_step_model_in_one_unet_call_per_batch(
    tiny_model, tmp_path, astronaut, monkeypatch
):
    import shutil

    from diffusers import UNet2DConditionModel
    from PIL import Image

    from authface.cli import main
    from authface.models.one_step import TRAIN_CONFIG_NAME

    model = tmp_path / "one-step"
    shutil.copytree(tiny_model, model)
    (model / TRAIN_CONFIG_NAME).write_text('{"config": {}, "one_step": {"timestep": 500}}')
    calls = []
    forward = UNet2DConditionModel.forward
    monkeypatch.setattr(
        UNet2DConditionModel, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k)
    )
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--steps", "20", "--set", "face.crop_size=64"]) == 0  # fmt: skip
    assert len(calls) == 1  # one face batch: one UNet call


def test_restore_cli_speed_switches_reach_the_pipeline(tiny_model_dir, astronaut, tmp_path, monkeypatch):
    """--channels-last and --compile are config keys (model.channels_last, model.compile) that build.py applies with
    speed_up; channels-last runs for real on CPU, compile is recorded (inductor needs a compiler toolchain)."""
    import numpy as np
    from PIL import Image

    import authface.models.speed as speed
    from authface.cli import main

    calls = []
    real = speed.speed_up
    monkeypatch.setattr(speed, "speed_up", lambda pipe, **kw: calls.append(kw) or real(pipe, channels_last=kw[
        "channels_last"], compile=False))  # fmt: skip
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir),
               "--set", "face.crop_size=64", "--steps", "2", "--channels-last", "--compile"])  # fmt: skip
    assert rc == 0 and calls == [{"channels_last": True, "compile": True}]
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).shape == astronaut.shape
