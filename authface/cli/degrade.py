"""``authface degrade HQ_DIR -o BENCH_DIR``: a synthetic LQ/GT benchmark from clean aligned faces.

The library side is :func:`authface.data.benchmark.build_benchmark`. ``--preset mask`` / ``old-photo`` / ``paint``
make inpainting benchmarks (a synthetic face mask / old-photo damage / painted brush strokes per image, with its mask
in BENCH_DIR/mask/); ``--occlusion-config YAML`` and ``--set KEY=VALUE`` change their
:class:`~authface.data.occlusions.FaceMaskSettings` / :class:`~authface.data.occlusions.DamageSettings` /
:class:`~authface.data.occlusions.PaintSettings`. Exit codes: 0 success, 1 when some input
failed (each named on stderr; everything else is still written), 2 for usage errors (bad flags, a benchmark folder
made with other settings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import ConfigError, load_config
from ..data.benchmark import (
    BENCHMARK_PRESETS,
    GT_MODES,
    OCCLUSION_PRESETS,
    BenchmarkSettingsError,
    build_benchmark,
    occlusion_settings_class,
)
from .progress import Progress


class ProgressCallback:
    """A library ``progress(done, total)`` callback shown as a :class:`~authface.cli.progress.Progress` (a bar on a
    terminal, periodic lines otherwise), created when the first call tells the total."""

    def __init__(self, desc: str, unit: str = "image"):
        self.desc, self.unit = desc, unit
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(total, self.desc, unit=self.unit)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``degrade`` to an argparse subparsers object (``func(args) -> exit code``)."""
    p = subparsers.add_parser(
        "degrade",
        help="make a synthetic LQ/GT benchmark from clean aligned faces",
        description=(
            "Make a CelebA-Test-style synthetic benchmark: BENCH_DIR/lq/*.png (degraded, lossless), BENCH_DIR/gt/ "
            "(the HQ files) and BENCH_DIR/metadata.jsonl (preset, seed and every sampled parameter per image). "
            "Presets mask, old-photo and paint also write BENCH_DIR/mask/*.png (white = region to fill); face masks are "
            "placed from the FFHQ template landmarks (aligned faces). "
            "Per-image randomness depends only on (seed, relative path): the same seed gives byte-identical files."
        ),
    )
    p.add_argument("hq_dir", metavar="HQ_DIR", help="folder of clean aligned faces (recursive)")
    p.add_argument("-o", "--output", required=True, metavar="BENCH_DIR", help="benchmark folder (created)")
    p.add_argument("--preset", default="gfpgan", choices=BENCHMARK_PRESETS,
                   help="degradation preset, or mask / old-photo / paint for inpainting benchmarks (default gfpgan)")  # fmt: skip
    p.add_argument("--occlusion-config", metavar="YAML", default=None,
                   help="mask / old-photo / paint presets: FaceMaskSettings / DamageSettings / PaintSettings YAML")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="occlusion presets: override one setting, e.g. styles=[surgical,n95] (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--gt-mode", default="copy", choices=GT_MODES, help="how gt/ holds the HQ files (default copy)"
    )
    p.add_argument("--overwrite", action="store_true", help="re-make files that already exist in BENCH_DIR")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (decompression bombs)")
    p.set_defaults(func=run)
    return p


def _occlusion_settings(args: argparse.Namespace):
    """The occlusion preset's settings from ``--occlusion-config`` and ``--set`` (None for other presets)."""
    if args.preset not in OCCLUSION_PRESETS:
        if args.occlusion_config or args.overrides:
            raise ValueError(
                f"--occlusion-config and --set are for the presets {', '.join(OCCLUSION_PRESETS)}"
            )
        return None
    return load_config(occlusion_settings_class(args.preset), args.occlusion_config, args.overrides)


def run(args: argparse.Namespace) -> int:
    """Build the benchmark, print failures and a summary on stderr; returns the exit code."""
    out = Path(args.output).expanduser()
    if out.exists() and not out.is_dir():
        print(f"authface degrade: error: {out} exists and is not a folder", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"authface degrade: error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        settings = _occlusion_settings(args)
    except (ConfigError, ValueError) as exc:
        print(f"authface degrade: error: {exc}", file=sys.stderr)
        return 2
    progress = ProgressCallback("degrading")
    try:
        res = build_benchmark(
            args.hq_dir, out, preset=args.preset, seed=args.seed, workers=args.workers, overwrite=args.overwrite,
            gt_mode=args.gt_mode, max_pixels=args.max_pixels, progress=progress, settings=settings,
        )  # fmt: skip
    except (BenchmarkSettingsError, FileNotFoundError, ValueError) as exc:
        progress.close()
        print(f"authface degrade: error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    for _, reason in res.failed:
        print(f"authface degrade: FAILED {reason}", file=sys.stderr)
    print(
        f"authface degrade: {len(res.made)} made, {len(res.kept)} already there, {len(res.failed)} failed"
        f"{' (each named above)' if res.failed else ''}; preset {args.preset}, seed {args.seed} -> {res.out_dir}",
        file=sys.stderr,
    )
    return 1 if res.failed else 0
