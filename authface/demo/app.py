"""The web demo's page: a Gradio ``Blocks`` app around :func:`authface.demo.runner.restore_uploads`.

    from authface.demo.app import build_demo, launch_demo
    demo = build_demo(model="path/to/model")          # page defaults: any RestoreConfig leaf key as a keyword
    launch_demo(demo, host="127.0.0.1", port=7860)    # or `authface demo --model path/to/model`

One request runs at a time (a queue with concurrency 1 shared by every user), so two users never hold two
diffusion runs in memory. Problems reach the user as messages in the page (``gr.Warning`` for one failed photo,
``gr.Error``, which stays until closed, when nothing could be done; HTML-escaped, as file names come from
users), never as a traceback; the traceback goes to the log.
"""

from __future__ import annotations

import html
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    import gradio as gr
except ImportError as _err:  # pragma: no cover - exercised by the CLI test through sys.modules
    raise ImportError("the web demo needs Gradio: pip install 'authface[demo]'") from _err

from ..build import restore_config
from ..config import BgUpsamplerName, ColorFix, ConfigError, RestoreConfig, choices
from .cache import RestorerCache
from .runner import DemoError, DemoRun, new_run_folder, restore_uploads

logger = logging.getLogger(__name__)

#: Settings on the page, in the order they are passed to the Restore handler: (config key, label).
PAGE_KEYS: tuple[tuple[str, str], ...] = (
    ("model.model", "Model: AuthFace model folder, diffusers folder, single file or hub id"),
    ("sampler.steps", "Steps"),
    ("sampler.strength", "Strength (1.0 starts from pure noise)"),
    ("sampler.cfg_scale", "CFG scale (classifier-free guidance; <= 1 turns it off)"),
    ("guidance.identity_scale", "Identity guidance (0 = off)"),
    ("guidance.quality_scale", "Quality guidance (0 = off)"),
    ("guidance.fidelity_scale", "Fidelity-to-input guidance (0 = off)"),
    (
        "sampler.quality_target",
        "Quality target in [0, 1] (models trained with the quality prior; blank = none)",
    ),
    ("sampler.color_fix", "Colour fix"),
    ("face.upscale", "Upscale the whole photo"),
    (
        "face.bg_upsampler",
        "Background upsampler (upscale > 1): lanczos, or realesrgan (a trained GAN upscaler)",
    ),
    ("face.aligned", "Inputs are aligned face crops (no detection)"),
    ("sampler.colorize", "Colourise gray and sepia photos (off: keep their tone)"),
    ("sampler.task", "Task: restore, or old-photo (fill scratches and tears, then restore)"),
    ("io.mask", "Fill what hides a face: none, or auto (the model folder's mask segmenter finds face masks, damage and paint)"),
    ("face.crop_size", "Face crop size (pixels, multiple of 8; empty: the model's own)"),
    ("sampler.seed", "Seed"),
)
MASK_CHOICES = ("none", "auto")
"""The page's mask modes (a drawn or uploaded mask is the CLI's --mask FILE)."""
_INTS = {"sampler.steps", "face.upscale", "face.crop_size", "sampler.seed"}

INTRO = """# AuthFace: diffusion face restoration
Upload one or more photos (or aligned face crops), choose the settings and press **Restore**. Each photo gets a
before/after slider; the faces are listed below as *before | after* pairs. **Download** gives a zip of the
restored photos, the face crops and `manifest.jsonl` (every setting, face box and timing). Requests run one at a
time: when someone else is restoring, yours waits in the queue."""


def _default(key: str, defaults: dict[str, Any]) -> Any:
    leaf = key.rsplit(".", 1)[-1]
    if key in defaults or leaf in defaults:
        return defaults.get(key, defaults.get(leaf))
    section, name = key.split(".")
    return getattr(getattr(RestoreConfig(), section), name)


