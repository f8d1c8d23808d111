"""Training checkpoints: ``OUTPUT/checkpoint-<step>/`` folders written by ``accelerator.save_state``.

A checkpoint holds the trained models, optimiser, LR scheduler, EMA (when on) and one RNG state per process.
Resuming restores them and skips, in the epoch where the run stopped, the batches already trained on: the data
order depends only on (seed, epoch), so a resumed run follows the uninterrupted run's trajectory.

**Only complete checkpoints count.** The main process writes :data:`COMPLETE_MARKER` into the folder LAST, after
every process has finished ``save_state``; a folder without it (a run killed while saving) is not a checkpoint:
``latest`` never picks it and ``checkpoints_total_limit`` never counts it (so it never makes a real checkpoint be
pruned). Such folders, and names that only look like checkpoints (``checkpoint-final/``,
``checkpoint-100.safetensors``), are skipped with one warning each. (A checkpoint written before the marker existed is skipped
too; if it is complete, ``echo {} > checkpoint-N/authface_checkpoint.json`` makes it count.)
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import io

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
LATEST = "latest"
"""The ``output.resume_from_checkpoint`` value that picks the newest checkpoint of the output folder."""
COMPLETE_MARKER = "authface_checkpoint.json"
"""Written last into a checkpoint folder (``{"step": N, "time": unix seconds}``): the folder is complete."""

_warned: set[str] = set()  # paths already warned about (one warning each per process)


def checkpoint_step(path: str | Path) -> int:
    """The optimiser step a ``checkpoint-<step>`` folder was saved at.

    Raises:
        ValueError: the folder name does not end in ``-<step>``.
    """
    tail = Path(path).name.rsplit("-", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"{path}: not a checkpoint folder (expected a name like {PREFIX}500)")
    return int(tail)


def is_complete(path: str | Path) -> bool:
    """Whether the folder ``path`` holds a complete checkpoint (see the module docstring)."""
    return (Path(path) / COMPLETE_MARKER).is_file()


def _skip(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        logger.warning("skipping %s: %s", path, why)


def list_checkpoints(out: str | Path) -> list[Path]:
    """The complete ``checkpoint-<step>`` folders of ``out``, oldest (lowest step) first.

    Everything else named ``checkpoint-*`` (files, other names, folders without the completion marker) is left
    alone and logged once per path as a warning.
    """
    found = []
    for p in Path(out).glob(f"{PREFIX}*"):
        if not (p.is_dir() and p.name[len(PREFIX) :].isdigit()):
            _skip(p, f"not a checkpoint (expected a folder named {PREFIX}<step>)")
        elif not is_complete(p):
            _skip(p, f"incomplete checkpoint (no {COMPLETE_MARKER}: the run stopped while saving it)")
        else:
            found.append(p)
    return sorted(found, key=checkpoint_step)


def prune_checkpoints(out: str | Path, limit: int | None) -> None:
    """Delete the oldest complete checkpoints so that, with the one about to be saved, at most ``limit`` remain.

    ``limit`` None or 0 keeps every checkpoint. Incomplete folders and stray names neither count nor are deleted.
    """
    if not limit:
        return
    existing = list_checkpoints(out)
    for old in existing[: max(0, len(existing) - limit + 1)]:
        logger.info("removing old checkpoint %s (output.checkpoints_total_limit=%d)", old, limit)
        shutil.rmtree(old)


def resolve_checkpoint(out: str | Path, ref: str) -> Path | None:
    """The checkpoint folder named by ``ref``: ``"latest"`` (the newest complete one; None when ``out`` has none)
    or a folder path.

    Raises:
        FileNotFoundError: ``ref`` is a path that is not a folder, or a folder without the completion marker.
    """
    if ref == LATEST:
        found = list_checkpoints(out)
        return found[-1] if found else None
    path = Path(ref)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist (use '{LATEST}' or a {PREFIX}N folder)")
    if not is_complete(path):
        raise FileNotFoundError(f"checkpoint {path} is incomplete (no {COMPLETE_MARKER}: the run stopped while "
                                f"saving it); resume from another one or from '{LATEST}'")  # fmt: skip
    return path


@dataclass(frozen=True)
class ResumePoint:
    """Where a (resumed) run starts: optimiser step, epoch, and batches of that epoch already trained on."""

    global_step: int = 0
    first_epoch: int = 0
    skip_batches: int = 0
    path: str | None = None
    """The checkpoint folder resumed from (None for a fresh start)."""

    @classmethod
    def at(cls, step: int, steps_per_epoch: int, gradient_accumulation_steps: int) -> ResumePoint:
        """The point after ``step`` optimiser steps of ``steps_per_epoch`` each."""
        skip = (step % steps_per_epoch) * gradient_accumulation_steps
        return cls(step, step // steps_per_epoch, skip)


class CheckpointMismatchError(ValueError):
    """A checkpoint of another training task than the run resuming from it (e.g. an inpainter's checkpoint for a
    mask-segmenter run): its state cannot be loaded; the message names both and the fix."""


def save_checkpoint(
    accelerator, out: str | Path, step: int, total_limit: int | None, task: str | None = None
) -> Path:
    """Save the training state of every process to ``out/checkpoint-<step>`` (pruning old ones first), then,
    once every process is done, the completion marker (``{"step", "time", "task"}``; ``task``: the training task,
    checked on resume).

    Collective: every process must call it (they wait for each other); only the main process deletes folders and
    writes the marker. A folder of the same step left by an earlier run loses its marker before it is rewritten.
    """
    path = Path(out) / f"{PREFIX}{step}"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        prune_checkpoints(out, total_limit)
        (path / COMPLETE_MARKER).unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        record = {"step": step, "time": time.time(), **({"task": task} if task else {})}
        io.write_json(path / COMPLETE_MARKER, record)
    return path


def save_final_checkpoint(
    accelerator, out: str | Path, step: int, start_step: int, every: int, total_limit: int | None,
    task: str | None = None,
) -> Path | None:
    """After the last optimiser step ``step``: a checkpoint of it unless the periodic ones (``every`` steps)
    already made one or no step was trained since ``start_step``, so that ``--resume-from-checkpoint latest``
    with a larger ``max_steps`` always continues a finished run. Collective, like :func:`save_checkpoint`."""
    if step <= start_step or (every and step % every == 0):
        return None
    return save_checkpoint(accelerator, out, step, total_limit, task)


def load_checkpoint(
    accelerator, out: str | Path, ref: str | None, steps_per_epoch: int, gradient_accumulation_steps: int,
    task: str | None = None,
) -> ResumePoint:
    """Restore the state saved in the checkpoint ``ref`` (see :func:`resolve_checkpoint`); where to start.

    ``ref`` None, or ``"latest"`` with no checkpoint in ``out`` (logged), starts fresh at step 0.

    Raises:
        FileNotFoundError: ``ref`` is a path that is not a folder.
        CheckpointMismatchError: the checkpoint's marker names another ``task`` than this run's.
    """
    if not ref:
        return ResumePoint()
    path = resolve_checkpoint(out, ref)
    if path is None:
        logger.warning("resume_from_checkpoint=%s: no checkpoint in %s; starting fresh", LATEST, out)
        return ResumePoint()
    saved = _marker_task(path)
    if task and saved and saved != task:
        raise CheckpointMismatchError(
            f"{path} was written by training task {saved!r}, not {task!r}: resume it with --task {saved}, or train "
            f"task {task!r} into another --output folder"
        )
    accelerator.load_state(str(path))
    point = ResumePoint.at(checkpoint_step(path), steps_per_epoch, gradient_accumulation_steps)
    logger.info("resumed from %s at step %d", path, point.global_step)
    return dataclasses.replace(point, path=str(path))


def _marker_task(path: Path) -> str | None:
    """The training task recorded in the checkpoint's completion marker (None: not recorded, older markers)."""
    import json

    try:
        return json.loads((Path(path) / COMPLETE_MARKER).read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return None

