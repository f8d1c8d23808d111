"""Training losses: the time-aware latent facial feature loss and its weighting curves.

**Time-aware latent facial feature loss.** On the predicted clean latent x̂0 (B, 4, h, w) and the target latent
x0, the eyes and mouth (boxes from 5-point landmarks, mapped to the latent grid) are cropped and resampled to a
fixed size with a differentiable bilinear crop. Per region:

- (a) reconstruction: L1 between the predicted and target region crops;
- (b) style: L1 between Gram matrices of region features — the features of the region discriminators when they
  are on (GFPGAN's facial-component style loss), else fixed latent features (the 4 latent channels and their
  horizontal and vertical finite differences, 12 channels), which capture texture statistics;
- (c) optional per-region patch discriminators (non-saturating GAN loss), trained with their own optimiser.
  :class:`RegionDiscriminators` holds them and runs every region in ONE forward call (what DDP needs); the
  training loop freezes them during the generator step and steps them from their own loss only.

The sum is weighted by w(t): the logit-normal density over normalised time u = (t + 0.5) / T with location m and
scale s, so the loss acts in the middle of the diffusion, where eye and mouth shapes form (Esser et al. 2024 use
the same density to sample timesteps). ``mode="constant"`` (w = 1) and ``mode="off"`` (w = 0) are ablations.

**Identity loss** (:class:`IdentityLoss`): the predicted clean latent is decoded (VAE or a tiny decoder) and
compared with the HQ face by a differentiable identity model (default: dlib's face-recognition ResNet, no
download): 1 - cosine of the embeddings, or dlib's descriptor distance. Weighted by the same w(t); samples whose
weight is at most ``min_weight`` are not decoded at all.

Written by hand: no maintained library has a latent-space facial component loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import TimeWeightMode, choices
from .config.train import IdentityLossKind

FACIAL_REGIONS = ("left_eye", "right_eye", "mouth")
"""The regions the facial loss compares by default (the config's ``facial.regions``)."""
WEIGHT_MODES = choices(TimeWeightMode)
"""``logit_normal``, ``constant``, ``off``: the names of :data:`authface.config.TimeWeightMode`."""
IDENTITY_KINDS = choices(IdentityLossKind)
"""``cosine``, ``dlib-distance``: the names of :data:`authface.config.train.IdentityLossKind`."""


def normalized_time(timesteps: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """Integer timesteps in [0, T) -> u in (0, 1), strictly inside: (t + 0.5) / T."""
    return (timesteps.float() + 0.5) / num_train_timesteps


def logit_normal_density(u: torch.Tensor, m: float = 0.0, s: float = 1.0) -> torch.Tensor:
    """p(u) = 1 / (s sqrt(2π)) · 1 / (u (1 - u)) · exp(-(logit(u) - m)² / (2 s²)), for u in (0, 1)."""
    u = u.clamp(1e-6, 1 - 1e-6)
    logit = torch.log(u) - torch.log1p(-u)
    return torch.exp(-((logit - m) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi) * u * (1 - u))


def time_weight(
    timesteps: torch.Tensor,
    num_train_timesteps: int,
    mode: TimeWeightMode = "logit_normal",
    m: float = 0.0,
    s: float = 1.0,
) -> torch.Tensor:
    """w(t) per sample (B,): the logit-normal density of normalised time, 1 (constant) or 0 (off)."""
    if mode == "logit_normal":
        return logit_normal_density(normalized_time(timesteps, num_train_timesteps), m, s)
    if mode == "constant":
        return torch.ones(timesteps.shape, dtype=torch.float32, device=timesteps.device)
    if mode == "off":
        return torch.zeros(timesteps.shape, dtype=torch.float32, device=timesteps.device)
    raise ValueError(f"facial loss weight mode must be one of {', '.join(WEIGHT_MODES)}, got {mode!r}")


def min_snr_weight(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float, prediction_type: str):
    """Min-SNR-γ loss weights (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy", ICCV
    2023), (B,) float32: ``min(SNR, γ) / SNR`` for ε-prediction, ``min(SNR, γ) / (SNR + 1)`` for v-prediction,
    SNR = ᾱ / (1 - ᾱ). Finite at zero SNR (a zero-terminal-SNR schedule's last timestep): the ε weight is its limit
    1 there, the v weight 0."""
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = a / (1 - a)
    clamped = torch.clamp(snr, max=gamma)
    if prediction_type == "v_prediction":
        return clamped / (snr + 1)
    return torch.where(snr < gamma, torch.ones_like(snr), clamped / snr.clamp(min=torch.finfo(snr.dtype).tiny))


def crop_regions(latents: torch.Tensor, boxes: torch.Tensor, size: int = 8) -> torch.Tensor:
    """Differentiable bilinear crops of boxes from latents.

    latents (B, C, h, w); boxes (B, R, 4) as x1, y1, x2, y2 in latent pixels -> crops (B, R, C, size, size).
    """
    b, c, h, w = latents.shape
    r = boxes.shape[1]
    x1, y1, x2, y2 = boxes.float().unbind(-1)  # (B, R)
    # affine_grid with align_corners=False: normalised coords map pixel edges to -1..1
    sx, sy = (x2 - x1) / w, (y2 - y1) / h
    tx, ty = (x1 + x2) / w - 1, (y1 + y2) / h - 1
    theta = torch.zeros(b, r, 2, 3, device=latents.device, dtype=latents.dtype)
    theta[..., 0, 0], theta[..., 0, 2] = sx, tx
    theta[..., 1, 1], theta[..., 1, 2] = sy, ty
    grid = F.affine_grid(theta.reshape(b * r, 2, 3), (b * r, c, size, size), align_corners=False)
    src = latents.unsqueeze(1).expand(b, r, c, h, w).reshape(b * r, c, h, w)
    crops = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return crops.reshape(b, r, c, size, size)


def latent_texture_features(x: torch.Tensor) -> torch.Tensor:
    """(N, C, s, s) -> (N, 3C, s, s): the latent channels and their horizontal/vertical finite differences."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return torch.cat([x, dx, dy], dim=1)


def gram(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) normalised Gram matrix."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class RegionDiscriminator(nn.Module):
    """A small patch discriminator on latent region crops (4 × s × s): returns (logits, [features])."""

    def __init__(self, in_channels: int = 4, width: int = 64):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1), nn.LeakyReLU(0.2)),
                nn.Sequential(nn.Conv2d(width, width * 2, 3, 2, 1), nn.LeakyReLU(0.2)),
            ]
        )
        self.head = nn.Conv2d(width * 2, 1, 3, 1, 1)

    def forward(self, x):
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


class RegionDiscriminators(nn.Module):
    """One :class:`RegionDiscriminator` per region, all run by ONE forward call.

    ``forward(crops)``: ``(N, R, C, s, s)`` region crops in the order of ``regions`` -> a list of R
    ``(logits (N, 1, s/2, s/2), [features])``. A single call per step is what ``DistributedDataParallel`` needs
    (a wrapped ``ModuleDict`` cannot be indexed and is never called); ``self[name]`` is one region's network.
    """

    def __init__(self, regions: Sequence[str], in_channels: int = 4):
        super().__init__()
        self.regions = tuple(regions)
        self.nets = nn.ModuleDict({r: RegionDiscriminator(in_channels) for r in self.regions})

    def __getitem__(self, name: str) -> RegionDiscriminator:
        return self.nets[name]

    def forward(self, crops: torch.Tensor) -> list:
        return [self.nets[name](crops[:, i]) for i, name in enumerate(self.regions)]


class FacialFeatureLoss(nn.Module):
    """The time-aware latent facial feature loss (see the module docstring).

    ``forward(pred_x0, target_x0, boxes, timesteps)`` -> (total (scalar), parts dict of detached scalars).
    ``boxes``: (B, R, 4) region boxes in latent pixels, in the order of ``regions``.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        weight_mode: TimeWeightMode = "logit_normal",
        m: float = 0.0,
        s: float = 1.0,
        recon_weight: float = 1.0,
        style_weight: float = 1.0,
        gan_weight: float = 0.0,
        regions: Sequence[str] = FACIAL_REGIONS,
        crop_size: int = 8,
        latent_channels: int = 4,
    ):
        super().__init__()
        if weight_mode not in WEIGHT_MODES:
            raise ValueError(f"weight_mode must be one of {', '.join(WEIGHT_MODES)}, got {weight_mode!r}")
        self.T, self.weight_mode, self.m, self.s = num_train_timesteps, weight_mode, m, s
        self.recon_weight, self.style_weight, self.gan_weight = recon_weight, style_weight, gan_weight
        self.regions, self.crop_size = tuple(regions), crop_size
        self.discriminators = RegionDiscriminators(self.regions, latent_channels) if gan_weight > 0 else None

    def weight(self, timesteps: torch.Tensor) -> torch.Tensor:
        return time_weight(timesteps, self.T, self.weight_mode, self.m, self.s)

    def forward(self, pred_x0, target_x0, boxes, timesteps):
        w = self.weight(timesteps).to(pred_x0.dtype)  # (B,)
        zero = pred_x0.sum() * 0.0
        if self.weight_mode == "off":
            return zero, {}
        pred = crop_regions(pred_x0, boxes, self.crop_size)  # (B, R, C, s, s)
        tgt = crop_regions(target_x0.detach(), boxes, self.crop_size)
        b, r = pred.shape[:2]
        recon = (pred - tgt).abs().mean(dim=(2, 3, 4))  # (B, R)
        style = torch.zeros_like(recon)
        gan = torch.zeros_like(recon)
        if self.discriminators is not None:
            fake = self.discriminators(pred)
            with torch.no_grad():
                real = self.discriminators(tgt)
            for i, ((logits, fp), (_, ft)) in enumerate(zip(fake, real)):
                style[:, i] = sum((gram(a) - gram(c)).abs().mean(dim=(1, 2)) for a, c in zip(fp, ft))
                gan[:, i] = F.softplus(-logits).mean(dim=(1, 2, 3))  # non-saturating generator loss
        else:
            for i in range(r):
                p, t = latent_texture_features(pred[:, i]), latent_texture_features(tgt[:, i])
                style[:, i] = (gram(p) - gram(t)).abs().mean((1, 2))
        per_sample = (
            self.recon_weight * recon.mean(1)
            + self.style_weight * style.mean(1)
            + self.gan_weight * gan.mean(1)
        )
        total = (w * per_sample).mean()
        parts = {
            "facial_recon": recon.mean().detach(),
            "facial_style": style.mean().detach(),
            "facial_weight": w.mean().detach(),
        }
        if self.discriminators is not None:
            parts["facial_gan_g"] = gan.mean().detach()
        return total, parts

    def discriminator_loss(
        self, pred_x0, target_x0, boxes, discriminators: nn.Module | None = None
    ) -> torch.Tensor:
        """Non-saturating discriminator loss on real (target) vs fake (predicted, detached) region crops.

        ``discriminators``: what to call instead of ``self.discriminators`` (the same module wrapped by
        ``accelerator.prepare``, e.g. in DDP); called once on the real and fake crops together.
        """
        if self.discriminators is None:
            raise ValueError("discriminators are off (gan_weight == 0)")
        d = self.discriminators if discriminators is None else discriminators
        pred = crop_regions(pred_x0.detach(), boxes, self.crop_size)
        tgt = crop_regions(target_x0.detach(), boxes, self.crop_size)
        n = tgt.shape[0]
        loss = 0.0
        for logits, _ in d(torch.cat([tgt, pred])):
            loss = loss + F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()
        return loss / len(self.regions)


class IdentityLoss(nn.Module):
    """Time-weighted identity loss between decoded predicted clean images and the HQ faces.

    ``encoder``: a differentiable :class:`authface.models.identity.IdentityEncoder` (frozen; for
    ``kind="dlib-distance"`` it must have ``descriptor`` — :class:`~authface.models.dlib_resnet.DlibIdentityEncoder`).
    ``forward(pred_x0, target, timesteps, decode)`` -> (total (scalar), parts dict of detached scalars):

    * ``pred_x0`` (B, 4, h, w) predicted clean latents; ``target`` ``[-1, 1]`` RGB (B, 3, S, S) FFHQ-aligned HQ
      faces; ``timesteps`` (B,) integer; ``decode``: latents (k, 4, h, w) -> ``[-1, 1]`` RGB (k, 3, H, W),
      differentiable, called once on the k samples with w(t) > ``min_weight`` only (none: no call, loss 0).
    * per sample d = 1 - cos(e(x̂), e(x)) in [0, 2] (``cosine``) or ‖desc(x̂) - desc(x)‖₂ (``dlib-distance``;
      0.6 is dlib's same-person threshold); total = Σ w(t)·d / B over the decoded samples.
    * parts: ``identity_distance`` (mean d of the decoded samples, 0 when none), ``identity_weight`` (mean w),
      ``identity_samples`` (fraction decoded).
    """

    def __init__(
        self,
        encoder: nn.Module,
        kind: IdentityLossKind = "cosine",
        num_train_timesteps: int = 1000,
        weight_mode: TimeWeightMode = "logit_normal",
        m: float = 0.0,
        s: float = 1.0,
        min_weight: float = 0.25,
    ):
        super().__init__()
        if kind not in IDENTITY_KINDS:
            raise ValueError(f"identity loss kind must be one of {', '.join(IDENTITY_KINDS)}, got {kind!r}")
        if kind == "dlib-distance" and not hasattr(encoder, "descriptor"):
            raise ValueError(
                f"identity kind 'dlib-distance' needs the dlib-resnet model, not {encoder.name!r}"
            )
        if not getattr(encoder, "differentiable", False):
            raise ValueError(
                f"the identity loss needs a differentiable identity model; {encoder.name!r} is not"
            )
        if weight_mode not in WEIGHT_MODES:
            raise ValueError(f"weight_mode must be one of {', '.join(WEIGHT_MODES)}, got {weight_mode!r}")
        self.encoder = encoder.requires_grad_(False)
        self.kind, self.T, self.weight_mode, self.m, self.s = kind, num_train_timesteps, weight_mode, m, s
        self.min_weight = min_weight

    def weight(self, timesteps: torch.Tensor) -> torch.Tensor:
        return time_weight(timesteps, self.T, self.weight_mode, self.m, self.s)

    def _features(self, faces: torch.Tensor) -> torch.Tensor:
        return self.encoder.descriptor(faces) if self.kind == "dlib-distance" else self.encoder.embed(faces)

    def distance(self, faces: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) identity distance of ``faces`` (gradient flows) to ``target`` (constant), both [-1, 1] RGB."""
        with torch.no_grad():
            ref = self._features(target.float())
        feats = self._features(faces.float())
        if self.kind == "cosine":
            return 1.0 - F.cosine_similarity(feats, ref, dim=1)
        eps = 1e-12  # sqrt(x + eps) - sqrt(eps): exactly 0 for equal faces, finite gradient there
        return ((feats - ref).pow(2).sum(dim=1) + eps).sqrt() - math.sqrt(eps)

    def forward(self, pred_x0: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor,
                decode: Callable[[torch.Tensor], torch.Tensor]):  # fmt: skip
        w = self.weight(timesteps).to(pred_x0.device)  # (B,)
        b = w.shape[0]
        keep = (w > self.min_weight).nonzero().squeeze(1)
        parts = {"identity_weight": w.mean().detach(), "identity_samples": torch.tensor(keep.numel() / b)}
        if keep.numel() == 0:
            return pred_x0.sum() * 0.0, {**parts, "identity_distance": torch.tensor(0.0)}
        d = self.distance(decode(pred_x0[keep]), target[keep].to(pred_x0.device))
        parts["identity_distance"] = d.mean().detach()
        return (w[keep] * d).sum() / b, parts
