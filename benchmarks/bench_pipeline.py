#!/usr/bin/env python
"""AuthFace benchmarks: pipeline overhead against diffusers, and the face stage.

    python benchmarks/bench_pipeline.py                      # tiny random models on CPU: RATIO line (~1-2 min)
    python benchmarks/bench_pipeline.py --check-ratio 1.05   # ... and exit 1 when authface/diffusers > 1.05
    python benchmarks/bench_pipeline.py --full               # CUDA: SD 1.5-sized RANDOM models, fp16, 512², 20 steps
    python benchmarks/bench_pipeline.py --faces DIR          # face stage: dlib HOG detect + align + paste on DIR

1. Pipeline overhead. ``AuthFacePipeline`` (no guidance, ``color_fix="none"``, ``output_type="pt"``) against
   diffusers' ``StableDiffusionControlNetImg2ImgPipeline`` built on the SAME component objects (vae, text encoder,
   tokenizer, unet, controlnet; each pipeline gets its own scheduler made from the same config), on the same
   degraded crops with the same prompt / negative prompt, strength, steps, CFG scale, ControlNet scale, batch and
   per-image generators. Both are warmed up, then called interleaved (the order alternates every round) and the
   median seconds per call are compared.

   Inputs: the crops are uint8 images. AuthFace gets them as a [-1, 1] float tensor (its API); diffusers gets
   ``image=`` and ``control_image=`` as the same crops in [0, 1] float tensors, the format its
   ``VaeImageProcessor`` expects for tensors: ``image`` is normalised to [-1, 1] (2x - 1) before the VAE
   encoder, ``control_image`` (processor with ``do_normalize=False``) goes to the ControlNet as [0, 1], as in
   AuthFace. Outputs: AuthFace returns [-1, 1], diffusers post-processes to [0, 1] (both float tensors).

   Known differences that are part of what is measured: diffusers re-encodes the prompts on every call (one text
   encoder pass over B prompts + B negative prompts) while AuthFace caches the two embeddings; with one generator
   per image diffusers VAE-encodes the images one at a time and samples the posterior, AuthFace encodes the batch
   at once and takes the posterior mode.

   Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (stats reset before each measured call; reported as the
   peak and as the growth over what was allocated before the call). On CPU the peak growth of the process RSS over
   the call, sampled by a psutil thread every ``--rss-interval-ms`` (1 ms) in separate calls after the timed ones,
   with glibc ``malloc_trim(0)`` before each call so that memory freed by the previous call does not hide growth;
   the maximum over ``--mem-reps`` calls per pipeline is reported. No tracemalloc (it does not see torch's
   allocations).

2. Face stage (``--faces DIR``): for every photo of DIR (``authface.io.discover_inputs``): read, detect
   (``create_detector("dlib")``: HOG, upsample 1) + ``select_faces``, align (``align_face``, 512 crops), paste
   (``LanczosUpsampler`` at ``--upscale`` then ``paste_faces`` with the crops unchanged: an identity restore).
   Unreadable files are reported and skipped.

Nothing is downloaded: every model is built in code with random weights (HF_HUB_OFFLINE=1 is set).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import ctypes.util  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

MIB = 1024.0 * 1024.0
PROMPT = "a high quality, sharp, detailed photograph of a face"
NEGATIVE_PROMPT = "blurry, low quality, deformed"


# ---------------------------------------------------------------------------------------------- environment
def print_header(args: argparse.Namespace, device: torch.device) -> None:
    import diffusers
    import transformers

    print("command: python " + shlex.join(sys.argv), flush=True)
    print(f"python: {platform.python_version()} ({sys.executable})")
    print(f"platform: {platform.platform()}; cpu cores: {os.cpu_count()}")
    print(
        f"torch {torch.__version__}; diffusers {diffusers.__version__}; transformers {transformers.__version__}"
    )
    how = f"--threads {args.threads}" if args.threads else "torch default"
    threads = f"torch threads {torch.get_num_threads()} ({how}; interop {torch.get_num_interop_threads()})"
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    if env:
        threads += "; " + ", ".join(f"{k}={v}" for k, v in env.items())
    try:
        import cv2

        threads += f"; opencv {cv2.__version__} threads {cv2.getNumThreads()}"
    except ImportError:
        pass
    print(threads)
    with contextlib.suppress(OSError):
        print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(
            f"device: cuda ({props.name}, {props.total_memory / MIB / 1024:.1f} GiB; CUDA {torch.version.cuda}; "
            f"cudnn {torch.backends.cudnn.version()})"
        )
    else:
        print(f"device: {device.type} ({platform.processor() or platform.machine()})")
    print(flush=True)


# ---------------------------------------------------------------------------------------------- memory
def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc), so RSS baselines are comparable between calls."""
    gc.collect()
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


