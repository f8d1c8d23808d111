"""A small cache of loaded models for the web demo, so a change of steps or strength never reloads weights.

What is loaded (the pipeline, its scheduler, the face detector) depends only on :data:`LOAD_KEYS`; everything
else (sampler settings, guidance scales, crop size, upscale, aligned mode, colorize) is cheap to apply per run, so
:meth:`RestorerCache.restorer_for` builds a fresh :class:`~authface.restorer.FaceRestorer` around the cached
pipeline for every request. Guidance objectives (an identity encoder may be a model) and the background upsampler
(Real-ESRGAN is one) are cached by their own settings.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from ..build import build_objectives, build_upsampler, pipeline_restore_fn
from ..config import RestoreConfig, to_dict
from ..face.stage import FaceStage
from ..restorer import FaceRestorer

logger = logging.getLogger(__name__)

#: Config keys whose value changes what is loaded; a request that differs only in other keys reuses the model.
LOAD_KEYS = (
    "model",  # the whole model section: weights, LoRA, device, dtype, offload, attention
    "sampler.scheduler",
    "face.detector",
    "face.detector_model",
    "face.upsample",
    "guidance.decoder",
    "guidance.tiny_decoder",
)

#: Below this many UNet parameters a model cannot be a trained Stable Diffusion (SD 1.5's UNet has 860 M):
#: it is a random test model such as ``authface.testing.tiny_model``, whose faces are noise.
TINY_MODEL_PARAMS = 20_000_000


def _get(cfg: RestoreConfig, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def load_key(cfg: RestoreConfig) -> str:
    """The cache key of a resolved config: a JSON string of its :data:`LOAD_KEYS` values."""
    values = {key: _get(cfg, key) for key in LOAD_KEYS}
    return json.dumps({k: to_dict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in values.items()},
                      sort_keys=True)  # fmt: skip


def unet_parameters(pipeline) -> int | None:
    """Number of parameters of the pipeline's UNet (None when it has none)."""
    unet = getattr(pipeline, "unet", None)
    if unet is None or not hasattr(unet, "parameters"):
        return None
    return sum(p.numel() for p in unet.parameters())


def tiny_model_note(pipeline) -> str | None:
    """A warning for the page when the pipeline is a tiny random test model (its faces are noise), else None."""
    n = unet_parameters(pipeline)
    if n is None or n >= TINY_MODEL_PARAMS:
        return None
    return (f"This model is a tiny random test model ({n:,} UNet parameters): its faces are NOISE, not a "
            "restoration. It only shows that the demo works; load a real AuthFace model for real results.")  # fmt: skip


class LRU:
    """A thread-safe least-recently-used map of at most ``size`` entries; values are made on demand."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"cache size must be >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value of ``key``, made with ``make()`` (after evicting the oldest entries) when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            while len(self._items) >= self.size:  # free memory before loading the next model
                old, _ = self._items.popitem(last=False)
                logger.info("demo cache: unloaded %s", old)
                _free_memory()
            value = make()
            self._items[key] = value
            return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            _free_memory()


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


class RestorerCache:
    """Loaded restorers keyed by :func:`load_key`; ``size`` models at most are held (default 1: the memory of
    one model). ``loads`` counts how many models were loaded (tests check that a setting change reuses one)."""

    def __init__(self, size: int = 1):
        self.models = LRU(size)
        self.objectives = LRU(4)
        self.upsamplers = LRU(2)
        self.loads = 0

    def base(self, cfg: RestoreConfig) -> FaceRestorer:
        """The loaded restorer for ``cfg``'s :data:`LOAD_KEYS` (loaded with a detector and no guidance).

        Raises what :meth:`FaceRestorer.from_config` raises (OSError for a missing model, ValueError, ImportError).
        """

        def load() -> FaceRestorer:
            base_cfg = copy.deepcopy(cfg)
            base_cfg.face.aligned = False  # always build the detector: aligned mode is chosen per request
            base_cfg.face.upscale = 1  # no background upsampler here: restorer_for picks it per request
            g = base_cfg.guidance
            g.identity_scale = g.quality_scale = g.fidelity_scale = 0.0  # objectives: per request too
            logger.info("demo: loading %s", cfg.model.model)
            restorer = FaceRestorer.from_config(base_cfg)
            self.loads += 1
            return restorer

        return self.models.get(load_key(cfg), load)

    def restorer_for(self, cfg: RestoreConfig) -> FaceRestorer:
        """A restorer with every setting of ``cfg``, around the cached pipeline and detector of :meth:`base`."""
        base = self.base(cfg)
        s, f = cfg.sampler, cfg.face
        if f.crop_size is None:  # the base model's own resolution, as the loaded restorer resolved it
            f.crop_size = base.stage.crop_size
        detector = None if f.aligned else base.stage.detector
        guidance_key = (
            load_key(cfg),
            json.dumps(to_dict(cfg.guidance), sort_keys=True),
            f.crop_size,
            f.aligned,
        )
        objectives = self.objectives.get(
            guidance_key, lambda: build_objectives(cfg.guidance, base.device, detector, f.crop_size, cfg.io.max_pixels)
        )  # fmt: skip
        restore_fn = pipeline_restore_fn(
            base.pipeline, s.prompt, s.negative_prompt, s.steps, s.strength, s.cfg_scale, s.controlnet_scale,
            s.color_fix, s.batch_size, objectives, s.quality_target,
        )  # fmt: skip
        # the background upsampler (Real-ESRGAN is a model) depends on upscale and bg_* only: cached per choice
        upsampler_key = (load_key(cfg), f.bg_upsampler, f.bg_tile, f.upscale > 1)
        upsampler = self.upsamplers.get(upsampler_key, lambda: build_upsampler(f, base.device))
        stage = FaceStage(
            detector, f.crop_size, f.only_center_face, f.min_face_size, f.max_faces, f.aligned, upsampler
        )
        restorer = FaceRestorer(restore_fn, stage, f.upscale, s.batch_size, s.seed, colorize=s.colorize)
        restorer.pipeline, restorer.device, restorer.dtype = base.pipeline, base.device, base.dtype
        restorer.config = cfg
        return restorer
