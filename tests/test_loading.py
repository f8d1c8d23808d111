"""The one loader: local folders, ControlNet assembly, LoRA, schedulers, devices; offline errors."""

from __future__ import annotations

import pytest
import torch

from authface.models.loading import (
    ModelNotFoundError,
    load_pipeline,
    resolve_device,
    resolve_dtype,
    set_scheduler,
)
from authface.testing.tiny_model import tiny_components, tiny_pipeline

KW = dict(num_inference_steps=2, strength=1.0, output_type="pt", color_fix="none")


def run(pipe, seed=0):
    pipe.set_progress_bar_config(disable=True)
    x = torch.zeros(1, 3, 64, 64)
    return pipe(x, generator=[torch.Generator().manual_seed(seed)], **KW).images


def test_model_folder_with_own_controlnet(tiny_model_dir):
    pipe = load_pipeline(str(tiny_model_dir))
    assert torch.equal(run(pipe), run(tiny_pipeline(seed=0)))


def test_plain_sd_folder_plus_separate_controlnet(tmp_path):
    from diffusers import StableDiffusionPipeline

    comps = tiny_components(seed=0)
    controlnet = comps.pop("controlnet")
    StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(tmp_path / "sd")
    controlnet.save_pretrained(tmp_path / "cn")
    with pytest.raises(ValueError, match="no ControlNet of its own"):
        load_pipeline(str(tmp_path / "sd"), controlnet="none")
    pipe = load_pipeline(str(tmp_path / "sd"), controlnet=str(tmp_path / "cn"))
    assert torch.equal(run(pipe), run(tiny_pipeline(seed=0)))


def test_lora_file_changes_output(tiny_model_dir, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from authface.pipeline import AuthFacePipeline

    pipe = load_pipeline(str(tiny_model_dir))
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(0)
    for name, p in pipe.unet.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # LoRA B starts at zero; make the adapter do something
    AuthFacePipeline.save_lora_weights(tmp_path, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                       weight_name="face_lora.safetensors")
    base = run(load_pipeline(str(tiny_model_dir)))
    with_lora = run(load_pipeline(str(tiny_model_dir), lora=str(tmp_path / "face_lora.safetensors")))
    assert (base - with_lora).abs().max() > 1e-3
    half = run(load_pipeline(str(tiny_model_dir), lora=str(tmp_path / "face_lora.safetensors"), lora_scale=0.0))
    assert torch.allclose(base, half, atol=1e-5)


def test_missing_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_pipeline(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_pipeline("./model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json"):
        load_pipeline(str(tmp_path / "empty"))
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match="not a checkpoint file"):
        load_pipeline(str(tmp_path / "weights.txt"))


def test_hub_id_offline_error_explains_local_options():
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline("someone/uncached-model")
    msg = str(info.value)
    assert "someone/uncached-model" in msg and "HF_HUB_OFFLINE" in msg
    assert "--model /path/to/folder" in msg and "single-file" in msg and "tiny_model" in msg


def test_missing_lora_and_controlnet(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="LoRA"):
        load_pipeline(str(tiny_model_dir), lora=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelNotFoundError, match="ControlNet"):
        load_pipeline(str(tiny_model_dir), controlnet="someone/uncached-controlnet")


@pytest.mark.parametrize("name", ["ddim", "dpm++", "unipc", "euler", "euler_a"])
def test_schedulers(name):
    pipe = tiny_pipeline(seed=0)
    set_scheduler(pipe, name)
    out = pipe(torch.zeros(1, 3, 64, 64), generator=[torch.Generator().manual_seed(0)], num_inference_steps=3,
               strength=0.7, output_type="pt")
    assert torch.isfinite(out.images).all()


def test_unknown_scheduler():
    with pytest.raises(ValueError, match="unipc"):
        set_scheduler(tiny_pipeline(seed=0), "heun2")


def test_device_and_dtype():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
