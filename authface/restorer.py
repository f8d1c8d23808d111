"""FaceRestorer: whole photos -> faces -> batched restoration -> paste-back.

The restorer owns the face stage (detect, select, align, paste) and batching across photos; what restores an
aligned crop is a callable, so the same code serves the diffusion pipeline, a test's identity function or any
other restorer:

    restore_crops(crops: list[uint8 RGB (S, S, 3)], seeds: list[int]) -> (list[uint8 RGB (S, S, 3)], list[dict])

The second list holds per-face extras for the manifest (e.g. guidance records).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from .face import (
    BackgroundUpsampler,
    Face,
    FaceDetector,
    LanczosUpsampler,
    align_face,
    aligned_input_affine,
    face_template,
    paste_faces,
    select_faces,
)

RestoreCrops = Callable[[list[np.ndarray], list[int]], tuple[list[np.ndarray], list[dict]]]


def face_seed(seed: int, key: str, index: int) -> int:
    """Seed of one face: depends on the run seed, the photo's key and the face's index, never on batching."""
    digest = hashlib.sha256(f"{seed}:{key}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class PhotoResult:
    """One restored photo: ``image`` uint8 RGB (H*up, W*up, 3); ``alpha`` upscaled alongside (or None)."""

    key: str
    image: np.ndarray
    alpha: np.ndarray | None
    faces: list[dict]
    crops_in: list[np.ndarray] = field(default_factory=list)
    crops_out: list[np.ndarray] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


@dataclass
class _Pending:
    key: str
    rgb: np.ndarray
    alpha: np.ndarray | None
    faces: list[Face]
    crops: list[np.ndarray]
    affines: list[np.ndarray]
    seeds: list[int]
    timings: dict


class FaceRestorer:
    """Detect, align, restore (in batches across photos) and paste back every face of each photo."""

    def __init__(
        self,
        restore_crops: RestoreCrops,
        detector: FaceDetector | None,
        crop_size: int = 512,
        only_center_face: bool = False,
        min_face_size: float = 0.0,
        max_faces: int | None = None,
        aligned: bool = False,
        upscale: int = 1,
        upsampler: BackgroundUpsampler | None = None,
        batch_size: int = 4,
        seed: int = 0,
    ):
        if detector is None and not aligned:
            raise ValueError("a face detector is required unless aligned=True")
        self.restore_crops = restore_crops
        self.detector = detector
        self.crop_size = crop_size
        self.only_center_face, self.min_face_size, self.max_faces = only_center_face, min_face_size, max_faces
        self.aligned = aligned
        self.upscale = int(upscale)
        self.upsampler = upsampler or LanczosUpsampler()
        self.batch_size = batch_size
        self.seed = seed

    # -------------------------------------------------------------- stages
    def prepare(self, key: str, rgb: np.ndarray, alpha: np.ndarray | None = None) -> _Pending:
        """Detect, select and align the faces of one photo (uint8 RGB (H, W, 3))."""
        t0 = time.perf_counter()
        if self.aligned:  # the photo is one aligned face: resize it to the crop, no detection
            affine = aligned_input_affine(rgb.shape, self.crop_size)
            inverse = cv2.invertAffineTransform(affine)
            landmarks = (face_template(self.crop_size) @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)
            h, w = rgb.shape[:2]
            faces = [Face(box=np.array([0, 0, w, h], np.float32), landmarks=landmarks, score=1.0)]
            crops = [cv2.warpAffine(rgb, affine, (self.crop_size, self.crop_size), flags=cv2.INTER_LANCZOS4)]
            affines = [affine]
            t1 = time.perf_counter()
        else:
            faces = self.detector.detect(rgb)
            faces = select_faces(faces, rgb.shape, self.only_center_face, self.min_face_size, self.max_faces)
            t1 = time.perf_counter()
            crops, affines = [], []
            for face in faces:
                crop, affine = align_face(rgb, face.landmarks, self.crop_size)
                crops.append(crop)
                affines.append(affine)
        seeds = [face_seed(self.seed, key, i) for i in range(len(faces))]
        timings = {"detect_s": t1 - t0, "align_s": time.perf_counter() - t1}
        return _Pending(key, rgb, alpha, faces, crops, affines, seeds, timings)

    def finish(self, p: _Pending, restored: list[np.ndarray], extras: list[dict]) -> PhotoResult:
        """Paste the restored crops back over the (upscaled) photo."""
        t0 = time.perf_counter()
        h, w = p.rgb.shape[:2]
        if self.aligned:  # the output is the restored crop itself, at the photo's (upscaled) size
            size = (w * self.upscale, h * self.upscale)
            image = restored[0] if restored[0].shape[1::-1] == size else cv2.resize(
                restored[0], size, interpolation=cv2.INTER_LANCZOS4)  # fmt: skip
        else:
            background = self.upsampler.upscale(p.rgb, self.upscale)
            image = paste_faces(background, restored, p.affines, self.upscale) if restored else background
        alpha = None
        if p.alpha is not None:
            alpha = p.alpha if self.upscale == 1 else cv2.resize(
                p.alpha, (p.alpha.shape[1] * self.upscale, p.alpha.shape[0] * self.upscale),
                interpolation=cv2.INTER_LANCZOS4,
            )  # fmt: skip
        faces = []
        for i, face in enumerate(p.faces):
            rec = {"index": i, **face.to_dict(), "seed": p.seeds[i]}
            if i < len(extras) and extras[i]:
                rec.update(extras[i])
            faces.append(rec)
        timings = dict(p.timings, paste_s=time.perf_counter() - t0)
        return PhotoResult(p.key, image, alpha, faces, p.crops, list(restored), timings)

    # -------------------------------------------------------------- batching across photos
    def restore_many(
        self, items: Iterable[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray | None]]]]
    ) -> Iterator[tuple[str, PhotoResult | Exception]]:
        """Restore many photos, batching their faces together.

        ``items``: (key, load) pairs; ``load()`` returns (uint8 RGB (H, W, 3), alpha or None) and may raise —
        a failure of one photo is yielded as (key, exception) and never stops the others. Results come in input
        order. At most about ``batch_size`` faces' photos are held in memory at once.
        """
        group: list[_Pending | tuple[str, Exception]] = []
        n_faces = 0
        for key, load in items:
            try:
                rgb, alpha = load()
                pending = self.prepare(key, rgb, alpha)
            except Exception as err:  # noqa: BLE001 - reported per photo by the caller
                group.append((key, err))
                continue
            group.append(pending)
            n_faces += len(pending.crops)
            if n_faces >= self.batch_size:
                yield from self._run_group(group)
                group, n_faces = [], 0
        if group:
            yield from self._run_group(group)

    def _run_group(self, group) -> Iterator[tuple[str, PhotoResult | Exception]]:
        pendings = [p for p in group if isinstance(p, _Pending)]
        crops = [c for p in pendings for c in p.crops]
        seeds = [s for p in pendings for s in p.seeds]
        restored: list[np.ndarray] = []
        extras: list[dict] = []
        error: Exception | None = None
        t0 = time.perf_counter()
        if crops:
            try:
                restored, extras = self.restore_crops(crops, seeds)
                restored, extras = list(restored), list(extras) or [{} for _ in crops]
            except Exception as err:  # noqa: BLE001 - the whole batch failed (e.g. out of memory)
                error = err
        per_face = (time.perf_counter() - t0) / max(len(crops), 1)
        i = 0
        for item in group:
            if not isinstance(item, _Pending):
                yield item
                continue
            n = len(item.crops)
            if error is not None and n:
                yield item.key, error
            else:
                item.timings["restore_s"] = per_face * n
                try:
                    yield item.key, self.finish(item, restored[i : i + n], extras[i : i + n])
                except Exception as err:  # noqa: BLE001
                    yield item.key, err
            i += n


def pipeline_restore_fn(
    pipe,
    prompt: str,
    negative_prompt: str,
    steps: int,
    strength: float,
    guidance_scale: float,
    controlnet_scale: float,
    color_fix: str,
    batch_size: int,
    guidance: list | None = None,
    quality_score: float | None = None,
) -> RestoreCrops:
    """Adapt an :class:`AuthFacePipeline` to the restorer's ``restore_crops`` interface (one seed per face)."""
    import torch

    def restore(crops: list[np.ndarray], seeds: list[int]) -> tuple[list[np.ndarray], list[dict]]:
        out = pipe(
            image=crops,
            prompt=prompt,
            negative_prompt=negative_prompt,
            num_inference_steps=steps,
            strength=strength,
            guidance_scale=guidance_scale,
            controlnet_conditioning_scale=controlnet_scale,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
            batch_size=batch_size,
            color_fix=color_fix,
            guidance=guidance,
            quality_score=quality_score,
            output_type="np",
        )
        extras = [{"guidance": summarize_guidance(log, final)} if log or final else {}
                  for log, final in zip(out.guidance_log, out.guidance_final)]  # fmt: skip
        return list(out.images), extras

    return restore


def summarize_guidance(log: list[dict], final: dict) -> dict:
    """Per guidance: the steps it ran at, its objective value at each, and its value on the result."""
    out: dict[str, dict] = {}
    for rec in log:
        entry = out.setdefault(rec["name"], {"steps": [], "values": []})
        entry["steps"].append(rec["step"])
        entry["values"].append(round(rec["value"], 6))
    for name, value in final.items():
        out.setdefault(name, {"steps": [], "values": []})["final"] = round(value, 6)
    return out
