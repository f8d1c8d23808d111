"""The diffusion pipeline layer: :class:`AuthFacePipeline` (aligned crops in, restored crops out; SD 1.x/2.x) and
its SDXL sibling :class:`AuthFaceXLPipeline` (the same loop), their output, what follows from a base's family
(:func:`default_crop_size`, :func:`default_controlnet`), and whole-pipeline assembly (:func:`load_pipeline`,
:func:`configure_pipeline`, :func:`set_scheduler`).

Component loaders (ControlNet, base components, tiny decoder, device and dtype) live one layer below, in
:mod:`authface.models.loading`.
"""

from .bases import (
    DEFAULT_CONTROLNET_SDXL,
    DEFAULT_CONTROLNETS,
    check_controlnet_matches,
    default_controlnet,
    default_crop_size,
    default_tiny_decoder,
    is_sdxl,
)
from .checks import OUTPUT_TYPES
from .decode import NonFiniteOutputError
from .loading import configure_pipeline, load_lora, load_pipeline, set_scheduler
from .output import AuthFacePipelineOutput
from .pipeline_authface import AuthFacePipeline
from .pipeline_authface_xl import AuthFaceXLPipeline, encode_sdxl_text, sdxl_time_ids

__all__ = [
    "DEFAULT_CONTROLNETS",
    "DEFAULT_CONTROLNET_SDXL",
    "OUTPUT_TYPES",
    "AuthFacePipeline",
    "AuthFacePipelineOutput",
    "AuthFaceXLPipeline",
    "NonFiniteOutputError",
    "check_controlnet_matches",
    "configure_pipeline",
    "default_controlnet",
    "default_crop_size",
    "default_tiny_decoder",
    "encode_sdxl_text",
    "is_sdxl",
    "load_lora",
    "load_pipeline",
    "sdxl_time_ids",
    "set_scheduler",
]
