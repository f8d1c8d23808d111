"""Inpainting training (task inpaint): the mask channel of the ControlNet, the masked-region losses on the
composite, exact resume, and restoring with the trained model, on tiny random components."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from authface.config import ConfigError, TrainConfig, load_config
from authface.models.mask_channel import add_mask_channel, control_condition, has_mask_channel
from authface.testing.tiny_model import tiny_components
from authface.training import LORA_WEIGHT_NAME, setup_run, train
from authface.training.inpaint import latent_mask

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny.yaml"


def _cfg(dataset: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [f"data.dataset={dataset}", f"output.output_dir={out}", "task=inpaint",
                                           "output.validation_steps=0", *overrides])  # fmt: skip


def test_mask_channel_is_zero_initialised_and_saved(tmp_path):
    """Converting a ControlNet adds a 4th condition channel that changes nothing until trained, and survives
    save_pretrained / from_pretrained."""
    from diffusers import ControlNetModel

    comps = tiny_components()
    cn, unet = comps["controlnet"], comps["unet"]
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 500])
    text = torch.randn(2, 77, unet.config.cross_attention_dim)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        before = cn(x, t, encoder_hidden_states=text, controlnet_cond=(image + 1) / 2, return_dict=False)
    add_mask_channel(cn)
    assert has_mask_channel(cn)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    with torch.no_grad():
        after = cn(x, t, encoder_hidden_states=text, controlnet_cond=control_condition(cn, image, mask),
                   return_dict=False)  # fmt: skip
    for a, b in zip([*before[0], before[1]], [*after[0], after[1]]):
        assert torch.equal(a, b)
    cn.save_pretrained(tmp_path / "cn")
    loaded = ControlNetModel.from_pretrained(tmp_path / "cn")
    assert has_mask_channel(loaded) and torch.equal(
        loaded.controlnet_cond_embedding.conv_in.weight, cn.controlnet_cond_embedding.conv_in.weight
    )
    with pytest.raises(ValueError, match="no mask channel"):
        control_condition(tiny_components()["controlnet"], image, mask)


def test_masked_region_loss_has_exactly_zero_gradient_outside_the_mask(dataset, tmp_path, monkeypatch):
    """Diffusion, facial and identity losses on the composite: the model output gets gradient only inside the
    (latent-grid) mask, and does get it there."""
    run = setup_run(_cfg(dataset, tmp_path / "o", "facial.weight=1.0", "identity.weight=0.5",
                         "facial.mode=constant", "identity.mode=constant", "data.occlusion_prob=1.0"))  # fmt: skip
    obj = run.objective
    batch = next(iter(run.loader))
    assert batch["mask"].shape == (2, 1, 64, 64) and batch["mask"].sum() > 0
    leaf = {}

    def model_output(*args, **kwargs):
        leaf["pred"] = torch.randn(2, 4, 8, 8, requires_grad=True)
        return leaf["pred"]

    monkeypatch.setattr(obj, "model_output", model_output)
    losses = obj(batch, run.unet, run.controlnet, run.accelerator.autocast)
    losses.loss.backward()
    grad = leaf["pred"].grad
    m = latent_mask(batch["mask"], (8, 8)).expand_as(grad)
    assert m.sum() > 0 and (m == 0).sum() > 0
    assert grad[m == 0].abs().max() == 0
    assert grad[m == 1].abs().max() > 0
    assert losses.parts["identity_samples"] > 0


def test_control_image_carries_the_mask(dataset, tmp_path):
    run = setup_run(_cfg(dataset, tmp_path / "c"))
    assert has_mask_channel(run.comps["controlnet"])
    batch = next(iter(run.loader))
    control = run.objective.control_image(batch, batch["lq"])
    assert control.shape == (2, 4, 64, 64) and torch.equal(control[:, 3:], batch["mask"])


def test_inpaint_training_resumes_exactly(dataset, straight_and_resumed):
    from safetensors.torch import load_file

    full, resumed = straight_and_resumed(functools.partial(_cfg, dataset), steps=4, every=2)

    for name in (LORA_WEIGHT_NAME, "controlnet/diffusion_pytorch_model.safetensors"):
        a, b = load_file(full / name), load_file(resumed / name)
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst < 1e-5, (name, worst)
    steps = [json.loads(x)["step"] for x in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((full / "controlnet" / "config.json").read_text())["conditioning_channels"] == 4


def test_restore_with_an_inpainting_model_keeps_unmasked_pixels(dataset, tmp_path, astronaut, monkeypatch):
    """`authface restore --mask FILE --keep-unmasked` with a model trained by --task inpaint: the ControlNet gets
    the 4-channel condition, and every pixel outside the mask is the input's."""
    from authface.cli import main

    model = train(_cfg(dataset, tmp_path / "m", "optim.max_steps=1", "output.validation_steps=1"))
    assert (model / "validation" / "step-000001.png").is_file()
    (tmp_path / "in").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "in" / "a.png")
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    mask[200:260, 150:260] = 255  # over the mouth and chin
    Image.fromarray(mask).save(tmp_path / "mask.png")
    from diffusers import ControlNetModel

    seen = []
    forward = ControlNetModel.forward
    monkeypatch.setattr(ControlNetModel, "forward",
                        lambda self, *a, **k: seen.append(k["controlnet_cond"].shape[1]) or forward(self, *a, **k))  # fmt: skip
    rc = main(["restore", str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "out"), "--model", str(model),
               "--mask", str(tmp_path / "mask.png"), "--keep-unmasked", "--steps", "2", "--device", "cpu",
               "--set", "face.crop_size=64"])  # fmt: skip
    assert rc == 0 and set(seen) == {4}
    out = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGB"))
    outside = mask == 0
    assert np.array_equal(out[outside], astronaut[outside])
    assert not np.array_equal(out[~outside], astronaut[~outside])


