"""Writing files atomically: images, copies, text, JSON and append-only JSONL.

Every writer here goes through :func:`atomic_write` (temporary file in the destination folder, ``fsync``,
``os.replace``), so a crash never leaves a half-written output behind; JSONL files are appended one fsynced
write at a time and read back tolerantly with :func:`read_jsonl`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

#: Extension -> Pillow format used by :func:`write_image`.
_WRITE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})
#: Extensions :func:`write_image` can write (lower case, with the dot).
WRITABLE_EXTENSIONS: frozenset[str] = frozenset(_WRITE_FORMATS)


def _default_file_mode() -> int:
    """0o666 minus the process umask, read without changing it where possible."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    dst: Path, write: Callable[[IO[bytes]], None], finalize: Callable[[Path], None] | None = None
) -> None:
    """Write ``dst`` through a temporary file in the same folder, fsync and
    ``os.replace``; on any exception the temporary file is removed and the
    exception re-raised (``dst`` is untouched)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(  # closed/removed below
        dir=dst.parent, prefix=f".{dst.stem}.", suffix=f"{dst.suffix}.tmp", delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        write(tmp)
        tmp.flush()
        os.fsync(tmp.fileno())
        tmp.close()
        if finalize is not None:
            finalize(tmp_path)
        else:
            try:
                mode = stat.S_IMODE(dst.stat().st_mode)
            except OSError:
                mode = _default_file_mode()
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, dst)
    except BaseException:
        tmp.close()
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    _fsync_dir(dst.parent)


def _check_uint8(name: str, arr: Any, ndim: int) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got {arr.dtype} (convert with authface.io.to_uint8)")
    if arr.ndim != ndim or (ndim == 3 and arr.shape[2] != 3):
        want = "(H, W, 3)" if ndim == 3 else "(H, W)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    return np.ascontiguousarray(arr)


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    quality: int = 95,
    icc_profile: bytes | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    text: dict[str, str] | None = None,
) -> list[str]:
    """Write a uint8 RGB ``(H, W, 3)`` (or gray ``(H, W)``, e.g. a mask) image atomically; the format comes from
    the extension. ``text``: key/value text chunks stored in PNG files (provenance, e.g. what changed the image);
    ignored with a debug log line for other formats.

    Returns notes for the user (empty when nothing was lost). Transparency is never dropped silently: for formats
    that cannot store it (JPEG, BMP), an ``alpha`` with any transparent pixel is composited onto ``background``
    (white by default; a cut-out on black would look like a black background), a warning is logged and a note
    returned.

    ``.jpg``/``.jpeg`` -> JPEG (``quality``; 4:4:4 chroma when quality >= 90),
    ``.png``, ``.webp`` (``quality``), ``.bmp``, ``.tif``/``.tiff`` (LZW when
    available).  ``alpha`` is written for PNG, WebP and TIFF and dropped for
    the others.  ``icc_profile`` is embedded when given (BMP cannot hold one).
    No EXIF is written: orientation was applied on reading.  Parent folders
    are created.  The file appears complete or not at all.

    Raises:
        ValueError: unknown extension, bad shape, quality out of 1..100.
        TypeError: ``rgb``/``alpha`` not uint8 numpy arrays.
        OSError: the file system refused (the destination is left untouched).

    Long because of this docstring and the per-format save parameters.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = _WRITE_FORMATS.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(_WRITE_FORMATS))
        raise ValueError(f"{path}: unknown image extension {path.suffix!r} (supported: {known})")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    rgb = _check_uint8("gray", rgb, 2) if isinstance(rgb, np.ndarray) and rgb.ndim == 2 else _check_uint8("rgb", rgb, 3)
    if alpha is not None:
        if rgb.ndim == 2:
            raise ValueError("alpha is supported with RGB images only")
        alpha = _check_uint8("alpha", alpha, 2)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match rgb shape {rgb.shape}")

    img = Image.fromarray(rgb)
    notes: list[str] = []
    if alpha is not None:
        if fmt in _ALPHA_FORMATS:
            img = Image.fromarray(np.dstack([rgb, alpha]))
        elif (alpha < 255).any():
            img = Image.fromarray(flatten_alpha(rgb, alpha, background))
            notes.append(
                f"transparency dropped: {fmt} cannot store it, so the image was composited onto "
                f"RGB{tuple(background)}; write PNG, WebP or TIFF (e.g. --ext png) to keep it"
            )
            logger.warning("%s: %s", path, notes[-1])

    params: dict[str, Any] = {}
    if fmt == "JPEG":
        params["quality"] = int(quality)
        if quality >= 90:
            params["subsampling"] = 0
    elif fmt == "WEBP":
        params["quality"] = int(quality)
    elif fmt == "TIFF":
        from PIL import features

        if features.check("libtiff"):
            params["compression"] = "tiff_lzw"
    if icc_profile and fmt != "BMP":
        params["icc_profile"] = icc_profile
    if text and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_itxt(str(key), str(value))
        params["pnginfo"] = info
    elif text:
        logger.debug("%s: %s cannot store text chunks; not written", path, fmt)

    atomic_write(path, lambda f: img.save(f, format=fmt, **params))
    return notes


