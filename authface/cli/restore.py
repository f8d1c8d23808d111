"""``authface restore INPUT... -o OUTPUT``: restore every face of many photos, with a resumable manifest.

Per-file failures become one line each on stderr and a record in the manifest; the batch goes on, every good
photo is written, and the exit code is 1 when any input failed (2 for usage/config errors).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

from .. import __version__
from ..config import ConfigError, RestoreConfig, load_config, to_dict

logger = logging.getLogger("authface")

WRITABLE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MANIFEST_NAME = "manifest.jsonl"

# flag -> (config key, argparse kwargs). Flags are shorthands for --set KEY=VALUE.
RESTORE_FLAGS: dict[str, tuple[str, dict]] = {
    "--model": ("model.model", dict(help="base model or AuthFace model: hub id, local folder or single file")),
    "--controlnet": ("model.controlnet", dict(help="ControlNet: hub id, folder or file (default: auto)")),
    "--lora": ("model.lora", dict(help="LoRA weights (.safetensors or folder)")),
    "--lora-scale": ("model.lora_scale", dict(type=float)),
    "--device": ("model.device", dict(help="auto | cpu | cuda | cuda:N | mps")),
    "--dtype": ("model.dtype", dict(help="auto | float32 | float16 | bfloat16")),
    "--offload": ("model.offload", dict(help="none | model | sequential CPU offload")),
    "--steps": ("sampler.steps", dict(type=int)),
    "--strength": ("sampler.strength", dict(type=float, help="(0, 1]; 1.0 starts from pure noise")),
    "--cfg-scale": ("sampler.guidance_scale", dict(type=float, help="classifier-free guidance scale")),
    "--controlnet-scale": ("sampler.controlnet_scale", dict(type=float)),
    "--prompt": ("sampler.prompt", dict()),
    "--negative-prompt": ("sampler.negative_prompt", dict()),
    "--scheduler": ("sampler.scheduler", dict()),
    "--color-fix": ("sampler.color_fix", dict(help="none | wavelet | adain")),
    "--seed": ("sampler.seed", dict(type=int)),
    "--quality-target": ("sampler.quality_target", dict(type=float, help="quality to ask a model trained with the "
                                                        "image-quality prior for, in [0, 1] (default 0.9)")),
    "--batch-size": ("sampler.batch_size", dict(type=int, help="faces per pipeline call, across photos")),
    "--detector": ("face.detector", dict(help="dlib | dlib-mmod | yunet | insightface")),
    "--detector-model": ("face.detector_model", dict(help="local model file/folder for yunet/insightface")),
    "--crop-size": ("face.crop_size", dict(type=int)),
    "--min-face-size": ("face.min_face_size", dict(type=float, help="ignore smaller faces (pixels)")),
    "--max-faces": ("face.max_faces", dict(type=int, help="restore at most N faces per photo (largest first)")),
    "--upscale": ("face.upscale", dict(type=int, help="upscale the whole photo by N (Lanczos background)")),
    "--identity-scale": ("guidance.identity_scale", dict(type=float, help="identity guidance strength (0 = off)")),
    "--identity-model": ("guidance.identity_model", dict(help="ArcFace .pth/.safetensors or insightface .onnx")),
    "--reference": ("guidance.reference", dict(help="photo or folder of the same person (default: input face)")),
    "--identity-window": ("guidance.identity_window", dict(metavar="START,STOP")),
    "--quality-scale": ("guidance.quality_scale", dict(type=float, help="quality guidance strength (0 = off)")),
    "--quality-metric": ("guidance.quality_metric", dict(help="sharpness | niqe (file via --set guidance.quality_model=) | pyiqa:<metric>")),
    "--quality-window": ("guidance.quality_window", dict(metavar="START,STOP")),
    "--fidelity-scale": ("guidance.fidelity_scale", dict(type=float, help="fidelity-to-input guidance (0 = off)")),
    "--fidelity-window": ("guidance.fidelity_window", dict(metavar="START,STOP")),
    "--guidance-every": ("guidance.every", dict(type=int, help="guide every k-th step inside the windows")),
    "--ext": ("io.ext", dict(help="output extension, e.g. png (default: keep the input's)")),
    "--max-pixels": ("io.max_pixels", dict(type=int, help="refuse larger images (decompression bombs)")),
}
RESTORE_SWITCHES: dict[str, str] = {
    "--only-center-face": "face.only_center_face",
    "--aligned": "face.aligned",
    "--skip-no-face": "io.skip_no_face",
    "--save-faces": "io.save_faces",
    "--overwrite": "io.overwrite",
}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``authface restore`` on the top-level parser's subparsers."""
    r = subparsers.add_parser(
        "restore",
        help="restore every face in photos and paste them back",
        description="Restore every face in INPUT photos (files, folders, globs) and write them to OUTPUT.",
    )
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or glob patterns")
    r.add_argument("-o", "--output", required=True, help="output folder (created; never an input folder itself)")
    r.add_argument("--config", help="YAML config file (see configs/restore/)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set sampler.steps=30 (repeatable)")  # fmt: skip
    for flag, (key, kwargs) in RESTORE_FLAGS.items():
        r.add_argument(flag, dest=_dest(flag), default=None, **{"help": f"({key})", **kwargs})
    for flag, key in RESTORE_SWITCHES.items():
        r.add_argument(flag, dest=_dest(flag), action="store_true", default=None, help=f"({key}=true)")
    r.add_argument("--no-recursive", dest="no_recursive", action="store_true", help="do not descend into subfolders")
    r.set_defaults(func=cmd_restore)
    return r


