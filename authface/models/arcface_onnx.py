"""insightface's ONNX recognisers (``buffalo_l/w600k_r50.onnx``, ``antelopev2/glintr100.onnx``, ...) as a
differentiable :class:`OnnxArcFaceEncoder`: the graph's weights are converted into an IResNet
(:mod:`.iresnet_onnx`), not interpreted.

:meth:`OnnxArcFaceEncoder.from_pretrained` caches the converted weights as safetensors keyed by the ONNX file's
sha256: next to the file when its folder is writable, else in ``$XDG_CACHE_HOME/authface/arcface-onnx``
(``~/.cache/authface/arcface-onnx``); later loads read the cache and need no ``onnx`` package.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import sha256_file, user_cache_dir, write_bytes
from .arcface import ArcFaceEncoder, require_file
from .iresnet import IResNet, check_state_dict
from .iresnet_onnx import ONNX_WEIGHTS_HINT, ConvertedIResNet, convert_onnx_to_iresnet
from .weights_cache import read_cached_tensors

__all__ = ["ONNX_WEIGHTS_HINT", "OnnxArcFaceEncoder"]

logger = logging.getLogger(__name__)

_CACHE_FORMAT = "authface-iresnet-from-onnx/1"


# ============================================================================ cache of converted weights


def _cache_paths(onnx_path: Path, sha: str) -> list[Path]:
    """Where converted weights live: next to the ONNX file, then in the user cache folder."""
    return [
        onnx_path.with_name(f"{onnx_path.stem}.iresnet-{sha[:16]}.safetensors"),
        user_cache_dir("arcface-onnx") / f"{sha}.safetensors",
    ]


def _save_converted(path: Path, conv: ConvertedIResNet, sha: str, source: str) -> None:
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in conv.backbone.state_dict().items() if v.is_floating_point()}
    tensors.update({"input.scale": conv.input_scale, "input.shift": conv.input_shift})
    meta = {
        "format": _CACHE_FORMAT,
        "sha256": sha,
        "source": source,
        "layers": ",".join(map(str, conv.backbone.layers)),
        "num_features": str(conv.backbone.num_features),
        "fc_scale": str(conv.backbone.fc_scale),
        "pixel_input": str(int(conv.pixel_input)),
    }
    write_bytes(path, save(tensors, metadata=meta))


def _load_converted(path: Path, sha: str) -> ConvertedIResNet | None:
    """Converted weights cached at ``path`` for the ONNX file with this sha256, or None (absent, stale, broken)."""
    cached = read_cached_tensors(path, {"format": _CACHE_FORMAT, "sha256": sha}, "converted ArcFace weights")
    if cached is None:
        return None
    tensors, meta = cached
    try:
        layers = [int(v) for v in meta["layers"].split(",")]
        backbone = IResNet(layers, num_features=int(meta["num_features"]), fc_scale=int(meta["fc_scale"]))
        scale, shift = tensors.pop("input.scale"), tensors.pop("input.shift")
        check_state_dict(backbone, tensors, f"{str(path)!r}")
        backbone.load_state_dict(tensors, strict=False)
    except Exception as exc:  # a damaged cache is rebuilt, never fatal
        logger.warning("ignoring cached converted weights %s: %s", path, exc)
        return None
    return ConvertedIResNet(backbone.eval(), scale, shift, meta.get("pixel_input") == "1")


def _writable(folder: Path) -> bool:
    """Whether ``folder`` (or, when it does not exist yet, its nearest existing parent) is writable."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _load_or_convert(onnx_path: Path) -> ConvertedIResNet:
    """The IResNet of the ONNX file at ``onnx_path``, from the cache when present, else converted and cached."""
    sha = sha256_file(onnx_path)
    candidates = _cache_paths(onnx_path, sha)
    for path in candidates:
        conv = _load_converted(path, sha)
        if conv is not None:
            logger.debug("loaded converted weights of %s from %s", onnx_path, path)
            return conv
    conv = convert_onnx_to_iresnet(onnx_path, source=repr(str(onnx_path)))
    for path in candidates:
        if not _writable(path.parent):
            continue
        try:
            _save_converted(path, conv, sha, onnx_path.name)
        except OSError as exc:
            logger.debug("cannot cache converted weights at %s: %s", path, exc)
            continue
        logger.info("converted %s to an IResNet %s; cached at %s", onnx_path, conv.arch, path)
        return conv
    logger.warning("converted %s but could not cache it (%s not writable)", onnx_path, candidates)
    return conv


# ============================================================================ encoder


