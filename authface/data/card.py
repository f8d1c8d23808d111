"""The dataset card (``dataset_card.md``) and quality histogram (``quality_hist.png``) of a prepared dataset."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import io
from .manifest import (
    CARD_NAME,
    CONFIG_NAME,
    FACES_DIR,
    HIST_NAME,
    MANIFEST_NAME,
    REJECT_REASONS,
    REJECTED_NAME,
    read_records,
    utc_now,
)

__all__ = ["quality_histogram", "write_dataset_card"]

_REASON_TEXT = {
    "unreadable": "photo could not be read (corrupt, truncated, not an image, too large)",
    "no_face": "photo: no face detected",
    "too_small": "face: detected size below --min-face-size",
    "duplicate": "face: near-duplicate (pHash) of a kept face",
}


def quality_histogram(scores: Sequence[float], bins: int = 10, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """Bar chart of scores in [0, 1] (``bins`` equal bins) as uint8 RGB (H, W, 3), drawn with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = size
    counts, edges = np.histogram(np.clip(np.asarray(scores, dtype=np.float64), 0, 1), bins=bins, range=(0.0, 1.0))
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 50, w - 20, 30, h - 40
    draw.text((left, 8), f"quality_score histogram (n = {len(scores)})", fill="black", font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=1)
    peak = max(int(counts.max()) if counts.size else 0, 1)
    bar_w = (right - left) / bins
    for k, c in enumerate(counts):
        x0, x1 = left + k * bar_w + 2, left + (k + 1) * bar_w - 2
        y0 = bottom - (bottom - top) * (c / peak)
        if c:
            draw.rectangle([x0, y0, x1, bottom - 1], fill=(70, 110, 200), outline=(30, 60, 140))
            draw.text((x0 + 2, max(y0 - 14, top - 14)), str(int(c)), fill="black", font=font)
    for k in range(bins + 1):
        x = left + k * bar_w
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        if k % 2 == 0:
            draw.text((x - 8, bottom + 8), f"{edges[k]:.1f}", fill="black", font=font)
    draw.text((left - 40, top - 4), str(peak), fill="black", font=font)
    draw.text((left - 12, bottom - 6), "0", fill="black", font=font)
    return np.asarray(img, dtype=np.uint8)


