"""Training samples from a prepared dataset: HQ face, synthetic LQ, quality score, caption, region boxes.

Each sample's degradation is drawn from ``numpy.random.default_rng([seed, epoch, index])``, so a sample depends
only on (seed, epoch, index): the same on every process, worker count and resume. With ``occlusions`` (training
tasks inpaint and mask-segmenter), a synthetic occlusion (:mod:`authface.data.occlusions`: a face mask placed from
the aligned crop's 5-point template, old-photo damage or painted strokes) is drawn from its own stream
``default_rng([seed, epoch, index, 1])``, put on the HQ face before it is degraded, and its mask returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .. import io
from ..config.base import choices
from ..config.literals import OcclusionKind
from .degradations import DegradationConfig, degrade, resolve_config

#: ``occlusions`` values of :class:`FaceRestorationDataset` (None: no occlusion, no "mask" in the items).
OCCLUSION_CHOICES: tuple[str | None, ...] = (None, *choices(OcclusionKind))


class FaceRestorationDataset(torch.utils.data.Dataset):
    """``records``: validated manifest records (``authface.data.prepare.read_manifest``).

    Item: {"hq", "lq": [-1, 1] RGB (3, R, R); "quality": float in [0, 1]; "caption": str;
    "boxes": (len(regions), 4) region boxes in pixels of the R×R crop; "index": int}; with ``occlusions``
    ("facemask", "damage", "paint", "both" or "all") also "mask": float32 (1, R, R) in {0, 1}, 1 = occluded in "lq"
    (all zeros for the ``1 - occlusion_prob`` faces left whole), where "lq" is the occluded face, then degraded, and "hq" the clean
    face.
    """

    def __init__(
        self,
        records: Sequence[dict],
        resolution: int = 512,
        degradation: DegradationConfig | str = "gfpgan",
        seed: int = 0,
        regions: Sequence[str] = ("left_eye", "right_eye", "mouth"),
        default_caption: str = "",
        occlusions: str | None = None,
        occlusion_prob: float = 1.0,
    ):
        if not records:
            raise ValueError("the dataset has no faces; run `authface prepare PHOTOS -o DATASET` first")
        self.records = list(records)
        self.resolution = resolution
        self.degradation = resolve_config(degradation)
        self.seed, self.epoch = seed, 0
        self.regions = tuple(regions)
        self.default_caption = default_caption
        if occlusions not in OCCLUSION_CHOICES:
            raise ValueError(
                f"occlusions must be None, facemask, damage, paint, both or all, got {occlusions!r}"
            )
        self.occlusions, self.occlusion_prob = occlusions, float(occlusion_prob)
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
        occluded, mask = self.occlude(hq, index)
        lq, _ = degrade(occluded, rng, self.degradation)
        scale = self.resolution / float(rec.get("crop_size", hq.shape[0]))
        boxes = torch.tensor([[v * scale for v in rec["regions"][n]] for n in self.regions], dtype=torch.float32)
        item = {
            "hq": io.numpy_to_tensor(hq)[0],
            "lq": io.numpy_to_tensor(lq)[0],
            "quality": float(rec.get("quality_score", 0.5)),
            "caption": rec.get("caption") or self.default_caption,
            "boxes": boxes,
            "index": index,
        }
        if mask is not None:
            item["mask"] = torch.from_numpy((mask > 127).astype(np.float32))[None]
        return item

    def occlude(self, hq: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(the face with this sample's occlusion, its uint8 (R, R) mask in {0, 255}); ``(hq, None)`` without
        ``occlusions``; an all-zero mask for a face drawn to stay whole."""
        if self.occlusions is None:
            return hq, None
        from ..face import face_template
        from .occlusions import damage_photo, occlude_face, paint_strokes

        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        if rng.random() >= self.occlusion_prob:
            return hq, np.zeros(hq.shape[:2], np.uint8)
        kind = self.occlusions
        if kind == "both":
            kind = "facemask" if rng.random() < 0.5 else "damage"
        elif kind == "all":
            kind = ("facemask", "damage", "paint")[int(rng.integers(3))]
        if kind == "facemask":
            occluded, mask, _ = occlude_face(hq, face_template(hq.shape[0]), rng)
        elif kind == "paint":
            occluded, mask, _ = paint_strokes(hq, rng)
        else:
            occluded, mask, _ = damage_photo(hq, rng)
        return occluded, mask


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
