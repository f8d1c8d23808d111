"""Fine-tune a face restorer. Glue only: the logic lives in authface.training.

    accelerate launch training/train.py --config configs/train/sd15.yaml --data DATASET
    accelerate launch --cpu --num_processes 2 training/train.py --config configs/train/tiny.yaml --data DATASET
    python training/train.py --config configs/train/tiny.yaml --data DATASET --set optim.max_steps=20
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from authface.config import ConfigError, TrainConfig, load_config

    parser = argparse.ArgumentParser(description="Fine-tune a diffusion face restorer (LoRA + ControlNet).")
    parser.add_argument("--config", help="YAML training config (configs/train/*.yaml)")
    parser.add_argument("--data", help="dataset folder from `authface prepare` (data.dataset)")
    parser.add_argument("--output", help="output/model folder (output.output_dir)")
    parser.add_argument("--resume_from_checkpoint", "--resume-from-checkpoint", dest="resume",
                        help="'latest' or a checkpoint-N folder")  # fmt: skip
    parser.add_argument("--max_steps", "--max-steps", dest="max_steps", type=int)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="authface-train: %(levelname)s: %(message)s")  # fmt: skip
    overrides = []
    if args.data:
        overrides.append(f"data.dataset={args.data}")
    if args.output:
        overrides.append(f"output.output_dir={args.output}")
    if args.resume:
        overrides.append(f"output.resume_from_checkpoint={args.resume}")
    if args.max_steps:
        overrides.append(f"optim.max_steps={args.max_steps}")
    try:
        cfg = load_config(TrainConfig, args.config, overrides + args.overrides)
    except ConfigError as e:
        print(f"authface-train: config error: {e}", file=sys.stderr)
        return 2
    from authface.data.prepare import ManifestError
    from authface.training import TrainingDataError, train

    try:
        out = train(cfg)
    except (ManifestError, TrainingDataError, FileNotFoundError) as e:
        print(f"authface-train: error: {e}", file=sys.stderr)
        return 2
    import os

    if os.environ.get("RANK", "0") == "0":
        print(f"authface-train: model folder written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
