"""Loading: component loaders (authface.models.loading) and whole-pipeline assembly (authface.pipeline):
local folders, ControlNet assembly, LoRA, schedulers, devices; missing paths and offline errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from authface.config import SchedulerName, choices
from authface.models.loading import (
    SCHEDULERS,
    ModelNotFoundError,
    ModelPathNotFoundError,
    is_hub_id,
    load_controlnet,
    load_tiny_decoder,
    resolve_device,
    resolve_dtype,
)
from authface.pipeline import AuthFacePipeline, configure_pipeline, load_pipeline, set_scheduler
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


@pytest.mark.parametrize("ref", ["./models/sd15", "/nonexistent/dir", "a/b/c", "models/sd15/", "tiny-model",
                                 "x.safetensors", "~/nope/model"])
def test_missing_local_path_is_reported_as_missing_not_as_a_hub_id(ref):
    with pytest.raises(ModelPathNotFoundError, match="does not exist") as info:
        load_pipeline(ref)
    assert isinstance(info.value, FileNotFoundError) and f"'{ref}'" in str(info.value)
    assert "owner/name" in str(info.value) and "single-file" in str(info.value)


def test_missing_component_paths_are_named(tmp_path):
    with pytest.raises(ModelPathNotFoundError, match="ControlNet path './cn/tile'"):
        load_controlnet("./cn/tile", torch.float32)
    with pytest.raises(ModelPathNotFoundError, match="tiny decoder path 'a/b/taesd'"):
        load_tiny_decoder("a/b/taesd", torch.float32)


def test_hub_id_grammar():
    assert is_hub_id("stable-diffusion-v1-5/stable-diffusion-v1-5") and is_hub_id("madebyollin/taesd")
    for ref in ("./a/b", "/a/b", "a/b/c", "gpt2", "a/model.safetensors", "a\\b", "a/b..c", "~/x"):
        assert not is_hub_id(ref), ref


def test_hub_id_offline_error_explains_local_options():
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline("someone/uncached-model")
    assert not isinstance(info.value, FileNotFoundError)  # a hub id, not a missing path
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


def test_scheduler_table_matches_the_config_choices():
    assert set(SCHEDULERS) | {"default"} == set(choices(SchedulerName))


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


def test_dtype_is_honoured_and_own_controlnet_can_be_replaced(tiny_model_dir, tmp_path):
    pipe = load_pipeline(str(tiny_model_dir), dtype=torch.float16)
    assert {m.dtype for m in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.controlnet)} == {torch.float16}
    other = tiny_pipeline(seed=1).controlnet
    other.save_pretrained(tmp_path / "cn")
    replaced = load_pipeline(str(tiny_model_dir), controlnet=str(tmp_path / "cn"))
    expected = AuthFacePipeline(**{**tiny_pipeline(seed=0).components, "controlnet": other})
    assert torch.equal(run(replaced), run(expected))


def test_configure_pipeline_options():
    pipe = tiny_pipeline(seed=0)
    assert configure_pipeline(pipe, torch.device("cpu")) is pipe
    assert pipe._progress_bar_config == {"disable": True}  # the CLI shows its own progress
    configure_pipeline(pipe, torch.device("cpu"), progress_bar=True)
    assert pipe._progress_bar_config == {"disable": False}
    with pytest.raises(ValueError, match="offload must be one of none, model, sequential"):
        configure_pipeline(pipe, torch.device("cpu"), offload="disk")
    with pytest.raises(ValueError, match="attention"):
        configure_pipeline(pipe, torch.device("cpu"), attention="flash")


def test_models_layer_does_not_import_the_pipeline_layer():
    code = "import sys, authface.models.loading; print([m for m in sys.modules if m.startswith('authface.pipeline')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- what a reference is, before loading (issue 9.11)
def _write_json(path, data):
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _no_weights_loaded(monkeypatch):
    """Make every diffusers weight loader fail loudly: the checks must decide without them."""
    from diffusers import ControlNetModel, DiffusionPipeline, StableDiffusionPipeline

    def boom(*args, **kwargs):
        raise AssertionError("weights were loaded")

    for cls in (DiffusionPipeline, StableDiffusionPipeline, ControlNetModel):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(boom))
        monkeypatch.setattr(cls, "from_single_file", classmethod(boom), raising=False)


def _safetensors(path, tensors):
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path))
    return path


def test_detect_base_reads_only_json_and_headers(tiny_model_dir, tmp_path, monkeypatch):
    from authface.models.loading import detect_base

    _no_weights_loaded(monkeypatch)
    assert detect_base(str(tiny_model_dir)) == "sd1"
    sd2 = tmp_path / "sd2"
    _write_json(sd2 / "model_index.json", {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "U"]})
    _write_json(sd2 / "unet" / "config.json", {"cross_attention_dim": 1024})
    assert detect_base(str(sd2)) == "sd2"
    _write_json(sd2 / "scheduler" / "scheduler_config.json", {"prediction_type": "v_prediction"})
    assert detect_base(str(sd2)) == "sd2-v"
    xl = tmp_path / "xl"
    _write_json(xl / "model_index.json", {"_class_name": "StableDiffusionXLPipeline"})
    assert detect_base(str(xl)) == "sdxl"
    xl_file = _safetensors(tmp_path / "xl.safetensors", {
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (4,),
        "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
    })  # fmt: skip
    assert detect_base(str(xl_file)) == "sdxl"
    v1_file = _safetensors(tmp_path / "v1.safetensors", {
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (4, 8, 1, 1),
        "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
    })  # fmt: skip
    assert detect_base(str(v1_file)) == "sd1"
    assert detect_base(str(tiny_model_dir / "controlnet")) == "controlnet"


def test_sdxl_goes_to_the_sdxl_loaders_decided_before_anything_is_loaded(tmp_path, monkeypatch):
    """SDXL used to be refused up front (issue 9); since issue 16 the family read from JSON files or the file
    header picks diffusers' SDXL pipeline loaders (and AuthFaceXLPipeline), again before any weights load."""
    from diffusers import StableDiffusionXLPipeline

    _no_weights_loaded(monkeypatch)
    chosen = []

    def xl_loader(cls, *args, **kwargs):
        chosen.append(args[0])
        raise RuntimeError("the SDXL loader was chosen")

    for name in ("from_pretrained", "from_single_file"):
        monkeypatch.setattr(StableDiffusionXLPipeline, name, classmethod(xl_loader))
    xl = tmp_path / "my-sdxl"
    _write_json(xl / "model_index.json", {"_class_name": "StableDiffusionXLPipeline", "scheduler": [None, None]})
    xl_file = _safetensors(tmp_path / "juggernautXL.safetensors", {
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (4,)})  # fmt: skip
    for ref in (str(xl), str(xl_file)):
        with pytest.raises(Exception, match="the SDXL loader was chosen|could not be loaded") as info:
            load_pipeline(ref, single_file_config=str(xl))
        assert "SDXL bases are not supported" not in str(info.value)
    assert chosen == [str(xl), str(xl_file)]


