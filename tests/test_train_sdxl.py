"""Fine-tuning on other bases: SDXL (two text encoders, pooled embedding, micro-conditioning) and SD 2.x-style
v-prediction with a zero-terminal-SNR schedule, on tiny random components built in code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from authface.config import TrainConfig, load_config
from authface.testing.tiny_model import save_tiny_sdxl_model, tiny_components
from authface.training import LORA_WEIGHT_NAME, setup_run, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny.yaml"


@pytest.fixture(scope="module")
def xl_base(tmp_path_factory) -> Path:
    """A plain diffusers SDXL base folder (StableDiffusionXLPipeline layout, no ControlNet)."""
    return save_tiny_sdxl_model(tmp_path_factory.mktemp("xl") / "base", controlnet=False)


def _cfg(dataset: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [f"data.dataset={dataset}", f"output.output_dir={out}",
                                           "output.validation_steps=0", *overrides])  # fmt: skip


def test_sdxl_training_cli_then_restore_cli(dataset, xl_base, tmp_path, astronaut, train_script):
    """training/train.py on an SDXL base folder (LoRA + ControlNet from its UNet + quality prior, gradient
    checkpointing), validation grid included, then `authface restore` on the model folder it wrote."""
    from authface.cli import main as authface_main

    out = tmp_path / "xl-run"
    rc = train_script(["--config", str(TINY), "--data", str(dataset), "--output", str(out), "--max-steps", "3",
                      "--set", f"model.base={xl_base}", "--set", "output.validation_steps=3",
                      "--set", "data.caption_dropout=0.5", "--set", "model.gradient_checkpointing=true"])  # fmt: skip
    assert rc == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "AuthFaceXLPipeline" and "text_encoder_2" in index
    cn = json.loads((out / "controlnet" / "config.json").read_text())
    assert cn["class_embed_type"] == "timestep" and cn["addition_embed_type"] == "text_time"
    from safetensors.torch import load_file

    assert any("lora" in k for k in load_file(out / LORA_WEIGHT_NAME))
    assert (out / "validation" / "step-000003.png").is_file()
    losses = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)

    (tmp_path / "in").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "in" / "a.png")
    rc = authface_main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "restored"), "--model", str(out),
                        "--set", "face.crop_size=64", "--steps", "2", "--device", "cpu",
                        "--quality-target", "0.9"])  # fmt: skip
    assert rc == 0 and (tmp_path / "restored" / "a.png").is_file()


def test_sdxl_objective_conditions_like_the_pipeline(dataset, xl_base, tmp_path, monkeypatch):
    """The training condition is the inference condition: the same prompt embeddings and pooled embedding as
    AuthFaceXLPipeline, time ids of a whole R x R crop, and dropped captions as the zeros SDXL's pipeline feeds as
    the unconditional input; both the UNet and the ControlNet receive them."""
    from authface.training.export import assemble_pipeline

    run = setup_run(_cfg(dataset, tmp_path / "o", f"model.base={xl_base}", "data.caption_dropout=0.0"))
    obj = run.objective
    pipe = assemble_pipeline(run.accelerator, run.comps, run.unet, run.controlnet)
    cond, _ = pipe.encode_prompt("a face", "", torch.device("cpu"), torch.float32, do_cfg=True)
    embeds, added = obj.encode_text(["a face", "a face"], dropped=[False, True])
    assert torch.allclose(embeds[0], cond[0][0]) and torch.allclose(added["text_embeds"][0], cond[1][0])
    assert embeds[1].abs().max() == 0 and added["text_embeds"][1].abs().max() == 0
    assert added["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]] * 2

    seen = {}
    for name, module in (("unet", run.comps["unet"]), ("controlnet", run.comps["controlnet"])):
        forward = module.forward

        def spy(*args, _name=name, _forward=forward, **kwargs):
            seen[_name] = kwargs.get("added_cond_kwargs")
            return _forward(*args, **kwargs)

        monkeypatch.setattr(module, "forward", spy)
    batch = next(iter(run.loader))
    losses = obj(batch, run.unet, run.controlnet, run.accelerator.autocast)
    assert torch.isfinite(losses.loss)
    for name in ("unet", "controlnet"):
        assert set(seen[name]) == {"text_embeds", "time_ids"}, name


def test_sdxl_refiner_type_unet_is_refused_by_name(dataset, xl_base, tmp_path):
    from authface.training.loop import sdxl_conditioning

    comps = {"text_encoder_2": torch.nn.Linear(1, 1), "tokenizer_2": None}
    comps["text_encoder_2"].config = type("C", (), {"projection_dim": 7})()
    comps["text_encoder_2"].device = torch.device("cpu")
    from diffusers import UNet2DConditionModel

    comps["unet"] = UNet2DConditionModel.from_pretrained(xl_base / "unet")
    with pytest.raises(ValueError, match="refiner"):
        sdxl_conditioning(comps, 64)


def _v_components(cfg):
    return tiny_components(seed=cfg.seed, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                           timestep_spacing="trailing")  # fmt: skip


def test_v_prediction_zero_terminal_snr_training(dataset, tmp_path, monkeypatch):
    """v targets, min-SNR weights and the facial loss's x̂0 stay finite up to t = 999 (zero SNR), and the model
    folder keeps the v-prediction, zero-terminal-SNR scheduler."""
    cfg = _cfg(dataset, tmp_path / "v", "optim.max_steps=2", "optim.min_snr_gamma=5.0", "facial.weight=0.5")
    run = setup_run(cfg, build_components=_v_components)
    obj = run.objective
    assert obj.prediction_type == "v_prediction" and float(obj.alphas[-1]) < 1e-6
    batch = next(iter(run.loader))
    randint = torch.randint
    monkeypatch.setattr(torch, "randint", lambda lo, hi, size, **kw: torch.full(size, hi - 1, dtype=torch.long))
    last = obj(batch, run.unet, run.controlnet, run.accelerator.autocast)  # every sample at t = 999
    monkeypatch.setattr(torch, "randint", randint)
    assert torch.isfinite(last.loss) and torch.isfinite(last.pred_x0).all()
    last.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in run.trainable if p.grad is not None)

    out = train(cfg, build_components=_v_components)
    losses = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    sched = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "v_prediction" and sched["rescale_betas_zero_snr"] is True


def test_epsilon_with_zero_terminal_snr_is_refused_by_name(dataset, tmp_path):
    def eps_zero_snr(cfg):
        return tiny_components(seed=cfg.seed, rescale_betas_zero_snr=True, timestep_spacing="trailing")

    with pytest.raises(ValueError, match="v_prediction"):
        setup_run(_cfg(dataset, tmp_path / "e"), build_components=eps_zero_snr)


@pytest.mark.parametrize("force_upcast", [True, False])
def test_sdxl_vae_stays_float32_under_fp16_unless_fixed(force_upcast):
    """SDXL's VAE overflows in float16 (NaN latents, black faces): training keeps it float32, as the pipeline
    upcasts it, unless its config clears force_upcast (an fp16-fixed VAE); SD 1.x VAEs are cast."""
    from authface.config import TrainModelConfig
    from authface.testing.tiny_model import tiny_sdxl_components
    from authface.training.components import configure_trainable, place_components

    comps = tiny_sdxl_components()
    comps["vae"].register_to_config(force_upcast=force_upcast)
    configure_trainable(comps, TrainModelConfig())
    place_components(comps, "cpu", torch.float16)
    assert comps["vae"].dtype == (torch.float32 if force_upcast else torch.float16)
    assert comps["text_encoder"].dtype == comps["text_encoder_2"].dtype == torch.float16
    sd = tiny_components()
    configure_trainable(sd, TrainModelConfig())
    place_components(sd, "cpu", torch.float16)
    assert sd["vae"].dtype == torch.float16


def test_text_cache_refills_without_losing_a_batch_caption_and_is_batch_independent(dataset, tmp_path, monkeypatch):
    """A full cache is cleared before a batch is encoded (no KeyError for a caption cached before the clear), and
    each caption is encoded alone, so its embedding does not depend on the captions that shared its batch."""
    import authface.training.objective as objective

    monkeypatch.setattr(objective, "TEXT_CACHE_SIZE", 2)
    run = setup_run(_cfg(dataset, tmp_path / "c"))
    obj = run.objective
    first, _ = obj.encode_text(["a face", "an old photo"])
    again, _ = obj.encode_text(["a face", "a third caption"])  # cache full: cleared, both encoded
    assert torch.equal(again[0], first[0])
    obj._text_cache.clear()
    alone, _ = obj.encode_text(["an old photo"])
    assert torch.equal(alone[0], first[1])

