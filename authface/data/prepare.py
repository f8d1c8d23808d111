"""``authface prepare``: turn folders of photos into a training dataset of aligned faces.

::

    authface prepare SRC... -o DATASET [--crop-size 512] [--min-face-size 64] [--detector dlib]
        [--quality sharpness[,pyiqa:topiq_nr-face=WEIGHTS.pth,...]] [--caption-template TEXT]
        [--captions FILE.csv [--caption-column text] [--caption-path-column file]]
        [--dedupe-threshold 6] [--max-faces N]

For every photo under the SRC folders/files/globs: read it (:func:`authface.io.read_image`), detect, select and
align its faces with the restorer's own face stage (:meth:`authface.restorer.FaceRestorer.prepare`), keep the faces
whose detected size (``sqrt`` of the box area) is at least ``--min-face-size`` pixels (largest first, at most
``--max-faces`` per photo), drop near-duplicates (64-bit DCT perceptual hash of the aligned crop, Hamming distance
``<= --dedupe-threshold`` to any face already kept, in this run or an earlier one), score the rest with the
quality scorer(s) and write them losslessly. The dataset folder::

    DATASET/faces/<id>.png      aligned crops, uint8 RGB (crop_size, crop_size, 3), PNG
    DATASET/manifest.jsonl      one record per kept face (schema: MANIFEST_KEYS, read it with read_manifest)
    DATASET/rejected.jsonl      one record per rejected photo/face: source, reason (REJECT_REASONS), detail
    DATASET/dataset_card.md     counts, rejections by reason, quality summary, settings (regenerated every run)
    DATASET/quality_hist.png    histogram of quality_score
    DATASET/prepare_config.json settings of the dataset and of every run

Re-running on the same (or a grown) folder processes only photos whose source is in neither JSONL file; new faces
are deduplicated against the existing ones too. Photos that cannot be read are one line each and a rejection,
never a crash. Exit codes of the command: 0 when it finished (rejections are not failures), 1 when some photo
failed for another reason (e.g. a write error; named above the summary, recorded nowhere, retried by the next
run), 2 for usage errors (bad option, no input, dataset prepared with another crop size or primary scorer, another
prepare running on the same DATASET).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import io

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FACES_DIR",
    "HIST_NAME",
    "MANIFEST_KEYS",
    "MANIFEST_NAME",
    "REJECTED_NAME",
    "REJECT_REASONS",
    "ManifestError",
    "PrepareError",
    "PrepareSettings",
    "PrepareSummary",
    "add_prepare_parser",
    "cmd_prepare",
    "face_id",
    "hamming_distances",
    "phash",
    "prepare_dataset",
    "read_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
REJECTED_NAME = "rejected.jsonl"
CARD_NAME = "dataset_card.md"
HIST_NAME = "quality_hist.png"
CONFIG_NAME = "prepare_config.json"
FACES_DIR = "faces"
LOCK_NAME = ".prepare.lock"
SCHEMA_VERSION = 1

#: Why a photo (unreadable, no_face) or a face (too_small, duplicate) was left out.
REJECT_REASONS = ("unreadable", "no_face", "too_small", "duplicate")

#: Keys every manifest record has (``read_manifest`` checks them).
MANIFEST_KEYS = (
    "id", "file", "source", "source_rel", "face_index", "crop_size", "box", "landmarks", "regions",
    "quality", "quality_score", "phash", "caption", "created",
)  # fmt: skip

CAPTION_PATH_COLUMNS = ("file", "path", "filename", "file_name", "image")


class PrepareError(Exception):
    """A usage problem found before any photo is processed (the command exits 2)."""


class ManifestError(ValueError):
    """``manifest.jsonl`` has bad records. ``problems``: ``(line number, message with the fix)``, every one."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]):
        self.path = Path(path)
        self.problems = list(problems)
        lines = [f"{self.path}:{n}: {msg}" if n else f"{self.path}: {msg}" for n, msg in self.problems]
        super().__init__(f"{len(self.problems)} problem(s) in {self.path}:\n" + "\n".join(lines))


