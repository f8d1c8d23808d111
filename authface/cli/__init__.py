"""The command line: ``authface <command> ...``. The only layer that parses arguments or prints.

Each subcommand lives in its own module with ``add_parser(subparsers)`` (which sets ``func``) and returns an exit
code: 0 success, 1 when any input failed (after a summary), 2 for usage and config errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__

logger = logging.getLogger("authface")

#: Subcommand modules, in the order ``authface --help`` lists them.
COMMANDS = ("restore", "prepare", "train", "degrade", "eval", "train-scorer", "optimize", "demo")
#: Modules whose name differs from their command.
_MODULES = {"eval": "evaluate"}


def build_parser() -> argparse.ArgumentParser:
    """The ``authface`` parser with every subcommand registered."""
    import importlib

    parser = argparse.ArgumentParser(prog="authface", description="Diffusion-based face restoration.")
    parser.add_argument("--version", action="version", version=f"authface {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module("." + _MODULES.get(name, name.replace("-", "_")), __name__)
        module.add_parser(sub)
    return parser


def _quiet_libraries() -> None:
    """Libraries' own progress bars and info chatter would drown the per-photo lines."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    import diffusers
    import transformers

    # libraries' deprecation and defaults chatter (accelerate's defaults, repeated dtype notes): shown with -v
    for module in ("diffusers", "transformers", "accelerate", "huggingface_hub", "peft", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``authface`` console script; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(argv) if argv is not None else sys.argv[1:]  # for commands that re-launch themselves
        level = logging.WARNING - 10 * min(args.verbose, 2)
        logging.basicConfig(level=level, format="authface: %(levelname)s: %(message)s")
        if args.verbose < 1 and args.command in ("restore", "train", "optimize", "train-scorer", "demo"):
            _quiet_libraries()
        return args.func(args)
    except KeyboardInterrupt:  # commands that can resume say so themselves; this is the catch-all
        print("\nauthface: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
