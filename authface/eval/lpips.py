"""LPIPS (Zhang et al. 2018, v0.1) without torchvision, from local weight files; nothing is downloaded.

:func:`LPIPSNet` rebuilds the network (AlexNet or VGG-16 convolutional features with torchvision's state-dict
layout, five learned 1x1 linear heads, LPIPS' input scaling); :func:`load_lpips` fills it from the ``lpips``
package's weight files; :class:`LPIPSMetric` scores ``uint8`` RGB predictions against the GT (lower is better).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .base import Column, Metric
from .common import groups_by_shape

__all__ = ["LPIPS_HINT", "LPIPSMetric", "LPIPSNet", "load_lpips"]

_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
_LPIPS_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
LPIPS_HINT = (
    "LPIPS needs local weights: --lpips-weights LIN.pth (the lpips package's lpips/weights/v0.1/alex.pth or "
    "vgg.pth) and --lpips-backbone BACKBONE.pth (torchvision's alexnet-owt-7be5be79.pth or vgg16-397923af.pth "
    "state dict), or a single file holding both (an lpips.LPIPS state dict). Nothing is downloaded"
)


def _lpips_features(net: str):
    """torchvision-compatible ``features`` Sequential (same indices, so its state dict loads) up to the last tap."""
    from torch import nn

    if net == "alex":
        layers = [
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        ]  # fmt: skip
    else:
        layers, c_in = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
                c_in = v
    return nn.Sequential(*layers)


def _lpips_module_class():
    import torch
    from torch import nn

    class _LPIPSNet(nn.Module):
        def __init__(self, net: str = "alex"):
            super().__init__()
            if net not in _LPIPS_CHANNELS:
                raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
            self.net_name = net
            self.features = _lpips_features(net)
            self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _LPIPS_CHANNELS[net])
            self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
            self.taps = _LPIPS_TAPS[net]
            self.requires_grad_(False)
            self.eval()

        def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
            out, h = [], (x - self.shift) / self.scale
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i in self.taps:
                    out.append(h / (torch.sqrt((h * h).sum(1, keepdim=True)) + 1e-10))
                if i == self.taps[-1]:
                    break
            return out

        def forward(self, a: torch.Tensor, b: torch.Tensor, spatial: bool = False) -> torch.Tensor:
            """[-1, 1] RGB (B, 3, H, W) twice -> (B,) LPIPS distance; ``spatial``: the (B, H, W) distance map
            (each layer's map upsampled bilinearly to H x W, as ``lpips.LPIPS(spatial=True)``; its mean is close
            to, not equal to, the distance)."""
            total = 0.0
            for lin, fa, fb in zip(self.lins, self._feats(a), self._feats(b)):
                d = lin((fa - fb) ** 2)  # (B, 1, h, w)
                if spatial:
                    d = nn.functional.interpolate(d, size=a.shape[2:], mode="bilinear", align_corners=False)
                    total = total + d[:, 0]
                else:
                    total = total + d.mean(dim=(2, 3))  # (B, 1)
            return total if spatial else total.reshape(-1)

    return _LPIPSNet


def LPIPSNet(net: str = "alex"):  # noqa: N802 - a factory standing in for a class (torch imported lazily)
    """An LPIPS v0.1 network with random weights (load them with :func:`load_lpips`): torchvision-compatible
    ``features`` (AlexNet / VGG-16 convolutional layers, state-dict keys ``features.N.*``), 5 linear heads
    ``lins.K`` (1x1 conv, no bias), LPIPS' input scaling layer. ``forward(a, b)``: ``[-1, 1]`` RGB
    ``(B, 3, H, W)`` -> ``(B,)``; ``forward(a, b, spatial=True)`` -> the ``(B, H, W)`` distance map."""
    return _lpips_module_class()(net)


def _load_state(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


def load_lpips(weights: str | os.PathLike, backbone: str | os.PathLike | None = None, device: str = "cpu"):
    """LPIPS network from local files (nothing is downloaded).

    ``weights``: the linear heads (keys ``lin0.model.1.weight`` ... ``lin4...``, as in the lpips package's
    ``weights/v0.1/{alex,vgg}.pth``); the file may also hold the backbone (an ``lpips.LPIPS`` state dict, keys
    ``net.sliceK.N.weight``). ``backbone``: torchvision's ``alexnet`` / ``vgg16`` state dict (keys ``features.N.*``)
    when ``weights`` has none. The net (alex / vgg) is inferred from the heads' channel counts.
    """
    wpath = Path(weights).expanduser()
    if not wpath.is_file():
        raise FileNotFoundError(f"LPIPS weights not found: {str(wpath)!r}. {LPIPS_HINT}")
    sd = _load_state(wpath)
    heads: dict[int, Any] = {}
    feats: dict[str, Any] = {}
    for k, v in sd.items():
        m = re.fullmatch(r"(?:module\.)?lins?\.?(\d)\.model\.\d+\.weight|(?:module\.)?lin(\d)\.weight", k)
        if m:
            heads[int(m.group(1) or m.group(2))] = v
            continue
        m = re.fullmatch(r"(?:module\.)?net\.slice\d\.(\d+)\.(weight|bias)", k)
        if m:
            feats[f"features.{m.group(1)}.{m.group(2)}"] = v
    if sorted(heads) != [0, 1, 2, 3, 4]:
        raise ValueError(
            f"{wpath}: no LPIPS linear heads lin0..lin4 found (keys {sorted(sd)[:6]}...). {LPIPS_HINT}"
        )
    channels = tuple(int(heads[i].shape[1]) for i in range(5))
    net = next((n for n, c in _LPIPS_CHANNELS.items() if c == channels), None)
    if net is None:
        raise ValueError(f"{wpath}: LPIPS heads with channels {channels} match neither alex nor vgg")
    if not feats:
        if backbone is None:
            raise ValueError(f"{wpath} holds only the LPIPS heads; pass the {net} backbone too. {LPIPS_HINT}")
        bpath = Path(backbone).expanduser()
        if not bpath.is_file():
            raise FileNotFoundError(f"LPIPS backbone not found: {str(bpath)!r}. {LPIPS_HINT}")
        feats = {k.removeprefix("module."): v for k, v in _load_state(bpath).items() if "features." in k}
    model = LPIPSNet(net)
    want = {k for k in model.features.state_dict()}
    have = {k.removeprefix("features."): v for k, v in feats.items() if k.removeprefix("features.") in want}
    missing = sorted(want - set(have))
    if missing:
        raise ValueError(
            f"LPIPS {net} backbone lacks {missing[:4]}...; is it torchvision's {net} state dict?"
        )
    model.features.load_state_dict(have)
    for i, lin in enumerate(model.lins):
        lin.weight.data.copy_(heads[i].reshape(lin.weight.shape))
    return model.to(device)


class LPIPSMetric(Metric):
    """LPIPS distance of each prediction to its GT, ``[-1, 1]`` RGB at native size (lower is better)."""

    key, needs = "lpips", "gt"
    columns = (Column("LPIPS", False, "", ".4f"),)

    def __init__(self, weights, backbone, device: str):
        self.model = load_lpips(weights, backbone, device)
        self.device = device
        src = f"heads {Path(weights).name}" + (f", backbone {Path(backbone).name}" if backbone else "")
        self.info = (
            f"LPIPS v0.1 ({self.model.net_name}) re-implemented in AuthFace (torch, no torchvision), {src}; "
            "inputs [-1, 1] RGB at native size"
        )

    def compute(self, preds, targets):
        import torch

        from authface.io import numpy_to_tensor

        out = np.full(len(preds), np.nan)
        for idx in groups_by_shape(preds):
            a = numpy_to_tensor([preds[i] for i in idx]).to(self.device)
            b = numpy_to_tensor([targets[i] for i in idx]).to(self.device)
            with torch.no_grad():
                out[idx] = self.model(a, b).double().cpu().numpy()
        return {"LPIPS": out}
