#!/usr/bin/env python
"""AuthFace benchmark: the cost of identity + quality guidance during sampling, against no guidance.

    python benchmarks/bench_guidance.py                      # tiny random models on CPU (~3 min): RATIO lines
    python benchmarks/bench_guidance.py --check-ratio 1.6    # ... and exit 1 when guided(tiny decoder)/plain > 1.6
    python benchmarks/bench_guidance.py --full               # CUDA: SD 1.5-sized RANDOM models, fp16, 512², 20 steps

One ``AuthFacePipeline`` (``color_fix="none"``, ``output_type="pt"``) is called on the same degraded crops, with the
same prompt / negative prompt, strength, steps, CFG scale, ControlNet scale, batch and per-image generators, in four
variants, interleaved in one process (the order rotates every round) after a warm-up:

- ``plain``: ``objectives=None``;
- ``guided(tiny decoder)``: ``IdentityGuidance`` (ArcFace IResNet, random weights) + ``QualityGuidance``
  (``SharpnessScorer``), both active in the window [0, ``--window``) of the steps run (default [0, 0.4): 40% of the
  steps), both decoding the predicted clean latent through the pipeline's ``guidance_decoder`` (an
  ``AutoencoderTiny`` with random weights: on CUDA the real taesd architecture, ``AutoencoderTiny()`` defaults; on
  CPU a tiny config, 8 channels and one block per level, with the tiny VAE's latent channels);
- ``guided(vae)``: the same, decoding through the full VAE;
- ``guided(vae@R)``: the same, full VAE at reduced resolution ``resolution=R`` (256 on full-size models, half the
  crop on tiny ones).

The two guidances share one decode per step (same decoder and resolution) and each does its own backward pass
(``authface.guidance.apply_guidance``). What a guided call costs beyond a plain one is measured as a whole: the
guided steps, the input VAE encode the pipeline does when guidance is on (``lq_latents``), the reference embedding
of the input faces (``IdentityGuidance`` with ``reference=None``: once per batch), and the objectives on the final
latent (``final_values``: one more decode + embed + score, for the manifest).

Reported per batch size: median seconds per call and per face for every variant, ``RATIO guided(...)/plain`` for
each guided variant (with the median of per-round ratios and the process-CPU-time ratio as cross-checks), peak
memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: peak RSS growth sampled by a psutil thread), and a
breakdown of one instrumented call per variant (wall time per region: ControlNet, UNet, decoders, encoder, scorer,
backward passes, ...; regions are synchronised on CUDA, so the instrumented call is a little slower than a timed one).

Guidance networks run in float32 (the decoded image is cast to float32 by the guidance context); the diffusion
models and the ``AutoencoderTiny`` run in float16 on CUDA with ``--full``, float32 otherwise. The random IResNet's
convolutions are re-initialised with std 1/sqrt(fan_in) (arcface_torch's init, std 0.1, makes a random r50 overflow
to embeddings of ~1e26 with zero input gradients); this changes no shape and no cost.

Helpers reused from ``bench_pipeline.py`` (imported, not copied): ``print_header``, ``print_footer``, ``RssPeak``,
``OverheadCase`` (subclassed: its input tensors, per-image generators and ``timed``), ``full_components``,
``make_crops``, ``count_params``, ``_sync``, ``MIB``, ``PROMPT``, ``NEGATIVE_PROMPT``.

Nothing is downloaded: every model is built in code with random weights (HF_HUB_OFFLINE=1 is set).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pipeline import (  # noqa: E402
    NEGATIVE_PROMPT,
    PROMPT,
    OverheadCase,
    _sync,
    count_params,
    full_components,
    make_crops,
    print_footer,
    print_header,
)

PLAIN = "plain"


# ---------------------------------------------------------------------------------------------- instrumentation
class RegionTimer:
    """Wall time of named, nested regions of one call: count, inclusive and exclusive seconds per region path.

    ``wrap(owner, attr, label)`` replaces ``owner.attr`` (a module's ``forward``, a pipeline method, a module-level
    function, a class method) by a timed wrapper until ``restore()``. ``label`` may be a callable getting the call's
    arguments. On CUDA every region boundary synchronises the device.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.stats: dict[tuple[str, ...], list] = {}  # path -> [count, inclusive s, exclusive s]
        self._stack: list[list] = []  # [path, seconds spent in child regions]
        self._undo: list[tuple] = []

    @contextlib.contextmanager
    def region(self, label: str):
        _sync(self.device)
        path = (self._stack[-1][0] if self._stack else ()) + (label,)
        stat = self.stats.setdefault(path, [0, 0.0, 0.0])
        frame = [path, 0.0]
        self._stack.append(frame)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            dt = time.perf_counter() - t0
            self._stack.pop()
            stat[0] += 1
            stat[1] += dt
            stat[2] += dt - frame[1]
            if self._stack:
                self._stack[-1][1] += dt

    def wrap(self, owner, attr: str, label) -> None:
        original = getattr(owner, attr)
        own = attr in vars(owner)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with self.region(label(*args, **kwargs) if callable(label) else label):
                return original(*args, **kwargs)

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original if own else None))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        self._undo.clear()

    def lines(self, indent: str = "    ") -> list[str]:
        if not self.stats:
            return []
        total = next(iter(self.stats.values()))[1]
        out = [f"{indent}{'region':58s} {'calls':>5s} {'excl. s':>8s} {'incl. s':>8s} {'excl. %':>7s}"]
        for path, (n, incl, excl) in self.stats.items():
            name = "  " * (len(path) - 1) + path[-1]
            out.append(f"{indent}{name:58s} {n:5d} {excl:8.4f} {incl:8.4f} {100 * excl / total:6.1f}%")
        return out

    def top(self, label: str) -> float:
        """Inclusive seconds of every region named ``label`` that is not nested in another one of that name."""
        return sum(s[1] for p, s in self.stats.items() if p[-1] == label and label not in p[:-1])


