"""Guided sampling on tiny random models: scale 0 is a no-op, objectives rise with scale, windows hold,
nothing leaks across steps."""

from __future__ import annotations

import gc

import pytest
import torch

from authface.guidance import (
    FidelityGuidance,
    Guidance,
    ScoreGuidance,
    apply_guidance,
    predicted_clean_latent,
)
from authface.testing.tiny_model import tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def crops(n=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def gens(n, base=0):
    return [torch.Generator().manual_seed(base + i) for i in range(n)]


class Brightness(torch.nn.Module):
    """A toy regressor: mean brightness of a [0, 1] image, (B,)."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))


def run(pipe, objectives, n=2, steps=4, strength=1.0, output_type="pt", **kw):
    return pipe(crops(n), generator=gens(n), num_inference_steps=steps, strength=strength, objectives=objectives,
                color_fix="none", output_type=output_type, **kw)  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [
        lambda s: ScoreGuidance(Brightness(), s),
        lambda s: FidelityGuidance(s),
        lambda s: FidelityGuidance(s, space="pixel"),
    ],
)
def test_scale_zero_is_bit_identical(pipe, make):
    plain = run(pipe, None).images
    assert torch.equal(run(pipe, [make(0.0)]).images, plain)


@pytest.mark.parametrize("normalize, scales", [(True, (0.0, 0.05, 0.1)), (False, (0.0, 2.0, 4.0))])
def test_score_objective_rises_with_scale(pipe, normalize, scales):
    values = []
    for s in scales:
        g = ScoreGuidance(Brightness(), s, normalize=normalize, name="brightness")
        out = run(pipe, [g])
        measured = Brightness()((out.images + 1) / 2)  # the guiding network on the result
        if s > 0:
            assert torch.allclose(measured, torch.tensor([f["brightness"] for f in out.objective_final]), atol=1e-3)
        values.append(measured)
    assert (values[1] > values[0]).all() and (values[2] > values[1]).all(), values


def test_fidelity_objective_rises_with_scale(pipe):
    values = []
    for s in (0.0, 0.1, 0.2):
        out = run(pipe, [FidelityGuidance(s)], strength=1.0, output_type="latent")
        values.append(-((out.images - pipe.encode_image(crops(2))) ** 2).mean(dim=(1, 2, 3)))
    assert (values[1] > values[0]).all() and (values[2] > values[1]).all(), values


def test_window_and_every_are_honoured(pipe):
    g = ScoreGuidance(Brightness(), 0.05, start=0.25, stop=0.75, every=2, name="b")
    out = run(pipe, [g], steps=8)
    assert [r["step"] for r in out.objective_log[0]] == [2, 4]
    g = ScoreGuidance(Brightness(), 0.05, start=0.0, stop=1.0, every=3, name="b")
    assert [r["step"] for r in run(pipe, [g], steps=8).objective_log[1]] == [0, 3, 6]
    # the window counts the steps actually run (strength < 1 runs fewer)
    g = ScoreGuidance(Brightness(), 0.05, start=0.5, stop=1.0, name="b")
    assert [r["step"] for r in run(pipe, [g], steps=8, strength=0.5).objective_log[0]] == [2, 3]


def test_two_guidances_logged_separately_with_final_values(pipe):
    out = run(pipe, [ScoreGuidance(Brightness(), 0.05, stop=0.5, name="b"), FidelityGuidance(0.05, start=0.5)])
    names = [(r["name"], r["step"]) for r in out.objective_log[0]]
    assert names == [("b", 0), ("b", 1), ("fidelity", 2), ("fidelity", 3)]
    assert set(out.objective_final[0]) == {"b", "fidelity"}


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if torch.is_tensor(o))


def test_no_graph_survives_a_step(pipe):
    """The guided output carries no autograd graph, so memory stays flat in the number of steps."""
    seen = []
    real = apply_guidance

    def spy(*a, **k):
        out, rec = real(*a, **k)
        seen.append((out.requires_grad, out.grad_fn))
        return out, rec

    import authface.pipeline.pipeline_authface as P

    P.apply_guidance, saved = spy, P.apply_guidance
    try:
        run(pipe, [ScoreGuidance(Brightness(), 0.05)], steps=3)
    finally:
        P.apply_guidance = saved
    assert seen and all(not rg and fn is None for rg, fn in seen)
    run(pipe, [ScoreGuidance(Brightness(), 0.05)], steps=2)
    short = _live_tensors()
    run(pipe, [ScoreGuidance(Brightness(), 0.05)], steps=12)
    long = _live_tensors()
    assert long - short <= 2, (short, long)  # no per-step leftovers


def test_tiny_decoder_is_used_when_asked(pipe):
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    tiny = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4)  # fmt: skip
    calls = []
    real_decode = tiny.decode
    tiny.decode = lambda *a, **k: calls.append(a[0].shape) or real_decode(*a, **k)
    pipe.guidance_decoder = tiny
    try:
        out = run(pipe, [ScoreGuidance(Brightness(), 0.05, decoder="tiny", name="b")], steps=2)
        assert calls and len(out.objective_log[0]) == 2
        with pytest.raises(ValueError, match="tiny"):
            pipe.guidance_decoder = None
            run(pipe, [ScoreGuidance(Brightness(), 0.05, decoder="tiny")], steps=2)
    finally:
        pipe.guidance_decoder = None


def test_reduced_resolution_decodes_smaller(pipe):
    shapes = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            shapes.append(tuple(x.shape[-2:]))
            return x.mean(dim=(1, 2, 3))

    run(pipe, [ScoreGuidance(Probe(), 0.05, resolution=32)], steps=2)
    assert shapes[0] == (32, 32)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"])
def test_predicted_clean_latent_is_exact(prediction_type, scheduler):
    """x0 from (sample, model output) inverts the forward process for VP and sigma-space samplers."""
    import diffusers

    base = tiny_pipeline(seed=0, prediction_type=prediction_type).scheduler
    sched = getattr(diffusers, scheduler).from_config(base.config)
    sched.set_timesteps(10)
    t = sched.timesteps[3]
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    a = sched.alphas_cumprod[int(t)]
    x_vp = a.sqrt() * x0 + (1 - a).sqrt() * eps
    # VP samplers keep x_t; sigma-space samplers keep x0 + sigma * eps = x_t / sqrt(a)
    sample = x_vp / a.sqrt() if scheduler == "EulerDiscreteScheduler" else x_vp
    out = eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
    assert torch.allclose(predicted_clean_latent(sched, sample, out, t), x0, atol=1e-4)


def test_guidance_argument_validation():
    with pytest.raises(ValueError, match="scale"):
        ScoreGuidance(Brightness(), -1.0)
    with pytest.raises(ValueError, match="start"):
        FidelityGuidance(1.0, start=0.8, stop=0.2)
    with pytest.raises(ValueError, match="every"):
        FidelityGuidance(1.0, every=0)
    with pytest.raises(ValueError, match="decoder"):
        FidelityGuidance(1.0, decoder="jpeg")
    with pytest.raises(ValueError, match="space"):
        FidelityGuidance(1.0, space="fourier")
    assert not Guidance(0.0).is_active(0, 10)


def test_identity_objective_rises_with_scale(pipe):
    """Identity guidance with a (random-weight) differentiable ArcFace IResNet: the cosine similarity to the
    reference, measured by the same network on the result, rises with the scale."""
    from authface.guidance import IdentityGuidance
    from authface.models.identity import ArcFaceEncoder, iresnet

    torch.manual_seed(0)
    encoder = ArcFaceEncoder(iresnet("r18"))
    with torch.no_grad():
        reference = encoder.embed(crops(1, seed=7))[0]  # another "person"
    values = []
    for s in (0.0, 0.1, 0.2):
        g = IdentityGuidance(encoder, s, reference=reference)
        out = run(pipe, [g])
        with torch.no_grad():
            values.append(encoder.embed(out.images) @ reference)
        if s > 0:
            assert torch.allclose(values[-1], torch.tensor([f["identity"] for f in out.objective_final]), atol=1e-3)
    assert (values[1] > values[0]).all() and (values[2] > values[1]).all(), values


def test_identity_guidance_defaults_to_the_input_face(pipe):
    from authface.guidance import IdentityGuidance
    from authface.models.identity import ArcFaceEncoder, iresnet

    torch.manual_seed(0)
    encoder = ArcFaceEncoder(iresnet("r18"))
    out = run(pipe, [IdentityGuidance(encoder, 0.1)], steps=2)
    with torch.no_grad():
        expected = (encoder.embed(out.images) * encoder.embed(crops(2))).sum(-1)
    assert torch.allclose(torch.tensor([f["identity"] for f in out.objective_final]), expected, atol=1e-3)


# Regression anchors for guided sampling (tiny pipeline seed 0, crops(2), generators 0 and 1, 4 steps at strength 1,
# no colour fix): out.images[1, 0, :3, :3] and each image's objective on the result. Computed once, pasted here.
GUIDED_ANCHORS = {
    "fidelity_latent": (
        lambda: [FidelityGuidance(0.1)],
        [0.0254, 0.1229, 0.0665, 0.0487, 0.2270, 0.1265, 0.1413, 0.4029, 0.2954],
        [{"fidelity": -3.50277}, {"fidelity": -4.9871}],
    ),
    "fidelity_pixel": (
        lambda: [FidelityGuidance(0.1, space="pixel", sigma=2.0)],
        [0.0067, 0.1198, 0.0583, 0.0402, 0.2475, 0.1419, 0.1445, 0.4317, 0.3130],
        [{"fidelity": -0.07713}, {"fidelity": -0.07289}],
    ),
    "score_classifier": (
        lambda: [ScoreGuidance(Brightness(), 0.05, normalize=False, name="b")],
        [0.0143, 0.1202, 0.0592, 0.0369, 0.2356, 0.1363, 0.1431, 0.4210, 0.3110],
        [{"b": 0.55118}, {"b": 0.55032}],
    ),
}


@pytest.mark.parametrize("case", list(GUIDED_ANCHORS))
def test_guided_regression_anchor(pipe, case):
    make, expected_slice, expected_final = GUIDED_ANCHORS[case]
    out = run(pipe, make())
    got = out.images[1, 0, :3, :3].flatten()
    assert torch.allclose(got, torch.tensor(expected_slice), atol=1e-3), [round(v, 4) for v in got.tolist()]
    for got_f, exp_f in zip(out.objective_final, expected_final):
        assert got_f.keys() == exp_f.keys()
        assert all(got_f[k] == pytest.approx(v, rel=1e-3, abs=1e-4) for k, v in exp_f.items()), out.objective_final


def test_pixel_fidelity_is_minus_mse_of_gaussian_low_passes():
    """The pixel-space fidelity objective low-passes with the shared authface.imaging.gaussian_blur."""
    from authface.guidance import GuidanceContext
    from authface.imaging import gaussian_blur

    image, lq = crops(2, size=32, seed=1), crops(2, size=32, seed=2)
    ctx = GuidanceContext(0, 1, torch.tensor(0), lq, decoders={})
    value = FidelityGuidance(1.0, space="pixel", sigma=2.0).objective(None, image, ctx)
    expected = -((gaussian_blur(image, 2.0) - gaussian_blur(lq, 2.0)) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(value, expected, atol=1e-6)
