"""Decoding image files: the one place that reads pixels from disk.

:func:`read_image` gives a :class:`LoadedImage` whose ``rgb`` is always a C-contiguous ``uint8`` RGB array of
shape ``(H, W, 3)`` (never BGR), with the EXIF orientation already applied, plus an optional ``uint8`` alpha
plane. Every failure is an :class:`ImageReadError` whose message is one line, ``"<path>: <reason>"``
(zero-byte, truncated, corrupt, wrongly named files and decompression bombs included).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .modes import finish, float_to_uint8, gray_to_rgb, int_to_uint8, raw_modes, to_rgb_alpha

logger = logging.getLogger(__name__)

#: File extensions (lower case, with the dot) picked up when walking folders
#: and when expanding glob patterns.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)

#: Default decompression-bomb limit, in pixels (width * height).
DEFAULT_MAX_PIXELS = 80_000_000

#: Pillow formats :func:`read_image` will try.  Deliberately a short list of
#: ordinary raster formats: Pillow also knows formats such as EPS (which runs
#: Ghostscript) that have no business in a face-restoration pipeline.
_READ_FORMATS: tuple[str, ...] = (
    "JPEG",  # also yields "MPO" for multi-picture camera JPEGs
    "PNG",
    "WEBP",
    "GIF",
    "BMP",
    "TIFF",
    "PPM",
    "JPEG2000",
    "AVIF",
    "QOI",
)


_BOMB_FIX = "raise the limit with --set io.max_pixels=N if you trust this file"
_UNRECOGNISED = "not a recognised image (content does not match any image format)"


class ImageReadError(Exception):
    """An image file could not be read.

    ``str(err)`` is one line, ``f"{path}: {reason}"``; ``reason`` says what is
    wrong and, where there is one, the fix.  Picklable (safe to send back from
    worker processes).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


@dataclass
class LoadedImage:
    """A decoded image, ready for processing.

    Attributes:
        rgb: C-contiguous ``uint8`` RGB array ``(H, W, 3)``; EXIF orientation
            already applied.
        alpha: C-contiguous ``uint8`` array ``(H, W)`` when the source had
            transparency (RGBA, LA, PA, palette with transparency), else None.
        path: the file that was read.
        format: Pillow format name of the source (``"JPEG"``, ``"PNG"``, ...).
        notes: human-readable notes of every conversion done, e.g.
            ``"CMYK converted to RGB"``, ``"EXIF orientation 6 applied"``.
        icc_profile: the embedded ICC profile when it still describes ``rgb``
            (an RGB profile), else None.  Pass it to :func:`write_image` to
            keep the colours of wide-gamut sources.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    path: Path
    format: str
    notes: list[str] = field(default_factory=list)
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def _sniff(head: bytes) -> str | None:
    """Name of the container the first bytes of a file look like, if any."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 18:
        (dib_size,) = struct.unpack("<I", head[14:18])
        if dib_size in (12, 16, 40, 52, 56, 64, 108, 124):
            return "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        return "HEIF"
    return None


def _is_truncation(exc: BaseException) -> bool:
    if isinstance(exc, EOFError):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("truncated", "broken", "decompress", "crc"))


