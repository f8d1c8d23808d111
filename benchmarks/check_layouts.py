#!/usr/bin/env python
"""Real checkpoint layouts, offline: full-size RANDOM-weight replicas through AuthFace's loader, one restore step.

    python benchmarks/check_layouts.py ../shared/hub-layouts                 # all layouts (~15-25 min, 2 CPU cores)
    python benchmarks/check_layouts.py ../shared/hub-layouts --only sd15-folder sd21-768-v
    python benchmarks/check_layouts.py ../shared/hub-layouts --work /big/disk --keep

``HUB_LAYOUTS`` is a folder of verbatim hub configs (model_index.json, component configs, scheduler configs, CLIP
tokenizer files) and the original LDM / ControlNet inference YAMLs, no weights (see its README). For each layout
this script builds, in ``--work`` (default: a temporary folder, deleted at the end unless ``--keep``):

- the model with RANDOM weights at FULL size in the hub's exact folder layout: every config and tokenizer file is
  copied byte for byte; weights are written as the hub's fp16-variant files (``*.fp16.safetensors``), with the
  hub's key layout (transformers-4 CLIP keys ``text_model.*`` + ``position_ids``); the SD 1.5 folder keeps its
  ``safety_checker`` and ``feature_extractor`` (listed in model_index.json, never loaded by AuthFace);
- single-file checkpoints in the original LDM key layout (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.*`` / ``conditioner.embedders.*``, ``control_model.*``) converted from those weights with
  :mod:`authface.testing.ldm_checkpoint` (the inverse of diffusers' single-file conversion);
- ControlNets: the SD 1.5 tile ControlNet from its config (a stand-in, see the README), and ControlNets derived
  with ``ControlNetModel.from_unet`` from the SD 2.1 and SDXL UNet configs (no SDXL ControlNet config exists
  there: ControlNet training derives it the same way).

Then each layout is loaded through AuthFace's loader (``authface.pipeline.load_pipeline``, ``HF_HUB_OFFLINE=1``;
single files with their original YAML and the hub folder as the config of their text encoders and tokenizers)
and runs one restore step (2 steps at strength 0.5: VAE encode, 1 ControlNet + UNet step with CFG, NaN-checked
VAE decode, colour fix) on a random crop at ``--crop`` pixels (``--crop-xl`` for SDXL) on CPU. Each layout runs in its own process, one at
a time, so that its peak memory (ru_maxrss) is its own and memory is freed between layouts (full-size SDXL is
~7 GB in fp16). One line per layout: loaded, ran, seconds, peak memory. Exit status 1 if any layout failed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SD15 = "stable-diffusion-v1-5--stable-diffusion-v1-5"
SD21 = "stabilityai--stable-diffusion-2-1"
SDXL = "stabilityai--stable-diffusion-xl-base-1.0"
TILE = "_not-verbatim/lllyasviel--control_v11f1e_sd15_tile"
YAML = {
    "sd15": "CompVis--stable-diffusion/configs/stable-diffusion/v1-inference.yaml",
    "sdxl": "Stability-AI--generative-models/configs/inference/sd_xl_base.yaml",
    "tile": "lllyasviel--ControlNet-v1-1-nightly/models/control_v11f1e_sd15_tile.yaml",
}
#: name -> (what, base, ControlNet, load_pipeline keywords). Bases and ControlNets are names of built artefacts.
LAYOUTS = {
    "sd15-folder": ("SD 1.5 folder (+ tile ControlNet folder)", "sd15", "tile", {"variant": "fp16"}),
    "sd15-single-file": ("SD 1.5 single file + v1-inference.yaml", "sd15.safetensors", "tile", {}),
    "sd21-768-v": ("SD 2.1 768-v folder (+ ControlNet from its UNet)", "sd21", "sd21-controlnet", {"variant": "fp16"}),
    "sdxl-folder": ("SDXL base folder (+ SDXL ControlNet from its UNet)", "sdxl", "sdxl-controlnet",
                    {"variant": "fp16"}),  # fmt: skip
    "sdxl-single-file": ("SDXL single file + sd_xl_base.yaml", "sdxl.safetensors", "sdxl-controlnet", {}),
    "tile-folder": ("SD 1.5 tile ControlNet folder (on the SD 1.5 single file)", "sd15.safetensors", "tile", {}),
    "tile-single-file": ("SD 1.5 tile ControlNet single file + its YAML (on the SD 1.5 folder)", "sd15",
                         "tile.safetensors", {"variant": "fp16"}),  # fmt: skip
    "sdxl-controlnet": ("SDXL ControlNet from_unet folder (on the SDXL single file)", "sdxl.safetensors",
                        "sdxl-controlnet", {}),  # fmt: skip
}
#: What each built artefact needs first.
NEEDS = {"sd15.safetensors": ["sd15"], "sdxl.safetensors": ["sdxl"], "tile.safetensors": ["tile"]}


# ---------------------------------------------------------------------------------------------- random weights
def random_state(model, dtype) -> dict:
    """Random tensors for every entry of a (meta-device) model's state dict: weights N(0, 1/fan_in), norm scales
    1, biases 0 — activations keep their scale through the full-size network, so one step stays finite."""
    import torch

    gen = torch.Generator().manual_seed(0)
    out = {}
    for key, meta in model.state_dict().items():
        shape = tuple(meta.shape)
        if key.endswith("position_ids"):
            out[key] = torch.arange(shape[-1], dtype=torch.int64).expand(shape).contiguous()
        elif len(shape) <= 1:
            is_scale = key.endswith("weight") and ("norm" in key or "ln" in key)
            out[key] = (torch.ones if is_scale else torch.zeros)(shape, dtype=dtype)
        else:
            fan_in = max(1, meta.numel() // shape[0])
            out[key] = (torch.randn(shape, generator=gen) * fan_in**-0.5).to(dtype)
    return out


def hub_clip_keys(state: dict, vision: bool = False) -> dict:
    """transformers-5 flat CLIP keys -> the transformers-4 layout the hub files use (``text_model.*`` plus
    ``position_ids``; the safety checker's ``vision_model.vision_model.*``)."""
    import torch

    out = {}
    for key, value in state.items():
        if vision:
            if key.startswith("vision_model.") and not key.startswith("vision_model.vision_model."):
                key = "vision_model." + key
        elif not key.startswith(("text_model.", "text_projection")):
            key = "text_model." + key
        out[key] = value
    pos = "text_model.embeddings.position_embedding.weight"
    if not vision and pos in out and "text_model.embeddings.position_ids" not in out:
        out["text_model.embeddings.position_ids"] = torch.arange(out[pos].shape[0])[None]
    return out


def meta_model(folder: Path, cls_name: str):
    """A model of ``cls_name`` on the meta device, configured from ``folder``/config.json."""
    import diffusers
    import torch
    import transformers

    with torch.device("meta"):
        if hasattr(diffusers, cls_name):
            cls = getattr(diffusers, cls_name)
            return cls.from_config(cls.load_config(folder))
        if cls_name == "StableDiffusionSafetyChecker":
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

            return StableDiffusionSafetyChecker(transformers.CLIPConfig.from_pretrained(folder))
        cls = getattr(transformers, cls_name)
        return cls(cls.config_class.from_pretrained(folder))


def weight_file(cls_name: str, variant: str | None) -> str:
    import diffusers

    stem = "diffusion_pytorch_model" if hasattr(diffusers, cls_name) else "model"
    return f"{stem}.{variant}.safetensors" if variant else f"{stem}.safetensors"


def write_weights(folder: Path, cls_name: str, variant: str | None = "fp16") -> None:
    import torch
    from safetensors.torch import save_file

    model = meta_model(folder, cls_name)
    state = random_state(model, torch.float16)
    if cls_name.startswith("CLIPText"):
        state = hub_clip_keys(state)
    elif cls_name == "StableDiffusionSafetyChecker":
        state = hub_clip_keys(state, vision=True)
    save_file(state, str(folder / weight_file(cls_name, variant)), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------- builders
def build_pipeline_folder(src: Path, out: Path) -> None:
    """Copy every config/tokenizer file verbatim, then write random fp16-variant weights for each model listed
    in model_index.json."""
    shutil.copytree(src, out)
    index = json.loads((src / "model_index.json").read_text())
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[1] is None:
            continue
        if (out / name / "config.json").is_file():
            write_weights(out / name, value[1])


def build_controlnet_from_unet(unet_folder: Path, out: Path) -> None:
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(unet_folder))
        controlnet = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    out.mkdir(parents=True)
    controlnet.save_config(out)
    write_weights(out, "ControlNetModel", variant=None)


def build_single_file(folder: Path, out: Path, controlnet: bool = False) -> None:
    from safetensors.torch import load_file, save_file

    from authface.testing.ldm_checkpoint import controlnet_to_ldm, ldm_state_dict

    def weights(sub: str) -> dict:
        return load_file(str(next((folder / sub).glob("*.safetensors"))))

    if controlnet:
        config = json.loads((folder / "config.json").read_text())
        state = {f"control_model.{k}": v for k, v in controlnet_to_ldm(weights(""), config).items()}
    else:
        names = [n for n in ("unet", "vae", "text_encoder", "text_encoder_2") if (folder / n).is_dir()]
        configs = {n: json.loads((folder / n / "config.json").read_text()) for n in ("unet", "vae")}
        state = ldm_state_dict({n: weights(n) for n in names}, configs)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))


