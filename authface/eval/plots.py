"""Plots of an evaluation (``plots/*.png``): metric vs degradation strength, identity vs quality per method.

matplotlib renders off-screen (no GUI backend) and :mod:`authface.io` writes the PNG files, like every other image.
Without matplotlib, :func:`write_plots` writes nothing and returns a note saying so.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from authface import io

from .base import Column
from .result import EvalResult

__all__ = ["write_plots"]

_FACTOR_LABELS = {
    "blur_sigma": "blur σ (px)", "scale": "downsampling ×", "noise": "noise σ (0-255)", "jpeg": "JPEG quality",
    "face_coverage": "face-mask coverage (face region)", "damage_area": "damage area (image fraction)",
    "paint_area": "painted area (image fraction)",
}  # fmt: skip
_QUALITY_COLUMNS = ("NIQE", "MUSIQ", "CLIPIQA", "MANIQA", "TOPIQ-face", "Sharpness", "LPIPS", "PSNR")


def _save_figure(fig, path: Path) -> None:
    """Render a matplotlib Figure off-screen and write it with authface.io (the one place that encodes images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    io.write_image(path, np.ascontiguousarray(rgba[..., :3]))


def _binned_scatter(ax, result: EvalResult, methods: list[str], cname: str, factor: str) -> None:
    """Per method: every image as a point, and the means of up to 5 quantile bins of the factor as a line."""
    for mi, m in enumerate(methods):
        pts = [
            (r[f"deg_{factor}"], r.get(cname))
            for r in result.records
            if r["method"] == m and f"deg_{factor}" in r
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


def _degradation_plot(result: EvalResult, col: Column, factors: list[str], path: Path) -> None:
    from matplotlib.figure import Figure

    methods = [m for m in result.methods if result.method_kinds.get(m) != "reference"]
    fig = Figure(figsize=(3.2 * len(factors), 3.0), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(factors), squeeze=False)[0]
    for ax, fk in zip(axes, factors):
        _binned_scatter(ax, result, methods, col.name, fk)
        ax.set_xlabel(_FACTOR_LABELS[fk])
        ax.set_ylabel(f"{col.name} {col.arrow}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{col.name} vs degradation strength (points: images; lines: quantile-bin means)", fontsize=9
    )
    _save_figure(fig, path)


def _identity_quality_plot(result: EvalResult, q_col: Column, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    for mi, m in enumerate(result.methods):
        e = result.entry(m, "all")
        if not e or "IDS" not in e or q_col.name not in e:
            continue
        qx, iy = e[q_col.name], e["IDS"]
        ax.errorbar(qx["mean"], iy["mean"], xerr=qx["std"] / math.sqrt(max(qx["n"], 1)),
                    yerr=iy["std"] / math.sqrt(max(iy["n"], 1)), fmt="o", color=f"C{mi % 10}", capsize=3)  # fmt: skip
        ax.annotate(m, (qx["mean"], iy["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    g = result.entry("GT", "all") if result.method_kinds.get("GT") == "reference" else None
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
    _save_figure(fig, path)


def write_plots(result: EvalResult, out_dir: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Write ``plots/*.png`` into ``out_dir``; returns (files, notes). Without matplotlib: no files, one note.

    ``<metric>_vs_degradation.png`` (up to three of PSNR (mask), PSNR, PSNR-Y, LPIPS, IDS, LMD; needs the benchmark
    metadata)
    and ``identity_vs_quality.png`` (needs IDS and a quality metric); a plot that cannot be made is a note.
    """
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return [], ["plots skipped: matplotlib is not installed (pip install 'authface[eval]')"]
    out = Path(out_dir) / "plots"
    files: list[Path] = []
    notes: list[str] = []
    names = {c.name: c for c in result.columns}
    factors = [f for f in _FACTOR_LABELS if any(f"deg_{f}" in r for r in result.records)]
    if factors:
        for cname in [n for n in ("PSNR (mask)", "PSNR", "PSNR-Y", "LPIPS", "IDS", "LMD") if n in names][:3]:
            path = out / f"{cname.lower().replace(' (mask)', '_mask')}_vs_degradation.png"
            _degradation_plot(result, names[cname], factors, path)
            files.append(path)
    elif result.settings.get("lq"):
        notes.append(
            "metric-vs-degradation plots skipped: no benchmark metadata (metadata.jsonl) for the LQ images"
        )
    q_col = next((names[n] for n in _QUALITY_COLUMNS if n in names), None)
    if "IDS" in names and q_col is not None:
        path = out / "identity_vs_quality.png"
        _identity_quality_plot(result, q_col, path)
        files.append(path)
    else:
        notes.append("identity-vs-quality plot skipped: needs IDS and a quality metric")
    return files, notes
