"""Inpainting training (``task: inpaint``): a synthetic occlusion (a face mask, old-photo damage or painted
strokes, :mod:`authface.data.occlusions`, ``data.occlusions``) hides part of each HQ face before it is degraded;
the model learns to generate
what is hidden, and only that.

* The ControlNet sees the occluded, degraded crop plus the occlusion's mask as a fourth condition channel
  (:mod:`authface.models.mask_channel`, zero-initialised when the ControlNet is converted).
* **Masked-region losses on the composite.** With ``m`` the mask on the latent grid (a latent cell counts as masked
  when any of its 8 x 8 pixels is: ``adaptive_max_pool2d``), the diffusion loss is the mean squared error over the
  masked latent elements only, and the facial feature loss, the identity loss and the region discriminators see
  the composite clean latent ``m * x̂0 + (1 - m) * z_HQ``: generated inside the mask, the original outside. The
  model output therefore receives exactly zero gradient outside the mask; the facial loss covers the generated
  nose and mouth.
* **Whole faces stay plain restoration.** The same ControlNet and LoRA restore every face without a mask (and the
  restorer's plain pass of a masked one) with an empty mask channel; so the faces drawn without an occlusion
  (``1 - data.occlusion_prob``, 20% by default for this task) are trained exactly like that: empty mask channel,
  losses over the whole face. Without them the weights would get no supervision outside masks and drift there.

The mask of a sample comes with it from the dataset (``batch["mask"]``, (B, 1, R, R) in {0, 1}), drawn from
``(seed, epoch, index)`` like its degradation, so a resumed run sees the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.mask_channel import with_mask_channel
from .objective import DiffusionObjective


def latent_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel masks (B, 1, R, R) in {0, 1} -> float32 (B, 1, h, w) on the latent grid: 1 where any pixel of the cell
    is masked."""
    return (F.adaptive_max_pool2d(mask.float(), size) > 0).float()


def loss_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Where the losses look, float32 (B, 1, h, w): the latent mask (:func:`latent_mask`) of an occluded face, all
    ones for a face without a mask (trained as plain restoration)."""
    m = latent_mask(mask, size)
    whole = m.flatten(1).sum(1) == 0
    return torch.where(whole.view(-1, 1, 1, 1), torch.ones_like(m), m)


@dataclass
class InpaintObjective(DiffusionObjective):
    """:class:`~.objective.DiffusionObjective` on occluded faces, its losses restricted to the occluded region
    (module docstring). Batches must hold ``mask`` (B, 1, R, R)."""

    def control_image(self, batch: dict, lq: torch.Tensor) -> torch.Tensor:
        """(B, 4, R, R): the occluded, degraded crop in [0, 1] and its mask."""
        return with_mask_channel(lq, batch["mask"].to(lq))

    def sample_mse(self, pred: torch.Tensor, target: torch.Tensor, batch: dict) -> torch.Tensor:
        """Per-sample MSE over the masked latent elements only (the whole latent for a face without a mask), (B,)."""
        m = loss_mask(batch["mask"].to(pred.device), pred.shape[-2:])
        return (m * (pred - target) ** 2).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * pred.shape[1])

    def composite(self, pred_x0: torch.Tensor, latents: torch.Tensor, batch: dict) -> torch.Tensor:
        """``m * x̂0 + (1 - m) * z_HQ`` (B, 4, h, w): generated inside the mask, the original outside (x̂0 itself
        for a face without a mask)."""
        m = loss_mask(batch["mask"].to(pred_x0.device), pred_x0.shape[-2:])
        return m * pred_x0 + (1 - m) * latents
