"""The training data: a validated manifest, the on-the-fly degraded pairs and a deterministic loader."""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def make_training_data(data: TrainDataConfig, regions: list[str], batch_size: int, seed: int) -> TrainingData:
    """Read and check the dataset folder ``data.dataset`` and build the loader of (HQ, LQ, boxes, caption) batches.

    The sample order depends only on (``seed``, epoch) through :class:`authface.data.dataset.EpochSampler`, and the
    loader has its own generator, so starting an epoch never draws the global RNG: a resumed run sees the same
    batches as an uninterrupted one. A final incomplete batch is dropped unless the dataset is smaller than a batch.

    Raises:
        TrainingDataError: no dataset given, or (``data.validate_images``) some images cannot be decoded.
        authface.data.ManifestError: bad manifest records, every one named by ``file:line``.
    """
    from ..data import read_manifest
    from ..data.dataset import EpochSampler, FaceRestorationDataset, validate_images

    if not data.dataset:
        raise TrainingDataError("no dataset: pass --data DATASET (a folder written by `authface prepare`)")
    records = read_manifest(data.dataset)
    if data.validate_images:
        problems = validate_images(records)
        if problems:
            raise TrainingDataError("unreadable images in the dataset (fix or remove them, then re-run "
                                    "`authface prepare`):\n  " + "\n  ".join(problems))  # fmt: skip
    dataset = FaceRestorationDataset(records, data.resolution, data.degradation, seed, regions, data.prompt)
    sampler = EpochSampler(len(dataset), seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=data.num_workers,
        drop_last=len(dataset) >= batch_size,
        generator=torch.Generator().manual_seed(seed),  # its own: starting an epoch never draws global RNG
    )  # fmt: skip
    return TrainingData(dataset, sampler, loader)
