"""The prepared dataset's files and records: names, the manifest schema, face ids, and :func:`read_manifest`.

::

    DATASET/faces/<id>.png      aligned crops, uint8 RGB (crop_size, crop_size, 3), PNG
    DATASET/manifest.jsonl      one record per kept face (schema: MANIFEST_KEYS, read it with read_manifest)
    DATASET/rejected.jsonl      one record per rejected photo/face: source, reason (REJECT_REASONS), detail
    DATASET/dataset_card.md     counts, rejections by reason, quality summary, settings (regenerated every run)
    DATASET/quality_hist.png    histogram of quality_score
    DATASET/prepare_config.json settings of the dataset and of every run
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import math
import os
import re
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
    "SCHEMA_VERSION",
    "ManifestError",
    "check_record",
    "face_id",
    "read_manifest",
    "read_records",
    "utc_now",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
REJECTED_NAME = "rejected.jsonl"
CARD_NAME = "dataset_card.md"
HIST_NAME = "quality_hist.png"
CONFIG_NAME = "prepare_config.json"
FACES_DIR = "faces"
SCHEMA_VERSION = 1

#: Why a photo (unreadable, no_face) or a face (too_small, duplicate) was left out.
REJECT_REASONS = ("unreadable", "no_face", "too_small", "duplicate")

#: Keys every manifest record has (``read_manifest`` checks them).
MANIFEST_KEYS = (
    "id", "file", "source", "source_rel", "face_index", "crop_size", "box", "landmarks", "regions",
    "quality", "quality_score", "phash", "caption", "created",
)  # fmt: skip


class ManifestError(ValueError):
    """``manifest.jsonl`` has bad records. ``problems``: ``(line number, message with the fix)``, every one; the
    message names each as ``path:line`` (line 0: the file itself)."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]):
        self.path = Path(path)
        self.problems = list(problems)
        lines = [f"{self.path}:{n}: {msg}" if n else f"{self.path}: {msg}" for n, msg in self.problems]
        super().__init__(f"{len(self.problems)} problem(s) in {self.path}:\n" + "\n".join(lines))


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second (the ``created`` field of records)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def face_id(source_rel: str, face_index: int) -> str:
    """File-system-safe id of face ``face_index`` of the photo at ``source_rel`` (path relative to its SRC):
    ``sub/IMG 1.jpg``, 0 -> ``sub__IMG_1_jpg_f0``. Long paths are shortened with a hash of the full path."""
    rel = str(source_rel).replace("\\", "/").strip("/")
    slug = "__".join(_UNSAFE.sub("_", part).strip("_") or "_" for part in rel.split("/"))
    if len(slug) > 96:
        slug = slug[:80].rstrip("_") + "_" + hashlib.sha1(rel.encode()).hexdigest()[:10]
    return f"{slug}_f{int(face_index)}"


def read_records(path: str | os.PathLike) -> list[dict]:
    """Tolerant reader of ``manifest.jsonl`` / ``rejected.jsonl`` for ``prepare`` itself and the dataset card:
    every record in order; bad lines are logged (``path:line``) and skipped; a missing file has no records."""
    records = []
    for line in io.read_jsonl(path):
        if line.record is None:
            logger.warning("%s: unreadable line ignored (%s)", line.where, line.error)
        else:
            records.append(line.record)
    return records


def check_record(rec: dict, dataset: Path, root_real: str) -> list[str]:
    """Problems of one manifest record (each with its fix; empty when it is fine). ``root_real``: the real path of
    ``dataset``."""
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
    and present, ``quality_score`` a number in [0, 1], 5 landmarks, unique ids).

    Raises:
        ManifestError: listing every bad record with its line number and the fix (also when there is no manifest).
    """
    dataset = Path(dataset_dir).expanduser().resolve()
    path = dataset / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(path, [(0, f"no manifest; fix: create the dataset with `authface prepare SRC -o {dataset}`")])
    root_real = os.path.realpath(dataset)
    problems: list[tuple[int, str]] = []
    records: list[dict] = []
    seen: dict[str, int] = {}
    for line in io.read_jsonl(path):
        rec = line.record
        if rec is None:
            problems.append((line.lineno, f"{line.error}; fix: delete the line (an interrupted run) and re-run "
                                          "authface prepare"))  # fmt: skip
            continue
        bad = check_record(rec, dataset, root_real)
        if isinstance(rec.get("id"), str):
            if rec["id"] in seen:
                bad.append(f"id {rec['id']!r} already used on line {seen[rec['id']]}; fix: delete one of them")
            seen.setdefault(rec["id"], line.lineno)
        problems += [(line.lineno, msg) for msg in bad]
        if not bad:
            records.append({**rec, "path": str(dataset / rec["file"])})
    if problems:
        raise ManifestError(path, problems)
    return records
