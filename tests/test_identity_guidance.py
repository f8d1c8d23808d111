"""Identity guidance with the default model (dlib's ResNet in torch): it raises the dlib similarity to a reference
face as its scale grows, on the tiny pipeline, with no download."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from authface.guidance import IdentityGuidance
from authface.models.dlib_judge import DlibFaceJudge
from authface.models.identity import identity_encoder_for


@pytest.fixture(scope="module")
def setup(astronaut):
    from authface.face import create_detector
    from authface.face.stage import FaceStage
    from authface.testing.tiny_model import tiny_pipeline

    crop = FaceStage(create_detector("dlib"), crop_size=128).align(astronaut)[0].crop
    return tiny_pipeline(seed=0), crop, identity_encoder_for(None), DlibFaceJudge()


def _embed(encoder, images: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return encoder.embed(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1)


def test_default_identity_guidance_raises_dlib_similarity_over_scales(setup):
    """The dlib ResNet's similarity of the output to the reference face rises over scales 0, s, 2s."""
    pipe, crop, encoder, _ = setup
    reference = _embed(encoder, crop[None])[0]
    sims = []
    for scale in (0.0, 0.1, 0.2):  # measured: 0.864, 0.893, 0.908 (it peaks near 0.3 on this random model)
        objectives = [IdentityGuidance(encoder, scale, reference=reference)] if scale else []
        out = pipe(image=[crop], num_inference_steps=4, strength=1.0, guidance_scale=1.0, output_type="np",
                   objectives=objectives, generator=[torch.Generator().manual_seed(0)])  # fmt: skip
        sims.append(float(_embed(encoder, np.asarray(out.images)[:1])[0] @ reference))
    assert sims[0] < sims[1] < sims[2], sims


def test_identity_guidance_accepts_the_default_encoder_and_refuses_the_judge(setup):
    _, _, encoder, judge = setup
    assert encoder.differentiable
    IdentityGuidance(encoder, 1.0)
    with pytest.raises(ValueError, match="differentiable"):
        IdentityGuidance(judge, 1.0)