def _stats(values: list[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [0, 10, 50, 90, 100])
    return " | ".join(f"{v:.3f}" for v in (q[0], q[1], q[2], float(a.mean()), q[3], q[4]))


def write_dataset_card(dataset_dir: str | os.PathLike) -> Path:
    """(Re)write ``dataset_card.md`` and ``quality_hist.png`` from manifest.jsonl, rejected.jsonl and
    prepare_config.json (tolerant of bad lines: use :func:`read_manifest` to validate). Returns the card's path."""
    dataset = Path(dataset_dir)
    records = read_records(dataset / MANIFEST_NAME)
    rejected = read_records(dataset / REJECTED_NAME)
    config: dict = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        config = json.loads((dataset / CONFIG_NAME).read_text(encoding="utf-8"))
    scores = [float(r["quality_score"]) for r in records if isinstance(r.get("quality_score"), (int, float))]
    io.write_image(dataset / HIST_NAME, quality_histogram(scores))
    lines = [
        *_contents(dataset.name, records, rejected, config),
        *_quality(records, scores, config),
        *_captions_and_runs(records, config),
        *_SCHEMA,
    ]
    path = dataset / CARD_NAME
    io.write_text(path, "\n".join(lines))
    return path


def _contents(name: str, records: list[dict], rejected: list[dict], config: dict) -> list[str]:
    """Front matter, title, contents and the table of rejections."""
    sources = {r.get("source") for r in records} | {r.get("source") for r in rejected}
    kept_photos = {r.get("source") for r in records}
    lines = [
        "---",
        "pretty_name: " + json.dumps(name),
        "task_categories:\n- image-to-image",
        "tags:\n- faces\n- face-restoration\n- authface",
        "---",
        "",
        f"# {name}",
        "",
        f"Aligned face crops for AuthFace training, made by `authface prepare` (card generated {utc_now()}).",
        "",
        "## Contents",
        "",
        f"- **{len(records)} faces** kept, from {len(kept_photos)} photos, as lossless PNG "
        f"`{FACES_DIR}/<id>.png`, {config.get('crop_size', '?')}×{config.get('crop_size', '?')} px, FFHQ-aligned",
        f"- {len(sources)} photos seen in {len(config.get('runs', []))} run(s); records in `{MANIFEST_NAME}` "
        f"(one per face) and `{REJECTED_NAME}`",
        "",
        "## Rejected",
        "",
        "| reason | records | photos | meaning |",
        "|---|---:|---:|---|",
    ]
    for reason in REJECT_REASONS:
        recs = [r for r in rejected if r.get("reason") == reason]
        lines.append(f"| {reason} | {len(recs)} | {len({r.get('source') for r in recs})} | {_REASON_TEXT[reason]} |")
    return lines


def _quality(records: list[dict], scores: list[float], config: dict) -> list[str]:
    """The quality section: a table of every scorer's score and raw value, and the histogram."""
    lines = ["", "## Quality", ""]
    if not scores:
        return [*lines, "No faces yet."]
    lines += [
        f"`quality_score` is the normalised score (0 worst, 1 best) of the first scorer, "
        f"`{config.get('primary_quality', '?')}`; the training image-quality prior conditions on it.",
        "",
        "| scorer | value | min | p10 | median | mean | p90 | max |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(dict.fromkeys(n for r in records for n in (r.get("quality") or {})))
    for name in names:
        for part in ("score", "raw"):
            vals = [r["quality"][name][part] for r in records if name in (r.get("quality") or {})
                    and isinstance(r["quality"][name].get(part), (int, float))]  # fmt: skip
            if vals:
                lines.append(f"| {name} | {part} | {_stats(vals)} |")
    return [*lines, "", f"![quality_score histogram]({HIST_NAME})"]


def _captions_and_runs(records: list[dict], config: dict) -> list[str]:
    """Caption count, the latest settings and a table of every run."""
    n_cap = sum(1 for r in records if r.get("caption"))
    settings = config.get("settings", {})
    lines = ["", "## Captions", "", f"{n_cap} of {len(records)} faces have a caption."]
    lines += ["", "## Settings", "", "Latest run:", "", "```json", json.dumps(settings, indent=2), "```", "", "Runs:", ""]
    lines += ["| started | photos found | skipped (done before) | processed | faces kept | rejected | failed |",
              "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for run in config.get("runs", []):
        rej = sum((run.get("rejected") or {}).values())
        lines.append(f"| {run.get('started')} | {run.get('photos_found')} | {run.get('photos_skipped')} | "
                     f"{run.get('photos_processed')} | {run.get('faces_kept')} | {rej} | {run.get('failed')} |")  # fmt: skip
    return lines


_SCHEMA = [
    "",
    "## Manifest schema",
    "",
    "Each line of `manifest.jsonl`: `id`, `file` (relative to this folder), `source` (absolute path), "
    "`source_rel` (path relative to its SRC), `face_index` (0 = largest face of the photo), `crop_size`, "
    "`source_size` [w, h], `box` [x1, y1, x2, y2] in the source photo, `face_size`, `det_score`, "
    "`source_landmarks` (5 × [x, y], source photo), `affine` (2×3, photo → crop), `landmarks` (5 × [x, y] in "
    "the crop: eye on the image left, eye on the image right, nose tip, mouth corners), `regions` "
    "({left_eye, right_eye, nose, mouth}: [x1, y1, x2, y2] in the crop), `quality` ({scorer: {raw, score}}), "
    "`quality_score` (in [0, 1]), `phash` (64-bit hex), `caption`, `created` (ISO time). Load it with "
    "`authface.data.prepare.read_manifest`.",
    "",
]
