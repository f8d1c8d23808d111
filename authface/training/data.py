"""The training data: a validated manifest, the on-the-fly degraded pairs and a deterministic loader."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import io
from ..config import TrainDataConfig


class TrainingDataError(ValueError):
    """The dataset cannot be trained on; the message lists every bad file or record."""


@dataclass
class TrainingData:
    """The dataset, its epoch sampler and the loader over them (before ``accelerator.prepare``)."""

    dataset: torch.utils.data.Dataset
    sampler: torch.utils.data.Sampler
    loader: torch.utils.data.DataLoader

    def set_epoch(self, epoch: int, loader=None) -> None:
        """Make the degradations and the order of ``epoch``'s batches (functions of (seed, epoch) only).

        ``loader``: the prepared loader actually iterated; accelerate's loader re-sets the sampler's epoch from
        its own counter, so it is told the epoch too.
        """
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)

    def batches(self, accelerator, loader, start, max_steps: int, accumulation: int):
        """(epoch, batch) of the prepared ``loader`` from the resume point ``start`` (a
        :class:`~.checkpoints.ResumePoint`) to the end of the epoch holding optimiser step ``max_steps``: each epoch
        set first (:meth:`set_epoch`), the batches a resumed epoch already did skipped by index (nothing is loaded
        for them; same order, as it depends on (seed, epoch) only). The caller counts optimiser steps (one per
        ``accumulation`` batches) and stops iterating at ``max_steps``."""
        per_epoch = steps_per_epoch(loader, accumulation)
        skip = start.skip_batches
        for epoch in range(start.first_epoch, math.ceil(max_steps / per_epoch)):
            epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
            self.set_epoch(epoch, epoch_loader)
            for batch in epoch_loader:
                yield epoch, batch
            skip = 0


def steps_per_epoch(loader, accumulation: int) -> int:
    """Optimiser steps per epoch of ``loader`` (at least 1) with ``accumulation`` batches per step."""
    return max(1, math.ceil(len(loader) / accumulation))


def check_images(records: Sequence[dict], decode_first: int = 0) -> list[str]:
    """One line per unreadable image of ``records`` (empty when all are fine), cheaply.

    The first ``decode_first`` records (the validation faces) are decoded in full (:func:`authface.io.read_image`);
    the others are opened by PIL, which parses the header, and ``verify()``-ed, which for PNG (what ``authface
    prepare`` writes) reads every chunk and checks its CRC without decompressing pixels — a truncated or
    corrupted PNG is caught; for JPEG and other formats it checks the header only. A file PIL cannot identify
    is decoded in full (formats only :func:`authface.io.read_image` reads). About 40x cheaper than decoding every
    512 px face (docs/training.md).
    """
    from PIL import Image, UnidentifiedImageError

    problems = []
    for i, rec in enumerate(records):
        name = rec.get("file", Path(rec["path"]).name)
        try:
            if i < decode_first:
                io.read_image(rec["path"])
                continue
            try:
                with Image.open(rec["path"]) as im:
                    im.verify()
            except UnidentifiedImageError:
                io.read_image(rec["path"])
        except io.ImageReadError as err:
            problems.append(f"{name}: {err.reason}")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL: damaged data
            problems.append(f"{name}: {err}")
    return problems


def make_training_data(
    data: TrainDataConfig, regions: list[str], batch_size: int, seed: int, decode_first: int = 0,
    task: str = "restore",
) -> TrainingData:
    """Read and check the dataset folder ``data.dataset`` and build the loader of (HQ, LQ, boxes, caption) batches.

    The sample order depends only on (``seed``, epoch) through :class:`authface.data.dataset.EpochSampler`, and the
    loader has its own generator, so starting an epoch never draws the global RNG: a resumed run sees the same
    batches as an uninterrupted one. A final incomplete batch is dropped unless the dataset is smaller than a batch.
    ``data.validate_images`` checks the images with :func:`check_images` (``decode_first``: how many, from the
    first, to decode in full — the validation faces). ``task`` inpaint / mask-segmenter: the samples carry a
    synthetic occlusion and its ``mask`` (``data.occlusions``, ``data.occlusion_prob``).

    Raises:
        TrainingDataError: no dataset given, or (``data.validate_images``) some images cannot be decoded.
        authface.data.ManifestError: bad manifest records, every one named by ``file:line``.
    """
    from ..data import read_manifest
    from ..data.dataset import EpochSampler, FaceRestorationDataset

    if not data.dataset:
        raise TrainingDataError("no dataset: pass --data DATASET (a folder written by `authface prepare`)")
    records = read_manifest(data.dataset)
    if data.validate_images:
        problems = check_images(records, decode_first)
        if problems:
            raise TrainingDataError("unreadable images in the dataset (fix or remove them, then re-run "
                                    "`authface prepare`):\n  " + "\n  ".join(problems))  # fmt: skip
    occlusions = None if task == "restore" else data.occlusions
    prob = data.occlusion_prob
    if prob is None:  # whole faces: plain restoration for the inpainter, "nothing to find" for the segmenter
        prob = 0.8 if task == "inpaint" else 0.9
    dataset = FaceRestorationDataset(records, data.resolution, data.degradation, seed, regions, data.prompt,
                                     occlusions=occlusions, occlusion_prob=prob)  # fmt: skip
    sampler = EpochSampler(len(dataset), seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=data.num_workers,
        drop_last=len(dataset) >= batch_size,
        generator=torch.Generator().manual_seed(seed),  # its own: starting an epoch never draws global RNG
    )  # fmt: skip
    return TrainingData(dataset, sampler, loader)
