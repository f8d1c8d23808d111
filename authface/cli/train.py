"""``authface train``: fine-tune LoRA + ControlNet (+ quality prior) in one process.

``training/train.py`` (for ``accelerate launch`` and ``torchrun``) parses the same arguments with
:func:`add_arguments` and runs :func:`run`. Exit codes: 0 success, 2 config, data or model errors.
"""

from __future__ import annotations

import argparse
import os
import sys

PROG = "authface-train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags (shorthands for config keys; ``--set KEY=VALUE`` reaches every key)."""
    parser.add_argument("--config", help="YAML training config (configs/train/*.yaml)")
    parser.add_argument("--data", help="dataset folder from `authface prepare` (data.dataset)")
    parser.add_argument("--output", help="output/model folder (output.output_dir)")
    parser.add_argument("--resume_from_checkpoint", "--resume-from-checkpoint", dest="resume",
                        help="'latest' or a checkpoint-N folder")  # fmt: skip
    parser.add_argument("--max_steps", "--max-steps", dest="max_steps", type=int)
    parser.add_argument("--task", choices=("restore", "inpaint", "mask-segmenter"),
                        help="restore (default): the restorer; inpaint: the restorer with a mask channel, trained on "
                             "synthetic occlusions with the losses inside them; mask-segmenter: the U-Net that "
                             "finds face masks, damage and painted regions for `authface restore --mask auto` (task)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set optim.learning_rate=5e-5 (repeatable)")  # fmt: skip


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``authface train`` (``func=run``)."""
    p = subparsers.add_parser(
        "train", help="fine-tune a face restorer (one process; use accelerate launch training/train.py for more)",
        description="Fine-tune LoRA + ControlNet (+ quality prior) on a dataset from `authface prepare`.",
    )  # fmt: skip
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The ``key=value`` overrides the flags stand for, then every ``--set``, in that order."""
    flags = [("data.dataset", args.data), ("output.output_dir", args.output),
             ("output.resume_from_checkpoint", args.resume), ("optim.max_steps", args.max_steps),
             ("task", args.task)]  # fmt: skip
    return [f"{key}={value}" for key, value in flags if value] + list(args.overrides)


def run(args: argparse.Namespace) -> int:
    """Resolve the config from the arguments and train; 0 on success, 2 for config, data or model errors."""
    from ..config import ConfigError, TrainConfig, load_config
    from ..data import ManifestError
    from ..models.loading import ModelNotFoundError
    from ..training import TrainingDataError, train
    from ..training.checkpoints import CheckpointMismatchError

    try:
        cfg = load_config(TrainConfig, args.config, overrides_from_args(args))
    except ConfigError as e:
        print(f"{PROG}: config error: {e}", file=sys.stderr)
        return 2
    try:
        out = train(cfg, progress=_TrainProgress())
    except (ManifestError, TrainingDataError, FileNotFoundError, ModelNotFoundError, CheckpointMismatchError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # one line, from the main process of a multi-process launch
        if cfg.task == "mask-segmenter":
            print(f"{PROG}: mask segmenter written to {out / 'mask_segmenter'} (use it: authface restore --mask auto "
                  f"--mask-model {out}, or copy it into a model folder)", file=sys.stderr)  # fmt: skip
        else:
            print(f"{PROG}: model folder written to {out}", file=sys.stderr)
    return 0


class _TrainProgress:
    """Training progress on the console: a bar (step, loss, learning rate, ETA) on a terminal, a periodic line
    otherwise, and which checkpoint a run resumed from."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event: dict) -> None:
        from .progress import Progress

        kind = event["event"]
        if kind == "start":
            if event["resumed_from"]:
                print(f"{PROG}: resumed from {event['resumed_from']} at step {event['step']}", file=sys.stderr)
            self.bar = Progress(event["max_steps"], "training", unit="step", initial=event["step"])
        elif kind == "step" and self.bar is not None:
            self.bar.set_postfix(loss=event["loss"], lr=event["lr"])
            self.bar.update(1)
        elif kind == "end" and self.bar is not None:
            self.bar.close()
