#!/usr/bin/env python
"""AuthFace quality benchmark: synthetic CelebA-Test-style pairs from clean faces, baselines (and models), metrics.

    python benchmarks/bench_quality.py DATA_DIR --niqe-params niqe_pris_params.npz --limit 24 --out snippet.md
    python benchmarks/bench_quality.py DATA_DIR --model path/to/authface-model --model other=hub/id ...

DATA_DIR is a folder like the shared evaluation material: its ``hq/`` sub-folder (clean aligned faces, any depth;
the top-level sub-folders become subsets) is degraded with each ``--presets`` preset (default gfpgan and codeformer)
at ``--seed`` (default 0) by :func:`authface.data.benchmark.build_benchmark` (the library side of ``authface
degrade``). ``--limit N`` takes N images, spread evenly over the sub-folders (sorted, round-robin), for speed.

Every benchmark is then evaluated (:func:`authface.eval.evaluate`) with the baselines ``lq``, ``bicubic`` and
``lanczos`` (LQ at GT size: area-reduced x4 and enlarged again), the GT row (no-reference metrics of the GT: their
ceiling), and every ``--model`` run through ``authface restore LQ_DIR -o OUT --aligned --model M --ext png`` (extra
restore flags with ``--restore-args``). Reports (Markdown, CSV, HTML gallery, plots) go to ``--work`` (default: a new
temporary folder, printed); the tables (all images and per subset, per preset), the metric implementations and the
metric throughput are printed as Markdown and written to ``--out``.

Metrics: ``--metrics`` (default psnr,ssim,lpips,ids,lmd,niqe,sharpness,fid), identity judge ``--judge`` (default
dlib), NIQE from ``--niqe-params``; LPIPS / FID / pyiqa metrics need their local weights (see ``authface eval
--help``) and are listed as unavailable otherwise. Nothing is downloaded; DATA_DIR is never written to.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def pick(inputs: list[tuple[Path, Path]], limit: int | None) -> list[tuple[Path, Path]]:
    """At most ``limit`` inputs, round-robin over the top-level sub-folders (each sorted): every subset is kept."""
    if not limit or limit >= len(inputs):
        return inputs
    groups: dict[str, list[tuple[Path, Path]]] = {}
    for src, rel in inputs:
        groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else "", []).append((src, rel))
    queues = [sorted(g, key=lambda x: x[1].as_posix()) for _, g in sorted(groups.items())]
    out: list[tuple[Path, Path]] = []
    while len(out) < limit:
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return sorted(out, key=lambda x: x[1].as_posix())


def run_model(spec: str, lq_dir: Path, out_dir: Path, extra: list[str]) -> tuple[str, Path | None, str]:
    """``authface restore --aligned`` on the LQ folder; returns (name, output folder or None, note)."""
    name, model = (
        spec.split("=", 1) if "=" in spec and not Path(spec).exists() else (Path(spec).name or spec, spec)
    )
    cmd = [sys.executable, "-m", "authface", "restore", str(lq_dir), "-o", str(out_dir), "--aligned",
           "--model", model, "--ext", "png", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return (
            name,
            None,
            f"model {name}: `{shlex.join(cmd)}` failed (exit {proc.returncode}): {' / '.join(tail)}",
        )
    return name, out_dir, f"model {name}: restored in {secs:.1f} s (`{shlex.join(cmd[1:])}`)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "data_dir", metavar="DATA_DIR", help="folder with an hq/ sub-folder of clean aligned faces"
    )
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]MODEL",
        help="AuthFace model to restore with (repeatable)",
    )
    ap.add_argument(
        "--restore-args", default="", help="extra `authface restore` flags, one string (e.g. '--steps 20')"
    )
    ap.add_argument("--out", metavar="FILE.md", help="write the Markdown tables here too")
    ap.add_argument("--work", metavar="DIR", help="benchmarks and reports (default: a new temporary folder)")
    ap.add_argument("--presets", default="gfpgan,codeformer", help="degradation presets (comma list)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--limit", type=int, default=None, help="use N images of hq/ (spread over its sub-folders)"
    )
    ap.add_argument("--metrics", default="psnr,ssim,lpips,ids,lmd,niqe,sharpness,fid")
    ap.add_argument("--judge", default="dlib", help="identity judge: dlib | arcface:PATH | arcface-onnx:PATH")
    ap.add_argument("--niqe-params", metavar="PATH", help="BasicSR niqe_pris_params.npz")
    ap.add_argument("--lpips-weights", metavar="PATH")
    ap.add_argument("--lpips-backbone", metavar="PATH")
    ap.add_argument("--fid-inception", metavar="PATH")
    ap.add_argument("--fid-ref", metavar="DIR|NPZ")
    ap.add_argument("--workers", type=int, default=1, help="processes for degrading")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from authface import io
    from authface.data.benchmark import build_benchmark
    from authface.eval.evaluate import evaluate
    from authface.eval.registry import MetricOptions
    from authface.eval.report import metric_lines, summary_table, throughput_table, write_report

    hq = Path(args.data_dir).expanduser() / "hq"
    if not hq.is_dir():
        print(f"bench_quality: {hq} is not a folder (DATA_DIR must hold hq/)", file=sys.stderr)
        return 2
    inputs = pick(io.discover_inputs([str(hq)]), args.limit)
    work = (
        Path(args.work).expanduser()
        if args.work
        else Path(tempfile.mkdtemp(prefix="authface-bench-quality-"))
    )
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    opts = MetricOptions(
        judge=args.judge, niqe_params=args.niqe_params, lpips_weights=args.lpips_weights,
        lpips_backbone=args.lpips_backbone, fid_inception=args.fid_inception, fid_ref=args.fid_ref, device=args.device,
    )  # fmt: skip
    print(f"bench_quality: {len(inputs)} image(s) of {hq}, presets {', '.join(presets)}, seed {args.seed}; work in {work}",
          file=sys.stderr)  # fmt: skip

    sections: list[str] = []
    info_lines: list[str] = []
    notes: list[str] = []
    t_all = time.perf_counter()
    for preset in presets:
        pdir = work / preset
        t0 = time.perf_counter()
        bench = build_benchmark(inputs, pdir / "bench", preset=preset, seed=args.seed, workers=args.workers)
        t_deg = time.perf_counter() - t0
        for _, reason in bench.failed:
            notes.append(f"{preset}: degrade failed: {reason}")
        preds: dict[str, str] = {}
        for spec in args.model:
            name, out, note = run_model(
                spec, pdir / "bench" / "lq", pdir / f"model_{len(preds)}", shlex.split(args.restore_args)
            )
            notes.append(f"{preset}: {note}")
            if out is not None:
                preds[name] = str(out)
        t0 = time.perf_counter()
        res = evaluate(
            preds, gt=pdir / "bench" / "gt", lq=pdir / "bench" / "lq", metadata=pdir / "bench" / "metadata.jsonl",
            metrics=[m for m in args.metrics.split(",") if m.strip()], baselines=["lq", "bicubic", "lanczos"],
            options=opts, gt_row=True, allow_missing=bool(preds),
            progress=lambda d, n, p=preset: print(f"\r  {p}: evaluated {d}/{n}", end="", file=sys.stderr),
        )  # fmt: skip
        print(file=sys.stderr)
        t_eval = time.perf_counter() - t0
        write_report(res, pdir / "report", title=f"AuthFace quality benchmark: {preset}, seed {args.seed}")
        if not info_lines:
            info_lines = metric_lines(res)
        notes += [f"{preset}: {w}" for w in res.warnings]
        sec = [
            f"### Preset `{preset}` (seed {args.seed}): {len(res.pairing.keys)} images",
            "",
            f"Degraded in {t_deg:.1f} s, evaluated in {t_eval:.1f} s (full report, gallery and plots: "
            f"`<work>/{preset}/report/`).",
            "",
            "All images:",
            "",
            summary_table(res, "all"),
            "",
        ]
        for sub in res.subsets:
            if sub != "all":
                sec += [f"Subset `{sub}`:", "", summary_table(res, sub, with_std=False), ""]
        sec += [
            "Metric throughput (CPU; seconds include the GT-side features):",
            "",
            throughput_table(res),
            "",
        ]
        sections.append("\n".join(sec))

    import platform

    import torch

    header = [
        f"Synthetic benchmark from `{args.data_dir}/hq` ({len(inputs)} images"
        f"{f', --limit {args.limit}' if args.limit else ''}), presets {', '.join(f'`{p}`' for p in presets)}, seed "
        f"{args.seed}; methods: the baselines `lq`, `bicubic`, `lanczos`{', ' + ', '.join(args.model) if args.model else ''}; "
        f"the GT row gives the no-reference metrics of the ground truth. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU(s), torch {torch.__version__}, device {args.device}. Total {time.perf_counter() - t_all:.0f} s.",
        "",
        "Command: `python benchmarks/bench_quality.py "
        + shlex.join(sys.argv[1:] if argv is None else argv)
        + "`",
        "",
        "Metrics (mean ± sample std over images; best mean per column in bold, GT row excluded):",
        "",
        *info_lines,
        "",
    ]
    text = "\n".join(header) + "\n" + "\n".join(sections)
    if notes:
        text += "\nNotes:\n\n" + "\n".join(f"- {n}" for n in notes[:30]) + "\n"
    print(text)
    if args.out:
        Path(args.out).expanduser().write_text(text, encoding="utf-8")
        print(f"bench_quality: written {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