def _overrides(args) -> list[str]:
    out = []
    for flag, (key, _) in RESTORE_FLAGS.items():
        value = getattr(args, _dest(flag))
        if value is not None:
            out.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")
    for flag, key in RESTORE_SWITCHES.items():
        if getattr(args, _dest(flag)):
            out.append(f"{key}=true")
    if args.no_recursive:
        out.append("io.recursive=false")
    return out + list(args.overrides)


class Manifest:
    """Append-only JSONL run manifest: one ``run`` record per invocation (full resolved config, versions), then one
    ``photo`` record per photo processed (status, faces with boxes/landmarks/seeds, timings)."""

    def __init__(self, path: Path):
        self.path = path
        self.run_id = uuid.uuid4().hex[:12]

    def done(self) -> dict[str, str]:
        """input path -> output path of photos finished by earlier runs (restored or copied)."""
        done: dict[str, str] = {}
        if not self.path.is_file():
            return done
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: unreadable manifest line ignored", self.path, n)  # e.g. a kill mid-write
                continue
            if rec.get("type") == "photo" and rec.get("status") in ("restored", "copied", "skipped_no_face"):
                done[rec["input"]] = rec.get("output") or ""
        return done

    def write(self, record: dict) -> None:
        record = {"run_id": self.run_id, **record}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _output_path(out_dir: Path, rel: Path, ext: str | None) -> Path:
    if ext:
        suffix = "." + ext.lstrip(".").lower()
    else:
        suffix = rel.suffix.lower() if rel.suffix.lower() in WRITABLE_EXTENSIONS else ".png"
    return out_dir / rel.with_suffix(suffix)


def _versions() -> dict:
    import diffusers
    import torch

    return {"authface": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__}


def build_restorer(cfg: RestoreConfig):
    """Model, device, detector and restorer from a resolved config (the entry point's job)."""
    from ..face import create_detector
    from ..models.loading import (
        configure_pipeline,
        load_pipeline,
        load_tiny_decoder,
        resolve_device,
        resolve_dtype,
        set_scheduler,
    )
    from ..restorer import FaceRestorer, pipeline_restore_fn

    m, s, f = cfg.model, cfg.sampler, cfg.face
    device = resolve_device(m.device)
    dtype = resolve_dtype(m.dtype, device)
    detector = None
    if not f.aligned:
        kwargs = {"upsample": f.upsample} if f.detector.startswith("dlib") else {}
        detector = create_detector(f.detector, f.detector_model, **kwargs)
    pipe = load_pipeline(m.model, m.controlnet, m.lora, m.lora_scale, dtype, m.single_file_config, m.revision, m.variant)
    set_scheduler(pipe, s.scheduler)
    if cfg.guidance.decoder == "tiny":
        pipe.guidance_decoder = load_tiny_decoder(cfg.guidance.tiny_decoder, dtype)
    configure_pipeline(pipe, device, m.offload, m.vae_slicing, m.vae_tiling, m.attention)
    guidance = build_guidance(cfg.guidance, device, detector, f.crop_size, cfg.io.max_pixels)
    restore_fn = pipeline_restore_fn(
        pipe, s.prompt, s.negative_prompt, s.steps, s.strength, s.guidance_scale, s.controlnet_scale,
        s.color_fix, s.batch_size, guidance, s.quality_target,
    )  # fmt: skip
    restorer = FaceRestorer(
        restore_fn, detector, f.crop_size, f.only_center_face, f.min_face_size, f.max_faces, f.aligned,
        f.upscale, batch_size=s.batch_size, seed=s.seed,
    )  # fmt: skip
    return restorer, device, dtype


