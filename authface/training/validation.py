"""Validation grids during training: fixed degraded faces restored by the current models."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .. import io
from .export import assemble_pipeline

logger = logging.getLogger(__name__)

VALIDATION_STEPS = 20
"""Sampler steps of a validation restoration."""


@torch.no_grad()
def restore_validation_faces(pipe, dataset, n: int, prompt: str,
                             one_step: int | None = None) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """(LQ, restored, HQ), each ``[-1, 1]`` RGB ``(n, 3, R, R)`` on CPU, for the first ``n`` samples of epoch 0.

    ``one_step``: t* of a one-step run (the faces are restored in the one-step mode), else None (20 steps).
    Inpainting runs (samples with a ``mask``) give the masks to the ControlNet's mask channel.

    Epoch 0's degradations every time, so successive grids show the same inputs; the dataset's epoch is restored
    afterwards, and so is the train/eval mode of the pipeline's UNet and ControlNet.
    """
    saved_epoch = dataset.epoch
    dataset.set_epoch(0)
    items = [dataset[i] for i in range(n)]
    dataset.set_epoch(saved_epoch)
    lq = torch.stack([it["lq"] for it in items])
    hq = torch.stack([it["hq"] for it in items])
    models = (pipe.unet, pipe.controlnet)
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        mode = {} if one_step is None else {"one_step_timestep": one_step}
        if "mask" in items[0]:  # task inpaint: generate inside the faces' synthetic occlusions
            mode["mask"] = torch.stack([it["mask"] for it in items])
        out = pipe(lq, prompt=prompt, num_inference_steps=VALIDATION_STEPS, strength=1.0,
                   generator=[torch.Generator().manual_seed(i) for i in range(n)], color_fix="none",
                   output_type="pt", **mode).images  # fmt: skip
    finally:
        for m, flag in zip(models, was_training):
            m.train(flag)
    return lq, out.cpu().to(lq.dtype), hq


def validation_grid(lq: torch.Tensor, restored: torch.Tensor, hq: torch.Tensor):
    """uint8 RGB ``(3R, nR, 3)``: rows LQ | restored | HQ, one column per face (inputs ``(n, 3, R, R)``)."""
    grid = torch.cat([torch.cat(list(x), dim=2) for x in (lq, restored, hq)], dim=1)  # (3, 3R, nR)
    return io.tensor_to_numpy(grid.unsqueeze(0))[0]


def run_validation(accelerator, comps: dict, unet, controlnet, dataset, *, out: Path, step: int,
                   num_faces: int, prompt: str, tracker: str | None,
                   one_step: int | None = None) -> Path:  # fmt: skip
    """Write the grid of ``num_faces`` fixed faces at ``out/validation/step-<step>.png`` (and to TensorBoard when
    it is the tracker); returns the image path. Main process only."""
    pipe = assemble_pipeline(accelerator, comps, unet, controlnet)
    n = min(num_faces, len(dataset))
    with accelerator.autocast():  # frozen weights in the compute dtype, trained ones in float32
        arr = validation_grid(*restore_validation_faces(pipe, dataset, n, prompt, one_step))
    path = Path(out) / "validation" / f"step-{step:06d}.png"
    io.write_image(path, arr)
    if tracker == "tensorboard":
        for t in accelerator.trackers:
            if t.name == "tensorboard":
                t.writer.add_image("validation", arr, step, dataformats="HWC")
    logger.info("validation grid %s", path)
    return path
