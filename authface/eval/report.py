"""Evaluation reports: Markdown, CSV, JSON, an HTML gallery and plots, from an :class:`~authface.eval.metrics.EvalResult`.

``write_report(result, REPORT_DIR)`` writes::

    report.md          header (inputs, every metric's implementation and weights, unavailable metrics and why),
                       mean ± std per metric per method for all images and per subset (top-level subfolder),
                       dataset-level metrics (FID, KID, NTIRE 2025), metric throughput (images/s), warnings
    summary.csv        one row per (method, subset): n, <metric>_mean, <metric>_std (+ dataset-level metrics)
    per_image.csv      one row per (method, image): every metric, and the degradation factors (deg_*) when the
                       benchmark metadata is known
    report.json        all of the above, machine-readable (NaN -> null)
    gallery.html       LQ | each method | GT side by side, per-image metrics, worst first by a chosen metric; a
                       select box re-sorts rows by any (method, metric) with a few lines of inline JS. Thumbnails are
                       JPEG files in gallery/ linked relatively (the folder is self-contained: no external resources;
                       images are written by authface.io like every other image file)
    plots/*.png        metric vs degradation strength (when the metadata is known), identity vs quality per method
                       (matplotlib, rendered off-screen and written with authface.io; skipped with a note when
                       matplotlib is not installed)

No function prints.
"""

from __future__ import annotations

import csv
import html
import io as _stdio
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import Column, EvalResult

__all__ = [
    "markdown_report",
    "metric_lines",
    "summary_table",
    "throughput_table",
    "write_gallery",
    "write_plots",
    "write_report",
]

_ARROW = {True: "↑", False: "↓"}
_SORT_PRIORITY = ("IDS", "PSNR", "PSNR-Y", "LPIPS", "SSIM", "NIQE", "LMD", "Sharpness")
_FACTOR_LABELS = {
    "blur_sigma": "blur σ (px)", "scale": "downsampling ×", "noise": "noise σ (0-255)", "jpeg": "JPEG quality",
}  # fmt: skip


