#!/usr/bin/env python
"""The mask segmenter (``--mask auto``) trained and scored on real faces: IoU on held-out synthetic occlusions and
on real masked faces with their masks, against two trivial detectors run on the same images.

    python benchmarks/bench_segmenter.py ../shared/faces --steps 1500 --resolution 128
    python benchmarks/bench_segmenter.py ../shared/faces --steps 0 --segmenter OUT   # score a trained segmenter

FACES is the evaluation material folder (its README): ``hq/alae`` and ``hq/celeba_hq`` (clean aligned faces) are
prepared with ``authface prepare`` into ``WORK/ds`` and the segmenter is trained there with
``authface.training.train`` (``configs/train/mask_segmenter.yaml`` with ``--steps``, ``--resolution``,
``--batch-size``, ``--occlusions``: data.occlusions, default all). It is then scored on

- ``hq/ffhq`` (faces never trained on) as training samples are made (the dataset code at seed 1234: a synthetic
  occlusion, then the gfpgan degradation; ``--eval-repeats`` draws per face, every face occluded), one set per
  kind: face masks, old-photo damage, painted strokes;
- ``masked/pgdiff`` (real photos whose region given by ``masks/`` is painted white with a brush).

Rows: the segmenter (threshold 0.5, with the restore-time clean-up; ``--baseline DIR`` adds another trained
segmenter's row, e.g. one trained with ``--occlusions both``), "near-white pixels" (every pixel with all channels
>= 245: the right answer for painted-white holes, wrong for face masks) and "nothing" (IoU 0 by definition,
printed as the floor). IoU is computed over all pixels of the set (sum of intersections / sum of
unions); also precision and recall. The segmenter's masks include the restore-time clean-up (a 2 px dilation),
which costs some precision against exact masks. Nothing is downloaded; FACES is never written to.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def train_segmenter_on(faces: Path, work: Path, args) -> Path:
    """Prepare hq/alae + hq/celeba_hq and train; returns the output folder (holding mask_segmenter/)."""
    from authface.config import TrainConfig, load_config
    from authface.data.prepare import PrepareSettings, prepare_dataset
    from authface.training import train

    ds = work / "ds"
    if not (ds / "manifest.jsonl").is_file():
        prepare_dataset([str(faces / "hq" / "alae"), str(faces / "hq" / "celeba_hq")], ds,
                        PrepareSettings(crop_size=args.resolution, min_face_size=64, dedupe_threshold=-1))  # fmt: skip
    cfg = load_config(TrainConfig, ROOT / "configs" / "train" / "mask_segmenter.yaml", [
        f"data.dataset={ds}", f"output.output_dir={work / 'seg'}", f"data.resolution={args.resolution}",
        f"optim.max_steps={args.steps}", f"optim.batch_size={args.batch_size}", "output.validation_steps=0",
        "output.log_with=none", f"output.checkpointing_steps={max(args.steps, 1)}",
        f"data.occlusions={args.occlusions}",
    ])  # fmt: skip
    return train(cfg)


def synthetic_pairs(faces: Path, size: int, repeats: int, kind: str):
    """(occluded then degraded uint8 (N, S, S, 3), bool masks (N, S, S)) on hq/ffhq: the training dataset's
    samples (occlusions ``kind``, degradation gfpgan, as the segmenter's config trains), every face occluded."""
    import numpy as np

    from authface import io
    from authface.data.dataset import FaceRestorationDataset

    crops, masks = [], []
    files = _images(faces / "hq" / "ffhq")
    ds = FaceRestorationDataset([{"path": str(f), "regions": {}} for f in files], size, "gfpgan", seed=1234,
                                regions=(), occlusions=kind, occlusion_prob=1.0)  # fmt: skip
    for epoch in range(repeats):
        ds.set_epoch(epoch)
        for i in range(len(files)):
            item = ds[i]
            crops.append(io.tensor_to_numpy(item["lq"][None])[0])
            masks.append(item["mask"][0].numpy() > 0.5)
    return np.stack(crops), np.stack(masks)


def real_pairs(faces: Path, size: int):
    import numpy as np

    from authface.imaging import resize
    from authface.io import read_image
    from authface.io.mask import read_mask

    root = faces / "masked" / "pgdiff"
    crops, masks = [], []
    for img in _images(root / "images"):
        rgb = read_image(img).rgb
        mask, _ = read_mask(next((root / "masks").glob(img.stem + ".*")), rgb.shape[:2])
        crops.append(resize(rgb, size=(size, size), mode="area"))
        masks.append(resize(mask.astype(np.uint8) * 255, size=(size, size), mode="area") > 127)
    return np.stack(crops), np.stack(masks)


def scores(pred, truth) -> tuple[float, float, float]:
    inter, union = (pred & truth).sum(), (pred | truth).sum()
    return (inter / max(union, 1), inter / max(pred.sum(), 1), inter / max(truth.sum(), 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--eval-repeats", type=int, default=4)
    ap.add_argument("--occlusions", default="all", help="data.occlusions of the training run (default all)")
    ap.add_argument("--segmenter", type=Path, help="score this trained segmenter folder instead of training one")
    ap.add_argument("--baseline", type=Path, help="also score this trained segmenter folder (a row per set)")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from authface.models.mask_segmenter import load_mask_segmenter, predict_masks

    work = args.work or Path(tempfile.mkdtemp(prefix="authface-bench-seg-"))
    t0 = time.perf_counter()
    seg_dir = args.segmenter or train_segmenter_on(args.faces, work, args)
    train_s = time.perf_counter() - t0
    segmenters = {"AuthFace mask segmenter": load_mask_segmenter(seg_dir, "cpu")}
    if args.baseline:
        segmenters[f"baseline segmenter ({args.baseline})"] = load_mask_segmenter(args.baseline, "cpu")
    sets = {f"held-out synthetic {kind} (hq/ffhq)": synthetic_pairs(args.faces, args.resolution,
                                                                      args.eval_repeats, kind)
            for kind in ("facemask", "damage", "paint")}  # fmt: skip
    sets["real white-painted (masked/pgdiff)"] = real_pairs(args.faces, args.resolution)
    print(f"# mask segmenter: `python benchmarks/bench_segmenter.py {' '.join(argv or sys.argv[1:])}`")
    trained = (f"scored the segmenter in {seg_dir} (not trained here)" if args.segmenter else
               f"trained {args.steps} steps at {args.resolution} px, batch {args.batch_size} in {train_s:.0f} s")  # fmt: skip
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {platform.machine()} {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; {trained} (work: {work})\n")  # fmt: skip
    print("| set | faces | detector | IoU | precision | recall |")
    print("|---|---|---|---|---|---|")
    for name, (crops, truth) in sets.items():
        rows = {label: predict_masks(segmenter, crops) for label, segmenter in segmenters.items()}
        rows |= {
            "near-white pixels (>= 245)": (crops >= 245).all(axis=-1),
            "nothing": np.zeros_like(truth),
        }
        for det, pred in rows.items():
            iou, prec, rec = scores(pred, truth)
            print(f"| {name} | {len(crops)} | {det} | {iou:.3f} | {prec:.3f} | {rec:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
