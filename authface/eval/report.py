"""Evaluation reports: Markdown, CSV and JSON from an :class:`~authface.eval.result.EvalResult`, plus the HTML
gallery (:mod:`.gallery`) and plots (:mod:`.plots`).

``write_report(result, REPORT_DIR)`` writes::

    report.md          header (inputs, every metric's implementation and weights, unavailable metrics and why),
                       mean ± std per metric per method for all images and per subset (top-level subfolder),
                       dataset-level metrics (FID, KID, NTIRE 2025), metric throughput (images/s), warnings
    summary.csv        one row per (method, subset): n, <metric>_mean, <metric>_std (+ dataset-level metrics)
    per_image.csv      one row per (method, image): every metric, and the degradation factors (deg_*) when the
                       benchmark metadata is known
    report.json        all of the above, machine-readable (NaN -> null)
    gallery.html       LQ | each method | GT side by side, worst first by a chosen metric (see :mod:`.gallery`)
    plots/*.png        metric vs degradation strength, identity vs quality per method (see :mod:`.plots`)

Every file is written atomically by :mod:`authface.io`. No function prints.
"""

from __future__ import annotations

import csv
import io as _stdio
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from authface import io

from .base import Column
from .common import json_safe
from .gallery import write_gallery
from .plots import write_plots
from .result import EvalResult

__all__ = [
    "markdown_report",
    "metric_lines",
    "summary_table",
    "throughput_table",
    "write_gallery",
    "write_plots",
    "write_report",
]


def _best(result: EvalResult, col: Column, subset: str) -> float | None:
    vals = []
    for m in result.methods:
        if result.method_kinds.get(m) == "reference":
            continue
        if col in result.set_columns:
            v = result.set_metrics.get(m, {}).get(col.name) if subset == "all" else None
        else:
            e = result.entry(m, subset)
            v = e.get(col.name, {}).get("mean") if e else None
        if v is not None and math.isfinite(v):
            vals.append(v)
    if len(vals) < 2:
        return None
    return max(vals) if col.higher_better else min(vals)


def _bold_if_best(text: str, value: float | None, best: float | None, kind: str | None) -> str:
    return (
        f"**{text}**"
        if value is not None and best is not None and value == best and kind != "reference"
        else text
    )


