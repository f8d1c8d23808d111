"""``authface optimize IMAGE... -o OUT --scorer DIR --identity-min 0.7``: raise a learned score of each face while
keeping the person recognisable (CMA-ES over a latent offset and/or gradient guidance).

The library side is :mod:`authface.optimize` (search, whole photos, outputs). Per input ``x``, OUT holds
``x.png`` (the best image; its sidecar ``x.json`` and, where supported, a PNG text chunk say it was optimised, with
which scorer, method and identity bound), ``x.trajectory.jsonl`` (every evaluation; a rerun continues it),
``x.tradeoff.png`` and ``x.side_by_side.png``. Exit codes: 0 success, 1 when some input failed (each named on
stderr), 2 for usage and config errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .progress import Progress

PROG = "authface optimize"

# flag -> (OptimizeSettings key, argparse kwargs)
_SEARCH_FLAGS: dict[str, tuple[str, dict]] = {
    "--identity-min": ("identity_min", dict(type=float, help="identity bound τ (cosine similarity; default 0.7)")),
    "--identity-weight": ("identity_weight", dict(type=float, help="λ: penalty per unit below τ (default 10)")),
    "--offset-weight": ("offset_weight", dict(type=float, help="μ: penalty per latent std of offset (default 0.05)")),
    "--method": ("method", dict(choices=("cmaes", "gradient", "both"), help="default both")),
    "--iterations": ("iterations", dict(type=int, help="CMA-ES generations per face (default 20)")),
    "--time-limit": ("time_limit", dict(type=float, metavar="S", help="seconds per face (default: none)")),
    "--population": ("population", dict(type=int, help="CMA-ES candidates per generation (default 4+3 ln d)")),
    "--sigma": ("sigma", dict(type=float, help="CMA-ES initial step, latent std (default 0.5)")),
    "--seed": ("seed", dict(type=int, help="noise and CMA-ES seed (default 0)")),
    "--offset-grid": ("offset_grid", dict(type=int, help="offset dimension is 4 x g x g (default g=4)")),
}  # fmt: skip
# flag -> (restore option, argparse kwargs): how faces are found and sampled
_RESTORE_FLAGS: dict[str, tuple[str, dict]] = {
    "--controlnet": ("controlnet", dict(help="ControlNet (default: the model folder's own)")),
    "--device": ("device", dict(help="auto | cpu | cuda | cuda:N | mps")),
    "--steps": ("steps", dict(type=int, help="sampling steps (default 20)")),
    "--strength": ("strength", dict(type=float, help="(0, 1]; 1.0 starts from pure noise (default 0.7)")),
    "--cfg-scale": ("cfg_scale", dict(type=float, help="classifier-free guidance scale (default 4)")),
    "--crop-size": ("crop_size", dict(type=int, help="aligned crop size (default 512)")),
    "--detector": ("detector", dict(help="dlib | dlib-mmod | yunet | insightface")),
}  # fmt: skip


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``authface optimize`` (``func=run``)."""
    p = subparsers.add_parser(
        "optimize", help="raise a learned score of each face under an identity constraint",
        description=(
            "Maximise score - λ·max(0, τ - identity) - μ·‖offset‖ for every face of each image: CMA-ES over a "
            "low-dimensional offset of the initial latents, and/or gradient guidance by the scorer (docs/optimize.md). "
            "This changes a person's appearance: every output records that it was optimised, and how."
        ),
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="photos, aligned crops (--aligned), folders or globs")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created)")
    p.add_argument("--scorer", required=True, metavar="DIR", help="scorer folder from `authface train-scorer`")
    p.add_argument("--model", default=None, help="AuthFace model folder, or base model hub id / folder / file")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops (no detection)")
    p.add_argument("--identity-model", default=None,
                   help="identity model of the constraint: dlib-resnet (default) | arcface:PATH | arcface-onnx:PATH")
    p.add_argument("--scales", default=None, metavar="S1,S2,...", help="gradient guidance scales (default 0.25,0.5,1,2)")
    for flag, (_, kwargs) in {**_SEARCH_FLAGS, **_RESTORE_FLAGS}.items():
        p.add_argument(flag, dest=flag[2:].replace("-", "_"), default=None, **kwargs)
    p.add_argument("--config", help="YAML file of optimize settings (authface.optimize.OptimizeSettings keys)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any OptimizeSettings key, e.g. --set gradient_identity_scale=0.5 (repeatable)")  # fmt: skip
    p.set_defaults(func=run)
    return p


def _settings(args):
    from ..config import load_config
    from ..optimize.search import OptimizeSettings

    over = [f"{key}={getattr(args, f[2:].replace('-', '_'))}" for f, (key, _) in _SEARCH_FLAGS.items()
            if getattr(args, f[2:].replace("-", "_")) is not None]  # fmt: skip
    if args.scales:
        over.append(f"gradient_scales=[{args.scales}]")
    return load_config(OptimizeSettings, args.config, over + list(args.overrides))


