"""Argument checks of :class:`~authface.pipeline.AuthFacePipeline` (a mixin: they need the pipeline's VAE scale,
ControlNet and scheduler)."""

from __future__ import annotations

import warnings

from ..colorfix import COLOR_FIXES
from ..guidance import Guidance
from ..models.few_step import img2img_timesteps
from ..models.one_step import check_timestep
from ..models.quality_prior import DEFAULT_QUALITY, has_quality_prior

#: Accepted ``output_type`` values (see :class:`~authface.pipeline.AuthFacePipelineOutput`).
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


class InputChecks:
    """``check_inputs`` and ``check_quality_target`` of the AuthFace pipelines."""

    def check_inputs(
        self, image, num_inference_steps, strength, batch_size, generator, color_fix, objectives, quality_target,
        output_type, callback_on_step_end_tensor_inputs=None, one_step_timestep=None,
    ) -> None:  # fmt: skip
        """Raise ValueError naming the argument, the value received and the fix. ``image``: (B, 3, H, W).

        Steps × strength: every combination the scheduler cannot run (no step, a one-step schedule that starts
        from pure noise at t≈0, a schedule the scheduler cannot make) is refused here, before any work
        (:func:`authface.models.few_step.img2img_timesteps`). A one-step model (``one_step_timestep``) ignores
        both."""
        if one_step_timestep is not None:
            check_timestep(one_step_timestep, self.scheduler.config.num_train_timesteps)
            if any(getattr(g, "scale", 0.0) != 0.0 for g in objectives or []):
                raise ValueError(
                    "guidance objectives steer the multi-step loop; the one-step mode has no loop to steer: drop "
                    "the objectives or restore with a multi-step model"
                )
        else:
            if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
                raise ValueError(
                    f"num_inference_steps must be a positive integer (e.g. 20), got {num_inference_steps!r}"
                )
            img2img_timesteps(self.scheduler, num_inference_steps, strength)
        if color_fix not in COLOR_FIXES and color_fix is not None:
            raise ValueError(f"color_fix must be one of {', '.join(COLOR_FIXES)}; got {color_fix!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer (faces per UNet call), got {batch_size!r}"
            )
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}")
        for g in objectives or []:
            if not isinstance(g, Guidance):
                raise ValueError(
                    f"objectives entries must be authface.guidance.Guidance objects (IdentityGuidance, "
                    f"QualityGuidance, FidelityGuidance, ScoreGuidance), got {type(g).__name__}"
                )
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}; got {bad}"
            )
        h, w = image.shape[-2:]
        if h % self.vae_scale_factor or w % self.vae_scale_factor:
            raise ValueError(
                f"image size {w}x{h} must be divisible by {self.vae_scale_factor} (the VAE's downsampling); "
                f"use a crop size such as 512"
            )
        if isinstance(generator, list) and len(generator) != image.shape[0]:
            raise ValueError(
                f"got {len(generator)} generators for {image.shape[0]} images; pass one per image"
            )
        self.check_quality_target(quality_target)

    def check_quality_target(self, quality_target) -> None:
        """ValueError unless ``quality_target`` is None, or a number in [0, 1] for a model with the quality prior."""
        if quality_target is None:
            return
        if not has_quality_prior(self.controlnet):
            raise ValueError(
                f"quality_target={quality_target!r} was given but this model has no image-quality prior (its "
                f"ControlNet was not trained with one); fine-tune with the quality prior (authface train) or leave "
                f"quality_target unset"
            )
        if isinstance(quality_target, bool) or not isinstance(quality_target, (int, float)):
            raise ValueError(f"quality_target must be a number in [0, 1], got {quality_target!r}")
        if not 0.0 <= quality_target <= 1.0:
            raise ValueError(
                f"quality_target must be in [0, 1] (0 worst, 1 best; default {DEFAULT_QUALITY}), got {quality_target!r}"
            )


def _deprecated_alias(kwargs: dict, old: str, new: str, value):
    if old not in kwargs:
        return value
    # stacklevel: here <- resolve_aliases <- __call__ <- torch.no_grad's wrapper <- the caller
    warnings.warn(f"AuthFacePipeline: `{old}=` is deprecated; use `{new}=`", FutureWarning, stacklevel=5)
    old_value = kwargs.pop(old)
    if value is not None:
        raise TypeError(f"pass either {new}= or its deprecated alias {old}=, not both")
    return old_value


def resolve_aliases(kwargs: dict, objectives, quality_target):
    """(objectives, quality_target) after the deprecated ``guidance=`` / ``quality_score=``; TypeError for any
    other unexpected keyword."""
    objectives = _deprecated_alias(kwargs, "guidance", "objectives", objectives)
    quality_target = _deprecated_alias(kwargs, "quality_score", "quality_target", quality_target)
    if kwargs:
        raise TypeError(f"AuthFacePipeline.__call__ got unexpected keyword arguments {sorted(kwargs)}")
    return objectives, quality_target
