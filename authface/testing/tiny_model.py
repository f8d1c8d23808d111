"""Tiny random AuthFace models, built in code, for tests, smoke runs and demos without any download.

    python -m authface.testing.tiny_model tiny-model
    authface restore photos/ -o out --model tiny-model --set face.crop_size=128

THE OUTPUT OF A TINY RANDOM MODEL IS NOISE: its weights are random. It exercises every code path (detection,
alignment, the diffusion loop, paste-back, manifests) at a tiny fraction of the cost; it restores nothing.

The architecture keeps the real shapes' structure (VAE downsampling ×8, 4 latent channels, a CLIP text encoder,
a ControlNet made from the UNet) with a few channels each; the tokenizer is a committed byte-level CLIP
tokenizer with no merges (``tiny_tokenizer/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

TOKENIZER_DIR = Path(__file__).with_name("tiny_tokenizer")


def _tiny_unet(seed: int, **sdxl):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=sdxl.pop("layers_per_block", 1), sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), norm_num_groups=8,
        **({"cross_attention_dim": 32} | sdxl),
    )  # fmt: skip


def _tiny_controlnet(unet, seed: int):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64, 64))
    # A fresh ControlNet's zero convolutions output exactly zero, which would hide every bug in how the condition
    # (and the quality prior) reaches the UNet: give them small random weights.
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]  # fmt: skip
    for conv in zero_convs:
        torch.nn.init.normal_(conv.weight, std=0.05)
    return controlnet.eval()


def _tiny_vae(seed: int, **kwargs):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(8, 16, 16, 16), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=8, layers_per_block=1,
        sample_size=128, **kwargs,
    ).eval()  # fmt: skip


def _tiny_clip(seed: int, hidden_size: int = 32, projection_dim: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=hidden_size, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
        **({} if projection_dim is None else {"projection_dim": projection_dim}),
    )  # fmt: skip
    cls = CLIPTextModel if projection_dim is None else CLIPTextModelWithProjection
    return cls(config).eval()


def tiny_components(seed: int = 0, prediction_type: str = "epsilon", **scheduler_kwargs) -> dict:
    """Seeded tiny random components for :class:`authface.pipeline.AuthFacePipeline` (SD 1.x-shaped).
    ``scheduler_kwargs``: more DDIMScheduler settings (e.g. ``rescale_betas_zero_snr=True``)."""
    from diffusers import DDIMScheduler
    from transformers import CLIPTokenizer

    unet = _tiny_unet(seed)
    controlnet = _tiny_controlnet(unet, seed + 1)
    vae = _tiny_vae(seed + 2)
    text_encoder = _tiny_clip(seed + 3)
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type, **scheduler_kwargs,
    )  # fmt: skip
    return dict(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet.eval(), controlnet=controlnet,
        scheduler=scheduler,
    )  # fmt: skip


#: Tiny SDXL sizes: the two text encoders have different widths (as ViT-L 768 and bigG 1280 do), so that
#: diffusers' single-file loader tells their converted weights apart; the UNet's text width is their sum.
TINY_XL = {"hidden": 32, "hidden_2": 64, "projection_dim": 32, "time_embed_dim": 8}


def tiny_sdxl_components(seed: int = 0, prediction_type: str = "epsilon") -> dict:
    """Seeded tiny random components for :class:`authface.pipeline.AuthFaceXLPipeline`: an SDXL-shaped UNet
    (``addition_embed_type="text_time"``, linear projections, 2 layers per block, 2 transformer layers in the
    cross-attention block), an SDXL ControlNet made from it, two CLIP text encoders (the second with projection),
    a VAE whose config sets ``force_upcast`` (as SDXL's) and SDXL's Euler scheduler."""
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPTokenizer

    t = TINY_XL
    unet = _tiny_unet(
        seed, layers_per_block=2, cross_attention_dim=t["hidden"] + t["hidden_2"], use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=t["time_embed_dim"], transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * t["time_embed_dim"] + t["projection_dim"],
    )  # fmt: skip
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
        prediction_type=prediction_type,
    )  # fmt: skip
    return dict(
        vae=_tiny_vae(seed + 2, force_upcast=True, scaling_factor=0.13025), text_encoder=_tiny_clip(seed + 3, t["hidden"]),
        text_encoder_2=_tiny_clip(seed + 4, t["hidden_2"], t["projection_dim"]), tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet.eval(), controlnet=_tiny_controlnet(unet, seed + 1), scheduler=scheduler,
    )  # fmt: skip


def tiny_sdxl_pipeline(seed: int = 0, **kwargs):
    from ..pipeline import AuthFaceXLPipeline

    pipe = AuthFaceXLPipeline(**tiny_sdxl_components(seed, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sdxl_model(out_dir: str | Path, seed: int = 0, controlnet: bool = True) -> Path:
    """Write a tiny random SDXL model folder (safetensors): an AuthFace SDXL model (with its ControlNet), or with
    ``controlnet=False`` a plain ``StableDiffusionXLPipeline`` base folder (diffusers' SDXL layout)."""
    from diffusers import StableDiffusionXLPipeline

    out_dir = _new_folder(out_dir)
    if controlnet:
        tiny_sdxl_pipeline(seed).save_pretrained(out_dir, safe_serialization=True)
    else:
        comps = {k: v for k, v in tiny_sdxl_components(seed).items() if k != "controlnet"}
        StableDiffusionXLPipeline(**comps).save_pretrained(out_dir, safe_serialization=True)
    _write_readme(out_dir, "Tiny random AuthFace SDXL model" if controlnet else "Tiny random SDXL base")
    return out_dir


def _new_folder(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder")
    return out_dir


def _write_readme(out_dir: Path, title: str, extra: str = "") -> None:
    (out_dir / "README.md").write_text(
        f"# {title}\n\n"
        "Made by `python -m authface.testing.tiny_model`. Its weights are RANDOM: restoring with it produces "
        "noise inside each face. It exists for smoke tests and demos that must run without downloads.\n"
        "Use a small crop for speed: `--set face.crop_size=128`.\n" + extra
    )


def tiny_pipeline(seed: int = 0, **kwargs):
    from ..pipeline import AuthFacePipeline

    pipe = AuthFacePipeline(**tiny_components(seed, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_mask_segmenter(seed: int = 0):
    """A seeded tiny random :class:`authface.models.mask_segmenter.MaskSegmenter` (widths 8, 16; working size 64):
    its masks are arbitrary (random weights), for testing ``--mask auto``'s plumbing."""
    from ..models.mask_segmenter import MaskSegmenter

    torch.manual_seed(seed)
    return MaskSegmenter(widths=(8, 16), resolution=64).eval()


def save_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random AuthFace model folder (safetensors) that ``authface restore --model`` loads, with a
    tiny random ``mask_segmenter/`` (so ``--mask auto`` and ``--task old-photo`` run on it)."""
    from ..models.mask_segmenter import SUBFOLDER

    out_dir = _new_folder(out_dir)
    tiny_pipeline(seed).save_pretrained(out_dir, safe_serialization=True)
    tiny_mask_segmenter(seed + 5).save_pretrained(out_dir / SUBFOLDER, safe_serialization=True)
    _write_readme(out_dir, "Tiny random AuthFace model",
                  f"\n`{SUBFOLDER}/` is a tiny RANDOM mask segmenter too: `--mask auto` and `--task old-photo` run on "
                  "this folder, but the masks it finds are arbitrary (train a real one: training/train.py --task "
                  "mask-segmenter).\n")  # fmt: skip
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authface.testing.tiny_model",
        description="Write a tiny RANDOM AuthFace model folder for offline smoke tests (its output is noise).",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sdxl", action="store_true", help="an SDXL-shaped model (two text encoders)")
    args = parser.parse_args(argv)
    try:
        path = (save_tiny_sdxl_model if args.sdxl else save_tiny_model)(args.out_dir, args.seed)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a tiny random model to {path} (smoke tests only: its output is noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
