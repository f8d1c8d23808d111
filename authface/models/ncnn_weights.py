"""Read ncnn ``.param`` / ``.bin`` model files in pure Python (numpy), without the ncnn runtime.

Only what is needed to lift the weights of plain convolutional networks out of an ncnn model:

* :func:`parse_ncnn_param` parses the text ``.param`` file (magic ``7767517``, a ``layer_count blob_count``
  line, then one line per layer: ``type name n_in n_out in_blobs... out_blobs... key=value...``).
  Keys are integers; a value is an int, a float (contains ``.`` or ``e``) or, for a negative key
  ``-23300 - k``, an array ``count,v0,v1,...`` stored under key ``k``.
* :func:`read_convolutions` walks the layers in file order and reads each ``Convolution`` layer's blobs from
  the ``.bin`` file the way ncnn's ``ModelBinFromDataReader`` does: the weight (``weight_data_size`` values)
  starts with a 4-byte tag -- ``0x01306B47`` float16 (padded to 4 bytes), ``0x00000000`` float32, ``0x0002C056``
  float32 -- and the bias (``num_output`` float32 values, no tag) follows when ``bias_term`` (key 5) is 1.

Layer types that carry no weights (``Input``, ``Split``, ``Concat``, ``Eltwise``, ``BinaryOp``, ``Interp``,
activations) are skipped; any other type with weights raises :class:`NcnnFormatError` rather than silently
misreading the rest of the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["NcnnFormatError", "NcnnLayer", "NcnnConvolution", "parse_ncnn_param", "read_convolutions"]

logger = logging.getLogger(__name__)

PARAM_MAGIC = 7767517
TAG_FLOAT16 = 0x01306B47
TAG_FLOAT32_SCALED = 0x0002C056
TAG_INT8 = 0x000D4B38
WEIGHTLESS_TYPES = frozenset(
    {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU", "Sigmoid", "TanH", "Crop", "Noop"}
)


class NcnnFormatError(ValueError):
    """An ncnn ``.param`` / ``.bin`` file that is malformed or uses a feature this reader does not support."""


@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn ``.param`` file.

    ``params`` maps the integer key to an ``int``, a ``float`` or (array keys) a ``list`` of numbers.
    """

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, int | float | list[int | float]] = field(default_factory=dict)

    def get(self, key: int, default: int | float | list[int | float] = 0) -> int | float | list[int | float]:
        """The value of ``key``, or ``default`` (ncnn's default for most keys is 0)."""
        return self.params.get(key, default)


@dataclass(frozen=True)
class NcnnConvolution:
    """A ``Convolution`` layer with its weights.

    ``weight``: float32 ``(out_channels, in_channels, kernel_h, kernel_w)`` (the torch ``Conv2d`` layout);
    ``bias``: float32 ``(out_channels,)`` or ``None``; ``stored_dtype``: ``"float16"`` or ``"float32"``, how the
    weight was stored in the ``.bin`` file.
    """

    layer: NcnnLayer
    weight: np.ndarray
    bias: np.ndarray | None
    stored_dtype: str


def _parse_value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, int | float | list[int | float]]:
    params: dict[int, int | float | list[int | float]] = {}
    for token in tokens:
        key_text, sep, value_text = token.partition("=")
        try:
            key = int(key_text)
            if not sep:
                raise ValueError("missing '='")
            if key <= -23300:
                count_text, *values = value_text.split(",")
                if int(count_text) != len(values):
                    raise ValueError(f"array count {count_text} but {len(values)} values")
                params[-key - 23300] = [_parse_value(v) for v in values]
            else:
                params[key] = _parse_value(value_text)
        except ValueError as exc:
            raise NcnnFormatError(f"{where}: bad parameter {token!r}: {exc}") from None
    return params


