#!/usr/bin/env python
"""One-step vs few-step vs 20-step restoration, side by side in one process (issue 13).

    python benchmarks/bench_speed.py                              # tiny random models, CPU, 64²
    python benchmarks/bench_speed.py --model full --size 256      # SD 1.5-sized RANDOM models, CPU float32, 256²
    python benchmarks/bench_speed.py --model full --size 256 --check-ratio 0.15   # exit 1 above the acceptance
    python benchmarks/bench_speed.py --dry-run                    # seconds: every mode once on tiny 64² crops

Modes, each on the same crops (one face unless ``--batch``), same prompt and generator seed:

* ``20-step``: DDIM, 20 steps at strength 1.0 with classifier-free guidance (scale 4): 40 ControlNet+UNet
  evaluations (20 calls on the doubled batch), one VAE decode.
* ``20-step+emb``: the same with the ControlNet's condition embedding computed once per batch
  (:func:`authface.models.speed.cache_condition_embedding`).
* ``4-step``: LCM, 4 steps at strength 1.0, no CFG (as LCM/Hyper-SD/DMD2 LoRAs run): 4 evaluations, one decode.
* ``1-step``: the one-step mode (:mod:`authface.models.one_step`, t* = 500): one VAE encode, one ControlNet+UNet
  evaluation on the degraded crop's latent, no CFG, one decode.

The rounds are interleaved (the order rotates every round) and the median seconds per call are compared;
``RATIO 1-step/20-step`` is the acceptance figure (<= 0.15 on the full-size SD 1.5 architecture at 256²). UNet
calls per mode are counted with a forward hook and printed as a check. Random weights: the images are noise;
only the cost is measured. Nothing is downloaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "a high quality, sharp, detailed photograph of a face"
NEGATIVE = "blurry, low quality, deformed"
MODES = ("20-step", "20-step+emb", "4-step", "1-step")


def build_pipeline(model: str, device: torch.device, dtype: torch.dtype):
    """An AuthFacePipeline of tiny or SD 1.5-sized random components (DDIM scheduler)."""
    from authface.pipeline import AuthFacePipeline

    if model == "tiny":
        from authface.testing.tiny_model import tiny_components

        comps = tiny_components(seed=0)
    else:
        from bench_pipeline import full_components

        comps = full_components(0, device, dtype)
    pipe = AuthFacePipeline(**comps).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def one_step_call(pipe, image: torch.Tensor, timestep: int) -> torch.Tensor:
    """The one-step mode on public pipeline methods: encode, ONE ControlNet+UNet call without CFG, x̂0, decode.
    ``image``: [-1, 1] (B, 3, H, W); returns [-1, 1] (B, 3, H, W)."""
    from authface.models.one_step import predicted_x0

    dtype = pipe.unet.dtype
    pipe._guidance_scale = 1.0  # no CFG: predict_noise runs one pass on B samples
    cond, _ = pipe.encode_prompt(PROMPT, NEGATIVE, image.device, dtype, False)
    state = {**pipe.text_condition(cond, None, image), "control_image": ((image + 1) / 2).to(dtype),
             "class_labels": None}  # fmt: skip
    lq = pipe.encode_image(image).to(dtype)
    t = torch.tensor(timestep, device=image.device)
    eps = pipe.predict_noise(lq, t, state, 1.0)
    a = pipe.scheduler.alphas_cumprod.to(image.device)[timestep].to(dtype)
    return pipe.decode_latents(predicted_x0(lq, eps, a, pipe.scheduler.config.prediction_type)).float()


class Modes:
    """The four modes on one pipeline (the scheduler is swapped per mode: DDIM or LCM from the same config)."""

    def __init__(self, pipe, image: torch.Tensor, steps: int, few_steps: int, cfg: float, t_star: int):
        from diffusers import DDIMScheduler, LCMScheduler

        self.pipe, self.image, self.steps, self.few, self.cfg, self.t = pipe, image, steps, few_steps, cfg, t_star
        self.ddim = DDIMScheduler.from_config(pipe.scheduler.config)
        self.lcm = LCMScheduler.from_config(pipe.scheduler.config)
        self.unet_calls = 0
        self.peak: dict[str, float] = {}
        pipe.unet.register_forward_hook(self._count)

    def _count(self, *_):
        self.unet_calls += 1

    def _sample(self, scheduler, steps: int, cfg: float):
        self.pipe.scheduler = scheduler
        gens = [torch.Generator().manual_seed(i) for i in range(self.image.shape[0])]
        return self.pipe(self.image, prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps,
                         strength=1.0, guidance_scale=cfg, generator=gens, batch_size=self.image.shape[0],
                         color_fix="none", output_type="pt").images  # fmt: skip

    def call(self, mode: str) -> torch.Tensor:
        from authface.models.speed import cache_condition_embedding

        if mode == "20-step":
            return self._sample(self.ddim, self.steps, self.cfg)
        if mode == "20-step+emb":
            with cache_condition_embedding(self.pipe.controlnet):
                return self._sample(self.ddim, self.steps, self.cfg)
        if mode == "4-step":
            return self._sample(self.lcm, self.few, 1.0)
        return one_step_call(self.pipe, self.image, self.t)

    def timed(self, mode: str) -> tuple[float, int]:
        """(seconds, UNet calls) of one call; on CUDA the call's peak allocated MiB goes to ``self.peak``."""
        self.unet_calls = 0
        sync = torch.cuda.synchronize if self.image.is_cuda else (lambda: None)
        if self.image.is_cuda:
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        out = self.call(mode)
        sync()
        dt = time.perf_counter() - t0
        if self.image.is_cuda:
            self.peak[mode] = torch.cuda.max_memory_allocated() / 2**20
        if not torch.isfinite(out).all():
            raise RuntimeError(f"{mode}: non-finite output")
        return dt, self.unet_calls


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("tiny", "full"), default="tiny", help="tiny random or SD 1.5-sized random")
    p.add_argument("--size", type=int, default=None, help="crop side (default 64 tiny, 256 full)")
    p.add_argument("--batch", type=int, default=1, help="faces per call (default 1)")
    p.add_argument("--steps", type=int, default=20, help="steps of the multi-step baseline (default 20)")
    p.add_argument("--few-steps", type=int, default=4, help="steps of the LCM mode (default 4)")
    p.add_argument("--cfg", type=float, default=4.0, help="CFG scale of the multi-step baseline (default 4)")
    p.add_argument("--t-star", type=int, default=500, help="one-step timestep (default 500)")
    p.add_argument("--reps", type=int, default=None, help="interleaved timed rounds (default 5 tiny, 1 full)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (0: torch's default; default 1 for the tiny models on CPU, whose small "
                   "kernels gain nothing from threads and stall when threads outnumber free cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--check-ratio", type=float, default=None, metavar="X", help="exit 1 if 1-step/20-step > X")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="modes to time (default all)")
    p.add_argument("--dry-run", action="store_true", help="tiny, 64², 2 steps baseline, 1 round: a smoke test")
    args = p.parse_args(argv)
    if args.dry_run:
        args.model, args.size, args.steps, args.few_steps, args.reps, args.warmup = "tiny", 64, 2, 2, 1, 0
    args.size = args.size or (64 if args.model == "tiny" else 256)
    args.reps = args.reps or (5 if args.model == "tiny" else 1)
    if args.threads is None:
        args.threads = 1 if args.model == "tiny" and args.device == "cpu" else 0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    print("command: python " + shlex.join(sys.argv))
    print(f"python {platform.python_version()}; torch {torch.__version__}; {platform.platform()}; "
          f"cores {os.cpu_count()}; threads {torch.get_num_threads()}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    pipe = build_pipeline(args.model, device, dtype)
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1).to(device)
    modes = Modes(pipe, image, args.steps, args.few_steps, args.cfg, args.t_star)
    for _ in range(args.warmup):  # the cheap modes call every module the 20-step ones call: one-time costs paid
        for m in ("1-step", "4-step"):
            modes.timed(m)
    run_modes = tuple(m for m in MODES if m in args.modes or m in ("20-step", "1-step"))
    times: dict[str, list[float]] = {m: [] for m in run_modes}
    calls: dict[str, int] = {}
    for r in range(args.reps):
        k = r % len(run_modes)
        order = run_modes[k:] + run_modes[:k]
        for m in order:
            dt, calls[m] = modes.timed(m)
            times[m].append(dt)
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"model {args.model}, {args.size}², batch {args.batch}, {args.reps} round(s), device {device}")
    print(f"      {'mode':<12} {'s/call':>9} {'s/face':>9} {'faces/s':>8} {'UNet calls':>10} {'peak MiB':>9}")
    for m in run_modes:
        peak = f"{modes.peak[m]:>9.0f}" if m in modes.peak else f"{'-':>9}"
        print(f"SPEED {m:<12} {med[m]:>9.4f} {med[m] / args.batch:>9.4f} {args.batch / med[m]:>8.2f} "
              f"{calls[m]:>10} {peak}")  # fmt: skip
    ratio = med["1-step"] / med["20-step"]
    print(f"RATIO 1-step/20-step = {ratio:.3f}")
    for m in ("4-step", "20-step+emb"):
        if m in med:
            print(f"RATIO {m}/20-step = {med[m] / med['20-step']:.3f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if calls["1-step"] != 1:
        print(f"error: the one-step mode made {calls['1-step']} UNet calls", file=sys.stderr)
        return 1
    if args.check_ratio is not None and ratio > args.check_ratio:
        print(f"error: RATIO 1-step/20-step {ratio:.3f} > {args.check_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
