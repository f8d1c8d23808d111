"""insightface ``arcface_torch``'s IResNet (r18/r34/r50/r100/r200), state-dict compatible with its released
``backbone.pth`` files: the network behind :class:`~authface.models.arcface.ArcFaceEncoder` and the target of
the ONNX conversion in :mod:`authface.models.arcface_onnx`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["IRESNET_LAYERS", "IBasicBlock", "IResNet", "check_state_dict", "iresnet", "iresnet_arch_name"]

#: Blocks per stage of insightface's arcface_torch ``iresnet`` variants.
IRESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
    "r200": (6, 26, 60, 6),
}


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """arcface_torch's pre-activation basic block: BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN (+ shortcut)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNet(nn.Module):
    """insightface ``arcface_torch`` IResNet, state-dict compatible with its released ``backbone.pth`` files.

    ``[-1, 1] RGB (B, 3, 112, 112)`` (insightface's ``(x / 255 - 0.5) / 0.5``) -> ``(B, num_features)``
    un-normalised embedding. Keys: ``conv1, bn1, prelu, layer1..layer4.{i}.{bn1,conv1,bn2,prelu,conv2,bn3,
    downsample.0,downsample.1}, bn2, fc, features`` (``dropout`` has no parameters).

    Args:
        layers: blocks per stage (see :data:`IRESNET_LAYERS`).
        dropout: dropout before ``fc`` (training only).
        num_features: embedding size (512 for every released model).
        fc_scale: spatial size of the last feature map flattened into ``fc`` (7 * 7 for 112 px inputs).
    """

    def __init__(
        self,
        layers: Sequence[int],
        dropout: float = 0.0,
        num_features: int = 512,
        fc_scale: int = 7 * 7,
    ):
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"IResNet needs 4 positive block counts, got {list(layers)}")
        self.layers = tuple(int(n) for n in layers)
        self.fc_scale = int(fc_scale)
        self.num_features = int(num_features)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, self.layers[0], stride=2)
        self.layer2 = self._make_layer(128, self.layers[1], stride=2)
        self.layer3 = self._make_layer(256, self.layers[2], stride=2)
        self.layer4 = self._make_layer(512, self.layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * self.fc_scale, self.num_features)
        self.features = nn.BatchNorm1d(self.num_features, eps=1e-05)
        # arcface_torch's initialisation
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @property
    def input_size(self) -> int:
        """Side of the square input the ``fc`` layer expects (112 for ``fc_scale`` 49)."""
        return 16 * int(round(math.sqrt(self.fc_scale)))

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-05),
            )
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))  # (B, 64, 112, 112)
        x = self.layer1(x)  # (B, 64, 56, 56)
        x = self.layer2(x)  # (B, 128, 28, 28)
        x = self.layer3(x)  # (B, 256, 14, 14)
        x = self.layer4(x)  # (B, 512, 7, 7)
        x = self.bn2(x)
        x = torch.flatten(x, 1)  # (B, 512 * 49)
        x = self.dropout(x)
        x = self.fc(x)  # (B, num_features)
        return self.features(x)


def iresnet(arch: str = "r50", **kw: Any) -> IResNet:
    """Build an arcface_torch IResNet by name (``r18``, ``r34``, ``r50``, ``r100``, ``r200``); ``kw`` go to
    :class:`IResNet` (``dropout``, ``num_features``, ``fc_scale``). Random weights."""
    key = str(arch).strip().lower()
    if key not in IRESNET_LAYERS:
        raise ValueError(f"unknown iresnet arch {arch!r}; choose one of: {', '.join(IRESNET_LAYERS)}")
    return IResNet(IRESNET_LAYERS[key], **kw)


def iresnet_arch_name(layers: Sequence[int]) -> str | None:
    """The name (``"r50"``, ...) of the :data:`IRESNET_LAYERS` entry with these blocks per stage, or ``None``."""
    for name, known in IRESNET_LAYERS.items():
        if tuple(int(n) for n in layers) == known:
            return name
    return None


def check_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Raise a ValueError listing missing/unexpected keys and shape mismatches (``num_batches_tracked`` is
    optional)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {missing[:4]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:4]})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) (e.g. {mismatched[:3]})")
        raise ValueError(f"{what}: {'; '.join(parts)}")
