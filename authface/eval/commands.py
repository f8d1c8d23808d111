"""``authface degrade`` and ``authface eval``: synthetic benchmarks and evaluation reports.

Wired into :mod:`authface.cli` with :func:`add_degrade_parser` / :func:`add_eval_parser`, each adding a subparser
whose ``func(args)`` returns the exit code: 0 success, 1 when some input failed (each named on stderr; everything
else is still written), 2 for usage errors (bad flags, missing folders, a benchmark folder made with other
settings).

:func:`build_benchmark` is the library side of ``authface degrade``: CelebA-Test-style synthetic pairs from any
folder of clean aligned faces::

    BENCH/lq/<relative path>.png    LQ (lossless PNG: exactly the sampled degradation), same size as the HQ
    BENCH/gt/<relative path>        the HQ file itself, copied byte for byte (or linked: gt_mode)
    BENCH/metadata.jsonl            line 1: {"type": "benchmark", preset, config, seed, rng, versions, ...};
                                    then one {"type": "image", rel, key, hq, hq_sha256, lq, lq_sha256, gt, size,
                                    params} per image, sorted by relative path (params: every sampled value;
                                    authface.data.degradations.degrade_from_params(hq, params) replays it exactly)

Each image's generator is ``numpy.random.default_rng(SeedSequence([seed, *w]))`` with ``w`` the eight 32-bit words of
``sha256(relative path)``: adding images to the HQ folder changes no existing LQ, the same seed gives byte-identical
files (no timestamps are stored), and workers do not change the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BenchmarkResult",
    "BenchmarkSettingsError",
    "add_degrade_parser",
    "add_eval_parser",
    "bench_rng",
    "build_benchmark",
    "cmd_degrade",
    "cmd_eval",
]

METADATA_NAME = "metadata.jsonl"
METADATA_FORMAT = 1
GT_MODES = ("copy", "symlink", "hardlink")


class BenchmarkSettingsError(ValueError):
    """The benchmark folder was made with other settings (preset, seed, config, GT mode)."""


@dataclass
class BenchmarkResult:
    """What :func:`build_benchmark` did: relative paths made, kept (already there from the same settings) and
    failed (``(path, reason)``)."""

    out_dir: Path
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    metadata: Path | None = None


def bench_rng(seed: int, rel: str):
    """The generator of one benchmark image: depends only on ``seed`` and the POSIX relative path ``rel``."""
    import numpy as np

    words = struct.unpack("<8I", hashlib.sha256(rel.encode("utf-8")).digest())
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import cv2
    import numpy as np

    from authface import __version__

    return {"authface": __version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _degrade_job(job: dict[str, Any]) -> dict[str, Any]:
    """One image (runs in a worker process): read HQ, degrade, write LQ PNG and the GT copy. Never raises."""
    from authface import io
    from authface.data.degradations import degrade, get_preset

    src, rel = Path(job["src"]), job["rel"]
    out = Path(job["out_dir"])
    lq_path, gt_path = out / job["lq"], out / job["gt"]
    try:
        hq_sha = _sha256(src)
        img = io.read_image(src, max_pixels=job["max_pixels"])
        lq, params = degrade(img.rgb, bench_rng(job["seed"], rel), get_preset(job["preset"]))
        io.write_image(lq_path, lq)
        mode = job["gt_mode"]
        if mode == "copy":
            io.copy_file(src, gt_path)
        else:
            gt_path.parent.mkdir(parents=True, exist_ok=True)
            if gt_path.is_symlink() or gt_path.exists():
                gt_path.unlink()
            if mode == "symlink":
                os.symlink(src.resolve(), gt_path)
            else:
                try:
                    os.link(src, gt_path)
                except OSError:  # other file system: copy instead
                    io.copy_file(src, gt_path)
        record = {
            "type": "image", "rel": rel, "key": Path(rel).with_suffix("").as_posix(), "hq": str(src),
            "hq_sha256": hq_sha, "lq": job["lq"], "lq_sha256": _sha256(lq_path), "gt": job["gt"],
            "size": [int(img.rgb.shape[1]), int(img.rgb.shape[0])], "notes": img.notes, "params": params,
        }  # fmt: skip
        return {"rel": rel, "record": record}
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the benchmark
        reason = exc.reason if isinstance(exc, io.ImageReadError) else f"{type(exc).__name__}: {exc}"
        return {"rel": rel, "error": f"{src}: {reason}"}


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _read_metadata(path: Path) -> tuple[dict | None, dict[str, dict]]:
    header, records = None, {}
    if not path.is_file():
        return header, records
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("type") == "benchmark":
                header = rec
            elif rec.get("type") == "image":
                records[rec["rel"]] = rec
    return header, records


def build_benchmark(
    hq: str | os.PathLike | Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out_dir: str | os.PathLike,
    preset: str = "gfpgan",
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    gt_mode: str = "copy",
    max_pixels: int | None = None,
    progress=None,
) -> BenchmarkResult:
    """Build (or complete) a synthetic benchmark in ``out_dir`` from clean aligned faces (see the module doc).

    Args:
        hq: a folder (walked recursively with :func:`authface.io.discover_inputs`) or explicit
            ``(path, relative path)`` pairs.
        preset: a name of :data:`authface.data.degradations.PRESETS`.
        seed: the benchmark seed (>= 0).
        workers: processes (1: in this process).
        overwrite: re-make files that exist; without it an existing LQ/GT file is kept when the metadata says it was
            made from the same HQ bytes with the same settings, and is a per-file failure otherwise.
        gt_mode: ``copy`` (default: byte-identical copies, the folder stands alone), ``symlink`` or ``hardlink``.
        progress: called with (done, total) after each image.

    Raises:
        BenchmarkSettingsError: ``out_dir`` holds a benchmark made with other settings (and not ``overwrite``).
        FileNotFoundError: ``hq`` holds no image.
        ValueError: unknown preset / gt_mode, negative seed.
    """
    from authface import io
    from authface.data.degradations import PARAMS_VERSION, get_preset

    if isinstance(seed, bool) or int(seed) != seed or int(seed) < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if gt_mode not in GT_MODES:
        raise ValueError(f"gt_mode must be one of {', '.join(GT_MODES)}, got {gt_mode!r}")
    cfg = get_preset(preset)
    out = Path(out_dir).expanduser().resolve()
    if isinstance(hq, (str, os.PathLike)):
        hq_root = str(Path(hq).expanduser().resolve())
        inputs = io.discover_inputs([hq_root], exclude=[out])
    else:
        hq_root = None
        inputs = [(Path(s).expanduser().resolve(), Path(r)) for s, r in hq]
    header = {
        "type": "benchmark", "format": METADATA_FORMAT, "preset": preset, "seed": int(seed),
        "config": cfg.to_dict(), "params_version": PARAMS_VERSION, "gt_mode": gt_mode, "lq_format": "png",
        "rng": "numpy.random.default_rng(SeedSequence([seed, *struct.unpack('<8I', sha256(rel.encode()).digest())]))",
        "hq_dir": hq_root, "versions": _versions(),
    }  # fmt: skip
    meta_path = out / METADATA_NAME
    old_header, old_records = _read_metadata(meta_path)
    same = lambda a, b: all(a.get(k) == b.get(k) for k in ("preset", "seed", "config", "gt_mode", "format"))  # noqa: E731
    if old_header is not None and not same(old_header, header):
        if not overwrite:
            raise BenchmarkSettingsError(
                f"{out} holds a benchmark made with preset {old_header.get('preset')!r}, seed {old_header.get('seed')} "
                f"(gt mode {old_header.get('gt_mode')}); asked for preset {preset!r}, seed {seed} (gt mode {gt_mode}). "
                "Choose another folder, or pass --overwrite to replace it"
            )
        old_records = {}
    result = BenchmarkResult(out_dir=out, metadata=meta_path)
    records: dict[str, dict] = dict(old_records)

    # plan: output names, clashes, what is already there
    jobs: list[dict[str, Any]] = []
    by_lq: dict[str, list[tuple[Path, str]]] = {}
    for src, rel in inputs:
        rel_s = Path(rel).as_posix()
        by_lq.setdefault((Path("lq") / Path(rel_s).with_suffix(".png")).as_posix().casefold(), []).append(
            (src, rel_s)
        )
    for group in by_lq.values():
        if len(group) > 1:
            names = ", ".join(str(s) for s, _ in group)
            for src, rel_s in group:
                result.failed.append(
                    (rel_s, f"{src}: {names} would all become the same LQ file; rename all but one")
                )
                records.pop(rel_s, None)
            continue
        src, rel_s = group[0]
        lq_rel = (Path("lq") / Path(rel_s).with_suffix(".png")).as_posix()
        gt_rel = (Path("gt") / rel_s).as_posix()
        lq_path, gt_path = out / lq_rel, out / gt_rel
        exists = lq_path.exists() or gt_path.exists() or gt_path.is_symlink()
        if exists and not overwrite:
            rec = old_records.get(rel_s)
            if rec is None:
                result.failed.append((rel_s, f"{src}: {lq_path if lq_path.exists() else gt_path} exists and is not "
                                              "recorded in this benchmark's metadata; kept (pass --overwrite)"))  # fmt: skip
                continue
            try:
                unchanged = rec.get("hq_sha256") == _sha256(src) and lq_path.is_file() and (gt_path.exists())
            except OSError as exc:
                result.failed.append((rel_s, f"{src}: {exc}"))
                continue
            if unchanged:
                result.kept.append(rel_s)
                continue
            result.failed.append((rel_s, f"{src}: changed since {lq_path} was made (or that file is missing); "
                                          "pass --overwrite to re-make it"))  # fmt: skip
            continue
        jobs.append({
            "src": str(src), "rel": rel_s, "out_dir": str(out), "lq": lq_rel, "gt": gt_rel, "seed": int(seed),
            "preset": preset, "gt_mode": gt_mode, "max_pixels": int(max_pixels or io.DEFAULT_MAX_PIXELS),
        })  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    done = 0
    total = len(jobs)

    def collect(res: dict) -> None:
        nonlocal done
        done += 1
        if "error" in res:
            result.failed.append((res["rel"], res["error"]))
            records.pop(res["rel"], None)
        else:
            records[res["rel"]] = res["record"]
            result.made.append(res["rel"])
        if progress is not None:
            progress(done, total)

    if int(workers) > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked child of a process whose torch/OpenMP/OpenCV thread pools are running can
        # deadlock; spawned workers import only numpy, OpenCV, Pillow and authface.io/degradations
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx, initializer=_worker_init) as pool:
            for res in pool.map(_degrade_job, jobs, chunksize=1):
                collect(res)
    else:
        for job in jobs:
            collect(_degrade_job(job))

    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(records[k], sort_keys=True) for k in sorted(records)]
    _write_text(meta_path, "\n".join(lines) + "\n")
    result.made.sort()
    result.kept.sort()
    result.failed.sort()
    return result


def _write_text(path: Path, text: str) -> None:
    """Atomic text write (temporary file + os.replace)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ============================================================================ CLI: degrade