def _header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from a PNG or classic TIFF header, without decoding."""
    try:
        if kind == "PNG":
            if len(data) >= 24 and data[12:16] == b"IHDR":
                w, h = struct.unpack(">II", data[16:24])
                return int(w), int(h)
            return None
        if kind == "TIFF":
            bo = "<" if data[:2] == b"II" else ">"
            (magic,) = struct.unpack(bo + "H", data[2:4])
            if magic != 42:  # BigTIFF: not parsed here
                return None
            (off,) = struct.unpack(bo + "I", data[4:8])
            (count,) = struct.unpack(bo + "H", data[off : off + 2])
            dims: dict[int, int] = {}
            for i in range(count):
                entry = data[off + 2 + 12 * i : off + 14 + 12 * i]
                tag, typ, _n = struct.unpack(bo + "HHI", entry[:8])
                if tag in (256, 257):
                    if typ == 3:
                        (dims[tag],) = struct.unpack(bo + "H", entry[8:10])
                    elif typ == 4:
                        (dims[tag],) = struct.unpack(bo + "I", entry[8:12])
            if 256 in dims and 257 in dims:
                return dims[256], dims[257]
    except (struct.error, IndexError):
        return None
    return None


def _bomb_error(path: Path, width: int, height: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        path,
        f"image is {width}x{height} = {width * height:,} pixels, above the limit of "
        f"{max_pixels:,} pixels (possible decompression bomb); {_BOMB_FIX}",
    )


@functools.lru_cache(maxsize=1)
def _available_read_formats() -> tuple[str, ...]:
    """The formats of :data:`_READ_FORMATS` this Pillow build can open."""
    Image.init()
    return tuple(fmt for fmt in _READ_FORMATS if fmt in Image.OPEN)


def _open_without_pillow_limit(fp: IO[bytes], filename: str) -> ImageFile.ImageFile | None:
    """Identify and open ``fp`` like ``Image.open`` but without Pillow's global
    ``Image.MAX_IMAGE_PIXELS`` check (ours, with the caller's limit, follows).

    Used only when Pillow refused a file our own limit allows."""
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in _available_read_formats():
        factory, accept = Image.OPEN[fmt]
        result = accept(prefix) if accept else True
        if not result or isinstance(result, str):
            continue
        fp.seek(0)
        try:
            return factory(fp, filename)
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    return None


def _frame_note(fmt: str, n_frames: int) -> str:
    if fmt == "TIFF":
        return f"multi-page: first of {n_frames} pages used"
    if fmt == "MPO":
        return f"multi-picture: first of {n_frames} images used"
    return f"animated: first of {n_frames} frames used"


def decode_with_cv2(
    data: bytes, path: Path, kind: str, max_pixels: int, why: str
) -> tuple[np.ndarray, np.ndarray | None, list[str]] | None:
    """Fallback decoder (OpenCV) for PNG/TIFF variants Pillow cannot decode,
    e.g. float TIFFs.  Returns None when OpenCV cannot decode it either."""
    size = _header_size(data, kind)
    if size is None:
        return None
    if size[0] * size[1] > max_pixels:
        raise _bomb_error(path, size[0], size[1], max_pixels)
    import cv2  # lazy: only needed for this rare fallback

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if arr is None:
        return None
    notes = [f"decoded with OpenCV (Pillow could not: {why})"]
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
        notes.append("16-bit per channel scaled to 8-bit")
    elif np.issubdtype(arr.dtype, np.floating):
        arr, note = float_to_uint8(arr, "floating-point data")
        notes.append(note)
    elif arr.dtype != np.uint8:
        arr, note = int_to_uint8(arr, f"{arr.dtype} data")
        if note:
            notes.append(note)
    alpha = None
    if arr.ndim == 2:
        rgb = gray_to_rgb(arr)
        notes.append("grayscale converted to RGB")
    elif arr.shape[2] == 1:
        rgb = gray_to_rgb(arr[:, :, 0])
        notes.append("grayscale converted to RGB")
    elif arr.shape[2] == 3:
        rgb = arr[:, :, ::-1]
    elif arr.shape[2] == 4:
        rgb, alpha = arr[:, :, 2::-1], arr[:, :, 3]
    else:
        return None
    return finish(rgb), (None if alpha is None else finish(alpha)), notes


_warned_truncated = False


def _warn_if_truncated_images_allowed() -> None:
    global _warned_truncated
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned_truncated:
        _warned_truncated = True
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES was set to True by other code; "
            "truncated images may not be detected"
        )


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file into a :class:`LoadedImage` (uint8 RGB, EXIF applied).

    Args:
        path: the image file.
        max_pixels: decompression-bomb limit; images with more than this many
            pixels (width * height) are refused *before* their pixel data is
            decoded.  Pillow's own global limit is neither relied on nor changed.

    Conversions (each recorded in ``notes``): CMYK (through its ICC profile
    when it has one), YCbCr, LAB and other modes -> RGB; 16-bit data ->
    8-bit by ``value >> 8``; mode "I" kept when within 0..255, else taken as
    16-bit; float data in [0, 1] scaled by 255, else clipped to 0..255;
    grayscale/1-bit -> three equal channels; RGBA/LA/PA and palettes with
    transparency -> RGB + alpha; EXIF orientation applied; only the first
    frame of animated/multi-page files is used.  PNG/TIFF variants Pillow
    cannot decode (e.g. float TIFF) are decoded with OpenCV.

    Raises:
        ImageReadError: for every failure (missing, empty, directory, not an
            image, truncated/corrupt, too large, unsupported), never a raw
            Pillow/OS error.

    Long because the decoding fallbacks (Pillow, then OpenCV), the decompression-bomb checks before
    and after decoding, and the per-format failure messages must run in one order; each step is commented.
    """
    path = Path(path)
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied (check the file's permissions)") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(path, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    _warn_if_truncated_images_allowed()

    with contextlib.ExitStack() as stack:
        try:
            fp = stack.enter_context(open(path, "rb"))
            head = fp.read(32)
        except PermissionError:
            raise ImageReadError(path, "permission denied (check the file's permissions)") from None
        except OSError as exc:
            raise ImageReadError(path, f"cannot read file: {exc.strerror or exc}") from None
        kind = _sniff(head)

        def fallback(why: str) -> LoadedImage | None:
            if kind not in ("PNG", "TIFF"):
                return None
            try:
                data = path.read_bytes()
            except OSError:
                return None
            decoded = decode_with_cv2(data, path, kind, max_pixels, why)
            if decoded is None:
                return None
            rgb, alpha, notes = decoded
            return LoadedImage(rgb=rgb, alpha=alpha, path=path, format=kind, notes=notes)

        # --- identify (lazy: header only) --------------------------------
        im: ImageFile.ImageFile | None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(fp, formats=_available_read_formats())
        except Image.DecompressionBombError:
            # Pillow's global limit is lower than ours: open without it and
            # apply ours below.
            try:
                im = _open_without_pillow_limit(fp, os.fspath(path))
            except Exception as exc:
                raise ImageReadError(path, f"truncated or corrupt image data: {exc}") from None
            if im is None:
                raise ImageReadError(path, f"image too large for Pillow to open; {_BOMB_FIX}") from None
        except UnidentifiedImageError:
            loaded = fallback("unsupported variant")
            if loaded is not None:
                return loaded
            if kind == "HEIF":
                reason = "HEIF/HEIC image: no decoder installed; convert it to JPEG or PNG first"
            elif kind is not None:
                reason = f"truncated or corrupt image data: {kind} header could not be parsed"
            else:
                reason = _UNRECOGNISED
            raise ImageReadError(path, reason) from None
        except Exception as exc:
            raise ImageReadError(path, f"truncated or corrupt image data: {exc}") from None
        stack.callback(im.close)

        # --- decompression-bomb check, before any pixel data is decoded ---
        width, height = im.size
        if width * height > max_pixels:
            raise _bomb_error(path, width, height, max_pixels)
        if width <= 0 or height <= 0:
            raise ImageReadError(path, f"invalid image size {width}x{height}")

        fmt = im.format or kind or "unknown"
        notes: list[str] = []
        try:
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            if n_frames > 1:
                im.seek(0)
                notes.append(_frame_note(fmt, n_frames))
            icc = im.info.get("icc_profile") or None
            rawmodes = raw_modes(im)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()  # LOAD_TRUNCATED_IMAGES is False: truncation raises
        except ImageReadError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageReadError(path, f"{exc}; {_BOMB_FIX}") from None
        except MemoryError:
            raise ImageReadError(path, f"not enough memory to decode {width}x{height} image") from None
        except Exception as exc:
            if not _is_truncation(exc):
                loaded = fallback(str(exc))
                if loaded is not None:
                    return loaded
            raise ImageReadError(path, f"truncated or corrupt image data: {exc}") from None

        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except Exception:  # broken EXIF must not make a good image unreadable
            orientation = 1
        image: Image.Image = im
        if orientation in range(2, 9):
            try:
                image = ImageOps.exif_transpose(im)
                notes.append(f"EXIF orientation {orientation} applied")
            except Exception as exc:
                notes.append(
                    f"EXIF orientation {orientation} could not be applied ({exc}); image used as stored"
                )

        try:
            rgb, alpha, icc = to_rgb_alpha(image, icc, rawmodes, notes)
            rgb = finish(rgb)
            alpha = None if alpha is None else finish(alpha)
        except MemoryError:
            raise ImageReadError(path, f"not enough memory to decode {width}x{height} image") from None
        except Exception as exc:
            raise ImageReadError(path, f"unsupported image mode {image.mode!r}: {exc}") from None

    return LoadedImage(rgb=rgb, alpha=alpha, path=path, format=fmt, notes=notes, icc_profile=icc)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte pieces (checksums, cache keys)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
