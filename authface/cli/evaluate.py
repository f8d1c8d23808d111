"""``authface eval``: score restored face folders against GT / LQ / reference folders and write a report.

The library side is :func:`authface.eval.evaluate` and :func:`authface.eval.write_report`. Metrics that cannot run
here (missing weights or packages) are reported as unavailable, never fatal. With inpainting masks (``--masks DIR``,
or ``mask/`` next to a benchmark's ``lq/``), PSNR/SSIM/L1/LPIPS are also reported inside and outside the mask.
Exit codes: 0 success, 1 when inputs do not pair or cannot be read, or a mask is unusable (every file named on
stderr; checked before anything is computed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config import choices
from ..eval.evaluate import IDTarget
from ..eval.fr import FRBackend
from ..eval.registry import DEFAULT_METRICS, LMDBox, LMDPoints, MetricOptions
from .degrade import ProgressCallback


def _method_arg(text: str) -> tuple[str | None, str]:
    """``NAME=DIR`` -> (NAME, DIR); a bare DIR (or an existing path containing '=') -> (None, DIR)."""
    if "=" in text:
        name, path = text.split("=", 1)
        if name and not os.path.exists(text):
            return name.strip(), path
    return None, text


def _kv_arg(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip().lower(), v


def _input_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--pred",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="restored images of one method (repeatable; NAME defaults to the folder name)",
    )
    g.add_argument("--gt", metavar="DIR", help="ground truth (full-reference metrics, LMD, identity target)")
    g.add_argument(
        "--lq", metavar="DIR", help="degraded inputs (baselines, gallery; identity target without GT)"
    )
    g.add_argument(
        "--reference",
        metavar="DIR",
        help="reference photos of the same people (aligned crops): ref/<relative path>.* or ref/<folder>/*",
    )
    g.add_argument(
        "--bench", metavar="BENCH_DIR", help="an `authface degrade` folder: sets --gt, --lq and the metadata"
    )
    g.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME",
        help="lq | bicubic | lanczos | realesrgan | py:MODULE:FUNC | cv2sr:MODEL.pb (repeatable; needs --lq)",
    )
    g.add_argument(
        "--masks",
        metavar="DIR",
        help="inpainting masks (white = filled region), paired by relative path: PSNR/SSIM/L1/LPIPS inside and "
        "outside the mask (default: mask/ next to a benchmark's lq/ folder)",
    )
    g.add_argument("--no-masks", action="store_true", help="ignore a benchmark's mask/ folder")
    g.add_argument("--allow-missing", action="store_true", help="evaluate the images common to all folders")
    g.add_argument(
        "--resize-pred",
        action="store_true",
        help="resize predictions to the GT size when they differ (same aspect ratio; area down, bicubic up)",
    )


def _metric_args(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("metrics")
    m.add_argument(
        "--metrics",
        default=None,
        help=f"comma list (default {','.join(DEFAULT_METRICS)}); also psnr_y, ssim_y, kid, ntire2025 and "
        "pyiqa names (musiq, maniqa, clipiqa, topiq_nr-face, qalign, ...)",
    )
    m.add_argument(
        "--judge", default="dlib", help="identity judge: dlib (default) | arcface:PATH | arcface-onnx:PATH"
    )
    m.add_argument(
        "--id-target",
        default="auto",
        choices=choices(IDTarget),
        help="what IDS/Deg compare with (auto: reference, else GT, else LQ)",
    )
    m.add_argument("--niqe-params", metavar="PATH", help="NIQE pristine model (BasicSR niqe_pris_params.npz)")
    m.add_argument(
        "--lpips-weights", metavar="PATH", help="LPIPS heads (lpips weights/v0.1/alex.pth) or full state dict"
    )
    m.add_argument("--lpips-backbone", metavar="PATH", help="torchvision alexnet/vgg16 state dict for LPIPS")
    m.add_argument("--fid-inception", metavar="PATH", help="TorchScript Inception (inception-2015-12-05.pt)")
    m.add_argument(
        "--fid-ref", metavar="DIR|NPZ", help="FID/KID reference: image folder or mu/sigma .npz (default GT)"
    )
    m.add_argument(
        "--pyiqa-weights",
        action="append",
        default=[],
        type=_kv_arg,
        metavar="NAME=PATH",
        help="local weights of a pyiqa metric (repeatable)",
    )
    m.add_argument("--crop-border", type=int, default=0, help="pixels dropped on each side for PSNR/SSIM")
    m.add_argument(
        "--fr-backend",
        default="auto",
        choices=choices(FRBackend),
        help="PSNR/SSIM implementation (auto: torchmetrics on CUDA, else scikit-image)",
    )
    m.add_argument(
        "--lmd-points", type=int, default=68, choices=choices(LMDPoints), help="dlib landmarks for LMD"
    )
    m.add_argument("--lmd-box", default="fixed", choices=choices(LMDBox), help="dlib face box for LMD")
    m.add_argument("--gt-row", action="store_true", help="also score the GT with the no-reference metrics")
    m.add_argument("--device", default="cpu", help="cpu | cuda | auto (torch metrics)")
    m.add_argument("--batch-size", type=int, default=8)
    m.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (decompression bombs)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``eval`` to an argparse subparsers object (``func(args) -> exit code``)."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate restored faces: PSNR/SSIM/LPIPS, identity, landmarks, no-reference IQA, FID",
        description=(
            "Evaluate restored face folders against GT / LQ / reference folders (paired by relative path, extension "
            "ignored) and write a report (Markdown, CSV, JSON, HTML gallery, plots). Metrics that cannot run here "
            "(missing weights or packages) are reported as unavailable, never fatal."
        ),
    )
    _input_args(p)
    _metric_args(p)
    r = p.add_argument_group("report")
    r.add_argument(
        "-o", "--output", metavar="REPORT_DIR", help="report folder (without it: tables on stdout only)"
    )
    r.add_argument(
        "--sort-by", metavar="METRIC", help="gallery order, worst first (default IDS, else PSNR, ...)"
    )
    r.add_argument("--gallery-max", type=int, default=None, help="at most N gallery rows (the worst)")
    r.add_argument("--thumb-size", type=int, default=160, help="gallery thumbnail size in pixels")
    r.add_argument("--no-gallery", action="store_true")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--title", default=None, help="report title")
    p.set_defaults(func=run)
    return p


class _UsageError(Exception):
    pass


def _folders(args: argparse.Namespace) -> tuple[dict[str, str], str | None, str | None, Path | None]:
    """``(preds, gt, lq, metadata)`` from the flags (``--bench`` fills GT, LQ and metadata); _UsageError if wrong."""
    gt, lq, metadata = args.gt, args.lq, None
    if args.bench:
        bench = Path(args.bench).expanduser()
        if not (bench / "gt").is_dir() or not (bench / "lq").is_dir():
            raise _UsageError(f"--bench {bench}: expected gt/ and lq/ folders made by `authface degrade`")
        gt = gt or str(bench / "gt")
        lq = lq or str(bench / "lq")
        metadata = bench / "metadata.jsonl" if (bench / "metadata.jsonl").is_file() else None
    preds: dict[str, str] = {}
    for text in args.pred:
        name, path = _method_arg(text)
        name = name or Path(path).expanduser().resolve().name
        if name in preds:
            raise _UsageError(f"two --pred folders are called {name!r}; name them: --pred NAME=DIR")
        preds[name] = path
    named = [
        ("--gt", gt),
        ("--lq", lq),
        ("--reference", args.reference),
        ("--masks", args.masks),
        *((f"--pred {n}", d) for n, d in preds.items()),
    ]
    for label, path in named:
        if path is not None and not Path(path).expanduser().is_dir():
            raise _UsageError(f"{label} {path}: not a folder")
    return preds, gt, lq, metadata


def _options(args: argparse.Namespace) -> MetricOptions:
    return MetricOptions(
        judge=args.judge, niqe_params=args.niqe_params, lpips_weights=args.lpips_weights,
        lpips_backbone=args.lpips_backbone, fid_inception=args.fid_inception, fid_ref=args.fid_ref,
        pyiqa_weights=dict(args.pyiqa_weights), crop_border=args.crop_border, fr_backend=args.fr_backend,
        lmd_points=args.lmd_points, lmd_box=args.lmd_box, device=args.device,
    )  # fmt: skip


def _print_result(result, args: argparse.Namespace) -> None:
    from ..eval.report import summary_table, write_report

    print(summary_table(result, "all"))
    for name, reason in result.unavailable.items():
        print(f"authface eval: {name} unavailable: {reason.splitlines()[0][:160]}", file=sys.stderr)
    if result.warnings:
        where = " (see the report)" if args.output else ":"
        print(f"authface eval: {len(result.warnings)} warning(s){where}", file=sys.stderr)
        if not args.output:
            for w in result.warnings[:10]:
                print(f"  {w}", file=sys.stderr)
    if args.output:
        files = write_report(
            result, args.output, title=args.title, gallery=not args.no_gallery, plots=not args.no_plots,
            sort_by=args.sort_by, gallery_max=args.gallery_max, thumb_size=args.thumb_size,
        )  # fmt: skip
        print(
            f"authface eval: report in {Path(args.output).resolve()} ({', '.join(sorted(files))})",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary table (stdout) and notes (stderr), write the report; returns the exit code."""
    from ..eval.evaluate import evaluate
    from ..eval.pairing import EvalInputError, PairingError

    def fail(msg: str, code: int = 2) -> int:
        print(f"authface eval: error: {msg}", file=sys.stderr)
        return code

    try:
        preds, gt, lq, metadata = _folders(args)
        if args.masks and args.no_masks:
            raise _UsageError("--masks and --no-masks contradict each other")
    except _UsageError as exc:
        return fail(str(exc))
    metrics = [s for s in args.metrics.split(",") if s.strip()] if args.metrics else None
    progress = ProgressCallback("evaluating")
    try:
        result = evaluate(
            preds, gt=gt, lq=lq, reference=args.reference, metadata=metadata, metrics=metrics,
            masks=False if args.no_masks else args.masks,
            baselines=args.baseline, options=_options(args), id_target=args.id_target, batch_size=args.batch_size,
            resize_pred=args.resize_pred, allow_missing=args.allow_missing, gt_row=args.gt_row,
            max_pixels=args.max_pixels, progress=progress,
        )  # fmt: skip
    except (PairingError, EvalInputError) as exc:
        progress.close()
        return fail(str(exc), 1)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        progress.close()
        return fail(str(exc))
    progress.close()
    try:
        _print_result(result, args)
    except ValueError as exc:  # e.g. --sort-by naming no per-image metric of this report
        return fail(str(exc))
    return 0
