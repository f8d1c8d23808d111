"""Image and record files: the only place that decodes, encodes and converts images.

* :mod:`.read`: :func:`read_image` -> :class:`LoadedImage` (``uint8`` RGB ``(H, W, 3)``, EXIF orientation applied,
  optional ``uint8`` alpha); every failure is a one-line :class:`ImageReadError`.
* :mod:`.write`: atomic writers (:func:`write_image`, :func:`copy_file`, :func:`write_text`, :func:`write_json`)
  and append-only JSONL (:func:`append_jsonl`, :func:`read_jsonl`, :func:`repair_jsonl_tail`).
* :mod:`.discover`: :func:`discover_inputs` expands files, folders and glob patterns.
* :mod:`.convert`: ``uint8`` RGB arrays <-> ``[-1, 1]`` RGB ``(B, 3, H, W)`` tensors, :func:`to_uint8`.

Only numpy and Pillow are imported at import time; OpenCV and torch are imported lazily where needed.
"""

from .convert import as_rgb_alpha, numpy_to_tensor, tensor_to_numpy, to_uint8
from .discover import discover_inputs
from .read import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError, LoadedImage, read_image, sha256_file
from .write import (
    WRITABLE_EXTENSIONS,
    JsonlLine,
    append_jsonl,
    atomic_write,
    copy_file,
    flatten_alpha,
    place_file,
    read_jsonl,
    repair_jsonl_tail,
    user_cache_dir,
    write_bytes,
    write_image,
    write_json,
    write_text,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "WRITABLE_EXTENSIONS",
    "ImageReadError",
    "JsonlLine",
    "LoadedImage",
    "append_jsonl",
    "as_rgb_alpha",
    "atomic_write",
    "copy_file",
    "flatten_alpha",
    "place_file",
    "discover_inputs",
    "numpy_to_tensor",
    "read_image",
    "read_jsonl",
    "repair_jsonl_tail",
    "sha256_file",
    "tensor_to_numpy",
    "to_uint8",
    "user_cache_dir",
    "write_bytes",
    "write_image",
    "write_json",
    "write_text",
]
