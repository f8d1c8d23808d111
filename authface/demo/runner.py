"""What the demo's Restore button does, without any web framework: restore uploads, write outputs, a manifest
and one zip to download. The page (:mod:`authface.demo.app`) only turns the result into components and messages.
"""

from __future__ import annotations

import datetime
import io as stdio
import logging
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, io
from ..build import restore_config
from ..config import to_dict
from ..imaging import resize
from .cache import RestorerCache, tiny_model_note

logger = logging.getLogger(__name__)

ZIP_NAME = "authface-results.zip"


class DemoError(Exception):
    """A request the demo cannot run (no upload, a quality target the model cannot take, ...); the message is
    shown in the page as it is."""


@dataclass
class PhotoOutcome:
    """One uploaded photo after a run.

    ``before``/``after``: uint8 RGB ``(H * upscale, W * upscale, 3)`` (the input resized with Lanczos to the output
    size, and the restored photo), None when the photo failed; ``faces``: (input crop, restored crop) pairs,
    uint8 RGB ``(S, S, 3)``; ``record``: its manifest record; ``error``: one line, or None.
    """

    name: str
    before: np.ndarray | None
    after: np.ndarray | None
    faces: list[tuple[np.ndarray, np.ndarray]]
    record: dict
    error: str | None = None


@dataclass
class DemoRun:
    """A finished request: its photos (upload order), the run folder with ``restored/``, ``faces/``,
    ``manifest.jsonl`` and the zip of all three, and notes for the page (e.g. a tiny random model)."""

    photos: list[PhotoOutcome]
    folder: Path
    zip_path: Path
    manifest_path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """``"name: reason"`` for each photo that failed."""
        return [f"{p.name}: {p.error}" for p in self.photos if p.error]


def unique_names(paths: list[str | Path]) -> list[str]:
    """File names of the uploads, made unique (``a.png``, ``a_2.png``) so outputs never collide."""
    names, taken = [], set()
    for p in paths:
        name = Path(p).name or "image"
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name.casefold() in taken:
            name, n = f"{stem}_{n}{suffix}", n + 1
        taken.add(name.casefold())
        names.append(name)
    return names


