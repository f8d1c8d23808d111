"""From a resolved :class:`~authface.config.RestoreConfig` to working objects: the one place where config stops.

:func:`build_parts` loads the pipeline, the detector and the guidance objectives and returns what a
:class:`~authface.restorer.FaceRestorer` is made of; ``FaceRestorer.from_config`` / ``from_pretrained`` (used by
the CLI, notebooks and the demo) go through it. This module sits below the restorer: it never imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, RestoreConfig, all_keys, load_config, set_key
from .face.stage import FaceStage

#: restore_crops(crops: list[uint8 RGB (S, S, 3)], seeds: list[int]) -> (restored crops, per-face extras)
RestoreCrops = Callable[[list[np.ndarray], list[int]], tuple[list[np.ndarray], list[dict]]]

logger = logging.getLogger(__name__)


def restore_config(config: str | None = None, **options: Any) -> RestoreConfig:
    """A validated RestoreConfig from defaults, an optional YAML file and keyword options.

    Keys are dotted (``"sampler.steps"``) or the short leaf name (``steps``) when it is unique.

    Raises:
        ConfigError: an unknown key (with the closest valid one) or a bad value.
    """
    cfg = load_config(RestoreConfig, config)
    by_leaf: dict[str, list[str]] = {}
    for key in all_keys(RestoreConfig):
        by_leaf.setdefault(key.rsplit(".", 1)[-1], []).append(key)
    for name, value in options.items():
        key = name if "." in name else (by_leaf.get(name) or [name])[0]
        if "." not in name and len(by_leaf.get(name, [])) > 1:
            raise ConfigError(f"option {name!r} is ambiguous: use one of {', '.join(by_leaf[name])}")
        set_key(cfg, key, value)
    cfg.validate()
    return cfg


def pipeline_restore_fn(
    pipe,
    prompt: str,
    negative_prompt: str,
    steps: int,
    strength: float,
    cfg_scale: float,
    controlnet_scale: float,
    color_fix: str,
    batch_size: int,
    objectives: list | None = None,
    quality_target: float | None = None,
) -> RestoreCrops:
    """Adapt an :class:`AuthFacePipeline` to the restorer's ``restore_crops`` interface (one seed per face)."""
    import torch

    def restore(crops: list[np.ndarray], seeds: list[int], masks: list | None = None):
        from .inpaint import inpaint_crops

        call = dict(prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=steps, strength=strength,
                    guidance_scale=cfg_scale, controlnet_conditioning_scale=controlnet_scale, batch_size=batch_size,
                    color_fix=color_fix, objectives=objectives, quality_target=quality_target)  # fmt: skip
        if masks is not None and any(m is not None for m in masks):
            images, out = inpaint_crops(pipe, crops, masks, seeds, **call)
        else:
            out = pipe(image=crops, generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
                       output_type="np", **call)  # fmt: skip
            images = list(out.images)
        extras = [{"guidance": summarize_guidance(log, final)} if log or final else {}
                  for log, final in zip(out.objective_log, out.objective_final)]  # fmt: skip
        for extra, m in zip(extras, masks or [None] * len(crops)):
            if m is not None:
                extra["inpainted_px"] = int(m.sum())
        return images, extras

    return restore


def summarize_guidance(log: list[dict], final: dict) -> dict:
    """Per objective: the steps it ran at, its value at each, and its value on the result (manifest record)."""
    out: dict[str, dict] = {}
    for rec in log:
        entry = out.setdefault(rec["name"], {"steps": [], "values": []})
        entry["steps"].append(rec["step"])
        entry["values"].append(round(rec["value"], 6))
    for name, value in final.items():
        out.setdefault(name, {"steps": [], "values": []})["final"] = round(value, 6)
    return out


