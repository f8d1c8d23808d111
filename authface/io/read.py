"""Decoding image files: the one place that reads pixels from disk.

:func:`read_image` gives a :class:`LoadedImage` whose ``rgb`` is always a C-contiguous ``uint8`` RGB array of
shape ``(H, W, 3)`` (never BGR), with the EXIF orientation already applied, plus an optional ``uint8`` alpha
plane. Every failure is an :class:`ImageReadError` whose message is one line, ``"<path>: <reason>"``
(zero-byte, truncated, corrupt, wrongly named files and decompression bombs included).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

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


def _rawmodes(im: Image.Image) -> list[str]:
    """Raw modes of the undecoded tiles (tells e.g. 16-bit PNG/TIFF apart)."""
    out: list[str] = []
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            out.append(args[0])
        elif isinstance(args, str):
            out.append(args)
    return out


def _float_to_uint8(arr: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """Floats: [0, 1] data is scaled by 255; anything else is taken as 0-255
    data and clipped.  NaN becomes 0."""
    a = np.nan_to_num(arr.astype(np.float64, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    lo = float(a.min()) if a.size else 0.0
    hi = float(a.max()) if a.size else 0.0
    if lo >= 0.0 and hi <= 1.0:
        return np.rint(a * 255.0).astype(np.uint8), f"{what} scaled from [0, 1] to 8-bit"
    out = np.rint(np.clip(a, 0.0, 255.0)).astype(np.uint8)
    return out, f"{what} (range {lo:g}..{hi:g}) clipped to [0, 255]"


def _int_to_uint8(arr: np.ndarray, what: str) -> tuple[np.ndarray, str | None]:
    """Integer data wider than 8 bit (mode "I", OpenCV int images).

    Data already within 0..255 is kept as is; otherwise it is taken as 16-bit
    data: clipped to 0..65535 and shifted right by 8."""
    a = arr.astype(np.int64, copy=False)
    lo = int(a.min()) if a.size else 0
    hi = int(a.max()) if a.size else 0
    if lo >= 0 and hi <= 255:
        return a.astype(np.uint8), None
    out = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
    return out, f"{what} (range {lo}..{hi}) treated as 16-bit and scaled to 8-bit"


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _icc_colour_space(icc: bytes | None) -> bytes | None:
    if icc and len(icc) >= 20:
        return icc[16:20]
    return None


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    if icc and _icc_colour_space(icc) == b"CMYK":
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                notes.append("CMYK converted to sRGB using the embedded ICC profile")
                return out
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            logger.debug("ICC CMYK conversion failed (%s); using plain conversion", exc)
    notes.append("CMYK converted to RGB")
    return im.convert("RGB")


def _to_rgb_alpha(
    im: Image.Image, icc: bytes | None, rawmodes: list[str], notes: list[str]
) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    """Convert a loaded Pillow image of any mode to (uint8 RGB, alpha, icc)."""
    mode = im.mode
    alpha: np.ndarray | None = None
    if any(";16" in r for r in rawmodes) and mode in ("RGB", "RGBA", "LA"):
        notes.append("16-bit per channel scaled to 8-bit")

    if mode == "RGB":
        rgb = np.asarray(im)
    elif mode in ("RGBA", "RGBa", "PA", "La", "LA") or (mode == "P" and "transparency" in im.info):
        if mode in ("LA", "La"):
            la = np.asarray(im.convert("LA") if mode == "La" else im)
            rgb, alpha = _gray_to_rgb(la[:, :, 0]), la[:, :, 1]
            notes.append("grayscale with alpha converted to RGB + alpha")
        else:
            rgba = np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
            rgb, alpha = rgba[:, :, :3], rgba[:, :, 3]
            if mode in ("P", "PA"):
                notes.append("palette with transparency converted to RGB + alpha")
    elif mode == "P":
        rgb = np.asarray(im.convert("RGB"))
        notes.append("palette converted to RGB")
    elif mode in ("L", "1"):
        gray = np.asarray(im.convert("L") if mode == "1" else im)
        rgb = _gray_to_rgb(gray)
        notes.append("1-bit converted to RGB" if mode == "1" else "grayscale converted to RGB")
    elif mode.startswith("I;16"):
        gray16 = np.asarray(im).astype(np.uint16)
        rgb = _gray_to_rgb((gray16 >> 8).astype(np.uint8))
        notes.append("16-bit grayscale scaled to 8-bit")
    elif mode == "I" or mode.startswith("I;"):
        gray, note = _int_to_uint8(np.asarray(im), "32-bit integer grayscale")
        rgb = _gray_to_rgb(gray)
        notes.append(note or "32-bit integer grayscale converted to 8-bit")
    elif mode == "F" or mode.startswith("F;"):
        gray, note = _float_to_uint8(np.asarray(im), "32-bit float grayscale")
        rgb = _gray_to_rgb(gray)
        notes.append(note)
    elif mode == "CMYK":
        rgb = np.asarray(_cmyk_to_rgb(im, icc, notes))
        icc = None  # the output is sRGB now; the CMYK profile no longer applies
    else:  # YCbCr, LAB, HSV, RGBX, ... : Pillow knows how
        rgb = np.asarray(im.convert("RGB"))
        notes.append(f"{mode} converted to RGB")

    if icc is not None and _icc_colour_space(icc) != b"RGB ":
        space = (_icc_colour_space(icc) or b"?").decode("ascii", "replace").strip()
        notes.append(f"embedded {space or 'non-RGB'} ICC profile dropped (output is RGB)")
        icc = None
    return rgb, alpha, icc


def _finish(arr: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.uint8)
    if not out.flags.writeable:  # e.g. np.asarray(PIL image) is a read-only view
        out = out.copy()
    return out


def _decode_with_cv2(
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
        arr, note = _float_to_uint8(arr, "floating-point data")
        notes.append(note)
    elif arr.dtype != np.uint8:
        arr, note = _int_to_uint8(arr, f"{arr.dtype} data")
        if note:
            notes.append(note)
    alpha = None
    if arr.ndim == 2:
        rgb = _gray_to_rgb(arr)
        notes.append("grayscale converted to RGB")
    elif arr.shape[2] == 1:
        rgb = _gray_to_rgb(arr[:, :, 0])
        notes.append("grayscale converted to RGB")
    elif arr.shape[2] == 3:
        rgb = arr[:, :, ::-1]
    elif arr.shape[2] == 4:
        rgb, alpha = arr[:, :, 2::-1], arr[:, :, 3]
    else:
        return None
    return _finish(rgb), (None if alpha is None else _finish(alpha)), notes


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
            decoded = _decode_with_cv2(data, path, kind, max_pixels, why)
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
            rawmodes = _rawmodes(im)
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
            rgb, alpha, icc = _to_rgb_alpha(image, icc, rawmodes, notes)
            rgb = _finish(rgb)
            alpha = None if alpha is None else _finish(alpha)
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
