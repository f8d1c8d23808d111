"""The evaluation loop: prediction folders (and baselines) against GT / LQ / reference folders -> :class:`EvalResult`.

:func:`evaluate` pairs the folders (:mod:`.pairing`), builds the metrics (:mod:`.registry`), checks every image once,
then scores the images batch by batch: each method's images are read (or computed, for baselines), every per-image
metric is applied against its cached target, and Inception features are gathered for the dataset-level metrics
(FID, KID, NTIRE 2025), computed at the end. Nothing is printed; progress goes to an optional callback.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from authface import io
from authface.config import choices, to_dict
from authface.data.benchmark import degradation_factors, read_benchmark_metadata
from authface.imaging import resize

from .base import Column, Metric
from .baselines import Baseline, make_baseline, target_size
from .common import dlib_version, package_version
from .fid import FIDReference, InceptionFeatures, fid_scores, kid_scores, load_fid_reference
from .masks import find_mask_dir, read_mask
from .nr import NTIRE2025_COMPONENTS, NTIRE2025_INFO, ntire2025_score
from .pairing import Pairing, check_pairs, image_key, pair_folders
from .registry import DEFAULT_METRICS, MetricOptions, build_metrics
from .result import EvalResult, Timer, summarize

__all__ = ["IDTarget", "evaluate", "load_bench_metadata"]

#: What IDS/Deg compare with (``auto``: reference photos, else the GT, else the LQ input).
IDTarget = Literal["auto", "gt", "reference", "lq"]


def load_bench_metadata(path: str | os.PathLike) -> tuple[dict, dict[str, dict]]:
    """Read an ``authface degrade`` ``metadata.jsonl``: ``(header, {key: image record})``, keyed like the LQ
    images (:func:`~authface.eval.pairing.image_key` of the record's ``rel``); ``{}`` when there is no header.

    Raises FileNotFoundError (missing file) and ValueError (a line that is not a JSON object, named).
    """
    header, records = read_benchmark_metadata(path)
    return header or {}, {image_key(rel): rec for rel, rec in records.items()}


@dataclass
class _Run:
    """The state of one evaluation, shared by the steps of the loop."""

    pairing: Pairing
    opts: MetricOptions
    max_pixels: int
    batch_size: int
    warnings: list[str]
    metrics: list[Metric]
    set_metrics: dict[str, str]
    unavailable: dict[str, str]
    id_key: str | None
    meta_records: dict[str, dict]
    methods: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    desc: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    timer: Timer = field(default_factory=Timer)
    inception: InceptionFeatures | None = None
    fid_ref: FIDReference | None = None
    gt_feats: list[np.ndarray] = field(
        default_factory=list
    )  # FID reference chunks when there is no --fid-ref
    feats: dict[str, list[np.ndarray]] = field(default_factory=dict)
    target_cache: dict[tuple[str, str], Any] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    n_resized: int = 0


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _find_metadata(metadata: str | os.PathLike | None, lq: str | os.PathLike | None) -> Path | None:
    """The benchmark metadata: as given, else ``metadata.jsonl`` next to an ``lq/`` folder of a benchmark."""
    if metadata is not None:
        return Path(metadata)
    if lq is not None and Path(lq).name == "lq":
        cand = Path(lq).expanduser().resolve().parent / "metadata.jsonl"
        if cand.is_file():
            return cand
    return None


def _identity_target(id_target: str, pairing: Pairing, reference) -> tuple[str | None, str | None]:
    """``(gt | reference | lq | None, description)`` of what IDS/Deg compare with; ValueError when impossible."""
    folders = {"reference": pairing.reference, "gt": pairing.gt, "lq": pairing.lq}
    if id_target == "auto":
        key = next((k for k, v in folders.items() if v is not None), None)
    elif id_target not in choices(IDTarget):
        raise ValueError(f"id_target must be auto, gt, reference or lq, got {id_target!r}")
    elif folders[id_target] is None:
        raise ValueError(f"identity target {id_target!r} asked for but no --{id_target} folder given")
    else:
        key = id_target
    desc = {"gt": "the GT", "reference": f"reference photos ({reference})", "lq": "the LQ input", None: None}
    return key, desc[key]


def _add_methods(run: _Run, preds: Mapping[str, Path], baselines: Sequence[str], gt_row: bool) -> None:
    """Predictions, then baselines (one that cannot be made here is unavailable), then the optional GT row."""
    for spec in baselines:
        try:
            b = make_baseline(spec)
        except ImportError as exc:
            run.unavailable[f"baseline {spec}"] = str(exc)
            continue
        if b.name in preds or b.name in run.baselines:
            raise ValueError(
                f"baseline name {b.name!r} clashes with a method of the same name; rename the --pred"
            )
        run.baselines[b.name] = b
    run.methods = [*preds, *run.baselines]
    run.kinds = {**{m: "prediction" for m in preds}, **{b: "baseline" for b in run.baselines}}
    run.desc = {
        **{m: str(p) for m, p in preds.items()},
        **{b: o.description for b, o in run.baselines.items()},
    }
    if gt_row and run.pairing.gt is not None:
        if "GT" in run.methods:
            raise ValueError("a method is called 'GT'; rename it to use gt_row")
        run.methods.append("GT")
        run.kinds["GT"] = "reference"
        run.desc["GT"] = (
            "the ground truth itself, scored with the no-reference and dataset-level metrics only"
        )
    run.feats = {m: [] for m in run.methods}


def _setup_fid(run: _Run, gt) -> None:
    """Load the Inception network and the FID/KID reference; a network that cannot load makes both unavailable."""
    if "fid" not in run.set_metrics and "kid" not in run.set_metrics:
        return
    try:
        run.inception = InceptionFeatures(run.opts.fid_inception, run.opts.device)
    except (OSError, ValueError) as exc:
        for k in ("fid", "kid"):
            if k in run.set_metrics:
                del run.set_metrics[k]
                run.unavailable[k.upper()] = str(exc)
        return
    if run.opts.fid_ref:
        t0 = time.perf_counter()
        run.fid_ref = load_fid_reference(
            run.opts.fid_ref, run.inception, run.batch_size, run.max_pixels, run.warnings
        )
        run.timer.add("FID/KID reference", time.perf_counter() - t0)
    else:
        run.fid_ref = FIDReference(desc=f"the GT images ({gt})")


def _read(path: Path, run: _Run) -> np.ndarray:
    return io.read_image(path, max_pixels=run.max_pixels).rgb


def _read_batch(run: _Run, keys: list[str]) -> tuple[list | None, list | None, list | None, list | None]:
    """GT, LQ (when baselines or the identity target need it), reference images and masks (bool (H, W), None for
    a key without one) of ``keys``."""
    p = run.pairing
    gts = [_read(p.gt[k], run) for k in keys] if p.gt is not None else None
    masks = None
    if p.masks is not None:  # checked by check_pairs already
        masks = [read_mask(p.masks[k], None, run.max_pixels)[0] if k in p.masks else None for k in keys]
    need_lq = run.baselines or run.id_key == "lq"
    lqs = [_read(p.lq[k], run) for k in keys] if need_lq and p.lq else None
    refs = None
    if run.id_key == "reference":
        refs = [[_read(path, run) for path in p.reference.get(k, [])] for k in keys]
    return gts, lqs, refs, masks


def _targets(run: _Run, metric: Metric, keys: list[str], gts, lqs, refs, masks) -> list:
    """What ``metric`` compares each key's prediction with (None where there is nothing); cached per key.
    Region metrics (``needs == "mask"``) get ``(GT, mask)`` pairs."""
    if metric.needs == "none":
        return [None] * len(keys)
    if metric.needs == "mask":
        if gts is None or masks is None:
            return [None] * len(keys)
        return [(g, m) if m is not None else None for g, m in zip(gts, masks)]
    src = gts if metric.needs == "gt" else {"gt": gts, "lq": lqs, "reference": refs}[run.id_key]
    if metric.needs == "gt" and not metric.precomputes_targets:
        return src
    todo = [i for i, k in enumerate(keys) if (metric.key, k) not in run.target_cache]
    usable = [i for i in todo if not (isinstance(src[i], list) and not src[i])]
    if usable:
        t0 = time.perf_counter()
        try:
            feats = metric.target([src[i] for i in usable])
        except Exception as exc:  # noqa: BLE001 - e.g. a non-square reference photo
            feats = [None] * len(usable)
            run.warnings.append(f"{metric.columns[0].name}: target features failed for a batch: {exc}")
        run.timer.add(metric.key, time.perf_counter() - t0)
        for i, f in zip(usable, feats):
            run.target_cache[(metric.key, keys[i])] = f
    return [run.target_cache.get((metric.key, k)) for k in keys]


def _method_images(run: _Run, method: str, keys: list[str], gts, lqs) -> list[np.ndarray]:
    """The images ``method`` produced for ``keys``: the GT row, a baseline's output, or the predictions (resized
    to the GT size when they differ; :func:`check_pairs` has allowed that already)."""
    if method == "GT":
        return list(gts)
    if method in run.baselines:
        fn = run.baselines[method].fn
        return [fn(lqs[i], target_size(lqs[i], gts[i] if gts else None)) for i in range(len(keys))]
    imgs = []
    for i, k in enumerate(keys):
        img = _read(run.pairing.preds[method][k], run)
        if gts is not None and img.shape[:2] != gts[i].shape[:2]:
            gh, gw = gts[i].shape[:2]
            img = resize(img, size=(gh, gw), mode="area" if img.shape[0] > gh else "bicubic")
            run.n_resized += 1
        imgs.append(img)
    return imgs


def _safe_compute(metric: Metric, preds, targets, keys, method, warnings) -> dict[str, np.ndarray]:
    """metric.compute on the batch; on failure per image, NaN + one warning per failing image."""
    try:
        return metric.compute(preds, targets)
    except Exception:  # noqa: BLE001 - retry image by image to name the culprit
        out = {c.name: np.full(len(preds), np.nan) for c in metric.columns}
        for i in range(len(preds)):
            try:
                one = metric.compute([preds[i]], [targets[i]])
                for c in metric.columns:
                    out[c.name][i] = one[c.name][0]
            except Exception as exc:  # noqa: BLE001
                warnings.append(
                    f"{metric.columns[0].name} failed on {method} {keys[i]}: {type(exc).__name__}: {exc}"
                )
        return out


def _score(
    run: _Run, method: str, keys: list[str], imgs: list[np.ndarray], targets: dict[str, list]
) -> list[dict]:
    """One record per key: method, key, subset, degradation factors, and every per-image metric's values."""
    rows = []
    for k in keys:
        row: dict[str, Any] = {"method": method, "key": k, "subset": Pairing.subset(k)}
        if k in run.meta_records:
            row.update(
                {f"deg_{fk}": fv for fk, fv in degradation_factors(run.meta_records[k]["params"]).items()}
            )
        rows.append(row)
    for metric in run.metrics:
        if method == "GT" and metric.needs != "none":
            continue
        tl = targets[metric.key]
        ok = [i for i in range(len(keys)) if metric.needs == "none" or tl[i] is not None]
        if not ok:
            continue
        t0 = time.perf_counter()
        vals = _safe_compute(
            metric, [imgs[i] for i in ok], [tl[i] for i in ok], [keys[i] for i in ok], method, run.warnings
        )
        run.timer.add(metric.key, time.perf_counter() - t0, len(ok))
        for c in metric.columns:
            for j, i in enumerate(ok):
                rows[i][c.name] = float(vals[c.name][j])
    return rows


