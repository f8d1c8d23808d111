"""SDXL bases at tiny sizes (issue 16): the SDXL sibling pipeline (two text encoders, pooled embeddings,
add_time_ids, an SDXL ControlNet, LoRA, the quality prior), whole photos through FaceRestorer and `authface
restore`, a single-file checkpoint converted in the test, fp16 NaNs in decoding caught and reported, the crop
size that follows the base, and ControlNets of another family refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from authface.models.quality_prior import add_quality_prior
from authface.pipeline import (
    AuthFacePipeline,
    AuthFaceXLPipeline,
    NonFiniteOutputError,
    default_controlnet,
    default_crop_size,
    default_tiny_decoder,
    load_pipeline,
)
from authface.testing.tiny_model import (
    TINY_XL,
    save_tiny_sdxl_model,
    tiny_components,
    tiny_pipeline,
    tiny_sdxl_components,
    tiny_sdxl_pipeline,
)

FAST = dict(crop_size=64, steps=2, device="cpu")


def crops(n=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def run(pipe, **kw):
    args = dict(num_inference_steps=2, strength=0.75, output_type="pt", color_fix="none") | kw
    return pipe(crops(1), generator=gens([0]), **args).images


@pytest.fixture(scope="module")
def xl():
    return tiny_sdxl_pipeline(seed=0)


@pytest.fixture(scope="module")
def xl_dir(tmp_path_factory):
    """A tiny AuthFace SDXL model folder whose ControlNet has the quality prior."""
    pipe = tiny_sdxl_pipeline(seed=0)
    torch.manual_seed(0)
    add_quality_prior(pipe.controlnet)
    for p in pipe.controlnet.class_embedding.parameters():  # trained-looking prior: not the zero start
        torch.nn.init.normal_(p, std=0.1)
    out = tmp_path_factory.mktemp("xl") / "tiny-xl"
    pipe.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def xl_base_dir(tmp_path_factory):
    return save_tiny_sdxl_model(tmp_path_factory.mktemp("xl-base") / "base", controlnet=False)


@pytest.fixture(scope="module")
def xl_lora(xl_dir, tmp_path_factory):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = tiny_sdxl_pipeline(seed=0)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(0)
    for name, p in pipe.unet.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # LoRA B starts at zero; make the adapter do something
    out = tmp_path_factory.mktemp("lora")
    AuthFaceXLPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                         weight_name="xl_lora.safetensors")  # fmt: skip
    return out / "xl_lora.safetensors"


# ---------------------------------------------------------------------------------------------- the pipeline
def test_sdxl_conditions_reach_unet_and_controlnet(xl):
    seen = {}

    def grab(name):
        def hook(module, args, kwargs):
            seen[name] = kwargs.get("added_cond_kwargs")

        return hook

    hooks = [getattr(xl, n).register_forward_pre_hook(grab(n), with_kwargs=True) for n in ("unet", "controlnet")]
    try:
        out = xl(crops(2), generator=gens([0, 1]), num_inference_steps=2, output_type="pt", batch_size=2)
    finally:
        for h in hooks:
            h.remove()
    assert out.images.shape == (2, 3, 64, 64) and torch.isfinite(out.images).all()
    for name in ("unet", "controlnet"):
        added = seen[name]
        assert added["text_embeds"].shape == (4, TINY_XL["projection_dim"])  # CFG: [uncond, cond] x 2 crops
        assert added["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]] * 4  # the crop's size, uncropped
    cond, uncond = xl.encode_prompt("a face", "blurry", torch.device("cpu"), torch.float32, True)
    assert cond[0].shape == (1, 77, TINY_XL["hidden"] + TINY_XL["hidden_2"]) and cond[1].shape == (1, 32)
    assert not torch.equal(cond[0], uncond[0])
    _, zeros = xl.encode_prompt("a face", "", torch.device("cpu"), torch.float32, True)
    assert not zeros[0].any() and not zeros[1].any()  # force_zeros_for_empty_prompt, as diffusers' SDXL


def test_sdxl_shares_the_loop_objectives_and_colour_fix(xl):
    from authface.guidance import Guidance

    class Bright(Guidance):
        name, space = "bright", "latent"

        def objective(self, x0_latent, image, ctx):
            return x0_latent.mean(dim=(1, 2, 3))

    out = xl(crops(1), generator=gens([0]), num_inference_steps=2, strength=1.0, objectives=[Bright(1.0)],
             color_fix="wavelet", output_type="pt")  # fmt: skip
    assert [r["step"] for r in out.objective_log[0]] == [0, 1] and "bright" in out.objective_final[0]
    assert isinstance(xl, AuthFacePipeline) and AuthFaceXLPipeline.__call__ is AuthFacePipeline.__call__


def test_sdxl_save_load_round_trip(xl, tmp_path):
    xl.save_pretrained(tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["_class_name"] == "AuthFaceXLPipeline" and "text_encoder_2" in index
    loaded = load_pipeline(str(tmp_path / "m"))
    assert isinstance(loaded, AuthFaceXLPipeline)
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(run(xl), run(loaded))


# ---------------------------------------------------------------------------------------------- loading
def test_sdxl_base_folder_with_a_separate_controlnet(xl_base_dir, tmp_path):
    from authface.models.loading import ModelNotFoundError

    comps = tiny_sdxl_components(seed=0)
    comps["controlnet"].save_pretrained(tmp_path / "cn")
    pipe = load_pipeline(str(xl_base_dir), controlnet=str(tmp_path / "cn"))
    assert isinstance(pipe, AuthFaceXLPipeline)
    pipe.set_progress_bar_config(disable=True)
    assert torch.equal(run(pipe), run(tiny_sdxl_pipeline(seed=0)))
    with pytest.raises(ModelNotFoundError, match="xinsir/controlnet-tile-sdxl-1.0"):  # auto: the SDXL tile default
        load_pipeline(str(xl_base_dir))


def test_a_controlnet_of_another_family_is_refused_by_name(xl_base_dir, tmp_path):
    tiny_components(seed=0)["controlnet"].save_pretrained(tmp_path / "sd15-cn")
    with pytest.raises(ValueError, match=r"does not fit this base model .*text width 32 vs the base's 96"):
        load_pipeline(str(xl_base_dir), controlnet=str(tmp_path / "sd15-cn"))


def test_single_file_sdxl_checkpoint_converted_in_the_test_loads(xl_base_dir, tmp_path):
    from safetensors.torch import save_file

    from authface.models.references import detect_base
    from authface.testing.ldm_checkpoint import pipeline_to_ldm

    comps = tiny_sdxl_components(seed=0)
    state = pipeline_to_ldm(comps)
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "model.diffusion_model.label_emb.0.0.weight" in state and "first_stage_model.encoder.mid.attn_1.q.weight" in state
    path = tmp_path / "tiny_xl.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert detect_base(str(path)) == "sdxl"
    comps["controlnet"].save_pretrained(tmp_path / "cn")
    pipe = load_pipeline(str(path), controlnet=str(tmp_path / "cn"), single_file_config=str(xl_base_dir))
    assert isinstance(pipe, AuthFaceXLPipeline)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ref, got = comps[name].state_dict(), pipe.components[name].state_dict()
        assert all(torch.equal(ref[k], got[k]) for k in ref), name
    pipe.set_progress_bar_config(disable=True)
    assert torch.equal(run(pipe), run(tiny_sdxl_pipeline(seed=0)))


def test_single_file_sd15_checkpoint_and_controlnet_converted_in_the_test_load(tmp_path):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from authface.testing.ldm_checkpoint import controlnet_checkpoint, pipeline_to_ldm

    comps = tiny_components(seed=0)
    base = {k: v for k, v in comps.items() if k != "controlnet"}
    StableDiffusionPipeline(**base, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(tmp_path / "configs")  # fmt: skip
    comps["controlnet"].save_pretrained(tmp_path / "configs" / "controlnet")
    save_file({k: v.contiguous() for k, v in pipeline_to_ldm(comps).items()}, str(tmp_path / "sd.safetensors"))
    save_file({k: v.contiguous() for k, v in controlnet_checkpoint(comps["controlnet"]).items()},
              str(tmp_path / "control_tile.safetensors"))  # fmt: skip
    pipe = load_pipeline(str(tmp_path / "sd.safetensors"), controlnet=str(tmp_path / "control_tile.safetensors"),
                         single_file_config=str(tmp_path / "configs"))  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe) is AuthFacePipeline and torch.equal(run(pipe), run(tiny_pipeline(seed=0)))


# ---------------------------------------------------------------------------------------------- whole photos
def test_whole_photo_restore_with_lora_and_quality_prior(xl_dir, xl_lora, astronaut):
    from authface.restorer import FaceRestorer

    plain = FaceRestorer.from_pretrained(xl_dir, quality_target=0.8, **FAST)
    assert isinstance(plain.pipeline, AuthFaceXLPipeline)
    a = plain(astronaut)
    assert a.image.shape == astronaut.shape and len(a.faces) == 1
    assert not np.array_equal(a.image, astronaut)
    with_lora = FaceRestorer.from_pretrained(xl_dir, lora=str(xl_lora), quality_target=0.8, **FAST)(astronaut)
    assert not np.array_equal(with_lora.image, a.image)  # the LoRA changed the restored face
    other_quality = FaceRestorer.from_pretrained(xl_dir, quality_target=0.1, **FAST)(astronaut)
    assert not np.array_equal(other_quality.image, a.image)  # the quality prior reaches the SDXL ControlNet


def test_authface_restore_cli_on_a_tiny_sdxl_folder(xl_dir, astronaut, tmp_path):
    from PIL import Image

    from authface.cli import main

    (tmp_path / "in").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "in" / "a.png")
    rc = main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(xl_dir),
               "--set", "face.crop_size=64", "--steps", "2", "--device", "cpu"])  # fmt: skip
    assert rc == 0 and (tmp_path / "out" / "a.png").is_file()


# ---------------------------------------------------------------------------------------------- fp16 NaN
def _half_vae(pipe, force_upcast: bool):
    torch.nn.Module.to(pipe.vae, dtype=torch.float16)
    pipe.vae.register_to_config(force_upcast=force_upcast)
    return pipe


def _nan_when(pipe, rows_for):
    def hook(module, inputs, output):
        rows = rows_for(output.dtype, output.shape[0])
        if not rows:
            return None
        output = output.clone()
        output[rows] = float("nan")
        return output

    return pipe.vae.decoder.register_forward_hook(hook)


def test_sdxl_fp16_vae_is_upcast_so_its_nan_never_appears():
    pipe = _half_vae(tiny_sdxl_pipeline(seed=0), force_upcast=True)  # SDXL's VAE config sets force_upcast
    seen = []
    _nan_when(pipe, lambda dtype, n: seen.append(dtype) or (list(range(n)) if dtype == torch.float16 else []))
    out = run(pipe)
    assert torch.isfinite(out).all() and seen == [torch.float32] and pipe.vae.dtype == torch.float16


def test_sdxl_fp16_nan_in_decoding_is_caught_and_reported(caplog):
    pipe = _half_vae(tiny_sdxl_pipeline(seed=0), force_upcast=False)  # e.g. an "fp16-fix" VAE that still overflows
    hook = _nan_when(pipe, lambda dtype, n: list(range(n)) if dtype == torch.float16 else [])
    with caplog.at_level("WARNING", logger="authface.pipeline.decode"):
        assert torch.isfinite(run(pipe)).all()  # redone in float32
    assert "decoding again in float32" in caplog.text
    hook.remove()
    _nan_when(pipe, lambda dtype, n: list(range(n)))  # NaN in every precision: reported, no image
    with pytest.raises(NonFiniteOutputError, match=r"image 0 of the batch of 1 \(decoded in torch.float16 and again"):
        run(pipe, output_type="np")


def test_sdxl_nan_photo_fails_and_nothing_is_written(xl_dir, astronaut, tmp_path, monkeypatch):
    from PIL import Image

    from authface.cli import main
    from authface.pipeline import decode

    def nan_decode(vae, latents, decode_fn):
        raise NonFiniteOutputError("the VAE decode gave NaN/inf for image 0", [0], torch.float16, "decoding")

    monkeypatch.setattr(decode, "decode_finite", nan_decode)
    monkeypatch.setattr("authface.pipeline.pipeline_authface.decode_finite", nan_decode)
    (tmp_path / "in").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "in" / "a.png")
    rc = main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(xl_dir),
               "--set", "face.crop_size=64", "--steps", "2", "--device", "cpu"])  # fmt: skip
    assert rc == 1 and not (tmp_path / "out" / "a.png").exists()


# ---------------------------------------------------------------------------------------------- crop size
def test_crop_size_follows_the_base(xl, xl_base_dir, tmp_path):
    assert default_crop_size("sd1") == 512 and default_crop_size("sd2") == 512
    assert default_crop_size("sd2-v") == 768 and default_crop_size("sdxl") == 1024
    assert default_crop_size(xl) == 128 == default_crop_size(str(xl_base_dir))  # tiny: sample_size 16 x 8
    for sample_size, family_files, expected in [
        (64, {"cross_attention_dim": 768}, 512),  # SD 1.5
        (96, {"cross_attention_dim": 1024}, 768),  # SD 2.1 (768-v)
        (128, {"cross_attention_dim": 2048}, 1024),  # SDXL
    ]:
        folder = tmp_path / str(sample_size)
        (folder / "unet").mkdir(parents=True)
        (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
        (folder / "unet" / "config.json").write_text(json.dumps({"sample_size": sample_size, **family_files}))
        assert default_crop_size(str(folder)) == expected
    assert default_tiny_decoder(xl) == "madebyollin/taesdxl" == default_tiny_decoder("sdxl")
    assert default_tiny_decoder(tiny_pipeline(seed=0)) == "madebyollin/taesd"
    assert default_controlnet("sdxl") == "xinsir/controlnet-tile-sdxl-1.0"
    assert default_controlnet("sd1") == "lllyasviel/control_v11f1e_sd15_tile"
    with pytest.raises(ValueError, match="no default ControlNet for SD 2.x"):
        default_controlnet("sd2-v")


def test_crop_size_follows_the_base_unless_set(tiny_model_dir):
    """face.crop_size left unset takes the base's own resolution (the tiny model: 16 x 8 = 128); set, it wins."""
    from authface.restorer import FaceRestorer

    auto = FaceRestorer.from_pretrained(tiny_model_dir, steps=2, device="cpu")
    assert auto.stage.crop_size == 128 and auto.config.face.crop_size == 128
    assert FaceRestorer.from_pretrained(tiny_model_dir, steps=2, device="cpu", crop_size=64).stage.crop_size == 64
