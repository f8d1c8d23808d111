"""``authface restore INPUT... -o OUTPUT``: restore every face of many photos, with a resumable manifest.

Per-file failures become one line each on stderr and a record in the manifest; the batch goes on, every good
photo is written, and the exit code is 1 when any input failed (2 for usage/config errors).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import ConfigError, RestoreConfig, load_config, to_dict
from ..restorer import FaceRestorer
from .progress import Progress

logger = logging.getLogger("authface")


# flag -> (config key, argparse kwargs). Flags are shorthands for --set KEY=VALUE.
RESTORE_FLAGS: dict[str, tuple[str, dict]] = {
    "--model": ("model.model", dict(help="base model or AuthFace model: hub id, local folder or single file")),
    "--controlnet": ("model.controlnet", dict(help="ControlNet: hub id, folder or file; auto = the model folder's own, else the SD 1.5 tile ControlNet")),
    "--lora": ("model.lora", dict(help="LoRA weights (.safetensors or folder)")),
    "--lora-scale": ("model.lora_scale", dict(type=float)),
    "--device": ("model.device", dict(help="auto | cpu | cuda | cuda:N | mps")),
    "--dtype": ("model.dtype", dict(help="auto: float16 on CUDA/MPS, float32 on CPU")),
    "--offload": ("model.offload", dict(help="CPU offload of the models between calls (saves VRAM)")),
    "--steps": ("sampler.steps", dict(type=int)),
    "--strength": ("sampler.strength", dict(type=float, help="(0, 1]; 1.0 starts from pure noise")),
    "--cfg-scale": ("sampler.cfg_scale", dict(type=float, help="classifier-free guidance scale")),
    "--controlnet-scale": ("sampler.controlnet_scale", dict(type=float)),
    "--prompt": ("sampler.prompt", dict()),
    "--negative-prompt": ("sampler.negative_prompt", dict()),
    "--scheduler": ("sampler.scheduler", dict(help="sampler; default = the model's own scheduler")),
    "--color-fix": ("sampler.color_fix", dict(help="match the restored face's colours to the input face")),
    "--seed": ("sampler.seed", dict(type=int)),
    "--quality-target": ("sampler.quality_target", dict(type=float, help="quality to ask a model trained with the "
                                                        "image-quality prior for, in [0, 1] (default 0.9)")),
    "--batch-size": ("sampler.batch_size", dict(type=int, help="faces per pipeline call, across photos")),
    "--detector": ("face.detector", dict(help="face detector (dlib: offline HOG; dlib-mmod: CNN, finds more)")),
    "--detector-model": ("face.detector_model", dict(help="local model file/folder for yunet/insightface")),
    "--crop-size": ("face.crop_size", dict(type=int)),
    "--min-face-size": ("face.min_face_size", dict(type=float, help="ignore smaller faces (pixels)")),
    "--max-faces": ("face.max_faces", dict(type=int, help="restore at most N faces per photo (largest first)")),
    "--upscale": ("face.upscale", dict(type=int, help="upscale the whole photo by N (background: --bg-upsampler)")),
    "--bg-upsampler": ("face.bg_upsampler", dict(help="background upsampler for --upscale (realesrgan: "
                                                      "pip install 'authface[realesrgan]')")),
    "--identity-scale": ("guidance.identity_scale", dict(type=float, help="identity guidance strength (0 = off)")),
    "--identity-model": ("guidance.identity_model", dict(help="default: dlib's recogniser (no download); or ArcFace .pth/.safetensors, insightface .onnx")),
    "--reference": ("guidance.reference", dict(help="photo or folder of the same person (default: input face)")),
    "--identity-window": ("guidance.identity_window", dict(metavar="START,STOP")),
    "--quality-scale": ("guidance.quality_scale", dict(type=float, help="quality guidance strength (0 = off)")),
    "--quality-metric": ("guidance.quality_metric", dict(help="sharpness | niqe (file via --set guidance.quality_model=) | pyiqa:<metric>")),
    "--quality-window": ("guidance.quality_window", dict(metavar="START,STOP")),
    "--fidelity-scale": ("guidance.fidelity_scale", dict(type=float, help="fidelity-to-input guidance (0 = off)")),
    "--fidelity-window": ("guidance.fidelity_window", dict(metavar="START,STOP")),
    "--guidance-every": ("guidance.every", dict(type=int, help="guide every k-th step inside the windows")),
    "--mask": ("io.mask", dict(help="inpainting: a mask file, a folder of masks matched by relative path "
                                     "(white = region to generate: a face mask, scratches), or auto (the mask "
                                     "segmenter finds them in each face)")),
    "--mask-model": ("io.mask_model", dict(help="mask segmenter folder for --mask auto (default: the model "
                                                "folder's mask_segmenter/)")),
    "--task": ("sampler.task", dict(help="old-photo: fill the damage (--mask, default auto: inside the faces "
                                         "only), then restore; keep the tone")),
    "--ext": ("io.ext", dict(help="output extension, e.g. png (default: keep the input's)")),
    "--max-pixels": ("io.max_pixels", dict(type=int, help="refuse larger images (decompression bombs)")),
}
RESTORE_SWITCHES: dict[str, str] = {
    "--only-center-face": "face.only_center_face",
    "--aligned": "face.aligned",
    "--skip-no-face": "io.skip_no_face",
    "--save-faces": "io.save_faces",
    "--overwrite": "io.overwrite",
    "--colorize": "sampler.colorize",
    "--keep-unmasked": "io.keep_unmasked",
    "--compile": "model.compile",
    "--channels-last": "model.channels_last",
}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _flag_help(key: str, text: str) -> str:
    """Help of a flag: its text, then the config key, its default and its choices (from the Literal type)."""
    import dataclasses
    import typing

    from ..config import choices

    section, name = key.split(".")
    section_cls = typing.get_type_hints(RestoreConfig)[section]
    default = getattr(RestoreConfig(), section).__getattribute__(name)
    tp = typing.get_type_hints(section_cls)[name]
    options = choices(tp)
    assert name in {f.name for f in dataclasses.fields(section_cls)}
    parts = [text] if text else []
    if options:
        parts.append("choices: " + ", ".join(map(str, options)))
    parts.append(f"default: {default if default not in (None, '') else 'none'}")
    return "; ".join(parts).replace("%", "%%") + f" [{key}]"


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
        kwargs = dict(kwargs, help=_flag_help(key, kwargs.get("help", "")))
        r.add_argument(flag, dest=_dest(flag), default=None, **kwargs)
    for flag, key in RESTORE_SWITCHES.items():
        r.add_argument(flag, dest=_dest(flag), action="store_true", default=None, help=f"({key}=true)")
    r.add_argument("--no-recursive", dest="no_recursive", action="store_true", help="do not descend into subfolders")
    r.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="restore on N processes (one per GPU; CPU processes without CUDA) with torchrun; "
                        "the same as `accelerate launch --num_processes N -m authface restore ...`")  # fmt: skip
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


def _output_path(out_dir: Path, rel: Path, ext: str | None) -> Path:
    from .. import io

    if ext:
        suffix = "." + ext.lstrip(".").lower()
    else:
        suffix = rel.suffix.lower() if rel.suffix.lower() in io.WRITABLE_EXTENSIONS else ".png"
    return out_dir / rel.with_suffix(suffix)


def _versions() -> dict:
    import diffusers
    import torch

    return {"authface": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__}


def _save_faces(out_dir: Path, rel: Path, result) -> None:
    import numpy as np

    from .. import io

    for i, (before, after) in enumerate(zip(result.crops_in, result.crops_out)):
        base = out_dir / "faces" / rel.parent / f"{rel.stem}_{i:02d}"
        io.write_image(base.with_name(base.name + "_in.png"), before)
        io.write_image(base.with_name(base.name + "_out.png"), after)
        io.write_image(base.with_name(base.name + "_cmp.png"), np.concatenate([before, after], axis=1))


@dataclass
class _Job:
    src: Path
    rel: Path
    dst: Path


def _plan(args, cfg: RestoreConfig) -> tuple[Path, list[_Job]]:
    """Output folder and one job per input; raises _UsageError for anything wrong before any work."""
    from .. import io

    out_dir = Path(args.output).expanduser().resolve()
    for entry in args.inputs:
        if Path(entry).expanduser().is_dir() and Path(entry).expanduser().resolve() == out_dir:
            raise _UsageError(f"-o {args.output} is the input folder {entry}; choose another output folder "
                              "(a sub-folder such as {entry}/restored works: it is skipped when reading inputs)")  # fmt: skip
    try:
        inputs = io.discover_inputs(args.inputs, recursive=cfg.io.recursive, exclude=[out_dir])
    except FileNotFoundError as e:
        raise _UsageError(str(e)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise _UsageError(f"output {out_dir} exists and is not a folder")
    if cfg.io.mask and cfg.io.mask != "auto" and not Path(cfg.io.mask).expanduser().exists():
        raise _UsageError(f"--mask {cfg.io.mask}: no such file or folder (a mask file, a folder of masks matched "
                          f"by relative path, or auto)")  # fmt: skip
    jobs = _unique_outputs([_Job(src, rel, _output_path(out_dir, rel, cfg.io.ext)) for src, rel in inputs])
    input_set = {j.src.resolve() for j in jobs}
    clash = [j.dst for j in jobs if j.dst.resolve() in input_set]
    if clash:
        raise _UsageError(f"output {clash[0]} would overwrite an input; choose another -o folder")
    return out_dir, jobs


def _unique_outputs(jobs: list[_Job]) -> list[_Job]:
    """Make output paths unique by construction (compared case-insensitively).

    An output whose extension differs from its input's (``a.gif`` -> png, or ``--ext``) can meet another one:
    ``a.gif`` + ``a.png``, or ``a.jpg`` + ``a.png`` with ``--ext png``. Inputs that keep their extension claim their
    name first; each other one gets its input extension folded into the name (``a_gif.png``, then ``a_gif_2.png``).
    The mapping depends only on the set of inputs, so a re-run maps every input to the same output.
    """
    taken: set[str] = set()
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].dst.suffix != jobs[i].src.suffix.lower())
    for i in order:
        job = jobs[i]
        dst, n = job.dst, 2
        if dst.as_posix().casefold() in taken:
            stem = f"{job.dst.stem}_{job.src.suffix.lstrip('.').lower() or 'noext'}"
            dst = job.dst.with_name(stem + job.dst.suffix)
            while dst.as_posix().casefold() in taken:
                dst, n = job.dst.with_name(f"{stem}_{n}{job.dst.suffix}"), n + 1
            logger.info("%s and another input map to %s; writing %s", job.src, job.dst.name, dst.name)
        taken.add(dst.as_posix().casefold())
        jobs[i] = _Job(job.src, job.rel, dst)
    return jobs


class _UsageError(Exception):
    """A problem found before any work: exit code 2."""


def _pending(jobs: list[_Job], done: dict[str, str], overwrite: bool) -> tuple[list[_Job], int]:
    """Jobs still to do (resume) and how many were skipped as already done."""
    todo, skipped = [], 0
    for job in jobs:
        if not overwrite and (str(job.src) in done or job.dst.exists()):
            skipped += 1
            if str(job.src) not in done:
                logger.warning("%s: %s already exists and is not from an earlier run; kept (use --overwrite)",
                               job.src, job.dst)  # fmt: skip
            continue
        todo.append(job)
    return todo, skipped


def _write_result(job: _Job, img, result, cfg: RestoreConfig, out_dir: Path, notes: list[str]) -> str:
    """Write one photo's output; returns its status (restored, copied, skipped_no_face); appends notes."""
    from .. import io

    if not result.faces:
        if cfg.io.skip_no_face:
            return "skipped_no_face"
        if cfg.face.upscale == 1 and job.dst.suffix == job.src.suffix.lower():
            io.copy_file(job.src, job.dst)
        else:
            notes += io.write_image(job.dst, result.image, result.alpha, cfg.io.jpeg_quality, img.icc_profile)
        return "copied"
    notes += io.write_image(job.dst, result.image, result.alpha, cfg.io.jpeg_quality, img.icc_profile)
    if cfg.io.save_faces:
        _save_faces(out_dir, job.rel, result)
    return "restored"


