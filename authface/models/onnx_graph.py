"""A small ONNX graph interpreter: an ``nn.Module`` that runs an ONNX graph with torch ops, so it is differentiable.

Written by hand because onnx2torch imports torchvision at import time, which the core must not need. It covers
the ops that insightface recognisers and ``torch.onnx`` exports of IResNet use (``SUPPORTED_ONNX_OPS``);
initialisers and Constant nodes become buffers, nodes run in topological order, and an unsupported op raises
``NotImplementedError`` naming the op and the node when the graph is loaded. Tested against onnxruntime.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "ONNX recognisers need the 'onnx' package; install it with `pip install 'authface[onnx]'`"
        ) from exc
    return onnx


def _as_model_proto(model: Any):
    onnx = _import_onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        p = Path(model).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"ONNX model {str(p)!r} does not exist")
        return onnx.load(str(p))
    raise TypeError(
        f"expected an onnx.ModelProto, bytes or a path to a .onnx file, got {type(model).__name__}"
    )


def _static_dims(values: Any, name: str) -> list[int | str | None]:
    for v in values:
        if v.name == name and v.type.HasField("tensor_type"):
            dims: list[int | str | None] = []
            for d in v.type.tensor_type.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                elif d.HasField("dim_param"):
                    dims.append(d.dim_param)
                else:
                    dims.append(None)
            return dims
    return []


# ONNX TensorProto data types -> torch
_ONNX_DTYPES = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


class _Node:
    __slots__ = ("op_type", "name", "inputs", "outputs", "attrs", "release")

    def __init__(self, op_type: str, name: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any]):
        self.op_type = op_type
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.attrs = attrs
        self.release: list[str] = []


def _attr_value(attr: Any) -> Any:
    from onnx import helper, numpy_helper

    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "dims") and hasattr(value, "data_type"):  # TensorProto
        return torch.from_numpy(np.array(numpy_helper.to_array(value)))
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


def _ints(t: torch.Tensor | None) -> list[int] | None:
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _axes_arg(node: _Node, args: list, index: int) -> list[int] | None:
    """Axes from the ``axes`` attribute (old opsets) or the ``index``-th input (new opsets)."""
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    return _ints(args[index]) if len(args) > index and args[index] is not None else None


def _torch_pad_list(begins: Sequence[int], ends: Sequence[int]) -> list[int]:
    """ONNX per-dim begins/ends (first dim first) -> ``F.pad`` list (last dim first)."""
    out: list[int] = []
    for b, e in zip(reversed(list(begins)), reversed(list(ends))):
        out += [int(b), int(e)]
    return out


def _spatial_pads(
    node: _Node, x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
):
    nd = len(kernel)
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for i in range(nd):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else big)
            ends.append(big if auto_pad == "SAME_UPPER" else small)
        return begins, ends
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    pads = list(node.attrs.get("pads", [0] * (2 * nd)))
    return pads[:nd], pads[nd:]


def _op_conv(node: _Node, args: list) -> torch.Tensor:
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise NotImplementedError(f"ONNX Conv with {nd} spatial dims (node {node.name!r})")
    strides = list(node.attrs.get("strides", [1] * nd))
    dilations = list(node.attrs.get("dilations", [1] * nd))
    begins, ends = _spatial_pads(node, x, list(w.shape[2:]), strides, dilations)
    if begins == ends:
        padding: Any = begins
    else:
        x = F.pad(x, _torch_pad_list(begins, ends))
        padding = 0
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    return conv(
        x, w, b, stride=strides, padding=padding, dilation=dilations, groups=int(node.attrs.get("group", 1))
    )


def _op_pool(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    kernel = list(node.attrs["kernel_shape"])
    nd = len(kernel)
    strides = list(node.attrs.get("strides", [1] * nd))
    dilations = list(node.attrs.get("dilations", [1] * nd))
    ceil_mode = bool(node.attrs.get("ceil_mode", 0))
    begins, ends = _spatial_pads(node, x, kernel, strides, dilations)
    if node.op_type == "MaxPool":
        if begins != ends or any(2 * b > k for b, k in zip(begins, kernel)):
            x = F.pad(x, _torch_pad_list(begins, ends), value=float("-inf"))
            begins = [0] * nd
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1]
        return pool(x, kernel, strides, begins, dilations, ceil_mode=ceil_mode)
    if begins != ends or any(d != 1 for d in dilations):
        raise NotImplementedError(f"ONNX AveragePool with asymmetric pads or dilations (node {node.name!r})")
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nd - 1]
    return pool(
        x,
        kernel,
        strides,
        begins,
        ceil_mode=ceil_mode,
        count_include_pad=bool(node.attrs.get("count_include_pad", 0)),
    )


def _op_batchnorm(node: _Node, args: list) -> torch.Tensor:
    x, scale, bias, mean, var = args[:5]
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=float(node.attrs.get("epsilon", 1e-5)))


def _op_gemm(node: _Node, args: list) -> torch.Tensor:
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 else None
    if node.attrs.get("transA", 0):
        a = a.transpose(0, 1)
    if node.attrs.get("transB", 0):
        b = b.transpose(0, 1)
    y = a @ b
    alpha = float(node.attrs.get("alpha", 1.0))
    if alpha != 1.0:
        y = alpha * y
    if c is not None:
        beta = float(node.attrs.get("beta", 1.0))
        y = y + (beta * c if beta != 1.0 else c)
    return y


def _op_div(node: _Node, args: list) -> torch.Tensor:
    a, b = args
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _op_flatten(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    axis = int(node.attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(int(math.prod(x.shape[:axis])), int(math.prod(x.shape[axis:])))


def _make_reshape(dynamic_batch: bool) -> Callable[[_Node, list], torch.Tensor]:
    def _op_reshape(node: _Node, args: list) -> torch.Tensor:
        x, shape = args[0], _ints(args[1])
        assert shape is not None
        if not node.attrs.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        if dynamic_batch and shape and shape[0] == 1 and x.ndim > 0 and x.shape[0] != 1:
            shape[0] = x.shape[0]  # graph exported with a fixed batch of 1
        return x.reshape(shape)

    return _op_reshape


def _op_transpose(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    perm = node.attrs.get("perm")
    return x.permute(*(perm if perm is not None else reversed(range(x.ndim))))


def _op_shape(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    shape = torch.tensor(list(x.shape), dtype=torch.int64, device=x.device)
    start = node.attrs.get("start", 0)
    end = node.attrs.get("end")
    return shape[start:end]


def _op_gather(node: _Node, args: list) -> torch.Tensor:
    x, idx = args
    axis = int(node.attrs.get("axis", 0)) % x.ndim
    idx = idx.to(device=x.device, dtype=torch.int64)
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = x.index_select(axis, idx.reshape(-1))
    return out.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1 :]))


def _op_unsqueeze(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    axes = _axes_arg(node, args, 1) or []
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


def _op_squeeze(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    axes = _axes_arg(node, args, 1)
    if axes is None:
        return x.squeeze()
    for a in sorted((a % x.ndim for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def _op_concat(node: _Node, args: list) -> torch.Tensor:
    tensors = [a for a in args if a is not None and a.numel() > 0] or [a for a in args if a is not None][:1]
    return torch.cat(tensors, dim=int(node.attrs["axis"]))


def _op_slice(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    if "starts" in node.attrs:  # opset < 10
        starts, ends = list(node.attrs["starts"]), list(node.attrs["ends"])
        axes = list(node.attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(args[1]), _ints(args[2])
        assert starts is not None and ends is not None
        axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis %= x.ndim
        rng = range(*slice(start, end, step).indices(x.shape[axis]))
        if step == 1:
            x = x.narrow(axis, rng.start, len(rng))
        else:
            x = x.index_select(axis, torch.tensor(list(rng), dtype=torch.int64, device=x.device))
    return x


def _op_cast(node: _Node, args: list) -> torch.Tensor:
    to = int(node.attrs["to"])
    if to not in _ONNX_DTYPES:
        raise NotImplementedError(f"ONNX Cast to data type {to} (node {node.name!r})")
    return args[0].to(_ONNX_DTYPES[to])


def _op_constant_of_shape(node: _Node, args: list) -> torch.Tensor:
    value = node.attrs.get("value")
    shape = _ints(args[0]) or []
    if value is None:
        return torch.zeros(shape, dtype=torch.float32, device=args[0].device)
    return torch.full(shape, value.reshape(-1)[0].item(), dtype=value.dtype, device=args[0].device)


def _op_pad(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    mode = node.attrs.get("mode", "constant")
    if "pads" in node.attrs:  # opset < 11
        pads = list(node.attrs["pads"])
        value = float(node.attrs.get("value", 0.0))
        axes = list(range(x.ndim))
    else:
        pads = _ints(args[1]) or []
        value = (
            float(args[2].reshape(-1)[0].item())
            if len(args) > 2 and args[2] is not None and args[2].numel()
            else 0.0
        )
        axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(x.ndim))
    n = len(axes)
    begins, ends = [0] * x.ndim, [0] * x.ndim
    for i, a in enumerate(axes):
        begins[a % x.ndim], ends[a % x.ndim] = pads[i], pads[n + i]
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise NotImplementedError(f"ONNX Pad mode {mode!r} (node {node.name!r})")
    first = next((i for i in range(x.ndim) if begins[i] or ends[i]), x.ndim)
    pad = _torch_pad_list(begins[first:], ends[first:])
    if torch_mode == "constant":
        return F.pad(x, pad, value=value)
    return F.pad(x, pad, mode=torch_mode)


def _op_reduce(fn: str) -> Callable[[_Node, list], torch.Tensor]:
    def _op(node: _Node, args: list) -> torch.Tensor:
        x = args[0]
        axes = _axes_arg(node, args, 1)
        keep = bool(node.attrs.get("keepdims", 1))
        if not axes:
            if node.attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.ndim))
        dims = tuple(a % x.ndim for a in axes)
        if fn == "mean":
            return x.mean(dim=dims, keepdim=keep)
        if fn == "sum":
            return x.sum(dim=dims, keepdim=keep)
        if fn == "max":
            return x.amax(dim=dims, keepdim=keep)
        if fn == "min":
            return x.amin(dim=dims, keepdim=keep)
        return x.pow(2).sum(dim=dims, keepdim=keep).sqrt()  # l2

    return _op


def _op_softmax(node: _Node, args: list, opset: int) -> torch.Tensor:
    x = args[0]
    if opset >= 13:
        return torch.softmax(x, dim=int(node.attrs.get("axis", -1)))
    axis = int(node.attrs.get("axis", 1)) % x.ndim
    flat = x.reshape(int(math.prod(x.shape[:axis])), -1)
    return torch.softmax(flat, dim=1).reshape(x.shape)


def _op_clip(node: _Node, args: list) -> torch.Tensor:
    x = args[0]
    lo = node.attrs.get("min") if "min" in node.attrs else (args[1] if len(args) > 1 else None)
    hi = node.attrs.get("max") if "max" in node.attrs else (args[2] if len(args) > 2 else None)
    if isinstance(lo, torch.Tensor):
        lo = lo.item()
    if isinstance(hi, torch.Tensor):
        hi = hi.item()
    return torch.clamp(x, min=lo, max=hi)


def _op_prelu(node: _Node, args: list) -> torch.Tensor:
    x, slope = args
    return torch.where(x >= 0, x, x * slope)


def _op_dropout(node: _Node, args: list) -> Any:
    x = args[0]
    if len(node.outputs) > 1 and node.outputs[1]:
        return (x, torch.ones_like(x, dtype=torch.bool))  # inference: identity + the all-true mask
    return x


def _op_layer_norm(node: _Node, args: list) -> torch.Tensor:
    x, scale = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    axis = int(node.attrs.get("axis", -1)) % x.ndim
    return F.layer_norm(x, tuple(x.shape[axis:]), scale, bias, eps=float(node.attrs.get("epsilon", 1e-5)))


def _variadic(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[[_Node, list], torch.Tensor]:
    def _op(node: _Node, args: list) -> torch.Tensor:
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return out

    return _op


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[_Node, list], torch.Tensor]:
    return lambda node, args: fn(args[0])


def _binary(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[[_Node, list], torch.Tensor]:
    return lambda node, args: fn(args[0], args[1])


def _build_ops(opset: int, dynamic_batch: bool) -> dict[str, Callable[[_Node, list], Any]]:
    return {
        "Conv": _op_conv,
        "BatchNormalization": _op_batchnorm,
        "LayerNormalization": _op_layer_norm,
        "PRelu": _op_prelu,
        "Relu": _unary(torch.relu),
        "LeakyRelu": lambda n, a: F.leaky_relu(a[0], float(n.attrs.get("alpha", 0.01))),
        "Elu": lambda n, a: F.elu(a[0], float(n.attrs.get("alpha", 1.0))),
        "Sigmoid": _unary(torch.sigmoid),
        "HardSigmoid": lambda n, a: torch.clamp(
            float(n.attrs.get("alpha", 0.2)) * a[0] + float(n.attrs.get("beta", 0.5)), 0.0, 1.0
        ),
        "HardSwish": _unary(F.hardswish),
        "Tanh": _unary(torch.tanh),
        "Softplus": _unary(F.softplus),
        "Erf": _unary(torch.erf),
        "Exp": _unary(torch.exp),
        "Log": _unary(torch.log),
        "Sqrt": _unary(torch.sqrt),
        "Abs": _unary(torch.abs),
        "Neg": _unary(torch.neg),
        "Reciprocal": _unary(torch.reciprocal),
        "Add": _binary(torch.add),
        "Sub": _binary(torch.sub),
        "Mul": _binary(torch.mul),
        "Div": _op_div,
        "Pow": _binary(torch.pow),
        "Max": _variadic(torch.maximum),
        "Min": _variadic(torch.minimum),
        "Sum": _variadic(torch.add),
        "Clip": _op_clip,
        "Softmax": lambda n, a: _op_softmax(n, a, opset),
        "Flatten": _op_flatten,
        "Reshape": _make_reshape(dynamic_batch),
        "Transpose": _op_transpose,
        "Gemm": _op_gemm,
        "MatMul": _binary(torch.matmul),
        "Identity": _unary(lambda x: x),
        "Dropout": _op_dropout,
        "Shape": _op_shape,
        "Gather": _op_gather,
        "Unsqueeze": _op_unsqueeze,
        "Squeeze": _op_squeeze,
        "Concat": _op_concat,
        "Slice": _op_slice,
        "Cast": _op_cast,
        "ConstantOfShape": _op_constant_of_shape,
        "GlobalAveragePool": lambda n, a: a[0].mean(dim=tuple(range(2, a[0].ndim)), keepdim=True),
        "GlobalMaxPool": lambda n, a: a[0].amax(dim=tuple(range(2, a[0].ndim)), keepdim=True),
        "MaxPool": _op_pool,
        "AveragePool": _op_pool,
        "Pad": _op_pad,
        "ReduceMean": _op_reduce("mean"),
        "ReduceSum": _op_reduce("sum"),
        "ReduceMax": _op_reduce("max"),
        "ReduceMin": _op_reduce("min"),
        "ReduceL2": _op_reduce("l2"),
    }


#: ONNX ops :func:`onnx_to_torch` understands (``Constant`` is folded into buffers when the graph is read).
SUPPORTED_ONNX_OPS = tuple(sorted(set(_build_ops(13, False)) | {"Constant"}))


def _constant_value(node: _Node) -> torch.Tensor:
    a = node.attrs
    if "value" in a:
        return a["value"]
    if "value_float" in a:
        return torch.tensor(float(a["value_float"]), dtype=torch.float32)
    if "value_floats" in a:
        return torch.tensor(list(a["value_floats"]), dtype=torch.float32)
    if "value_int" in a:
        return torch.tensor(int(a["value_int"]), dtype=torch.int64)
    if "value_ints" in a:
        return torch.tensor(list(a["value_ints"]), dtype=torch.int64)
    raise NotImplementedError(
        f"ONNX Constant node {node.name!r} with attributes {sorted(a)} (sparse/string values)"
    )


def _topological(nodes: list[_Node], available: set[str]) -> list[_Node]:
    """Kahn's order over tensor names (ONNX graphs are usually sorted already; this tolerates ones that are not)."""
    producers = {out: i for i, n in enumerate(nodes) for out in n.outputs if out}
    deps = [{producers[x] for x in n.inputs if x and x not in available and x in producers} for n in nodes]
    for n in nodes:
        for x in n.inputs:
            if x and x not in available and x not in producers:
                raise ValueError(f"ONNX node {n.name!r} ({n.op_type}) reads {x!r}, which nothing produces")
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    remaining = [len(d) for d in deps]
    ready = [i for i, r in enumerate(remaining) if r == 0]
    order: list[int] = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        raise ValueError("ONNX graph has a cycle")
    return [nodes[i] for i in order]


