"""Ratings CSV files: image paths and human ratings, with the column names people actually use.

    image,rating                       path,score              file,rater_1,rater_2,rater_3
    faces/001.png,3.5                  a.jpg,0.81              x.png,4,5,
    faces/002.png,2.0                  b.jpg,0.33              y.png,2,,3

* The image column is the first of ``image``, ``path``, ``file`` (also ``filename``, ``image_path``, ``img``),
  matched without regard to case or surrounding spaces. Paths are relative to the CSV's folder (absolute paths
  are kept).
* The rating is the first of ``rating``, ``score``, ``mos`` (also ``mean``, ``label``, ``target``). Without one,
  every other column is taken as one rater's rating and the row's rating is the mean of its non-empty cells
  (a row needs at least one); ``rater_columns`` names them explicitly.
* Every problem — a missing image file, a non-numeric or non-finite rating, a row rated by nobody, a duplicate
  image — is reported as ``ratings.csv:LINE: what is wrong``; all problems are collected and raised together
  (:class:`RatingsError`), so one pass fixes the file.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMAGE_COLUMNS", "RATING_COLUMNS", "Rating", "RatingsError", "read_ratings"]

#: Accepted names of the image column, in order of preference (case-insensitive).
IMAGE_COLUMNS = ("image", "path", "file", "filename", "image_path", "img")
#: Accepted names of the rating column, in order of preference (case-insensitive).
RATING_COLUMNS = ("rating", "score", "mos", "mean", "label", "target")
_MAX_REPORTED = 20


class RatingsError(ValueError):
    """A ratings CSV that cannot be used; ``problems`` holds one ``"file:line: message"`` per problem."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = self.problems[:_MAX_REPORTED]
        more = len(self.problems) - len(shown)
        text = "\n  ".join(shown) + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(f"{len(self.problems)} problem(s) in the ratings file:\n  {text}")


@dataclass(frozen=True)
class Rating:
    """One usable row: the image file, its rating (mean over raters when there are several) and its CSV line."""

    path: Path
    rating: float
    line: int
    raters: int = 1


def _find(fields: dict[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        if name in fields:
            return fields[name]
    return None


def _number(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def read_ratings(
    csv_path: str | os.PathLike, rater_columns: Sequence[str] | None = None, check_files: bool = True
) -> list[Rating]:
    """Parse a ratings CSV (see the module docstring) into one :class:`Rating` per row, in file order.

    Args:
        csv_path: the CSV file (UTF-8, a BOM is accepted; comma, semicolon or tab separated, sniffed).
        rater_columns: per-rater columns to average; default: the rating column if there is one, else every
            column other than the image column.
        check_files: report rows whose image file does not exist.

    Raises:
        FileNotFoundError: ``csv_path`` does not exist.
        RatingsError: no image or rating column, no rows, or bad rows (each named ``file:line``).

    Long because of its docstring (the accepted CSV shapes) and the per-line error collection.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"ratings file {csv_path} not found")
    text = csv_path.read_text(encoding="utf-8-sig")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text.splitlines(), dialect)
    header = next(reader, None)
    if not header:
        raise RatingsError([f"{csv_path}:1: empty file (expected a header such as 'image,rating')"])
    fields = {h.strip().lower(): h for h in header}
    image_col = _find(fields, IMAGE_COLUMNS)
    if image_col is None:
        raise RatingsError([f"{csv_path}:1: no image column; name one of {', '.join(IMAGE_COLUMNS)} "
                            f"(header is {', '.join(header)})"])  # fmt: skip
    if rater_columns:
        missing = [c for c in rater_columns if c.strip().lower() not in fields]
        if missing:
            raise RatingsError([f"{csv_path}:1: rater column(s) {', '.join(missing)} not in the header"])
        value_cols = [fields[c.strip().lower()] for c in rater_columns]
    else:
        rating_col = _find(fields, RATING_COLUMNS)
        value_cols = [rating_col] if rating_col else [h for h in header if h != image_col and h.strip()]
    if not value_cols:
        raise RatingsError([f"{csv_path}:1: no rating column; name one of {', '.join(RATING_COLUMNS)} "
                            "or give one column per rater"])  # fmt: skip
    index = {h: i for i, h in enumerate(header)}
    rows, problems, seen = [], [], {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        where = f"{csv_path}:{line}"
        cells = cells + [""] * (len(header) - len(cells))
        name = cells[index[image_col]].strip()
        if not name:
            problems.append(f"{where}: empty image path")
            continue
        values, bad = [], []
        for col in value_cols:
            cell = cells[index[col]].strip()
            if not cell:
                continue
            try:
                values.append(_number(cell))
            except ValueError:
                bad.append(f"{col}={cell!r}")
        path = Path(name) if os.path.isabs(name) else csv_path.parent / name
        if bad:
            problems.append(f"{where}: non-numeric rating {', '.join(bad)} for {name}")
        elif not values:
            problems.append(f"{where}: no rating for {name} (empty {', '.join(value_cols)})")
        key = os.path.normcase(os.path.normpath(path))
        if key in seen:
            problems.append(f"{where}: duplicate row: {name} is already rated on line {seen[key]}")
            continue
        seen[key] = line
        if check_files and not path.is_file():
            problems.append(f"{where}: image file {name} not found (looked for {path})")
            continue
        if values and not bad:
            rows.append(Rating(path, sum(values) / len(values), line, len(values)))
    if problems:
        raise RatingsError(problems)
    if not rows:
        raise RatingsError([f"{csv_path}: no rated images (only a header)"])
    return rows