def _fmt(value: Any, col: Column | None, digits: str | None = None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(float(value), digits or (col.fmt if col else ".4f"))


def _label(result: EvalResult, method: str) -> str:
    kind = result.method_kinds.get(method, "prediction")
    return (
        f"{method} (baseline)"
        if kind == "baseline"
        else f"{method} (reference)"
        if kind == "reference"
        else method
    )


def _entry(result: EvalResult, method: str, subset: str) -> dict | None:
    return next((e for e in result.summary if e["method"] == method and e["subset"] == subset), None)


def _best(result: EvalResult, col: Column, subset: str) -> float | None:
    vals = []
    for m in result.methods:
        if result.method_kinds.get(m) == "reference":
            continue
        if col in result.set_columns:
            v = result.set_metrics.get(m, {}).get(col.name) if subset == "all" else None
        else:
            e = _entry(result, m, subset)
            v = e.get(col.name, {}).get("mean") if e else None
        if v is not None and math.isfinite(v):
            vals.append(v)
    if len(vals) < 2:
        return None
    return max(vals) if col.higher_better else min(vals)


def summary_table(result: EvalResult, subset: str = "all", with_std: bool = True) -> str:
    """Markdown table: one row per method, ``mean ± std`` per metric (best mean in bold), dataset-level metrics
    in the ``all`` table."""
    cols = list(result.columns)
    set_cols = list(result.set_columns) if subset == "all" else []
    head = ["method", "n"] + [f"{c.name} {_ARROW[c.higher_better]}" for c in cols + set_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    best = {c.name: _best(result, c, subset) for c in cols + set_cols}
    for m in result.methods:
        e = _entry(result, m, subset)
        if e is None:
            continue
        cells = [_label(result, m), str(e["n"])]
        for c in cols:
            s = e.get(c.name)
            if not s:
                cells.append("—")
                continue
            text = _fmt(s["mean"], c)
            if (
                best[c.name] is not None
                and s["mean"] == best[c.name]
                and result.method_kinds.get(m) != "reference"
            ):
                text = f"**{text}**"
            if with_std:
                text += f" ± {_fmt(s['std'], c)}"
            cells.append(text)
        for c in set_cols:
            v = result.set_metrics.get(m, {}).get(c.name)
            text = _fmt(v, c)
            if (
                v is not None
                and best[c.name] is not None
                and v == best[c.name]
                and result.method_kinds.get(m) != "reference"
            ):
                text = f"**{text}**"
            cells.append(text)
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
        names = " / ".join(
            f"**{c.name}** ({_ARROW[c.higher_better]}{', ' + c.unit if c.unit else ''})" for c in group
        )
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
    for key, label in (("gt", "GT"), ("lq", "LQ"), ("reference", "reference photos")):
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
        out.append(f"- **{_label(result, m)}**: {result.method_desc.get(m, '')}")
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


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    if isinstance(v, Path):
        return str(v)
    return v


def _write_text(path: Path, text: str) -> None:
    from .commands import _write_text as write

    write(path, text)


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


# ---------------------------------------------------------------------------------------------------- gallery


def _sort_choice(result: EvalResult, sort_by: str | None) -> tuple[str | None, Column | None]:
    cols = list(result.columns)
    col = None
    if sort_by:
        col = next((c for c in cols if c.name.lower() == sort_by.lower()), None)
        if col is None:
            raise ValueError(
                f"--sort-by {sort_by!r}: not a per-image metric of this report ({', '.join(c.name for c in cols)})"
            )
    else:
        col = next((c for name in _SORT_PRIORITY for c in cols if c.name == name), cols[0] if cols else None)
    method = next((m for m in result.methods if result.method_kinds.get(m) == "prediction"), None)
    method = method or next((m for m in result.methods if result.method_kinds.get(m) == "baseline"), None)
    return method, col


def _badness(v: float | None, col: Column) -> float:
    if v is None or not math.isfinite(v):
        return math.inf
    return v if col.higher_better else -v


def _thumb(img: np.ndarray, size: int) -> np.ndarray:
    from authface.data.degradations import resize

    h, w = img.shape[:2]
    s = size / max(h, w)
    if s >= 1:
        return img
    return resize(img, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")


_GALLERY_JS = """
const tb=document.querySelector('#g tbody'),sel=document.getElementById('sortkey'),best=document.getElementById('best');
function resort(){const [m,c]=JSON.parse(sel.value),hb=sel.selectedOptions[0].dataset.hb==='1',b=best.checked;
 const val=r=>{const v=(JSON.parse(r.dataset.v)[m]||{})[c];return (v===null||v===undefined)?null:(hb?v:-v);};
 [...tb.rows].sort((x,y)=>{const a=val(x),z=val(y);if(a===null)return 1;if(z===null)return -1;return b?z-a:a-z;})
 .forEach(r=>tb.appendChild(r));}
sel.onchange=resort;best.onchange=resort;
document.getElementById('byname').onclick=()=>{[...tb.rows].sort((x,y)=>x.dataset.key.localeCompare(y.dataset.key)).forEach(r=>tb.appendChild(r));};
"""

_GALLERY_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:center;font-size:12px}
th{background:#f3f3f3;position:sticky;top:0}img{display:block;margin:auto}.m{white-space:nowrap;color:#444}
.k{max-width:12em;word-break:break-all;text-align:left}.worst{color:#b00}
"""


def write_gallery(
    result: EvalResult,
    out_dir: str | os.PathLike,
    sort_by: str | None = None,
    gallery_max: int | None = None,
    thumb_size: int = 160,
) -> Path:
    """Write ``gallery.html`` and its thumbnails (``gallery/*.jpg``) into ``out_dir``; returns the HTML path.

    Rows: one per image, worst first by ``sort_by`` (a per-image metric; default IDS, else PSNR, ...) of the first
    prediction method (else the first baseline); ``gallery_max`` keeps the N worst. Columns: LQ | every method (with
    its metrics) | GT.
    """
    from authface import io

    out = Path(out_dir)
    thumbs = out / "gallery"
    method, col = _sort_choice(result, sort_by)
    values: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in result.records:
        values.setdefault(r["key"], {})[r["method"]] = {
            c.name: (
                r.get(c.name) if isinstance(r.get(c.name), float) and math.isfinite(r.get(c.name)) else None
            )
            for c in result.columns
        }
    keys = list(result.pairing.keys)
    if method and col:
        keys.sort(key=lambda k: (_badness(values.get(k, {}).get(method, {}).get(col.name), col), k))
    if gallery_max is not None:
        keys = keys[: max(0, int(gallery_max))]
    p = result.pairing
    show = (["LQ"] if p.lq else []) + list(
        result.methods if "GT" not in result.methods else [m for m in result.methods if m != "GT"]
    )
    show += ["GT"] if p.gt else []
    mp = result.max_pixels or io.DEFAULT_MAX_PIXELS

    has = {(r["method"], c.name) for r in result.records for c in result.columns
           if isinstance(r.get(c.name), float) and math.isfinite(r[c.name])}  # fmt: skip
    opts = []
    for m in result.methods:
        for c in result.columns:
            if (m, c.name) not in has:
                continue
            selected = " selected" if (m == method and c is col) else ""
            opts.append(
                f'<option value="{html.escape(json.dumps([m, c.name]), quote=True)}" data-hb="{int(c.higher_better)}"{selected}>'
                f"{html.escape(m)} · {html.escape(c.name)} {_ARROW[c.higher_better]}</option>"
            )
    rows = []
    for i, key in enumerate(keys):
        cells = [f"<td>{i + 1}</td>", f'<td class="k">{html.escape(key)}</td>']
        for j, m in enumerate(show):
            try:
                if m == "LQ":
                    img = io.read_image(p.lq[key], max_pixels=mp).rgb
                elif m == "GT" and m not in p.preds:
                    img = io.read_image(p.gt[key], max_pixels=mp).rgb
                else:
                    img = result.image(m, key)
            except (io.ImageReadError, OSError, ValueError, KeyError):
                img = None
            if img is None:
                cells.append("<td>—</td>")
                continue
            name = f"{i:05d}_{j:02d}.jpg"
            io.write_image(thumbs / name, _thumb(img, thumb_size), quality=90)
            metric_text = ""
            if m in values.get(key, {}):
                parts = [
                    f"{c.name} {_fmt(values[key][m][c.name], c)}"
                    for c in result.columns
                    if values[key][m][c.name] is not None
                ]
                metric_text = "<br>".join(html.escape(t) for t in parts)
            cells.append(
                f'<td><img src="gallery/{name}" alt="{html.escape(m)}" loading="lazy"><div class="m">{metric_text}</div></td>'
            )
        data = html.escape(json.dumps(_clean(values.get(key, {}))), quote=True)
        rows.append(
            f'<tr class="img" data-key="{html.escape(key)}" data-v="{data}">' + "".join(cells) + "</tr>"
        )
    header = "".join(
        f"<th>{html.escape(_label(result, m) if m not in ('LQ', 'GT') or m in p.preds else m)}</th>"
        for m in show
    )
    order = f"worst first by {html.escape(method)} · {html.escape(col.name)}" if method and col else "by name"
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>AuthFace gallery</title><style>{_GALLERY_CSS}</style></head>
<body><h1>AuthFace evaluation gallery</h1>
<p>{len(keys)} of {len(result.pairing.keys)} image(s), {order}. Sort by
<select id="sortkey">{"".join(opts)}</select> <label><input type="checkbox" id="best"> best first</label>
<button id="byname">by name</button></p>
<table id="g"><thead><tr><th>#</th><th>image</th>{header}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<script>{_GALLERY_JS}</script></body></html>
"""
    path = out / "gallery.html"
    _write_text(path, doc)
    return path


# ---------------------------------------------------------------------------------------------------- plots


def _save_figure(fig, path: Path) -> None:
    """Render a matplotlib Figure off-screen and write it with authface.io (the one place that encodes images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from authface import io

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    io.write_image(path, np.ascontiguousarray(rgba[..., :3]))


def write_plots(result: EvalResult, out_dir: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Write ``plots/*.png``; returns (files, notes). Without matplotlib: no files, one note saying so."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return [], ["plots skipped: matplotlib is not installed (pip install 'authface[eval]')"]
    out = Path(out_dir) / "plots"
    files: list[Path] = []
    notes: list[str] = []
    methods = [m for m in result.methods if result.method_kinds.get(m) != "reference"]
    names = {c.name: c for c in result.columns}
    factors = [f for f in _FACTOR_LABELS if any(f"deg_{f}" in r for r in result.records)]

    # metric vs degradation strength
    if factors:
        for cname in [n for n in ("PSNR", "PSNR-Y", "LPIPS", "IDS", "LMD") if n in names][:3]:
            col = names[cname]
            fig = Figure(figsize=(3.2 * len(factors), 3.0), dpi=100, layout="constrained")
            axes = fig.subplots(1, len(factors), squeeze=False)[0]
            for ax, fk in zip(axes, factors):
                for mi, m in enumerate(methods):
                    pts = [
                        (r[f"deg_{fk}"], r.get(cname))
                        for r in result.records
                        if r["method"] == m and f"deg_{fk}" in r
                    ]
                    pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y)]
                    if not pts:
                        continue
                    x, y = np.array(pts).T
                    color = f"C{mi % 10}"
                    ax.scatter(x, y, s=6, alpha=0.35, color=color)
                    nb = min(5, len(np.unique(x)))
                    if nb >= 2:
                        edges = np.unique(np.quantile(x, np.linspace(0, 1, nb + 1)))
                        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
                        bx = [x[idx == b].mean() for b in range(len(edges) - 1) if np.any(idx == b)]
                        by = [y[idx == b].mean() for b in range(len(edges) - 1) if np.any(idx == b)]
                        ax.plot(bx, by, "-o", ms=3, color=color, label=m)
                    else:
                        ax.plot([], [], "-o", color=color, label=m)
                ax.set_xlabel(_FACTOR_LABELS[fk])
                ax.set_ylabel(f"{cname} {_ARROW[col.higher_better]}")
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=7)
            fig.suptitle(
                f"{cname} vs degradation strength (points: images; lines: quantile-bin means)", fontsize=9
            )
            path = out / f"{cname.lower()}_vs_degradation.png"
            _save_figure(fig, path)
            files.append(path)
    elif result.settings.get("lq"):
        notes.append(
            "metric-vs-degradation plots skipped: no benchmark metadata (metadata.jsonl) for the LQ images"
        )

    # identity vs quality
    id_col = names.get("IDS")
    q_col = next(
        (
            names[n]
            for n in ("NIQE", "MUSIQ", "CLIPIQA", "MANIQA", "TOPIQ-face", "Sharpness", "LPIPS", "PSNR")
            if n in names
        ),
        None,
    )
    if id_col is not None and q_col is not None:
        fig = Figure(figsize=(5, 4), dpi=100, layout="constrained")
        ax = fig.subplots()
        for mi, m in enumerate(result.methods):
            e = _entry(result, m, "all")
            if not e or "IDS" not in e or q_col.name not in e:
                continue
            qx, iy = e[q_col.name], e["IDS"]
            ax.errorbar(qx["mean"], iy["mean"], xerr=qx["std"] / math.sqrt(max(qx["n"], 1)),
                        yerr=iy["std"] / math.sqrt(max(iy["n"], 1)), fmt="o", color=f"C{mi % 10}", capsize=3)  # fmt: skip
            ax.annotate(m, (qx["mean"], iy["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        g = _entry(result, "GT", "all") if result.method_kinds.get("GT") == "reference" else None
        if g and q_col.name in g:
            ax.axvline(g[q_col.name]["mean"], ls="--", color="0.5", lw=1)
            ax.annotate("GT", (g[q_col.name]["mean"], ax.get_ylim()[0]), textcoords="offset points", xytext=(3, 3),
                        fontsize=8, color="0.4")  # fmt: skip
        if not q_col.higher_better:
            ax.invert_xaxis()
        ax.set_xlabel(f"{q_col.name} (better →)")
        ax.set_ylabel("IDS (better ↑)")
        ax.set_title("identity vs quality (mean ± s.e.m.)", fontsize=9)
        ax.grid(alpha=0.3)
        path = out / "identity_vs_quality.png"
        _save_figure(fig, path)
        files.append(path)
    else:
        notes.append("identity-vs-quality plot skipped: needs IDS and a quality metric")
    return files, notes


# ---------------------------------------------------------------------------------------------------- all


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
    _write_text(files["report.md"], markdown_report(result, title, rel_plots, notes))
    files["summary.csv"] = out / "summary.csv"
    _write_text(files["summary.csv"], _csv_text(_summary_rows(result)))
    files["per_image.csv"] = out / "per_image.csv"
    _write_text(files["per_image.csv"], _csv_text(_per_image_rows(result)))
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
    _write_text(files["report.json"], json.dumps(_clean(data), indent=1, allow_nan=False) + "\n")
    return files