def parse_ncnn_param(text: str, source: str = "<param>") -> list[NcnnLayer]:
    """Parse the text of an ncnn ``.param`` file into its layers, in file order.

    Raises :class:`NcnnFormatError` on a wrong magic number, a layer count that does not match, or a
    malformed line (``source`` names the file in the message).
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise NcnnFormatError(f"{source}: not a text ncnn .param file (first line must be {PARAM_MAGIC})")
    try:
        layer_count = int(lines[1][0])
    except (IndexError, ValueError):
        raise NcnnFormatError(f"{source}: line 2 must be 'layer_count blob_count'") from None
    layers = []
    for lineno, tokens in enumerate(lines[2:], start=3):
        where = f"{source}:{lineno}"
        try:
            n_in, n_out = int(tokens[2]), int(tokens[3])
        except (IndexError, ValueError):
            raise NcnnFormatError(f"{where}: expected 'type name n_in n_out ...'") from None
        blobs = tokens[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise NcnnFormatError(f"{where}: expected {n_in + n_out} blob names, got {len(blobs)}")
        params = _parse_params(tokens[4 + n_in + n_out :], where)
        layers.append(NcnnLayer(tokens[0], tokens[1], tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{source}: header says {layer_count} layers, file has {len(layers)}")
    return layers


class _BinReader:
    """Sequential reader over the bytes of an ncnn ``.bin`` file."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, nbytes: int, what: str) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise NcnnFormatError(
                f"{self.source}: truncated while reading {what} ({nbytes} bytes at offset {self.pos}, "
                f"file has {len(self.data)})"
            )
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def float32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> tuple[np.ndarray, str]:
        """ncnn's ``load(w, type=0)``: a 4-byte tag, then float16 (4-byte aligned) or float32 values."""
        tag = int.from_bytes(self.take(4, f"{what} tag"), "little")
        if tag == TAG_FLOAT16:
            padded = (2 * count + 3) // 4 * 4
            raw = self.take(padded, what)[: 2 * count]
            return np.frombuffer(raw, dtype="<f2").astype(np.float32), "float16"
        if tag in (0, TAG_FLOAT32_SCALED):
            return self.float32(count, what), "float32"
        kind = "int8" if tag == TAG_INT8 else "quantized (256-entry table)"
        raise NcnnFormatError(f"{self.source}: {what} is stored as {kind} (tag {tag:#010x}); not supported")


def _read_convolution(layer: NcnnLayer, reader: _BinReader) -> NcnnConvolution:
    num_output = int(layer.get(0))
    kernel_w = int(layer.get(1))
    kernel_h = int(layer.get(11, kernel_w))
    weight_size = int(layer.get(6))
    if layer.get(8) != 0 or layer.get(18, 0) != 0:
        raise NcnnFormatError(f"{reader.source}: layer {layer.name} is int8-quantized; not supported")
    in_channels, rest = divmod(weight_size, max(num_output * kernel_h * kernel_w, 1))
    if num_output < 1 or kernel_w < 1 or rest or in_channels < 1:
        raise NcnnFormatError(
            f"{reader.source}: layer {layer.name}: weight_data_size {weight_size} is not "
            f"num_output {num_output} x in_channels x {kernel_h} x {kernel_w}"
        )
    flat, stored = reader.tagged(weight_size, f"{layer.name} weight")
    weight = flat.reshape(num_output, in_channels, kernel_h, kernel_w)
    bias = reader.float32(num_output, f"{layer.name} bias") if layer.get(5) == 1 else None
    return NcnnConvolution(layer, weight, bias, stored)


def read_convolutions(param_path: str | Path, bin_path: str | Path) -> list[NcnnConvolution]:
    """All ``Convolution`` layers of an ncnn model with their weights, in ``.param`` file order.

    Raises :class:`NcnnFormatError` when the files are malformed, contain a layer type with weights other
    than ``Convolution``, use int8/quantized storage, or when bytes are left over at the end of the
    ``.bin`` file (a sign of a misread); ``OSError`` when a file cannot be read.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    layers = parse_ncnn_param(param_path.read_text(encoding="utf-8"), source=str(param_path))
    reader = _BinReader(bin_path.read_bytes(), source=str(bin_path))
    convolutions = []
    for layer in layers:
        if layer.type == "Convolution":
            convolutions.append(_read_convolution(layer, reader))
        elif layer.type not in WEIGHTLESS_TYPES:
            raise NcnnFormatError(f"{param_path}: layer type {layer.type!r} ({layer.name}) is not supported")
    if reader.pos != len(reader.data):
        raise NcnnFormatError(
            f"{bin_path}: {len(reader.data) - reader.pos} bytes left after the last layer; the weights were misread"
        )
    logger.debug("read %d convolutions from %s", len(convolutions), bin_path)
    return convolutions
