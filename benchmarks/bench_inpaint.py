#!/usr/bin/env python
"""AuthFace inpainting benchmark: seeded synthetic face masks on clean faces, OpenCV baselines and AuthFace.

    python benchmarks/bench_inpaint.py ../shared/faces/hq --limit 24
    python benchmarks/bench_inpaint.py ../shared/faces/hq --limit 24 --model path/to/authface-model \\
        --gallery-dirs ../shared/faces/masked/pgdiff ../shared/faces/lq_old ../shared/faces/lq_gray

DATA_DIR holds clean aligned faces (any depth; ``--limit N`` takes N of them spread evenly over the top-level
sub-folders). They become an ``authface degrade --preset mask`` benchmark (``--preset old-photo`` for damaged prints,
``--preset paint`` for painted-over faces)
at ``--seed`` (default 0) in ``--work`` (default: a new temporary folder): LQ, GT and the masks (white = to fill).
On the same masks, the benchmark compares:

* OpenCV's Telea (fast marching) and Navier-Stokes inpainting (``cv2.inpaint``, radius ``--radius`` px);
* AuthFace's inpainting, ``authface restore LQ_DIR -o OUT --aligned --mask MASK_DIR --model M --ext png``
  (``--model``, default a tiny random model -- its output is noise: a smoke test, not a score). When ``authface
  restore`` has no ``--mask`` option yet, its row says so; no number is ever made up for it;
* the masked input itself (the ``lq`` baseline: the floor).

Scores come from :func:`authface.eval.evaluate` with the benchmark's masks: PSNR / SSIM / L1 inside the mask and
outside it (and LPIPS with ``--lpips-weights``), plus seconds per image. The Markdown table is printed with the
command, date and machine; the full report (gallery, CSV) is in ``WORK/report``. ``--gallery-dirs`` writes a
before/after PNG grid per folder into ``WORK/gallery`` for real material without ground truth: a folder with
``images/`` and ``masks/`` gets input | mask | Telea | Navier-Stokes (| AuthFace); a folder of images alone (old or
gray photos: no mask given) gets input | AuthFace ``--task old-photo`` (the model's mask segmenter finds the damage;
``--mask-model DIR`` for another one, e.g. trained by ``benchmarks/bench_segmenter.py``). Nothing is downloaded; DATA_DIR is never written to.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import pick  # noqa: E402

OPENCV_METHODS = {"OpenCV Telea": "INPAINT_TELEA", "OpenCV Navier-Stokes": "INPAINT_NS"}
AUTHFACE = "AuthFace"
NOT_AVAILABLE = "not available (restore --mask not implemented yet)"
COLUMNS = ("PSNR (mask)", "SSIM (mask)", "L1 (mask)", "LPIPS (mask)", "PSNR (unmasked)", "SSIM (unmasked)",
           "L1 (unmasked)")  # fmt: skip


# ------------------------------------------------------------------------------------ AuthFace inpainting (marked)


def authface_inpaint_available() -> tuple[bool, str]:
    """AUTHFACE INPAINTING CHECK: whether ``authface restore`` takes ``--mask`` (it is being added to the pipeline).
    Returns (available, note)."""
    cmd = [sys.executable, "-m", "authface", "restore", "--help"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return False, f"`authface restore --help` failed (exit {proc.returncode})"
    if "--mask" not in proc.stdout:
        return False, NOT_AVAILABLE
    return True, "authface restore --mask"


def run_authface_inpaint(
    lq_dir: Path, mask_dir: Path | None, out_dir: Path, model: str, extra: list[str]
) -> tuple[Path | None, float, str]:
    """AUTHFACE INPAINTING RUN: ``authface restore --aligned --mask MASK_DIR`` on a folder, or without masks
    ``--task old-photo`` (the mask segmenter finds the damage: ``--mask auto``); (output folder or None, seconds,
    note). Only called when :func:`authface_inpaint_available` says so."""
    mask = ["--mask", str(mask_dir)] if mask_dir is not None else ["--task", "old-photo"]
    cmd = [sys.executable, "-m", "authface", "restore", str(lq_dir), "-o", str(out_dir), "--aligned", *mask,
           "--model", model, "--ext", "png", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return None, secs, f"`{shlex.join(cmd[1:])}` failed (exit {proc.returncode}): {tail}"
    return out_dir, secs, f"`{shlex.join(cmd[1:])}`"


def tiny_model(work: Path) -> str:
    """A tiny random AuthFace model folder (authface.testing.tiny_model) in ``work``; its output is noise."""
    out = work / "tiny-model"
    if not out.is_dir():
        subprocess.run([sys.executable, "-m", "authface.testing.tiny_model", str(out)], check=True,
                       capture_output=True)  # fmt: skip
    return str(out)


# ------------------------------------------------------------------------------------------------------ OpenCV


def opencv_inpaint(img: np.ndarray, mask: np.ndarray, method: str, radius: float) -> np.ndarray:
    """``cv2.inpaint`` of uint8 RGB ``img`` where bool ``mask`` is True -> uint8 RGB."""
    import cv2

    bgr = np.ascontiguousarray(img[..., ::-1])
    out = cv2.inpaint(bgr, mask.astype(np.uint8) * 255, float(radius), getattr(cv2, OPENCV_METHODS[method]))
    return np.ascontiguousarray(out[..., ::-1])


def run_opencv(
    pairs: list[tuple[Path, Path, str]], out_root: Path, radius: float
) -> dict[str, tuple[Path, float]]:
    """Both OpenCV methods on ``(image, mask, key)`` triples -> {method: (folder of PNGs, seconds per image)}."""
    from authface import io
    from authface.eval.masks import read_mask

    done: dict[str, tuple[Path, float]] = {}
    for method in OPENCV_METHODS:
        folder, secs = out_root / method.split()[-1].lower(), 0.0
        for img_path, mask_path, key in pairs:
            img = io.read_image(img_path).rgb
            mask, _ = read_mask(mask_path, img.shape[:2])
            t0 = time.perf_counter()
            out = opencv_inpaint(img, mask, method, radius)
            secs += time.perf_counter() - t0
            io.write_image(folder / f"{key}.png", out)
        done[method] = (folder, secs / max(len(pairs), 1))
    return done


# ------------------------------------------------------------------------------------------------------- table


def table(result, extra_rows: dict[str, str], seconds: dict[str, float]) -> str:
    """Markdown: one row per method, the region columns present in ``result`` and seconds per image."""
    cols = [c for c in COLUMNS if result.column(c) is not None]
    head = ["method", "n", *[f"{c} {result.column(c).arrow}" for c in cols], "s/image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for m in result.methods:
        e = result.entry(m)
        if e is None:
            continue
        cells = [result.label(m) if m != "lq" else "masked input (lq)", str(e["n"])]
        cells += [result.column(c).format(e[c]["mean"]) if c in e else "—" for c in cols]
        cells.append(f"{seconds[m]:.3f}" if m in seconds else "—")
        lines.append("| " + " | ".join(cells) + " |")
    for name, note in extra_rows.items():
        lines.append(f"| {name}: {note} | — | " + " | ".join("—" for _ in cols) + " | — |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- gallery


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(out, text[:24], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def gallery(folder: Path, out: Path, radius: float, size: int, authface_out: Path | None = None,
            segmenter=None) -> Path:  # fmt: skip
    """A before/after PNG grid of a folder of real photos (``images/`` + ``masks/``, or images alone; for those,
    with a ``segmenter`` (:class:`authface.models.mask_segmenter.MaskSegmenter`), the mask it finds)."""
    from authface import io
    from authface.eval.masks import MaskError, read_mask
    from authface.imaging import resize

    has_masks = (folder / "images").is_dir() and (folder / "masks").is_dir()
    images = io.discover_inputs([str(folder / "images" if has_masks else folder)])
    rows = []
    for src, rel in sorted(images, key=lambda x: x[1].as_posix()):
        img = io.read_image(src).rgb
        cells = [("input", img)]
        if has_masks:
            cand = [p for p in (folder / "masks").glob(rel.with_suffix("").as_posix() + ".*")]
            try:
                mask, _ = read_mask(cand[0], img.shape[:2]) if cand else (None, None)
            except MaskError:
                mask = None
            if mask is not None:
                cells.append(("mask", np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)))
                cells += [
                    (m.replace("OpenCV ", ""), opencv_inpaint(img, mask, m, radius)) for m in OPENCV_METHODS
                ]
                af = authface_out / rel.with_suffix(".png") if authface_out else None
                if af is not None and af.is_file():
                    cells.append((AUTHFACE, io.read_image(af).rgb))
        if not has_masks and segmenter is not None and img.shape[0] == img.shape[1]:
            from authface.models.mask_segmenter import predict_masks

            found = predict_masks(segmenter, img[None])[0]
            cells.append(("auto mask", np.repeat(found[..., None].astype(np.uint8) * 255, 3, axis=2)))
        thumbs = [
            _label(resize(c, size=(size, size), mode="area"), f"{rel.stem} {name}") for name, c in cells
        ]
        if not has_masks and authface_out is not None and (authface_out / rel.with_suffix(".png")).is_file():
            af_img = io.read_image(authface_out / rel.with_suffix(".png")).rgb
            thumbs.append(_label(resize(af_img, size=(size, size), mode="area"), f"{rel.stem} {AUTHFACE} old-photo"))
        rows.append(thumbs)
    if all(len(r) == 1 for r in rows):  # inputs only: 6 per row
        rows = [sum(rows[i : i + 6], []) for i in range(0, len(rows), 6)]
    width = max(len(r) for r in rows)
    blank = np.full((size, size, 3), 255, np.uint8)
    grid = np.concatenate([np.concatenate(r + [blank] * (width - len(r)), axis=1) for r in rows], axis=0)
    path = out / f"{folder.parent.name}_{folder.name}.png"
    io.write_image(path, grid)
    return path


# -------------------------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    from authface.data.benchmark import OCCLUSION_PRESETS

    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data_dir", metavar="DATA_DIR", help="clean aligned faces (searched recursively)")
    ap.add_argument("--limit", type=int, default=None, help="use N images (spread over the sub-folders)")
    ap.add_argument(
        "--model", metavar="DIR", help="AuthFace model for inpainting (default: a tiny random model)"
    )
    ap.add_argument("--restore-args", default="", help="extra `authface restore` flags, one string")
    ap.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    ap.add_argument("--preset", default="mask", choices=OCCLUSION_PRESETS, help="occlusion preset (default mask)")
    ap.add_argument("--radius", type=float, default=3.0, help="cv2.inpaint radius in pixels (default 3)")
    ap.add_argument("--lpips-weights", metavar="PATH", help="LPIPS heads (adds LPIPS in/outside the mask)")
    ap.add_argument("--lpips-backbone", metavar="PATH")
    ap.add_argument(
        "--work", metavar="DIR", help="benchmark, outputs and report (default: a new temporary folder)"
    )
    ap.add_argument(
        "--gallery-dirs", nargs="*", default=[], metavar="DIR", help="real photos for a before/after grid"
    )
    ap.add_argument("--thumb", type=int, default=160, help="gallery thumbnail size (default 160)")
    ap.add_argument("--mask-model", metavar="DIR", help="mask segmenter for the old-photo gallery runs (default: the "
                    "model folder's own mask_segmenter/)")  # fmt: skip
    ap.add_argument("--out", metavar="FILE.md", help="write the Markdown table here too")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from authface import io
    from authface.data.benchmark import build_benchmark
    from authface.eval.evaluate import evaluate
    from authface.eval.registry import MetricOptions
    from authface.eval.report import write_report

    data = Path(args.data_dir).expanduser()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_inpaint_")).expanduser().resolve()
    command = shlex.join(["python", "benchmarks/bench_inpaint.py", *(sys.argv[1:] if argv is None else argv)])
    inputs = pick(io.discover_inputs([str(data)]), args.limit)
    if not inputs:
        print(f"bench_inpaint: no image in {data}", file=sys.stderr)
        return 2
    bench = work / f"bench_{args.preset}_seed{args.seed}"
    res = build_benchmark(
        [(s, r) for s, r in inputs], bench, preset=args.preset, seed=args.seed, overwrite=True
    )
    for _, reason in res.failed:
        print(f"bench_inpaint: FAILED {reason}", file=sys.stderr)
    keys = sorted(Path(r).with_suffix("").as_posix() for r in [*res.made, *res.kept])
    pairs = [(bench / "lq" / f"{k}.png", bench / "mask" / f"{k}.png", k) for k in keys]
    opencv = run_opencv(pairs, work / "out", args.radius)
    preds = {m: folder for m, (folder, _) in opencv.items()}
    seconds = {m: s for m, (_, s) in opencv.items()}
    extra_rows: dict[str, str] = {}
    notes: list[str] = []
    available, note = authface_inpaint_available()
    authface_out = None
    if available:
        model = args.model or tiny_model(work)
        label = AUTHFACE if args.model else f"{AUTHFACE} (tiny random model: noise)"
        authface_out, secs, note = run_authface_inpaint(
            bench / "lq", bench / "mask", work / "out" / "authface", model, shlex.split(args.restore_args)
        )
        notes.append(f"{label}: {note}")
        if authface_out is None:
            extra_rows[label] = "failed (see the notes)"
        else:
            preds[label], seconds[label] = authface_out, secs / max(len(keys), 1)
    else:
        extra_rows[AUTHFACE] = note
    metrics = ["psnr", "ssim", "l1"] + (["lpips"] if args.lpips_weights else [])
    opts = MetricOptions(lpips_weights=args.lpips_weights, lpips_backbone=args.lpips_backbone)
    result = evaluate(preds, gt=bench / "gt", lq=bench / "lq", masks=bench / "mask", metrics=metrics,
                      baselines=["lq"], options=opts)  # fmt: skip
    write_report(result, work / "report", title="AuthFace inpainting benchmark", plots=False)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU core(s), {platform.system()} {platform.release()}"
    text = "\n".join([
        f"Command: `{command}`", "",
        f"Date: {datetime.date.today().isoformat()}; machine: {machine}; preset `{args.preset}`, seed {args.seed}, "
        f"{len(keys)} image(s) from `{data}`; cv2.inpaint radius {args.radius:g} px", "",
        table(result, extra_rows, seconds), "",
        *[f"- {n}" for n in notes],
    ])  # fmt: skip
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.gallery_dirs:
        out = work / "gallery"
        segmenter = None
        if args.mask_model:
            from authface.models.mask_segmenter import load_mask_segmenter

            segmenter = load_mask_segmenter(args.mask_model, "cpu")
        for d in args.gallery_dirs:
            for folder in _gallery_folders(Path(d).expanduser()):
                af = None
                if available:  # images/ + masks/: inpaint those masks; images alone: --task old-photo (auto)
                    has_masks = (folder / "masks").is_dir()
                    seg = ["--mask-model", args.mask_model] if args.mask_model and not has_masks else []
                    af, _, note = run_authface_inpaint(folder / "images" if has_masks else folder,
                                                       folder / "masks" if has_masks else None,
                                                       work / "out" / f"gallery_{folder.parent.name}_{folder.name}", model,
                                                       shlex.split(args.restore_args) + seg)  # fmt: skip
                    print(f"bench_inpaint: AuthFace on {folder}: {note}", file=sys.stderr)
                path = gallery(folder, out, args.radius, args.thumb, af, segmenter)
                print(f"bench_inpaint: gallery {path}", file=sys.stderr)
    print(f"bench_inpaint: work folder {work} (report: {work / 'report' / 'report.md'})", file=sys.stderr)
    return 1 if res.failed else 0


def _gallery_folders(root: Path) -> list[Path]:
    """``root`` itself when it holds images (or images/ + masks/), else its sub-folders that do."""
    if (root / "images").is_dir() or any(p.is_file() for p in root.iterdir()):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir())


if __name__ == "__main__":
    sys.exit(main())
