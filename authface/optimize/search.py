"""Score-guided face optimisation under an identity constraint: CMA-ES over a latent offset, and gradient guidance.

The objective of a restored crop ``x`` of input ``y`` produced with latent offset ``z``::

    J(x) = score(x) - λ · max(0, τ - identity(x, y)) - μ · ‖z‖

``score`` is any scorer (``[0, 1]`` RGB ``(B, 3, H, W)`` -> ``(B,)``, e.g. :func:`~.scorer.load_scorer`),
``identity`` the cosine similarity of identity embeddings (default dlib's ResNet), ``τ`` the identity bound
(``identity_min``), ``λ`` its weight and ``μ`` the weight of the offset's RMS ``‖z‖`` (latent standard deviations).
The penalty is exactly zero while identity >= τ.

* **CMA-ES** (``cma`` package): ``z`` is a low-dimensional offset (``4 × g × g`` values, ``g = offset_grid``)
  upsampled bilinearly to the latent size and added to the pipeline's initial latents (the degraded crop's latent
  noised to the first step, or pure noise at strength 1), with the face's noise seed fixed. Each generation
  renders ``population`` candidates in one pipeline call. Works with any scorer, differentiable or not.
* **Gradient guidance**: the pipeline runs with ``ScoreGuidance(scorer, scale)`` (optionally with
  ``IdentityGuidance``) for each scale of ``gradient_scales``; the result with the best ``J`` is kept.

Every evaluation is appended to a JSONL trajectory (:func:`authface.io.append_jsonl`); a later run with the same
file replays it (CMA-ES state included, exactly) and continues where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .. import io
from ..config import ConfigError
from ..guidance import IdentityGuidance, ScoreGuidance

__all__ = ["OptimizeMethod", "OptimizeSettings", "Objective", "FaceSearch", "FaceResult", "ResumeError",
           "latent_offset", "require_cma"]  # fmt: skip

logger = logging.getLogger(__name__)

OptimizeMethod = Literal["cmaes", "gradient", "both"]
#: Settings that must match for a trajectory to be resumed (iterations and time limit may change).
_RESUME_KEYS = ("identity_min", "identity_weight", "offset_weight", "population", "sigma", "seed", "offset_grid")
#: callback(record) after every evaluation (records as written to the trajectory).
SearchCallback = Callable[[dict], None]


def require_cma():
    """The ``cma`` module; ImportError with the install command when it is missing."""
    try:
        import cma
    except ImportError:
        raise ImportError("CMA-ES needs the 'cma' package: pip install 'authface[optimize]' "
                          "(or use --method gradient)") from None  # fmt: skip
    return cma


class ResumeError(ValueError):
    """A trajectory file written with other settings than the run asked to continue it."""


@dataclass
class OptimizeSettings:
    """What ``authface optimize`` searches and for how long (a dataclass of :mod:`authface.config`)."""

    method: OptimizeMethod = "both"
    identity_min: float = 0.7
    """τ: identity similarity to the input below which the penalty starts (cosine, in [-1, 1])."""
    identity_weight: float = 10.0
    """λ: penalty per unit of identity below τ."""
    offset_weight: float = 0.05
    """μ: penalty per latent standard deviation of offset (RMS)."""
    iterations: int = 20
    """CMA-ES generations (per face)."""
    time_limit: float | None = None
    """Seconds per face; the search stops after the evaluation that passes it."""
    population: int | None = None
    """CMA-ES candidates per generation (None: cma's default 4 + 3 ln(dimension))."""
    sigma: float = 0.5
    """CMA-ES initial step size, in latent standard deviations."""
    seed: int = 0
    """Seeds the faces' noise and CMA-ES."""
    offset_grid: int = 4
    """The offset is 4 x g x g latent values (upsampled bilinearly): its dimension."""
    gradient_scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    """Normalised ScoreGuidance scales tried (latent std per step; see authface/guidance.py)."""
    gradient_window: list[float] = field(default_factory=lambda: [0.0, 1.0])
    gradient_identity_scale: float = 0.0
    """Add IdentityGuidance at this scale to each gradient run (0: identity enforced by selection only)."""

    def validate(self) -> None:
        if not -1.0 <= self.identity_min <= 1.0:
            raise ConfigError(f"identity_min must be a cosine similarity in [-1, 1], got {self.identity_min}")
        if self.identity_weight < 0 or self.offset_weight < 0 or self.gradient_identity_scale < 0:
            raise ConfigError("identity_weight, offset_weight and gradient_identity_scale must be >= 0")
        if self.iterations < 0 or (self.time_limit is not None and self.time_limit <= 0):
            raise ConfigError("iterations must be >= 0 and time_limit > 0 seconds")
        if self.population is not None and self.population < 2:
            raise ConfigError(f"population must be >= 2, got {self.population}")
        if self.sigma <= 0 or self.offset_grid < 1:
            raise ConfigError("sigma must be > 0 and offset_grid >= 1")
        if any(s < 0 for s in self.gradient_scales):
            raise ConfigError(f"gradient_scales must be >= 0, got {self.gradient_scales}")
        start, stop = self.gradient_window
        if not 0.0 <= start < stop <= 1.0:
            raise ConfigError(f"gradient_window needs 0 <= start < stop <= 1, got {self.gradient_window}")

    @property
    def dimension(self) -> int:
        return 4 * self.offset_grid**2


@dataclass(frozen=True)
class Objective:
    """``J = score - λ · max(0, τ - identity) - μ · offset_norm`` (see the module docstring)."""

    identity_min: float
    identity_weight: float = 10.0
    offset_weight: float = 0.05

    def penalty(self, identity: float) -> float:
        """``λ · max(0, τ - identity)``: exactly 0.0 when ``identity >= τ``."""
        return self.identity_weight * max(0.0, self.identity_min - float(identity))

    def __call__(self, score: float, identity: float, offset_norm: float = 0.0) -> float:
        return float(score) - self.penalty(identity) - self.offset_weight * float(offset_norm)


@contextlib.contextmanager
def latent_offset(pipe, offsets: torch.Tensor):
    """Within the block, ``pipe``'s initial latents of the i-th image of each call get ``offsets[i]`` added.

    ``offsets``: ``(N, C, h, w)`` latent offsets, N = the images of the call. Wraps the public
    ``pipe.prepare_latents(image, timesteps, generator, dtype, strength) -> (lq_latents, latents)`` on the
    instance, consuming offsets in order across the pipeline's batches; restores it on exit.
    """
    had_own = "prepare_latents" in vars(pipe)
    original = pipe.prepare_latents
    cursor = [0]

    def prepare_latents(image, *args, **kwargs):
        lq, latents = original(image, *args, **kwargs)
        b = latents.shape[0]
        off = offsets[cursor[0] : cursor[0] + b].to(device=latents.device, dtype=latents.dtype)
        cursor[0] += b
        return lq, latents + off

    pipe.prepare_latents = prepare_latents
    try:
        yield
    finally:
        if had_own:
            pipe.prepare_latents = original
        else:
            del pipe.prepare_latents


@dataclass
class FaceResult:
    """The outcome for one face: the best crop (uint8 RGB ``(S, S, 3)``), the baseline crop (no offset, no
    guidance) and their trajectory records (score, identity, penalty, offset_norm, objective...)."""

    best: np.ndarray
    baseline: np.ndarray
    best_record: dict
    baseline_record: dict
    records: list[dict]


class FaceSearch:
    """Optimise one aligned face crop (uint8 RGB ``(S, S, 3)``) with ``pipe`` for ``scorer`` under ``identity``.

    ``scorer``: ``[0, 1]`` RGB ``(B, 3, S, S)`` -> ``(B,)`` (an ``nn.Module`` for gradient guidance).
    ``identity``: ``embed([-1, 1] RGB (B, 3, S, S)) -> (B, D)`` unit embeddings (differentiable for
    ``gradient_identity_scale``). ``sample``: the pipeline's sampling keywords (``prompt``,
    ``num_inference_steps``, ``strength``, ``guidance_scale``...). ``face``: the face's index in its photo
    (trajectory records carry it). ``batch_size``: images per pipeline call.
    """

    def __init__(self, pipe, crop: np.ndarray, scorer, identity, settings: OptimizeSettings,
                 sample: dict[str, Any] | None = None, face: int = 0, batch_size: int = 16):  # fmt: skip
        settings.validate()
        self.pipe, self.crop, self.scorer, self.identity = pipe, crop, scorer, identity
        self.settings, self.sample, self.face, self.batch_size = settings, dict(sample or {}), face, batch_size
        self.objective = Objective(settings.identity_min, settings.identity_weight, settings.offset_weight)
        self.noise_seed = settings.seed * 1_000_003 + face
        self._where = "(no trajectory file)"
        self._kept: dict[int, tuple[dict, np.ndarray]] = {}  # id(record) -> (record, uint8 image) of this run
        self.device = getattr(pipe, "device", torch.device("cpu"))
        with torch.no_grad():
            self.reference = identity.embed(io.numpy_to_tensor(crop).to(self.device)).float()  # (1, D)
        s = crop.shape[0] // pipe.vae_scale_factor
        self.latent_shape = (pipe.vae.config.latent_channels, s, s)

    # ------------------------------------------------------------------ rendering and measuring
    def offset_latents(self, z: np.ndarray) -> torch.Tensor:
        """``(N, 4 g²)`` offsets -> ``(N, C, h, w)`` latent offsets (bilinear upsampling of a g x g grid)."""
        g = self.settings.offset_grid
        grid = torch.as_tensor(np.asarray(z, np.float32)).reshape(len(z), 4, g, g)
        c, h, w = self.latent_shape
        if c != 4:
            grid = grid.repeat(1, math.ceil(c / 4), 1, 1)[:, :c]
        return F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)

    def render(self, z: np.ndarray | None = None, objectives: list | None = None, n: int = 1) -> torch.Tensor:
        """Restore the crop ``len(z)`` (or ``n``) times with the face's fixed noise -> ``[-1, 1] (N, 3, S, S)``."""
        n = len(z) if z is not None else n
        gens = [torch.Generator("cpu").manual_seed(self.noise_seed) for _ in range(n)]
        kwargs = dict(self.sample, image=[self.crop] * n, generator=gens, output_type="pt", batch_size=self.batch_size)
        if objectives:
            kwargs["objectives"] = objectives
        ctx = latent_offset(self.pipe, self.offset_latents(z)) if z is not None else contextlib.nullcontext()
        with ctx:
            return self.pipe(**kwargs).images.float()

    @torch.no_grad()
    def measure(self, images: torch.Tensor, z: np.ndarray | None = None) -> list[dict]:
        """score, identity, penalty, offset_norm and objective of each image ``[-1, 1] (N, 3, S, S)``."""
        images = images.to(self.device)
        scores = self.scorer(((images + 1) / 2).clamp(0, 1)).reshape(len(images), -1).mean(-1)
        ids = (F.normalize(self.identity.embed(images).float(), dim=-1) * F.normalize(self.reference, dim=-1)).sum(-1)
        norms = np.sqrt(np.mean(np.square(z), axis=1)) if z is not None else np.zeros(len(images))
        out = []
        for score, ident, norm in zip(scores.tolist(), ids.tolist(), norms.tolist()):
            out.append({"score": score, "identity": ident, "penalty": self.objective.penalty(ident),
                        "offset_norm": norm, "objective": self.objective(score, ident, norm)})  # fmt: skip
        return out

    # ------------------------------------------------------------------ the search
    def run(self, trajectory: str | Path | None = None, callback: SearchCallback | None = None) -> FaceResult:
        """Baseline, then gradient guidance and/or CMA-ES as ``settings.method`` says, within the budgets.

        ``trajectory``: JSONL file; records of this face already there are replayed, not recomputed.
        Raises :class:`ResumeError` when they were written with other settings (see ``_RESUME_KEYS``).
        """
        s, t0 = self.settings, time.monotonic()
        self._where = str(trajectory or "(no trajectory file)")
        past = self._read(trajectory)
        self._log(trajectory, [{"kind": "run", "face": self.face, "settings": asdict(s), "sample": self.sample}])

        def emit(rec: dict) -> dict:
            rec = {"kind": "eval", "face": self.face, **rec, "elapsed_s": round(time.monotonic() - t0, 3)}
            self._log(trajectory, [rec])
            if callback:
                callback(rec)
            return rec

        self._kept = {}
        base = past.get(("baseline", 0))
        if base is None:
            image = self.render()
            base = self._keep(emit({"method": "baseline", "iteration": 0, **self.measure(image)[0]}), image)
        records = [base]
        if s.method in ("gradient", "both"):
            records += self._gradient(past, emit, t0)
        if s.method in ("cmaes", "both"):
            records += self._cmaes(past, emit, t0)
        best = max(records, key=lambda r: r["objective"])
        return FaceResult(self._image(best), self._image(base), best, base, records)

    def _over_budget(self, t0: float) -> bool:
        return self.settings.time_limit is not None and time.monotonic() - t0 >= self.settings.time_limit

    def _gradient_objectives(self, scale: float) -> list:
        start, stop = self.settings.gradient_window
        objs = [ScoreGuidance(self.scorer, scale, start=start, stop=stop)]
        if self.settings.gradient_identity_scale > 0:
            objs.append(IdentityGuidance(self.identity, self.settings.gradient_identity_scale,
                                         reference=self.reference[0], start=start, stop=stop))  # fmt: skip
        return objs

    def _gradient(self, past: dict, emit, t0: float) -> list[dict]:
        out = []
        for i, scale in enumerate(self.settings.gradient_scales, start=1):
            rec = past.get(("gradient", i))
            if rec is None or rec.get("scale") != scale:
                if self._over_budget(t0):
                    break
                image = self.render(objectives=self._gradient_objectives(scale)) if scale > 0 else self.render()
                rec = emit({"method": "gradient", "iteration": i, "scale": scale, **self.measure(image)[0]})
                self._keep(rec, image)
            out.append(rec)
        return out

    def _cmaes(self, past: dict, emit, t0: float) -> list[dict]:
        cma = require_cma()
        s, d = self.settings, self.settings.dimension
        rng = np.random.default_rng(s.seed)
        opts = {"seed": s.seed + 1, "verbose": -9, "randn": lambda *shape: rng.standard_normal(shape)}
        if s.population:
            opts["popsize"] = s.population
        es = cma.CMAEvolutionStrategy(np.zeros(d), s.sigma, opts)
        out, it = [], 0
        while (rec := past.get(("cmaes", it + 1))) is not None:  # replay: same asks, the recorded fitnesses
            it += 1
            xs = np.asarray([c["x"] for c in rec["candidates"]])
            asked = np.asarray(es.ask())
            if asked.shape == xs.shape and np.allclose(asked, xs, rtol=0, atol=1e-9):
                xs = asked  # the very arrays asked for: CMA-ES state identical to an uninterrupted run
            else:
                logger.warning("%s: CMA-ES iteration %d differs from a fresh draw (another cma version?); "
                               "continuing from the recorded candidates", self._where, it)
            es.tell(list(xs), [-c["objective"] for c in rec["candidates"]])
            out.append(rec)
        while it < s.iterations and not self._over_budget(t0):
            it += 1
            xs = np.asarray(es.ask())
            images = self.render(xs)
            cands = self.measure(images, xs)
            es.tell(list(xs), [-c["objective"] for c in cands])
            for c, x in zip(cands, xs):
                c["x"] = [float(v) for v in x]  # full precision: the replay is exact
            k = int(np.argmax([c["objective"] for c in cands]))
            top = cands[k]
            summary = {key: v for key, v in top.items() if key != "x"}
            rec = emit({"method": "cmaes", "iteration": it, **summary, "x": top["x"], "sigma": float(es.sigma),
                        "candidates": cands})  # fmt: skip
            out.append(self._keep(rec, images[k : k + 1]))
        return out

    def _keep(self, rec: dict, image: torch.Tensor) -> dict:
        """Hold the image of ``rec`` ([-1, 1] (1, 3, S, S)) if it is the baseline or the best so far."""
        if rec["method"] == "baseline" or rec["objective"] > max(
            (r["objective"] for r, _ in self._kept.values() if r["method"] != "baseline"), default=-math.inf
        ):
            self._kept = {k: v for k, v in self._kept.items() if v[0]["method"] == "baseline"}
            self._kept[id(rec)] = (rec, io.tensor_to_numpy(image[:1])[0])
        return rec

    def _image(self, rec: dict) -> np.ndarray:
        """The uint8 image of ``rec``: held from this run, or re-rendered (same noise, offset or scale)."""
        if id(rec) in self._kept:
            return self._kept[id(rec)][1]
        if rec["method"] == "cmaes":
            image = self.render(np.asarray([rec["x"]], np.float32))
        elif rec["method"] == "gradient" and rec.get("scale", 0) > 0:
            image = self.render(objectives=self._gradient_objectives(rec["scale"]))
        else:
            image = self.render()
        return io.tensor_to_numpy(image)[0]

    # ------------------------------------------------------------------ the trajectory file
    def _log(self, path, records: list[dict]) -> None:
        if path is not None:
            io.append_jsonl(path, records)

    def _read(self, path) -> dict[tuple[str, int], dict]:
        """(method, iteration) -> record of this face from an earlier run; checks its settings first."""
        if path is None or not Path(path).is_file():
            return {}
        io.repair_jsonl_tail(path)
        past: dict[tuple[str, int], dict] = {}
        mine = {k: getattr(self.settings, k) for k in _RESUME_KEYS}
        for line in io.read_jsonl(path):
            rec = line.record
            if rec is None:
                logger.warning("%s: %s; line ignored", line.where, line.error)
                continue
            if rec.get("face") != self.face:
                continue
            if rec.get("kind") == "run":
                theirs = {k: rec.get("settings", {}).get(k) for k in _RESUME_KEYS}
                diff = [f"{k}={theirs[k]!r} (now {mine[k]!r})" for k in _RESUME_KEYS if theirs[k] != mine[k]]
                if diff or rec.get("sample") != self.sample:
                    what = ", ".join(diff) or "the sampling settings"
                    raise ResumeError(f"{line.where}: the trajectory was written with {what}; use the same "
                                      "settings to continue it, or another output folder")  # fmt: skip
            elif rec.get("kind") == "eval":
                past[(rec.get("method"), int(rec.get("iteration", -1)))] = rec
        return past