def test_inpaint_settings_are_checked(dataset, tmp_path):
    with pytest.raises(ConfigError, match="train_controlnet"):
        _cfg(dataset, tmp_path / "x", "model.train_controlnet=false")
    with pytest.raises(ConfigError, match="one_step"):
        _cfg(dataset, tmp_path / "x", "model.one_step=true")


def test_training_script_task_flag_trains_an_inpainter(dataset, tmp_path, train_script):
    out = tmp_path / "inpaint-run"
    rc = train_script(["--config", str(TINY), "--data", str(dataset), "--output", str(out), "--max-steps", "2",
                      "--task", "inpaint", "--set", "output.validation_steps=0"])  # fmt: skip
    assert rc == 0
    assert json.loads((out / "controlnet" / "config.json").read_text())["conditioning_channels"] == 4
    record = json.loads((out / "authface_train.json").read_text())
    assert record["config"]["task"] == "inpaint"


def test_whole_faces_train_plain_restoration_with_an_empty_mask_channel(dataset, tmp_path, monkeypatch):
    """A face drawn without an occlusion: empty mask channel, diffusion loss over the whole latent, x̂0 itself."""
    from authface.training.inpaint import loss_mask

    run = setup_run(_cfg(dataset, tmp_path / "w", "data.occlusion_prob=0.0"))
    batch = next(iter(run.loader))
    assert batch["mask"].abs().max() == 0
    obj = run.objective
    assert obj.control_image(batch, batch["lq"])[:, 3:].abs().max() == 0
    assert torch.equal(loss_mask(batch["mask"], (8, 8)), torch.ones(2, 1, 8, 8))
    pred, target = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert torch.allclose(obj.sample_mse(pred, target, batch), ((pred - target) ** 2).mean(dim=(1, 2, 3)))
    x0, z = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert torch.equal(obj.composite(x0, z, batch), x0)


def test_a_mask_channel_controlnet_trains_on_as_a_restorer(dataset, tmp_path):
    """task restore from an inpainter's ControlNet (4 condition channels): an empty mask channel, as the restorer's
    plain pass gives it, instead of a convolution shape error."""
    inpainter = train(_cfg(dataset, tmp_path / "inp", "optim.max_steps=1"))
    cfg = load_config(TrainConfig, TINY, [f"data.dataset={dataset}", f"output.output_dir={tmp_path / 'r'}",
                                          "output.validation_steps=0", "optim.max_steps=1",
                                          f"model.controlnet={inpainter / 'controlnet'}"])  # fmt: skip
    run = setup_run(cfg)
    assert run.objective.mask_channel and has_mask_channel(run.comps["controlnet"])
    batch = next(iter(run.loader))
    assert "mask" not in batch
    losses = run.objective(batch, run.unet, run.controlnet, run.accelerator.autocast)
    assert torch.isfinite(losses.loss)


def test_mask_tensor_reads_every_form_alike():
    from authface.models.mask_channel import mask_tensor

    like = torch.zeros(2, 3, 4, 4)
    soft = torch.zeros(2, 1, 4, 4)
    soft[0, 0, 1, 1] = 0.3
    as_arrays = [np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8)]
    as_arrays[0][1, 1] = 0.3
    assert torch.equal(mask_tensor(soft, like), mask_tensor(as_arrays, like))
    assert mask_tensor(soft, like)[0, 0, 1, 1] == 1
    with pytest.raises(ValueError, match="one \\(H, W\\) = \\(4, 4\\) mask per crop"):
        mask_tensor([np.zeros((4, 4)), np.zeros((5, 5))], like)
    with pytest.raises(ValueError, match="mask per crop"):
        mask_tensor(torch.zeros(3, 4, 4), like)


def test_inpainting_encodes_through_the_pipeline_encoder(monkeypatch):
    """The known region's latents come from pipe.encode_image (which upcasts SDXL's fp16 VAE), not a raw VAE call."""
    from authface.inpaint import _encode
    from authface.testing.tiny_model import tiny_pipeline

    pipe = tiny_pipeline()
    seen = []
    encode = pipe.encode_image
    monkeypatch.setattr(pipe, "encode_image", lambda x: seen.append(x.dtype) or encode(x))
    latents = _encode(pipe, np.zeros((1, 64, 64, 3), np.uint8))
    assert seen == [torch.float32] and latents.shape == (1, 4, 8, 8)


@pytest.mark.parametrize("occlusions", ["paint", "all"])
def test_dataset_draws_each_occlusion_kind(dataset, occlusions):
    """`data.occlusions` paint gives painted strokes (flat paint inside the mask); all mixes the three kinds."""
    from authface.data.dataset import FaceRestorationDataset
    from authface.data.prepare import read_manifest

    records = read_manifest(dataset)
    ds = FaceRestorationDataset(
        records, resolution=128, regions=(), occlusions=occlusions, occlusion_prob=1.0
    )
    kinds = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            hq = ds.load_hq(i)
            occluded, mask = ds.occlude(hq, i)
            assert mask.any() and np.array_equal(ds.occlude(hq, i)[0], occluded)  # seeded by (epoch, index)
            _, counts = np.unique(occluded[mask > 0], axis=0, return_counts=True)  # one flat colour, AA rims
            painted = np.array_equal(occluded[mask == 0], hq[mask == 0]) and counts.max() > 0.5 * counts.sum()
            kinds.add("paint" if painted else "other")
    assert kinds == ({"paint"} if occlusions == "paint" else {"paint", "other"})
    with pytest.raises(ValueError, match="paint, both or all"):
        FaceRestorationDataset(records, resolution=64, regions=(), occlusions="scribbles")