# ----------------------------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class PrepareSettings:
    """Everything that decides what ``prepare`` keeps and writes (saved in ``prepare_config.json``).

    Attributes:
        crop_size: side of the aligned crops in pixels (FFHQ template scaled to it).
        min_face_size: faces whose detected size ``sqrt(box w * box h)`` is smaller are rejected ``too_small``.
        detector / detector_model / upsample: see :func:`authface.face.create_detector` (upsample: dlib only).
        quality: scorer specs ``NAME`` or ``NAME=MODEL_PATH`` (:func:`authface.models.quality.create_quality_scorer`);
            the first one's normalised score is ``quality_score``.
        caption_template: caption of every face (None: no caption), also the fallback for faces missing from
            ``captions``.
        captions: CSV with a path column (path relative to its SRC, or basename, or absolute) and ``caption_column``.
        caption_path_column: the CSV's path column (None: the first of :data:`CAPTION_PATH_COLUMNS` present).
        dedupe_threshold: a face whose pHash is within this Hamming distance (of 64 bits) of a kept face is a
            duplicate; negative disables deduplication.
        max_faces: keep at most N faces per photo (largest first); None = all.
        device: device of the quality scorers.
        recursive: walk sub-folders of SRC folders.
        max_pixels: refuse larger images (decompression bombs) as unreadable.
    """

    crop_size: int = 512
    min_face_size: float = 64.0
    detector: str = "dlib"
    detector_model: str | None = None
    upsample: int = 1
    quality: list[str] = field(default_factory=lambda: ["sharpness"])
    caption_template: str | None = None
    captions: str | None = None
    caption_column: str = "text"
    caption_path_column: str | None = None
    dedupe_threshold: int = 6
    max_faces: int | None = None
    device: str = "cpu"
    recursive: bool = True
    max_pixels: int = io.DEFAULT_MAX_PIXELS

    def validate(self) -> None:
        """Raise :class:`PrepareError` naming the option, the value and the fix."""
        if isinstance(self.crop_size, bool) or int(self.crop_size) != self.crop_size or self.crop_size < 64:
            raise PrepareError(f"--crop-size must be an integer >= 64, got {self.crop_size!r} (e.g. 512)")
        if not math.isfinite(float(self.min_face_size)) or self.min_face_size < 0:
            raise PrepareError(f"--min-face-size must be >= 0 pixels, got {self.min_face_size!r}")
        if int(self.dedupe_threshold) != self.dedupe_threshold or self.dedupe_threshold > 64:
            raise PrepareError(f"--dedupe-threshold must be an integer <= 64 (negative disables it), got "
                               f"{self.dedupe_threshold!r}")  # fmt: skip
        if self.max_faces is not None and (int(self.max_faces) != self.max_faces or self.max_faces < 1):
            raise PrepareError(f"--max-faces must be a positive integer, got {self.max_faces!r}")
        if int(self.upsample) != self.upsample or self.upsample < 0:
            raise PrepareError(f"--upsample must be an integer >= 0, got {self.upsample!r}")
        if int(self.max_pixels) != self.max_pixels or self.max_pixels < 1:
            raise PrepareError(f"--max-pixels must be a positive integer, got {self.max_pixels!r}")
        if not self.quality:
            raise PrepareError("--quality needs at least one scorer, e.g. --quality sharpness")
        names = [parse_quality_spec(q)[0] for q in self.quality]
        if len(set(names)) != len(names):
            raise PrepareError(f"--quality names a scorer twice: {','.join(self.quality)}")
        if self.captions is not None and not Path(self.captions).expanduser().is_file():
            raise PrepareError(f"--captions {self.captions}: no such file (a CSV with a path and a caption column)")

    @property
    def primary_quality(self) -> str:
        return parse_quality_spec(self.quality[0])[0]


def parse_quality_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME"`` or ``"NAME=MODEL_PATH"`` -> ``(name, model_path or None)``."""
    text = str(spec).strip()
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not name or (sep and not path):
        raise PrepareError(f"--quality entry {spec!r} must be NAME or NAME=MODEL_PATH, e.g. sharpness or "
                           "pyiqa:topiq_nr-face=/models/topiq_nr-face.pth")  # fmt: skip
    return name, (path or None)


# ----------------------------------------------------------------------------------------------------------------
# perceptual hash, ids
# ----------------------------------------------------------------------------------------------------------------


def phash(rgb: np.ndarray) -> str:
    """64-bit DCT perceptual hash (``imagehash.phash``) of a uint8 RGB (H, W, 3) image, as 16 hex digits."""
    try:
        import imagehash
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("dataset preparation needs the 'imagehash' package: pip install imagehash") from exc
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(np.ascontiguousarray(rgb))))


def _hash_int(hex_hash: str) -> int:
    value = int(hex_hash, 16)
    if len(hex_hash) != 16 or value >> 64:
        raise ValueError(f"not a 64-bit hash: {hex_hash!r}")
    return value


def hamming_distances(hashes: np.ndarray, h: int) -> np.ndarray:
    """Bits differing between each of ``hashes`` (uint64 (N,)) and ``h`` -> int (N,)."""
    x = np.bitwise_xor(np.asarray(hashes, dtype=np.uint64), np.uint64(h))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int64)


