"""Training samples from a prepared dataset: HQ face, synthetic LQ, quality score, caption, region boxes.

Each sample's degradation is drawn from ``numpy.random.default_rng([seed, epoch, index])``, so a sample depends
only on (seed, epoch, index): the same on every process, worker count and resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .. import io
from .degradations import DegradationConfig, degrade, resolve_config


class FaceRestorationDataset(torch.utils.data.Dataset):
    """``records``: validated manifest records (``authface.data.prepare.read_manifest``).

    Item: {"hq", "lq": [-1, 1] RGB (3, R, R); "quality": float in [0, 1]; "caption": str;
    "boxes": (len(regions), 4) region boxes in pixels of the R×R crop; "index": int}.
    """

    def __init__(
        self,
        records: Sequence[dict],
        resolution: int = 512,
        degradation: DegradationConfig | str = "gfpgan",
        seed: int = 0,
        regions: Sequence[str] = ("left_eye", "right_eye", "mouth"),
        default_caption: str = "",
    ):
        if not records:
            raise ValueError("the dataset has no faces; run `authface prepare PHOTOS -o DATASET` first")
        self.records = list(records)
        self.resolution = resolution
        self.degradation = resolve_config(degradation)
        self.seed, self.epoch = seed, 0
        self.regions = tuple(regions)
        self.default_caption = default_caption
        missing = [r for r in self.records for n in self.regions if n not in r.get("regions", {})]
        if missing:
            raise ValueError(f"{missing[0].get('file')}: manifest record lacks region boxes for {self.regions}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def load_hq(self, index: int) -> np.ndarray:
        """uint8 RGB (R, R, 3) HQ crop at the training resolution."""
        rec = self.records[index]
        rgb = io.read_image(rec["path"]).rgb
        if rgb.shape[:2] != (self.resolution, self.resolution):
            interp = cv2.INTER_AREA if rgb.shape[0] > self.resolution else cv2.INTER_CUBIC
            rgb = cv2.resize(rgb, (self.resolution, self.resolution), interpolation=interp)
        return rgb

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        hq = self.load_hq(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        lq, _ = degrade(hq, rng, self.degradation)
        scale = self.resolution / float(rec.get("crop_size", hq.shape[0]))
        boxes = torch.tensor([[v * scale for v in rec["regions"][n]] for n in self.regions], dtype=torch.float32)
        return {
            "hq": io.numpy_to_tensor(hq)[0],
            "lq": io.numpy_to_tensor(lq)[0],
            "quality": float(rec.get("quality_score", 0.5)),
            "caption": rec.get("caption") or self.default_caption,
            "boxes": boxes,
            "index": index,
        }


class EpochSampler(torch.utils.data.Sampler):
    """Shuffles with a permutation that depends only on (seed, epoch), never on RNG state, so a run resumed from
    a checkpoint sees exactly the order an uninterrupted run would. Call :meth:`set_epoch` every epoch."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())
