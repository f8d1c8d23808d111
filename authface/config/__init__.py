"""Typed, self-documenting configuration for every command (see :mod:`.base` for the mechanism).

Config objects stop at entry points (CLI, training script, ``FaceRestorer.from_pretrained``): library functions
take explicit arguments.
"""

from .base import ConfigError, all_keys, choices, load_config, parse_override, set_key, to_dict, validate
from .literals import (
    Attention,
    ColorFix,
    DegradationPreset,
    DetectorName,
    Dtype,
    FacialRegion,
    FidelitySpace,
    GuidanceDecoder,
    LogWith,
    LRScheduler,
    MixedPrecision,
    Offload,
    ResizeMode,
    SchedulerName,
    TimeWeightMode,
)
from .restore import (
    DEFAULT_BASE_MODEL,
    DEFAULT_CONTROLNET,
    FaceConfig,
    GuidanceConfig,
    IOConfig,
    ModelConfig,
    RestoreConfig,
    SamplerConfig,
)
from .train import (
    TINY_RANDOM_BASE,
    FacialLossConfig,
    OptimConfig,
    TrainConfig,
    TrainDataConfig,
    TrainModelConfig,
    TrainOutputConfig,
)

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_CONTROLNET",
    "TINY_RANDOM_BASE",
    "Attention",
    "ColorFix",
    "ConfigError",
    "DegradationPreset",
    "DetectorName",
    "Dtype",
    "FaceConfig",
    "FacialLossConfig",
    "FacialRegion",
    "FidelitySpace",
    "GuidanceConfig",
    "GuidanceDecoder",
    "IOConfig",
    "LRScheduler",
    "LogWith",
    "MixedPrecision",
    "ModelConfig",
    "Offload",
    "OptimConfig",
    "ResizeMode",
    "RestoreConfig",
    "SamplerConfig",
    "SchedulerName",
    "TimeWeightMode",
    "TrainConfig",
    "TrainDataConfig",
    "TrainModelConfig",
    "TrainOutputConfig",
    "all_keys",
    "choices",
    "load_config",
    "parse_override",
    "set_key",
    "to_dict",
    "validate",
]
