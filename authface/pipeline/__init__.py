"""The diffusion pipeline layer: :class:`AuthFacePipeline` (aligned crops in, restored crops out), its output,
and whole-pipeline assembly (:func:`load_pipeline`, :func:`configure_pipeline`, :func:`set_scheduler`).

Component loaders (ControlNet, base components, tiny decoder, device and dtype) live one layer below, in
:mod:`authface.models.loading`.
"""

from .decode import NonFiniteOutputError
from .loading import configure_pipeline, load_lora, load_pipeline, set_scheduler
from .output import AuthFacePipelineOutput
from .pipeline_authface import OUTPUT_TYPES, AuthFacePipeline

__all__ = [
    "OUTPUT_TYPES",
    "AuthFacePipeline",
    "AuthFacePipelineOutput",
    "NonFiniteOutputError",
    "configure_pipeline",
    "load_lora",
    "load_pipeline",
    "set_scheduler",
]
