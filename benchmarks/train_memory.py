#!/usr/bin/env python
"""Static memory of fine-tuning each base: weights, gradients and optimiser state, counted from the real configs.

    python benchmarks/train_memory.py ../shared/hub-layouts
    python benchmarks/train_memory.py ../shared/hub-layouts --lora-rank 64

Every model is built on the ``meta`` device from the hub configs (``HUB_LAYOUTS`` as described in its README: the
verbatim ``config.json`` files of SD 1.5, SD 2.1 and SDXL base), so nothing is allocated and nothing downloaded;
the ControlNet is derived from the UNet as training does (``ControlNetModel.from_unet``). For the default training
setup (``configs/train/sd15.yaml``: LoRA on the UNet's attention projections ``to_q, to_k, to_v, to_out.0`` plus the
whole ControlNet, mixed precision) the bytes are:

- frozen weights (VAE, text encoder(s), UNet base weights) in the compute dtype: 2 bytes per parameter;
- trained parameters (LoRA + ControlNet) kept in float32 (``cast_training_params``): 4 bytes, their float32
  gradients: 4 bytes, and AdamW's two moments: 8 bytes (torch) or 2 bytes (bitsandbytes' 8-bit AdamW).

Activation memory (which grows with resolution and batch and is what gradient checkpointing cuts) is NOT counted:
it needs a GPU run (``benchmarks/bench_train.py --full``; ``benchmarks/gpu_suite.sh``). Output: one table, GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BASES = {
    "SD 1.5": "stable-diffusion-v1-5--stable-diffusion-v1-5",
    "SD 2.1 (768-v)": "stabilityai--stable-diffusion-2-1",
    "SDXL base": "stabilityai--stable-diffusion-xl-base-1.0",
}
TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
GIB = 1024**3


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def count_parameters(root: Path) -> dict[str, int]:
    """Parameter counts of the base in ``root`` (a hub folder of configs) and of a ControlNet made from its UNet."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    counts = {}
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(_config(root / "unet"))
        counts["unet"] = sum(p.numel() for p in unet.parameters())
        counts["controlnet"] = sum(p.numel() for p in ControlNetModel.from_unet(unet).parameters())
        counts["vae"] = sum(p.numel() for p in AutoencoderKL.from_config(_config(root / "vae")).parameters())
        counts["text_encoders"] = 0
        for name, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection)):
            if (root / name).is_dir():
                model = cls(CLIPTextConfig.from_pretrained(root / name))
                counts["text_encoders"] += sum(p.numel() for p in model.parameters())
    counts["lora_per_rank"] = sum(
        m.in_features + m.out_features
        for n, m in unet.named_modules()
        if any(n.endswith(t) for t in TARGETS) and hasattr(m, "in_features")
    )
    return counts


def static_gib(counts: dict[str, int], rank: int, adam_8bit: bool) -> dict[str, float]:
    """GiB of frozen weights (2 B/param), trained weights + gradients (8 B/param), optimiser state (8 or 2)."""
    trained = counts["controlnet"] + rank * counts["lora_per_rank"]
    frozen = counts["unet"] + counts["vae"] + counts["text_encoders"]
    out = {"frozen": 2 * frozen / GIB, "trained": 8 * trained / GIB, "adam": (2 if adam_8bit else 8) * trained / GIB}
    out["total"] = sum(out.values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hub_layouts", type=Path)
    ap.add_argument("--lora-rank", type=int, default=16)
    args = ap.parse_args(argv)
    print(f"static training memory, GiB (LoRA rank {args.lora_rank} on {', '.join(TARGETS)} + the whole "
          f"ControlNet; frozen weights 2 B/param; activations not counted)")  # fmt: skip
    print(f"{'base':16} {'UNet M':>8} {'CN M':>7} {'LoRA M':>7} {'frozen':>7} {'trained+grad':>12} "
          f"{'AdamW':>6} {'8-bit':>6} {'total':>6} {'total 8-bit':>11}")  # fmt: skip
    for name, folder in BASES.items():
        root = args.hub_layouts / folder
        if not (root / "unet" / "config.json").is_file():
            print(f"{name:16} missing: {root}", file=sys.stderr)
            return 1
        c = count_parameters(root)
        full, small = static_gib(c, args.lora_rank, False), static_gib(c, args.lora_rank, True)
        print(f"{name:16} {c['unet'] / 1e6:8.0f} {c['controlnet'] / 1e6:7.0f} "
              f"{args.lora_rank * c['lora_per_rank'] / 1e6:7.1f} {full['frozen']:7.2f} {full['trained']:12.2f} "
              f"{full['adam']:6.2f} {small['adam']:6.2f} {full['total']:6.2f} {small['total']:11.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
