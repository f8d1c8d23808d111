"""What ``authface optimize`` writes for each input: the best image (with what was done in its metadata), a JSON
sidecar, a score-vs-identity trade-off plot and a side-by-side.

matplotlib is optional (``pip install 'authface[eval]'``) and imported only to draw the plot; without it the plot
is skipped with a note. Images are encoded by :mod:`authface.io`.
"""

from __future__ import annotations

import datetime
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__, io
from ..imaging import resize

__all__ = ["METADATA_KEY", "RESPONSIBLE_USE_NOTE", "metadata_record", "side_by_side", "tradeoff_points",
           "write_best_image", "write_tradeoff_plot"]  # fmt: skip

#: PNG text key (and JSON sidecar key) that marks an optimised image.
METADATA_KEY = "authface:optimized"
RESPONSIBLE_USE_NOTE = (
    "This image was altered by score-guided optimisation (authface optimize): the appearance of the person "
    "shown was changed to raise a learned score while keeping identity similarity above a bound. It is not "
    "an unedited photograph."
)


def metadata_record(input_path: str, scorer: dict, method: str, identity_model: str, settings: dict,
                    faces: Sequence[dict], model: str | None = None) -> dict:  # fmt: skip
    """The record stored in the output's metadata and sidecar: what was done, with what, and the result."""
    return {
        "optimized": True, "note": RESPONSIBLE_USE_NOTE, "tool": f"authface {__version__} optimize",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": input_path, "model": model, "method": method, "scorer": scorer,
        "identity_model": identity_model, "identity_min": settings.get("identity_min"), "settings": settings,
        "faces": list(faces),
    }  # fmt: skip


def write_best_image(path: str | Path, rgb: np.ndarray, record: dict) -> Path:
    """Write the optimised image and its JSON sidecar (``<path>.json``); PNG files also carry ``record`` as a
    text chunk under :data:`METADATA_KEY` when :func:`authface.io.write_image` supports text chunks. Returns
    the sidecar's path."""
    path = Path(path)
    if path.suffix.lower() == ".png" and "text" in inspect.signature(io.write_image).parameters:
        io.write_image(path, rgb, text={METADATA_KEY: json.dumps(record, ensure_ascii=False)})
    else:
        io.write_image(path, rgb)
    sidecar = path.with_suffix(".json")
    io.write_json(sidecar, {METADATA_KEY: record})
    return sidecar


def side_by_side(images: Sequence[np.ndarray], height: int = 512, gap: int = 8) -> np.ndarray:
    """uint8 RGB images (e.g. input | baseline | optimised) resized to ``height`` and joined with white gaps."""
    tiles = []
    for im in images:
        width = max(1, round(im.shape[1] * height / im.shape[0]))
        tiles.append(im if im.shape[:2] == (height, width) else resize(im, size=(height, width), mode="area"))
        tiles.append(np.full((height, gap, 3), 255, np.uint8))
    return np.ascontiguousarray(np.concatenate(tiles[:-1], axis=1))


def tradeoff_points(records: Sequence[dict]) -> dict[str, list[tuple[float, float]]]:
    """(identity, score) of every evaluated image, by method (CMA-ES: every candidate of every generation)."""
    points: dict[str, list[tuple[float, float]]] = {}
    for rec in records:
        cands = rec.get("candidates") or [rec]
        points.setdefault(rec["method"], []).extend((c["identity"], c["score"]) for c in cands)
    return points


def write_tradeoff_plot(path: str | Path, records: Sequence[dict], identity_min: float, best: dict,
                        title: str = "") -> str | None:  # fmt: skip
    """Scatter of score against identity similarity (per method), the bound τ and the chosen image, as PNG.

    Returns None when written, else a note saying why not (matplotlib missing)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "trade-off plot skipped: matplotlib is not installed (pip install 'authface[eval]')"
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    styles = {"baseline": ("k", "s", 40), "gradient": ("C1", "^", 30), "cmaes": ("C0", "o", 10)}
    for method, pts in tradeoff_points(records).items():
        color, marker, size = styles.get(method, ("C2", "o", 10))
        x, y = np.asarray(pts, np.float64).T
        ax.scatter(x, y, s=size, c=color, marker=marker, alpha=0.6 if method == "cmaes" else 0.9, label=method)
    ax.axvline(identity_min, color="C3", ls="--", lw=1, label=f"identity bound τ = {identity_min:g}")
    ax.scatter([best["identity"]], [best["score"]], s=160, marker="*", c="gold", edgecolors="k", zorder=5,
               label=f"chosen ({best['method']})")  # fmt: skip
    ax.set_xlabel("identity similarity to the input (cosine)")
    ax.set_ylabel("score")
    ax.set_title(title or "score vs identity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    io.write_image(Path(path), np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3]))
    return None
