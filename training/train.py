"""Fine-tune a face restorer. Glue only: arguments in authface.cli.train, the logic in authface.training.

    accelerate launch training/train.py --config configs/train/sd15.yaml --data DATASET
    accelerate launch --config_file configs/accelerate/multigpu.yaml training/train.py --config ... --data DATASET
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 training/train.py --config configs/train/tiny.yaml --data DATASET
    python training/train.py --config configs/train/tiny.yaml --data DATASET --set optim.max_steps=20
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from authface.cli.train import PROG, add_arguments, run

    parser = argparse.ArgumentParser(prog=PROG, description="Fine-tune a diffusion face restorer (LoRA + ControlNet).")
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"{PROG}: %(levelname)s: %(message)s")  # fmt: skip
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