def _run(restorer, todo: list[_Job], cfg: RestoreConfig, out_dir: Path, manifest, stats: dict) -> None:
    """Restore every pending job, writing outputs and manifest records as results arrive (counts in ``stats``)."""
    from .. import io

    counts, failures = stats["counts"], stats["failures"]
    loaded: dict[str, io.LoadedImage] = {}

    def loader(src: Path):
        def load():
            img = io.read_image(src, max_pixels=cfg.io.max_pixels)
            loaded[str(src)] = img
            mask = _photo_mask(src, rel_of[str(src)], img.rgb.shape[:2], cfg)
            if mask is None and cfg.io.mask and cfg.io.mask != "auto":  # a folder without this photo's mask
                img.notes.append(f"no mask for this photo in --mask {cfg.io.mask} (same relative path, any image "
                                 f"extension): restored without inpainting")  # fmt: skip
            return img.rgb, img.alpha, mask

        return load

    # the key (and so every face's seed) is the path relative to its input folder: moving a folder changes nothing
    by_key = {j.rel.as_posix(): j for j in todo}
    rel_of = {str(j.src): j.rel for j in todo}
    bar = Progress(len(todo), "restoring", unit="photo")
    stats["bar"] = bar
    for key, result in restorer.restore_many((k, loader(j.src)) for k, j in by_key.items()):
        job = by_key[key]
        img = loaded.pop(str(job.src), None)
        record = {"type": "photo", "input": str(job.src), "key": key, "output": None, "seed": cfg.sampler.seed}
        t0 = time.perf_counter()
        try:
            if isinstance(result, Exception):
                raise result
            notes = list(img.notes) + list(result.notes)
            record.update(size=list(img.size), notes=notes, faces=result.faces, timings=result.timings)
            if result.dropped_faces:
                record["dropped_faces"] = result.dropped_faces
            n_before = len(record["notes"])
            status = _write_result(job, img, result, cfg, out_dir, record["notes"])
            for note in record["notes"][n_before:]:
                bar.write(f"authface: {job.src}: {note}")
            if status != "skipped_no_face":
                record.update(output=str(job.dst), output_size=[result.image.shape[1], result.image.shape[0]])
            record["timings"] = {**record.get("timings", {}), "write_s": time.perf_counter() - t0}
        except Exception as err:  # noqa: BLE001 - one bad photo never stops the batch
            status = "failed"
            reason = err.reason if isinstance(err, io.ImageReadError) else f"{type(err).__name__}: {err}"
            record["error"] = reason
            failures.append(f"{job.src}: {reason}")
            bar.write(f"authface: FAILED {job.src}: {reason}")
        if status == "skipped_no_face":
            bar.write(f"authface: no face found in {job.src}; skipped (--skip-no-face). {NO_FACE_HINT}")
        elif status == "copied":
            bar.write(f"authface: no face found in {job.src}; copied through. {NO_FACE_HINT}")
        record["status"] = status
        counts[status] += 1
        manifest.write(record)
        bar.update(1)
    bar.close()


