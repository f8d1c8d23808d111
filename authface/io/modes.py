"""Pixel-mode conversions of decoded images: 16-bit, float, CMYK (with its ICC profile), palette, gray and
gray+alpha to C-contiguous uint8 RGB plus an optional alpha plane, and OpenCV decoding of what Pillow cannot read.
Used by :func:`authface.io.read.read_image`; each conversion appends a human-readable note.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageCms

logger = logging.getLogger(__name__)


def raw_modes(im: Image.Image) -> list[str]:
    """Raw modes of the undecoded tiles (tells e.g. 16-bit PNG/TIFF apart)."""
    out: list[str] = []
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            out.append(args[0])
        elif isinstance(args, str):
            out.append(args)
    return out


def float_to_uint8(arr: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """Floats: [0, 1] data is scaled by 255; anything else is taken as 0-255
    data and clipped.  NaN becomes 0."""
    a = np.nan_to_num(arr.astype(np.float64, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    lo = float(a.min()) if a.size else 0.0
    hi = float(a.max()) if a.size else 0.0
    if lo >= 0.0 and hi <= 1.0:
        return np.rint(a * 255.0).astype(np.uint8), f"{what} scaled from [0, 1] to 8-bit"
    out = np.rint(np.clip(a, 0.0, 255.0)).astype(np.uint8)
    return out, f"{what} (range {lo:g}..{hi:g}) clipped to [0, 255]"


def int_to_uint8(arr: np.ndarray, what: str) -> tuple[np.ndarray, str | None]:
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


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def icc_colour_space(icc: bytes | None) -> bytes | None:
    if icc and len(icc) >= 20:
        return icc[16:20]
    return None


def cmyk_to_rgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    if icc and icc_colour_space(icc) == b"CMYK":
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


def to_rgb_alpha(
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
            rgb, alpha = gray_to_rgb(la[:, :, 0]), la[:, :, 1]
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
        rgb = gray_to_rgb(gray)
        notes.append("1-bit converted to RGB" if mode == "1" else "grayscale converted to RGB")
    elif mode.startswith("I;16"):
        gray16 = np.asarray(im).astype(np.uint16)
        rgb = gray_to_rgb((gray16 >> 8).astype(np.uint8))
        notes.append("16-bit grayscale scaled to 8-bit")
    elif mode == "I" or mode.startswith("I;"):
        gray, note = int_to_uint8(np.asarray(im), "32-bit integer grayscale")
        rgb = gray_to_rgb(gray)
        notes.append(note or "32-bit integer grayscale converted to 8-bit")
    elif mode == "F" or mode.startswith("F;"):
        gray, note = float_to_uint8(np.asarray(im), "32-bit float grayscale")
        rgb = gray_to_rgb(gray)
        notes.append(note)
    elif mode == "CMYK":
        rgb = np.asarray(cmyk_to_rgb(im, icc, notes))
        icc = None  # the output is sRGB now; the CMYK profile no longer applies
    else:  # YCbCr, LAB, HSV, RGBX, ... : Pillow knows how
        rgb = np.asarray(im.convert("RGB"))
        notes.append(f"{mode} converted to RGB")

    if icc is not None and icc_colour_space(icc) != b"RGB ":
        space = (icc_colour_space(icc) or b"?").decode("ascii", "replace").strip()
        notes.append(f"embedded {space or 'non-RGB'} ICC profile dropped (output is RGB)")
        icc = None
    return rgb, alpha, icc


def finish(arr: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.uint8)
    if not out.flags.writeable:  # e.g. np.asarray(PIL image) is a read-only view
        out = out.copy()
    return out