def build(name: str, layouts: Path, work: Path) -> Path:
    """Build one artefact (in this process) and return its path."""
    out = work / name
    if name == "sd15":
        build_pipeline_folder(layouts / SD15, out)
    elif name == "sd21":
        build_pipeline_folder(layouts / SD21, out)
    elif name == "sdxl":
        build_pipeline_folder(layouts / SDXL, out)
    elif name == "tile":
        out.mkdir()
        shutil.copy(layouts / TILE / "config.json", out / "config.json")
        write_weights(out, "ControlNetModel", variant=None)
    elif name == "sd21-controlnet":
        build_controlnet_from_unet(layouts / SD21 / "unet", out)
    elif name == "sdxl-controlnet":
        build_controlnet_from_unet(layouts / SDXL / "unet", out)
    elif name in ("sd15.safetensors", "sdxl.safetensors", "tile.safetensors"):
        build_single_file(work / NEEDS[name][0], out, controlnet=name.startswith("tile"))
    else:
        raise ValueError(f"unknown artefact {name}")
    return out


# ---------------------------------------------------------------------------------------------- one layout
def run_layout(name: str, layouts: Path, work: Path, crop: int, dtype_name: str) -> dict:
    """Load a layout through AuthFace's loader and run one restore step; returns the result record."""
    import numpy as np
    import torch

    from authface.pipeline import configure_pipeline, default_crop_size, load_pipeline

    _, base, cn, kwargs = LAYOUTS[name]
    family = "sdxl" if base.startswith("sdxl") else "sd"
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[
        dtype_name if dtype_name != "auto" else ("bfloat16" if family == "sdxl" else "float32")
    ]
    kwargs = dict(kwargs)
    if base.endswith(".safetensors"):  # the hub folder (configs only, no weights) configures tokenizers etc.
        stem = base.removesuffix(".safetensors")
        kwargs["single_file_config"] = str(layouts / (SD15 if stem == "sd15" else SDXL))
        kwargs["original_config"] = str(layouts / YAML[stem])
    if cn.endswith(".safetensors"):
        kwargs["controlnet_single_file_config"] = str(layouts / YAML["tile"])
    t0 = time.perf_counter()
    pipe = load_pipeline(str(work / base), controlnet=str(work / cn), dtype=dtype, **kwargs)
    configure_pipeline(pipe, torch.device("cpu"))
    t1 = time.perf_counter()
    image = np.random.default_rng(0).integers(0, 256, (crop, crop, 3), dtype=np.uint8)
    out = pipe([image], num_inference_steps=2, strength=0.5, generator=torch.Generator().manual_seed(0),
               output_type="np")  # fmt: skip
    t2 = time.perf_counter()
    assert out.images.shape == (1, crop, crop, 3), out.images.shape
    return {
        "pipeline": type(pipe).__name__, "dtype": str(dtype).removeprefix("torch."), "load_s": t1 - t0,
        "step_s": t2 - t1, "default_crop": default_crop_size(pipe), "crop": crop,
        "prediction": pipe.scheduler.config.prediction_type,
    }  # fmt: skip


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def child(args) -> int:
    """``--child build NAME`` or ``--child run NAME``: one artefact or one layout, result as a JSON line."""
    kind, name = args.child
    t0 = time.perf_counter()
    try:
        if kind == "build":
            build(name, args.layouts, args.work)
            record = {"ok": True}
        else:
            crop = args.crop_xl if LAYOUTS[name][1].startswith("sdxl") else args.crop
            record = {"ok": True, **run_layout(name, args.layouts, args.work, crop, args.dtype)}
    except Exception as err:  # noqa: BLE001 - reported on the layout's line
        record = {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    record.update(seconds=time.perf_counter() - t0, peak_gib=peak_gib())
    print("RESULT " + json.dumps(record), flush=True)
    return 0


def in_child(args, kind: str, name: str) -> dict:
    cmd = [sys.executable, __file__, str(args.layouts), "--work", str(args.work), "--crop", str(args.crop),
           "--crop-xl", str(args.crop_xl), "--dtype", args.dtype, "--child", kind, name]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"process exited {proc.returncode}: {tail}", "seconds": 0.0, "peak_gib": 0.0}
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layouts", type=Path, help="the hub-layouts folder (configs and YAMLs, no weights)")
    parser.add_argument("--work", type=Path, default=None, help="where replicas are built (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the built replicas (reused by the next run)")
    parser.add_argument("--only", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--crop", type=int, default=256, help="crop size of the one restore step (pixels)")
    parser.add_argument("--crop-xl", type=int, default=128, help="the same for SDXL layouts (CPU time)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="auto: float32 for SD 1.x/2.x, bfloat16 for SDXL (fits 24 GB of RAM)")  # fmt: skip
    parser.add_argument("--child", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.layouts = args.layouts.resolve()
    if args.child:
        return child(args)
    if not (args.layouts / SD15 / "model_index.json").is_file():
        print(f"error: {args.layouts} is not the hub-layouts folder (no {SD15}/model_index.json)", file=sys.stderr)
        return 2
    temp = args.work is None
    args.work = Path(tempfile.mkdtemp(prefix="authface-layouts-")) if temp else args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    failed = 0
    print(f"{'layout':<18} {'loaded':<7} {'ran':<4} {'load s':>7} {'step s':>7} {'total s':>8} {'peak GiB':>9}  detail")
    try:
        for name in args.only:
            what, base, cn, _ = LAYOUTS[name]
            problems = []
            for artefact in [*NEEDS.get(base, []), base, *NEEDS.get(cn, []), cn]:
                if not (args.work / artefact).exists():
                    built = in_child(args, "build", artefact)
                    if not built["ok"]:
                        problems.append(f"building {artefact}: {built['error']}")
                        break
            rec = in_child(args, "run", name) if not problems else {"ok": False, "error": problems[0],
                                                                        "seconds": 0.0, "peak_gib": 0.0}  # fmt: skip
            failed += not rec["ok"]
            if rec["ok"]:
                detail = (f"{what}; {rec['pipeline']} {rec['dtype']} {rec['prediction']}, crop {rec['crop']} "
                          f"(default {rec['default_crop']})")  # fmt: skip
                print(f"{name:<18} {'yes':<7} {'yes':<4} {rec['load_s']:>7.1f} {rec['step_s']:>7.1f} "
                      f"{rec['seconds']:>8.1f} {rec['peak_gib']:>9.1f}  {detail}", flush=True)  # fmt: skip
            else:
                loaded = "yes" if "load_s" in rec else "no"
                print(f"{name:<18} {loaded:<7} {'no':<4} {'-':>7} {'-':>7} {rec['seconds']:>8.1f} "
                      f"{rec['peak_gib']:>9.1f}  FAILED {what}: {rec['error']}", flush=True)  # fmt: skip
    finally:
        if temp and not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    print(f"{len(args.only) - failed} of {len(args.only)} layouts loaded and ran" + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