def _photo_mask(src: Path, rel: Path, shape: tuple[int, int], cfg: RestoreConfig):
    """The photo's inpainting mask (bool (H, W)) from --mask FILE or --mask DIR (matched by relative path, any
    image extension), or None (also for --mask auto). A bad mask raises MaskError naming the file (that photo
    fails; others go on)."""
    from ..io import IMAGE_EXTENSIONS
    from ..io.mask import read_mask

    if not cfg.io.mask or cfg.io.mask == "auto":  # auto: the restorer's segmenter masks each face crop
        return None
    where = Path(cfg.io.mask).expanduser()
    if where.is_file():
        return read_mask(where, shape)[0]
    if not where.is_dir():
        raise FileNotFoundError(f"--mask {cfg.io.mask}: no such file or folder")
    stem = where / rel.with_suffix("")
    found = sorted(p for p in stem.parent.glob(stem.name + ".*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return read_mask(found[0], shape)[0] if found else None


NO_FACE_HINT = ("To find smaller or harder faces try --set face.upsample=2, --detector dlib-mmod, or a smaller "
                "--min-face-size; for photos that are already aligned face crops use --aligned.")


def _check_model(restorer, cfg: RestoreConfig) -> None:
    """What can only be checked once the model is loaded, still before any photo: raises _UsageError."""
    from ..models.quality_prior import has_quality_prior

    controlnet = getattr(restorer.pipeline, "controlnet", None)
    if cfg.sampler.quality_target is not None and controlnet is not None and not has_quality_prior(controlnet):
        raise _UsageError(
            f"--quality-target {cfg.sampler.quality_target} needs a model trained with the image-quality prior; "
            f"{cfg.model.model} has none: drop --quality-target, or use a model fine-tuned with "
            "model.quality_prior=true (authface train)"
        )


def cmd_restore(args) -> int:
    """``authface restore``: 0 when every photo was written, 1 when any failed, 2 for usage errors, 130 on Ctrl-C."""
    stats: dict = {"counts": {"restored": 0, "copied": 0, "skipped_no_face": 0, "failed": 0}, "failures": []}
    try:
        return _restore(args, stats)
    except KeyboardInterrupt:
        bar = stats.get("bar")
        if bar is not None:
            bar.close()
        done = sum(stats["counts"].values())
        print(f"\nauthface: interrupted: {done} photo(s) finished this run and recorded in the manifest; "
              "run the same command again to resume", file=sys.stderr)  # fmt: skip
        return 130


def _restore(args, stats: dict) -> int:
    from ..io.manifest import RunManifest, merge_shards
    from .distributed import current_world, device_of, launch, shard, wait_for_everyone

    world = current_world()
    if (args.num_processes or 1) > 1 and not world.distributed:  # start the processes, then they do the rest
        return launch(_without_num_processes(args.argv), args.num_processes)
    try:
        cfg = load_config(RestoreConfig, args.config, _overrides(args))
        out_dir, jobs = _plan(args, cfg)
    except ConfigError as e:
        print(f"authface: config error: {e}", file=sys.stderr)
        return 2
    except _UsageError as e:
        print(f"authface: error: {e}", file=sys.stderr)
        return 2
    cfg.model.device = device_of(world, cfg.model.device)
    manifest = RunManifest(out_dir, world.rank, world.size)
    todo, skipped_done = _pending(shard(jobs, world), manifest.done(), cfg.io.overwrite)
    counts, failures = stats["counts"], stats["failures"]
    if todo:
        try:
            restorer = FaceRestorer.from_config(cfg)
            _check_model(restorer, cfg)
        except (_UsageError, OSError, ValueError, ImportError) as e:
            print(f"authface: error: {e}", file=sys.stderr)
            return 2
        out_dir.mkdir(parents=True, exist_ok=True)  # only now: a run that fails before any photo leaves nothing
        manifest.write({
            "type": "run", "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "argv": sys.argv[1:], "device": str(restorer.device), "dtype": str(restorer.dtype).replace("torch.", ""),
            "process": {"rank": world.rank, "world_size": world.size},
            "versions": _versions(), "config": to_dict(cfg),
        })  # fmt: skip
        _run(restorer, todo, cfg, out_dir, manifest, stats)
    where = f"process {world.rank + 1}/{world.size}: " if world.distributed else ""
    summary = (
        f"authface: {where}{len(shard(jobs, world))} photo(s): {counts['restored']} restored, {counts['copied']} "
        f"copied (no face), {counts['skipped_no_face']} skipped (no face), {skipped_done} already done, "
        f"{counts['failed']} failed"
    )
    if failures:
        summary += " (each named above)"
    print(summary, file=sys.stderr)
    wait_for_everyone(world)
    if world.rank == 0:
        if world.distributed and out_dir.is_dir():
            merge_shards(out_dir)
        print(f"authface: outputs and manifest in {out_dir}", file=sys.stderr)
    return 1 if failures else 0


def _without_num_processes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--num-processes":
            skip = True
        elif not a.startswith("--num-processes="):
            out.append(a)
    return out