def reference_faces(paths: str, detector, crop_size: int, max_pixels: int):
    """Aligned crops (uint8 RGB (S, S, 3)) of the largest face in each reference photo under ``paths``."""
    from .. import io
    from ..face import align_face, select_faces

    crops = []
    for src, _ in io.discover_inputs([paths]):
        img = io.read_image(src, max_pixels=max_pixels)
        faces = select_faces(detector.detect(img.rgb), img.rgb.shape, max_faces=1) if detector else []
        if not faces:
            logger.warning("reference %s: no face found; ignored", src)
            continue
        crops.append(align_face(img.rgb, faces[0].landmarks, crop_size)[0])
    if not crops:
        raise ValueError(f"no face found in the reference photos {paths}; pass clear photos of the same person")
    return crops


def build_guidance(g, device, detector, crop_size: int, max_pixels: int) -> list:
    """Guidance objects from the ``guidance`` config section (empty when every scale is 0)."""
    import torch

    from .. import io
    from ..guidance import FidelityGuidance, IdentityGuidance, QualityGuidance

    common = dict(every=g.every, decoder=g.decoder, resolution=g.resolution, normalize=g.normalize)
    out = []
    if g.identity_scale > 0:
        from ..models.identity import load_identity_encoder

        kw = {"arch": g.identity_arch} if g.identity_arch else {}
        encoder = load_identity_encoder("arcface-onnx" if str(g.identity_model).endswith(".onnx") else "arcface",
                                        g.identity_model, **kw)  # fmt: skip
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
        from ..models.quality import create_quality_scorer

        scorer = create_quality_scorer(g.quality_metric, model_path=g.quality_model, device=device)
        scorer = scorer.to(device) if hasattr(scorer, "to") else scorer
        start, stop = g.quality_window
        out.append(QualityGuidance(scorer, g.quality_scale, start=start, stop=stop, **common))
    if g.fidelity_scale > 0:
        start, stop = g.fidelity_window
        out.append(FidelityGuidance(g.fidelity_scale, space=g.fidelity_space, start=start, stop=stop, **common))
    return out


def _save_faces(out_dir: Path, rel: Path, result) -> None:
    import numpy as np

    from .. import io

    for i, (before, after) in enumerate(zip(result.crops_in, result.crops_out)):
        base = out_dir / "faces" / rel.parent / f"{rel.stem}_{i:02d}"
        io.write_image(base.with_name(base.name + "_in.png"), before)
        io.write_image(base.with_name(base.name + "_out.png"), after)
        io.write_image(base.with_name(base.name + "_cmp.png"), np.concatenate([before, after], axis=1))


