"""Guidance during sampling: differentiable objectives on the predicted clean latent steer each step.

The sampler loop knows only :func:`apply_guidance`; which objectives run is the caller's business (k-diffusion's
"guidance wraps the model" shape). A guidance object is a scale, an active window over the diffusion time
(``start``/``stop`` as fractions of the steps run), an ``every``-k-steps option, and an objective to maximise.

The correction is classifier guidance on the noise prediction. With ``x0 = (x_t - sqrt(1-ā) ε) / sqrt(ā)`` and ε
held constant, ``∇_{x_t} J = ∇_{x0} J / sqrt(ā)``, so ``ε' = ε - sqrt(1-ā) · s · ∇_{x_t} J = ε - s · σ_t · ∇_{x0} J``
with ``σ_t = sqrt((1-ā)/ā)``. The same expression holds for sigma-space samplers (Euler, Heun: ``x0 = x - σ ε``),
so one form serves every diffusers scheduler; v-prediction models are converted to ε and back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class GuidanceContext:
    """What a guidance objective may look at, for one batch of faces at one step."""

    step_index: int
    num_steps: int
    timestep: torch.Tensor
    lq_image: torch.Tensor
    """The degraded input crops, [-1, 1] RGB (B, 3, H, W)."""
    lq_latents: torch.Tensor | None
    """Their VAE latents (B, 4, H/8, W/8), scaled by vae.config.scaling_factor (None when not computed)."""
    decode: Callable[[torch.Tensor], torch.Tensor]
    """Differentiable decoder: scaled latents (B, 4, h, w) -> [-1, 1] RGB (B, 3, H, W)."""
    extra: dict = field(default_factory=dict)


class Guidance:
    """Base class: subclasses implement :meth:`objective` (higher is better, shape (B,))."""

    name = "guidance"

    def __init__(self, scale: float, start: float = 0.0, stop: float = 1.0, every: int = 1):
        if scale < 0:
            raise ValueError(f"{self.name}: scale must be >= 0, got {scale}")
        if not 0.0 <= start < stop <= 1.0:
            raise ValueError(f"{self.name}: need 0 <= start < stop <= 1, got start={start}, stop={stop}")
        if every < 1:
            raise ValueError(f"{self.name}: every must be >= 1, got {every}")
        self.scale, self.start, self.stop, self.every = float(scale), float(start), float(stop), int(every)

    def is_active(self, step_index: int, num_steps: int) -> bool:
        """Active on steps whose fraction i/n lies in [start, stop), counting every ``every``-th from the first."""
        if self.scale == 0.0:
            return False
        first = _first_step(self.start, num_steps)
        frac = step_index / num_steps
        return self.start <= frac < self.stop and (step_index - first) % self.every == 0

    def objective(self, x0_latent: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, start={self.start}, stop={self.stop}, every={self.every})"


def _first_step(start: float, num_steps: int) -> int:
    i = 0
    while i / num_steps < start:
        i += 1
    return i


def _alpha_bar(scheduler, timestep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    ac = scheduler.alphas_cumprod.to(device=like.device, dtype=torch.float32)
    t = int(timestep.item()) if torch.is_tensor(timestep) else int(timestep)
    return ac[min(max(t, 0), len(ac) - 1)]


def apply_guidance(
    guidances: Sequence[Guidance],
    scheduler,
    latents: torch.Tensor,
    model_output: torch.Tensor,
    ctx: GuidanceContext,
) -> tuple[torch.Tensor, list[dict]]:
    """Return the guided model output and one record per active guidance: {name, step, t, values}.

    ``latents``: the scheduler's current sample (B, 4, h, w); ``model_output``: the (CFG-combined) UNet output.
    Nothing here keeps a graph across steps: inputs are detached, and only ∇_{x0} leaves this function.
    """
    active = [g for g in guidances if g.is_active(ctx.step_index, ctx.num_steps)]
    if not active:
        return model_output, []
    pred_type = getattr(scheduler.config, "prediction_type", "epsilon")
    a = _alpha_bar(scheduler, ctx.timestep, latents)
    x_vp = scheduler.scale_model_input(latents, ctx.timestep).float()  # sigma-space samplers -> VP scale
    out = model_output.float()
    if pred_type == "v_prediction":
        eps = a.sqrt() * out + (1 - a).sqrt() * x_vp
    elif pred_type == "epsilon":
        eps = out
    else:
        raise ValueError(f"guidance supports epsilon and v_prediction models, not {pred_type!r}")
    x0 = ((x_vp - (1 - a).sqrt() * eps) / a.sqrt()).detach()
    sigma = ((1 - a) / a).sqrt()
    total_grad = torch.zeros_like(x0)
    records = []
    for g in active:
        x0_req = x0.clone().requires_grad_(True)
        with torch.enable_grad():
            value = g.objective(x0_req, ctx)
            (grad,) = torch.autograd.grad(value.sum(), x0_req)
        total_grad += g.scale * grad
        records.append(
            {
                "name": g.name,
                "step": ctx.step_index,
                "t": int(ctx.timestep.item()) if torch.is_tensor(ctx.timestep) else int(ctx.timestep),
                "values": [float(v) for v in value.detach().float().cpu()],
            }
        )
    eps = eps - sigma * total_grad
    if pred_type == "v_prediction":
        out = (eps - (1 - a).sqrt() * x_vp) / a.sqrt()
    else:
        out = eps
    return out.to(model_output.dtype), records