def add_degrade_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``degrade`` to an argparse subparsers object (``func(args) -> exit code``)."""
    from authface.data.degradations import PRESETS

    p = subparsers.add_parser(
        "degrade",
        help="make a synthetic LQ/GT benchmark from clean aligned faces",
        description=(
            "Make a CelebA-Test-style synthetic benchmark: BENCH_DIR/lq/*.png (degraded, lossless), BENCH_DIR/gt/ "
            "(the HQ files) and BENCH_DIR/metadata.jsonl (preset, seed and every sampled parameter per image). "
            "Per-image randomness depends only on (seed, relative path): the same seed gives byte-identical files."
        ),
    )
    p.add_argument("hq_dir", metavar="HQ_DIR", help="folder of clean aligned faces (recursive)")
    p.add_argument("-o", "--output", required=True, metavar="BENCH_DIR", help="benchmark folder (created)")
    p.add_argument(
        "--preset", default="gfpgan", choices=sorted(PRESETS), help="degradation preset (default gfpgan)"
    )
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--gt-mode", default="copy", choices=GT_MODES, help="how gt/ holds the HQ files (default copy)"
    )
    p.add_argument("--overwrite", action="store_true", help="re-make files that already exist in BENCH_DIR")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (decompression bombs)")
    p.set_defaults(func=cmd_degrade)
    return p


def cmd_degrade(args) -> int:
    out = Path(args.output).expanduser()
    if out.exists() and not out.is_dir():
        print(f"authface degrade: error: {out} exists and is not a folder", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"authface degrade: error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    bar = tqdm(unit="image", desc="degrading", disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        res = build_benchmark(
            args.hq_dir, out, preset=args.preset, seed=args.seed, workers=args.workers, overwrite=args.overwrite,
            gt_mode=args.gt_mode, max_pixels=args.max_pixels, progress=progress,
        )  # fmt: skip
    except (BenchmarkSettingsError, FileNotFoundError, ValueError) as exc:
        bar.close()
        print(f"authface degrade: error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    for _, reason in res.failed:
        print(f"authface degrade: FAILED {reason}", file=sys.stderr)
    print(
        f"authface degrade: {len(res.made)} made, {len(res.kept)} already there, {len(res.failed)} failed"
        f"{' (each named above)' if res.failed else ''}; preset {args.preset}, seed {args.seed} -> {res.out_dir}",
        file=sys.stderr,
    )
    return 1 if res.failed else 0


# ============================================================================ CLI: eval


def _method_arg(text: str) -> tuple[str | None, str]:
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


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
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
    g = p.add_argument_group("inputs")
    g.add_argument("--pred", action="append", default=[], metavar="[NAME=]DIR",
                   help="restored images of one method (repeatable; NAME defaults to the folder name)")  # fmt: skip
    g.add_argument("--gt", metavar="DIR", help="ground truth (full-reference metrics, LMD, identity target)")
    g.add_argument(
        "--lq", metavar="DIR", help="degraded inputs (baselines, gallery; identity target without GT)"
    )
    g.add_argument("--reference", metavar="DIR",
                   help="reference photos of the same people (aligned crops): ref/<relative path>.* or ref/<folder>/*")  # fmt: skip
    g.add_argument(
        "--bench", metavar="BENCH_DIR", help="an `authface degrade` folder: sets --gt, --lq and the metadata"
    )
    g.add_argument("--baseline", action="append", default=[], metavar="NAME",
                   help="lq | bicubic | lanczos | py:MODULE:FUNC | cv2sr:MODEL.pb (repeatable; needs --lq)")  # fmt: skip
    g.add_argument("--allow-missing", action="store_true", help="evaluate the images common to all folders")
    g.add_argument("--resize-pred", action="store_true",
                   help="resize predictions to the GT size when they differ (same aspect ratio; area down, bicubic up)")  # fmt: skip
    m = p.add_argument_group("metrics")
    m.add_argument("--metrics", default=None,
                   help="comma list (default psnr,ssim,lpips,ids,lmd,niqe,sharpness,fid); also psnr_y, ssim_y, kid, "
                        "ntire2025 and pyiqa names (musiq, maniqa, clipiqa, topiq_nr-face, qalign, ...)")  # fmt: skip
    m.add_argument(
        "--judge", default="dlib", help="identity judge: dlib (default) | arcface:PATH | arcface-onnx:PATH"
    )
    m.add_argument("--id-target", default="auto", choices=("auto", "gt", "reference", "lq"),
                   help="what IDS/Deg compare with (auto: reference, else GT, else LQ)")  # fmt: skip
    m.add_argument("--niqe-params", metavar="PATH", help="NIQE pristine model (BasicSR niqe_pris_params.npz)")
    m.add_argument(
        "--lpips-weights", metavar="PATH", help="LPIPS heads (lpips weights/v0.1/alex.pth) or full state dict"
    )
    m.add_argument("--lpips-backbone", metavar="PATH", help="torchvision alexnet/vgg16 state dict for LPIPS")
    m.add_argument("--fid-inception", metavar="PATH", help="TorchScript Inception (inception-2015-12-05.pt)")
    m.add_argument(
        "--fid-ref", metavar="DIR|NPZ", help="FID/KID reference: image folder or mu/sigma .npz (default GT)"
    )
    m.add_argument("--pyiqa-weights", action="append", default=[], type=_kv_arg, metavar="NAME=PATH",
                   help="local weights of a pyiqa metric (repeatable)")  # fmt: skip
    m.add_argument("--crop-border", type=int, default=0, help="pixels dropped on each side for PSNR/SSIM")
    m.add_argument("--fr-backend", default="auto", choices=("auto", "torchmetrics", "skimage"),
                   help="PSNR/SSIM implementation (auto: torchmetrics on CUDA, else scikit-image)")  # fmt: skip
    m.add_argument("--lmd-points", type=int, default=68, choices=(68, 5), help="dlib landmarks for LMD")
    m.add_argument("--lmd-box", default="fixed", choices=("fixed", "detect"), help="dlib face box for LMD")
    m.add_argument("--gt-row", action="store_true", help="also score the GT with the no-reference metrics")
    m.add_argument("--device", default="cpu", help="cpu | cuda | auto (torch metrics)")
    m.add_argument("--batch-size", type=int, default=8)
    m.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (decompression bombs)")
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
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args) -> int:
    from . import metrics as M
    from . import report as R

    def fail(msg: str, code: int = 2) -> int:
        print(f"authface eval: error: {msg}", file=sys.stderr)
        return code

    gt, lq, metadata = args.gt, args.lq, None
    if args.bench:
        bench = Path(args.bench).expanduser()
        if not (bench / "gt").is_dir() or not (bench / "lq").is_dir():
            return fail(f"--bench {bench}: expected gt/ and lq/ folders made by `authface degrade`")
        gt = gt or str(bench / "gt")
        lq = lq or str(bench / "lq")
        metadata = bench / "metadata.jsonl" if (bench / "metadata.jsonl").is_file() else None
    preds: dict[str, str] = {}
    for text in args.pred:
        name, path = _method_arg(text)
        name = name or Path(path).expanduser().resolve().name
        if name in preds:
            return fail(f"two --pred folders are called {name!r}; name them: --pred NAME=DIR")
        preds[name] = path
    for label, path in (
        ("--gt", gt),
        ("--lq", lq),
        ("--reference", args.reference),
        *((f"--pred {n}", d) for n, d in preds.items()),
    ):
        if path is not None and not Path(path).expanduser().is_dir():
            return fail(f"{label} {path}: not a folder")
    metrics = [s for s in args.metrics.split(",") if s.strip()] if args.metrics else None
    opts = M.MetricOptions(
        judge=args.judge, niqe_params=args.niqe_params, lpips_weights=args.lpips_weights,
        lpips_backbone=args.lpips_backbone, fid_inception=args.fid_inception, fid_ref=args.fid_ref,
        pyiqa_weights=dict(args.pyiqa_weights), crop_border=args.crop_border, fr_backend=args.fr_backend,
        lmd_points=args.lmd_points, lmd_box=args.lmd_box, device=args.device,
    )  # fmt: skip
    from tqdm import tqdm

    bar = tqdm(unit="image", desc="evaluating", disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = M.evaluate(
            preds, gt=gt, lq=lq, reference=args.reference, metadata=metadata, metrics=metrics,
            baselines=args.baseline, options=opts, id_target=args.id_target, batch_size=args.batch_size,
            resize_pred=args.resize_pred, allow_missing=args.allow_missing, gt_row=args.gt_row,
            max_pixels=args.max_pixels, progress=progress,
        )  # fmt: skip
    except (M.PairingError, M.EvalInputError) as exc:
        bar.close()
        return fail(str(exc), 1)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        bar.close()
        return fail(str(exc))
    bar.close()
    print(R.summary_table(result, "all"))
    for name, reason in result.unavailable.items():
        print(f"authface eval: {name} unavailable: {reason.splitlines()[0][:160]}", file=sys.stderr)
    if result.warnings:
        print(
            f"authface eval: {len(result.warnings)} warning(s){' (see the report)' if args.output else ':'}",
            file=sys.stderr,
        )
        if not args.output:
            for w in result.warnings[:10]:
                print(f"  {w}", file=sys.stderr)
    if args.output:
        files = R.write_report(
            result, args.output, title=args.title, gallery=not args.no_gallery, plots=not args.no_plots,
            sort_by=args.sort_by, gallery_max=args.gallery_max, thumb_size=args.thumb_size,
        )  # fmt: skip
        print(
            f"authface eval: report in {Path(args.output).resolve()} ({', '.join(sorted(files))})",
            file=sys.stderr,
        )
    return 0
