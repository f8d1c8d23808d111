"""``authface prepare``, the library side: turn folders of photos into a training dataset of aligned faces.

For every photo under the SRC folders/files/globs: read it (:func:`authface.io.read_image`), detect, select and
align its faces with the shared face stage (:class:`authface.face.stage.FaceStage`), keep the faces whose detected
size (``sqrt`` of the box area) is at least ``min_face_size`` pixels (largest first, at most ``max_faces`` per
photo), drop near-duplicates (64-bit DCT perceptual hash of the aligned crop, Hamming distance
``<= dedupe_threshold`` to any face already kept, in this run or an earlier one; :mod:`.dedupe`), score the rest
with the quality scorer(s) and write them losslessly. The dataset folder's files are described in
:mod:`.manifest`; the card is written by :mod:`.card`; captions come from :mod:`.captions`; the settings are
:class:`PrepareSettings`. The command line is :mod:`authface.cli.prepare`.

Re-running on the same (or a grown) folder processes only photos whose source is in neither JSONL file; new faces
are deduplicated against the existing ones too. Photos that cannot be read are one line each and a rejection,
never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import io
from .captions import Captions
from .card import write_dataset_card
from .dedupe import HashIndex, phash
from .manifest import (
    CONFIG_NAME,
    FACES_DIR,
    MANIFEST_NAME,
    REJECT_REASONS,
    REJECTED_NAME,
    SCHEMA_VERSION,
    ManifestError,
    face_id,
    read_manifest,
    read_records,
    utc_now,
)
from .prepare_settings import PrepareError, PrepareSettings, parse_quality_spec

# ManifestError, read_manifest, PrepareError and PrepareSettings are re-exported: callers import them from here.
__all__ = [
    "ManifestError",
    "PrepareError",
    "PrepareSettings",
    "PrepareSummary",
    "Source",
    "discover_sources",
    "prepare_dataset",
    "read_manifest",
]

logger = logging.getLogger(__name__)

LOCK_NAME = ".prepare.lock"


@dataclass(frozen=True)
class Source:
    """One photo to prepare: its absolute ``path`` and ``rel``, its posix path relative to its SRC root."""

    path: Path
    rel: str


@dataclass
class PrepareSummary:
    """What one run did. ``rejected``: records written per reason; ``failed``: ``"path: reason"`` lines."""

    dataset: Path
    photos_found: int = 0
    photos_skipped: int = 0  # already in manifest.jsonl or rejected.jsonl
    photos_processed: int = 0
    faces_kept: int = 0
    faces_beyond_max: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    failed: list[str] = field(default_factory=list)
    captions_missing: int = 0


def discover_sources(srcs: Sequence[str], dataset: Path, recursive: bool = True) -> list[Source]:
    """Photos under each SRC (folders, files, globs), each with its path relative to that SRC; the dataset folder
    is never walked; the same file reached twice is kept once. Raises :class:`PrepareError`."""
    out: list[Source] = []
    seen: set[str] = set()
    dataset_real = os.path.realpath(dataset)
    for src in srcs:
        real = os.path.realpath(src)
        if real == dataset_real or real.startswith(dataset_real + os.sep):
            raise PrepareError(f"SRC {src} is inside the dataset folder {dataset}; choose another -o folder")
        try:
            pairs = io.discover_inputs([src], recursive=recursive, exclude=[dataset])
        except FileNotFoundError as exc:
            raise PrepareError(str(exc)) from exc
        root = os.path.abspath(src) if os.path.isdir(src) else None
        for path, rel in pairs:
            key = os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            rel_text = Path(os.path.relpath(path, root)).as_posix() if root else rel.as_posix()
            out.append(Source(Path(path), rel_text))
    return out


@contextlib.contextmanager
def _dataset_lock(dataset: Path):
    """Exclusive lock on DATASET for the duration of a run (POSIX; no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(dataset / LOCK_NAME, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise PrepareError(f"another 'authface prepare' is writing {dataset}; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _build_scorers(settings: PrepareSettings) -> list:
    from ..models.quality import create_quality_scorer

    scorers = []
    for spec in settings.quality:
        name, model_path = parse_quality_spec(spec)
        kw = {"differentiable": False} if name.lower().startswith("pyiqa:") else {}
        scorer = create_quality_scorer(name, model_path=model_path, device=settings.device, **kw)
        if hasattr(scorer, "to"):
            scorer = scorer.to(settings.device)
        if hasattr(scorer, "eval"):
            scorer.eval()
        scorers.append((name, scorer))
    return scorers


def _score(scorers: list, crops: list[np.ndarray], device: str) -> list[dict[str, dict[str, float | None]]]:
    """Raw and normalised scores of uint8 RGB (S, S, 3) crops -> one ``{name: {raw, score}}`` per crop."""
    import torch

    out: list[dict] = [{} for _ in crops]
    if not crops:
        return out
    x = (io.numpy_to_tensor(crops) + 1.0) / 2.0  # [0, 1] RGB (B, 3, S, S)
    x = x.to(device)
    with torch.no_grad():
        for name, scorer in scorers:
            raw = scorer.raw(x)
            score_map = getattr(scorer, "score_map", None)
            norm = score_map(raw) if score_map is not None else scorer(x)
            for i, (r, s) in enumerate(zip(raw.float().cpu().tolist(), norm.float().cpu().tolist())):
                if not (math.isfinite(r) and math.isfinite(s)):
                    logger.warning("quality %s is not finite for a face (raw %r); scored 0", name, r)
                    r, s = (r if math.isfinite(r) else None), 0.0
                out[i][name] = {"raw": None if r is None else round(r, 6), "score": round(min(max(s, 0.0), 1.0), 6)}
    return out


def _rounded(a, nd: int = 2) -> list:
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def _open_dataset(dataset: Path, settings: PrepareSettings) -> dict:
    """The dataset's config, new or checked: an existing dataset must use the same crop size and primary scorer."""
    config_path = dataset / CONFIG_NAME
    if not config_path.is_file():
        return {"schema_version": SCHEMA_VERSION, "crop_size": int(settings.crop_size),
                "primary_quality": settings.primary_quality, "runs": []}  # fmt: skip
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PrepareError(f"{config_path} is unreadable ({exc}); fix or delete it") from exc
    if config.get("crop_size") != int(settings.crop_size):
        raise PrepareError(f"{dataset} holds {config.get('crop_size')}px crops; use --crop-size "
                           f"{config.get('crop_size')} or another -o folder")  # fmt: skip
    if config.get("primary_quality") != settings.primary_quality:
        raise PrepareError(f"{dataset} was scored with {config.get('primary_quality')!r} first (its quality_score); "
                           f"start --quality with it or use another -o folder")  # fmt: skip
    config.setdefault("runs", [])
    return config


def _known_faces(dataset: Path) -> tuple[HashIndex, set[str], set[str]]:
    """(pHash index of kept faces, their lower-case ids, real paths of every photo already recorded)."""
    manifest_path, rejected_path = dataset / MANIFEST_NAME, dataset / REJECTED_NAME
    io.repair_jsonl_tail(manifest_path)
    io.repair_jsonl_tail(rejected_path)
    index, ids, known = HashIndex(), set(), set()
    for rec in read_records(manifest_path):
        if isinstance(rec.get("id"), str):
            ids.add(rec["id"].lower())
            if isinstance(rec.get("phash"), str):
                with contextlib.suppress(ValueError):
                    index.add(rec["id"], rec["phash"])
        if isinstance(rec.get("source"), str):
            known.add(os.path.realpath(rec["source"]))
    for rec in read_records(rejected_path):
        if isinstance(rec.get("source"), str):
            known.add(os.path.realpath(rec["source"]))
    return index, ids, known


def _face_stage(settings: PrepareSettings, detector):
    """The shared face stage (all faces, largest first; the size check is prepare's own, to record rejections)."""
    from .. import face
    from ..face.stage import FaceStage

    if settings.aligned:
        return FaceStage(None, int(settings.crop_size), aligned=True)
    try:
        if detector is None:
            kwargs = {"upsample": settings.upsample} if settings.detector.startswith("dlib") else {}
            detector = face.create_detector(settings.detector, settings.detector_model, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise PrepareError(str(exc)) from exc
    return FaceStage(detector, int(settings.crop_size), min_face_size=0.0)


def prepare_dataset(
    srcs: Sequence[str],
    dataset_dir: str | os.PathLike,
    settings: PrepareSettings,
    detector=None,
    scorers: list | None = None,
    report: Callable[[str], None] | None = None,
    progress: Callable[[list[Source]], Iterable[Source]] | None = None,
    argv: Sequence[str] | None = None,
) -> PrepareSummary:
    """Add the faces of new photos under ``srcs`` to the dataset at ``dataset_dir`` (see the module docstring).

    ``detector``/``scorers`` (``[(name, scorer)]``) are built from ``settings`` when None and only when there is
    a new photo. ``report(line)`` receives one line per rejected or failed photo (default: logged).
    ``progress(photos)`` may wrap the list of new photos in a progress bar (e.g. ``tqdm``); anything not callable
    (None, False): no bar (the library never draws one itself).
    ``argv`` is recorded in ``prepare_config.json``.

    Raises:
        PrepareError: usage problems (bad settings or input, incompatible dataset, another run on it, detector or
            scorer that cannot be built), before any photo is written.
    """
    settings.validate()
    report = report or (lambda line: logger.info("%s", line))
    dataset = Path(dataset_dir).expanduser().resolve()
    sources = discover_sources(srcs, dataset, settings.recursive)
    captions = Captions(settings.caption_template, settings.captions, settings.caption_column,
                        settings.caption_path_column)  # fmt: skip
    if dataset.exists() and not dataset.is_dir():
        raise PrepareError(f"-o {dataset} exists and is not a folder")
    try:
        (dataset / FACES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(f"cannot create the dataset folder {dataset}: {exc}") from exc
    summary = PrepareSummary(dataset, photos_found=len(sources))
    with _dataset_lock(dataset):
        config = _open_dataset(dataset, settings)
        index, ids, known = _known_faces(dataset)
        todo = [s for s in sources if os.path.realpath(s.path) not in known]
        summary.photos_skipped = len(sources) - len(todo)
        started = utc_now()
        if todo:
            stage = _face_stage(settings, detector)
            if scorers is None:
                try:
                    scorers = _build_scorers(settings)
                except (OSError, ValueError, ImportError) as exc:
                    raise PrepareError(str(exc)) from exc
            run = _PhotoRun(dataset, settings, stage, scorers, index, ids, captions, summary, report)
            for source in progress(todo) if callable(progress) else todo:
                try:
                    run.process(source)
                except Exception as err:  # noqa: BLE001 - one bad photo never stops the batch
                    line = f"{source.path}: {type(err).__name__}: {err}"
                    summary.failed.append(line)
                    report(f"FAILED {line}")
        summary.captions_missing = captions.missing

        config["settings"] = asdict(settings)
        config["runs"].append({
            "started": started, "finished": utc_now(), "argv": list(argv) if argv is not None else None,
            "srcs": [os.path.abspath(s) for s in srcs], "settings": asdict(settings),
            "photos_found": summary.photos_found, "photos_skipped": summary.photos_skipped,
            "photos_processed": summary.photos_processed, "faces_kept": summary.faces_kept,
            "rejected": summary.rejected, "failed": len(summary.failed),
        })  # fmt: skip
        io.write_json(dataset / CONFIG_NAME, config)
        write_dataset_card(dataset)
    return summary


class _PhotoRun:
    """The per-photo work of one run: read, detect, align, dedupe, score, write; records appended per photo."""

    def __init__(self, dataset, settings, stage, scorers, index, ids, captions, summary, report):
        self.dataset, self.settings, self.stage, self.scorers = dataset, settings, stage, scorers
        self.index, self.ids, self.captions, self.summary, self.report = index, ids, captions, summary, report

    def process(self, source: Source) -> None:
        """All faces of one photo; its manifest and rejection records are appended at the end."""
        settings = self.settings
        self.summary.photos_processed += 1
        base = {"source": str(source.path), "source_rel": source.rel}
        rejected: list[dict] = []

        def reject(reason: str, detail: str, **extra) -> None:
            rejected.append({**base, "reason": reason, "detail": detail, **extra, "created": utc_now()})

        try:
            img = io.read_image(source.path, max_pixels=settings.max_pixels)
        except io.ImageReadError as err:
            reject("unreadable", err.reason)
            self.report(f"unreadable {source.path}: {err.reason}")
            return self._commit([], rejected)
        aligned = self.stage.align(img.rgb)  # all faces, largest first
        if not aligned:
            reject("no_face", f"no face found by the {settings.detector} detector")
            self.report(f"no face in {source.path}")
            return self._commit([], rejected)

        candidates = []  # (face index, AlignedFace)
        for i, a in enumerate(aligned):
            if a.face.size < settings.min_face_size:
                reject("too_small", f"face {i} is {a.face.size:.0f} px < --min-face-size {settings.min_face_size:g}",
                       face_index=i, face_size=round(a.face.size, 2), box=_rounded(a.face.box))  # fmt: skip
            elif settings.max_faces is not None and len(candidates) >= settings.max_faces:
                self.summary.faces_beyond_max += 1
            else:
                candidates.append((i, a))

        mark, new_ids = len(self.index), []
        try:
            kept = self._dedupe(source, candidates, new_ids, reject)
            self._commit(self._write_faces(source, img.size, kept), rejected)
        except BaseException:
            self.index.truncate(mark)  # this photo's faces are not in the manifest: do not dedupe against them
            self.ids.difference_update(new_ids)
            raise
        for r in rejected:
            if r["reason"] == "duplicate":
                self.report(f"duplicate {source.path}: {r['detail']}")
        if not candidates and rejected:
            self.report(f"too small {source.path}: {rejected[0]['detail']}")

    def _dedupe(self, source: Source, candidates: list, new_ids: list[str], reject) -> list:
        """The candidates that are no near-duplicate of a kept face, each as (index, AlignedFace, phash, id)."""
        threshold = self.settings.dedupe_threshold
        kept = []
        for i, a in candidates:
            h = phash(a.crop)
            fid = face_id(source.rel, i)
            if fid.lower() in self.ids:  # another source with the same slug (e.g. "a b.jpg" and "a_b.jpg")
                fid = f"{fid}-{hashlib.sha1(str(source.path).encode()).hexdigest()[:8]}"
            near = self.index.nearest(h) if threshold >= 0 else None
            if near is not None and near[1] <= threshold:
                reject("duplicate", f"face {i} duplicates {near[0]} (pHash distance {near[1]} <= {threshold})",
                       face_index=i, duplicate_of=near[0], distance=near[1], phash=h)  # fmt: skip
                continue
            self.index.add(fid, h)
            self.ids.add(fid.lower())
            new_ids.append(fid.lower())
            kept.append((i, a, h, fid))
        return kept

    def _write_faces(self, source: Source, source_size, kept: list) -> list[dict]:
        """Score and write the kept crops; their manifest records."""
        from ..face import region_boxes

        settings = self.settings
        scores = _score(self.scorers, [a.crop for _, a, _, _ in kept], settings.device)
        crop_size = int(settings.crop_size)
        caption = self.captions(source.rel, source.path) if kept else None
        primary = settings.primary_quality
        records = []
        for (i, a, h, fid), quality in zip(kept, scores):
            face, affine = a.face, a.affine
            rel_file = f"{FACES_DIR}/{fid}.png"
            io.write_image(self.dataset / rel_file, a.crop)
            lm = np.asarray(face.landmarks, np.float64) @ affine[:, :2].T + affine[:, 2]  # detected points, crop px
            regions = {k: _rounded(v) for k, v in region_boxes(lm, crop_size).items()}
            records.append({
                "id": fid, "file": rel_file, "source": str(source.path), "source_rel": source.rel, "face_index": i,
                "crop_size": crop_size, "source_size": list(source_size), "box": _rounded(face.box),
                "face_size": round(face.size, 2), "det_score": round(float(face.score), 4),
                "source_landmarks": _rounded(face.landmarks), "affine": np.round(affine, 6).tolist(),
                "landmarks": _rounded(lm), "regions": regions, "quality": quality,
                "quality_score": quality[primary]["score"], "phash": h, "caption": caption, "created": utc_now(),
            })  # fmt: skip
        return records

    def _commit(self, records: list[dict], rejected: list[dict]) -> None:
        io.append_jsonl(self.dataset / MANIFEST_NAME, records)
        self.summary.faces_kept += len(records)
        io.append_jsonl(self.dataset / REJECTED_NAME, rejected)
        for r in rejected:
            self.summary.rejected[r["reason"]] += 1