class RssPeak:
    """Peak growth of this process's RSS during a ``with`` block, sampled by a psutil thread."""

    def __init__(self, interval_s: float = 0.001):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.base = self.peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> RssPeak:
        _malloc_trim()
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.base


# ---------------------------------------------------------------------------------------------- models
def full_components(seed: int, device: torch.device, dtype: torch.dtype) -> dict:
    """Stable Diffusion 1.5-sized components with RANDOM weights, built from configs in code (no download)."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from diffusers.utils import logging as diffusers_logging
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from authface.testing.tiny_model import TOKENIZER_DIR

    with torch.device(device):  # initialise the weights directly on the device
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
        )  # fmt: skip
        torch.manual_seed(seed + 1)
        controlnet = ControlNetModel.from_unet(unet)
        torch.manual_seed(seed + 2)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
            block_out_channels=(128, 256, 512, 512), norm_num_groups=32,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )  # fmt: skip
        torch.manual_seed(seed + 3)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(  # CLIP ViT-L/14 text tower, as in SD 1.5 (bos 0 / eos 2: legacy argmax pooling)
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
                projection_dim=768,
                bos_token_id=0,
                eos_token_id=2,
                pad_token_id=1,
            )  # fmt: skip
        )
    # the tiny committed byte-level tokenizer: its ids (< 514) are valid for a 49408-token vocabulary
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    modules = dict(vae=vae, text_encoder=text_encoder, unet=unet, controlnet=controlnet)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # silence "modules that should be kept in float32: []" on casts
    try:
        for m in modules.values():
            m.to(device=device, dtype=dtype).eval()
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return dict(**modules, tokenizer=tokenizer, scheduler=scheduler)


def build_pipelines(components: dict):
    """(AuthFacePipeline, StableDiffusionControlNetImg2ImgPipeline) sharing every component object."""
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    from authface.pipeline import AuthFacePipeline

    shared = {k: components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "controlnet")}
    sched_cls, sched_cfg = type(components["scheduler"]), components["scheduler"].config
    ours = AuthFacePipeline(**shared, scheduler=sched_cls.from_config(sched_cfg))
    theirs = StableDiffusionControlNetImg2ImgPipeline(
        **shared, scheduler=sched_cls.from_config(sched_cfg),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    for p in (ours, theirs):
        p.set_progress_bar_config(disable=True)
    return ours, theirs


def count_params(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


# ---------------------------------------------------------------------------------------------- overhead
def make_crops(batch: int, size: int, seed: int) -> np.ndarray:
    """Deterministic 'degraded' uint8 RGB crops (B, H, W, 3): smooth random colour fields + noise, quantised."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(size // 16, 2), max(size // 16, 2), generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 0.08 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class OverheadCase:
    """One configuration (components, batch, size, steps) with the two calls to compare."""

    def __init__(self, ours, theirs, crops_u8: np.ndarray, args, device: torch.device, steps: int):
        self.ours, self.theirs, self.args, self.device, self.steps = ours, theirs, args, device, steps
        self.batch = crops_u8.shape[0]
        x = torch.from_numpy(crops_u8).permute(0, 3, 1, 2).to(torch.float32).contiguous()
        self.image_pm1 = (x / 127.5 - 1.0).to(device)  # AuthFace: [-1, 1]
        self.image_01 = (x / 255.0).to(device)  # diffusers: [0, 1] for image= and control_image=

    def _generators(self) -> list[torch.Generator]:
        return [torch.Generator(self.device).manual_seed(self.args.seed + i) for i in range(self.batch)]

    def call(self, which: str) -> torch.Tensor:
        a, gens = self.args, self._generators()
        if which == "authface":
            return self.ours(
                image=self.image_pm1, prompt=PROMPT, negative_prompt=NEGATIVE_PROMPT,
                num_inference_steps=self.steps, strength=a.strength, guidance_scale=a.cfg,
                controlnet_conditioning_scale=a.controlnet_scale, generator=gens, batch_size=self.batch,
                color_fix="none", objectives=None, output_type="pt",
            ).images  # fmt: skip
        return self.theirs(
            prompt=[PROMPT] * self.batch, negative_prompt=[NEGATIVE_PROMPT] * self.batch,
            image=self.image_01, control_image=self.image_01,
            num_inference_steps=self.steps, strength=a.strength, guidance_scale=a.cfg,
            controlnet_conditioning_scale=a.controlnet_scale, generator=gens, output_type="pt",
        ).images  # fmt: skip

    def timed(self, which: str) -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of one call."""
        gc.collect()
        _sync(self.device)
        c0, t0 = time.process_time(), time.perf_counter()
        out = self.call(which)
        _sync(self.device)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        del out
        return dt, dc

    def check_outputs(self) -> str:
        o, t = self.call("authface"), self.call("diffusers")
        return (
            f"outputs: authface {tuple(o.shape)} {str(o.dtype).replace('torch.', '')} in "
            f"[{o.min().item():.2f}, {o.max().item():.2f}]; diffusers {tuple(t.shape)} "
            f"{str(t.dtype).replace('torch.', '')} in [{t.min().item():.2f}, {t.max().item():.2f}]"
        )

    def run(self, warmup: int, reps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """({name: wall seconds per call}, {name: CPU seconds per call}), rounds interleaved, order alternating."""
        for _ in range(warmup):
            for which in ("authface", "diffusers"):
                self.timed(which)
        wall: dict[str, list[float]] = {"authface": [], "diffusers": []}
        cpu: dict[str, list[float]] = {"authface": [], "diffusers": []}
        for r in range(reps):
            for which in self.order(r):
                dt, dc = self.timed(which)
                wall[which].append(dt)
                cpu[which].append(dc)
        return wall, cpu

    names: tuple[str, ...] = ("authface", "diffusers")

    def order(self, r: int) -> tuple[str, ...]:
        """Round ``r``'s call order: the names rotated by ``r`` (A B / B A for two)."""
        k = r % len(self.names)
        return tuple(self.names[k:] + self.names[:k])

    def memory(self, reps: int, interval_ms: float) -> dict[str, tuple[float, float]]:
        """{name: (peak MiB, growth MiB)}; CUDA: allocated memory, CPU: RSS (peak absolute, growth over the call)."""
        res: dict[str, tuple[float, float]] = {}
        for r in range(reps):
            for which in self.order(r):
                if self.device.type == "cuda":
                    gc.collect()
                    torch.cuda.empty_cache()
                    torch.cuda.synchronize(self.device)
                    base = torch.cuda.memory_allocated(self.device)
                    torch.cuda.reset_peak_memory_stats(self.device)
                    out = self.call(which)
                    torch.cuda.synchronize(self.device)
                    peak = torch.cuda.max_memory_allocated(self.device)
                    del out
                    cur = (peak / MIB, (peak - base) / MIB)
                else:
                    with RssPeak(interval_ms / 1000.0) as m:
                        out = self.call(which)
                        del out
                    cur = (m.peak / MIB, m.growth / MIB)
                prev = res.get(which, (0.0, 0.0))
                res[which] = (max(prev[0], cur[0]), max(prev[1], cur[1]))
        return res


