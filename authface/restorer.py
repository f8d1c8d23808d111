"""FaceRestorer: whole photos in, restored photos out — the object the CLI, the demo and notebooks all use.

    from authface import FaceRestorer
    restorer = FaceRestorer.from_pretrained("path/to/model")        # or a hub id; options as keywords
    result = restorer(photo)            # numpy uint8 RGB (H, W, 3), a PIL image or a file path
    result.image                        # uint8 RGB (H * upscale, W * upscale, 3), faces restored and pasted back
    result.faces                        # one dict per face: box, landmarks, score, seed, guidance values

The restorer owns the face stage (:class:`authface.face.stage.FaceStage`: detect, select, align, paste) and the
batching of faces across photos; what restores aligned crops is a callable, so the same code serves the diffusion
pipeline (built by :mod:`authface.build`), a test's identity function or any other restorer::

    restore_crops(crops: list[uint8 RGB (S, S, 3)], seeds: list[int]) -> (list[uint8 RGB (S, S, 3)], list[dict])

The second list holds per-face extras for the manifest (e.g. guidance records).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .face.stage import AlignedFace, FaceStage
from .imaging import Tone, apply_tone, keep_luma, monochrome_tone

RestoreCrops = Callable[[list[np.ndarray], list[int]], tuple[list[np.ndarray], list[dict]]]
#: A photo to restore in :meth:`FaceRestorer.restore_many`: (key, load) with ``load() -> (rgb, alpha or None)``
#: or ``(rgb, alpha or None, mask or None)`` (mask: bool (H, W), True = region to generate).
PhotoItem = tuple[str, Callable[[], tuple]]


def face_seed(seed: int, key: str, index: int) -> int:
    """Seed of one face: depends on the run seed, the photo's key and the face's index, never on batching."""
    digest = hashlib.sha256(f"{seed}:{key}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class PhotoResult:
    """One restored photo.

    ``image``: uint8 RGB ``(H * upscale, W * upscale, 3)``; ``alpha``: the input's alpha upscaled alongside (or
    None); ``faces``: one dict per face (``index``, ``box``, ``landmarks``, ``score``, ``seed`` and any extras of
    the restore callable); ``crops_in``/``crops_out``: the aligned input and restored crops, uint8 RGB
    ``(S, S, 3)``; ``timings``: seconds per stage; ``notes``: what the user should know (e.g. a monochrome input
    kept monochrome); ``dropped_faces``: detections not restored, each with its box and the reason (a duplicate,
    below ``min_face_size``, ...).
    """

    key: str
    image: np.ndarray
    alpha: np.ndarray | None
    faces: list[dict]
    crops_in: list[np.ndarray] = field(default_factory=list)
    crops_out: list[np.ndarray] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dropped_faces: list[dict] = field(default_factory=list)


@dataclass
class _Pending:
    key: str
    rgb: np.ndarray
    alpha: np.ndarray | None
    faces: list[AlignedFace]
    seeds: list[int]
    timings: dict
    tone: Tone | None = None
    dropped: list[dict] = field(default_factory=list)
    mask: np.ndarray | None = None
    """bool (H, W) region to fill (inpainting), or None."""
    crop_masks: list = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return self.rgb.nbytes + (self.alpha.nbytes if self.alpha is not None else 0)


class FaceRestorer:
    """Detect, align, restore (in batches across photos) and paste back every face of each photo.

    Args:
        restore_crops: restores aligned crops (see the module docstring).
        stage: the face stage (detector, crop size, selection, aligned inputs, background upsampler).
        upscale: integer factor of the whole output photo.
        batch_size: faces per ``restore_crops`` call, gathered across photos.
        seed: run seed; each face's seed is :func:`face_seed` (run seed, photo key, face index).
        max_pending_photos, max_pending_bytes: bounds on decoded photos held while a batch fills, so a folder
            of face-less or huge photos never piles up in memory; a batch is run early when either is reached.
        keep_monochrome: a gray or toned (sepia) input photo comes back with the same tone: the restored faces
            keep their luma and take the input's chroma-by-luma curve (:func:`authface.imaging.monochrome_tone`,
            tolerant of JPEG chroma noise), so the model never invents colour. False lets the model's colours
            through (colourisation).
        colorize: monochrome inputs are coloured: restored faces keep the input's luma exactly and take the
            model's chroma.
        keep_unmasked: with a mask, every pixel outside it is the input's (upscaled) pixel; by default the
            whole photo is restored and only the masked region is generated.
        crop_masker: finds the region to generate in aligned crops (``--mask auto``: the mask segmenter;
            ``crops: list[uint8 RGB (S, S, 3)] -> list[bool (S, S)]``), used for photos given without a mask:
            each face is inpainted with its own crop's mask (an empty one: plain restoration), and the photo's
            mask (for ``keep_unmasked`` and the background fill) is the union of the crop masks warped back.
    """

    def __init__(
        self,
        restore_crops: RestoreCrops,
        stage: FaceStage,
        upscale: int = 1,
        batch_size: int = 4,
        seed: int = 0,
        max_pending_photos: int = 16,
        max_pending_bytes: int = 512 * 2**20,
        keep_monochrome: bool = True,
        colorize: bool = False,
        keep_unmasked: bool = False,
        crop_masker: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
    ):
        if int(upscale) != upscale or upscale < 1:
            raise ValueError(f"upscale must be an integer >= 1, got {upscale!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.restore_crops = restore_crops
        self.stage = stage
        self.upscale = int(upscale)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.max_pending_photos = max(1, int(max_pending_photos))
        self.max_pending_bytes = int(max_pending_bytes)
        self.keep_monochrome = keep_monochrome and not colorize
        self.colorize = colorize
        self.keep_unmasked = keep_unmasked
        self.crop_masker = crop_masker
        self.pipeline = self.device = self.dtype = self.config = None  # set by from_config

    # -------------------------------------------------------------- construction
    @classmethod
    def from_pretrained(cls, model: str | os.PathLike | None = None, controlnet: str | None = None, **options: Any):
        """Load a restorer: base model (hub id, local folder, AuthFace model folder or single file) + ControlNet.

        ``options`` are any keys of :class:`authface.config.RestoreConfig`, by their short name
        (``steps=30, strength=0.5, upscale=2, detector="yunet", device="cpu"``) or dotted
        (``**{"sampler.steps": 30}``); ``config=PATH`` reads a YAML file first. Returns the restorer with its
        ``pipeline``, ``device``, ``dtype`` and resolved ``config`` attached.

        Raises:
            authface.config.ConfigError: an unknown option (the message suggests the closest) or a bad value.
            authface.models.loading.ModelNotFoundError: a model that is neither a local path nor reachable.
        """
        from .build import restore_config

        if model is not None:
            options["model.model"] = os.fspath(model)
        if controlnet is not None:
            options["model.controlnet"] = controlnet
        return cls.from_config(restore_config(**options))

    @classmethod
    def from_config(cls, config):
        """A restorer from a resolved :class:`authface.config.RestoreConfig` (loads the model and detector)."""
        from .build import build_parts

        parts = build_parts(config)
        restorer = cls(parts.restore_crops, parts.stage, parts.upscale, parts.batch_size, parts.seed,
                       colorize=config.sampler.colorize, keep_unmasked=config.io.keep_unmasked,
                       crop_masker=parts.crop_masker)  # fmt: skip
        restorer.pipeline, restorer.device, restorer.dtype, restorer.config = (
            parts.pipeline, parts.device, parts.dtype, parts.config)  # fmt: skip
        return restorer

    # -------------------------------------------------------------- one photo
    def __call__(self, image: Any, key: str | None = None, mask: Any = None) -> PhotoResult:
        """Restore one photo: a uint8 RGB ``(H, W, 3)`` array (gray, RGBA and float in [0, 1] are converted), a
        PIL image, or a file path (read with EXIF orientation; alpha kept). ``key`` names the photo for its
        seeds (default: the path, or ``"image"``). ``mask``: the region to generate (inpainting: a face mask, a
        scratch), a mask file (white = fill) or a bool/uint8 ``(H, W)`` array the size of the photo (None: the
        ``crop_masker``'s masks when the restorer has one, e.g. built with ``mask="auto"``). Raises
        whatever reading or restoring raised (:class:`authface.io.mask.MaskError` for a bad mask)."""
        from . import io

        if isinstance(image, (str, os.PathLike)):
            loaded = io.read_image(image)
            rgb, alpha, key = loaded.rgb, loaded.alpha, key or os.fspath(image)
        else:
            rgb, alpha = io.as_rgb_alpha(image)
        if isinstance(mask, (str, os.PathLike)):
            from .io.mask import read_mask

            mask = read_mask(mask, rgb.shape[:2])[0]
        elif mask is not None:
            mask = np.asarray(mask) > (0 if np.asarray(mask).dtype == bool else 127)
            if mask.shape != rgb.shape[:2]:
                raise ValueError(f"mask shape {mask.shape} does not match the photo's {rgb.shape[:2]}")
        ((_, result),) = list(self.restore_many([(key or "image", lambda: (rgb, alpha, mask))]))
        if isinstance(result, Exception):
            raise result
        return result

    # -------------------------------------------------------------- stages
    def prepare(self, key: str, rgb: np.ndarray, alpha: np.ndarray | None = None, mask=None) -> _Pending:
        """Detect, select and align the faces of one photo (uint8 RGB (H, W, 3)); ``mask``: bool (H, W) or None."""
        t0 = time.perf_counter()
        faces, dropped = self.stage.detect_report(rgb)
        t1 = time.perf_counter()
        aligned = self.stage.align_faces(rgb, faces)
        seeds = [face_seed(self.seed, key, i) for i in range(len(aligned))]
        tone = monochrome_tone(rgb) if (self.keep_monochrome or self.colorize) and aligned else None
        crop_masks = []
        if mask is not None:
            from .inpaint import crop_mask

            crop_masks = [crop_mask(mask, f.affine, self.stage.crop_size) for f in aligned]
        elif self.crop_masker is not None and aligned:
            crop_masks = [m if m.any() else None for m in self.crop_masker([f.crop for f in aligned])]
            mask = _uncrop_masks(crop_masks, aligned, rgb.shape[:2])
        timings = {"detect_s": t1 - t0, "align_s": time.perf_counter() - t1}
        return _Pending(key, rgb, alpha, aligned, seeds, timings, tone, dropped, mask, crop_masks)

    def finish(self, p: _Pending, restored: list[np.ndarray], extras: list[dict]) -> PhotoResult:
        """Paste the restored crops back over the (upscaled) photo."""
        t0 = time.perf_counter()
        notes = []
        if p.tone is not None and restored and self.colorize:
            restored = [keep_luma(f.crop, crop) for f, crop in zip(p.faces, restored)]
            notes.append("monochrome input coloured (--colorize): the faces keep its luminance, colour is generated")
        elif p.tone is not None and restored:
            restored = [apply_tone(crop, p.tone) for crop in restored]
            kind = "gray" if p.tone.neutral else "toned (e.g. sepia)"
            notes.append(f"monochrome input ({kind}): restored faces keep its tone; use --colorize for colour")
        image = self.stage.paste(self._background(p), restored, p.faces, self.upscale)
        if p.mask is not None and self.keep_unmasked:
            inside = _upscale_mask(p.mask, self.upscale)
            image = np.where(inside[..., None], image, self.stage.upsampler.upscale(p.rgb, self.upscale))
        alpha = p.alpha
        if alpha is not None and self.upscale != 1:
            size = (alpha.shape[1] * self.upscale, alpha.shape[0] * self.upscale)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LANCZOS4)
        faces = []
        for i, f in enumerate(p.faces):
            rec = {"index": i, **f.face.to_dict(), "seed": p.seeds[i]}
            if i < len(extras) and extras[i]:
                rec.update(extras[i])
            faces.append(rec)
        timings = dict(p.timings, paste_s=time.perf_counter() - t0)
        crops_in = [f.crop for f in p.faces]
        return PhotoResult(p.key, image, alpha, faces, crops_in, list(restored), timings, notes, p.dropped)

    @staticmethod
    def _background(p: _Pending) -> np.ndarray:
        """The photo under the pasted faces: masked regions outside every face filled by OpenCV's Telea."""
        if p.mask is None:
            return p.rgb
        return cv2.inpaint(p.rgb, p.mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)

    # -------------------------------------------------------------- batching across photos
    def restore_many(self, items: Iterable[PhotoItem]) -> Iterator[tuple[str, PhotoResult | Exception]]:
        """Restore many photos, batching their faces together.

        ``items``: (key, load) pairs; ``load()`` returns (uint8 RGB (H, W, 3), alpha or None[, mask or None]) and
        may raise —
        a failure of one photo is yielded as (key, exception) and never stops the others. Results come in input
        order, each as soon as every photo before it is done: a photo without faces that waits for no earlier
        face is yielded at once, and a batch runs when it holds ``batch_size`` faces or when the photos waiting
        for it reach ``max_pending_photos`` / ``max_pending_bytes``.
        """
        group: list[_Pending | tuple[str, Exception]] = []
        n_faces = held = 0
        for key, load in items:
            try:
                item: _Pending | tuple[str, Exception] = self.prepare(key, *load())
            except Exception as err:  # noqa: BLE001 - reported per photo by the caller
                item = (key, err)
            group.append(item)
            if isinstance(item, _Pending):
                n_faces += len(item.faces)
                held += item.nbytes
            full = n_faces >= self.batch_size or len(group) >= self.max_pending_photos or held >= self.max_pending_bytes
            if full or not n_faces:  # not n_faces: nothing waits for a batch, so face-less photos go out at once
                yield from self._run_group(group)
                group, n_faces, held = [], 0, 0
        yield from self._run_group(group)

    def _run_group(self, group) -> Iterator[tuple[str, PhotoResult | Exception]]:
        pendings = [p for p in group if isinstance(p, _Pending)]
        crops = [f.crop for p in pendings for f in p.faces]
        seeds = [s for p in pendings for s in p.seeds]
        restored: list[np.ndarray] = []
        extras: list[dict] = []
        error: Exception | None = None
        t0 = time.perf_counter()
        if crops:
            try:
                masks = [m for p in pendings for m in (p.crop_masks or [None] * len(p.faces))]
                if any(m is not None for m in masks):
                    restored, extras = self.restore_crops(crops, seeds, masks=masks)
                else:
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
            n = len(item.faces)
            if error is not None and n:
                yield item.key, error
            else:
                item.timings["restore_s"] = per_face * n
                try:
                    yield item.key, self.finish(item, restored[i : i + n], extras[i : i + n])
                except Exception as err:  # noqa: BLE001
                    yield item.key, err
            i += n



def _uncrop_masks(crop_masks: list, faces: list[AlignedFace], shape: tuple[int, int]) -> np.ndarray | None:
    """The union, in photo pixels (bool ``(H, W)``), of bool ``(S, S)`` crop masks (None: empty) warped back by
    their faces' inverse affines; None when every crop mask is empty."""
    union = np.zeros(shape, bool)
    for m, f in zip(crop_masks, faces):
        if m is not None:
            back = cv2.warpAffine(m.astype(np.uint8) * 255, cv2.invertAffineTransform(f.affine), (shape[1], shape[0]),
                                  flags=cv2.INTER_LINEAR, borderValue=0)  # fmt: skip
            union |= back >= 128
    return union if union.any() else None


def _upscale_mask(mask: np.ndarray, upscale: int) -> np.ndarray:
    """bool (H, W) -> bool (H * upscale, W * upscale), nearest."""
    return mask if upscale == 1 else np.kron(mask, np.ones((upscale, upscale), bool))
