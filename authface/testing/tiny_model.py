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


def tiny_components(seed: int = 0, prediction_type: str = "epsilon") -> dict:
    """Seeded tiny random components for :class:`authface.pipeline.AuthFacePipeline`."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64, 64))
    # A fresh ControlNet's zero convolutions output exactly zero, which would hide every bug in how the condition
    # (and the quality prior) reaches the UNet: give them small random weights.
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]  # fmt: skip
    for conv in zero_convs:
        torch.nn.init.normal_(conv.weight, std=0.05)
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=128,
    )
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
            num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
        )  # fmt: skip
    )
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type,
    )  # fmt: skip
    return dict(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer, unet=unet.eval(),
        controlnet=controlnet.eval(), scheduler=scheduler,
    )  # fmt: skip


def tiny_pipeline(seed: int = 0, **kwargs):
    from ..pipeline import AuthFacePipeline

    pipe = AuthFacePipeline(**tiny_components(seed, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random AuthFace model folder (safetensors) that ``authface restore --model`` loads."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder")
    tiny_pipeline(seed).save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").write_text(
        "# Tiny random AuthFace model\n\n"
        "Made by `python -m authface.testing.tiny_model`. Its weights are RANDOM: restoring with it produces "
        "noise inside each face. It exists for smoke tests and demos that must run without downloads.\n"
        "Use a small crop for speed: `--set face.crop_size=128`.\n"
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authface.testing.tiny_model",
        description="Write a tiny RANDOM AuthFace model folder for offline smoke tests (its output is noise).",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = save_tiny_model(args.out_dir, args.seed)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a tiny random model to {path} (smoke tests only: its output is noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