def _restorer(args):
    from ..restorer import FaceRestorer

    options = {key: getattr(args, f[2:].replace("-", "_")) for f, (key, _) in _RESTORE_FLAGS.items()}
    options = {k: v for k, v in options.items() if v is not None}
    restorer = FaceRestorer.from_pretrained(args.model, aligned=args.aligned, **options)
    restorer.pipeline.set_progress_bar_config(disable=True)
    return restorer


def _sample(cfg) -> dict:
    s = cfg.sampler
    sample = {"prompt": s.prompt, "negative_prompt": s.negative_prompt, "num_inference_steps": s.steps,
              "strength": s.strength, "guidance_scale": s.cfg_scale, "controlnet_conditioning_scale": s.controlnet_scale,
              "color_fix": s.color_fix}  # fmt: skip
    if s.quality_target is not None:
        sample["quality_target"] = s.quality_target
    return sample


def _face_summary(i: int, face) -> dict:
    keep = ("method", "iteration", "scale", "score", "identity", "penalty", "offset_norm", "objective")
    pick = lambda rec: {k: rec[k] for k in keep if k in rec}  # noqa: E731
    return {"index": i, "baseline": pick(face.baseline_record), "best": pick(face.best_record)}


def _write_outputs(base: Path, src: Path, rgb, photo, meta: dict, settings, bar: Progress) -> None:
    import numpy as np

    from .. import io
    from ..optimize.report import side_by_side, write_best_image, write_tradeoff_plot

    write_best_image(base.with_name(base.name + ".png"), photo.image, meta)
    rows = [side_by_side([a.crop, f.baseline, f.best], height=256) for a, f in zip(photo.aligned, photo.faces)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    io.write_image(base.with_name(base.name + ".side_by_side.png"), np.concatenate(rows)[:-8])
    records = [r for f in photo.faces for r in f.records]
    best = photo.faces[0].best_record
    note = write_tradeoff_plot(base.with_name(base.name + ".tradeoff.png"), records, settings.identity_min, best,
                               title=f"{src.name}: score vs identity")  # fmt: skip
    if note:
        bar.write(f"{PROG}: {note}")


def run(args: argparse.Namespace) -> int:
    """Optimise every input; returns the exit code."""
    from .. import io
    from ..config import ConfigError, to_dict
    from ..models.loading import ModelNotFoundError
    from ..optimize.backbones import DEFAULT_IDENTITY_MODEL, load_identity_model
    from ..optimize.photo import optimize_photo
    from ..optimize.report import metadata_record
    from ..optimize.scorer import load_scorer
    from ..optimize.search import FaceSearch, require_cma

    out_dir = Path(args.output).expanduser().resolve()
    try:
        settings = _settings(args)
        if settings.method != "gradient":
            require_cma()
        inputs = io.discover_inputs(args.inputs, exclude=[out_dir])
        restorer = _restorer(args)
        device = restorer.pipeline.device
        scorer = load_scorer(args.scorer, device=device)
        id_name = args.identity_model or DEFAULT_IDENTITY_MODEL
        identity = load_identity_model(id_name, device=device)
    except (ConfigError, FileNotFoundError, ModelNotFoundError, ValueError, ImportError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    sample, cfg = _sample(restorer.config), restorer.config
    scorer_info = {"folder": str(Path(args.scorer).resolve()), **{k: scorer.config.get(k) for k in
                   ("backbone", "metrics", "source", "rating_range")}}  # fmt: skip
    per_face = 1 + (len(settings.gradient_scales) if settings.method != "cmaes" else 0) + \
        (settings.iterations if settings.method != "gradient" else 0)  # fmt: skip
    bar = Progress(len(inputs) * per_face, "optimizing", unit="eval", interval=10.0)

    def on_eval(rec: dict) -> None:
        bar.set_postfix(score=rec["score"], identity=rec["identity"], objective=rec["objective"])
        bar.update()

    failed = 0
    for src, rel in inputs:
        base = out_dir / rel.with_suffix("")
        make = lambda crop, i: FaceSearch(restorer.pipeline, crop, scorer, identity, settings, sample, face=i)  # noqa: E731
        try:
            rgb = io.read_image(src, max_pixels=cfg.io.max_pixels).rgb
            photo = optimize_photo(rgb, restorer.stage, make, base.with_name(base.name + ".trajectory.jsonl"), on_eval)
            faces = [_face_summary(i, f) for i, f in enumerate(photo.faces)]
            meta = metadata_record(str(src), scorer_info, settings.method, id_name, to_dict(settings), faces,
                                   model=cfg.model.model)  # fmt: skip
            _write_outputs(base, src, rgb, photo, meta, settings, bar)
        except Exception as exc:  # noqa: BLE001 - one input's failure never stops the others
            bar.write(f"{PROG}: FAILED {src}: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        for f in faces:
            b, o = f["baseline"], f["best"]
            bar.write(f"{PROG}: {rel} face {f['index']}: score {b['score']:.4g} -> {o['score']:.4g}, identity "
                      f"{o['identity']:.3f} (bound {settings.identity_min:g}), chosen: {o['method']}")  # fmt: skip
    bar.close()
    print(f"{PROG}: {len(inputs) - failed} done, {failed} failed -> {out_dir} (outputs are marked as optimised "
          "in their metadata)", file=sys.stderr)  # fmt: skip
    return 1 if failed else 0