class _HashIndex:
    """pHashes of every kept face (id, uint64) for near-duplicate lookups (vectorised, grows by doubling)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._array = np.zeros(256, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, face_id: str, hex_hash: str) -> None:
        value = _hash_int(hex_hash)
        n = len(self.ids)
        if n == len(self._array):
            self._array = np.concatenate([self._array, np.zeros(n, dtype=np.uint64)])
        self._array[n] = np.uint64(value)
        self.ids.append(face_id)

    def truncate(self, n: int) -> None:
        """Forget the faces added after the first ``n`` (a photo that failed half-way)."""
        del self.ids[n:]

    def nearest(self, hex_hash: str) -> tuple[str, int] | None:
        """(id, distance) of the nearest kept face (the oldest among equals), or None when empty."""
        if not self.ids:
            return None
        d = hamming_distances(self._array[: len(self.ids)], _hash_int(hex_hash))
        i = int(np.argmin(d))
        return self.ids[i], int(d[i])


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def face_id(source_rel: str, face_index: int) -> str:
    """File-system-safe id of face ``face_index`` of the photo at ``source_rel`` (path relative to its SRC):
    ``sub/IMG 1.jpg``, 0 -> ``sub__IMG_1_jpg_f0``. Long paths are shortened with a hash of the full path."""
    rel = str(source_rel).replace("\\", "/").strip("/")
    slug = "__".join(_UNSAFE.sub("_", part).strip("_") or "_" for part in rel.split("/"))
    if len(slug) > 96:
        slug = slug[:80].rstrip("_") + "_" + hashlib.sha1(rel.encode()).hexdigest()[:10]
    return f"{slug}_f{int(face_index)}"


# ----------------------------------------------------------------------------------------------------------------
# small file helpers
# ----------------------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _append_jsonl(path: Path, records: list[dict]) -> None:
    """Append records in one write (a kill leaves at most one partial last line, repaired by the next run)."""
    if not records:
        return
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _repair_tail(path: Path) -> None:
    """Cut a partial last line (left by a killed run) so appends start on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        content = f.read()
        cut = content.rfind(b"\n") + 1
        try:
            json.loads(content[cut:])
        except ValueError:  # cut short by a kill: drop it (its photo is processed again)
            logger.warning("%s: partial last line (%d bytes, from an interrupted run) removed", path, len(content) - cut)
            f.truncate(cut)
        else:  # a complete record without its newline (hand-edited): keep it
            f.seek(0, os.SEEK_END)
            f.write(b"\n")


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """Tolerant reader for the command itself: bad lines are logged and skipped."""
    out: list[tuple[int, dict]] = []
    if not path.is_file():
        return out
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: unreadable line ignored", path, n)
                continue
            if isinstance(rec, dict):
                out.append((n, rec))
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


# ----------------------------------------------------------------------------------------------------------------
# sources and captions
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    path: Path  # absolute
    rel: str  # posix path relative to its SRC root


def discover_sources(srcs: Sequence[str], dataset: Path, recursive: bool = True) -> list[_Source]:
    """Photos under each SRC (folders, files, globs), each with its path relative to that SRC; the dataset folder
    is never walked; the same file reached twice is kept once. Raises :class:`PrepareError`."""
    out: list[_Source] = []
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
            out.append(_Source(Path(path), rel_text))
    return out


def _norm_rel(text: str) -> str:
    t = str(text).strip().replace("\\", "/")
    while t.startswith("./"):
        t = t[2:]
    return t


class _Captions:
    """Caption lookup: CSV rows by path relative to SRC, then absolute path, then unique basename; else template."""

    def __init__(self, template: str | None, csv_path: str | None, column: str, path_column: str | None):
        self.template = template
        self.by_rel: dict[str, str] = {}
        self.by_name: dict[str, str | None] = {}  # None: ambiguous basename
        self.missing = 0
        self.csv_path = csv_path
        if csv_path is None:
            return
        path = Path(csv_path).expanduser()
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = [h.strip() for h in (reader.fieldnames or [])]
                rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise PrepareError(f"--captions {csv_path}: cannot read it as a UTF-8 CSV file ({exc})") from exc
        if column not in header:
            raise PrepareError(f"--captions {csv_path}: no column {column!r} (columns: {', '.join(header) or 'none'});"
                               " name the caption column with --caption-column")  # fmt: skip
        if path_column is None:
            path_column = next((c for c in CAPTION_PATH_COLUMNS if c in header), None)
            if path_column is None:
                raise PrepareError(f"--captions {csv_path}: no path column (looked for {', '.join(CAPTION_PATH_COLUMNS)}"
                                   f"; columns: {', '.join(header)}); name it with --caption-path-column")  # fmt: skip
        elif path_column not in header:
            raise PrepareError(f"--caption-path-column {path_column!r} is not a column of {csv_path} "
                               f"(columns: {', '.join(header)})")  # fmt: skip
        for n, row in enumerate(rows, 2):
            row = {(k or "").strip(): v for k, v in row.items()}
            key, caption = _norm_rel(row.get(path_column) or ""), (row.get(column) or "").strip()
            if not key or not caption:
                continue
            if key in self.by_rel and self.by_rel[key] != caption:
                logger.warning("%s:%d: second caption for %s ignored", csv_path, n, key)
                continue
            self.by_rel[key] = caption
            name = key.rsplit("/", 1)[-1]
            self.by_name[name] = caption if self.by_name.get(name, caption) == caption else None

    def __call__(self, source: _Source) -> str | None:
        if self.csv_path is not None:
            for key in (source.rel, str(source.path).replace("\\", "/")):
                if key in self.by_rel:
                    return self.by_rel[key]
            caption = self.by_name.get(source.rel.rsplit("/", 1)[-1])
            if caption is not None:
                return caption
            self.missing += 1
        return self.template


