"""Conversion of insightface's ONNX recognisers into :class:`~authface.models.iresnet.IResNet` weights.

insightface's recognisers (``buffalo_l/w600k_r50.onnx``, ``antelopev2/glintr100.onnx``, ...) are IResNets
exported to ONNX: PyTorch exports fold each Conv+BatchNorm into a biased Conv; MXNet-era conversions keep
separate BatchNorm nodes and start with a ``Sub``/``Mul`` input normalisation. :func:`convert_onnx_to_iresnet`
follows the graph's data path from the input (stem, residual blocks, head), maps the initialisers onto IResNet's
state dict (a folded BatchNorm becomes an identity BatchNorm carrying the Conv's bias; BatchNorm epsilons are
absorbed into the running variance) and infers the blocks per stage (r18/r34/r50/r100/r200). Nothing is
interpreted: anything it does not recognise raises ``ValueError`` naming the file and the node.

``onnx`` is an optional extra (``pip install 'authface[onnx]'``), imported only here, only when converting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import torch

from .arcface import require_file
from .iresnet import IResNet, check_state_dict, iresnet_arch_name

__all__ = ["ONNX_WEIGHTS_HINT", "ConvertedIResNet", "convert_onnx_to_iresnet"]

ONNX_WEIGHTS_HINT = (
    "AuthFace never downloads weights. Get an insightface ONNX recogniser yourself, e.g. w600k_r50.onnx from the "
    "buffalo_l pack (usually ~/.insightface/models/buffalo_l/w600k_r50.onnx) or glintr100.onnx from antelopev2, "
    "and pass the .onnx file (or the folder holding it)"
)
_BN_EPS = 1e-5  # the epsilon of every IResNet BatchNorm
_PASS_THROUGH = ("Identity", "Dropout", "Cast")  # no-ops on the data path at inference (Cast: fp16 exports)
#: Ops that only alias, cast or add unit axes to an initialiser (PRelu slopes of exports without constant folding).
_CONST_VIEWS = ("Identity", "Cast", "Unsqueeze", "Squeeze")


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "converting an ONNX recogniser needs the 'onnx' package; install it with `pip install 'authface[onnx]'`"
        ) from exc
    return onnx


def _as_model_proto(model: Any) -> Any:
    onnx = _import_onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(str(require_file(model, "insightface ONNX recogniser", ONNX_WEIGHTS_HINT)))
    raise TypeError(
        f"expected an onnx.ModelProto, bytes or a path to a .onnx file, got {type(model).__name__}"
    )


def _describe(nodes: list[Any]) -> str:
    return ", ".join(f"{n.op_type} (node {n.name or n.output[0]!r})" for n in nodes) or "nothing"


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in out.items()}


def _bn_entries(key: str, scale, bias, mean, var, eps: float) -> dict[str, np.ndarray]:
    """An inference BatchNorm ``(x - mean) / sqrt(var + eps) * scale + bias`` as IResNet BatchNorm entries
    (epsilon :data:`_BN_EPS`): the epsilon difference moves into the variance, or, where that would leave a
    variance <= 0, into the scale."""
    scale, bias, mean, var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (scale, bias, mean, var))
    new_var = var + (eps - _BN_EPS)
    if (new_var <= 0).any():
        scale, new_var = scale / np.sqrt(var + eps), np.full_like(var, 1.0 - _BN_EPS)
    out = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": new_var}
    return {f"{key}.{k}": v.astype(np.float32) for k, v in out.items()}


class _GraphReader:
    """Walks an ONNX recogniser's data path and collects IResNet state-dict entries (numpy float32)."""

    def __init__(self, model: Any, source: str):
        from onnx import helper, numpy_helper

        self.source = source
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = []
        for node in graph.node:  # ONNX graphs are topologically sorted
            if (
                node.op_type == "Constant"
                and len(node.attribute) == 1
                and node.attribute[0].name != "sparse_value"
            ):
                value = helper.get_attribute_value(node.attribute[0])
                self.consts[node.output[0]] = (
                    numpy_helper.to_array(value) if hasattr(value, "data_type") else np.asarray(value)
                )
            elif node.op_type in _CONST_VIEWS and node.input[0] in self.consts:
                self.consts[node.output[0]] = self.consts[node.input[0]]  # values kept; read as flat or 2-D
            else:
                self.nodes.append(node)
        self.users: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.consts:
                    self.users.setdefault(name, []).append(node)
        inputs = [v.name for v in graph.input if v.name not in self.consts]
        if len(inputs) != 1:
            self.fail(f"expected one image input, found {inputs}")
        self.input = inputs[0]
        self.outputs = {v.name for v in graph.output}
        self.sd: dict[str, np.ndarray] = {}

    def fail(self, what: str) -> NoReturn:
        raise ValueError(
            f"cannot convert {self.source} into AuthFace's IResNet (insightface's ArcFace network): {what}. "
            "Only insightface IResNet recognisers (w600k_r50.onnx, glintr100.onnx, ...) are supported"
        )

    def follow(self, t: str) -> tuple[str, list[Any]]:
        """Skip pass-through nodes after tensor ``t``; return the last tensor and its data readers."""
        while True:
            users = [n for n in self.users.get(t, []) if n.op_type != "Shape"]
            if len(users) != 1 or users[0].op_type not in _PASS_THROUGH:
                return t, users
            t = users[0].output[0]

    def next(self, t: str, expected: str) -> Any:
        """The one node reading ``t`` (after pass-through nodes), which must be an ``expected`` op."""
        _, users = self.follow(t)
        if len(users) != 1 or users[0].op_type != expected:
            self.fail(f"expected {expected} after tensor {t!r}, found {_describe(users)}")
        return users[0]

    def const(self, node: Any, index: int, what: str) -> np.ndarray:
        name = node.input[index] if len(node.input) > index else ""
        if name not in self.consts:
            self.fail(f"{what} of {_describe([node])} is not a constant")
        return np.asarray(self.consts[name], dtype=np.float32)

    def batchnorm(self, node: Any, key: str, conv_bias: np.ndarray | None = None) -> str:
        scale, bias, mean, var = (self.const(node, i, f"input {i}") for i in range(1, 5))
        if conv_bias is not None:  # BN(conv(x) + b) == BN with mean - b
            mean = mean - conv_bias
        eps = float(_attrs(node).get("epsilon", 1e-5))
        self.sd.update(_bn_entries(key, scale, bias, mean, var, eps))
        return node.output[0]

    def conv_bn(self, node: Any, key: str, bn_key: str, kernel: int, stride: int, pad: int) -> str:
        """A Conv (``node``) and its BatchNorm, separate or folded into the Conv's bias."""
        attrs = _attrs(node)
        want = {"kernel_shape": [kernel] * 2, "strides": [stride] * 2, "pads": [pad] * 4, "dilations": [1, 1]}
        defaults = {"strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1]}
        got = {k: list(attrs.get(k, defaults.get(k, []))) for k in want}
        if got != want or attrs.get("group", 1) != 1 or attrs.get("auto_pad", "NOTSET") != "NOTSET":
            self.fail(f"{_describe([node])} for {key} has {attrs}, expected {want}")
        weight = self.const(node, 1, "the weight")
        self.sd[f"{key}.weight"] = weight
        bias = self.const(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        out, users = self.follow(node.output[0])
        if len(users) == 1 and users[0].op_type == "BatchNormalization":
            return self.batchnorm(users[0], bn_key, bias)
        n = weight.shape[0]  # folded: an identity BatchNorm that adds the Conv's bias
        bias = np.zeros(n, np.float32) if bias is None else bias
        self.sd.update(_bn_entries(bn_key, np.ones(n), bias, np.zeros(n), np.ones(n), 0.0))
        return out

    def prelu(self, t: str, key: str, channels: int) -> str:
        node = self.next(t, "PRelu")
        slope = self.const(node, 1, "the slope").reshape(-1)
        self.sd[f"{key}.weight"] = np.broadcast_to(slope, (channels,)).copy() if slope.size == 1 else slope
        return node.output[0]


@dataclass
class ConvertedIResNet:
    """An ONNX recogniser converted by :func:`convert_onnx_to_iresnet`.

    ``backbone``: the IResNet with the graph's weights (``(B, 3, n, n) -> (B, D)``, eval mode);
    ``input_scale``/``input_shift``: the graph's own input normalisation ``x * scale + shift`` (float32 ``(3,)``,
    per RGB channel; 1 and 0 when the graph has none); ``pixel_input``: insightface's rule for what to feed the
    graph (0..255 pixels when its first nodes are a Sub and a Mul, else ``(x - 127.5) / 127.5``).
    """

    backbone: IResNet
    input_scale: torch.Tensor
    input_shift: torch.Tensor
    pixel_input: bool

    @property
    def arch(self) -> str:
        """``"r50"``, ... or ``"iresnet-a-b-c-d"`` for other blocks per stage."""
        layers = self.backbone.layers
        return iresnet_arch_name(layers) or "iresnet-" + "-".join(map(str, layers))


def _self_normalising(model: Any, first: int = 8) -> bool:
    """insightface's ``ArcFaceONNX`` rule: a graph whose first nodes include a Sub and a Mul (MXNet-converted
    models: ``_minus``/``_mul`` nodes) normalises 0..255 pixels itself; otherwise the caller feeds
    ``(x - 127.5) / 127.5``. Op types are checked as well as names."""
    find_sub = find_mul = False
    for node in list(model.graph.node)[:first]:
        name = node.name or ""
        if node.op_type == "Sub" or name.startswith("Sub") or name.startswith("_minus"):
            find_sub = True
        if node.op_type == "Mul" or name.startswith("Mul") or name.startswith("_mul"):
            find_mul = True
    return find_sub and find_mul


def _read_input_affine(r: _GraphReader) -> tuple[str, np.ndarray, np.ndarray]:
    """Sub/Mul/Div/Add by constants before the first Conv -> (tensor after them, scale (3,), shift (3,))."""
    t, scale, shift = r.input, np.ones(3), np.zeros(3)
    while True:
        t2, users = r.follow(t)
        node = users[0] if len(users) == 1 else None
        if node is None or node.op_type not in ("Sub", "Mul", "Div", "Add"):
            return t2, scale.astype(np.float32), shift.astype(np.float32)
        index = 1 if node.input[0] == t2 else 0  # the constant operand; x - c and x / c only
        if index == 0 and node.op_type in ("Sub", "Div"):
            r.fail(f"input normalisation {_describe([node])} computes constant {node.op_type} input")
        c = r.const(node, index, "the constant operand").astype(np.float64).reshape(-1)
        if c.size not in (1, 3):
            r.fail(f"input normalisation {_describe([node])} by a constant of shape {c.shape}")
        if node.op_type == "Sub":
            shift = shift - c
        elif node.op_type == "Add":
            shift = shift + c
        else:
            c = c if node.op_type == "Mul" else 1.0 / c
            scale, shift = scale * c, shift * c
        t = node.output[0]


def _read_blocks(r: _GraphReader, t: str) -> tuple[str, list[int]]:
    """Residual blocks from tensor ``t`` until the head's BatchNorm -> (tensor before it, blocks per stage)."""
    layers: list[int] = []
    while True:
        t, users = r.follow(t)
        kinds = sorted(u.op_type for u in users)
        if kinds == ["BatchNormalization"]:
            return t, layers
        if kinds not in (["Add", "BatchNormalization"], ["BatchNormalization", "Conv"]):
            r.fail(
                f"expected a residual block (BatchNorm and Add or Conv) after {t!r}, found {_describe(users)}"
            )
        downsample = "Conv" in kinds
        if downsample:
            layers.append(0)
        elif not layers:
            r.fail("the first residual block has no downsampling shortcut")
        if len(layers) > 4:
            r.fail("more than 4 stages of residual blocks")
        key = f"layer{len(layers)}.{layers[-1]}"
        layers[-1] += 1
        bn = next(u for u in users if u.op_type == "BatchNormalization")
        x = r.batchnorm(bn, f"{key}.bn1")
        x = r.conv_bn(r.next(x, "Conv"), f"{key}.conv1", f"{key}.bn2", 3, 1, 1)
        x = r.prelu(x, f"{key}.prelu", int(r.sd[f"{key}.conv1.weight"].shape[0]))
        x = r.conv_bn(r.next(x, "Conv"), f"{key}.conv2", f"{key}.bn3", 3, 2 if downsample else 1, 1)
        shortcut = t
        if downsample:
            conv = next(u for u in users if u.op_type == "Conv")
            shortcut = r.conv_bn(conv, f"{key}.downsample.0", f"{key}.downsample.1", 1, 2, 0)
        add = r.next(x, "Add")
        if sorted(add.input) != sorted([r.follow(x)[0], r.follow(shortcut)[0]]):
            r.fail(f"{_describe([add])} does not add block {key}'s two branches")
        t = add.output[0]


def _read_head(r: _GraphReader, t: str) -> str:
    """BatchNorm -> Flatten/Reshape -> Gemm (or MatMul [+ Add]) -> [BatchNorm]; returns the embedding tensor."""
    t = r.batchnorm(r.follow(t)[1][0], "bn2")
    _, users = r.follow(t)
    if len(users) != 1 or users[0].op_type not in ("Flatten", "Reshape"):
        r.fail(f"expected Flatten after the last BatchNorm, found {_describe(users)}")
    flat = users[0]
    if flat.op_type == "Flatten" and _attrs(flat).get("axis", 1) != 1:
        r.fail(f"{_describe([flat])} does not flatten to (N, C*H*W)")
    _, users = r.follow(flat.output[0])
    fc = users[0] if len(users) == 1 else None
    if fc is not None and fc.op_type == "Gemm":
        attrs = _attrs(fc)
        if attrs.get("transA", 0):
            r.fail(f"{_describe([fc])} transposes its input")
        w = r.const(fc, 1, "the weight")
        w = (w if attrs.get("transB", 0) else w.T) * attrs.get("alpha", 1.0)
        has_c = len(fc.input) > 2 and fc.input[2]
        bias = r.const(fc, 2, "the bias") * attrs.get("beta", 1.0) if has_c else np.zeros(w.shape[0])
        t = fc.output[0]
    elif fc is not None and fc.op_type == "MatMul":
        w = r.const(fc, 1, "the weight").T
        t, users = r.follow(fc.output[0])
        bias = np.zeros(w.shape[0], np.float32)
        if len(users) == 1 and users[0].op_type == "Add":
            bias, t = r.const(users[0], 1, "the bias"), users[0].output[0]
    else:
        r.fail(f"expected the fully connected layer (Gemm or MatMul) after Flatten, found {_describe(users)}")
    r.sd["fc.weight"], r.sd["fc.bias"] = (
        np.ascontiguousarray(w, np.float32),
        np.asarray(bias, np.float32).ravel(),
    )
    t, users = r.follow(t)
    n = w.shape[0]
    if len(users) == 1 and users[0].op_type == "BatchNormalization":
        t, users = r.follow(r.batchnorm(users[0], "features"))
    else:  # folded into the fully connected layer
        r.sd.update(_bn_entries("features", np.ones(n), np.zeros(n), np.zeros(n), np.ones(n), 0.0))
    if users or t not in r.outputs:
        r.fail(f"the embedding {t!r} is not the graph's output: the graph continues with {_describe(users)}")
    return t


def convert_onnx_to_iresnet(model: Any, source: str | None = None) -> ConvertedIResNet:
    """Convert an insightface ONNX recogniser (``onnx.ModelProto``, bytes or path) into an IResNet.

    ``source`` names the model in error messages (default: the path, or ``"the ONNX model"``). Raises
    ``ValueError`` naming the file and the node when the graph is not an IResNet this converter understands,
    ``ImportError`` (naming the ``onnx`` extra) when ``onnx`` is missing.
    """
    if source is None:
        source = repr(str(model)) if isinstance(model, (str, os.PathLike)) else "the ONNX model"
    proto = _as_model_proto(model)
    r = _GraphReader(proto, source)
    t, scale, shift = _read_input_affine(r)
    t = r.conv_bn(r.next(t, "Conv"), "conv1", "bn1", 3, 1, 1)
    t = r.prelu(t, "prelu", int(r.sd["conv1.weight"].shape[0]))
    t, layers = _read_blocks(r, t)
    if len(layers) != 4:
        r.fail(f"found {len(layers)} stages of residual blocks ({layers}), IResNet has 4")
    _read_head(r, t)
    in_features = int(r.sd["fc.weight"].shape[1])
    if in_features % 512:
        r.fail(f"the fully connected layer takes {in_features} features, not a multiple of 512")
    backbone = IResNet(layers, num_features=int(r.sd["fc.weight"].shape[0]), fc_scale=in_features // 512)
    sd = {k: torch.tensor(np.asarray(v, dtype=np.float32)) for k, v in r.sd.items()}
    check_state_dict(backbone, sd, f"cannot convert {source}: its weights do not fit IResNet {tuple(layers)}")
    backbone.load_state_dict(sd, strict=False)
    return ConvertedIResNet(
        backbone.eval(), torch.from_numpy(scale), torch.from_numpy(shift), _self_normalising(proto)
    )
