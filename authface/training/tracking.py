"""What a run records: every optimiser step's losses in ``OUTPUT/train_log.jsonl`` and, when asked, an
accelerate tracker (TensorBoard or wandb).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import io

logger = logging.getLogger(__name__)

TRAIN_LOG = "train_log.jsonl"
"""One JSON record per optimiser step: ``step``, ``epoch``, ``loss``, ``diffusion_loss``, ``lr`` and the parts."""


def tracker_name(log_with: str, out: Path) -> str | None:
    """The accelerate ``log_with`` value for ``output.log_with``: None for ``"none"``, and for ``"tensorboard"``
    when TensorBoard is not installed (logged: the run then writes ``train_log.jsonl`` only)."""
    if log_with == "none":
        return None
    if log_with == "tensorboard":
        from accelerate.utils import is_tensorboard_available

        if not is_tensorboard_available():
            logger.warning("tensorboard is not installed: logging to %s/%s only", out, TRAIN_LOG)
            return None
    return log_with


def flat_config(d: dict, prefix: str = "") -> dict:
    """A nested config dict as ``{"a.b": value}`` with scalar values (others as ``str``), for trackers."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def log_step(
    accelerator, out: Path, tracker: str | None, step: int, epoch: int, logs: dict[str, float]
) -> None:
    """Record one optimiser step: to the tracker (every process calls it) and, on the main process only, as one
    line of ``out/train_log.jsonl``."""
    if tracker:
        accelerator.log(logs, step=step)
    if accelerator.is_main_process:
        io.append_jsonl(Path(out) / TRAIN_LOG, [{"step": step, "epoch": epoch, **logs}])


def read_losses(log_path: str | Path) -> list[float]:
    """The ``loss`` of every step recorded in a ``train_log.jsonl``, in order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not a JSON record with a ``loss`` (named by ``path:line``).
    """
    losses = []
    for line in io.read_jsonl(log_path, missing_ok=False):
        if line.record is None or "loss" not in line.record:
            raise ValueError(f"{line.where}: {line.error or 'no loss in this record'}")
        losses.append(float(line.record["loss"]))
    return losses


def loss_trend(log_path: str | Path, window: int = 5) -> tuple[float, float]:
    """(mean loss of the first ``window`` logged steps, mean of the last ``window``) from a ``train_log.jsonl``."""
    losses = read_losses(log_path)
    return float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