def new_run_folder(root: Path, keep: int = 16) -> Path:
    """A fresh folder for one request under ``root``; only the newest ``keep`` run folders are kept."""
    root.mkdir(parents=True, exist_ok=True)
    runs = sorted(root.glob("run-*"), key=lambda p: p.stat().st_mtime)
    for old in runs[: max(0, len(runs) - keep + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = root / f"run-{stamp}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def _quality_target_check(restorer, target: float | None) -> None:
    from ..models.quality_prior import has_quality_prior

    controlnet = getattr(restorer.pipeline, "controlnet", None)
    if target is not None and controlnet is not None and not has_quality_prior(controlnet):
        raise DemoError(f"quality target {target} needs a model trained with the image-quality prior, and this "
                        "model has none: clear the quality target, or load a model fine-tuned with "
                        "model.quality_prior=true")  # fmt: skip


def _photo_record(name: str, result, img, out_rel: str | None) -> dict:
    record: dict[str, Any] = {"type": "photo", "input": name, "key": name, "output": out_rel,
                              "size": list(img.size), "notes": list(img.notes) + list(result.notes),
                              "faces": result.faces, "timings": result.timings}  # fmt: skip
    if result.dropped_faces:
        record["dropped_faces"] = result.dropped_faces
    if out_rel is not None:
        record["output_size"] = [int(result.image.shape[1]), int(result.image.shape[0])]
    return record


def _save(folder: Path, name: str, result, img) -> tuple[PhotoOutcome, list[str]]:
    """Write one restored photo (always PNG) and its face crops; returns its outcome and the files written."""
    stem = Path(name).stem
    out_rel = f"restored/{stem}.png"
    notes = io.write_image(folder / out_rel, result.image, result.alpha, icc_profile=img.icc_profile)
    written = [out_rel]
    pairs = list(zip(result.crops_in, result.crops_out))
    for i, (before, after) in enumerate(pairs):
        for tag, crop in (("in", before), ("out", after)):
            rel = f"faces/{stem}_{i:02d}_{tag}.png"
            io.write_image(folder / rel, crop)
            written.append(rel)
    record = _photo_record(name, result, img, out_rel)
    record["notes"] += notes
    record["status"] = "restored" if result.faces else "copied"
    h, w = result.image.shape[:2]
    before = img.rgb if img.rgb.shape[:2] == (h, w) else resize(img.rgb, size=(h, w), mode="lanczos")
    return PhotoOutcome(name, before, result.image, pairs, record), written


def restore_uploads(
    paths: list[str | Path], options: dict[str, Any], cache: RestorerCache, folder: Path
) -> DemoRun:
    """Restore uploaded photos with ``options`` (keys of :class:`authface.config.RestoreConfig`, as for
    :meth:`authface.FaceRestorer.from_pretrained`) and write ``restored/*.png``, ``faces/*.png``,
    ``manifest.jsonl`` (one ``run`` record, then one record per photo as ``authface restore`` writes them) and
    :data:`ZIP_NAME` (all of these) into ``folder``.

    A photo that cannot be read or restored is a failed record (its reason in ``PhotoOutcome.error``); the others
    are still restored.

    Raises:
        DemoError: no upload, a model (or a setting's model) that could not be loaded, such as a path that does
            not exist, or a setting the loaded model cannot take.
        authface.config.ConfigError: a bad setting (the message names it).
    """
    if not paths:
        raise DemoError("upload one or more photos first")
    cfg = restore_config(**options)
    try:
        restorer = cache.restorer_for(cfg)
    except (OSError, ValueError, ImportError) as err:
        logger.warning("demo: could not load %s", cfg.model.model, exc_info=True)
        raise DemoError(f"could not load the model or a setting's model: {err}") from err
    _quality_target_check(restorer, cfg.sampler.quality_target)
    names = unique_names(paths)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    run_record = {"type": "run", "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "source": "authface demo", "device": str(restorer.device),
                  "dtype": str(restorer.dtype).replace("torch.", ""), "versions": {"authface": __version__},
                  "config": to_dict(cfg)}  # fmt: skip
    io.append_jsonl(manifest, [run_record])
    loaded: dict[str, io.LoadedImage] = {}

    def loader(name: str, path: str | Path):
        def load():
            img = io.read_image(path, max_pixels=cfg.io.max_pixels)
            loaded[name] = img
            return img.rgb, img.alpha

        return load

    photos, files = [], ["manifest.jsonl"]
    t0 = time.perf_counter()
    for name, result in restorer.restore_many((n, loader(n, p)) for n, p in zip(names, paths)):
        img = loaded.pop(name, None)
        try:
            if isinstance(result, Exception):
                raise result
            outcome, written = _save(folder, name, result, img)
            files += written
        except Exception as err:  # noqa: BLE001 - one bad photo never stops the others; its reason is shown
            reason = err.reason if isinstance(err, io.ImageReadError) else f"{type(err).__name__}: {err}"
            logger.warning("demo: %s failed: %s", name, reason)
            outcome = PhotoOutcome(name, None, None, [], {"type": "photo", "input": name, "key": name,
                                                          "output": None, "status": "failed", "error": reason},
                                   error=reason)  # fmt: skip
        io.append_jsonl(manifest, [outcome.record])
        photos.append(outcome)
    logger.info("demo: %d photo(s) in %.1f s", len(photos), time.perf_counter() - t0)
    zip_path = folder / ZIP_NAME
    io.write_bytes(zip_path, zip_files(folder, files))
    notes = [n for n in [tiny_model_note(restorer.pipeline)] if n]
    return DemoRun(photos, folder, zip_path, manifest, notes)


def zip_files(folder: Path, rel_paths: list[str]) -> bytes:
    """A zip (deflated) of ``folder / rel`` for each relative path, stored under ``rel``."""
    buf = stdio.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in rel_paths:
            zf.write(folder / rel, rel)
    return buf.getvalue()