# ----------------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------------


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


def _no_restore(crops, seeds):  # the face stage only; FaceRestorer needs a restore callable
    return crops, [{} for _ in crops]


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


def prepare_dataset(
    srcs: Sequence[str],
    dataset_dir: str | os.PathLike,
    settings: PrepareSettings,
    detector=None,
    scorers: list | None = None,
    report: Callable[[str], None] | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
) -> PrepareSummary:
    """Add the faces of new photos under ``srcs`` to the dataset at ``dataset_dir`` (see the module docstring).

    ``detector``/``scorers`` (``[(name, scorer)]``) are built from ``settings`` when None and only when there is
    a new photo. ``report(line)`` receives one line per rejected or failed photo (default: logged). Raises
    :class:`PrepareError` for usage problems (before anything is written) and ImportError/ValueError/OSError when
    the detector or a scorer cannot be built.
    """
    settings.validate()
    report = report or (lambda line: logger.info("%s", line))
    dataset = Path(dataset_dir).expanduser().resolve()
    sources = discover_sources(srcs, dataset, settings.recursive)
    captions = _Captions(settings.caption_template, settings.captions, settings.caption_column,
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
        manifest_path, rejected_path = dataset / MANIFEST_NAME, dataset / REJECTED_NAME
        _repair_tail(manifest_path)
        _repair_tail(rejected_path)
        index = _HashIndex()
        ids: set[str] = set()
        known: set[str] = set()
        for _, rec in _read_jsonl(manifest_path):
            if isinstance(rec.get("id"), str):
                ids.add(rec["id"].lower())
                if isinstance(rec.get("phash"), str):
                    with contextlib.suppress(ValueError):
                        index.add(rec["id"], rec["phash"])
            if isinstance(rec.get("source"), str):
                known.add(os.path.realpath(rec["source"]))
        for _, rec in _read_jsonl(rejected_path):
            if isinstance(rec.get("source"), str):
                known.add(os.path.realpath(rec["source"]))
        todo = [s for s in sources if os.path.realpath(s.path) not in known]
        summary.photos_skipped = len(sources) - len(todo)
        started = _now()

        if todo:
            from ..face import create_detector
            from ..restorer import FaceRestorer

            try:
                if detector is None:
                    kwargs = {"upsample": settings.upsample} if settings.detector.lower().startswith("dlib") else {}
                    detector = create_detector(settings.detector, settings.detector_model, **kwargs)
                if scorers is None:
                    scorers = _build_scorers(settings)
            except (OSError, ValueError, ImportError) as exc:
                raise PrepareError(str(exc)) from exc
            face_stage = FaceRestorer(_no_restore, detector, int(settings.crop_size), min_face_size=0.0)
            from tqdm import tqdm

            bar = tqdm(todo, unit="photo", desc="preparing", disable=None if progress else True, file=sys.stderr)
            for source in bar:
                try:
                    _process_photo(source, dataset, settings, face_stage, scorers, index, ids, captions, summary,
                                   report)  # fmt: skip
                except Exception as err:  # noqa: BLE001 - one bad photo never stops the batch
                    line = f"{source.path}: {type(err).__name__}: {err}"
                    summary.failed.append(line)
                    report(f"FAILED {line}")
            bar.close()
        summary.captions_missing = captions.missing

        config["settings"] = asdict(settings)
        config["runs"].append({
            "started": started, "finished": _now(), "argv": list(argv) if argv is not None else None,
            "srcs": [os.path.abspath(s) for s in srcs], "settings": asdict(settings),
            "photos_found": summary.photos_found, "photos_skipped": summary.photos_skipped,
            "photos_processed": summary.photos_processed, "faces_kept": summary.faces_kept,
            "rejected": summary.rejected, "failed": len(summary.failed),
        })  # fmt: skip
        _write_text_atomic(dataset / CONFIG_NAME, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        write_dataset_card(dataset)
    return summary


def _process_photo(source, dataset, settings, face_stage, scorers, index, ids, captions, summary, report) -> None:
    """Read, detect, align, dedupe, score and write the faces of one photo; records appended at the end."""
    summary.photos_processed += 1
    base = {"source": str(source.path), "source_rel": source.rel}
    rejected: list[dict] = []

    def reject(reason: str, detail: str, **extra) -> None:
        rejected.append({**base, "reason": reason, "detail": detail, **extra, "created": _now()})

    try:
        img = io.read_image(source.path, max_pixels=settings.max_pixels)
    except io.ImageReadError as err:
        reject("unreadable", err.reason)
        report(f"unreadable {source.path}: {err.reason}")
        _commit_rejected(dataset, rejected, summary)
        return
    pending = face_stage.prepare(str(source.path), img.rgb)  # all faces, largest first, aligned
    if not pending.faces:
        reject("no_face", f"no face found by the {settings.detector} detector")
        report(f"no face in {source.path}")
        _commit_rejected(dataset, rejected, summary)
        return

    candidates = []  # (face index, face, crop, affine, phash)
    for i, (face, crop, affine) in enumerate(zip(pending.faces, pending.crops, pending.affines)):
        if face.size < settings.min_face_size:
            reject("too_small", f"face {i} is {face.size:.0f} px < --min-face-size {settings.min_face_size:g}",
                   face_index=i, face_size=round(face.size, 2), box=_rounded(face.box))  # fmt: skip
            continue
        if settings.max_faces is not None and len(candidates) >= settings.max_faces:
            summary.faces_beyond_max += 1
            continue
        candidates.append((i, face, crop, affine))

    mark, new_ids = len(index), []
    try:
        _keep_faces(source, dataset, settings, img, candidates, scorers, index, ids, new_ids, captions, summary,
                    rejected, reject, base)  # fmt: skip
    except BaseException:
        index.truncate(mark)  # this photo's faces are not in the manifest: do not dedupe against them
        ids.difference_update(new_ids)
        raise
    for r in rejected:
        if r["reason"] == "duplicate":
            report(f"duplicate {source.path}: {r['detail']}")
    if not candidates and rejected:
        report(f"too small {source.path}: {rejected[0]['detail']}")


def _keep_faces(source, dataset, settings, img, candidates, scorers, index, ids, new_ids, captions, summary,
                rejected, reject, base) -> None:
    """Dedupe, score and write the candidate faces of one photo, then append its records."""
    from ..face import region_boxes

    kept = []
    for i, face, crop, affine in candidates:
        h = phash(crop)
        fid = face_id(source.rel, i)
        if fid.lower() in ids:  # another source with the same slug (e.g. "a b.jpg" and "a_b.jpg")
            fid = f"{fid}-{hashlib.sha1(str(source.path).encode()).hexdigest()[:8]}"
        near = index.nearest(h) if settings.dedupe_threshold >= 0 else None
        if near is not None and near[1] <= settings.dedupe_threshold:
            reject("duplicate", f"face {i} duplicates {near[0]} (pHash distance {near[1]} <= "
                   f"{settings.dedupe_threshold})", face_index=i, duplicate_of=near[0], distance=near[1],
                   phash=h)  # fmt: skip
            continue
        index.add(fid, h)
        ids.add(fid.lower())
        new_ids.append(fid.lower())
        kept.append((i, face, crop, affine, h, fid))

    scores = _score(scorers, [k[2] for k in kept], settings.device)
    crop_size = int(settings.crop_size)
    caption = captions(source) if kept else None
    records = []
    for (i, face, crop, affine, h, fid), quality in zip(kept, scores):
        rel_file = f"{FACES_DIR}/{fid}.png"
        io.write_image(dataset / rel_file, crop)
        lm = np.asarray(face.landmarks, np.float64) @ affine[:, :2].T + affine[:, 2]  # detected points, crop px
        regions = {k: _rounded(v) for k, v in region_boxes(lm, crop_size).items()}
        first = quality[parse_quality_spec(settings.quality[0])[0]]
        records.append({
            "id": fid, "file": rel_file, **base, "face_index": i, "crop_size": crop_size,
            "source_size": list(img.size), "box": _rounded(face.box), "face_size": round(face.size, 2),
            "det_score": round(float(face.score), 4), "source_landmarks": _rounded(face.landmarks),
            "affine": np.round(affine, 6).tolist(), "landmarks": _rounded(lm), "regions": regions,
            "quality": quality, "quality_score": first["score"], "phash": h, "caption": caption,
            "created": _now(),
        })  # fmt: skip
    _append_jsonl(dataset / MANIFEST_NAME, records)
    summary.faces_kept += len(records)
    _commit_rejected(dataset, rejected, summary)


def _commit_rejected(dataset: Path, rejected: list[dict], summary: PrepareSummary) -> None:
    _append_jsonl(dataset / REJECTED_NAME, rejected)
    for r in rejected:
        summary.rejected[r["reason"]] += 1


# ----------------------------------------------------------------------------------------------------------------
# dataset card
# ----------------------------------------------------------------------------------------------------------------

_REASON_TEXT = {
    "unreadable": "photo could not be read (corrupt, truncated, not an image, too large)",
    "no_face": "photo: no face detected",
    "too_small": "face: detected size below --min-face-size",
    "duplicate": "face: near-duplicate (pHash) of a kept face",
}


def quality_histogram(scores: Sequence[float], bins: int = 10, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """Bar chart of scores in [0, 1] (``bins`` equal bins) as uint8 RGB (H, W, 3), drawn with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = size
    counts, edges = np.histogram(np.clip(np.asarray(scores, dtype=np.float64), 0, 1), bins=bins, range=(0.0, 1.0))
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 50, w - 20, 30, h - 40
    draw.text((left, 8), f"quality_score histogram (n = {len(scores)})", fill="black", font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=1)
    peak = max(int(counts.max()) if counts.size else 0, 1)
    bar_w = (right - left) / bins
    for k, c in enumerate(counts):
        x0, x1 = left + k * bar_w + 2, left + (k + 1) * bar_w - 2
        y0 = bottom - (bottom - top) * (c / peak)
        if c:
            draw.rectangle([x0, y0, x1, bottom - 1], fill=(70, 110, 200), outline=(30, 60, 140))
            draw.text((x0 + 2, max(y0 - 14, top - 14)), str(int(c)), fill="black", font=font)
    for k in range(bins + 1):
        x = left + k * bar_w
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        if k % 2 == 0:
            draw.text((x - 8, bottom + 8), f"{edges[k]:.1f}", fill="black", font=font)
    draw.text((left - 40, top - 4), str(peak), fill="black", font=font)
    draw.text((left - 12, bottom - 6), "0", fill="black", font=font)
    return np.asarray(img, dtype=np.uint8)


def _stats(values: list[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [0, 10, 50, 90, 100])
    return " | ".join(f"{v:.3f}" for v in (q[0], q[1], q[2], float(a.mean()), q[3], q[4]))


def write_dataset_card(dataset_dir: str | os.PathLike) -> Path:
    """(Re)write ``dataset_card.md`` and ``quality_hist.png`` from manifest.jsonl, rejected.jsonl and
    prepare_config.json (tolerant of bad lines: use :func:`read_manifest` to validate)."""
    dataset = Path(dataset_dir)
    records = [r for _, r in _read_jsonl(dataset / MANIFEST_NAME)]
    rejected = [r for _, r in _read_jsonl(dataset / REJECTED_NAME)]
    config: dict = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        config = json.loads((dataset / CONFIG_NAME).read_text(encoding="utf-8"))
    scores = [float(r["quality_score"]) for r in records if isinstance(r.get("quality_score"), (int, float))]
    io.write_image(dataset / HIST_NAME, quality_histogram(scores))

    sources = {r.get("source") for r in records} | {r.get("source") for r in rejected}
    kept_photos = {r.get("source") for r in records}
    by_reason = {k: [r for r in rejected if r.get("reason") == k] for k in REJECT_REASONS}
    settings = config.get("settings", {})
    lines = [
        "---",
        "pretty_name: " + json.dumps(dataset.name),
        "task_categories:\n- image-to-image",
        "tags:\n- faces\n- face-restoration\n- authface",
        "---",
        "",
        f"# {dataset.name}",
        "",
        f"Aligned face crops for AuthFace training, made by `authface prepare` (card generated {_now()}).",
        "",
        "## Contents",
        "",
        f"- **{len(records)} faces** kept, from {len(kept_photos)} photos, as lossless PNG "
        f"`{FACES_DIR}/<id>.png`, {config.get('crop_size', '?')}×{config.get('crop_size', '?')} px, FFHQ-aligned",
        f"- {len(sources)} photos seen in {len(config.get('runs', []))} run(s); records in `{MANIFEST_NAME}` "
        f"(one per face) and `{REJECTED_NAME}`",
        "",
        "## Rejected",
        "",
        "| reason | records | photos | meaning |",
        "|---|---:|---:|---|",
    ]
    for reason in REJECT_REASONS:
        recs = by_reason[reason]
        lines.append(f"| {reason} | {len(recs)} | {len({r.get('source') for r in recs})} | {_REASON_TEXT[reason]} |")
    lines += ["", "## Quality", ""]
    if scores:
        lines += [
            f"`quality_score` is the normalised score (0 worst, 1 best) of the first scorer, "
            f"`{config.get('primary_quality', '?')}`; the training image-quality prior conditions on it.",
            "",
            "| scorer | value | min | p10 | median | mean | p90 | max |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        names = list(dict.fromkeys(n for r in records for n in (r.get("quality") or {})))
        for name in names:
            for part in ("score", "raw"):
                vals = [r["quality"][name][part] for r in records if name in (r.get("quality") or {})
                        and isinstance(r["quality"][name].get(part), (int, float))]  # fmt: skip
                if vals:
                    lines.append(f"| {name} | {part} | {_stats(vals)} |")
        lines += ["", f"![quality_score histogram]({HIST_NAME})"]
    else:
        lines.append("No faces yet.")
    captions = [r.get("caption") for r in records]
    n_cap = sum(1 for c in captions if c)
    lines += ["", "## Captions", "", f"{n_cap} of {len(records)} faces have a caption."]
    lines += ["", "## Settings", "", "Latest run:", "", "```json", json.dumps(settings, indent=2), "```", "", "Runs:", ""]
    lines += ["| started | photos found | skipped (done before) | processed | faces kept | rejected | failed |",
              "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for run in config.get("runs", []):
        rej = sum((run.get("rejected") or {}).values())
        lines.append(f"| {run.get('started')} | {run.get('photos_found')} | {run.get('photos_skipped')} | "
                     f"{run.get('photos_processed')} | {run.get('faces_kept')} | {rej} | {run.get('failed')} |")  # fmt: skip
    lines += [
        "",
        "## Manifest schema",
        "",
        "Each line of `manifest.jsonl`: `id`, `file` (relative to this folder), `source` (absolute path), "
        "`source_rel` (path relative to its SRC), `face_index` (0 = largest face of the photo), `crop_size`, "
        "`source_size` [w, h], `box` [x1, y1, x2, y2] in the source photo, `face_size`, `det_score`, "
        "`source_landmarks` (5 × [x, y], source photo), `affine` (2×3, photo → crop), `landmarks` (5 × [x, y] in "
        "the crop: eye on the image left, eye on the image right, nose tip, mouth corners), `regions` "
        "({left_eye, right_eye, nose, mouth}: [x1, y1, x2, y2] in the crop), `quality` ({scorer: {raw, score}}), "
        "`quality_score` (in [0, 1]), `phash` (64-bit hex), `caption`, `created` (ISO time). Load it with "
        "`authface.data.prepare.read_manifest`.",
        "",
    ]
    path = dataset / CARD_NAME
    _write_text_atomic(path, "\n".join(lines))
    return path


# ----------------------------------------------------------------------------------------------------------------
# reading the manifest (training)
# ----------------------------------------------------------------------------------------------------------------


def _check_record(rec, dataset: Path, root_real: str) -> list[str]:
    if not isinstance(rec, dict):
        return [f"not a JSON object ({type(rec).__name__}); fix: delete the line and re-run authface prepare"]
    problems = []
    missing = [k for k in MANIFEST_KEYS if k not in rec]
    if missing:
        problems.append(f"missing key(s) {', '.join(missing)}; fix: re-create the record with authface prepare "
                        "(delete the line and re-run it on the source)")  # fmt: skip
    file = rec.get("file")
    if "file" in rec:
        if not isinstance(file, str) or not file:
            problems.append(f"'file' must be a path relative to the dataset folder, got {file!r}")
        else:
            p = Path(file)
            target = os.path.realpath(dataset / file)
            if p.is_absolute() or ".." in p.parts or not (target + os.sep).startswith(root_real + os.sep):
                problems.append(f"file {file!r} is outside the dataset root {dataset}; fix: move the image into the "
                                f"dataset folder (e.g. {FACES_DIR}/) and give its path relative to it")  # fmt: skip
            elif not os.path.isfile(target):
                problems.append(f"file {file!r} does not exist; fix: restore it or delete this line")
    if "quality_score" in rec:
        q = rec.get("quality_score")
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q) or not 0.0 <= q <= 1.0:
            problems.append(f"quality_score {q!r} is not a number in [0, 1]; fix: re-score the face (normalised "
                            "score of the first scorer) or delete this line")  # fmt: skip
    if "landmarks" in rec:
        lm = rec.get("landmarks")
        try:
            ok = np.asarray(lm, dtype=np.float64).shape == (5, 2)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"landmarks must be 5 [x, y] points, got {lm!r}")
    if "id" in rec and (not isinstance(rec.get("id"), str) or not rec.get("id")):
        problems.append(f"id must be a non-empty string, got {rec.get('id')!r}")
    return problems


def read_manifest(dataset_dir: str | os.PathLike) -> list[dict]:
    """Validated records of ``DATASET/manifest.jsonl``, each with ``path`` (absolute path of its image) added.

    Checks every line (JSON object, keys of :data:`MANIFEST_KEYS`, ``file`` relative and inside the dataset folder
    and present, ``quality_score`` a number in [0, 1], 5 landmarks, unique ids) and raises one
    :class:`ManifestError` listing every bad record with its line number and the fix.
    """
    dataset = Path(dataset_dir).expanduser().resolve()
    path = dataset / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(path, [(0, f"no manifest; fix: create the dataset with `authface prepare SRC -o {dataset}`")])
    root_real = os.path.realpath(dataset)
    problems: list[tuple[int, str]] = []
    records: list[dict] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append((n, f"not valid JSON ({exc.msg}); fix: delete the line (an interrupted run) and "
                                    "re-run authface prepare"))  # fmt: skip
                continue
            bad = _check_record(rec, dataset, root_real)
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                if rec["id"] in seen:
                    bad.append(f"id {rec['id']!r} already used on line {seen[rec['id']]}; fix: delete one of them")
                seen.setdefault(rec["id"], n)
            problems += [(n, msg) for msg in bad]
            if not bad:
                records.append({**rec, "path": str(dataset / rec["file"])})
    if problems:
        raise ManifestError(path, problems)
    return records


# ----------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------


def add_prepare_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``prepare`` to the ``authface`` sub-commands (``set_defaults(func=cmd_prepare)``)."""
    p = subparsers.add_parser(
        "prepare",
        help="detect, align, dedupe and score faces into a training dataset",
        description="Build (or grow) a training dataset of aligned faces from photos. Re-running adds only photos "
        "not seen before. Exit 0 when finished (rejected photos are not failures), 1 when a photo failed "
        "otherwise, 2 for usage errors.",
    )
    d = PrepareSettings()
    p.add_argument("srcs", nargs="+", metavar="SRC", help="image files, folders (recursive) or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder (created or grown)")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="aligned crop side in pixels (default 512)")
    p.add_argument("--min-face-size", type=float, default=d.min_face_size,
                   help="reject faces smaller than this (sqrt of detected box area, pixels; default 64)")  # fmt: skip
    p.add_argument("--detector", default=d.detector, help="dlib | dlib-mmod | yunet | insightface (default dlib)")
    p.add_argument("--detector-model", default=None, help="local model file/folder for yunet/insightface")
    p.add_argument("--upsample", type=int, default=d.upsample, help="dlib upsampling (finds smaller faces; default 1)")
    p.add_argument("--quality", default=",".join(d.quality), metavar="NAME[=MODEL],...",
                   help="quality scorer(s), comma separated: sharpness, niqe=PARAMS.npz, pyiqa:METRIC[=WEIGHTS]; "
                   "the first one's normalised score is quality_score (default sharpness)")  # fmt: skip
    p.add_argument("--device", default=d.device, help="device for the quality scorers (default cpu)")
    p.add_argument("--caption-template", default=None, help="caption of every face, e.g. 'a photo of a face'")
    p.add_argument("--captions", default=None, metavar="FILE.csv",
                   help="CSV with a path column (relative to SRC, basename or absolute) and a caption column")  # fmt: skip
    p.add_argument("--caption-column", default=d.caption_column, help="caption column of --captions (default text)")
    p.add_argument("--caption-path-column", default=None,
                   help=f"path column of --captions (default: first of {', '.join(CAPTION_PATH_COLUMNS)})")  # fmt: skip
    p.add_argument("--dedupe-threshold", type=int, default=d.dedupe_threshold,
                   help="max pHash Hamming distance (of 64 bits) for a near-duplicate; -1 disables (default 6)")  # fmt: skip
    p.add_argument("--max-faces", type=int, default=None, help="keep at most N faces per photo (largest first)")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="refuse larger images as unreadable")
    p.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    p.set_defaults(func=cmd_prepare)
    return p


def settings_from_args(args) -> PrepareSettings:
    return PrepareSettings(
        crop_size=args.crop_size, min_face_size=args.min_face_size, detector=args.detector,
        detector_model=args.detector_model, upsample=args.upsample,
        quality=[q.strip() for q in str(args.quality).split(",") if q.strip()],
        caption_template=args.caption_template, captions=args.captions, caption_column=args.caption_column,
        caption_path_column=args.caption_path_column, dedupe_threshold=args.dedupe_threshold,
        max_faces=args.max_faces, device=args.device, recursive=not args.no_recursive, max_pixels=args.max_pixels,
    )  # fmt: skip


def cmd_prepare(args) -> int:
    """``authface prepare``: 0 finished, 1 some photo failed (not a rejection), 2 usage error."""
    from tqdm import tqdm

    def report(line: str) -> None:
        tqdm.write(f"authface: {line}", file=sys.stderr)

    try:
        settings = settings_from_args(args)
        summary = prepare_dataset(args.srcs, args.output, settings, report=report, argv=sys.argv[1:])
    except PrepareError as e:  # bad option or input, incompatible dataset, detector/scorer unavailable
        print(f"authface: error: {e}", file=sys.stderr)
        return 2
    rej = summary.rejected
    print(
        f"authface: {summary.photos_found} photo(s): {summary.photos_processed} processed, "
        f"{summary.photos_skipped} already in the dataset; {summary.faces_kept} face(s) kept; rejected: "
        + ", ".join(f"{rej[k]} {k}" for k in REJECT_REASONS)
        + (f"; {len(summary.failed)} failed (each named above)" if summary.failed else ""),
        file=sys.stderr,
    )
    if summary.faces_beyond_max:
        print(f"authface: {summary.faces_beyond_max} face(s) beyond --max-faces left out", file=sys.stderr)
    if summary.captions_missing:
        print(f"authface: {summary.captions_missing} photo(s) with kept faces not in {settings.captions}: caption "
              f"{'from --caption-template' if settings.caption_template else 'null'}", file=sys.stderr)  # fmt: skip
    print(f"authface: dataset, manifest and card in {summary.dataset}", file=sys.stderr)
    return 1 if summary.failed else 0
