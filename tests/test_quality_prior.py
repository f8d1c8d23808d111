"""The image-quality prior: zero-initialised (plug-and-play), steers when trained, survives save/load."""

from __future__ import annotations

import pytest
import torch

from authface.models.quality_prior import add_quality_prior, has_quality_prior, quality_labels
from authface.pipeline import AuthFacePipeline
from authface.testing.tiny_model import tiny_pipeline

KW = dict(num_inference_steps=2, strength=1.0, output_type="pt", color_fix="none")


def run(pipe, **kw):
    return pipe(torch.zeros(1, 3, 64, 64), generator=[torch.Generator().manual_seed(0)], **KW, **kw).images


def test_zero_init_prior_changes_nothing_then_steers_after_training(tmp_path):
    base = run(tiny_pipeline(seed=0))
    pipe = tiny_pipeline(seed=0)
    add_quality_prior(pipe.controlnet)
    assert has_quality_prior(pipe.controlnet)
    assert torch.equal(run(pipe, quality_score=0.9), base)  # plug-and-play
    torch.manual_seed(0)
    torch.nn.init.normal_(pipe.controlnet.class_embedding.linear_2.weight, std=0.5)  # "trained"
    lo, hi = run(pipe, quality_score=0.1), run(pipe, quality_score=0.9)
    assert (lo - hi).abs().max() > 1e-3
    assert torch.equal(run(pipe), hi)  # default quality is 0.9
    pipe.save_pretrained(tmp_path / "m")
    loaded = AuthFacePipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    assert has_quality_prior(loaded.controlnet)
    assert torch.equal(run(loaded, quality_score=0.1), lo)


def test_quality_score_errors():
    with pytest.raises(ValueError, match="no image-quality prior"):
        run(tiny_pipeline(seed=0), quality_score=0.5)
    pipe = tiny_pipeline(seed=0)
    add_quality_prior(pipe.controlnet)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run(pipe, quality_score=1.5)
    assert quality_labels(0.25, 3, "cpu").tolist() == [250.0, 250.0, 250.0]
