"""Training checkpoints: ``OUTPUT/checkpoint-<step>/`` folders written by ``accelerator.save_state``.

A checkpoint holds the trained models, optimiser, LR scheduler, EMA (when on) and one RNG state per process.
Resuming restores them and skips, in the epoch where the run stopped, the batches already trained on: the data
order depends only on (seed, epoch), so a resumed run follows the uninterrupted run's trajectory.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
LATEST = "latest"
"""The ``output.resume_from_checkpoint`` value that picks the newest checkpoint of the output folder."""


def checkpoint_step(path: str | Path) -> int:
    """The optimiser step a ``checkpoint-<step>`` folder was saved at.

    Raises:
        ValueError: the folder name does not end in ``-<step>``.
    """
    tail = Path(path).name.rsplit("-", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"{path}: not a checkpoint folder (expected a name like {PREFIX}500)")
    return int(tail)


def list_checkpoints(out: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of ``out``, oldest (lowest step) first."""
    found = [p for p in Path(out).glob(f"{PREFIX}*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    return sorted(found, key=checkpoint_step)


def prune_checkpoints(out: str | Path, limit: int | None) -> None:
    """Delete the oldest checkpoints so that, with the one about to be saved, at most ``limit`` remain.

    ``limit`` None or 0 keeps every checkpoint.
    """
    if not limit:
        return
    existing = list_checkpoints(out)
    for old in existing[: max(0, len(existing) - limit + 1)]:
        logger.info("removing old checkpoint %s (output.checkpoints_total_limit=%d)", old, limit)
        shutil.rmtree(old)


def resolve_checkpoint(out: str | Path, ref: str) -> Path | None:
    """The checkpoint folder named by ``ref``: ``"latest"`` (None when ``out`` has none) or a folder path.

    Raises:
        FileNotFoundError: ``ref`` is a path that is not a folder.
    """
    if ref == LATEST:
        found = list_checkpoints(out)
        return found[-1] if found else None
    path = Path(ref)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist (use '{LATEST}' or a {PREFIX}N folder)")
    return path


@dataclass(frozen=True)
class ResumePoint:
    """Where a (resumed) run starts: optimiser step, epoch, and batches of that epoch already trained on."""

    global_step: int = 0
    first_epoch: int = 0
    skip_batches: int = 0

    @classmethod
    def at(cls, step: int, steps_per_epoch: int, gradient_accumulation_steps: int) -> ResumePoint:
        """The point after ``step`` optimiser steps of ``steps_per_epoch`` each."""
        skip = (step % steps_per_epoch) * gradient_accumulation_steps
        return cls(step, step // steps_per_epoch, skip)


def save_checkpoint(accelerator, out: str | Path, step: int, total_limit: int | None) -> Path:
    """Save the training state of every process to ``out/checkpoint-<step>`` (pruning old ones first).

    Collective: every process must call it (they wait for each other); only the main process deletes folders.
    """
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        prune_checkpoints(out, total_limit)
    path = Path(out) / f"{PREFIX}{step}"
    accelerator.save_state(str(path))
    return path


def load_checkpoint(
    accelerator, out: str | Path, ref: str | None, steps_per_epoch: int, gradient_accumulation_steps: int
) -> ResumePoint:
    """Restore the state saved in the checkpoint ``ref`` (see :func:`resolve_checkpoint`); where to start.

    ``ref`` None, or ``"latest"`` with no checkpoint in ``out`` (logged), starts fresh at step 0.

    Raises:
        FileNotFoundError: ``ref`` is a path that is not a folder.
    """
    if not ref:
        return ResumePoint()
    path = resolve_checkpoint(out, ref)
    if path is None:
        logger.warning("resume_from_checkpoint=%s: no checkpoint in %s; starting fresh", LATEST, out)
        return ResumePoint()
    accelerator.load_state(str(path))
    point = ResumePoint.at(checkpoint_step(path), steps_per_epoch, gradient_accumulation_steps)
    logger.info("resumed from %s at step %d", path, point.global_step)
    return point