def reference_faces(paths: str, detector, crop_size: int, max_pixels: int) -> list[np.ndarray]:
    """Aligned crops (uint8 RGB (S, S, 3)) of the largest face in each reference photo under ``paths``.

    Raises:
        ValueError: no face was found in any of them.
    """
    from . import io

    # aligned runs (no detector) take the reference photos as aligned crops too
    stage = FaceStage(detector, crop_size, max_faces=1, aligned=detector is None)
    crops = []
    for src, _ in io.discover_inputs([paths]):
        img = io.read_image(src, max_pixels=max_pixels)
        faces = stage.align(img.rgb)
        if not faces:
            logger.warning("reference %s: no face found; ignored", src)
            continue
        crops.append(faces[0].crop)
    if not crops:
        raise ValueError(f"no face found in the reference photos {paths}; pass clear photos of the same person")
    return crops


def build_objectives(g, device, detector, crop_size: int, max_pixels: int) -> list:
    """Guidance objectives from the ``guidance`` config section (empty when every scale is 0)."""
    import torch

    from . import io
    from .guidance import FidelityGuidance, IdentityGuidance, QualityGuidance

    common = dict(every=g.every, decoder=g.decoder, resolution=g.resolution, normalize=g.normalize)
    out = []
    if g.identity_scale > 0:
        from .models.identity import identity_encoder_for

        kw = {"arch": g.identity_arch} if g.identity_arch else {}
        encoder = identity_encoder_for(g.identity_model, **kw)
        encoder = encoder.to(device) if hasattr(encoder, "to") else encoder
        reference = None
        if g.reference:
            crops = reference_faces(g.reference, detector, crop_size, max_pixels)
            with torch.no_grad():
                emb = encoder.embed(io.numpy_to_tensor(crops).to(device))
            reference = torch.nn.functional.normalize(emb.mean(0), dim=-1)
        start, stop = g.identity_window
        out.append(IdentityGuidance(encoder, g.identity_scale, reference=reference, start=start, stop=stop, **common))
    if g.quality_scale > 0:
        from .models.quality import create_quality_scorer

        scorer = create_quality_scorer(g.quality_metric, model_path=g.quality_model, device=device)
        scorer = scorer.to(device) if hasattr(scorer, "to") else scorer
        start, stop = g.quality_window
        out.append(QualityGuidance(scorer, g.quality_scale, start=start, stop=stop, **common))
    if g.fidelity_scale > 0:
        start, stop = g.fidelity_window
        out.append(FidelityGuidance(g.fidelity_scale, space=g.fidelity_space, start=start, stop=stop, **common))
    return out


def build_upsampler(f, device):
    """The background upsampler of the ``face`` config section (None: the face stage's Lanczos)."""
    if f.bg_upsampler != "realesrgan" or f.upscale == 1:
        return None
    import torch

    from .models.realesrgan import RealESRGANUpsampler

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    return RealESRGANUpsampler(device=device, dtype=dtype, tile=f.bg_tile)


def build_detector(f):
    """The face detector of the ``face`` config section (None for aligned inputs)."""
    from .face import create_detector

    if f.aligned:
        return None
    kwargs = {"upsample": f.upsample} if f.detector.startswith("dlib") else {}
    return create_detector(f.detector, f.detector_model, **kwargs)


#: crop_masker(crops: list[uint8 RGB (S, S, 3)]) -> list of bool (S, S) masks (True = region to generate)
CropMasker = Callable[[list[np.ndarray]], list[np.ndarray]]


def mask_segmenter_path(cfg: RestoreConfig) -> Path | None:
    """The mask segmenter folder for ``io.mask`` auto (None for any other ``io.mask``): ``io.mask_model``, else
    the ``mask_segmenter/`` subfolder of the local model folder ``model.model``.

    Raises:
        FileNotFoundError: auto, no ``io.mask_model`` and no such subfolder (the message says how to train one).
    """
    from .models.mask_segmenter import HOW_TO_TRAIN, SUBFOLDER

    if cfg.io.mask != "auto":
        return None
    if cfg.io.mask_model:
        return Path(cfg.io.mask_model).expanduser()
    model = Path(cfg.model.model).expanduser()
    own = model / SUBFOLDER
    if own.is_dir():
        return own
    why = "--task old-photo needs a damage mask (--mask FILE|DIR, or auto): " if cfg.sampler.task == "old-photo" else ""
    where = (f"the model folder {model} has no {SUBFOLDER}/" if model.is_dir() else
             f"the model {cfg.model.model} is not a local folder (a segmenter is only looked for in local model "
             f"folders)")  # fmt: skip
    raise FileNotFoundError(f"{why}--mask auto needs a trained mask segmenter: {where} and no --mask-model was "
                            f"given; pass --mask-model DIR, or {HOW_TO_TRAIN}")  # fmt: skip