def summary_table(result: EvalResult, subset: str = "all", with_std: bool = True) -> str:
    """Markdown table: one row per method, ``mean ± std`` per metric (best mean in bold), dataset-level metrics
    in the ``all`` table."""
    cols = list(result.columns)
    set_cols = list(result.set_columns) if subset == "all" else []
    head = ["method", "n"] + [f"{c.name} {c.arrow}" for c in cols + set_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    best = {c.name: _best(result, c, subset) for c in cols + set_cols}
    for m in result.methods:
        e = result.entry(m, subset)
        if e is None:
            continue
        kind = result.method_kinds.get(m)
        cells = [result.label(m), str(e["n"])]
        for c in cols:
            s = e.get(c.name)
            if not s:
                cells.append("—")
                continue
            text = _bold_if_best(c.format(s["mean"]), s["mean"], best[c.name], kind)
            cells.append(text + (f" ± {c.format(s['std'])}" if with_std else ""))
        for c in set_cols:
            v = result.set_metrics.get(m, {}).get(c.name)
            cells.append(_bold_if_best(c.format(v), v, best[c.name], kind))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def throughput_table(result: EvalResult) -> str:
    """Markdown table of metric throughput: images scored, seconds, images/s (targets' features included)."""
    lines = ["| step | images | seconds | images/s |", "|---|---:|---:|---:|"]
    order = sorted(result.throughput, key=lambda k: (k == "total (wall)", not result.throughput[k]["images"]))
    for name in order:
        t = result.throughput[name]
        ips = t["images_per_s"]
        lines.append(
            f"| {name} | {t['images'] or '—'} | {t['seconds']:.2f} | "
            f"{'—' if not (isinstance(ips, float) and math.isfinite(ips)) else f'{ips:.2f}'} |"
        )
    return "\n".join(lines)


def metric_lines(result: EvalResult) -> list[str]:
    """Markdown bullets: every metric column (columns sharing an implementation on one line) with its
    implementation, then every unavailable metric with the reason."""
    lines: list[str] = []
    cols = [*result.columns, *result.set_columns]
    i = 0
    while i < len(cols):
        group = [cols[i]]
        info = result.metric_info.get(cols[i].name, "")
        while i + len(group) < len(cols) and result.metric_info.get(cols[i + len(group)].name, "") == info:
            group.append(cols[i + len(group)])
        names = " / ".join(f"**{c.name}** ({c.arrow}{', ' + c.unit if c.unit else ''})" for c in group)
        lines.append(f"- {names}: {info}")
        i += len(group)
    for name, reason in result.unavailable.items():
        lines.append(f"- **{name}**: unavailable — {reason}")
    return lines


def markdown_report(
    result: EvalResult, title: str | None = None, plots: Sequence[str] = (), notes: Sequence[str] = ()
) -> str:
    """The full Markdown report (see the module doc)."""
    s = result.settings
    out = [f"# {title or 'AuthFace evaluation report'}", ""]
    v = s.get("versions", {})
    out.append(
        f"- Generated by authface {v.get('authface')} (`authface eval`): {s['images']} image(s) x "
        f"{len(result.methods)} method(s); Python {v.get('python')}, numpy {v.get('numpy')}, torch {v.get('torch')}"
    )
    for key, label in (("gt", "GT"), ("lq", "LQ"), ("reference", "reference photos"), ("masks", "masks")):
        if s.get(key):
            out.append(f"- {label}: `{s[key]}`")
    if s.get("benchmark"):
        b = s["benchmark"]
        out.append(
            f"- Benchmark: preset `{b.get('preset')}`, seed {b.get('seed')}, HQ `{b.get('hq_dir')}` ({s.get('metadata')})"
        )
    if s.get("identity_target"):
        out.append(f"- Identity target: {s['identity_target']}")
    out.append(f"- Subsets: {', '.join(x for x in result.subsets if x != 'all') or 'none (one folder)'}")
    out += ["", "## Methods", ""]
    for m in result.methods:
        out.append(f"- **{result.label(m)}**: {result.method_desc.get(m, '')}")
    out += ["", "## Metrics", ""] + metric_lines(result)
    out += ["", "Values are mean ± sample standard deviation over images; best mean per column in bold.", ""]
    out += ["## Results: all images", "", summary_table(result, "all"), ""]
    for sub in result.subsets:
        if sub == "all":
            continue
        out += [f"## Results: {sub}", "", summary_table(result, sub), ""]
    out += ["## Metric throughput", "", throughput_table(result), ""]
    if plots:
        out += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    all_notes = list(notes) + list(result.warnings)
    if all_notes:
        out += ["## Notes and warnings", ""] + [f"- {w}" for w in all_notes] + [""]
    return "\n".join(out)


def _csv_text(rows: list[list[Any]]) -> str:
    buf = _stdio.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _summary_rows(result: EvalResult) -> list[list[Any]]:
    cols = result.columns
    head = ["method", "kind", "subset", "n"] + [f"{c.name}_{k}" for c in cols for k in ("mean", "std")]
    head += [c.name for c in result.set_columns]
    rows: list[list[Any]] = [head]
    for e in result.summary:
        row = [e["method"], result.method_kinds.get(e["method"], ""), e["subset"], e["n"]]
        for c in cols:
            s = e.get(c.name)
            row += [f"{s['mean']:.6g}", f"{s['std']:.6g}"] if s else ["", ""]
        for c in result.set_columns:
            v = result.set_metrics.get(e["method"], {}).get(c.name) if e["subset"] == "all" else None
            row.append(f"{v:.6g}" if v is not None else "")
        rows.append(row)
    return rows


def _per_image_rows(result: EvalResult) -> list[list[Any]]:
    factors = sorted({k for r in result.records for k in r if k.startswith("deg_")})
    head = ["method", "key", "subset"] + [c.name for c in result.columns] + factors
    rows: list[list[Any]] = [head]
    for r in result.records:
        row = [r["method"], r["key"], r["subset"]]
        for k in [c.name for c in result.columns] + factors:
            v = r.get(k)
            row.append("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.6g}")
        rows.append(row)
    return rows


def write_report(
    result: EvalResult,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    gallery: bool = True,
    plots: bool = True,
    sort_by: str | None = None,
    gallery_max: int | None = None,
    thumb_size: int = 160,
) -> dict[str, Path]:
    """Write the report files (module doc) into ``out_dir`` (created); returns ``{name: path}``."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    plot_files: list[Path] = []
    notes: list[str] = []
    if plots:
        plot_files, notes = write_plots(result, out)
        for p in plot_files:
            files[p.name] = p
    if gallery:
        files["gallery.html"] = write_gallery(result, out, sort_by, gallery_max, thumb_size)
    rel_plots = [p.relative_to(out).as_posix() for p in plot_files]
    files["report.md"] = out / "report.md"
    io.write_text(files["report.md"], markdown_report(result, title, rel_plots, notes))
    files["summary.csv"] = out / "summary.csv"
    io.write_text(files["summary.csv"], _csv_text(_summary_rows(result)))
    files["per_image.csv"] = out / "per_image.csv"
    io.write_text(files["per_image.csv"], _csv_text(_per_image_rows(result)))
    data = {
        "settings": result.settings,
        "methods": [
            {"name": m, "kind": result.method_kinds.get(m), "description": result.method_desc.get(m)}
            for m in result.methods
        ],
        "columns": [
            {
                "name": c.name,
                "higher_better": c.higher_better,
                "unit": c.unit,
                "info": result.metric_info.get(c.name),
            }
            for c in [*result.columns, *result.set_columns]
        ],  # fmt: skip
        "unavailable": result.unavailable,
        "summary": result.summary,
        "set_metrics": result.set_metrics,
        "throughput": result.throughput,
        "warnings": result.warnings + notes,
        "records": result.records,
    }
    files["report.json"] = out / "report.json"
    io.write_json(files["report.json"], json_safe(data), indent=1)
    return files