def report_case(case: OverheadCase, args, label: str, size: int) -> float:
    print(case.check_outputs(), flush=True)
    t0 = time.perf_counter()
    times, cpu = case.run(args.warmup, args.reps)
    wall = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["authface"] / med["diffusers"]
    paired = statistics.median(a / d for a, d in zip(times["authface"], times["diffusers"]))
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    for k, v in times.items():
        q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
        print(
            f"  {k:9s} per call: median {med[k]:.4f} s, min {min(v):.4f}, q1 {q[0]:.4f}, q3 {q[2]:.4f}, "
            f"max {max(v):.4f} (n={len(v)})"
        )
    print(f"  timed loop wall time {wall:.1f} s (warm-up {args.warmup} + {args.reps} interleaved rounds)")
    print(
        f"  cross-checks: median of per-round ratios {paired:.3f}; process CPU time per call (all threads) "
        f"authface {cpu_med['authface']:.3f} s, diffusers {cpu_med['diffusers']:.3f} s, "
        f"ratio {cpu_med['authface'] / cpu_med['diffusers']:.3f}"
    )
    print(
        f"RATIO authface/diffusers = {ratio:.3f} (authface {med['authface']:.3f} s, diffusers "
        f"{med['diffusers']:.3f} s per call; median of {args.reps}; device {case.device.type}; {label}; "
        f"batch {case.batch}; steps {case.steps}; size {size}x{size})",
        flush=True,
    )
    b = case.batch
    print(
        f"PER FACE authface {med['authface'] / b:.4f} s/face ({b / med['authface']:.2f} faces/s), "
        f"diffusers {med['diffusers'] / b:.4f} s/face ({b / med['diffusers']:.2f} faces/s)"
    )
    if args.mem_reps > 0:
        mem = case.memory(args.mem_reps, args.rss_interval_ms)
        if case.device.type == "cuda":
            how = "torch.cuda.max_memory_allocated, reset before each call; growth = peak - allocated before"
            words = "allocated"
        else:
            how = (
                f"process RSS sampled every {args.rss_interval_ms:g} ms by a psutil thread, malloc_trim(0) "
                "before each call; growth = peak RSS - RSS before the call"
            )
            words = "RSS"
        print(
            f"MEMORY peak {words}: authface {mem['authface'][0]:.1f} MiB (growth {mem['authface'][1]:+.1f} MiB), "
            f"diffusers {mem['diffusers'][0]:.1f} MiB (growth {mem['diffusers'][1]:+.1f} MiB); "
            f"max of {args.mem_reps} call(s) each; {how}",
            flush=True,
        )
    print()
    return ratio


