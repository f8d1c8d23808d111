"""Synthetic LQ/GT benchmarks (the library side of ``authface degrade``), CelebA-Test style, from any folder of
clean aligned faces::

    BENCH/lq/<relative path>.png    LQ (lossless PNG: exactly the sampled degradation), same size as the HQ
    BENCH/gt/<relative path>        the HQ file itself, copied byte for byte (or linked: gt_mode)
    BENCH/mask/<relative path>.png  (presets ``mask``, ``old-photo``, ``paint`` only) the occlusion mask, same size:
                                    white (255) = the region to fill, black (0) = known; stored as RGB PNG
    BENCH/metadata.jsonl            line 1: {"type": "benchmark", preset, config, seed, rng, versions, ...};
                                    then one {"type": "image", rel, key, hq, hq_sha256, lq, lq_sha256, gt, size,
                                    params} per image, sorted by relative path (params: every sampled value;
                                    :func:`replay` (hq, preset, params) gives the LQ (and mask) again, byte for
                                    byte); occlusion presets add mask, mask_sha256 and mask_area (fraction of
                                    the image under the mask)

The presets, each image's generator, occlusion, replay and degradation factors are in
:mod:`authface.data.bench_presets` (re-exported here). Nothing here prints; per-file failures are returned in
:class:`BenchmarkResult`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from authface import io
from authface.config import choices, to_dict

from .bench_presets import (
    BENCHMARK_PRESETS,
    OCCLUSION_PRESETS,
    BenchmarkPreset,
    OcclusionPreset,
    bench_rng,
    degradation_factors,
    occlude_image,
    occlusion_params_version,
    occlusion_settings,
    occlusion_settings_class,
    replay,
)

__all__ = [
    "BENCHMARK_PRESETS",
    "GT_MODES",
    "MASK_DIR",
    "OCCLUSION_PRESETS",
    "METADATA_FORMAT",
    "METADATA_NAME",
    "BenchmarkResult",
    "BenchmarkSettingsError",
    "BenchmarkPreset",
    "GTMode",
    "OcclusionPreset",
    "bench_rng",
    "build_benchmark",
    "degradation_factors",
    "occlude_image",
    "occlusion_settings_class",
    "read_benchmark_metadata",
    "replay",
]

METADATA_NAME = "metadata.jsonl"
METADATA_FORMAT = 1
#: How ``gt/`` holds the HQ files: byte-identical copies (the folder stands alone), symbolic or hard links.
GTMode = Literal["copy", "symlink", "hardlink"]
GT_MODES: tuple[str, ...] = choices(GTMode)
_SETTINGS_KEYS = ("preset", "seed", "config", "gt_mode", "format")
#: The benchmark subfolder of the masks (white = region to fill).
MASK_DIR = "mask"
_LANDMARKS_NOTE = "FFHQ template (authface.face.face_template) scaled to the image size"


class BenchmarkSettingsError(ValueError):
    """The benchmark folder was made with other settings (preset, seed, config, GT mode)."""


@dataclass
class BenchmarkResult:
    """What :func:`build_benchmark` did: relative paths made, kept (already there from the same settings) and
    failed (``(path, reason)``)."""

    out_dir: Path
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    metadata: Path | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import cv2
    import numpy as np

    from authface import __version__

    return {"authface": __version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _degrade_job(job: dict[str, Any]) -> dict[str, Any]:
    """One image (runs in a worker process): read HQ, degrade, write LQ PNG and the GT copy. Never raises."""
    import numpy as np

    from authface.data.degradations import degrade, get_preset

    src, rel = Path(job["src"]), job["rel"]
    out = Path(job["out_dir"])
    lq_path, gt_path = out / job["lq"], out / job["gt"]
    try:
        hq_sha = _sha256(src)
        img = io.read_image(src, max_pixels=job["max_pixels"])
        rng, mask = bench_rng(job["seed"], rel), None
        if job["preset"] in OCCLUSION_PRESETS:
            lq, mask, params = occlude_image(img.rgb, rng, job["preset"], job["settings"])
        else:
            lq, params = degrade(img.rgb, rng, get_preset(job["preset"]))
        io.write_image(lq_path, lq)
        io.place_file(src, gt_path, job["gt_mode"])
        record = {
            "type": "image", "rel": rel, "key": Path(rel).with_suffix("").as_posix(), "hq": str(src),
            "hq_sha256": hq_sha, "lq": job["lq"], "lq_sha256": _sha256(lq_path), "gt": job["gt"],
            "size": [int(img.rgb.shape[1]), int(img.rgb.shape[0])], "notes": img.notes, "params": params,
        }  # fmt: skip
        if mask is not None:
            mask_path = out / job["mask"]
            io.write_image(mask_path, np.repeat(mask[..., None], 3, axis=2))
            record.update(mask=job["mask"], mask_sha256=_sha256(mask_path),
                          mask_area=float(np.count_nonzero(mask)) / mask.size)  # fmt: skip
        return {"rel": rel, "record": record}
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the benchmark
        reason = exc.reason if isinstance(exc, io.ImageReadError) else f"{type(exc).__name__}: {exc}"
        return {"rel": rel, "error": f"{src}: {reason}"}


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def read_benchmark_metadata(
    path: str | os.PathLike, missing_ok: bool = False
) -> tuple[dict | None, dict[str, dict]]:
    """Read a benchmark's ``metadata.jsonl``: ``(header or None, {relative path: image record})``.

    Raises:
        FileNotFoundError: the file is missing and not ``missing_ok`` (then: ``(None, {})``).
        ValueError: a line is not a JSON object (the message names ``path:line``).
    """
    header, records = None, {}
    for line in io.read_jsonl(path, missing_ok=missing_ok):
        if line.record is None:
            raise ValueError(f"{line.where}: {line.error}")
        if line.record.get("type") == "benchmark":
            header = line.record
        elif line.record.get("type") == "image":
            records[line.record["rel"]] = line.record
    return header, records


def _write_metadata(path: Path, header: dict, records: Mapping[str, dict]) -> None:
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(records[k], sort_keys=True) for k in sorted(records)]
    io.write_text(path, "\n".join(lines) + "\n")


def _header(preset: str, seed: int, cfg: Any, gt_mode: str, hq_root: str | None) -> dict:
    from authface.data.degradations import PARAMS_VERSION

    version = occlusion_params_version(preset) if preset in OCCLUSION_PRESETS else PARAMS_VERSION
    header = {
        "type": "benchmark", "format": METADATA_FORMAT, "preset": preset, "seed": int(seed),
        "config": json.loads(json.dumps(to_dict(cfg))), "params_version": version, "gt_mode": gt_mode,
        "lq_format": "png",
        "rng": "numpy.random.default_rng(SeedSequence([seed, *struct.unpack('<8I', sha256(rel.encode()).digest())]))",
        "hq_dir": hq_root, "versions": _versions(),
    }  # fmt: skip
    if preset in OCCLUSION_PRESETS:
        header.update(mask_dir=MASK_DIR, mask_format="png, white (255) = region to fill")
        if preset == "mask":
            header["landmarks"] = _LANDMARKS_NOTE
    return header


def _check_settings(out: Path, old: dict | None, new: dict, overwrite: bool) -> bool:
    """Whether the old records stay valid: same settings. Other settings without ``overwrite`` raise."""
    if old is None or all(old.get(k) == new.get(k) for k in _SETTINGS_KEYS):
        return True
    if not overwrite:
        raise BenchmarkSettingsError(
            f"{out} holds a benchmark made with preset {old.get('preset')!r}, seed {old.get('seed')} "
            f"(gt mode {old.get('gt_mode')}); asked for preset {new['preset']!r}, seed {new['seed']} (gt mode "
            f"{new['gt_mode']}). Choose another folder, or pass --overwrite to replace it"
        )
    return False


def _existing(src: Path, rel_s: str, paths: Sequence[Path], old_records: Mapping[str, dict]) -> str | None:
    """An output that already exists: None when it was made from the same HQ bytes (kept), else the reason.
    ``paths``: the LQ, GT (and mask) files of the image."""
    rec = old_records.get(rel_s)
    if rec is None:
        where = next((p for p in paths if p.exists() or p.is_symlink()), paths[0])
        return (
            f"{src}: {where} exists and is not recorded in this benchmark's metadata; kept (pass --overwrite)"
        )
    try:
        unchanged = rec.get("hq_sha256") == _sha256(src) and all(p.exists() for p in paths)
    except OSError as exc:
        return f"{src}: {exc}"
    if unchanged:
        return None
    return f"{src}: changed since {paths[0]} was made (or one of its files is missing); pass --overwrite to re-make it"


def _plan(
    inputs: Sequence[tuple[Path, Path]], out: Path, old_records: Mapping[str, dict], overwrite: bool,
    result: BenchmarkResult, records: dict[str, dict], job_base: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """Jobs for the images to make; clashes, kept and refused files go to ``result`` (and out of ``records``)."""
    by_lq: dict[str, list[tuple[Path, str]]] = {}
    for src, rel in inputs:
        rel_s = Path(rel).as_posix()
        lq_name = (Path("lq") / Path(rel_s).with_suffix(".png")).as_posix()
        by_lq.setdefault(lq_name.casefold(), []).append((src, rel_s))
    jobs: list[dict[str, Any]] = []
    for group in by_lq.values():
        if len(group) > 1:
            names = ", ".join(str(s) for s, _ in group)
            for src, rel_s in group:
                result.failed.append(
                    (rel_s, f"{src}: {names} would all become the same LQ file; rename all but one")
                )
                records.pop(rel_s, None)
            continue
        src, rel_s = group[0]
        rels = {
            "lq": (Path("lq") / Path(rel_s).with_suffix(".png")).as_posix(),
            "gt": (Path("gt") / rel_s).as_posix(),
        }
        if job_base["preset"] in OCCLUSION_PRESETS:
            rels["mask"] = (Path(MASK_DIR) / Path(rel_s).with_suffix(".png")).as_posix()
        paths = [out / r for r in rels.values()]
        if any(p.exists() or p.is_symlink() for p in paths) and not overwrite:
            reason = _existing(src, rel_s, paths, old_records)
            if reason is None:
                result.kept.append(rel_s)
            else:
                result.failed.append((rel_s, reason))
            continue
        jobs.append({**job_base, "src": str(src), "rel": rel_s, **rels})
    return jobs


def _run_jobs(jobs: list[dict[str, Any]], workers: int, collect: Callable[[dict], None]) -> None:
    if int(workers) > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked child of a process whose torch/OpenMP/OpenCV thread pools are running can
        # deadlock; spawned workers import only numpy, OpenCV, Pillow and authface.io/degradations
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx, initializer=_worker_init) as pool:
            for res in pool.map(_degrade_job, jobs, chunksize=1):
                collect(res)
    else:
        for job in jobs:
            collect(_degrade_job(job))


def build_benchmark(
    hq: str | os.PathLike | Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out_dir: str | os.PathLike,
    preset: str = "gfpgan",
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    gt_mode: str = "copy",
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    settings: Any = None,
) -> BenchmarkResult:
    """Build (or complete) a synthetic benchmark in ``out_dir`` from clean aligned faces (see the module doc).

    Args:
        hq: a folder (walked recursively with :func:`authface.io.discover_inputs`) or explicit
            ``(path, relative path)`` pairs.
        preset: one of :data:`BENCHMARK_PRESETS`: a degradation preset
            (:data:`authface.data.degradations.PRESETS`) or an occlusion preset (``mask``, ``old-photo``,
            ``paint``: a mask per image in ``mask/``).
        seed: the benchmark seed (>= 0).
        workers: processes (1: in this process).
        overwrite: re-make files that exist; without it an existing LQ/GT file is kept when the metadata says it was
            made from the same HQ bytes with the same settings, and is a per-file failure otherwise.
        gt_mode: one of :data:`GT_MODES`: ``copy`` (default: byte-identical copies, the folder stands alone),
            ``symlink`` or ``hardlink``.
        max_pixels: refuse larger images (decompression bombs); None: :data:`authface.io.DEFAULT_MAX_PIXELS`.
        progress: called with (done, total) after each image.
        settings: occlusion presets only: :class:`~authface.data.occlusions.FaceMaskSettings` (``mask``),
            :class:`~authface.data.occlusions.DamageSettings` (``old-photo``) or
            :class:`~authface.data.occlusions.PaintSettings` (``paint``); None: the defaults. Recorded in the
            metadata header (other settings in the same folder need ``overwrite``).

    Raises:
        BenchmarkSettingsError: ``out_dir`` holds a benchmark made with other settings (and not ``overwrite``).
        FileNotFoundError: ``hq`` holds no image.
        ValueError: unknown preset / gt_mode, negative seed, unreadable metadata in ``out_dir``.

    Long because of its docstring (the benchmark's files and guarantees); the work is in the helpers it calls.
    """
    from authface.data.degradations import get_preset

    if isinstance(seed, bool) or int(seed) != seed or int(seed) < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if gt_mode not in GT_MODES:
        raise ValueError(f"gt_mode must be one of {', '.join(GT_MODES)}, got {gt_mode!r}")
    if preset in OCCLUSION_PRESETS:
        cfg = occlusion_settings(preset, settings)
    elif settings is not None:
        raise ValueError(
            f"settings are for the occlusion presets ({', '.join(OCCLUSION_PRESETS)}), not {preset!r}"
        )
    else:
        cfg = get_preset(preset)
    out = Path(out_dir).expanduser().resolve()
    if isinstance(hq, (str, os.PathLike)):
        hq_root = str(Path(hq).expanduser().resolve())
        inputs = io.discover_inputs([hq_root], exclude=[out])
    else:
        hq_root = None
        inputs = [(Path(s).expanduser().resolve(), Path(r)) for s, r in hq]
    header = _header(preset, seed, cfg, gt_mode, hq_root)
    meta_path = out / METADATA_NAME
    old_header, old_records = read_benchmark_metadata(meta_path, missing_ok=True)
    if not _check_settings(out, old_header, header, overwrite):
        old_records = {}
    result = BenchmarkResult(out_dir=out, metadata=meta_path)
    records: dict[str, dict] = dict(old_records)
    job_base = {"out_dir": str(out), "seed": int(seed), "preset": preset, "gt_mode": gt_mode,
                "max_pixels": int(max_pixels or io.DEFAULT_MAX_PIXELS),
                "settings": cfg if preset in OCCLUSION_PRESETS else None}  # fmt: skip
    jobs = _plan(inputs, out, old_records, overwrite, result, records, job_base)
    out.mkdir(parents=True, exist_ok=True)
    done = 0

    def collect(res: dict) -> None:
        nonlocal done
        done += 1
        if "error" in res:
            result.failed.append((res["rel"], res["error"]))
            records.pop(res["rel"], None)
        else:
            records[res["rel"]] = res["record"]
            result.made.append(res["rel"])
        if progress is not None:
            progress(done, len(jobs))

    _run_jobs(jobs, workers, collect)
    _write_metadata(meta_path, header, records)
    result.made.sort()
    result.kept.sort()
    result.failed.sort()
    return result
