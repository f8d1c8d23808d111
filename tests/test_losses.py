"""The time-aware latent facial feature loss and its weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from authface.losses import (
    FacialFeatureLoss,
    crop_regions,
    gram,
    logit_normal_density,
    min_snr_weight,
    normalized_time,
    time_weight,
)


@pytest.mark.parametrize("m, s", [(0.0, 1.0), (0.5, 0.8), (-1.0, 1.5)])
def test_weight_is_the_analytic_logit_normal_density(m, s):
    t = torch.arange(0, 1000)
    w = time_weight(t, 1000, "logit_normal", m, s).double().numpy()
    u = (np.arange(1000) + 0.5) / 1000
    expected = np.exp(-((np.log(u / (1 - u)) - m) ** 2) / (2 * s * s)) / (
        s * math.sqrt(2 * math.pi) * u * (1 - u)
    )
    assert np.allclose(w, expected, rtol=1e-4)
    assert abs(w.mean() - 1.0) < 0.02  # a density on (0, 1): its mean over uniform u is its integral
    # and it is the density of sigmoid(N(m, s)): compare with a histogram of samples
    rng = np.random.default_rng(0)
    samples = 1 / (1 + np.exp(-rng.normal(m, s, 400_000)))
    hist, edges = np.histogram(samples, bins=20, range=(0, 1), density=True)
    centres = torch.tensor((edges[:-1] + edges[1:]) / 2)
    dens = logit_normal_density(centres, m, s).numpy()
    inner = slice(2, 18)  # away from the edges, where 20 bins average a steep density
    assert np.allclose(hist[inner], dens[inner], rtol=0.08, atol=0.02)


def test_weight_peaks_mid_diffusion_and_ablation_modes():
    t = torch.tensor([10, 500, 990])
    w = time_weight(t, 1000, "logit_normal", 0.0, 1.0)
    assert w[1] > w[0] and w[1] > w[2]
    assert torch.equal(time_weight(t, 1000, "constant"), torch.ones(3))
    assert torch.equal(time_weight(t, 1000, "off"), torch.zeros(3))
    with pytest.raises(ValueError, match="logit_normal"):
        time_weight(t, 1000, "cosine")
    assert torch.allclose(normalized_time(torch.tensor([0, 999]), 1000), torch.tensor([0.0005, 0.9995]))


def test_crop_regions_matches_slicing_on_the_grid():
    x = torch.arange(2 * 4 * 16 * 16, dtype=torch.float32).reshape(2, 4, 16, 16)
    boxes = torch.tensor([[[2, 4, 10, 12], [0, 0, 8, 8]]] * 2, dtype=torch.float32)  # (B, R, 4)
    crops = crop_regions(x, boxes, size=8)
    assert crops.shape == (2, 2, 4, 8, 8)
    assert torch.allclose(crops[:, 0], x[:, :, 4:12, 2:10])
    assert torch.allclose(crops[:, 1], x[:, :, 0:8, 0:8])


def test_facial_loss_zero_on_target_positive_otherwise_and_differentiable():
    torch.manual_seed(0)
    target = torch.randn(2, 4, 16, 16)
    boxes = torch.tensor([[[3, 4, 7, 7], [9, 4, 13, 7], [5, 10, 11, 13]]] * 2, dtype=torch.float32)
    t = torch.tensor([400, 600])
    loss = FacialFeatureLoss(1000)
    zero, parts = loss(target.clone(), target, boxes, t)
    assert zero.item() == pytest.approx(0.0, abs=1e-7)
    pred = (target + 0.3 * torch.randn_like(target)).requires_grad_(True)
    value, parts = loss(pred, target, boxes, t)
    assert value > 0 and parts["facial_recon"] > 0 and parts["facial_style"] > 0
    value.backward()
    assert pred.grad.abs().sum() > 0
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[3:14, 2:14] = False  # the regions plus one pixel of bilinear support
    assert pred.grad[:, :, outside].abs().max() == 0  # only the eyes and mouth get gradient
    off, _ = FacialFeatureLoss(1000, weight_mode="off")(pred, target, boxes, t)
    assert off.item() == 0.0
    # the time weight scales the loss
    const, _ = FacialFeatureLoss(1000, weight_mode="constant")(pred, target, boxes, t)
    w = time_weight(t, 1000).mean()
    assert value.item() == pytest.approx((const * w).item(), rel=0.2)


def test_discriminators_and_gan_terms():
    torch.manual_seed(0)
    loss = FacialFeatureLoss(1000, gan_weight=0.1)
    target = torch.randn(2, 4, 16, 16)
    boxes = torch.tensor([[[3, 4, 7, 7], [9, 4, 13, 7], [5, 10, 11, 13]]] * 2, dtype=torch.float32)
    value, parts = loss(target + 0.1, target, boxes, torch.tensor([300, 700]))
    assert "facial_gan_g" in parts and torch.isfinite(value)
    d = loss.discriminator_loss(target + 0.1, target, boxes)
    d.backward()
    assert all(p.grad is not None for p in loss.discriminators.parameters())


def test_gram_and_min_snr():
    f = torch.randn(3, 5, 4, 4)
    g = gram(f)
    assert g.shape == (3, 5, 5) and torch.allclose(g, g.transpose(1, 2))
    ac = torch.linspace(0.999, 0.001, 1000)
    w = min_snr_weight(torch.tensor([0, 999]), ac, 5.0, "epsilon")
    snr0 = ac[0] / (1 - ac[0])
    assert w[0].item() == pytest.approx((5.0 / snr0).item(), rel=1e-5) and w[1].item() == pytest.approx(1.0)


def _face_crops(astronaut, size: int = 96) -> torch.Tensor:
    """The astronaut's face, roughly FFHQ-framed, as a [-1, 1] RGB (1, 3, size, size) tensor."""
    import cv2

    crop = cv2.resize(astronaut[10:250, 110:350], (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.fixture(scope="module")
def dlib_encoder():
    from authface.models.identity import identity_encoder_for

    return identity_encoder_for(None)


@pytest.mark.parametrize("kind", ["cosine", "dlib-distance"])
def test_identity_loss_zero_for_same_face_positive_for_flipped_or_shifted(astronaut, dlib_encoder, kind):
    from authface.losses import IdentityLoss

    face = _face_crops(astronaut)
    loss = IdentityLoss(dlib_encoder, kind, 1000, "constant")
    same = loss.distance(face, face.clone())
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    flipped = loss.distance(face.flip(-1), face)
    shifted = loss.distance(torch.roll(face, shifts=(12, 9), dims=(2, 3)), face)
    assert flipped.item() > 1e-3 and shifted.item() > 1e-3, (flipped, shifted)
    # forward: decode is applied to the latents of the samples kept; here the "latents" are the images themselves
    total, parts = loss(torch.cat([face, face.flip(-1)]), torch.cat([face, face]), torch.tensor([100, 500]),
                        decode=lambda z: z)  # fmt: skip
    assert total.item() == pytest.approx(flipped.item() / 2, rel=1e-4)
    assert parts["identity_samples"] == 1.0 and parts["identity_weight"] == 1.0


def test_identity_loss_gradients_reach_the_decoder_and_weak_samples_are_not_decoded(astronaut, dlib_encoder):
    from authface.losses import IdentityLoss

    torch.manual_seed(0)
    face = _face_crops(astronaut, 64)
    decoder = torch.nn.Sequential(torch.nn.Conv2d(4, 3, 3, padding=1), torch.nn.Upsample(scale_factor=8))
    calls = []

    def decode(z):
        calls.append(z.shape[0])
        return torch.tanh(decoder(z))

    loss = IdentityLoss(dlib_encoder, "cosine", 1000, "logit_normal", min_weight=0.1)
    latents = torch.randn(3, 4, 8, 8, requires_grad=True)
    t = torch.tensor([0, 500, 999])  # w(t) ~ 0 at both ends: only the middle sample is decoded
    total, parts = loss(latents, face.expand(3, -1, -1, -1), t, decode)
    assert calls == [1] and parts["identity_samples"] == pytest.approx(1 / 3)
    total.backward()
    assert decoder[0].weight.grad.abs().sum() > 0 and latents.grad[1].abs().sum() > 0
    assert latents.grad[[0, 2]].abs().sum() == 0
    calls.clear()
    zero, parts = loss(latents, face.expand(3, -1, -1, -1), torch.tensor([0, 999, 1]), decode)
    assert calls == [] and zero.item() == 0.0 and parts["identity_samples"] == 0.0
    with pytest.raises(ValueError, match="cosine"):
        IdentityLoss(dlib_encoder, "l2")


def test_region_discriminators_run_in_one_call():
    from authface.losses import RegionDiscriminators

    d = RegionDiscriminators(["left_eye", "mouth"])
    calls = []
    d.register_forward_hook(lambda *a: calls.append(1))
    loss = FacialFeatureLoss(1000, gan_weight=0.1, regions=["left_eye", "mouth"])
    loss.discriminators = d
    target = torch.randn(2, 4, 16, 16)
    boxes = torch.tensor([[[3, 4, 7, 7], [5, 10, 11, 13]]] * 2, dtype=torch.float32)
    loss.discriminator_loss(target + 0.1, target, boxes)
    assert calls == [1]  # real and fake of every region: one forward (what DDP needs)
    assert isinstance(d["mouth"], torch.nn.Module)


def test_min_snr_weights_are_finite_at_zero_terminal_snr():
    """A zero-terminal-SNR schedule (ᾱ_T = 0): the ε weight is its limit 1, the v weight min(SNR, γ)/(SNR+1) = 0;
    elsewhere the formulas of Hang et al. (2023)."""
    ac = torch.tensor([0.99, 0.5, 0.01, 0.0])
    snr = ac / (1 - ac)
    t = torch.arange(4)
    eps = min_snr_weight(t, ac, 5.0, "epsilon")
    v = min_snr_weight(t, ac, 5.0, "v_prediction")
    assert torch.isfinite(eps).all() and torch.isfinite(v).all()
    assert torch.allclose(eps, torch.stack([5.0 / snr[0], torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0)]))
    assert torch.allclose(v, torch.clamp(snr, max=5.0) / (snr + 1)) and v[-1] == 0