def bench_overhead(args, device: torch.device) -> int:
    from authface.testing.tiny_model import tiny_components

    warnings.filterwarnings("ignore", category=FutureWarning)
    ratios = []
    if args.full:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        size, steps = args.size or 512, args.steps or 20
        batches = args.batches or [1, 8]
        t0 = time.perf_counter()
        comps = full_components(args.seed, device, dtype)
        print(
            f"full SD 1.5-sized RANDOM components ({str(dtype).replace('torch.', '')}) built in "
            f"{time.perf_counter() - t0:.1f} s: unet {count_params(comps['unet']):.1f} M params, controlnet "
            f"{count_params(comps['controlnet']):.1f} M, vae {count_params(comps['vae']):.1f} M, text encoder "
            f"{count_params(comps['text_encoder']):.1f} M"
        )
        label = f"full sd15-random {str(dtype).replace('torch.', '')}"
    else:
        size, steps = args.size or 128, args.steps or 10
        batches = args.batches or [4]
        comps = tiny_components(args.seed)
        comps = {k: (v.to(device) if isinstance(v, torch.nn.Module) else v) for k, v in comps.items()}
        label = "tiny"
    if size % 8:
        print(f"error: --size must be a multiple of 8 (the VAE downsamples x8), got {size}", file=sys.stderr)
        return 2
    ours, theirs = build_pipelines(comps)
    print(
        f"settings: strength {args.strength}, CFG scale {args.cfg}, controlnet scale {args.controlnet_scale}, "
        f"{int(steps * args.strength)} of {steps} steps run, prompt {PROMPT!r}, negative {NEGATIVE_PROMPT!r}; "
        f"scheduler {type(ours.scheduler).__name__} (a fresh one per pipeline, same config)"
    )
    print(
        "inputs: authface image=[-1,1] float32 (B,3,H,W); diffusers image=control_image=[0,1] float32 (B,3,H,W) "
        "(VaeImageProcessor: image -> 2x-1, control image kept in [0,1]); one generator per image, same seeds"
    )
    for b in batches:
        case = OverheadCase(ours, theirs, make_crops(b, size, args.seed), args, device, steps)
        ratios.append(report_case(case, args, label, size))
    if args.check_ratio is not None:
        worst = max(ratios)
        if worst > args.check_ratio:
            print(f"CHECK FAILED: ratio {worst:.3f} > {args.check_ratio}")
            return 1
        print(f"CHECK OK: ratio {worst:.3f} <= {args.check_ratio}")
    return 0


