"""AuthFace: diffusion-based face restoration.

Nothing heavy happens at import: torch/diffusers are imported when a name that needs them is first used.
"""

from __future__ import annotations

from .lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "AuthFacePipeline": "authface.pipeline",
    "AuthFacePipelineOutput": "authface.pipeline",
    "FaceRestorer": "authface.restorer",
    "load_pipeline": "authface.pipeline",
    "RestoreConfig": "authface.config",
    "load_config": "authface.config",
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)