def _controls(defaults: dict[str, Any]) -> list:
    """The settings components, grouped in accordions, returned in :data:`PAGE_KEYS` order."""
    d = {key: _default(key, defaults) for key, _ in PAGE_KEYS}
    label = dict(PAGE_KEYS)
    c = {"model.model": gr.Textbox(value=d["model.model"], label=label["model.model"], elem_id="model")}

    def slider(key: str, lo: float, hi: float, step: float) -> None:
        c[key] = gr.Slider(lo, hi, value=d[key], step=step, label=label[key])

    def dropdown(key: str, options: tuple) -> None:
        c[key] = gr.Dropdown(list(options), value=d[key], label=label[key])

    with gr.Accordion("Sampling", open=True):
        slider("sampler.steps", 1, 100, 1)
        slider("sampler.strength", 0.05, 1.0, 0.05)
        slider("sampler.cfg_scale", 0.0, 15.0, 0.5)
    with gr.Accordion("Guidance", open=False):
        for key in ("guidance.identity_scale", "guidance.quality_scale", "guidance.fidelity_scale"):
            slider(key, 0.0, 2.0, 0.05)
        c["sampler.quality_target"] = gr.Number(value=d["sampler.quality_target"], minimum=0, maximum=1, step=0.05,
                                                label=label["sampler.quality_target"])  # fmt: skip
    with gr.Accordion("Output", open=True):
        dropdown("sampler.color_fix", choices(ColorFix))
        slider("face.upscale", 1, 4, 1)
        dropdown("face.bg_upsampler", choices(BgUpsamplerName))
        for key in ("face.aligned", "sampler.colorize"):
            c[key] = gr.Checkbox(value=d[key], label=label[key])
    with gr.Accordion("Masks and old photos", open=False):
        dropdown("sampler.task", ("restore", "old-photo"))
        c["io.mask"] = gr.Dropdown(list(MASK_CHOICES), value=d["io.mask"] or "none", label=label["io.mask"])
    with gr.Accordion("Advanced", open=False):
        c["face.crop_size"] = gr.Number(
            value=d["face.crop_size"], precision=0, step=8, label=label["face.crop_size"]
        )
        c["sampler.seed"] = gr.Number(value=d["sampler.seed"], precision=0, label=label["sampler.seed"])
    return [c[key] for key, _ in PAGE_KEYS]


