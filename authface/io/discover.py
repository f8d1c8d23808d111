"""Expanding command-line inputs (files, folders, glob patterns) into image files to process."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .read import IMAGE_EXTENSIONS


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _glob_base(pattern: str) -> str:
    """The leading part of a glob pattern that contains no wildcard."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if _has_magic(part):
            break
        fixed.append(part)
    return os.path.join(*fixed) if fixed else "."


def _is_excluded(real: str, excluded: Sequence[str]) -> bool:
    return any(real == ex or real.startswith(ex.rstrip(os.sep) + os.sep) for ex in excluded)


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(root: str, recursive: bool, excluded: Sequence[str]) -> Iterator[str]:
    """Image files under ``root`` (absolute paths); hidden entries skipped,
    excluded folders pruned, symlinked folders followed once."""
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in visited or _is_excluded(real_dir, excluded):
            dirnames[:] = []
            continue
        visited.add(real_dir)
        if recursive:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        else:
            dirnames[:] = []
        for name in sorted(filenames):
            if name.startswith(".") or not _is_image_name(name):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                yield full


def _disambiguate(rel: Path, prefix: str, taken: set[str]) -> Path:
    """``rel`` if free, else ``<prefix>_<name>``, else ``<prefix>_<stem>_<n><ext>``."""
    key = rel.as_posix().casefold()
    if key not in taken:
        taken.add(key)
        return rel
    prefix = prefix or "root"
    candidate = rel.with_name(f"{prefix}_{rel.name}")
    n = 2
    while candidate.as_posix().casefold() in taken:
        candidate = rel.with_name(f"{prefix}_{rel.stem}_{n}{rel.suffix}")
        n += 1
    taken.add(candidate.as_posix().casefold())
    return candidate


def discover_inputs(
    inputs: Sequence[str], recursive: bool = True, exclude: Sequence[Path] = ()
) -> list[tuple[Path, Path]]:
    """Expand files, folders and glob patterns into ``(absolute path,
    relative output path)`` pairs, in a deterministic order.

    * A **folder** is walked (into sub-folders when ``recursive``) for files
      whose extension, in any case, is in :data:`IMAGE_EXTENSIONS`, sorted;
      files and folders whose name starts with ``.`` are skipped; symlinked
      folders are followed (each real folder once).  Relative path: the path
      inside that folder.
    * An existing **file** is returned whatever its extension (the reader
      reports what is wrong with it).  Relative path: its name.
    * Otherwise a **glob pattern** (``*``, ``?``, ``[``; ``**`` recurses),
      expanded with ``glob.glob(..., recursive=True)``: matched files with an
      image extension are taken, matched folders are walked as above.
      Relative path: the path below the pattern's leading wildcard-free
      folder, which is just the name for patterns like ``dir/*.jpg``.

    Anything at or under a folder in ``exclude`` is skipped in folder walks
    and glob matches (an explicitly named file is always taken).  The same
    file reached twice (compared by real path) is kept once, the first time.

    Output collisions (compared case-insensitively, for case-insensitive file
    systems) are resolved deterministically: the later entry gets the name of
    the folder it came from prefixed, ``b/x.jpg`` -> ``b_x.jpg`` (the input
    folder for folder walks, the file's own folder for files, the pattern's
    fixed folder for glob matches), and if that is taken too, a counter:
    ``b_x_2.jpg``, ``b_x_3.jpg``, ...  Callers that change the extension of
    outputs must handle ``x.jpg``/``x.png`` pairs themselves.

    Raises:
        FileNotFoundError: an input names nothing, a folder holds no image
            files, or a pattern matches no image files.

    Long because most of it is this docstring and the three input kinds' rules, kept together so
    the collision and exclusion rules read in one place.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [os.fspath(inputs)]
    excluded = [os.path.realpath(os.fspath(e)) for e in exclude]
    seen: set[str] = set()
    taken: set[str] = set()
    results: list[tuple[Path, Path]] = []
    kinds = ", ".join(sorted(IMAGE_EXTENSIONS))

    for entry in inputs:
        text = os.fspath(entry)
        if not text:
            raise FileNotFoundError("empty input path")
        found: list[tuple[str, Path, str]] = []  # (absolute path, relative path, prefix)
        if os.path.isdir(text):
            root = os.path.abspath(text)
            prefix = os.path.basename(root)
            for full in _walk(root, recursive, excluded):
                found.append((full, Path(os.path.relpath(full, root)), prefix))
            found.sort(key=lambda item: item[1].parts)
            if not found:
                where = "or its sub-folders " if recursive else ""
                raise FileNotFoundError(f"{text}: folder {where}contains no image files ({kinds})")
        elif os.path.exists(text):
            full = os.path.abspath(text)
            found.append((full, Path(os.path.basename(full)), os.path.basename(os.path.dirname(full))))
        elif _has_magic(text):
            base = os.path.abspath(_glob_base(text))
            prefix = os.path.basename(base)
            hits = sorted(glob.glob(text, recursive=True))
            if not hits:
                raise FileNotFoundError(f"{text}: pattern matches nothing")
            for hit in hits:
                full = os.path.abspath(hit)
                if os.path.isdir(full):
                    files = sorted(
                        _walk(full, recursive, excluded), key=lambda f, d=full: Path(f).relative_to(d).parts
                    )
                elif _is_image_name(full) and not _is_excluded(os.path.realpath(full), excluded):
                    files = [full]
                else:
                    files = []
                for f in files:
                    rel = os.path.relpath(f, base)
                    if rel.startswith(os.pardir):
                        rel = os.path.basename(f)
                    found.append((f, Path(rel), prefix))
            if not found:
                raise FileNotFoundError(
                    f"{text}: pattern matches {len(hits)} path(s) but no image files ({kinds})"
                )
        else:
            raise FileNotFoundError(f"{text}: no such file or folder")

        for full, rel, prefix in found:
            real = os.path.realpath(full)
            if real in seen:
                continue
            seen.add(real)
            results.append((Path(full), _disambiguate(rel, prefix, taken)))
    return results