def test_corrupt_or_incomplete_local_models_are_named(tiny_model_dir, tmp_path):
    import shutil

    from authface.models.loading import CorruptModelError

    garbage = tmp_path / "model.safetensors"
    garbage.write_bytes(b"<html>404 not found</html>" * 10)
    good = _safetensors(tmp_path / "full.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": (64, 4, 3, 3)})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not a zip")
    cases = [(garbage, "not a safetensors file"), (cut, "truncated"), (ckpt, "cannot be read as a PyTorch checkpoint")]
    for path, what in cases:
        with pytest.raises(CorruptModelError, match=what) as info:
            load_pipeline(str(path))
        assert str(path) in str(info.value) and "no local copy" not in str(info.value)
    no_config = tmp_path / "no-config"
    shutil.copytree(tiny_model_dir, no_config)
    (no_config / "unet" / "config.json").unlink()
    with pytest.raises(CorruptModelError, match=r"missing config\.json") as info:
        load_pipeline(str(no_config))
    assert str(no_config / "unet") in str(info.value)
    truncated = tmp_path / "truncated-weights"
    shutil.copytree(tiny_model_dir, truncated)
    weights = next((truncated / "vae").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptModelError, match="truncated") as info:
        load_pipeline(str(truncated))
    assert str(weights) in str(info.value)
    with pytest.raises(CorruptModelError, match="truncated"):
        load_controlnet(str(truncated / "vae"), torch.float32)