def _find_recogniser_onnx(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        for sub in (
            p,
            p / "buffalo_l",
            p / "models" / "buffalo_l",
            p / "antelopev2",
            p / "models" / "antelopev2",
        ):
            for pattern in ("w600k_*.onnx", "glintr*.onnx", "*r100*.onnx", "*r50*.onnx", "*r18*.onnx"):
                hits = sorted(sub.glob(pattern))
                if hits:
                    return hits[0]
        raise FileNotFoundError(
            f"no insightface recogniser (w600k_*.onnx, glintr*.onnx, ...) in directory {str(p)!r}. {ONNX_WEIGHTS_HINT}"
        )
    return require_file(p, "insightface ONNX recogniser", ONNX_WEIGHTS_HINT)


class OnnxArcFaceEncoder(ArcFaceEncoder):
    """Differentiable identity embedder for an insightface ONNX recogniser, converted into an IResNet.

    What insightface does (``model_zoo/arcface_onnx.py``): ``cv2.dnn.blobFromImages(bgr_crops, 1 / std,
    (112, 112), (mean,) * 3, swapRB=True)``, i.e. the network sees **RGB** ``(pixel - mean) / std``, with
    ``mean = std = 127.5`` unless the graph's first nodes are a Sub and a Mul (MXNet-era models that normalise
    themselves; then ``mean = 0, std = 1``). This class does exactly that: our ``[-1, 1]`` RGB is fed as is (it
    equals ``(pixel - 127.5) / 127.5``), or as ``(x + 1) * 127.5`` for self-normalising graphs, followed by the
    graph's own normalisation (``input_scale``, ``input_shift``). No channel swap. Crops are warped with
    :func:`~authface.models.arcface.warp_to_arcface` to the network's input size (112).

    Args:
        backbone: the converted :class:`~authface.models.iresnet.IResNet`.
        pixel_input: ``True`` to feed 0..255 pixels (self-normalising graph), ``False`` for ``[-1, 1]``.
        input_scale, input_shift: the graph's input normalisation, ``(3,)`` per RGB channel (default 1 and 0).
        antialias: see :func:`~authface.models.arcface.warp_to_arcface`.
        name: reported name.
    """

    def __init__(
        self,
        backbone: nn.Module,
        pixel_input: bool,
        input_scale: torch.Tensor | None = None,
        input_shift: torch.Tensor | None = None,
        antialias: bool = True,
        name: str = "arcface-onnx",
    ):
        super().__init__(backbone, antialias=antialias, name=name)
        self.pixel_input = bool(pixel_input)
        scale = torch.ones(3) if input_scale is None else torch.as_tensor(input_scale, dtype=torch.float32)
        shift = torch.zeros(3) if input_shift is None else torch.as_tensor(input_shift, dtype=torch.float32)
        self.register_buffer("input_scale", scale.reshape(1, 3, 1, 1).clone())
        self.register_buffer("input_shift", shift.reshape(1, 3, 1, 1).clone())

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        antialias: bool = True,
    ) -> OnnxArcFaceEncoder:
        """Load an insightface recogniser ``.onnx`` (or a folder holding one, e.g. ``buffalo_l/``), converting it
        on first use and caching the result (see the module docstring). ``FileNotFoundError`` for a missing file,
        ``ValueError`` for a graph that is not an insightface IResNet."""
        p = _find_recogniser_onnx(path)
        conv = _load_or_convert(p)
        return cls._build(conv, device, dtype, antialias, f"arcface-onnx:{p.stem}")

    @classmethod
    def from_onnx(
        cls,
        model: Any,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        antialias: bool = True,
        name: str = "arcface-onnx",
    ) -> OnnxArcFaceEncoder:
        """Build from an ``onnx.ModelProto``, bytes or path, converting in memory (no cache)."""
        return cls._build(convert_onnx_to_iresnet(model), device, dtype, antialias, name)

    @classmethod
    def _build(cls, conv: ConvertedIResNet, device, dtype, antialias: bool, name: str) -> OnnxArcFaceEncoder:
        enc = cls(conv.backbone, conv.pixel_input, conv.input_scale, conv.input_shift, antialias, name)
        if device is not None or dtype is not None:
            enc = enc.to(device=device, dtype=dtype)
        return enc

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """Warped ``[-1, 1]`` RGB crops -> what the graph's first Conv saw in insightface's pipeline."""
        if self.pixel_input:
            x = (x + 1.0) * 127.5  # RGB 0..255, which the graph normalises itself
        return x * self.input_scale + self.input_shift
