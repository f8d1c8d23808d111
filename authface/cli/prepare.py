"""``authface prepare``: turn folders of photos into a training dataset of aligned faces.

::

    authface prepare SRC... -o DATASET [--crop-size 512] [--min-face-size 64] [--detector dlib]
        [--quality sharpness[,pyiqa:topiq_nr-face=WEIGHTS.pth,...]] [--caption-template TEXT]
        [--captions FILE.csv [--caption-column text] [--caption-path-column file]]
        [--dedupe-threshold 6] [--max-faces N]

The work is :func:`authface.data.prepare.prepare_dataset`; this module parses the options and writes the console
lines. Exit codes: 0 when it finished (rejections are not failures), 1 when some photo failed for another reason
(e.g. a write error; named above the summary, recorded nowhere, retried by the next run), 2 for usage errors (bad
option, no input, dataset prepared with another crop size or primary scorer, another prepare running on the same
DATASET).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from ..config import ConfigError, DetectorName
from ..config.base import choices


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``authface prepare`` on the top-level parser's subparsers (``func`` returns the exit code)."""
    from ..data.captions import CAPTION_PATH_COLUMNS
    from ..data.prepare_settings import PrepareSettings

    p = subparsers.add_parser(
        "prepare",
        help="detect, align, dedupe and score faces into a training dataset",
        description="Build (or grow) a training dataset of aligned faces from photos. Re-running adds only photos "
        "not seen before. Exit 0 when finished (rejected photos are not failures), 1 when a photo failed "
        "otherwise, 2 for usage errors.",
    )
    d = PrepareSettings()
    p.add_argument("srcs", nargs="+", metavar="SRC", help="image files, folders (recursive) or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder (created or grown)")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="aligned crop side in pixels (default 512)")
    p.add_argument("--min-face-size", type=float, default=d.min_face_size,
                   help="reject faces smaller than this (sqrt of detected box area, pixels; default 64)")  # fmt: skip
    p.add_argument("--detector", default=d.detector, type=str.lower, choices=choices(DetectorName),
                   help=f"{' | '.join(choices(DetectorName))} (default dlib)")  # fmt: skip
    p.add_argument("--detector-model", default=None, help="local model file/folder for yunet/insightface")
    p.add_argument("--upsample", type=int, default=d.upsample, help="dlib upsampling (finds smaller faces; default 1)")
    p.add_argument("--quality", default=",".join(d.quality), metavar="NAME[=MODEL],...",
                   help="quality scorer(s), comma separated: sharpness, niqe=PARAMS.npz, pyiqa:METRIC[=WEIGHTS]; "
                   "the first one's normalised score is quality_score (default sharpness)")  # fmt: skip
    p.add_argument("--device", default=d.device, help="device for the quality scorers (default cpu)")
    p.add_argument("--caption-template", default=None, help="caption of every face, e.g. 'a photo of a face'")
    p.add_argument("--captions", default=None, metavar="FILE.csv",
                   help="CSV with a path column (relative to SRC, basename or absolute) and a caption column")  # fmt: skip
    p.add_argument("--caption-column", default=d.caption_column, help="caption column of --captions (default text)")
    p.add_argument("--caption-path-column", default=None,
                   help=f"path column of --captions (default: first of {', '.join(CAPTION_PATH_COLUMNS)})")  # fmt: skip
    p.add_argument("--dedupe-threshold", type=int, default=d.dedupe_threshold,
                   help="max pHash Hamming distance (of 64 bits) for a near-duplicate; -1 disables (default 6)")  # fmt: skip
    p.add_argument("--max-faces", type=int, default=None, help="keep at most N faces per photo (largest first)")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="refuse larger images as unreadable")
    p.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    p.add_argument("--aligned", action="store_true",
                   help="inputs already are aligned face crops (FFHQ, CelebA-HQ): no detection")  # fmt: skip
    p.set_defaults(func=run)
    return p


def settings_from_args(args):
    """The :class:`~authface.data.prepare_settings.PrepareSettings` of parsed ``authface prepare`` options."""
    from ..data.prepare_settings import PrepareSettings

    return PrepareSettings(
        crop_size=args.crop_size, min_face_size=args.min_face_size, detector=args.detector,
        detector_model=args.detector_model, upsample=args.upsample,
        quality=[q.strip() for q in str(args.quality).split(",") if q.strip()],
        caption_template=args.caption_template, captions=args.captions, caption_column=args.caption_column,
        caption_path_column=args.caption_path_column, dedupe_threshold=args.dedupe_threshold,
        max_faces=args.max_faces, device=args.device, recursive=not args.no_recursive, max_pixels=args.max_pixels,
        aligned=args.aligned,
    )  # fmt: skip


class _Console:
    """Report lines and the progress bar of one run, on stderr, without breaking each other."""

    def __init__(self) -> None:
        self.bar = None

    def report(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(f"authface: {line}")
        else:
            print(f"authface: {line}", file=sys.stderr, flush=True)

    def progress(self, photos: list) -> Iterator:
        from .progress import Progress

        self.bar = Progress(len(photos), "preparing", unit="photo")
        try:
            for photo in photos:
                yield photo
                self.bar.update()
        finally:
            self.bar.close()
            self.bar = None


def run(args) -> int:
    """``authface prepare``: 0 finished, 1 some photo failed (not a rejection), 2 usage error."""
    from ..data.manifest import REJECT_REASONS
    from ..data.prepare import prepare_dataset

    console = _Console()
    try:
        settings = settings_from_args(args)
        summary = prepare_dataset(args.srcs, args.output, settings, report=console.report,
                                  progress=console.progress, argv=sys.argv[1:])  # fmt: skip
    except ConfigError as e:  # PrepareError: bad option or input, incompatible dataset, detector/scorer unavailable
        print(f"authface: error: {e}", file=sys.stderr)
        return 2
    rej = summary.rejected
    print(
        f"authface: {summary.photos_found} photo(s): {summary.photos_processed} processed, "
        f"{summary.photos_skipped} already in the dataset; {summary.faces_kept} face(s) kept; rejected: "
        + ", ".join(f"{rej[k]} {k}" for k in REJECT_REASONS)
        + (f"; {len(summary.failed)} failed (each named above)" if summary.failed else ""),
        file=sys.stderr,
    )
    if summary.faces_beyond_max:
        print(f"authface: {summary.faces_beyond_max} face(s) beyond --max-faces left out", file=sys.stderr)
    if summary.captions_missing:
        print(f"authface: {summary.captions_missing} photo(s) with kept faces not in {settings.captions}: caption "
              f"{'from --caption-template' if settings.caption_template else 'null'}", file=sys.stderr)  # fmt: skip
    print(f"authface: dataset, manifest and card in {summary.dataset}", file=sys.stderr)
    return 1 if summary.failed else 0
