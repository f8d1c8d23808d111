"""Guidance during sampling: differentiable objectives on the predicted clean image steer each step.

The sampler loop knows only :func:`apply_guidance`; which objectives run is the caller's business (k-diffusion's
"guidance wraps the model" shape). A guidance object is a scale, an active window over the diffusion time
(``start``/``stop`` as fractions of the steps run), an ``every``-k-steps option, a space (the latent itself, or
pixels decoded by the VAE or by a cheaper decoder, optionally at reduced resolution), and an objective J to
maximise, one value per image. Pass them to the pipeline as ``pipe(..., objectives=[...])`` (``guidance_scale`` is
classifier-free guidance, a different thing); each result's records come back as ``out.objective_log`` and
``out.objective_final``.

**The correction.** With ε held constant, ``x0 = (x_t - sqrt(1-ā) ε) / sqrt(ā)``, so changing ε by ``-c`` moves
the predicted clean latent by ``+σ_t c`` with ``σ_t = sqrt((1-ā)/ā)``. Two documented forms:

- ``normalize=False`` — classifier guidance: ``ε' = ε - s · sqrt(1-ā) · ∇_{x_t} J = ε - s · σ_t · ∇_{x0} J``.
- ``normalize=True`` (default) — the same direction with a scale that means the same thing for every objective:
  the gradient is divided by its per-image RMS, and ``ε' = ε - (s / σ_t) · ĝ``, i.e. each active step moves the
  predicted clean latent by ``s`` latent standard deviations along ``ĝ``. Scales then compare across identity,
  quality, fidelity and any scorer, whose raw gradient magnitudes differ by orders of magnitude.

Both hold for VP samplers (DDIM, DPM-Solver++, UniPC) and sigma-space samplers (Euler, Heun: their sample is
brought to VP scale with ``scheduler.scale_model_input``). v-prediction models (SD 2.x 768-v) are corrected in v
directly: holding x_t, moving x̂0 by δ moves ε by ``-δ/σ_t`` and v by ``-δ/sqrt(1-ā)``, and x̂0 is
``sqrt(ā) x_t - sqrt(1-ā) v``; neither divides by sqrt(ā), so zero-terminal-SNR schedules
(``rescale_betas_zero_snr``, ā ≈ 0 at the first step) stay finite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import FidelitySpace, GuidanceDecoder, choices
from .imaging import gaussian_blur

#: Decoders pixel-space objectives may decode through (``authface.config.GuidanceDecoder``).
DECODERS = choices(GuidanceDecoder)


@dataclass
class GuidanceContext:
    """What a guidance objective may look at, for one batch of faces at one step."""

    step_index: int
    num_steps: int
    timestep: torch.Tensor
    lq_image: torch.Tensor
    """The degraded input crops, [-1, 1] RGB (B, 3, H, W)."""
    decoders: dict[str, Callable[[torch.Tensor], torch.Tensor]]
    """name -> differentiable decoder: scaled latents (B, 4, h, w) -> [-1, 1] RGB (B, 3, H, W)."""
    cache: dict = field(default_factory=dict)
    """Per-batch memo shared across steps (the input's latents, the reference embedding of the input faces...)."""
    encode_lq: Callable[[], torch.Tensor] | None = None
    """Computes the input's latents on first use (only latent-space objectives need them)."""
    clamp: bool = False
    """Clamp decoded images to [-1, 1] (set when measuring the final result, as delivered)."""
    _decoded: dict = field(default_factory=dict)

    @property
    def lq_latents(self) -> torch.Tensor | None:
        """The input's VAE latents (B, 4, H/8, W/8), scaled by vae.config.scaling_factor (computed once)."""
        if "lq_latents" not in self.cache and self.encode_lq is not None:
            with torch.no_grad():
                self.cache["lq_latents"] = self.encode_lq()
        return self.cache.get("lq_latents")

    def decode(self, x0_latent: torch.Tensor, decoder: str = "vae", resolution: int | None = None) -> torch.Tensor:
        """Decode once per (decoder, resolution) per step; differentiable w.r.t. ``x0_latent``."""
        key = (decoder, resolution, id(x0_latent))
        if key not in self._decoded:
            if decoder not in self.decoders:
                raise ValueError(
                    f"guidance decoder {decoder!r} is not available (have: {', '.join(self.decoders)}); "
                    f"the 'tiny' decoder needs pipe.guidance_decoder (e.g. an AutoencoderTiny such as madebyollin/taesd)"
                )
            latent = x0_latent
            if resolution is not None:  # decode a smaller latent: cost falls with the square of the factor
                h = max(1, round(resolution / (self.lq_image.shape[-1] / x0_latent.shape[-1])))
                if h != x0_latent.shape[-1]:
                    latent = F.interpolate(x0_latent, size=(h, h), mode="bilinear", align_corners=False, antialias=True)
            image = self.decoders[decoder](latent).float()
            self._decoded[key] = image.clamp(-1, 1) if self.clamp else image
        return self._decoded[key]

    def lq_at(self, size: int) -> torch.Tensor:
        """The degraded crops at ``size`` (antialiased), [-1, 1] RGB (B, 3, size, size)."""
        if self.lq_image.shape[-1] == size:
            return self.lq_image
        return F.interpolate(self.lq_image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class Guidance:
    """Base class. Subclasses set ``name`` and ``space`` and implement :meth:`objective` (higher is better).

    space "latent": the objective sees the predicted clean latent only.
    space "pixel": it also gets the decoded image ([-1, 1] RGB (B, 3, H, W)) from ``decoder`` ("vae" or "tiny"),
    decoded from a latent resized so that the image is ``resolution`` pixels wide (None = full size).
    """

    name = "guidance"
    space = "pixel"

    def __init__(
        self,
        scale: float,
        start: float = 0.0,
        stop: float = 1.0,
        every: int = 1,
        decoder: str = "vae",
        resolution: int | None = None,
        normalize: bool = True,
    ):
        if scale < 0:
            raise ValueError(f"{self.name}: scale must be >= 0, got {scale}")
        if not 0.0 <= start < stop <= 1.0:
            raise ValueError(f"{self.name}: need 0 <= start < stop <= 1, got start={start}, stop={stop}")
        if every < 1:
            raise ValueError(f"{self.name}: every must be >= 1, got {every}")
        if decoder not in DECODERS:
            raise ValueError(f"{self.name}: decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        if resolution is not None and resolution < 8:
            raise ValueError(f"{self.name}: resolution must be >= 8 pixels or None, got {resolution}")
        self.scale, self.start, self.stop, self.every = float(scale), float(start), float(stop), int(every)
        self.decoder, self.resolution, self.normalize = decoder, resolution, normalize

    def is_active(self, step_index: int, num_steps: int) -> bool:
        """Active on steps whose fraction i/n lies in [start, stop), counting every ``every``-th from the first."""
        if self.scale == 0.0:
            return False
        first = _first_step(self.start, num_steps)
        frac = step_index / num_steps
        return self.start <= frac < self.stop and (step_index - first) % self.every == 0

    def objective(self, x0_latent: torch.Tensor, image: torch.Tensor | None, ctx: GuidanceContext) -> torch.Tensor:
        """(B,) values to maximise. ``image`` is the decoded prediction for pixel-space guidance, else None."""
        raise NotImplementedError

    def evaluate(self, x0_latent: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        image = ctx.decode(x0_latent, self.decoder, self.resolution) if self.space == "pixel" else None
        return self.objective(x0_latent, image, ctx)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(scale={self.scale}, start={self.start}, stop={self.stop}, every={self.every}, "
                f"decoder={self.decoder!r}, resolution={self.resolution})")  # fmt: skip


def _first_step(start: float, num_steps: int) -> int:
    i = 0
    while i / num_steps < start:
        i += 1
    return i


# --------------------------------------------------------------------------------------------- concrete guidance
class IdentityGuidance(Guidance):
    """Keep the person: cosine similarity between the face embedding of the prediction and a reference.

    ``encoder``: an :class:`authface.models.identity.IdentityEncoder` with ``differentiable=True`` (the default
    dlib ResNet, ArcFace IResNet or a converted insightface ONNX recogniser); it warps the FFHQ crop to its own
    template (dlib's 150² chip, ArcFace's 112²).
    ``reference``: (D,) or (B, D) unit embeddings (e.g. averaged over reference photos of the same person);
    None uses each input face itself.
    """

    name = "identity"
    space = "pixel"

    def __init__(self, encoder, scale: float, reference: torch.Tensor | None = None, **kw):
        super().__init__(scale, **kw)
        if not getattr(encoder, "differentiable", False):
            raise ValueError(
                f"identity guidance needs a differentiable encoder; {encoder.name!r} is not (use the default "
                "dlib-resnet, or arcface)"
            )
        self.encoder = encoder
        self.reference = None if reference is None else F.normalize(reference.float(), dim=-1)

    def _reference(self, ctx: GuidanceContext, like: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            return self.reference.to(like.device)
        if "identity_reference" not in ctx.cache:
            with torch.no_grad():
                ctx.cache["identity_reference"] = self.encoder.embed(ctx.lq_image.float()).detach()
        return ctx.cache["identity_reference"]

    def objective(self, x0_latent, image, ctx):
        emb = self.encoder.embed(image)  # (B, D), unit norm
        ref = self._reference(ctx, emb)
        return (emb * ref.expand_as(emb)).sum(-1)


class QualityGuidance(Guidance):
    """Raise a differentiable no-reference quality score (``authface.models.quality``), normalised to [0, 1]."""

    name = "quality"
    space = "pixel"

    def __init__(self, scorer, scale: float, **kw):
        super().__init__(scale, **kw)
        if not getattr(scorer, "differentiable", False):
            raise ValueError(f"quality guidance needs a differentiable scorer; {scorer.name!r} is not")
        self.scorer = scorer

    def objective(self, x0_latent, image, ctx):
        return self.scorer(((image + 1) / 2).clamp(0, 1))


class FidelityGuidance(Guidance):
    """Stay close to the degraded input where it is trustworthy (DiffBIR-style restoration guidance).

    space "latent" (default, nearly free): minus the mean squared distance between the predicted clean latent
    and the input's latent, both low-passed by ``blur`` latent pixels of average pooling.
    space "pixel": minus the MSE between the decoded prediction and the input, both low-passed (Gaussian, σ =
    ``sigma`` pixels at the working resolution) — keeps colours and layout, leaves detail to the prior.
    """

    name = "fidelity"

    def __init__(self, scale: float, space: str = "latent", blur: int = 2, sigma: float = 4.0, **kw):
        super().__init__(scale, **kw)
        if space not in choices(FidelitySpace):
            raise ValueError(f"fidelity: space must be one of {', '.join(choices(FidelitySpace))}, got {space!r}")
        self.space, self.blur, self.sigma = space, int(blur), float(sigma)

    def objective(self, x0_latent, image, ctx):
        if self.space == "latent":
            if ctx.lq_latents is None:
                raise ValueError("fidelity guidance in latent space needs the input's latents")
            k = max(1, self.blur)
            a = F.avg_pool2d(x0_latent, k, ceil_mode=True)
            b = F.avg_pool2d(ctx.lq_latents.float(), k, ceil_mode=True)
        else:
            a = gaussian_blur(image, self.sigma)
            b = gaussian_blur(ctx.lq_at(image.shape[-1]).float(), self.sigma)
        return -((a - b) ** 2).mean(dim=(1, 2, 3))


class ScoreGuidance(Guidance):
    """Steer by any regressor ``module``: image in [0, 1] RGB (B, 3, H, W) -> score (B,) or (B, 1), maximised
    (``maximize=False`` minimises). ``input_size`` resizes the decoded image for the module (e.g. 224)."""

    name = "score"
    space = "pixel"

    def __init__(self, module: torch.nn.Module, scale: float, maximize: bool = True, input_size: int | None = None,
                 name: str | None = None, **kw):  # fmt: skip
        super().__init__(scale, **kw)
        self.module, self.sign, self.input_size = module, (1.0 if maximize else -1.0), input_size
        if name:
            self.name = name

    def objective(self, x0_latent, image, ctx):
        x = ((image + 1) / 2).clamp(0, 1)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
        out = self.module(x)
        return self.sign * out.reshape(out.shape[0], -1).mean(-1)


# --------------------------------------------------------------------------------------------- the hook
def _alpha_bar(scheduler, timestep, like: torch.Tensor) -> torch.Tensor:
    ac = scheduler.alphas_cumprod.to(device=like.device, dtype=torch.float32)
    t = int(timestep.item()) if torch.is_tensor(timestep) else int(timestep)
    return ac[min(max(t, 0), len(ac) - 1)]


def _eps_and_x0(scheduler, latents, model_output, timestep):
    """(ε, x0, x_vp, ā) from the scheduler's sample and the model output (ε or v prediction)."""
    pred_type = getattr(scheduler.config, "prediction_type", "epsilon")
    a = _alpha_bar(scheduler, timestep, latents)
    x_vp = scheduler.scale_model_input(latents, timestep).float()  # sigma-space samplers -> VP scale
    out = model_output.float()
    if pred_type == "v_prediction":  # x0 directly: no division by sqrt(ā), which is ~0 at zero terminal SNR
        eps = a.sqrt() * out + (1 - a).sqrt() * x_vp
        x0 = a.sqrt() * x_vp - (1 - a).sqrt() * out
    elif pred_type == "epsilon":
        eps = out
        x0 = (x_vp - (1 - a).sqrt() * eps) / a.sqrt()
    else:
        raise ValueError(f"guidance supports epsilon and v_prediction models, not {pred_type!r}")
    return eps, x0, x_vp, a


def predicted_clean_latent(scheduler, latents, model_output, timestep) -> torch.Tensor:
    """The predicted clean latent x0 (B, 4, h, w) for any supported scheduler and prediction type."""
    return _eps_and_x0(scheduler, latents, model_output, timestep)[1]


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=tuple(range(1, x.ndim)), keepdim=True).sqrt().clamp_min(1e-12)


def apply_guidance(
    guidances: Sequence[Guidance],
    scheduler,
    latents: torch.Tensor,
    model_output: torch.Tensor,
    ctx: GuidanceContext,
) -> tuple[torch.Tensor, list[dict]]:
    """Return the guided model output and one record per active guidance: {name, step, t, values}.

    ``latents``: the scheduler's current sample (B, 4, h, w); ``model_output``: the (CFG-combined) UNet output.
    Cost: one decode per (decoder, resolution) in use, a backward through each objective's own network to its
    input, and ONE backward through each decoder for all pixel-space objectives together (their image-space
    gradients are combined first: the decoder's backward is linear in its output gradient). With ``normalize``
    each objective's gradient is made unit-RMS where it is taken (image or latent), and the decoder's backward
    is rescaled to the RMS of the combined image-space gradient, so a lone guidance moves x̂0 by exactly ``scale``
    latent standard deviations. Nothing keeps a graph across steps: x̂0 is detached and only the correction
    leaves this function.
    """
    active = [g for g in guidances if g.is_active(ctx.step_index, ctx.num_steps)]
    if not active:
        return model_output, []
    eps, x0, x_vp, a = _eps_and_x0(scheduler, latents, model_output, ctx.timestep)
    sigma = ((1 - a) / a).sqrt()
    x0 = x0.detach().requires_grad_(True)
    ctx._decoded.clear()
    records = []
    step_norm = torch.zeros_like(x0)  # normalised steps on x̂0, in latent standard deviations
    grad_raw = torch.zeros_like(x0)  # raw scale-weighted gradients ∇x̂0 J (classifier guidance)
    with torch.enable_grad():
        evaluated = []
        for g in active:
            image = ctx.decode(x0, g.decoder, g.resolution) if g.space == "pixel" else None
            evaluated.append((g, g.objective(x0, image, ctx), image))  # value (B,)
        groups: dict[tuple[int, bool], list] = {}  # (decoded image, normalize) -> [image, combined gradient]
        for g, value, image in evaluated:
            wrt = x0 if image is None else image
            (grad,) = torch.autograd.grad(value.sum(), wrt, retain_graph=True, allow_unused=True)
            grad = torch.zeros_like(wrt) if grad is None else grad
            grad = g.scale * (grad / _rms(grad) if g.normalize else grad)
            if image is None:
                if g.normalize:
                    step_norm += grad
                else:
                    grad_raw += grad
            else:
                entry = groups.setdefault((id(image), g.normalize), [image, torch.zeros_like(image)])
                entry[1] += grad
            records.append({"name": g.name, "step": ctx.step_index, "t": int(ctx.timestep),
                            "values": [float(x) for x in value.detach().float().cpu()]})  # fmt: skip
        for (_, normalize), (image, combined) in groups.items():
            (latent_grad,) = torch.autograd.grad(image, x0, grad_outputs=combined, retain_graph=True)
            if normalize:
                step_norm += latent_grad / _rms(latent_grad) * _rms(combined)
            else:
                grad_raw += latent_grad
    ctx._decoded.clear()
    delta = step_norm  # the move of x̂0 (x_t held): ε moves by -delta/σ, v by -delta/sqrt(1-ā)
    if grad_raw.any():  # (σ is infinite where ā = 0, the first step of a zero-terminal-SNR schedule: 0 · inf = NaN)
        delta = delta + sigma**2 * grad_raw
    if getattr(scheduler.config, "prediction_type", "epsilon") == "v_prediction":
        out = model_output.float() - delta / (1 - a).sqrt()
    else:
        out = eps - delta / sigma
    return out.to(model_output.dtype), records


@torch.no_grad()
def final_values(
    guidances: Sequence[Guidance], latents: torch.Tensor, ctx: GuidanceContext, decoded: torch.Tensor | None = None
) -> dict[str, list[float]]:
    """Each guidance's objective on the final clean latents (B, 4, h, w), decoded and clamped as delivered
    (before any colour fix): name -> per-image values. ``decoded``: the pipeline's own full-VAE decode of
    ``latents``, reused instead of decoding again."""
    out = {}
    x = latents.float()
    ctx.clamp = True
    ctx._decoded.clear()
    if decoded is not None:
        ctx._decoded[("vae", None, id(x))] = decoded.float().clamp(-1, 1)
    for g in guidances:
        out[g.name] = [float(v) for v in g.evaluate(x, ctx).float().cpu()]
    ctx._decoded.clear()
    return out
