"""The mask segmenter: a small U-Net that finds, in an aligned face crop, what hides the face (a face mask, a
hand, a scarf), old-photo damage (scratches, creases, tears, stains) and regions painted over (flat brush strokes,
mostly white, as in CodeFormer's inpainting inputs) — ``authface restore --mask auto``.

It is hand-written (about 60 lines of torch): no well-kept segmentation library (segmentation_models_pytorch,
torchvision's models) works without torchvision, which AuthFace does not depend on. It is trained on aligned
crops with synthetic occlusions (:mod:`authface.data.occlusions`) by ``training/train.py --task mask-segmenter``
(:mod:`authface.training.segmenter`), which writes ``OUT/mask_segmenter/`` (``config.json`` + safetensors, through
diffusers' ``ModelMixin``/``ConfigMixin``). An AuthFace model folder may hold the same folder as its own
``mask_segmenter/`` subfolder; :func:`load_mask_segmenter` takes either folder.

    segmenter = load_mask_segmenter("run/mask_segmenter", "cpu")
    masks = predict_masks(segmenter, crops)     # uint8 RGB (N, S, S, 3) -> bool (N, S, S), True = to fill
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

logger = logging.getLogger(__name__)

SUBFOLDER = "mask_segmenter"
"""The segmenter's folder inside a training output folder and inside an AuthFace model folder."""
HOW_TO_TRAIN = (
    "train one with training/train.py --task mask-segmenter --data DATASET --output OUT (it writes "
    f"OUT/{SUBFOLDER}/), then pass --mask-model OUT or copy OUT/{SUBFOLDER} into the model folder"
)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by GroupNorm and SiLU; the spatial size is kept."""
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
    )  # fmt: skip


class MaskSegmenter(ModelMixin, ConfigMixin):
    """A U-Net: ``len(widths)`` levels, each level halving the size (max-pool) and the decoder going back up
    (bilinear x2, concatenated skip, two convolutions), then a 1x1 convolution to one logit per pixel.

    Args:
        widths: channels per level, e.g. ``(16, 32, 64, 128)`` (about 0.5 M parameters).
        resolution: the working size: :func:`predict_masks` resizes crops to ``resolution``² first (the size it
            was trained at); ``forward`` takes any size divisible by ``2 ** (len(widths) - 1)``.
        in_channels: 3 (RGB).

    ``forward(x)``: float ``(B, 3, H, W)`` in ``[-1, 1]`` -> logits float ``(B, 1, H, W)`` (sigmoid > 0.5 = mask).
    """

    @register_to_config
    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), resolution: int = 256, in_channels: int = 3):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive channel counts, got {widths}")
        self.down = nn.ModuleList(_block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths))
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = len(self.down)
        if x.shape[-1] % 2 ** (levels - 1) or x.shape[-2] % 2 ** (levels - 1):
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be divisible by {2 ** (levels - 1)}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def clean_mask(mask: np.ndarray, dilate_px: int = 2) -> np.ndarray:
    """Morphological clean-up of one predicted bool ``(S, S)`` mask: an opening with a 3x3 cross (removes
    isolated pixels and one-pixel speckle, which are noise, not damage), then a dilation by ``dilate_px``
    pixels (3x3 square, ``dilate_px`` times) so the mask covers the occluder's soft edge. Returns bool ``(S, S)``."""
    import cv2

    m = mask.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
    if dilate_px > 0:
        m = cv2.dilate(m, np.ones((3, 3), np.uint8), iterations=int(dilate_px))
    return m.astype(bool)


@torch.no_grad()
def predict_masks(
    segmenter: MaskSegmenter,
    crops: np.ndarray | Sequence[np.ndarray],
    threshold: float = 0.5,
    batch_size: int = 16,
    dilate_px: int = 2,
) -> np.ndarray:
    """The masks of aligned face crops.

    Args:
        segmenter: a :class:`MaskSegmenter` (its device and dtype are used; it is put in eval mode).
        crops: uint8 RGB ``(N, S, S, 3)`` or a list of ``(S, S, 3)`` (all the same size).
        threshold: probability above which a pixel is masked, in ``(0, 1)``.
        batch_size: crops per forward pass.
        dilate_px: the clean-up's dilation (:func:`clean_mask`), in crop pixels.

    Each crop is resized (bilinear, antialiased) to ``config.resolution``², segmented, its logits resized back to
    ``S``² (bilinear), passed through the sigmoid, thresholded and cleaned (:func:`clean_mask`).

    Returns:
        bool ``(N, S, S)``, True = region to generate (all False: nothing to fill).
    """
    from .. import io

    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    crops = np.asarray(crops) if not isinstance(crops, np.ndarray) else crops
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"crops must be uint8 RGB (N, S, S, 3), got shape {crops.shape}")
    segmenter.eval()
    param = next(segmenter.parameters())
    size, res = crops.shape[1], int(segmenter.config.resolution)
    out = np.zeros(crops.shape[:3], bool)
    for start in range(0, len(crops), batch_size):
        x = io.numpy_to_tensor(crops[start : start + batch_size]).to(param.device, param.dtype)
        if size != res:
            x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
        logits = segmenter(x).float()
        if size != res:
            logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        probs = torch.sigmoid(logits)[:, 0].cpu().numpy()
        for k, p in enumerate(probs):
            out[start + k] = clean_mask(p > threshold, dilate_px)
    return out


def _read_config(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"mask segmenter {path}: unreadable config.json ({err}); {HOW_TO_TRAIN}") from None
    if not isinstance(config, dict) or config.get("_class_name") != MaskSegmenter.__name__:
        kind = config.get("_class_name") if isinstance(config, dict) else None
        raise ValueError(f"mask segmenter {path}: its config.json describes {kind or 'no model class'}, not a "
                         f"{MaskSegmenter.__name__}; {HOW_TO_TRAIN}")  # fmt: skip
    return config


def load_mask_segmenter(ref: str | Path, device: str | torch.device = "cpu") -> MaskSegmenter:
    """Load a trained segmenter from a local folder, in float32 on ``device``, in eval mode.

    ``ref``: the folder :func:`authface.training.segmenter.train_segmenter` writes (``OUT/mask_segmenter``), the
    training output folder ``OUT`` itself, or an AuthFace model folder with a ``mask_segmenter/`` subfolder.

    Raises:
        FileNotFoundError: ``ref`` does not exist (the message says how to train one).
        ValueError: the folder holds no mask segmenter, or its weights do not load (named, with the fix).
    """
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"mask segmenter {ref}: no such folder; {HOW_TO_TRAIN}")
    if not (path / "config.json").is_file() and (path / SUBFOLDER).is_dir():
        path = path / SUBFOLDER
    if not (path / "config.json").is_file():
        raise ValueError(f"mask segmenter {path}: no config.json (not a mask segmenter folder); {HOW_TO_TRAIN}")
    _read_config(path)
    try:
        model = MaskSegmenter.from_pretrained(path)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        raise ValueError(f"mask segmenter {path}: its weights do not load ({err}); {HOW_TO_TRAIN}") from None
    return model.to(device).eval()  # from_pretrained loads float32