#: How :func:`place_file` puts a file in place.
PLACE_MODES = ("copy", "symlink", "hardlink")


def place_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], mode: str = "copy") -> None:
    """Put ``src`` at ``dst``: ``copy`` (atomic, byte for byte, metadata kept), ``symlink`` (to ``src``'s absolute
    path) or ``hardlink`` (a copy where the file system cannot link). An existing ``dst`` is replaced; parent
    folders are created.

    Raises:
        ValueError: an unknown ``mode``.
    """
    src, dst = Path(src), Path(dst)
    if mode not in PLACE_MODES:
        raise ValueError(f"place_file: mode must be one of {', '.join(PLACE_MODES)}, got {mode!r}")
    if mode == "copy":
        copy_file(src, dst)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if mode == "symlink":
        os.symlink(src.resolve(), dst)
        return
    try:
        os.link(src, dst)
    except OSError:  # another file system: copy instead
        copy_file(src, dst)


def flatten_alpha(
    rgb: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Composite uint8 RGB ``(H, W, 3)`` with uint8 alpha ``(H, W)`` onto a solid ``background`` colour."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    bg = np.asarray(background, np.float32).reshape(1, 1, 3)
    return np.clip(np.rint(rgb.astype(np.float32) * a + bg * (1.0 - a)), 0, 255).astype(np.uint8)


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy ``src`` to ``dst`` atomically (temp file + fsync + ``os.replace``),
    keeping mode and timestamps.  Parent folders of ``dst`` are created.
    Copying a file onto itself does nothing.

    Raises:
        FileNotFoundError: ``src`` is missing or not a file.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    with contextlib.suppress(OSError):
        if dst.exists() and os.path.samefile(src, dst):
            return

    def finalize(tmp_path: Path) -> None:
        try:
            shutil.copystat(src, tmp_path)
        except OSError as exc:
            logger.debug("could not copy metadata of %s: %s", src, exc)

    with open(src, "rb") as fsrc:
        atomic_write(dst, lambda f: shutil.copyfileobj(fsrc, f, 1024 * 1024), finalize)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parent folders created)."""
    atomic_write(Path(path), lambda f: f.write(data))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (parent folders created)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (UTF-8, non-ASCII kept) to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------
# JSONL: append-only logs and manifests
# --------------------------------------------------------------------------


def append_jsonl(path: str | os.PathLike[str], records: Iterable[dict]) -> None:
    """Append ``records`` to a JSONL file in one fsynced write.

    A kill leaves at most one partial last line, which :func:`repair_jsonl_tail` removes before the next append
    and :func:`read_jsonl` reports as a bad line. Parent folders are created.
    """
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not data:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def repair_jsonl_tail(path: str | os.PathLike[str]) -> None:
    """Cut a partial last line (left by a killed run) so that appends start on a fresh line.

    A complete record that only lacks its newline (a hand-edited file) is kept and the newline added.
    """
    path = Path(path)
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
        except ValueError:
            logger.warning(
                "%s: partial last line (%d bytes, from an interrupted run) removed", path, len(content) - cut
            )
            f.truncate(cut)
        else:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line of a JSONL file: ``record`` (a dict) or ``error`` (why it is not one)."""

    path: Path
    lineno: int
    record: dict | None
    error: str | None = None

    @property
    def where(self) -> str:
        """``"<path>:<line>"``, for messages."""
        return f"{self.path}:{self.lineno}"


def read_jsonl(path: str | os.PathLike[str], missing_ok: bool = True) -> Iterator[JsonlLine]:
    """Every non-blank line of a JSONL file, in order, each parsed or with the reason it could not be.

    Callers decide what a bad line means: tolerant readers (resume) log ``line.error`` and skip, strict
    readers (a training manifest) collect every ``where: error`` and raise.

    Raises:
        FileNotFoundError: the file does not exist and ``missing_ok`` is False.
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                yield JsonlLine(path, n, None, f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(rec, dict):
                yield JsonlLine(path, n, None, f"expected a JSON object, got {type(rec).__name__}")
                continue
            yield JsonlLine(path, n, rec)


def user_cache_dir(*parts: str) -> Path:
    """AuthFace's folder in the user cache: ``$XDG_CACHE_HOME/authface/<parts>`` (default ``~/.cache/authface``),
    e.g. ``user_cache_dir("dlib")`` for converted weights. Not created here."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root).expanduser().joinpath("authface", *parts)