def page_options(values: list[Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """RestoreConfig options (dotted keys) from the page's values in :data:`PAGE_KEYS` order, over ``fixed``.

    Raises:
        DemoError: no model given.
    """
    options = dict(fixed)
    for (key, _), value in zip(PAGE_KEYS, values):
        if key in _INTS and value is not None:
            value = int(value)
        options[key] = value
    if options.get("io.mask") == "none":
        options["io.mask"] = None
    model = (options.get("model.model") or "").strip()
    if not model:
        raise DemoError(
            "enter a model: an AuthFace model folder, a diffusers folder, a single file or a hub id"
        )
    options["model.model"] = model
    return options


def face_pairs(run: DemoRun) -> list[tuple[np.ndarray, str]]:
    """Gallery items: each face as input | restored side by side (uint8 RGB (S, 2S + 4, 3)) with a caption."""
    items = []
    for photo in run.photos:
        for i, (before, after) in enumerate(photo.faces):
            gap = np.full((before.shape[0], 4, 3), 255, np.uint8)
            items.append(
                (np.concatenate([before, gap, after], axis=1), f"{photo.name}, face {i}: before | after")
            )
    return items


def summary(run: DemoRun, seconds: float) -> str:
    """The status text of a finished run (Markdown)."""
    done = [p for p in run.photos if not p.error]
    n_faces = sum(len(p.faces) for p in done)
    lines = [
        f"**Restored {len(done)} of {len(run.photos)} photo(s), {n_faces} face(s), in {seconds:.1f} s.**"
    ]
    lines += [f"- ⚠️ {note}" for note in run.notes]
    lines += [f"- {p.name}: no face found (photo passed through); try aligned mode for face crops"
              for p in done if not p.faces]  # fmt: skip
    lines += [f"- ❌ failed: {err}" for err in run.errors]
    return "\n".join(lines)


def make_handler(cache: RestorerCache, fixed: dict[str, Any], work_root: Path):
    """The Restore button's function: (uploads, *page values) -> (status, photos state, face gallery, files).

    Raises only ``gr.Error`` (shown in the page); the cause's traceback is logged.
    """

    def restore(files, *values):
        t0 = time.perf_counter()
        paths = [f if isinstance(f, str) else getattr(f, "name", f) for f in (files or [])]
        try:
            options = page_options(list(values), fixed)
            run = restore_uploads(paths, options, cache, new_run_folder(work_root))
        except (DemoError, ConfigError) as err:
            raise gr.Error(html.escape(str(err)), print_exception=False, duration=None) from None
        except Exception as err:  # noqa: BLE001 - the page shows a message, the log keeps the traceback
            logger.exception("demo: the request failed")
            raise gr.Error(
                html.escape(f"the request failed: {type(err).__name__}: {err}"),
                print_exception=False,
                duration=None,
            ) from None
        for note in run.notes:
            gr.Warning(html.escape(note))
        if run.errors and len(run.errors) == len(run.photos):
            raise gr.Error(
                html.escape("no photo could be restored: " + "; ".join(run.errors)),
                print_exception=False,
                duration=None,
            )
        for err in run.errors:
            gr.Warning(html.escape(f"failed: {err}"))
        shown = [{"name": p.name, "before": p.before, "after": p.after, "error": p.error} for p in run.photos]
        files_out = [str(run.zip_path), str(run.manifest_path)]
        return summary(run, time.perf_counter() - t0), shown, face_pairs(run), files_out

    return restore


def build_demo(
    model: str | None = None,
    cache: RestorerCache | None = None,
    work_dir: str | Path | None = None,
    fixed: dict[str, Any] | None = None,
    **defaults: Any,
) -> gr.Blocks:
    """The demo page, queued with concurrency 1.

    Args:
        model: the model field's initial value (default: :data:`authface.config.DEFAULT_BASE_MODEL`).
        cache: loaded models (default: a cache of one model).
        work_dir: where each request's outputs go (default: a new temporary folder); the newest 16 are kept.
        fixed: RestoreConfig options the page does not show, applied to every request (e.g.
            ``{"model.device": "cuda", "model.controlnet": "..."}``).
        defaults: initial values of the page's settings by RestoreConfig key, short or dotted
            (``steps=2, crop_size=128``); keys the page does not show join ``fixed``.

    Raises:
        authface.config.ConfigError: an unknown key or a bad value in ``fixed`` or ``defaults``.
    """
    cache = cache or RestorerCache()
    if model is not None:
        defaults["model.model"] = str(model)
    page = {key for key, _ in PAGE_KEYS} | {key.rsplit(".", 1)[-1] for key, _ in PAGE_KEYS}
    fixed = dict(fixed or {}, **{k: v for k, v in defaults.items() if k not in page})
    defaults = {k: v for k, v in defaults.items() if k in page}
    restore_config(**fixed, **defaults)  # a bad key or value fails now, not at the first request
    work_root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="authface-demo-"))
    handler = make_handler(cache, fixed, work_root)
    with gr.Blocks(title="AuthFace demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                uploads = gr.File(label="Photos (or aligned face crops)", file_count="multiple",
                                  file_types=["image"], type="filepath", elem_id="uploads")  # fmt: skip
                controls = _controls(defaults)
                run_button = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status")
                photos = gr.State([])

                @gr.render(inputs=[photos])
                def show_photos(items):
                    for item in items or []:
                        if item["error"]:
                            gr.Markdown(f"**{item['name']}**: failed: {item['error']}")
                        else:
                            gr.ImageSlider(value=(item["before"], item["after"]), format="png",
                                           label=f"{item['name']}: before | after", elem_classes="photo-slider")  # fmt: skip

                faces = gr.Gallery(label="Faces: before | after", columns=2, height="auto", preview=False,
                                   object_fit="contain", format="png", elem_id="faces")  # fmt: skip
                downloads = gr.File(label="Download: zip of results + manifest.jsonl", file_count="multiple",
                                    interactive=False, elem_id="downloads")  # fmt: skip
        run_button.click(handler, inputs=[uploads, *controls], outputs=[status, photos, faces, downloads],
                         concurrency_limit=1, concurrency_id="restore")  # fmt: skip
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.authface_work_dir = work_root
    return demo


def launch_demo(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
                prevent_thread_lock: bool = False):  # fmt: skip
    """Serve the page at ``http://host:port`` (``share``: also through a public gradio.live link); returns
    Gradio's ``(app, local_url, share_url)``. Blocks until the server stops unless ``prevent_thread_lock``.

    Raises:
        OSError: the port is taken.
    """
    work_dir = getattr(demo, "authface_work_dir", None)
    return demo.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=prevent_thread_lock,
        show_error=False, allowed_paths=[str(work_dir)] if work_dir else None, quiet=True,
    )  # fmt: skip