def print_footer() -> None:
    with contextlib.suppress(OSError):
        print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


# ---------------------------------------------------------------------------------------------- face stage
def bench_faces(args) -> int:
    from authface.face import LanczosUpsampler, align_face, create_detector, paste_faces, select_faces
    from authface.io import ImageReadError, discover_inputs, read_image

    t0 = time.perf_counter()
    detector = create_detector("dlib", upsample=args.face_upsample)
    t_init = time.perf_counter() - t0
    try:
        files = discover_inputs([args.faces])
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    upsampler = LanczosUpsampler()
    print(
        f"face stage on {args.faces}: {len(files)} file(s); detector dlib HOG (upsample {args.face_upsample}, "
        f"loaded in {t_init:.2f} s); crop {args.crop_size}; paste upscale {args.upscale} (LanczosUpsampler); "
        "identity restore (crops pasted back unchanged)"
    )

    photos: list[tuple[str, np.ndarray]] = []
    skipped: list[str] = []
    t_read = 0.0
    for path, rel in files:
        t0 = time.perf_counter()
        try:
            img = read_image(path)
        except ImageReadError as e:
            skipped.append(str(e))
            print(f"  SKIPPED {e}")
            continue
        t_read += time.perf_counter() - t0
        photos.append((rel.as_posix(), img.rgb))
    if not photos:
        print("error: no readable photo", file=sys.stderr)
        return 2

    if args.warmup > 0:  # warm up the detector and OpenCV once (not counted)
        detector.detect(photos[0][1])

    totals = {"detect": 0.0, "align": 0.0, "paste": 0.0}
    n_faces, megapixels, align_failures = 0, 0.0, 0
    for rep in range(args.face_reps):
        for name, rgb in photos:
            t0 = time.perf_counter()
            faces = select_faces(detector.detect(rgb), rgb.shape)
            t1 = time.perf_counter()
            crops, affines = [], []
            for face in faces:
                try:
                    crop, affine = align_face(rgb, face.landmarks, args.crop_size)
                except ValueError as e:
                    align_failures += 1
                    print(f"  {name}: alignment failed: {e}")
                    continue
                crops.append(crop)
                affines.append(affine)
            t2 = time.perf_counter()
            background = upsampler.upscale(rgb, args.upscale)
            out = paste_faces(background, crops, affines, args.upscale) if crops else background
            t3 = time.perf_counter()
            del out
            totals["detect"] += t1 - t0
            totals["align"] += t2 - t1
            totals["paste"] += t3 - t2
            if rep == 0:
                n_faces += len(faces)
                megapixels += rgb.shape[0] * rgb.shape[1] / 1e6
                if args.verbose:
                    print(
                        f"  {name}: {rgb.shape[1]}x{rgb.shape[0]}, {len(faces)} face(s); detect "
                        f"{(t1 - t0) * 1e3:.1f} ms, align {(t2 - t1) * 1e3:.1f} ms, paste {(t3 - t2) * 1e3:.1f} ms"
                    )
    n = len(photos) * args.face_reps
    total = sum(totals.values())
    print(
        f"FACES photos {len(photos)} read ({len(skipped)} skipped), {megapixels:.2f} Mpx; faces found {n_faces}"
        + (f" ({align_failures} alignment failure(s))" if align_failures else "")
        + f"; passes {args.face_reps}"
    )
    print(
        f"FACES {n / total:.2f} photos/s (detect+align+paste, decoding excluded: {total / n * 1e3:.1f} ms/photo); "
        f"{len(photos) / (t_read + total / args.face_reps):.2f} photos/s with decoding "
        f"(read {t_read:.2f} s for one pass)"
    )
    print(
        "FACES split per pass: "
        + ", ".join(f"{k} {v / args.face_reps:.3f} s ({100 * v / total:.1f}%)" for k, v in totals.items())
        + f"; total {total / args.face_reps:.3f} s"
    )
    return 0


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="AuthFace benchmarks: pipeline overhead vs diffusers' ControlNet img2img pipeline on the same "
        "components (default), or the face stage (--faces DIR).",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads; 0 = torch's default (all cores). Default: 1 for the tiny CPU benchmark "
        "(tiny models gain nothing from intra-op threads and one thread keeps the ratio stable on a shared "
        "machine), torch's default otherwise",
    )
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("pipeline overhead")
    g.add_argument(
        "--reps", type=int, default=None, help="interleaved timed rounds (default 30 tiny, 5 --full)"
    )
    g.add_argument("--warmup", type=int, default=2, help="warm-up calls of each pipeline (default 2)")
    g.add_argument(
        "--batches", type=int, nargs="+", default=None, help="batch sizes (default 4; --full: 1 8)"
    )
    g.add_argument("--size", type=int, default=None, help="crop side (default 128; --full: 512)")
    g.add_argument("--steps", type=int, default=None, help="num_inference_steps (default 10; --full: 20)")
    g.add_argument("--strength", type=float, default=0.7)
    g.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (default 4.0)")
    g.add_argument("--controlnet-scale", type=float, default=1.0)
    g.add_argument("--mem-reps", type=int, default=2, help="memory calls per pipeline after timing (0: skip)")
    g.add_argument(
        "--rss-interval-ms", type=float, default=1.0, help="CPU RSS sampling interval (default 1 ms)"
    )
    g.add_argument(
        "--check-ratio", type=float, default=None, metavar="X", help="exit 1 if authface/diffusers > X"
    )
    g.add_argument(
        "--full", action="store_true", help="SD 1.5-sized RANDOM models (fp16 on CUDA), 512², 20 steps"
    )
    g.add_argument("--allow-cpu-full", action="store_true", help="allow --full on CPU (very slow)")
    f = p.add_argument_group("face stage")
    f.add_argument(
        "--faces", metavar="DIR", default=None, help="run the face stage on the photos of DIR instead"
    )
    f.add_argument("--face-reps", type=int, default=1, help="passes over the photos (default 1)")
    f.add_argument("--face-upsample", type=int, default=1, help="dlib HOG upsample (default 1, as AuthFace)")
    f.add_argument("--crop-size", type=int, default=512)
    f.add_argument("--upscale", type=int, default=1, help="background upscale before pasting (default 1)")
    f.add_argument("-v", "--verbose", action="store_true", help="one line per photo")
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = 5 if args.full else 30
    if args.reps < 1 or args.warmup < 0 or args.face_reps < 1:
        p.error("--reps and --face-reps must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads is None and device.type == "cpu" and not args.full and args.faces is None:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    print_header(args, device)
    try:
        return _run(args, device)
    finally:
        print_footer()


def _run(args: argparse.Namespace, device: torch.device) -> int:
    if args.faces is not None:
        return bench_faces(args)
    if args.full and device.type != "cuda" and not args.allow_cpu_full:
        print(
            "error: --full runs SD 1.5-sized models at 512x512 and is meant for CUDA; on CPU it takes hours. "
            "Run it on a GPU, or pass --allow-cpu-full (e.g. with --size 64 --steps 2 --batches 1 --reps 1 "
            "for a smoke test).",
            file=sys.stderr,
        )
        return 2
    return bench_overhead(args, device)


if __name__ == "__main__":
    sys.exit(main())