def _evaluate_batch(run: _Run, keys: list[str]) -> None:
    t0 = time.perf_counter()
    gts, lqs, refs, masks = _read_batch(run, keys)
    run.timer.add("read", time.perf_counter() - t0)
    targets = {m.key: _targets(run, m, keys, gts, lqs, refs, masks) for m in run.metrics}
    gt_feats = None
    if run.inception is not None and (not run.opts.fid_ref or "GT" in run.methods):
        t0 = time.perf_counter()
        gt_feats = run.inception(gts)
        if not run.opts.fid_ref:
            run.gt_feats.append(gt_feats)
        run.timer.add("fid", time.perf_counter() - t0)
    for method in run.methods:
        t0 = time.perf_counter()
        imgs = _method_images(run, method, keys, gts, lqs)
        run.timer.add(
            "read" if method not in run.baselines else f"baseline {method}", time.perf_counter() - t0
        )
        rows = _score(run, method, keys, imgs, targets)
        if run.inception is not None:
            t0 = time.perf_counter()
            run.feats[method].append(gt_feats if method == "GT" else run.inception(imgs))
            run.timer.add("fid", time.perf_counter() - t0, len(imgs))
        run.records.extend(rows)


def _dataset_metrics(
    run: _Run, summary: list[dict]
) -> tuple[list[Column], dict[str, dict[str, float]], dict]:
    """FID, KID and NTIRE 2025 per method: ``(columns, {method: {column: value}}, {column: info})``."""
    columns: list[Column] = []
    values: dict[str, dict[str, float]] = {m: {} for m in run.methods}
    info: dict[str, str] = {}
    ref = run.fid_ref
    if run.inception is not None and not run.opts.fid_ref:
        ref.feats = np.concatenate(run.gt_feats) if run.gt_feats else None
    inc_desc = f"Inception TorchScript {run.inception.path}" if run.inception is not None else ""
    if "fid" in run.set_metrics and run.inception is not None:
        columns.append(Column("FID", False, "", ".2f"))
        info["FID"] = f"{inc_desc}; Frechet distance (numpy eigen-decomposition) to {ref.desc}"
        t0 = time.perf_counter()
        for m, v in fid_scores(run.feats, ref, run.warnings).items():
            values[m]["FID"] = v
        run.timer.add("fid", time.perf_counter() - t0)
    if "kid" in run.set_metrics and run.inception is not None and ref.feats is not None:
        columns.append(Column("KID", False, "", ".4f"))
        info["KID"] = (
            f"{inc_desc}; unbiased MMD^2, cubic polynomial kernel, 100 subsets of <= 1000 (clean-fid) vs {ref.desc}"
        )
        for m, v in kid_scores(run.feats, ref.feats, run.warnings).items():
            values[m]["KID"] = v
    if "ntire2025" in run.set_metrics:
        columns.append(Column("NTIRE2025", True, "", ".4f"))
        info["NTIRE2025"] = NTIRE2025_INFO
        for entry in summary:
            m = entry["method"]
            comps = {c: entry.get(c, {}).get("mean") for c in (*NTIRE2025_COMPONENTS, "NIQE")}
            fid = values[m].get("FID")
            if entry["subset"] != "all" or None in comps.values() or fid is None:
                continue
            values[m]["NTIRE2025"] = ntire2025_score(
                comps["CLIPIQA"], comps["MANIQA"], comps["MUSIQ"], comps["QALIGN"], comps["NIQE"], fid
            )
    return columns, values, info


