#!/usr/bin/env python
"""AuthFace benchmark: training steps per second, against the equivalent diffusers example loop.

    python benchmarks/bench_train.py                 # tiny random components on CPU (~3 min): RATIO lines
    python benchmarks/bench_train.py --full          # CUDA: SD 1.5-sized RANDOM models, 512², batch 4, fp16 AMP,
                                                     # with and without gradient checkpointing, peak memory

Three variants on the same components (built from the same seed), dataset, batch, resolution and trainable
parameters (LoRA on the UNet + the whole ControlNet; the image-quality prior only with ``--quality-prior``, then in
all three), run one after the other in rounds (the order rotates every round), all in this process:

- (a) ``ours, diffusion loss``: ``authface.training.train`` with ``facial.weight=0`` (the facial loss is skipped);
- (b) ``ours, + facial loss``: the same with ``facial.weight=0.1, facial.mode=logit_normal`` (reconstruction +
  latent-texture style terms, no discriminators);
- (c) ``diffusers example loop``: the train_controlnet.py-style loop written minimally below without accelerate
  (``diffusers_loop``): VAE encode + posterior sample, noise, ``add_noise``, text encode, ControlNet + UNet forward,
  MSE, backward, gradient clipping (``max_grad_norm``, as the example and ours), AdamW step, LR scheduler step,
  ``zero_grad``. It reads the same ``FaceRestorationDataset`` through a DataLoader with the same settings, so
  reading + degrading the images (measured separately and printed) costs the same in (a), (b) and (c).

The base config is ``configs/train/tiny.yaml`` (``--full``: ``configs/train/sd15.yaml``) with overrides printed
below: no validation, no checkpoints, no trackers, gradient accumulation 1, plain AdamW, no min-SNR weighting.

**How steps are timed.** ``train()`` logs no timestamps, so a wrapper is put on ``torch.optim.AdamW.zero_grad`` (the
last call of every iteration of all three loops; ``functools.wraps`` keeps its signature, which accelerate inspects)
that records ``time.perf_counter()`` and ``time.process_time()`` after each call; on CUDA it synchronises first. The
time between two consecutive records is one whole training iteration (data, forward, backward, clipping, optimiser
and scheduler steps, and for ours accelerate's per-step wrappers and the train_log.jsonl write). The first
``--skip`` intervals of every run are dropped (warm-up); setup (building the models, accelerate, the dataset check)
and the end of the run (saving the model folder) fall outside the intervals and are printed separately. Nothing is
added to authface/ for this; the optimiser the hook sees also gives the number of trainable parameters of every
variant, printed as a check that they train the same set.

``--full`` passes ``train(cfg, build_components=..., save_model=False)``: a builder of SD 1.5-sized RANDOM
components (``bench_pipeline.full_components``; nothing is downloaded) instead of
``authface.training.load_components``, and no model folder at the end (it would write ~5 GB per run); the loop
itself is untouched. Peak memory: ``torch.cuda.max_memory_allocated`` over
the whole run (weights, optimiser state and activations).

Helpers reused from ``bench_pipeline.py`` (imported, not copied): ``print_header``, ``print_footer``,
``full_components``, ``count_params``, ``_sync``, ``MIB``; from ``bench_guidance.py``: ``RegionTimer`` (for the
per-step breakdown).

Nothing is downloaded: every model is built in code with random weights (HF_HUB_OFFLINE=1 is set).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_guidance import RegionTimer  # noqa: E402
from bench_pipeline import MIB, _sync, count_params, full_components, print_footer, print_header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
A, B, C = "(a) ours, diffusion loss", "(b) ours, + facial loss", "(c) diffusers example loop"


# ---------------------------------------------------------------------------------------------- data
def make_dataset(root: Path, n_photos: int, crop: int, seed: int, aligned: bool = False) -> Path:
    """``n_photos`` distinct photos of one face (shifted, rotated, scaled, recoloured ``skimage.data.astronaut()``)
    prepared with ``authface.data.prepare.prepare_dataset`` (dlib HOG, crop ``crop``, no deduplication; with
    ``aligned`` each photo is taken as an aligned crop: no dlib, for machines without it)."""
    import cv2
    from PIL import Image
    from skimage import data

    from authface.data.prepare import PrepareSettings, prepare_dataset

    photos = root / "photos"
    photos.mkdir(parents=True)
    astronaut = np.ascontiguousarray(data.astronaut())
    h, w = astronaut.shape[:2]
    rng = np.random.default_rng(seed)
    for i in range(n_photos):
        dx, dy = rng.uniform(-30, 30, 2)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-8, 8), rng.uniform(0.9, 1.1))
        m[:, 2] += (dx, dy)
        img = cv2.warpAffine(astronaut, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        img = np.clip(img.astype(np.float32) * rng.uniform(0.85, 1.3), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(photos / f"photo_{i:03d}.png")
    ds = root / "ds"
    settings = PrepareSettings(crop_size=crop, min_face_size=32, dedupe_threshold=-1, aligned=aligned)
    prepare_dataset([str(photos)], ds, settings, progress=False)
    n = len((ds / "manifest.jsonl").read_text().splitlines())
    print(f"dataset: {n} faces from {n_photos} augmented skimage.data.astronaut() photos, {crop}x{crop} crops, "
          f"prepared with authface.data.prepare.prepare_dataset in {ds}")  # fmt: skip
    return ds


# ---------------------------------------------------------------------------------------------- step clock
@dataclass
class Run:
    name: str
    wall: list[float] = field(default_factory=list)  # seconds per iteration (after --skip)
    cpu: list[float] = field(default_factory=list)
    params: int = 0
    setup: float = 0.0  # call start -> first zero_grad
    teardown: float = 0.0  # last zero_grad -> return
    total: float = 0.0
    peak_mib: float = float("nan")
    losses: list[float] = field(default_factory=list)


class StepClock:
    """Timestamps after every ``torch.optim.AdamW.zero_grad`` (see the module docstring)."""

    def __init__(self, device: torch.device, on_step=None):
        self.device, self.on_step = device, on_step
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.params = 0

    def __enter__(self) -> StepClock:
        cls = torch.optim.AdamW
        self._own = "zero_grad" in vars(cls)
        self._original = original = cls.zero_grad
        clock = self

        @functools.wraps(original)
        def zero_grad(opt, *args, **kwargs):
            out = original(opt, *args, **kwargs)
            _sync(clock.device)
            clock.wall.append(time.perf_counter())
            clock.cpu.append(time.process_time())
            if not clock.params:
                clock.params = sum(p.numel() for g in opt.param_groups for p in g["params"])
            if clock.on_step is not None:
                clock.on_step(len(clock.wall))
            return out

        cls.zero_grad = zero_grad
        return self

    def __exit__(self, *exc) -> None:
        if self._own:
            torch.optim.AdamW.zero_grad = self._original
        else:
            del torch.optim.AdamW.zero_grad

    def intervals(self, skip: int) -> tuple[list[float], list[float]]:
        w = [b - a for a, b in zip(self.wall, self.wall[1:])][skip:]
        c = [b - a for a, b in zip(self.cpu, self.cpu[1:])][skip:]
        return w, c


# ---------------------------------------------------------------------------------------------- configs / models
def make_cfg(args, dataset: Path, out: Path, variant: str, gc_on: bool):
    from authface.config import TrainConfig, load_config

    overrides = [
        f"data.dataset={dataset}", f"output.output_dir={out}", "output.validation_steps=0",
        f"output.checkpointing_steps={10**9}", "output.log_with=none", f"optim.max_steps={args.steps}",
        f"optim.batch_size={args.batch}", f"data.resolution={args.resolution}", "optim.gradient_accumulation_steps=1",
        "optim.adam_8bit=false", "optim.min_snr_gamma=null", "optim.ema=false", "data.num_workers=0",
        f"model.quality_prior={str(args.quality_prior).lower()}", f"model.gradient_checkpointing={str(gc_on).lower()}",
        f"optim.mixed_precision='{args.mixed_precision}'", "optim.lr_scheduler=constant", "optim.lr_warmup_steps=0",
        f"seed={args.seed}",
    ]  # fmt: skip
    if variant == B:
        overrides += ["facial.weight=0.1", "facial.mode=logit_normal", "facial.gan_weight=0"]
    else:
        overrides += ["facial.weight=0"]
    return load_config(TrainConfig, args.config, overrides), overrides


def component_builder(args, device: torch.device):
    """cfg -> components dict, as authface.training.load_components returns them (fp32)."""
    from authface.training import load_components

    if not args.full:
        return load_components

    def build(cfg) -> dict:
        return full_components(cfg.seed, device, torch.float32)

    return build


# ---------------------------------------------------------------------------------------------- (c)
def diffusers_loop(cfg, build_components, device: torch.device, losses: list) -> None:
    """The train_controlnet.py-style loop (minimal, no accelerate) on our components, data and parameter set."""
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig

    from authface.data import read_manifest
    from authface.data.dataset import FaceRestorationDataset
    from authface.models.quality_prior import add_quality_prior, quality_labels

    set_seed(cfg.seed)
    dataset = FaceRestorationDataset(read_manifest(cfg.data.dataset), cfg.data.resolution, cfg.data.degradation,
                                     cfg.seed, cfg.facial.regions, cfg.data.prompt)  # fmt: skip
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.optim.batch_size, shuffle=True, num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed), drop_last=len(dataset) >= cfg.optim.batch_size,
    )  # fmt: skip
    comps = build_components(cfg)
    vae, text_encoder, tokenizer = comps["vae"], comps["text_encoder"], comps["tokenizer"]
    unet, controlnet = comps["unet"], comps["controlnet"]
    noise_scheduler = DDPMScheduler.from_config(comps["scheduler"].config)
    for m in (vae, text_encoder, unet, controlnet):
        m.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=cfg.model.lora_rank, lora_alpha=cfg.model.lora_alpha, init_lora_weights="gaussian",
                                target_modules=list(cfg.model.lora_targets)))  # fmt: skip
    if cfg.model.quality_prior:
        add_quality_prior(controlnet)
    controlnet.requires_grad_(True)
    controlnet.train()
    if cfg.model.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        controlnet.enable_gradient_checkpointing()
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        cfg.optim.mixed_precision, torch.float32
    )
    vae.to(device, dtype=weight_dtype)
    text_encoder.to(device, dtype=weight_dtype)
    unet.to(device)
    controlnet.to(device)
    params = [p for m in (unet, controlnet) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.learning_rate, weight_decay=cfg.optim.weight_decay)
    lr_scheduler = get_scheduler(
        cfg.optim.lr_scheduler, optimizer=optimizer, num_warmup_steps=cfg.optim.lr_warmup_steps,
        num_training_steps=cfg.optim.max_steps,
    )  # fmt: skip
    amp = weight_dtype != torch.float32
    scaler = torch.amp.GradScaler(device.type) if weight_dtype == torch.float16 else None
    T = noise_scheduler.config.num_train_timesteps
    step, epoch = 0, 0
    while step < cfg.optim.max_steps:
        dataset.set_epoch(epoch)
        for batch in loader:
            pixel_values = batch["hq"].to(device, dtype=weight_dtype)
            latents = vae.encode(pixel_values).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            bsz = latents.shape[0]
            timesteps = torch.randint(0, T, (bsz,), device=latents.device).long()
            noisy_latents = noise_scheduler.add_noise(latents.float(), noise.float(), timesteps).to(
                weight_dtype
            )
            captions = [c if torch.rand(()) >= cfg.data.caption_dropout else "" for c in batch["caption"]]
            input_ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").input_ids.to(device)  # fmt: skip
            encoder_hidden_states = text_encoder(input_ids, return_dict=False)[0]
            controlnet_image = ((batch["lq"] + 1) / 2).to(device, dtype=weight_dtype)
            cn_kwargs = {}
            if cfg.model.quality_prior:
                cn_kwargs["class_labels"] = quality_labels(batch["quality"].float(), bsz, device)
            with torch.autocast(device.type, dtype=weight_dtype, enabled=amp):
                down, mid = controlnet(noisy_latents, timesteps, encoder_hidden_states=encoder_hidden_states,
                                       controlnet_cond=controlnet_image, return_dict=False, **cn_kwargs)  # fmt: skip
                model_pred = unet(
                    noisy_latents, timesteps, encoder_hidden_states=encoder_hidden_states,
                    down_block_additional_residuals=[s.to(dtype=weight_dtype) for s in down],
                    mid_block_additional_residual=mid.to(dtype=weight_dtype), return_dict=False,
                )[0]  # fmt: skip
            if noise_scheduler.config.prediction_type == "epsilon":
                target = noise
            else:
                target = noise_scheduler.get_velocity(latents, noise, timesteps)
            loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
                optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            step += 1
            if step >= cfg.optim.max_steps:
                break
        epoch += 1


# ---------------------------------------------------------------------------------------------- one run
def run_variant(args, device, dataset: Path, tmp: Path, variant: str, gc_on: bool, tag: str,
                on_step=None, build=None) -> Run:  # fmt: skip
    """One run of ``variant``; ``build``: the components builder (default :func:`component_builder`'s).

    --full: random full-size components instead of a download, and no 5 GB model folder per run."""
    from authface.training import TRAIN_LOG, read_losses, train

    build = build or component_builder(args, device)

    out = tmp / f"run-{tag}"
    cfg, _ = make_cfg(args, dataset, out, variant, gc_on)
    run = Run(variant)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    losses: list = []
    with StepClock(device, on_step) as clock:
        t0 = time.perf_counter()
        if variant == C:
            diffusers_loop(cfg, build, device, losses)
        else:
            train(cfg, build_components=build, save_model=not args.full)
        _sync(device)
        t1 = time.perf_counter()
    if device.type == "cuda":
        run.peak_mib = torch.cuda.max_memory_allocated(device) / MIB
    if len(clock.wall) != args.steps:
        raise RuntimeError(f"{variant}: expected {args.steps} zero_grad calls, saw {len(clock.wall)}")
    run.wall, run.cpu = clock.intervals(args.skip)
    run.params = clock.params
    run.setup, run.teardown, run.total = clock.wall[0] - t0, t1 - clock.wall[-1], t1 - t0
    if variant == C:
        run.losses = [float(x) for x in losses]
    else:
        run.losses = read_losses(out / TRAIN_LOG)
    return run


def data_time(args, dataset: Path, batches: int) -> float:
    """Seconds per batch to read + degrade + collate with the same Dataset / DataLoader settings."""
    from authface.config import TrainConfig, load_config
    from authface.data import read_manifest
    from authface.data.dataset import FaceRestorationDataset

    cfg = load_config(
        TrainConfig, args.config, [f"data.dataset={dataset}", f"data.resolution={args.resolution}"]
    )
    ds = FaceRestorationDataset(read_manifest(dataset), args.resolution, cfg.data.degradation, args.seed,
                                cfg.facial.regions, cfg.data.prompt)  # fmt: skip
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(0), drop_last=True)  # fmt: skip
    times, n = [], 0
    while n < batches:
        it = iter(loader)
        while n < batches:
            t0 = time.perf_counter()
            try:
                next(it)
            except StopIteration:
                break
            times.append(time.perf_counter() - t0)
            n += 1
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------- breakdown
def breakdown(args, device, dataset: Path, tmp: Path, variant: str, gc_on: bool) -> tuple[dict, float]:
    """One instrumented run: ({region path: mean seconds per step}, mean step seconds) over the steps after --skip."""
    from authface.data.dataset import FaceRestorationDataset
    from authface.losses import FacialFeatureLoss

    rt = RegionTimer(device)

    def on_step(n: int) -> None:  # the counted steps start after zero_grad number skip + 1
        if n == args.skip + 1:
            rt.stats.clear()

    build = component_builder(args, device)

    def instrumented(cfg) -> dict:  # both loops build their models through this
        comps = build(cfg)
        rt.wrap(comps["vae"], "encode", "vae.encode")
        rt.wrap(comps["text_encoder"], "forward", "text encoder forward")
        rt.wrap(comps["controlnet"], "forward", "controlnet forward")
        rt.wrap(comps["unet"], "forward", "unet forward")
        return comps

    rt.wrap(FaceRestorationDataset, "__getitem__", "dataset item (read + degrade)")
    rt.wrap(FacialFeatureLoss, "forward", "facial loss forward")
    rt.wrap(torch.Tensor, "backward", "backward")
    rt.wrap(torch.nn.utils, "clip_grad_norm_", "clip_grad_norm_")
    rt.wrap(torch.optim.AdamW, "step", "optimizer step")
    try:
        if variant == C:
            cfg, _ = make_cfg(args, dataset, tmp / "run-breakdown-c", C, gc_on)
            with StepClock(device, on_step) as clock:
                diffusers_loop(cfg, instrumented, device, [])
            wall, _ = clock.intervals(args.skip)
        else:
            wall = run_variant(
                args, device, dataset, tmp, variant, gc_on, f"breakdown-{variant[1]}", on_step, instrumented
            ).wall
    finally:
        rt.restore()
    steps = max(1, len(wall))
    return {p: s[1] / steps for p, s in rt.stats.items()}, statistics.fmean(wall)


# ---------------------------------------------------------------------------------------------- report
def _q(v: list[float]) -> str:
    q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
    return f"min {min(v) * 1e3:.1f}, q1 {q[0] * 1e3:.1f}, q3 {q[2] * 1e3:.1f}, max {max(v) * 1e3:.1f} ms"


def bench_setting(args, device, dataset: Path, tmp: Path, gc_on: bool, label: str) -> dict[str, float]:
    names = [A, B, C]
    runs: dict[str, list[Run]] = {n: [] for n in names}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for k, name in enumerate(names[r % 3 :] + names[: r % 3]):
            runs[name].append(
                run_variant(args, device, dataset, tmp, name, gc_on, f"{'gc' if gc_on else 'nogc'}-{r}-{k}")
            )
    wall = time.perf_counter() - t0
    gc_words = "gradient checkpointing ON" if gc_on else "gradient checkpointing off"
    print(f"{label}; {gc_words}; {args.rounds} rounds x 3 runs of {args.steps} steps ({args.skip} dropped per run), "
          f"{wall:.1f} s")  # fmt: skip
    med, cmed, per_round = {}, {}, {}
    for n in names:
        w = [x for run in runs[n] for x in run.wall]
        c = [x for run in runs[n] for x in run.cpu]
        med[n], cmed[n] = statistics.median(w), statistics.median(c)
        per_round[n] = [statistics.median(run.wall) for run in runs[n]]
        rs = runs[n]
        losses = [x for run in rs for x in run.losses]
        mem = f"; peak allocated {max(r.peak_mib for r in rs):.0f} MiB" if device.type == "cuda" else ""
        print(
            f"  {n:29s} {med[n] * 1e3:8.1f} ms/step ({1 / med[n]:6.2f} steps/s), {_q(w)} (n={len(w)}); CPU "
            f"{cmed[n] * 1e3:.1f} ms/step; trainable {rs[0].params / 1e6:.4f} M params; setup "
            f"{statistics.median(r.setup for r in rs):.2f} s, end {statistics.median(r.teardown for r in rs):.2f} s; "
            f"mean loss {statistics.fmean(losses):.4f}{mem}"
        )
    if len({runs[n][0].params for n in names}) != 1:
        print("  WARNING: the variants do not train the same number of parameters")
    ratios = {}
    for num, den, key, target in ((B, A, "(b)/(a)", args.target_facial), (A, C, "(a)/(c)", args.target_loop)):
        ratio = med[num] / med[den]
        ratios[key] = ratio
        paired = statistics.median(x / y for x, y in zip(per_round[num], per_round[den]))
        ok = "OK" if ratio <= target else "NOT MET"
        print(
            f"RATIO {key} = {ratio:.3f} ({num} {med[num] * 1e3:.1f} ms/step vs {den} {med[den] * 1e3:.1f} ms/step; "
            f"median of per-round ratios {paired:.3f}; CPU-time ratio {cmed[num] / cmed[den]:.3f}; device "
            f"{device.type}; {label}; {gc_words}; target <= {target:g}: {ok})",
            flush=True,
        )
    if args.breakdown:
        print(
            f"  BREAKDOWN: one instrumented run of {args.steps} steps per variant; mean wall ms per step of each "
            f"region over the {args.steps - args.skip - 1} steps after the first {args.skip + 1}; 'rest' = mean step "
            "minus the regions:"
        )
        tables = {n: breakdown(args, device, dataset, tmp, n, gc_on) for n in names}
        paths: list[tuple] = []
        for n in names:
            for p in tables[n][0]:
                if p not in paths:
                    paths.append(p)
        print(f"    {'region (ms/step)':44s}" + "".join(f"{n[:3]:>10s}" for n in names))
        for p in paths:
            name = "  " * (len(p) - 1) + p[-1]
            print(f"    {name:44s}" + "".join(f"{tables[n][0].get(p, 0.0) * 1e3:10.2f}" for n in names))
        print(f"    {'mean step (instrumented)':44s}" + "".join(f"{tables[n][1] * 1e3:10.2f}" for n in names))
        rest = {}
        for n in names:
            top = sum(v for p, v in tables[n][0].items() if len(p) == 1)
            rest[n] = tables[n][1] - top
        print(
            f"    {'rest (loop, collate, accelerate, logging...)':44s}"
            + "".join(f"{rest[n] * 1e3:10.2f}" for n in names)
        )
    print()
    return ratios


def bench(args, device: torch.device) -> int:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("authface").setLevel(logging.ERROR)
    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" on every cast in train()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()  # "Writing model shards" when train() saves its model folder
    with tempfile.TemporaryDirectory(prefix="authface-bench-train-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        dataset = make_dataset(tmp, args.photos, args.crop, args.seed, args.aligned)
        print(f"  (prepared in {time.perf_counter() - t0:.1f} s)")
        cfg, overrides = make_cfg(args, dataset, tmp / "out", A, False)
        hidden = ("data.dataset=", "output.output_dir=", "model.gradient_checkpointing=", "facial.")
        shown = " ".join(o for o in overrides if not o.startswith(hidden))
        print(f"config: {os.path.relpath(args.config, ROOT)} + overrides: {shown}")
        print(
            "  (a) and (c): facial.weight=0; (b): facial.weight=0.1 facial.mode=logit_normal facial.gan_weight=0; "
            "model.gradient_checkpointing per setting below"
        )
        comps = component_builder(args, device)(cfg)
        label = (
            "full sd15-random, fp32 master weights"
            if args.full
            else "tiny, authface.training.load_components"
        )
        print(
            f"components ({label}; the same builder and seed for all three): unet {count_params(comps['unet']):.2f} "
            f"M params, controlnet (from the UNet) {count_params(comps['controlnet']):.2f} M, vae "
            f"{count_params(comps['vae']):.2f} M, text encoder {count_params(comps['text_encoder']):.2f} M; "
            f"batch {args.batch}, {args.resolution}x{args.resolution}, mixed precision {args.mixed_precision}"
        )
        del comps
        gc.collect()
        dt = data_time(args, dataset, 16)
        print(f"data: {dt * 1e3:.1f} ms per batch of {args.batch} (read + degrade + collate, median of 16; part of "
              "every variant's step)\n")  # fmt: skip
        label = f"{'full sd15-random' if args.full else 'tiny'}; batch {args.batch}; {args.resolution}x{args.resolution}"
        settings = [False, True] if args.full and args.gc == "both" else [args.gc == "on"]
        for gc_on in settings:
            bench_setting(args, device, dataset, tmp, gc_on, label)
        print(f"torch threads after the runs: {torch.get_num_threads()}")
    return 0


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Training steps/s: ours (with/without the facial loss) vs a diffusers "
                                "example loop on the same components.")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads; 0 = torch's default. Default: 1 on CPU without --full")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default 30; --full: 20)")
    p.add_argument("--skip", type=int, default=3, help="first step intervals dropped per run (default 3)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of the 3 runs (default 4; --full: 2)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument(
        "--resolution", type=int, default=None, help="training resolution (default 64; --full: 512)"
    )
    p.add_argument("--crop", type=int, default=None, help="prepared crop size (default 64; --full: 512)")
    p.add_argument("--photos", type=int, default=16, help="augmented photos in the dataset (default 16)")
    p.add_argument(
        "--quality-prior", action="store_true", help="train the image-quality prior in all variants"
    )
    p.add_argument(
        "--mixed-precision", default=None, help="no | fp16 | bf16 (default no; --full on CUDA: fp16)"
    )
    p.add_argument("--gc", choices=("off", "on", "both"), default=None,
                   help="gradient checkpointing (default off; --full: both)")  # fmt: skip
    p.add_argument(
        "--no-breakdown", dest="breakdown", action="store_false", help="skip the instrumented runs"
    )
    p.add_argument("--target-facial", type=float, default=1.15, help="target for (b)/(a) (default 1.15)")
    p.add_argument("--target-loop", type=float, default=1.15, help="target for (a)/(c) (default 1.15)")
    p.add_argument("--full", action="store_true", help="SD 1.5-sized RANDOM models, 512², batch 4 (CUDA)")
    p.add_argument("--aligned", action="store_true",
                   help="take the photos as aligned crops when preparing the dataset (no dlib needed)")
    p.add_argument("--allow-cpu-full", action="store_true", help="allow --full on CPU (very slow)")
    args = p.parse_args(argv)
    args.steps = args.steps or (20 if args.full else 30)
    args.rounds = args.rounds or (2 if args.full else 4)
    args.resolution = args.resolution or (512 if args.full else 64)
    args.crop = args.crop or (512 if args.full else 64)
    args.gc = args.gc or ("both" if args.full else "off")
    args.config = str(ROOT / "configs" / "train" / ("sd15.yaml" if args.full else "tiny.yaml"))
    if args.steps < args.skip + 3 or args.rounds < 1:
        p.error("--steps must be >= --skip + 3 and --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.mixed_precision is None:
        args.mixed_precision = "fp16" if args.full and device.type == "cuda" else "no"
    if args.threads is None and device.type == "cpu" and not args.full:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    print_header(args, device)
    try:
        if args.full and device.type != "cuda" and not args.allow_cpu_full:
            print(
                "error: --full trains SD 1.5-sized models at 512x512 and is meant for CUDA; on CPU a step takes "
                "minutes. Run it on a GPU, or pass --allow-cpu-full (e.g. with --resolution 64 --crop 64 --steps 5 "
                "--skip 1 --rounds 1 --gc off --no-breakdown for a smoke test).",
                file=sys.stderr,
            )
            return 2
        return bench(args, device)
    finally:
        print_footer()


if __name__ == "__main__":
    sys.exit(main())