def cmd_restore(args) -> int:
    from .. import io

    try:
        cfg = load_config(RestoreConfig, args.config, _overrides(args))
    except ConfigError as e:
        print(f"authface: config error: {e}", file=sys.stderr)
        return 2
    out_dir = Path(args.output).expanduser().resolve()
    try:
        inputs = io.discover_inputs(args.inputs, recursive=cfg.io.recursive, exclude=[out_dir])
    except FileNotFoundError as e:
        print(f"authface: error: {e}", file=sys.stderr)
        return 2
    if out_dir.exists() and not out_dir.is_dir():
        print(f"authface: error: output {out_dir} exists and is not a folder", file=sys.stderr)
        return 2
    jobs = [(src, rel, _output_path(out_dir, rel, cfg.io.ext)) for src, rel in inputs]
    input_set = {src.resolve() for src, _, _ in jobs}
    clash = [dst for _, _, dst in jobs if dst.resolve() in input_set]
    if clash:
        print(f"authface: error: output {clash[0]} would overwrite an input; choose another -o folder", file=sys.stderr)
        return 2

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir / MANIFEST_NAME)
    done = manifest.done()
    todo, skipped_done = [], 0
    for src, rel, dst in jobs:
        if not cfg.io.overwrite and (str(src) in done or dst.exists()):
            skipped_done += 1
            if str(src) not in done:
                logger.warning("%s: %s already exists and is not from an earlier run; kept (use --overwrite)", src, dst)
            continue
        todo.append((src, rel, dst))

    counts = {"restored": 0, "copied": 0, "skipped_no_face": 0, "failed": 0}
    failures: list[str] = []
    if todo:
        try:
            restorer, device, dtype = build_restorer(cfg)
        except (OSError, ValueError, ImportError) as e:
            print(f"authface: error: {e}", file=sys.stderr)
            return 2
        manifest.write({
            "type": "run", "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "argv": sys.argv[1:], "device": str(device), "dtype": str(dtype).replace("torch.", ""),
            "versions": _versions(), "config": to_dict(cfg),
        })  # fmt: skip
        loaded: dict[str, io.LoadedImage] = {}

        def loader(src: Path):
            def load():
                img = io.read_image(src, max_pixels=cfg.io.max_pixels)
                loaded[str(src)] = img
                return img.rgb, img.alpha

            return load

        by_key = {str(src): (src, rel, dst) for src, rel, dst in todo}
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="photo", desc="restoring", disable=None, file=sys.stderr)
        for key, result in restorer.restore_many((str(src), loader(src)) for src, _, _ in todo):
            src, rel, dst = by_key[key]
            img = loaded.pop(key, None)
            record = {"type": "photo", "input": key, "output": None, "seed": cfg.sampler.seed}
            t0 = time.perf_counter()
            try:
                if isinstance(result, Exception):
                    raise result
                record.update(size=list(img.size), notes=img.notes, faces=result.faces, timings=result.timings)
                if not result.faces:
                    if cfg.io.skip_no_face:
                        status = "skipped_no_face"
                    else:
                        if cfg.face.upscale == 1 and dst.suffix == src.suffix.lower():
                            io.copy_file(src, dst)
                        else:
                            io.write_image(dst, result.image, result.alpha, cfg.io.jpeg_quality, img.icc_profile)
                        status = "copied"
                else:
                    io.write_image(dst, result.image, result.alpha, cfg.io.jpeg_quality, img.icc_profile)
                    if cfg.io.save_faces:
                        _save_faces(out_dir, rel, result)
                    status = "restored"
                if status != "skipped_no_face":
                    record.update(output=str(dst), output_size=[result.image.shape[1], result.image.shape[0]])
                record["timings"] = {**record.get("timings", {}), "write_s": time.perf_counter() - t0}
            except Exception as err:  # noqa: BLE001 - one bad photo never stops the batch
                status = "failed"
                reason = err.reason if isinstance(err, io.ImageReadError) else f"{type(err).__name__}: {err}"
                record["error"] = reason
                failures.append(f"{src}: {reason}")
                tqdm.write(f"authface: FAILED {src}: {reason}", file=sys.stderr)
            if status == "skipped_no_face":
                tqdm.write(f"authface: no face found in {src}; skipped (--skip-no-face)", file=sys.stderr)
            elif status == "copied":
                tqdm.write(f"authface: no face found in {src}; copied through", file=sys.stderr)
            record["status"] = status
            counts[status] += 1
            manifest.write(record)
            bar.update(1)
        bar.close()

    total = len(jobs)
    summary = (
        f"authface: {total} photo(s): {counts['restored']} restored, {counts['copied']} copied (no face), "
        f"{counts['skipped_no_face']} skipped (no face), {skipped_done} already done, {counts['failed']} failed"
    )
    if failures:
        summary += " (each named above)"
    print(summary, file=sys.stderr)
    print(f"authface: outputs and manifest in {out_dir}", file=sys.stderr)
    return 1 if failures else 0
