"""AuthFacePipeline on tiny random components (diffusers' test recipe): regression anchors, shapes, batching,
I/O, the diffusers conventions (output_type, progress bar, step-end callback, interrupt, offload), colour fixes."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from authface.colorfix import adain_color_fix, wavelet_color_fix
from authface.guidance import Guidance
from authface.imaging import gaussian_blur
from authface.models.quality_prior import add_quality_prior
from authface.pipeline import AuthFacePipeline, set_scheduler
from authface.testing.tiny_model import tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def crops(n=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1  # [-1, 1] RGB (B, 3, H, W)


def gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


KW = dict(num_inference_steps=2, strength=0.7, output_type="pt")


def test_output_shapes_and_range(pipe):
    out = pipe(crops(2), generator=gens([0, 1]), **KW)
    assert out.images.shape == (2, 3, 64, 64)
    assert out.images.min() >= -1 and out.images.max() <= 1
    assert out.objective_log == [[], []]
    arr = pipe(crops(2), generator=gens([0, 1]), num_inference_steps=2, output_type="np").images
    assert arr.shape == (2, 64, 64, 3) and arr.dtype == np.uint8
    lat = pipe(crops(1), generator=gens([0]), num_inference_steps=2, output_type="latent").images
    assert lat.shape == (1, 4, 8, 8)


def test_same_seed_same_output_other_seed_differs(pipe):
    out = pipe(crops(1), generator=gens([0]), color_fix="none", **KW).images
    first = out[0, 0, 0, :4].clone()
    again = pipe(crops(1), generator=gens([0]), color_fix="none", **KW).images[0, 0, 0, :4]
    assert torch.allclose(first, again, atol=0)
    other = pipe(crops(1), generator=gens([1]), color_fix="none", **KW).images[0, 0, 0, :4]
    assert not torch.allclose(first, other, atol=1e-4)


def test_uint8_and_tensor_inputs_agree(pipe):
    x = crops(2)
    arrays = [((im.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8) for im in x]
    x_q = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1
    a = pipe(arrays, generator=gens([3, 4]), **KW).images
    b = pipe(x_q, generator=gens([3, 4]), **KW).images
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_batch_equals_single(pipe, strength):
    x = crops(3)
    batched = pipe(x, generator=gens([10, 11, 12]), batch_size=3, num_inference_steps=2, strength=strength,
                   output_type="pt").images
    for i in range(3):
        single = pipe(x[i : i + 1], generator=gens([10 + i]), batch_size=1, num_inference_steps=2,
                      strength=strength, output_type="pt").images
        assert torch.allclose(batched[i], single[0], atol=1e-4), (i, (batched[i] - single[0]).abs().max())
    chunked = pipe(x, generator=gens([10, 11, 12]), batch_size=2, num_inference_steps=2, strength=strength,
                   output_type="pt").images
    assert torch.allclose(batched, chunked, atol=1e-4)


def test_strength_changes_output_and_full_strength_ignores_input_latent(pipe):
    x = crops(1)
    low = pipe(x, generator=gens([0]), num_inference_steps=4, strength=0.25, color_fix="none", output_type="pt").images
    high = pipe(x, generator=gens([0]), num_inference_steps=4, strength=1.0, color_fix="none", output_type="pt").images
    assert (low - high).abs().mean() > 1e-3


def test_cfg_off_runs_single_pass(pipe):
    """guidance_scale <= 1: the UNet (and ControlNet) see B samples per step, not 2B."""
    seen = {"unet": [], "controlnet": []}
    hooks = [getattr(pipe, name).register_forward_pre_hook(lambda m, a, name=name: seen[name].append(a[0].shape[0]))
             for name in seen]  # fmt: skip
    try:
        out = pipe(crops(2), generator=gens([0, 1]), guidance_scale=1.0, batch_size=2, **KW).images
        assert out.shape == (2, 3, 64, 64)
        assert seen == {"unet": [2], "controlnet": [2]}  # 2 steps * 0.7 strength = 1 step
        pipe(crops(2), generator=gens([0, 1]), guidance_scale=4.0, batch_size=2, **KW)
        assert seen["unet"][1:] == [4] and seen["controlnet"][1:] == [4]
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("method", ["none", "wavelet", "adain"])
def test_color_fix_options(pipe, method):
    out = pipe(crops(1), generator=gens([0]), color_fix=method, **KW).images
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strength=0.0), "strength"),
        (dict(strength=1.5), "strength"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(num_inference_steps=2, strength=0.2), "runs no step"),
        (dict(color_fix="sepia"), "color_fix"),
        (dict(batch_size=0), "batch_size"),
        (dict(objectives=[object()]), "Guidance"),
    ],
)
def test_check_inputs_errors_name_the_argument(pipe, kwargs, match):
    args = {"num_inference_steps": 2, "strength": 0.7, **kwargs}
    with pytest.raises(ValueError, match=match):
        pipe(crops(1), generator=gens([0]), **args)


def test_size_not_divisible_by_vae_factor(pipe):
    with pytest.raises(ValueError, match="divisible by 8"):
        pipe(torch.zeros(1, 3, 60, 60), generator=gens([0]), **KW)


def test_generator_count_mismatch(pipe):
    with pytest.raises(ValueError, match="one per image"):
        pipe(crops(2), generator=gens([0]), **KW)


def test_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    loaded = AuthFacePipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    a = pipe(crops(1), generator=gens([5]), **KW).images
    b = loaded(crops(1), generator=gens([5]), **KW).images
    assert torch.equal(a, b)


def test_prompt_embeddings_are_cached(pipe, monkeypatch):
    pipe.clear_prompt_cache()
    calls = []
    real = pipe._embed
    monkeypatch.setattr(pipe, "_embed", lambda *a: calls.append(a[0]) or real(*a))
    pipe(crops(2), generator=gens([0, 1]), prompt="p", negative_prompt="n", batch_size=1, **KW)
    pipe(crops(1), generator=gens([0]), prompt="p", negative_prompt="n", **KW)
    assert sorted(calls) == ["n", "p"]


class MeanBrightness(Guidance):
    """Trivial guidance for the hook: raise the mean of the predicted clean latent."""

    name = "brightness"
    space = "latent"

    def objective(self, x0_latent, image, ctx):
        assert ctx.lq_image.shape[0] == x0_latent.shape[0]
        return x0_latent.mean(dim=(1, 2, 3))


def test_guidance_hook_is_called_and_logged(pipe):
    g = MeanBrightness(scale=5.0, start=0.0, stop=1.0, every=2)
    out = pipe(crops(2), generator=gens([0, 1]), num_inference_steps=4, strength=1.0, objectives=[g],
               color_fix="none", output_type="latent")
    steps = [r["step"] for r in out.objective_log[0]]
    assert steps == [0, 2]
    assert len(out.objective_log) == 2 and all(isinstance(r["value"], float) for r in out.objective_log[1])
    base = pipe(crops(2), generator=gens([0, 1]), num_inference_steps=4, strength=1.0, color_fix="none",
                output_type="latent").images
    assert out.images.mean() > base.mean()  # the objective moved the result


def test_guidance_scale_zero_is_bit_identical(pipe):
    g = MeanBrightness(scale=0.0)
    a = pipe(crops(1), generator=gens([0]), objectives=[g], **KW).images
    b = pipe(crops(1), generator=gens([0]), **KW).images
    assert torch.equal(a, b)


def test_v_prediction_model_runs_with_guidance():
    p = tiny_pipeline(seed=0, prediction_type="v_prediction")
    out = p(crops(1), generator=gens([0]), objectives=[MeanBrightness(scale=1.0)], num_inference_steps=2,
            strength=1.0, output_type="pt")
    assert torch.isfinite(out.images).all() and [r["step"] for r in out.objective_log[0]] == [0, 1]


@pytest.mark.parametrize("scheduler", ["default", "euler", "dpm++"])
def test_v_prediction_with_zero_terminal_snr_runs_with_guidance(scheduler):
    """SD 2.x 768-v models, and zero-terminal-SNR fine-tunes (ā ≈ 0 at the first step of a trailing schedule)."""
    p = tiny_pipeline(seed=0, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    set_scheduler(p, scheduler)
    assert p.scheduler.config.rescale_betas_zero_snr and p.scheduler.config.prediction_type == "v_prediction"
    out = p(crops(1), generator=gens([0]), objectives=[MeanBrightness(scale=1.0)], num_inference_steps=3,
            strength=1.0, output_type="pt")  # fmt: skip
    assert torch.isfinite(out.images).all() and [r["step"] for r in out.objective_log[0]] == [0, 1, 2]


@pytest.mark.parametrize(
    "prediction_type, zero_snr", [("epsilon", False), ("v_prediction", False), ("v_prediction", True)]
)  # zero terminal SNR is for v-prediction models (at ā = 0 an ε model cannot predict x0: diffusers says so too)
def test_guidance_predicted_clean_latent_matches_the_scheduler(prediction_type, zero_snr):
    """The ε/v conversion of the guidance hook gives the scheduler's own x̂0, and a zero-scale objective leaves
    the model output unchanged (ε and v alike)."""
    from diffusers import DDIMScheduler

    from authface.guidance import GuidanceContext, apply_guidance, predicted_clean_latent

    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                          prediction_type=prediction_type, rescale_betas_zero_snr=zero_snr,
                          timestep_spacing="trailing")  # fmt: skip
    sched.set_timesteps(4)
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    for t in sched.timesteps:
        expected = sched.step(out, t, x).pred_original_sample
        assert torch.allclose(predicted_clean_latent(sched, x, out, t), expected, atol=1e-4, rtol=1e-4), int(t)
    ctx = GuidanceContext(step_index=0, num_steps=4, timestep=sched.timesteps[0], lq_image=crops(1), decoders={})
    guided, _ = apply_guidance([MeanBrightness(scale=1.0)], sched, x, out, ctx)
    assert torch.isfinite(guided).all()
    x0 = predicted_clean_latent(sched, x, out, sched.timesteps[0])
    moved = predicted_clean_latent(sched, x, guided, sched.timesteps[0])
    assert torch.allclose(moved - x0, torch.ones_like(x0), atol=1e-3)  # one latent std along the unit gradient


def test_controlnet_condition_reaches_the_unet(pipe):
    # strength 1 starts from the same noise whatever the input: only the ControlNet sees the degraded crop
    a = pipe(crops(1, seed=1), generator=gens([0]), num_inference_steps=2, strength=1.0, color_fix="none",
             output_type="pt").images
    b = pipe(crops(1, seed=2), generator=gens([0]), num_inference_steps=2, strength=1.0, color_fix="none",
             output_type="pt").images
    assert (a - b).abs().max() > 1e-6  # tiny random ControlNet: a small but real effect
    c = pipe(crops(1, seed=1), generator=gens([0]), num_inference_steps=2, strength=1.0, color_fix="none",
             controlnet_conditioning_scale=0.0, output_type="pt").images
    d = pipe(crops(1, seed=2), generator=gens([0]), num_inference_steps=2, strength=1.0, color_fix="none",
             controlnet_conditioning_scale=0.0, output_type="pt").images
    assert torch.equal(c, d)


# ---------------------------------------------------------------------------------------------- regression anchors
# Expected output slices of the tiny pipeline (seed 0, input crops(1), generator seed 0, 4 steps at strength 0.75,
# float32 on CPU): out[0, -1, -3:, -3:] of output_type="pt". They were computed once and pasted here, as diffusers'
# tests do: a change in any of these numbers is a change in behaviour that needs a reason.
ANCHORS = {
    "cfg": ({}, [0.2236, 0.0297, 0.0505, 0.2459, 0.0304, 0.0827, 0.1581, 0.0494, 0.0491]),
    "no_cfg": ({"guidance_scale": 1.0}, [0.2524, 0.0544, 0.0665, 0.2649, 0.0497, 0.0974, 0.1786, 0.0795, 0.0647]),
    "ddim": ({"scheduler": "ddim"}, [0.2236, 0.0297, 0.0505, 0.2459, 0.0304, 0.0827, 0.1581, 0.0494, 0.0491]),
    "dpm++": ({"scheduler": "dpm++"}, [0.1377, 0.0293, 0.0094, 0.1806, 0.0794, 0.0564, 0.1114, 0.0443, 0.0264]),
    "unipc": ({"scheduler": "unipc"}, [0.1398, 0.0314, 0.0100, 0.1814, 0.0806, 0.0563, 0.1113, 0.0444, 0.0261]),
    "euler": ({"scheduler": "euler"}, [0.1705, 0.0194, 0.0169, 0.2094, 0.0563, 0.0618, 0.1341, 0.0394, 0.0301]),
    "euler_a": ({"scheduler": "euler_a"}, [0.1187, -0.0581, -0.0227, 0.2098, -0.0017, 0.0391, 0.1174, 0.0154, 0.0242]),
    "wavelet": ({"color_fix": "wavelet"}, [0.1380, -0.0504, -0.0203, 0.1626, -0.0472, 0.0145, 0.0759, -0.0265, -0.0171]),
    "adain": ({"color_fix": "adain"}, [0.1077, -0.2680, -0.2276, 0.1509, -0.2667, -0.1653, -0.0192, -0.2298, -0.2303]),
}


@pytest.mark.parametrize("case", list(ANCHORS))
def test_regression_anchor(case):
    kwargs, expected = ANCHORS[case]
    kwargs = dict(kwargs)
    p = tiny_pipeline(seed=0)
    set_scheduler(p, kwargs.pop("scheduler", "default"))
    call = dict(num_inference_steps=4, strength=0.75, color_fix="none", output_type="pt") | kwargs
    out = p(crops(1), generator=gens([0]), **call).images
    got = out[0, -1, -3:, -3:].flatten()
    assert torch.allclose(got, torch.tensor(expected), atol=1e-3), (case, [round(v, 4) for v in got.tolist()])


# ---------------------------------------------------------------------------------------------- diffusers conventions
def test_output_types(pipe):
    kw = dict(num_inference_steps=2, color_fix="none")
    pt = pipe(crops(2), generator=gens([0, 1]), output_type="pt", **kw).images
    arr = pipe(crops(2), generator=gens([0, 1]), output_type="np", **kw).images
    pil = pipe(crops(2), generator=gens([0, 1]), output_type="pil", **kw).images
    lat = pipe(crops(2), generator=gens([0, 1]), output_type="latent", **kw).images
    assert pt.shape == (2, 3, 64, 64) and arr.shape == (2, 64, 64, 3) and arr.dtype == np.uint8
    assert lat.shape == (2, 4, 8, 8)
    assert isinstance(pil, list) and len(pil) == 2 and all(isinstance(im, PIL.Image.Image) for im in pil)
    assert pil[0].size == (64, 64) and pil[0].mode == "RGB"
    assert np.array_equal(np.asarray(pil[1]), arr[1])
    expected = ((pt.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).numpy()
    assert np.abs(arr.astype(np.float32) - expected).max() <= 1


def test_return_dict_false(pipe):
    images, log, final = pipe(crops(1), generator=gens([0]), return_dict=False, **KW)
    assert images.shape == (1, 3, 64, 64) and log == [[]] and final == [{}]


def test_progress_bar_shows_and_can_be_disabled(capsys):
    p = tiny_pipeline(seed=0)
    p.set_progress_bar_config()  # diffusers' default: shown
    p(crops(2), generator=gens([0, 1]), batch_size=1, num_inference_steps=4, strength=0.5, output_type="pt")
    err = capsys.readouterr().err
    assert "4/4" in err  # one bar for the call: 2 batches x 2 steps
    p.set_progress_bar_config(disable=True)
    p(crops(1), generator=gens([0]), **KW)
    assert capsys.readouterr().err == ""


def test_callback_on_step_end_each_step_and_can_replace_latents(pipe):
    calls = []

    def record(p, i, t, tensors):
        assert p is pipe and set(tensors) == {"latents", "control_image"}
        calls.append((i, int(t), tuple(tensors["latents"].shape)))
        return {}

    pipe(crops(3), generator=gens([0, 1, 2]), batch_size=2, num_inference_steps=4, strength=1.0, output_type="pt",
         callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents", "control_image"])  # fmt: skip
    assert [c[0] for c in calls] == [0, 1, 2, 3] * 2  # every step of each of the two batches
    assert [c[2][0] for c in calls] == [2] * 4 + [1] * 4
    zeroed = pipe(crops(1), generator=gens([0]), callback_on_step_end=lambda p, i, t, k: {"latents": k["latents"] * 0},
                  num_inference_steps=2, strength=1.0, output_type="latent").images  # fmt: skip
    assert torch.equal(zeroed, torch.zeros_like(zeroed))


def test_interrupt_stops_the_loop(pipe):
    steps = []

    def stop_after_two(p, i, t, tensors):
        steps.append(i)
        if i == 1:
            p._interrupt = True
        return {}

    unet_calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda m, a: unet_calls.append(1))
    try:
        out = pipe(crops(1), generator=gens([0]), num_inference_steps=6, strength=1.0, output_type="pt",
                   callback_on_step_end=stop_after_two)  # fmt: skip
    finally:
        hook.remove()
    assert steps == [0, 1] and len(unet_calls) == 2 and pipe.interrupt
    assert out.images.shape == (1, 3, 64, 64)  # the current latents are still decoded
    pipe(crops(1), generator=gens([0]), **KW)
    assert not pipe.interrupt  # reset by the next call


def test_controlnet_is_out_of_the_offload_chain_and_hooks_are_freed():
    """Model offload chains text_encoder -> unet -> vae: each offloads the previous one when it runs. The
    ControlNet runs at every step, so no hook in that chain may offload it (it is placed once per call)."""
    p = tiny_pipeline(seed=0)
    chain = p.model_cpu_offload_seq.split("->")
    assert "controlnet" not in chain and "guidance_decoder" not in chain
    p.enable_model_cpu_offload(device="cpu")
    prev = {name: getattr(m._hf_hook, "prev_module_hook", None) for name, m in p.components.items()
            if isinstance(m, torch.nn.Module)}  # fmt: skip
    assert prev["controlnet"] is None
    assert prev["unet"].model is p.text_encoder and prev["vae"].model is p.unet
    assert all(h is None or h.model is not p.controlnet for h in prev.values())
    freed = []
    real_free = p.maybe_free_model_hooks
    p.maybe_free_model_hooks = lambda: freed.append(1) or real_free()
    out = p(crops(1), generator=gens([0]), num_inference_steps=3, strength=1.0, output_type="pt")
    assert torch.isfinite(out.images).all() and freed == [1]


def test_quality_target_is_checked():
    p = tiny_pipeline(seed=0)
    add_quality_prior(p.controlnet)
    for bad in (1.5, -0.1, "high"):
        with pytest.raises(ValueError, match=r"quality_target.*\[0, 1\]"):
            p(crops(1), generator=gens([0]), quality_target=bad, **KW)
    out = p(crops(1), generator=gens([0]), quality_target=1.0, **KW)
    assert torch.isfinite(out.images).all()


def test_deprecated_names_still_work(pipe):
    g = MeanBrightness(scale=1.0)
    new = pipe(crops(1), generator=gens([0]), objectives=[g], **KW)
    with pytest.warns(FutureWarning, match="objectives"):
        old = pipe(crops(1), generator=gens([0]), guidance=[g], **KW)
    assert torch.equal(new.images, old.images)
    with pytest.warns(FutureWarning, match="objective_log"):
        assert old.guidance_log == new.objective_log
    with pytest.warns(FutureWarning, match="objective_final"):
        assert old.guidance_final == new.objective_final
    with pytest.raises(TypeError, match="not both"), pytest.warns(FutureWarning):
        pipe(crops(1), generator=gens([0]), guidance=[g], objectives=[g], **KW)
    p = tiny_pipeline(seed=0)
    add_quality_prior(p.controlnet)
    with pytest.warns(FutureWarning, match="quality_target"), pytest.raises(ValueError, match="quality_target"):
        p(crops(1), generator=gens([0]), quality_score=2.0, **KW)
    with pytest.raises(TypeError, match="unexpected keyword"):
        pipe(crops(1), generator=gens([0]), guidance_objectives=[g], **KW)


def test_ancestral_scheduler_uses_the_generators(pipe):
    """Euler ancestral draws noise at each step: from the per-image generators, so batching changes nothing."""
    p = tiny_pipeline(seed=0)
    set_scheduler(p, "euler_a")
    kw = dict(num_inference_steps=3, strength=1.0, color_fix="none", output_type="pt")
    batched = p(crops(2), generator=gens([5, 6]), batch_size=2, **kw).images
    torch.manual_seed(123)  # the global RNG plays no part
    single = p(crops(2)[1:], generator=gens([6]), batch_size=1, **kw).images
    assert torch.allclose(batched[1], single[0], atol=1e-4)


# ---------------------------------------------------------------------------------------------- colour fixes
def test_adain_matches_per_channel_mean_and_std():
    g = torch.Generator().manual_seed(0)
    source = torch.rand(2, 3, 32, 32, generator=g) * 0.5 + 0.2
    target = torch.randn(2, 3, 32, 32, generator=g) * 2 - 1
    out = adain_color_fix(target, source)
    assert torch.allclose(out.mean((2, 3)), source.mean((2, 3)), atol=1e-5)
    assert torch.allclose(out.std((2, 3)), source.std((2, 3)), atol=1e-4)
    # the structure is the target's: a per-channel affine map of it
    assert torch.corrcoef(torch.stack([out[0, 0].flatten(), target[0, 0].flatten()]))[0, 1] > 0.9999


def test_wavelet_takes_low_frequencies_from_source_and_detail_from_target():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    source = torch.stack([0.5 * xx, 0.3 * yy, 0.2 - 0.4 * xx * yy])[None]  # smooth colour field
    target = 0.2 * torch.randn(1, 3, 64, 64, generator=g) + torch.tensor([0.6, -0.5, 0.1]).view(1, 3, 1, 1)
    out = wavelet_color_fix(target, source)
    low = lambda x: gaussian_blur(x, 8.0, padding="replicate")[..., 16:-16, 16:-16]  # noqa: E731 (away from edges)
    assert (low(target) - low(source)).abs().mean() > 0.3
    assert (low(out) - low(source)).abs().mean() < 0.015 and (low(out) - low(source)).abs().max() < 0.05
    high = lambda x: x - gaussian_blur(x, 1.0, padding="replicate")  # noqa: E731
    assert torch.corrcoef(torch.stack([high(out).flatten(), high(target).flatten()]))[0, 1] > 0.9


# ---------------------------------------------------------------- NaN / inf never becomes a black face (issue 9.4)
def _half_vae_pipe(force_upcast=False):
    p = tiny_pipeline(seed=0)
    torch.nn.Module.to(p.vae, torch.float16)
    defaults = [k for k in p.vae.config.get("_use_default_values", []) if k != "force_upcast"]
    p.vae.register_to_config(force_upcast=force_upcast, _use_default_values=defaults)  # as set by a config file
    return p


def _nan_decoder(p, when, seen=None):
    """A VAE decoder forward hook that turns the output of images ``when(dtype, batch)`` selects into NaN."""

    def hook(module, inputs, output):
        if seen is not None:
            seen.append(output.dtype)
        rows = when(output.dtype, output.shape[0])
        if rows:
            output = output.clone()
            output[rows] = float("nan")
            return output
        return None

    return p.vae.decoder.register_forward_hook(hook)


def test_half_precision_nan_decode_is_redone_in_float32(caplog):
    p = _half_vae_pipe()
    _nan_decoder(p, lambda dtype, n: list(range(n)) if dtype == torch.float16 else [])
    kw = {**KW, "strength": 1.0}  # no encode: only the decode differs between half and full precision
    with caplog.at_level("WARNING", logger="authface.pipeline.decode"):
        out = p(crops(2), generator=gens([0, 1]), **kw).images
    assert torch.isfinite(out).all() and p.vae.dtype == torch.float16  # the VAE goes back to half precision
    assert "decoding again in float32" in caplog.text and "images 0, 1" in caplog.text
    ref = tiny_pipeline(seed=0)
    torch.nn.Module.to(torch.nn.Module.to(ref.vae, torch.float16), torch.float32)  # the same (half-rounded) VAE weights, decoded in float32
    expected = ref(crops(2), generator=gens([0, 1]), **kw).images
    assert torch.allclose(out, expected, atol=1e-4)


def test_only_the_non_finite_images_are_decoded_again():
    p = _half_vae_pipe()
    batches = []
    _nan_decoder(p, lambda dtype, n: batches.append((dtype, n)) or ([1] if dtype == torch.float16 else []))
    out = p(crops(3), generator=gens([0, 1, 2]), batch_size=3, **KW).images
    assert torch.isfinite(out).all()
    assert batches == [(torch.float16, 3), (torch.float32, 1)]


def test_persistent_nan_raises_and_nothing_is_converted(monkeypatch):
    from authface import io
    from authface.pipeline import NonFiniteOutputError

    converted = []
    real = io.tensor_to_numpy
    monkeypatch.setattr(io, "tensor_to_numpy", lambda t: converted.append(torch.isfinite(t).all()) or real(t))
    p = _half_vae_pipe()
    _nan_decoder(p, lambda dtype, n: [1] if n == 2 else [0])  # image 1 of 2 is NaN in every precision
    with pytest.raises(NonFiniteOutputError) as info:
        p(crops(2), generator=gens([0, 1]), num_inference_steps=2, output_type="np")
    msg = str(info.value)
    assert "image 1 of the batch of 2" in msg and "float16" in msg and "float32" in msg and "--dtype float32" in msg
    assert info.value.indices == [1] and info.value.stage == "decoding"
    assert converted == []  # tensor_to_numpy never saw the NaN image (nor the batch)
    fp32 = tiny_pipeline(seed=0)  # a float32 VAE has no retry: the error says so
    _nan_decoder(fp32, lambda dtype, n: [0])
    with pytest.raises(NonFiniteOutputError, match=r"image 0 of the batch of 1 \(decoded in torch.float32\)"):
        fp32(crops(1), generator=gens([0]), num_inference_steps=2, output_type="pil")
    assert converted == []
    assert isinstance(info.value, RuntimeError)


def test_force_upcast_decodes_in_float32_from_the_start():
    p = _half_vae_pipe(force_upcast=True)
    seen = []
    _nan_decoder(p, lambda dtype, n: list(range(n)) if dtype == torch.float16 else [], seen)
    out = p(crops(2), generator=gens([0, 1]), **KW).images
    assert torch.isfinite(out).all() and seen == [torch.float32] and p.vae.dtype == torch.float16


def test_non_finite_latents_and_objectives_are_reported():
    from authface.pipeline import NonFiniteOutputError

    p = tiny_pipeline(seed=0)
    hook = p.unet.register_forward_hook(lambda m, i, o: (o[0] * float("inf"),) + tuple(o[1:]))
    for output_type in ("pt", "latent"):
        with pytest.raises(NonFiniteOutputError, match="sampling produced NaN/inf latents") as info:
            p(crops(1), generator=gens([0]), num_inference_steps=2, strength=1.0, output_type=output_type)
        assert info.value.stage == "sampling"
    hook.remove()

    class NaNObjective(MeanBrightness):
        name = "nan_objective"

        def objective(self, x0_latent, image, ctx):
            return x0_latent.mean(dim=(1, 2, 3)) * float("nan")

    with pytest.raises(NonFiniteOutputError, match="objective nan_objective gave NaN/inf"):
        p(crops(2), generator=gens([0, 1]), objectives=[NaNObjective(scale=1.0)], **KW)


def test_force_upcast_is_honoured_only_when_the_vae_config_sets_it(tmp_path):
    import json

    from diffusers import AutoencoderKL

    from authface.pipeline.decode import force_upcast

    vae = tiny_pipeline(seed=0).vae
    for value in (True, False, None):  # None: a config that predates the key (SD 1.x VAEs)
        vae.register_to_config(force_upcast=True if value is None else value)
        vae.save_pretrained(tmp_path / str(value))
        cfg = json.loads((tmp_path / str(value) / "config.json").read_text())
        if value is None:
            del cfg["force_upcast"]
        (tmp_path / str(value) / "config.json").write_text(json.dumps(cfg))
        loaded = AutoencoderKL.from_pretrained(tmp_path / str(value))
        assert force_upcast(loaded) is bool(value), value