def _throughput(run: _Run, n_keys: int, t_start: float) -> dict[str, dict[str, float]]:
    names = {m.key: "/".join(c.name for c in m.columns) for m in run.metrics}
    out = {}
    for k, secs in run.timer.seconds.items():
        n = run.timer.images.get(k, 0)
        label = names.get(k, {"fid": "FID/KID features"}.get(k, k))
        out[label] = {
            "images": n,
            "seconds": secs,
            "images_per_s": (n / secs) if n and secs > 0 else float("nan"),
        }
    total, n = time.perf_counter() - t_start, n_keys * len(run.methods)
    out["total (wall)"] = {
        "images": n,
        "seconds": total,
        "images_per_s": n / total if total > 0 else float("nan"),
    }
    return out


def _settings(run: _Run, inputs: dict[str, Any], meta_header: dict, metrics) -> dict[str, Any]:
    from authface import __version__

    return {
        **{k: str(v) if v is not None else None for k, v in inputs.items()},
        "benchmark": {k: meta_header.get(k) for k in ("preset", "seed", "hq_dir")} if meta_header else None,
        "identity_target": run.id_key,
        "images": len(run.pairing.keys),
        "metrics_requested": list(metrics) if metrics else list(DEFAULT_METRICS),
        "options": to_dict(run.opts),
        "versions": {
            "authface": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": package_version("torch"),
            "torchmetrics": package_version("torchmetrics"),
            "scikit-image": package_version("scikit-image"),
            "dlib": dlib_version(),
            "pyiqa": package_version("pyiqa"),
        },  # fmt: skip
    }


