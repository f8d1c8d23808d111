"""The output of :class:`~authface.pipeline.AuthFacePipeline` (a diffusers ``BaseOutput``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput


@dataclass
class AuthFacePipelineOutput(BaseOutput):
    """The restored crops and what the guidance objectives measured.

    ``images``: by ``output_type`` — "np": uint8 RGB (B, H, W, 3); "pil": a list of B RGB ``PIL.Image``;
    "pt": float [-1, 1] RGB (B, 3, H, W); "latent": the final latents (B, 4, H/8, W/8), scaled by
    ``vae.config.scaling_factor`` (no decode, no colour fix).
    ``objective_log``: per image, one record per objective per step it ran at:
    ``{"name": str, "step": int, "t": int, "value": float}``.
    ``objective_final``: per image, each objective's value on the final result (name -> float), measured as
    delivered (decoded and clamped, before the colour fix).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    objective_log: list[list[dict]]
    objective_final: list[dict]

    @property
    def guidance_log(self) -> list[list[dict]]:
        """Deprecated alias of :attr:`objective_log`."""
        warnings.warn("AuthFacePipelineOutput.guidance_log is deprecated; use objective_log", FutureWarning, 2)
        return self.objective_log

    @property
    def guidance_final(self) -> list[dict]:
        """Deprecated alias of :attr:`objective_final`."""
        warnings.warn("AuthFacePipelineOutput.guidance_final is deprecated; use objective_final", FutureWarning, 2)
        return self.objective_final