def build_crop_masker(cfg: RestoreConfig, device) -> CropMasker | None:
    """For ``io.mask`` auto: the loaded mask segmenter as a :data:`CropMasker` (None for any other ``io.mask``).

    Raises:
        FileNotFoundError, ValueError: no segmenter, or a folder that holds none (named, with how to train one).
    """
    path = mask_segmenter_path(cfg)
    if path is None:
        return None
    from .models.mask_segmenter import load_mask_segmenter, predict_masks

    segmenter = load_mask_segmenter(path, device)
    logger.info("--mask auto: mask segmenter from %s (it looks inside the aligned face crops only)", path)
    return lambda crops: list(predict_masks(segmenter, crops))


@dataclass
class RestorerParts:
    """What a FaceRestorer is made of, plus what was loaded (for the manifest and the user)."""

    restore_crops: RestoreCrops
    stage: FaceStage
    upscale: int
    batch_size: int
    seed: int
    pipeline: Any
    device: Any
    dtype: Any
    config: RestoreConfig
    crop_masker: CropMasker | None = None
    """For ``io.mask`` auto: finds each aligned crop's mask (see :func:`build_crop_masker`)."""


def build_parts(cfg: RestoreConfig) -> RestorerParts:
    """Model, device, detector, objectives and face stage from a resolved config.

    Raises:
        OSError (ModelNotFoundError), ValueError, ImportError: what loading the model, detector, objectives or
            mask segmenter raised.
    """
    from .models.loading import load_tiny_decoder, resolve_device, resolve_dtype
    from .pipeline import configure_pipeline, load_pipeline, set_scheduler

    m, s, f = cfg.model, cfg.sampler, cfg.face
    device = resolve_device(m.device)
    dtype = resolve_dtype(m.dtype, device)
    crop_masker = build_crop_masker(cfg, device)  # first: a missing segmenter stops before the big model loads
    detector = build_detector(f)
    pipe = load_pipeline(m.model, m.controlnet, m.lora, m.lora_scale, dtype, m.single_file_config, m.revision, m.variant,
                         controlnet_single_file_config=m.controlnet_single_file_config, vae=m.vae,
                         original_config=m.single_file_original_config)  # fmt: skip
    if f.crop_size is None:  # the base's own resolution; written back so the manifest records the value used
        from .pipeline import default_crop_size

        f.crop_size = default_crop_size(pipe)
    set_scheduler(pipe, s.scheduler)
    if cfg.guidance.decoder == "tiny":
        pipe.guidance_decoder = load_tiny_decoder(cfg.guidance.tiny_decoder, dtype)
    configure_pipeline(pipe, device, m.offload, m.vae_slicing, m.vae_tiling, m.attention)
    if m.channels_last or m.compile:
        from .models.speed import speed_up

        speed_up(pipe, channels_last=m.channels_last, compile=m.compile)
    objectives = build_objectives(cfg.guidance, device, detector, f.crop_size, cfg.io.max_pixels)
    restore_fn = pipeline_restore_fn(
        pipe, s.prompt, s.negative_prompt, s.steps, s.strength, s.cfg_scale, s.controlnet_scale,
        s.color_fix, s.batch_size, objectives, s.quality_target,
    )  # fmt: skip
    stage = FaceStage(detector, f.crop_size, f.only_center_face, f.min_face_size, f.max_faces, f.aligned,
                      build_upsampler(f, device))  # fmt: skip
    return RestorerParts(restore_fn, stage, f.upscale, s.batch_size, s.seed, pipe, device, dtype, cfg, crop_masker)