class OnnxGraphModule(nn.Module):
    """An ONNX graph executed with torch ops (see :func:`onnx_to_torch`).

    Initialisers and ``Constant`` nodes become buffers (``.to(device, dtype)`` moves them; integer buffers keep
    their dtype); ``forward(*inputs)`` runs the nodes in topological order and returns the graph output (a tuple
    when there are several). Intermediate tensors are released after their last use. Everything is plain
    autograd, so gradients flow to the inputs; there are no parameters (the graph is frozen).
    """

    def __init__(self, model: Any, dynamic_batch: bool = False):
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        self.opset = max([int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] or [13])
        self.dynamic_batch = bool(dynamic_batch)
        self._ops = _build_ops(self.opset, self.dynamic_batch)
        self._constants: dict[str, str] = {}  # onnx tensor name -> buffer name
        for init in graph.initializer:
            self._add_constant(init.name, torch.from_numpy(np.array(numpy_helper.to_array(init))))
        self.input_names = [v.name for v in graph.input if v.name not in self._constants]
        self.output_names = [v.name for v in graph.output]

        nodes, unsupported = [], []
        for i, proto in enumerate(graph.node):
            name = proto.name or f"{proto.op_type}_{i}"
            if proto.domain not in ("", "ai.onnx"):
                unsupported.append(f"{proto.domain}::{proto.op_type} (node {name!r})")
                continue
            attrs = {a.name: _attr_value(a) for a in proto.attribute}
            node = _Node(proto.op_type, name, list(proto.input), list(proto.output), attrs)
            if node.op_type == "Constant":
                self._add_constant(node.outputs[0], _constant_value(node))
                continue
            if node.op_type not in self._ops:
                unsupported.append(f"{node.op_type} (node {name!r})")
                continue
            nodes.append(node)
        if unsupported:
            raise NotImplementedError(
                f"ONNX op(s) not supported by authface's ONNX interpreter: {', '.join(unsupported[:8])}"
                + (f" and {len(unsupported) - 8} more" if len(unsupported) > 8 else "")
                + f". Supported: {', '.join(SUPPORTED_ONNX_OPS)}"
            )
        self._nodes = _topological(nodes, set(self._constants) | set(self.input_names))
        # release each intermediate after its last reader (graph outputs are kept)
        last_use: dict[str, int] = {}
        for i, node in enumerate(self._nodes):
            for x in node.inputs:
                if x and x not in self._constants:
                    last_use[x] = i
        keep = set(self.output_names)
        for x, i in last_use.items():
            if x not in keep:
                self._nodes[i].release.append(x)
        missing = [
            o
            for o in self.output_names
            if o not in self._constants
            and o not in self.input_names
            and not any(o in n.outputs for n in self._nodes)
        ]
        if missing:
            raise ValueError(f"ONNX graph outputs {missing} are produced by no node")

    def _add_constant(self, name: str, value: torch.Tensor) -> None:
        buffer_name = f"const_{len(self._constants)}"
        self.register_buffer(buffer_name, value.clone(), persistent=True)
        self._constants[name] = buffer_name

    @property
    def ops(self) -> list[str]:
        """Op types in execution order."""
        return [n.op_type for n in self._nodes]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"this ONNX graph takes {len(self.input_names)} input(s) {self.input_names}, got {len(inputs)}"
            )
        env: dict[str, Any] = {name: getattr(self, buf) for name, buf in self._constants.items()}
        env.update(zip(self.input_names, inputs))
        for node in self._nodes:
            args = [env[x] if x else None for x in node.inputs]
            try:
                out = self._ops[node.op_type](node, args)
            except NotImplementedError:
                raise
            except Exception as exc:
                shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else None for a in args]
                raise RuntimeError(
                    f"ONNX node {node.name!r} ({node.op_type}) failed on inputs of shapes {shapes}: {exc}"
                ) from exc
            outs = out if isinstance(out, tuple) else (out,)
            for name, value in zip(node.outputs, outs):
                if name:
                    env[name] = value
            for x in node.release:
                env.pop(x, None)
        results = tuple(env[o] for o in self.output_names)
        return results[0] if len(results) == 1 else results


def onnx_to_torch(model_path_or_proto: Any, dynamic_batch: bool = False) -> OnnxGraphModule:
    """Convert an ONNX model (path, bytes or ``onnx.ModelProto``) into a differentiable torch module.

    AuthFace's own interpreter (:class:`OnnxGraphModule`) rather than ``onnx2torch``, which imports torchvision
    at import time (its NMS/RoIAlign converters). Covers the ops of insightface recognisers and of
    ``torch.onnx.export``-ed networks (:data:`SUPPORTED_ONNX_OPS`); any other op raises
    ``NotImplementedError`` naming the op and the node, when the graph is read.

    ``dynamic_batch=True`` lets graphs exported with a fixed batch of 1 run on larger batches: a ``Reshape`` to
    a shape starting with 1 keeps the input's batch size instead.
    """
    model = _as_model_proto(model_path_or_proto)
    return OnnxGraphModule(model, dynamic_batch=dynamic_batch)


# ============================================================================ dlib judge