def _result(run: _Run, settings: dict[str, Any], t_start: float) -> EvalResult:
    keys = run.pairing.keys
    columns = [c for metric in run.metrics for c in metric.columns]
    subsets = sorted({Pairing.subset(k) for k in keys} - {""})
    subsets = ["all", *subsets] if subsets else ["all"]
    summary = summarize(run.records, run.methods, columns, subsets)
    metric_info = {c.name: metric.info for metric in run.metrics for c in metric.columns}
    set_columns, set_values, set_info = _dataset_metrics(run, summary)
    metric_info.update(set_info)
    return EvalResult(
        methods=run.methods, method_kinds=run.kinds, method_desc=run.desc, columns=columns, set_columns=set_columns,
        records=run.records, summary=summary, set_metrics={m: v for m, v in set_values.items() if v},
        metric_info=metric_info, unavailable=run.unavailable, throughput=_throughput(run, len(keys), t_start),
        warnings=run.warnings, settings=settings, pairing=run.pairing, subsets=subsets, baselines=run.baselines,
        max_pixels=run.max_pixels,
    )  # fmt: skip


def evaluate(
    preds: Mapping[str, str | os.PathLike] | None = None,
    *,
    gt: str | os.PathLike | None = None,
    lq: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    masks: str | os.PathLike | bool | None = None,
    metrics: Sequence[str] | None = None,
    baselines: Sequence[str] = (),
    options: MetricOptions | None = None,
    id_target: str = "auto",
    batch_size: int = 8,
    resize_pred: bool = False,
    allow_missing: bool = False,
    gt_row: bool = False,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate prediction folders (and baselines) against GT / LQ / reference folders.

    Args:
        preds: ``{method name: folder}`` of restored images.
        gt / lq / reference: folders (see :func:`~authface.eval.pairing.pair_folders`); ``metadata``: an
            ``authface degrade`` ``metadata.jsonl`` (found automatically next to ``lq`` when ``lq`` is a benchmark's
            ``lq/`` folder).
        masks: a folder of inpainting masks (white = filled region, paired by relative path): ``psnr``, ``ssim``,
            ``l1`` and ``lpips`` are also reported inside and outside the mask (:mod:`authface.eval.masks`). None:
            ``mask/`` next to a benchmark's ``lq/`` folder when there is one; False: no masks.
        metrics: metric names (:data:`~authface.eval.registry.BUILTIN_METRICS`, or pyiqa names); None:
            :data:`~authface.eval.registry.DEFAULT_METRICS`.
        baselines: :func:`~authface.eval.baselines.make_baseline` specs, evaluated like methods (need ``lq``).
        options: :class:`~authface.eval.registry.MetricOptions`.
        id_target: what IDS/Deg compare with: ``gt``, ``reference``, ``lq`` or ``auto`` (reference, else GT, else LQ).
        resize_pred: predictions whose size differs from the GT are resized to it (OpenCV area when shrinking,
            bicubic when enlarging) when the aspect ratios agree within 1%; otherwise a size mismatch is an error.
        allow_missing: evaluate the images common to all folders instead of failing on missing pairs.
        gt_row: also score the GT images with the no-reference metrics (a "GT" row: the ceiling of NIQE & co.).
        max_pixels: refuse larger images (decompression bombs); None: :data:`authface.io.DEFAULT_MAX_PIXELS`.
        progress: called with (images done, images total) after each batch.

    Raises:
        PairingError: folders that do not pair (files named).
        EvalInputError: unreadable images, size mismatches and unusable masks (wrong size, not binary, empty,
            full, unreadable): every file named, with the fix; raised before anything is computed.
        ValueError: bad options (unknown metric option values, baselines without ``lq``...).
    """
    t_start = time.perf_counter()
    opts = dataclasses.replace(options) if options is not None else MetricOptions()
    opts.device = _resolve_device(opts.device)
    preds = {str(k): Path(v) for k, v in (preds or {}).items()}
    if baselines and lq is None:
        raise ValueError("baselines are computed from the LQ images: pass --lq (or --bench)")
    if not preds and not baselines:
        raise ValueError(
            "nothing to evaluate: pass --pred DIR and/or --baseline lq|bicubic|lanczos (with --lq)"
        )
    masks = find_mask_dir(lq) if masks is None or masks is True else (masks or None)
    pairing = pair_folders(preds, gt, lq, reference, allow_missing, masks)
    metadata = _find_metadata(metadata, lq)
    meta_header, meta_records = load_bench_metadata(metadata) if metadata is not None else ({}, {})
    id_key, id_desc = _identity_target(id_target, pairing, reference)
    built = build_metrics(metrics, opts, pairing.gt is not None, id_desc, pairing.masks is not None)
    mp = int(max_pixels) if max_pixels else io.DEFAULT_MAX_PIXELS
    run = _Run(
        pairing, opts, mp, max(1, int(batch_size)), list(pairing.warnings), *built, id_key, meta_records
    )
    _add_methods(run, preds, baselines, gt_row)
    _setup_fid(run, gt)
    t0 = time.perf_counter()
    run.warnings.extend(check_pairs(pairing, mp, resize_pred))
    run.timer.add("read (validation)", time.perf_counter() - t0)
    keys = pairing.keys
    for start in range(0, len(keys), run.batch_size):
        _evaluate_batch(run, keys[start : start + run.batch_size])
        if progress is not None:
            progress(min(start + run.batch_size, len(keys)), len(keys))
    if run.n_resized:
        run.warnings.append(f"{run.n_resized} prediction(s) resized to the GT size (--resize-pred)")
    inputs = {"gt": gt, "lq": lq, "reference": reference, "metadata": metadata, "masks": masks}
    return _result(run, _settings(run, inputs, meta_header, metrics), t_start)
