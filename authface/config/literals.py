"""Every closed set of choices in AuthFace, once, as ``Literal`` types.

Config fields are annotated with these, so the config documents and checks itself; library modules that need the
list of names derive it with :func:`authface.config.choices` (``choices(ColorFix) == ("none", "wavelet", "adain")``)
instead of keeping their own tuple.
"""

from __future__ import annotations

from typing import Literal

Dtype = Literal["auto", "float32", "float16", "bfloat16", "fp32", "fp16", "bf16"]
Offload = Literal["none", "model", "sequential"]
Attention = Literal["auto", "sdpa", "xformers"]
SchedulerName = Literal["default", "ddim", "dpm++", "unipc", "euler", "euler_a", "lcm", "tcd"]
ColorFix = Literal["none", "wavelet", "adain"]
DetectorName = Literal["dlib", "dlib-mmod", "yunet", "insightface"]
FidelitySpace = Literal["latent", "pixel"]
GuidanceDecoder = Literal["vae", "tiny"]
DegradationPreset = Literal["gfpgan", "codeformer", "realesrgan", "mild"]
LRScheduler = Literal["constant", "constant_with_warmup", "cosine", "linear"]
MixedPrecision = Literal["no", "fp16", "bf16"]
TimeWeightMode = Literal["logit_normal", "constant", "off"]
LogWith = Literal["tensorboard", "wandb", "none"]
FacialRegion = Literal["left_eye", "right_eye", "nose", "mouth"]
ResizeMode = Literal["bicubic", "bilinear", "area", "nearest", "lanczos"]
BgUpsamplerName = Literal["lanczos", "realesrgan"]
TrainTask = Literal["restore", "inpaint", "mask-segmenter"]
OcclusionKind = Literal["facemask", "damage", "paint", "both", "all"]
