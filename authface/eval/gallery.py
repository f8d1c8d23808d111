"""The HTML gallery of an evaluation: LQ | each method | GT side by side, worst first by a chosen metric.

``gallery.html`` holds per-image metrics and a select box that re-sorts rows by any (method, metric) with a few
lines of inline JS; thumbnails are JPEG files in ``gallery/`` linked relatively (the folder is self-contained: no
external resources; images are written by :mod:`authface.io` like every other image file).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import numpy as np

from authface import io
from authface.imaging import resize

from .base import Column
from .common import json_safe
from .result import EvalResult

__all__ = ["write_gallery"]

_SORT_PRIORITY = ("IDS", "PSNR (mask)", "PSNR", "PSNR-Y", "LPIPS", "SSIM", "NIQE", "LMD", "Sharpness")


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


def _finite_values(result: EvalResult) -> dict[str, dict[str, dict[str, float | None]]]:
    """key -> method -> column -> value (None when missing or not finite)."""
    values: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in result.records:
        values.setdefault(r["key"], {})[r["method"]] = {
            c.name: r.get(c.name)
            if isinstance(r.get(c.name), float) and math.isfinite(r.get(c.name))
            else None
            for c in result.columns
        }
    return values


def _sort_options(result: EvalResult, values, method: str | None, col: Column | None) -> str:
    """``<option>`` elements of the sort box: every (method, metric) with at least one value."""
    has = {
        (m, c)
        for per_key in values.values()
        for m, cols in per_key.items()
        for c, v in cols.items()
        if v is not None
    }
    opts = []
    for m in result.methods:
        for c in result.columns:
            if (m, c.name) not in has:
                continue
            selected = " selected" if (m == method and c is col) else ""
            value = html.escape(json.dumps([m, c.name]), quote=True)
            opts.append(
                f'<option value="{value}" data-hb="{int(c.higher_better)}"{selected}>'
                f"{html.escape(m)} · {html.escape(c.name)} {c.arrow}</option>"
            )
    return "".join(opts)


def _image(result: EvalResult, shown: str, key: str) -> np.ndarray | None:
    """The image of one gallery column (``LQ``, ``GT`` or a method) for ``key``; None when it cannot be had."""
    p = result.pairing
    mp = result.max_pixels or io.DEFAULT_MAX_PIXELS
    try:
        if shown == "LQ":
            return io.read_image(p.lq[key], max_pixels=mp).rgb
        if shown == "Mask" and shown not in p.preds:
            return io.read_image(p.masks[key], max_pixels=mp).rgb
        if shown == "GT" and shown not in p.preds:
            return io.read_image(p.gt[key], max_pixels=mp).rgb
        return result.image(shown, key)
    except (io.ImageReadError, OSError, ValueError, KeyError):
        return None


def _row(result: EvalResult, i: int, key: str, show: list[str], values, thumbs: Path, thumb_size: int) -> str:
    """One ``<tr>``: rank, key, then a thumbnail (written to ``thumbs``) with its metrics per shown column."""
    cells = [f"<td>{i + 1}</td>", f'<td class="k">{html.escape(key)}</td>']
    for j, m in enumerate(show):
        img = _image(result, m, key)
        if img is None:
            cells.append("<td>—</td>")
            continue
        name = f"{i:05d}_{j:02d}.jpg"
        io.write_image(thumbs / name, _thumb(img, thumb_size), quality=90)
        metric_text = ""
        if m in values.get(key, {}):
            parts = [f"{c.name} {c.format(values[key][m][c.name])}" for c in result.columns
                     if values[key][m][c.name] is not None]  # fmt: skip
            metric_text = "<br>".join(html.escape(t) for t in parts)
        cells.append(
            f'<td><img src="gallery/{name}" alt="{html.escape(m)}" loading="lazy">'
            f'<div class="m">{metric_text}</div></td>'
        )
    data = html.escape(json.dumps(json_safe(values.get(key, {}))), quote=True)
    return f'<tr class="img" data-key="{html.escape(key)}" data-v="{data}">' + "".join(cells) + "</tr>"


def write_gallery(
    result: EvalResult,
    out_dir: str | os.PathLike,
    sort_by: str | None = None,
    gallery_max: int | None = None,
    thumb_size: int = 160,
) -> Path:
    """Write ``gallery.html`` and its thumbnails (``gallery/*.jpg``, at most ``thumb_size`` pixels a side) into
    ``out_dir``; returns the HTML path.

    Rows: one per image, worst first by ``sort_by`` (a per-image metric; default IDS, else PSNR, ...) of the first
    prediction method (else the first baseline); ``gallery_max`` keeps the N worst. Columns: LQ | the inpainting mask
    (when there are masks) | every method (with its metrics) | GT. Raises ValueError when ``sort_by`` is not a per-image metric of the result.
    """
    out = Path(out_dir)
    method, col = _sort_choice(result, sort_by)
    values = _finite_values(result)
    keys = list(result.pairing.keys)
    if method and col:
        keys.sort(key=lambda k: (_badness(values.get(k, {}).get(method, {}).get(col.name), col), k))
    if gallery_max is not None:
        keys = keys[: max(0, int(gallery_max))]
    p = result.pairing
    show = (["LQ"] if p.lq else []) + (["Mask"] if p.masks else [])
    show += [m for m in result.methods if m != "GT"] + (["GT"] if p.gt else [])
    rows = [_row(result, i, key, show, values, out / "gallery", thumb_size) for i, key in enumerate(keys)]
    header = "".join(
        f"<th>{html.escape(result.label(m) if m not in ('LQ', 'Mask', 'GT') or m in p.preds else m)}</th>"
        for m in show
    )
    order = f"worst first by {html.escape(method)} · {html.escape(col.name)}" if method and col else "by name"
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>AuthFace gallery</title><style>{_GALLERY_CSS}</style></head>
<body><h1>AuthFace evaluation gallery</h1>
<p>{len(keys)} of {len(result.pairing.keys)} image(s), {order}. Sort by
<select id="sortkey">{_sort_options(result, values, method, col)}</select>
<label><input type="checkbox" id="best"> best first</label>
<button id="byname">by name</button></p>
<table id="g"><thead><tr><th>#</th><th>image</th>{header}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<script>{_GALLERY_JS}</script></body></html>
"""
    path = out / "gallery.html"
    io.write_text(path, doc)
    return path