# ---------------------------------------------------------------------------------------------- models
def tame_iresnet(backbone: torch.nn.Module) -> torch.nn.Module:
    """Variance-preserving random init (std 1/sqrt(fan_in)) so a random IResNet keeps finite, non-zero gradients."""
    for m in backbone.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.weight[0].numel()))
    return backbone


def tiny_taesd(latent_channels: int):
    """A tiny-config AutoencoderTiny (8 channels, one block per level) for the tiny models on CPU."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=latent_channels,
    )  # fmt: skip


def build(args, device: torch.device):
    """(pipeline with guidance_decoder, identity encoder, quality scorer, label, dtype)."""
    from diffusers import AutoencoderTiny
    from diffusers.utils import logging as diffusers_logging

    from authface.models.arcface import ArcFaceEncoder
    from authface.models.iresnet import iresnet
    from authface.models.quality import SharpnessScorer
    from authface.pipeline import AuthFacePipeline
    from authface.testing.tiny_model import tiny_components

    if args.full:
        dtype = torch.float16 if device.type in ("cuda", "meta") else torch.float32
        t0 = time.perf_counter()
        comps = full_components(args.seed, device, dtype)
        torch.manual_seed(args.seed + 10)
        taesd = AutoencoderTiny()  # the real taesd architecture (madebyollin/taesd's config), random weights
        label = f"full sd15-random {str(dtype).replace('torch.', '')}"
        built = f"full SD 1.5-sized RANDOM components built in {time.perf_counter() - t0:.1f} s"
    else:
        dtype = torch.float32
        comps = tiny_components(args.seed)
        torch.manual_seed(args.seed + 10)
        taesd = tiny_taesd(comps["vae"].config.latent_channels)
        label = "tiny"
        built = "tiny RANDOM components (authface.testing.tiny_model)"
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # silence "modules that should be kept in float32: []" on casts
    try:
        taesd = taesd.to(device=device, dtype=dtype).eval().requires_grad_(False)
        for k, v in comps.items():
            if isinstance(v, torch.nn.Module):
                comps[k] = v.to(device=device, dtype=dtype).eval().requires_grad_(False)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    pipe = AuthFacePipeline(**comps, guidance_decoder=taesd)
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(args.seed + 11)
    encoder = ArcFaceEncoder(tame_iresnet(iresnet(args.identity_arch)), name=f"arcface-{args.identity_arch}")
    encoder = encoder.to(device=device, dtype=torch.float32)
    scorer = SharpnessScorer().to(device)
    print(
        f"{built}: unet {count_params(comps['unet']):.2f} M params, controlnet {count_params(comps['controlnet']):.2f} M, "
        f"vae {count_params(comps['vae']):.2f} M (decoder {count_params(comps['vae'].decoder):.2f} M), text encoder "
        f"{count_params(comps['text_encoder']):.2f} M; guidance decoder AutoencoderTiny {count_params(taesd):.2f} M "
        f"(decoder {count_params(taesd.decoder):.2f} M), {str(dtype).replace('torch.', '')}"
    )
    print(
        f"guidance networks (float32, frozen): identity ArcFaceEncoder(iresnet({args.identity_arch!r})) "
        f"{count_params(encoder):.2f} M params, random, convs re-initialised std 1/sqrt(fan_in); quality "
        f"SharpnessScorer (working size {scorer.working_size}, no parameters)"
    )
    return pipe, encoder, scorer, label


def make_variants(args, encoder, scorer, size: int) -> dict:
    from authface.guidance import IdentityGuidance, QualityGuidance

    res = args.guide_res or (256 if args.full else size // 2)

    def pair(decoder: str, resolution: int | None) -> list:
        kw = dict(start=0.0, stop=args.window, decoder=decoder, resolution=resolution)
        return [
            IdentityGuidance(encoder, args.identity_scale, **kw),
            QualityGuidance(scorer, args.quality_scale, **kw),
        ]

    return {
        PLAIN: None,
        "guided(tiny decoder)": pair("tiny", None),
        "guided(vae)": pair("vae", None),
        f"guided(vae@{res})": pair("vae", res),
    }


# ---------------------------------------------------------------------------------------------- the case
class GuidanceCase(OverheadCase):
    """One pipeline, one batch of crops, several guidance variants (``OverheadCase`` gives inputs and timing)."""

    def __init__(self, pipe, variants: dict, crops_u8, args, device: torch.device, steps: int):
        super().__init__(pipe, None, crops_u8, args, device, steps)
        self.variants = variants
        self.names = list(variants)

    def call(self, which: str):
        a = self.args
        return self.ours(
            image=self.image_pm1, prompt=PROMPT, negative_prompt=NEGATIVE_PROMPT, num_inference_steps=self.steps,
            strength=a.strength, guidance_scale=a.cfg, controlnet_conditioning_scale=a.controlnet_scale,
            generator=self._generators(), batch_size=self.batch, color_fix="none", objectives=self.variants[which],
            output_type="pt",
        )  # fmt: skip

    def check_outputs(self) -> list[str]:
        lines, plain = [], None
        for name in self.names:
            out = self.call(name)
            img = out.images
            desc = f"  {name}: {tuple(img.shape)} in [{img.min().item():.2f}, {img.max().item():.2f}]"
            if plain is None:
                plain = img
            else:
                steps = sorted({r["step"] for r in out.objective_log[0]})
                finals = {
                    k: statistics.fmean(f[k] for f in out.objective_final) for k in out.objective_final[0]
                }
                desc += (
                    f", guided steps {steps} ({len(steps)} of {self.run_steps}), max |guided - plain| "
                    f"{(img - plain).abs().max().item():.3f}, final objectives "
                    + ", ".join(f"{k} {v:.3f}" for k, v in finals.items())
                )
            finite = bool(torch.isfinite(img).all())
            lines.append(desc + ("" if finite else "  NON-FINITE OUTPUT"))
        return lines

    @property
    def run_steps(self) -> int:
        return int(self.steps * self.args.strength)

    def run(self, warmup: int, reps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """({name: wall s per call}, {name: CPU s per call}); every round calls each variant once, order rotating."""
        for _ in range(warmup):
            for which in self.names:
                self.timed(which)
        wall: dict[str, list[float]] = {n: [] for n in self.names}
        cpu: dict[str, list[float]] = {n: [] for n in self.names}
        for r in range(reps):
            for which in self.order(r):
                dt, dc = self.timed(which)
                wall[which].append(dt)
                cpu[which].append(dc)
        return wall, cpu

    def breakdown(self, which: str) -> RegionTimer:
        """One instrumented call of variant ``which``."""
        import authface.pipeline.pipeline_authface as pipeline_mod
        from authface.guidance import GuidanceContext

        p, rt = self.ours, RegionTimer(self.device)
        active: list[str] = []

        def guidance_label(guidances, scheduler, latents, model_output, ctx):
            active[:] = [g.name for g in guidances if g.is_active(ctx.step_index, ctx.num_steps)]
            return "guidance step (apply_guidance)"

        rt.wrap(p.controlnet, "forward", "controlnet forward")
        rt.wrap(p.unet, "forward", "unet forward")
        rt.wrap(p.scheduler, "step", "scheduler.step")
        rt.wrap(p, "encode_image", "vae encode (input latents, guidance only)")
        rt.wrap(p, "decode_latents", "vae decode")
        rt.wrap(p, "decode_latents_tiny", "tiny decoder decode")
        rt.wrap(pipeline_mod, "apply_guidance", guidance_label)
        rt.wrap(pipeline_mod, "final_values", "objectives on the final latent (final_values)")
        rt.wrap(GuidanceContext, "decode", "decode x0 (GuidanceContext.decode, fwd)")
        rt.wrap(
            torch.autograd, "grad", lambda *a, **k: f"backward: {active.pop(0) if active else '?'} objective"
        )
        guidances = self.variants[which] or []
        for g in guidances:
            if g.name == "identity":
                rt.wrap(g.encoder, "embed", lambda *a, **k: "identity encoder fwd"
                        + ("" if torch.is_grad_enabled() else " (no grad)"))  # fmt: skip
            elif g.name == "quality":
                rt.wrap(g.scorer, "forward", "quality scorer fwd")
        try:
            gc.collect()
            with rt.region(f"{which}: whole call"):
                out = self.call(which)
            del out
        finally:
            rt.restore()
        return rt


# ---------------------------------------------------------------------------------------------- report
def _q(v: list[float]) -> str:
    q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
    return f"min {min(v):.4f}, q1 {q[0]:.4f}, q3 {q[2]:.4f}, max {max(v):.4f} (n={len(v)})"


def report_case(case: GuidanceCase, args, label: str, size: int) -> float:
    """Time, memory and breakdown of one batch size; returns the guided(tiny decoder)/plain ratio."""
    print(
        f"batch {case.batch}, {size}x{size}, {case.steps} steps (strength {args.strength}: {case.run_steps} run)"
    )
    for line in case.check_outputs():
        print(line)
    t0 = time.perf_counter()
    times, cpu = case.run(args.warmup, args.reps)
    wall = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    b = case.batch
    for k, v in times.items():
        print(
            f"  {k:22s} per call: median {med[k]:.4f} s ({med[k] / b:.4f} s/face, {b / med[k]:.2f} faces/s), "
            f"{_q(v)}; CPU {cmed[k]:.3f} s"
        )
    print(
        f"  timed loop wall time {wall:.1f} s (warm-up {args.warmup} + {args.reps} rounds of {len(case.names)} "
        "calls, order rotating every round)"
    )
    tiny_ratio = float("nan")
    for k in case.names[1:]:
        ratio = med[k] / med[PLAIN]
        paired = statistics.median(g / p for g, p in zip(times[k], times[PLAIN]))
        verdict = ""
        if k == "guided(tiny decoder)":
            tiny_ratio = ratio
            verdict = f"; target <= {args.target:g}: {'OK' if ratio <= args.target else 'NOT MET'}"
        print(
            f"RATIO {k}/plain = {ratio:.3f} ({med[k] / b:.4f} vs {med[PLAIN] / b:.4f} s/face; median of {args.reps}; "
            f"per-round ratio median {paired:.3f}; CPU-time ratio {cmed[k] / cmed[PLAIN]:.3f}; device "
            f"{case.device.type}; {label}; batch {b}; {case.run_steps} steps, guided [{0:g}, {args.window:g}); "
            f"size {size}x{size}{verdict})",
            flush=True,
        )
    if args.mem_reps > 0:
        mem = case.memory(args.mem_reps, args.rss_interval_ms)
        if case.device.type == "cuda":
            how, words = (
                "torch.cuda.max_memory_allocated, reset before each call; growth = peak - before",
                "allocated",
            )
        else:
            how = (
                f"process RSS sampled every {args.rss_interval_ms:g} ms, malloc_trim(0) before each call; growth = "
                "peak RSS - RSS before the call"
            )
            words = "RSS"
        print(
            f"MEMORY peak {words}: "
            + "; ".join(f"{k} {v[0]:.1f} MiB (growth {v[1]:+.1f})" for k, v in mem.items())
            + f"; max of {args.mem_reps} call(s) each; {how}",
            flush=True,
        )
    if args.breakdown:
        print(
            "BREAKDOWN: one instrumented call per variant, wall seconds per region (exclusive = minus nested "
            "regions; a region nested in another is indented under it):"
        )
        timers = {}
        for k in case.names:
            rt = timers[k] = case.breakdown(k)
            for line in rt.lines():
                print(line)
        plain_total = next(iter(timers[PLAIN].stats.values()))[1]
        for k in case.names[1:]:
            rt = timers[k]
            total = next(iter(rt.stats.values()))[1]
            extra = total - plain_total
            parts = {
                "guided steps": rt.top("guidance step (apply_guidance)"),
                "final_values": rt.top("objectives on the final latent (final_values)"),
                "input VAE encode": rt.top("vae encode (input latents, guidance only)"),
            }
            rest = extra - sum(parts.values())
            print(
                f"  EXTRA {k}: {extra:.3f} s over plain ({total:.3f} vs {plain_total:.3f} s in the instrumented calls) = "
                + ", ".join(f"{n} {v:.3f} s" for n, v in parts.items())
                + f", rest {rest:+.3f} s (noise, CFG/loop differences)"
            )
    print()
    return tiny_ratio


# ---------------------------------------------------------------------------------------------- FLOP projection
def flop_projection(args) -> int:
    """FLOPs of every part of a plain and a guided call, counted on the meta device (no compute: seconds on any
    machine, also for --full), and the guided/plain ratios they imply."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = torch.device("meta")
    size = args.size or (512 if args.full else 128)
    steps = args.steps or (20 if args.full else 10)
    batches = args.batches or ([1, 4] if args.full else [2])
    pipe, encoder, scorer, label = build(args, meta)
    variants = make_variants(args, encoder, scorer, size)
    dtype, n_cfg = pipe.unet.dtype, (2 if args.cfg > 1 else 1)
    run_steps = int(steps * args.strength)

    def gflop(fn) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return counter.get_total_flops() / 1e9

    def fwd(fn, x):
        with torch.no_grad():
            return gflop(lambda: fn(x))

    def fwd_bwd(fn, x):
        # backward(), not autograd.grad (FlopCounterMode does not support it); the weights are frozen, so only
        # input gradients are counted, as in apply_guidance
        def run():
            leaf = x.detach().requires_grad_(True)
            fn(leaf).float().sum().backward()

        return gflop(run)

    print(
        f"FLOP projection ({label}, meta device, nothing computed): torch.utils.flop_counter counts (matmul, conv, "
        f"attention; not norms, activations, resampling) of each part at "
        f"{size}x{size}, {run_steps} steps run, CFG {'on' if n_cfg == 2 else 'off'}; FLOPs are not seconds (the "
        "guidance networks run in float32, the diffusion models in float16 with --full on CUDA)"
    )
    for b in batches:
        lat = torch.zeros(b, pipe.vae.config.latent_channels, size // 8, size // 8, device=meta, dtype=dtype)
        img = torch.zeros(b, 3, size, size, device=meta, dtype=torch.float32)
        x_in = torch.cat([lat] * n_cfg)
        emb = torch.zeros(n_cfg * b, pipe.tokenizer.model_max_length, pipe.text_encoder.config.hidden_size,
                          device=meta, dtype=dtype)  # fmt: skip
        cond = torch.zeros(n_cfg * b, 3, size, size, device=meta, dtype=dtype)
        t = torch.tensor(500, device=meta)

        def denoise_step(inputs):
            x, t, emb, cond = inputs
            down, mid = pipe.controlnet(
                x, t, encoder_hidden_states=emb, controlnet_cond=cond, return_dict=False
            )
            return pipe.unet(x, t, encoder_hidden_states=emb, down_block_additional_residuals=down,
                             mid_block_additional_residual=mid, return_dict=False)[0]  # fmt: skip

        step = fwd(denoise_step, (x_in, t, emb, cond))
        vae_dec, vae_enc = fwd(pipe.decode_latents, lat), fwd(pipe.encode_image, img)
        ref = fwd(encoder.embed, img)
        plain = run_steps * step + vae_dec
        print(
            f"  batch {b}: denoising step (ControlNet + UNet, {n_cfg * b} samples) {step:.1f} GFLOP; VAE decode "
            f"{vae_dec:.1f}, encode {vae_enc:.1f}; identity reference embedding {ref:.2f}; plain call "
            f"{plain:.1f} GFLOP"
        )
        for name, guidances in variants.items():
            if not guidances:
                continue
            g0 = guidances[0]
            n_guided = sum(g0.is_active(i, run_steps) for i in range(run_steps))
            decode = pipe.decode_latents_tiny if g0.decoder == "tiny" else pipe.decode_latents
            side = g0.resolution or size
            small = (
                lat
                if side == size
                else torch.zeros(b, lat.shape[1], side // 8, side // 8, device=meta, dtype=dtype)
            )
            dec_f, dec_fb = fwd(decode, small), fwd_bwd(decode, small)
            dimg = torch.zeros(b, 3, side, side, device=meta, dtype=torch.float32)
            enc_f, enc_fb = fwd(encoder.embed, dimg), fwd_bwd(encoder.embed, dimg)
            sc_f, sc_fb = fwd(scorer, dimg), fwd_bwd(scorer, dimg)
            # authface.guidance.apply_guidance: one decode, each objective's own backward to the image, then ONE
            # decoder backward for all pixel objectives; the input is VAE-encoded only for strength < 1 or
            # latent-space fidelity (neither here); the final objectives reuse the output's full-VAE decode
            per_step = dec_fb + enc_fb + sc_fb
            reuse = g0.decoder == "vae" and side == size
            final = (0.0 if reuse else dec_f) + enc_f + sc_f
            encode = vae_enc if args.strength < 1.0 else 0.0
            extra = encode + ref + n_guided * per_step + final
            print(
                f"FLOPS {name}/plain = {(plain + extra) / plain:.3f} (extra {extra:.1f} GFLOP over {plain:.1f}: input "
                f"VAE encode {encode:.1f}, reference embedding {ref:.2f}, {n_guided} guided steps x {per_step:.1f} "
                f"[decode fwd+bwd {dec_fb:.1f} (one decoder backward for all objectives) + "
                f"identity fwd+bwd {enc_fb:.2f} + quality fwd+bwd {sc_fb:.3f}], objectives on the final latent "
                f"{final:.1f}{' (output decode reused)' if reuse else ''}; decode at {side}x{side}; batch {b})"
            )
    return 0


def bench(args, device: torch.device) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    size = args.size or (512 if args.full else 128)
    steps = args.steps or (20 if args.full else 10)
    batches = args.batches or ([1, 4] if args.full else [2])
    if size % 8:
        print(f"error: --size must be a multiple of 8 (the VAE downsamples x8), got {size}", file=sys.stderr)
        return 2
    pipe, encoder, scorer, label = build(args, device)
    variants = make_variants(args, encoder, scorer, size)
    g = variants["guided(tiny decoder)"]
    print(
        f"settings: strength {args.strength}, CFG scale {args.cfg}, controlnet scale {args.controlnet_scale}, "
        f"prompt {PROMPT!r}, negative {NEGATIVE_PROMPT!r}; scheduler {type(pipe.scheduler).__name__}; "
        f"guidance: identity scale {args.identity_scale} + quality scale {args.quality_scale}, both window "
        f"[{g[0].start:g}, {g[0].stop:g}) of the steps run, every step; variants: " + ", ".join(variants)
    )
    ratios = []
    for b in batches:
        case = GuidanceCase(pipe, variants, make_crops(b, size, args.seed), args, device, steps)
        ratios.append(report_case(case, args, label, size))
    if args.check_ratio is not None:
        worst = max(ratios)
        if not worst <= args.check_ratio:
            print(f"CHECK FAILED: guided(tiny decoder)/plain ratio {worst:.3f} > {args.check_ratio}")
            return 1
        print(f"CHECK OK: guided(tiny decoder)/plain ratio {worst:.3f} <= {args.check_ratio}")
    return 0


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Cost of identity + quality guidance vs no guidance (AuthFacePipeline)."
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    p.add_argument(
        "--threads", type=int, default=None,
        help="torch.set_num_threads; 0 = torch's default. Default: 1 on CPU without --full, torch's default otherwise",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", type=int, default=None, help="timed rounds (default 6; --full: 5)")
    p.add_argument(
        "--warmup", type=int, default=1, help="warm-up rounds (default 1; the output check is one more)"
    )
    p.add_argument(
        "--batches", type=int, nargs="+", default=None, help="batch sizes (default 2; --full: 1 4)"
    )
    p.add_argument("--size", type=int, default=None, help="crop side (default 128; --full: 512)")
    p.add_argument("--steps", type=int, default=None, help="num_inference_steps (default 10; --full: 20)")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (default 4.0)")
    p.add_argument("--controlnet-scale", type=float, default=1.0)
    p.add_argument(
        "--window", type=float, default=0.4, help="guidance window [0, W) of the steps (default 0.4)"
    )
    p.add_argument("--identity-scale", type=float, default=0.1)
    p.add_argument("--quality-scale", type=float, default=0.1)
    p.add_argument("--identity-arch", default=None, help="IResNet for identity (default r18; --full: r50)")
    p.add_argument(
        "--guide-res",
        type=int,
        default=None,
        help="reduced decode resolution (default 256; tiny: half the crop)",
    )
    p.add_argument("--mem-reps", type=int, default=1, help="memory calls per variant after timing (0: skip)")
    p.add_argument(
        "--rss-interval-ms", type=float, default=1.0, help="CPU RSS sampling interval (default 1 ms)"
    )
    p.add_argument(
        "--no-breakdown", dest="breakdown", action="store_false", help="skip the instrumented calls"
    )
    p.add_argument(
        "--target", type=float, default=1.6, help="target for guided(tiny decoder)/plain (default 1.6)"
    )
    p.add_argument("--check-ratio", type=float, default=None, metavar="X",
                   help="exit 1 if guided(tiny decoder)/plain > X")  # fmt: skip
    p.add_argument(
        "--full", action="store_true", help="SD 1.5-sized RANDOM models (fp16 on CUDA), 512², 20 steps"
    )
    p.add_argument("--allow-cpu-full", action="store_true", help="allow --full on CPU (very slow)")
    p.add_argument(
        "--flops", action="store_true",
        help="instead of timing: count the FLOPs of every part on the meta device (no compute, works with --full "
        "on any machine) and print the guided/plain ratios they imply",
    )  # fmt: skip
    args = p.parse_args(argv)
    args.reps = args.reps or (5 if args.full else 6)
    args.identity_arch = args.identity_arch or ("r50" if args.full else "r18")
    if args.reps < 1 or args.warmup < 0 or not 0 < args.window <= 1:
        p.error("--reps must be >= 1, --warmup >= 0, --window in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads is None and device.type == "cpu" and not args.full:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    print_header(args, device)
    try:
        if args.flops:
            return flop_projection(args)
        if args.full and device.type != "cuda" and not args.allow_cpu_full:
            print(
                "error: --full runs SD 1.5-sized models and an IResNet-50 at 512x512 and is meant for CUDA; on CPU "
                "it takes hours. Run it on a GPU, or pass --allow-cpu-full (e.g. with --size 64 --steps 2 "
                "--batches 1 --reps 1 --warmup 0 for a smoke test).",
                file=sys.stderr,
            )
            return 2
        return bench(args, device)
    finally:
        print_footer()


if __name__ == "__main__":
    sys.exit(main())
