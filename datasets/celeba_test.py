#!/usr/bin/env python
"""CelebA-Test, the synthetic blind-face-restoration benchmark (3,000 LQ/GT pairs at 512x512), from CelebA-HQ,
with ``authface degrade``.

    python datasets/celeba_test.py CELEBA_HQ -o OUT [--dry-run] [--limit N] [--file-list FILE]
        [--preset gfpgan] [--seed 0] [--size 512] [--workers 1]

CELEBA_HQ is the folder of ``datasets/celeba_hq.py`` (CelebAMask-HQ's ``CelebA-HQ-img``, 0.jpg ... 29999.jpg).
Nothing is downloaded: see datasets/cards/celeba_test.md for where to get it and how this set relates to the one
GFPGAN's authors distribute.

The fixed file list (written to ``OUT/file_list.txt``) is the last 3,000 CelebA-HQ indices, 27000-29999, unless
``--file-list`` names others (one CelebA-HQ index or file name per line, ``#`` comments). The GT images are those
files resized to ``--size`` (OpenCV area interpolation from 1024; copied when already that size) and saved as
lossless PNG in ``OUT/hq512/<index>.png`` (``hq<size>``); then ``authface degrade OUT/hq512 -o OUT/bench --preset gfpgan --seed 0
--gt-mode hardlink`` makes ``OUT/bench/{lq,gt,metadata.jsonl}`` (every sampled degradation parameter recorded;
the same seed gives byte-identical files). ``OUT/manifest.jsonl`` maps each pair to its CelebA-HQ source file and
checksums, and ``OUT/recipe.json`` records the run. Evaluate with ``authface eval --bench OUT/bench ...``.

Why the ``gfpgan`` preset: GFPGAN's CelebA-Test was synthesised with the degradation of GFPGAN's training (blur
sigma 0.1-10 with 41x41 isotropic/anisotropic Gaussian kernels, downsampling x0.8-8, Gaussian noise 0-20, JPEG
60-100, plus colour jitter and rare greyscale), which is exactly the ``gfpgan`` preset (first order). The other
presets are ``codeformer`` (heavier, first order), ``realesrgan`` (second order, the Real-ESRGAN pipeline) and
``mild`` (AuthFace's own); pass ``--preset`` to build a variant, in another OUT.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SPEC = common.SPECS["celeba_hq"]
COUNT = 3_000
DEFAULT_INDICES = tuple(range(27_000, 30_000))
BENCH_DIR, LIST_NAME, MANIFEST_NAME = "bench", "file_list.txt", "manifest.jsonl"


def read_file_list(path: str | None) -> list[int]:
    """CelebA-HQ indices of ``--file-list`` (None: 27000-29999).

    Raises:
        RecipeError: the file is missing, a line is not an index or file name, or an index repeats.
    """
    if path is None:
        return list(DEFAULT_INDICES)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise common.RecipeError(f"--file-list {path}: {exc}") from exc
    indices: list[int] = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        stem = Path(text).stem
        if not stem.isdigit() or int(stem) >= SPEC.max_index:
            raise common.RecipeError(f"{path}:{n}: {text!r} is not a CelebA-HQ index or file name (0-29999)")
        indices.append(int(stem))
    if len(set(indices)) != len(indices) or not indices:
        raise common.RecipeError(
            f"--file-list {path}: {'empty' if not indices else 'an index appears twice'}"
        )
    return indices


def stage_hq(src: Path, dst: Path, size: int) -> None:
    """``src`` as a ``size`` x ``size`` lossless PNG at ``dst`` (area-resized, or copied when it already is one)."""
    from authface import imaging, io

    if src.suffix.lower() == ".png" and common.image_size(src) == (size, size):
        io.copy_file(src, dst)
        return
    rgb = io.read_image(src).rgb
    if rgb.shape[:2] != (size, size):
        rgb = imaging.resize(rgb, size=(size, size), mode="area")
    io.write_image(dst, rgb)


def build(args) -> int:
    """The recipe (see the module docstring); returns the exit code."""
    root = common.source_dir(args.src, SPEC.where())
    out = common.check_output(args.output, root)
    if args.seed < 0 or args.size < 64 or args.workers < 1:
        raise common.RecipeError("--seed must be >= 0, --size >= 64 and --workers >= 1")
    indices = read_file_list(args.file_list)
    chosen = indices[: args.limit] if args.limit else indices
    by_index, _ = common.match_source(root, SPEC)
    missing = [i for i in chosen if i not in by_index]
    if missing:
        raise common.SourceError(
            f"{root} lacks {len(missing)} of the {len(chosen)} CelebA-HQ images of the file list, e.g. index "
            f"{', '.join(map(str, missing[:5]))}: not the complete CelebA-HQ ({SPEC.layout}); {SPEC.where()}"
        )
    files = [by_index[i] for i in chosen]
    sizes = common.check_sizes(files, SPEC)
    side = next(iter(sizes))[0]
    if side < args.size:
        raise common.RecipeError(f"--size {args.size} is larger than the {side}x{side} source images")
    hq, bench = out / f"hq{args.size}", out / BENCH_DIR
    argv = ["degrade", str(hq), "-o", str(bench), "--preset", args.preset, "--seed", str(args.seed),
            "--gt-mode", "hardlink", "--workers", str(args.workers)]  # fmt: skip
    plan = common.Plan(f"CelebA-Test ({args.preset}, seed {args.seed}) from {root} -> {out}")
    plan.add(f"file list: {'--file-list ' + args.file_list if args.file_list else 'CelebA-HQ 27000-29999'}, "
             f"{len(indices)} entries{f', first {len(chosen)} used (--limit)' if args.limit else ''}")  # fmt: skip
    if len(indices) != COUNT:
        plan.add(f"note: CelebA-Test has {COUNT} pairs; this list has {len(indices)}")
    plan.add(f"source: {len(chosen)} image(s) found, {common.sizes_text(sizes)}")
    plan.files(f"stage GT at {args.size}x{args.size} PNG into {hq}", [f"{i:05d}.png" for i in chosen])
    plan.add(f"run: {common.command_line(argv)}")
    plan.add(f"write {out / LIST_NAME}, {out / MANIFEST_NAME}, {out / common.RECIPE_NAME}")
    plan.show(args.dry_run)
    if args.dry_run:
        return 0
    return run(args, root, out, indices, chosen, files, argv)


def run(args, root: Path, out: Path, indices: list[int], chosen: list[int], files: list[Path], argv) -> int:
    """Stage the GT, run ``authface degrade``, write the file list, manifest and recipe record."""
    from authface import io
    from authface.data.benchmark import read_benchmark_metadata

    hq = out / f"hq{args.size}"
    failed: list[str] = []
    records = []
    for idx, src in zip(chosen, files):
        dst = hq / f"{idx:05d}.png"
        try:
            if not dst.is_file():  # a re-run keeps what is staged (degrade checks the bytes it was made from)
                stage_hq(src, dst, args.size)
            records.append({"rel": dst.name, "celebahq_index": idx, "source": str(src),
                            "source_sha256": io.sha256_file(src), "hq": f"{hq.name}/{dst.name}",
                            "hq_sha256": io.sha256_file(dst)})  # fmt: skip
        except (OSError, ValueError) as exc:
            failed.append(f"{src}: {exc}")
            common.say(f"FAILED {src}: {exc}")
    list_text = "".join(f"{i}\n" for i in indices)
    io.write_text(out / LIST_NAME, list_text)
    code = common.run_authface(argv) if records else 1
    if code == 2:  # e.g. OUT/bench holds a benchmark of another preset or seed: degrade said so
        return 2
    _, made = read_benchmark_metadata(out / BENCH_DIR / "metadata.jsonl", missing_ok=True)
    records = [r for r in records if r["rel"] in made]  # the pairs degrade made (or kept)
    header = {"type": "celeba_test", "format": 1, "preset": args.preset, "seed": args.seed, "size": args.size,
              "file_list": LIST_NAME, "file_list_sha256": hashlib.sha256(list_text.encode()).hexdigest(),
              "pairs": len(records), "limit": args.limit, "bench": BENCH_DIR}  # fmt: skip
    common.write_jsonl(out / MANIFEST_NAME, header, records)
    common.write_recipe_record(out, SPEC, root, pairs=len(records), preset=args.preset, seed=args.seed,
                               command=common.command_line(argv), degrade_exit=code, failed=failed)  # fmt: skip
    common.say(
        f"CelebA-Test: {len(records)} pair(s) in {out / BENCH_DIR} (authface eval --bench {out / BENCH_DIR})"
    )
    return code if code else (1 if failed else 0)


def main(argv: list[str] | None = None) -> int:
    from authface.config import DegradationPreset, choices

    parser = common.base_parser("Build the CelebA-Test synthetic benchmark from a downloaded CelebA-HQ folder.", SPEC,
                                partial=False)  # fmt: skip
    parser.add_argument("--file-list", default=None, metavar="FILE",
                        help="CelebA-HQ indices or file names, one a line (default: 27000-29999)")  # fmt: skip
    parser.add_argument(
        "--preset",
        default="gfpgan",
        choices=choices(DegradationPreset),
        help="degradation preset (default gfpgan)",
    )
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    parser.add_argument("--size", type=int, default=512, help="GT/LQ side in pixels (default 512)")
    parser.add_argument("--workers", type=int, default=1, help="degrade worker processes (default 1)")
    return common.run_main(build, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
