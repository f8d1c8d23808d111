"""Captions of prepared faces: a fixed template, or rows of a CSV file matched to each photo's path."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from .prepare_settings import PrepareError

__all__ = ["CAPTION_PATH_COLUMNS", "Captions"]

logger = logging.getLogger(__name__)

#: Path columns looked for in a captions CSV, in this order, when none is named.
CAPTION_PATH_COLUMNS = ("file", "path", "filename", "file_name", "image")


def _norm_rel(text: str) -> str:
    t = str(text).strip().replace("\\", "/")
    while t.startswith("./"):
        t = t[2:]
    return t


class Captions:
    """Caption lookup: CSV rows by path relative to SRC, then absolute path, then unique basename; else template.

    Args:
        template: caption of photos the CSV does not name (None: no caption).
        csv_path: UTF-8 CSV with a path column and a caption column, or None.
        column: the caption column.
        path_column: the path column (None: the first of :data:`CAPTION_PATH_COLUMNS` present).

    Raises:
        PrepareError: the CSV cannot be read or lacks the columns (the message names the option to fix).
    """

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

    def __call__(self, rel: str, path: Path) -> str | None:
        """Caption of the photo at ``path`` (``rel``: its path relative to its SRC); counts photos the CSV misses."""
        if self.csv_path is not None:
            for key in (rel, str(path).replace("\\", "/")):
                if key in self.by_rel:
                    return self.by_rel[key]
            caption = self.by_name.get(rel.rsplit("/", 1)[-1])
            if caption is not None:
                return caption
            self.missing += 1
        return self.template
