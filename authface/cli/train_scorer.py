"""``authface train-scorer RATINGS.csv -o DIR``: a regressor (face image -> score) on frozen face features.

The library side is :mod:`authface.optimize.scorer` (and :mod:`authface.optimize.ratings` for the CSV). Exit
codes: 0 success, 2 for usage errors (bad flags, a malformed ratings file — every bad line named —, a missing
backbone file).
"""

from __future__ import annotations

import argparse
import sys

from .progress import Progress

PROG = "authface train-scorer"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``authface train-scorer`` (``func=run``)."""
    p = subparsers.add_parser(
        "train-scorer", help="train an image scorer (face -> rating) on a CSV of rated face crops",
        description=(
            "Train a small regression head on frozen face features from a CSV of image paths and ratings "
            "(columns image/path/file and rating/score/mos, or one column per rater, averaged; paths relative "
            "to the CSV). Writes DIR/scorer.safetensors and DIR/scorer.json (with validation PLCC, SRCC, RMSE). "
            "Use it with `authface optimize --scorer DIR` or as a ScoreGuidance objective."
        ),
    )  # fmt: skip
    p.add_argument("ratings", metavar="RATINGS.csv", help="CSV of aligned face crops and their ratings")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="scorer folder (created)")
    p.add_argument("--backbone", default=None,
                   help="dlib-resnet+pixels (default) | dlib-resnet | pixels | arcface:PATH | arcface-onnx:PATH | "
                        "torchscript:PATH; join several with +")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping; default 300)")
    p.add_argument("--val-fraction", type=float, default=None, help="validation share (default 0.2)")
    p.add_argument("--seed", type=int, default=None, help="split and initialisation seed (default 0)")
    p.add_argument("--input-size", type=int, default=None, help="images are resized to this (default 256)")
    p.add_argument("--hidden", type=int, default=None, help="hidden units of the head, 0 = linear (default 64)")
    p.add_argument("--device", default=None, help="cpu (default) | cuda | cuda:N | mps")
    p.add_argument("--rater-columns", default=None, metavar="A,B,...",
                   help="average these per-rater columns (default: the rating column, else all other columns)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any ScorerSettings key, e.g. --set learning_rate=1e-3 (repeatable)")  # fmt: skip
    p.set_defaults(func=run)
    return p


def _overrides(args: argparse.Namespace) -> list[str]:
    flags = {"backbone": args.backbone, "epochs": args.epochs, "val_fraction": args.val_fraction,
             "seed": args.seed, "input_size": args.input_size, "hidden": args.hidden, "device": args.device}  # fmt: skip
    return [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides)


class _Bars:
    """Progress of feature extraction (images) then training (epochs)."""

    def __init__(self):
        self.bars: dict[str, Progress] = {}

    def __call__(self, stage: str, done: int, total: int, values: dict) -> None:
        if stage not in self.bars:
            for bar in self.bars.values():
                bar.close()
            desc, unit = ("features", "image") if stage == "features" else ("training", "epoch")
            self.bars[stage] = Progress(total, desc, unit=unit, interval=10.0)
        bar = self.bars[stage]
        if values:
            bar.set_postfix(**values)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def run(args: argparse.Namespace) -> int:
    """Read the ratings, train, print the validation metrics; returns the exit code."""
    from ..config import ConfigError, load_config
    from ..optimize.ratings import RatingsError, read_ratings
    from ..optimize.scorer import ScorerSettings, train_scorer

    try:
        settings = load_config(ScorerSettings, None, _overrides(args))
        columns = [c for c in args.rater_columns.split(",") if c.strip()] if args.rater_columns else None
        rows = read_ratings(args.ratings, rater_columns=columns)
    except (ConfigError, RatingsError, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{PROG}: {len(rows)} rated images from {args.ratings}; backbone {settings.backbone}", file=sys.stderr)
    bars = _Bars()
    try:
        result = train_scorer(rows, args.output, settings, callback=bars, source=str(args.ratings))
    except (ValueError, FileNotFoundError, ImportError, OSError) as exc:
        bars.close()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    bars.close()
    m = result.metrics
    print(f"{PROG}: validation ({m['n_val']} images, best epoch {m['best_epoch']}): PLCC {m['plcc']:.3f}, "
          f"SRCC {m['srcc']:.3f}, RMSE {m['rmse']:.4g}; scorer written to {result.folder}", file=sys.stderr)  # fmt: skip
    return 0