def test_single_file_controlnet_gets_its_own_config(tiny_model_dir, tmp_path):
    from safetensors.torch import save_file

    from authface.models.loading import ModelNotFoundError

    comps = tiny_components(seed=0)
    cn_file = tmp_path / "control_tile.safetensors"
    save_file(comps["controlnet"].state_dict(), str(cn_file))
    comps["controlnet"].save_pretrained(tmp_path / "cn-config")
    expected = run(tiny_pipeline(seed=0))
    # the base's config folder (an AuthFace model folder) has a controlnet/: that config, not the base's root
    pipe = load_pipeline(str(tiny_model_dir), controlnet=str(cn_file), single_file_config=str(tiny_model_dir))
    assert torch.equal(run(pipe), expected)
    pipe = load_pipeline(str(tiny_model_dir), controlnet=str(cn_file),
                         controlnet_single_file_config=str(tmp_path / "cn-config"))  # fmt: skip
    assert torch.equal(run(pipe), expected)
    with pytest.raises(ModelNotFoundError) as info:  # offline, nothing given: diffusers' inferred repo, not cached
        load_controlnet(str(cn_file), torch.float32)
    msg = str(info.value)
    assert "controlnet_single_file_config" in msg and "lllyasviel/control_v11p_sd15_canny" in msg and str(cn_file) in msg


def test_a_replacement_vae_is_loaded(tiny_model_dir, tmp_path):
    other = tiny_components(seed=3)["vae"]
    other.save_pretrained(tmp_path / "vae")
    pipe = load_pipeline(str(tiny_model_dir), vae=str(tmp_path / "vae"))
    assert all(torch.equal(a, b) for a, b in zip(pipe.vae.state_dict().values(), other.state_dict().values()))


def test_a_variant_falls_back_to_main_weights_for_a_controlnet_without_it(tmp_path):
    """--set model.variant=fp16 (the hub base has fp16 files) must not fail on a ControlNet folder that ships only
    its main weights."""
    from diffusers import StableDiffusionPipeline

    comps = tiny_components(seed=0)
    base = {k: v for k, v in comps.items() if k != "controlnet"}
    StableDiffusionPipeline(**base, safety_checker=None, feature_extractor=None, requires_safety_checker=False
                            ).save_pretrained(tmp_path / "sd", variant="fp16")  # fmt: skip
    assert list((tmp_path / "sd" / "unet").glob("*.fp16.safetensors"))
    comps["controlnet"].save_pretrained(tmp_path / "cn")
    pipe = load_pipeline(str(tmp_path / "sd"), controlnet=str(tmp_path / "cn"), variant="fp16")
    assert torch.equal(run(pipe), run(tiny_pipeline(seed=0)))


def test_single_file_original_config_reaches_the_loaders(monkeypatch, tmp_path):
    """model.single_file_original_config (restore and training) is the original LDM YAML given to the loader."""
    import authface.models.loading as loading
    import authface.pipeline as pipeline
    from authface.build import build_parts, restore_config
    from authface.config import TrainConfig, load_config
    from authface.training.components import load_components

    seen = {}

    class Stop(Exception):
        pass

    def capture(name):
        def fake(*args, **kwargs):
            seen[name] = kwargs.get("original_config")
            raise Stop

        return fake

    monkeypatch.setattr(pipeline, "load_pipeline", capture("restore"))
    monkeypatch.setattr(loading, "load_base_components", capture("train"))
    with pytest.raises(Stop):
        build_parts(restore_config(model="m.safetensors", single_file_original_config="v1-inference.yaml",
                                   device="cpu"))  # fmt: skip
    with pytest.raises(Stop):
        load_components(load_config(TrainConfig, None, ["model.base=m.safetensors",
                                                        "model.single_file_original_config=sd_xl_base.yaml"]))  # fmt: skip
    assert seen == {"restore": "v1-inference.yaml", "train": "sd_xl_base.yaml"}
