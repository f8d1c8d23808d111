"""Frozen, differentiable face feature extractors for learned scorers, and identity models for the constraint.

A backbone is named by a string, stored in the scorer's JSON config so that :func:`~.scorer.load_scorer` rebuilds
it:

* ``"dlib-resnet"`` (default): dlib's 128-d face-recognition ResNet as a torch model
  (:class:`authface.models.dlib_resnet.DlibIdentityEncoder`, raw descriptors); needs no download (the weights ship
  with ``face-recognition-models``).
* ``"arcface:PATH"`` / ``"arcface-onnx:PATH"``: an ArcFace IResNet (``backbone.pth`` / ``.safetensors``) or an
  insightface ONNX recogniser, through :func:`authface.models.identity.load_identity_encoder` (unit 512-d).
* ``"pixels"``: no network: the per-channel means of an 8x8 grid and per-channel mean and standard deviation
  (198 values). A cheap baseline for scores that depend on tone and layout (exposure, colour cast).
* ``"torchscript:PATH"`` (or a bare path to a ``.pt``/``.ts``/``.torchscript`` file): any TorchScript module
  taking ``[0, 1]`` RGB ``(B, 3, S, S)`` and returning ``(B, ...)`` features (flattened).
* ``"A+B"``: the features of several backbones, concatenated. The default, ``"dlib-resnet+pixels"``, sees both
  the face's shape (identity features are trained to ignore lighting and colour) and its tone.

Every backbone takes ``[0, 1]`` RGB ``(B, 3, S, S)`` FFHQ-aligned crops and returns float32 ``(B, D)``;
gradients flow to the input. Weights are frozen and the module stays in ``eval`` mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "DEFAULT_IDENTITY_MODEL", "FeatureBackbone", "load_backbone",
           "load_identity_model"]  # fmt: skip

DEFAULT_BACKBONE = "dlib-resnet+pixels"
#: Identity model of the optimisation constraint: differentiable, offline, no download.
DEFAULT_IDENTITY_MODEL = "dlib-resnet"
#: Backbone names without a path (the others take ``name:PATH``).
BACKBONES = ("dlib-resnet", "pixels", "arcface:PATH", "arcface-onnx:PATH", "torchscript:PATH", "A+B")
_SCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript", ".jit")


class FeatureBackbone(nn.Module):
    """A frozen feature extractor: ``[0, 1]`` RGB ``(B, 3, S, S)`` -> float32 ``(B, D)`` (``D = feature_dim``)."""

    def __init__(self, spec: str, module: nn.Module | None, feature_dim: int, kind: str):
        super().__init__()
        self.spec, self.module, self.feature_dim, self.kind = spec, module, int(feature_dim), kind
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureBackbone:
        """Always inference mode (frozen statistics), whatever the parent does."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"backbone {self.spec!r} expects [0, 1] RGB (B, 3, S, S), got {tuple(images.shape)}")
        x = images.float()
        if self.kind == "concat":
            return torch.cat([part(x) for part in self.module], dim=1)
        if self.kind == "pixels":
            grid = F.adaptive_avg_pool2d(x, 8).flatten(1)
            return torch.cat([grid, x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        if self.kind == "dlib":
            return self.module.descriptor(x * 2 - 1)
        if self.kind == "identity":
            return self.module.embed(x * 2 - 1).float()
        return self.module(x).reshape(x.shape[0], -1).float()


def _split(spec: str) -> tuple[str, str | None]:
    name, sep, path = spec.partition(":")
    if sep and len(name) == 1:  # a Windows drive letter, not a backbone name
        return spec, None
    return (name.strip().lower(), path.strip() or None) if sep else (spec.strip().lower(), None)


def _dlib_encoder(device):
    from ..models.dlib_resnet import DlibIdentityEncoder

    return DlibIdentityEncoder.from_pretrained(device=device)


def load_backbone(spec: str = DEFAULT_BACKBONE, device: str | torch.device | None = None) -> FeatureBackbone:
    """The backbone named by ``spec`` (see the module docstring), on ``device`` (default CPU).

    Raises:
        ValueError: an unknown name or a name that needs ``:PATH`` without one.
        FileNotFoundError: a weights file that does not exist.
    """
    spec = str(spec).strip()
    if "+" in spec:
        parts = nn.ModuleList(load_backbone(p, device) for p in spec.split("+"))
        return FeatureBackbone("+".join(p.spec for p in parts), parts, sum(p.feature_dim for p in parts), "concat")
    name, path = _split(spec)
    if name == "pixels":
        return FeatureBackbone(spec, None, 8 * 8 * 3 + 6, "pixels").to(device or "cpu")
    if name == "dlib-resnet":
        return FeatureBackbone(spec, _dlib_encoder(device), 128, "dlib")
    if name in ("arcface", "arcface-onnx"):
        if path is None:
            raise ValueError(f"backbone {name!r} needs a weights file: {name}:PATH")
        from ..models.identity import load_identity_encoder

        enc = load_identity_encoder(name, path, device=device) if device else load_identity_encoder(name, path)
        return FeatureBackbone(spec, enc, int(enc.embedding_dim), "identity")
    file = path if name == "torchscript" else (spec if Path(spec).suffix.lower() in _SCRIPT_SUFFIXES else None)
    if file is None:
        raise ValueError(f"unknown backbone {spec!r}; choose one of: {', '.join(BACKBONES)} "
                         "(or a TorchScript file path)")  # fmt: skip
    if not os.path.isfile(file):
        raise FileNotFoundError(f"backbone file {file} not found")
    module = torch.jit.load(file, map_location=device or "cpu").eval()
    with torch.no_grad():
        dim = module(torch.zeros(1, 3, 112, 112, device=device or "cpu")).reshape(1, -1).shape[1]
    return FeatureBackbone(f"torchscript:{os.path.abspath(file)}", module, dim, "script")


def load_identity_model(spec: str = DEFAULT_IDENTITY_MODEL, device: str | torch.device | None = None):
    """A differentiable identity encoder for the constraint: ``embed([-1, 1] RGB (B, 3, S, S)) -> (B, D)`` unit.

    ``spec``: ``"dlib-resnet"`` (default; offline), ``"arcface:PATH"`` or ``"arcface-onnx:PATH"``.

    Raises:
        ValueError: an unknown name, a missing path, or an encoder that is not differentiable.
    """
    name, path = _split(str(spec))
    if name == "dlib-resnet":
        return _dlib_encoder(device)
    if name in ("arcface", "arcface-onnx") and path:
        from ..models.identity import load_identity_encoder

        enc = load_identity_encoder(name, path)
        return enc.to(device) if device is not None and hasattr(enc, "to") else enc
    raise ValueError(f"unknown identity model {spec!r}; use dlib-resnet, arcface:PATH or arcface-onnx:PATH")
