"""One training micro-batch: the generator step (UNet LoRA / ControlNet / quality prior) and the region
discriminators' step.

* The discriminators are frozen (``requires_grad`` False) while the generator loss is computed and
  back-propagated, so the generator's GAN and style gradients never reach their ``.grad``; the generator step calls
  the plain module, never the DDP wrapper (a wrapper called without a backward through its parameters would leave
  DDP waiting for a reduction).
* The discriminators' gradients come from their own loss only (their gradients are zeroed after every step, and
  nothing else writes into them), are accumulated like the generator's over
  ``optim.gradient_accumulation_steps`` micro-batches, and their optimiser steps only when gradients sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .objective import BatchLosses


@contextmanager
def frozen(module: torch.nn.Module | None) -> Iterator[None]:
    """Within the block, no parameter of ``module`` requires a gradient (restored afterwards; None: no-op)."""
    if module is None:
        yield
        return
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def generator_step(run, batch: dict) -> BatchLosses:
    """The objective of ``batch``, its backward with the discriminators frozen, and (when gradients sync) the
    clipped optimiser and LR-scheduler steps. Call inside ``accelerator.accumulate``; ``run``: a
    :class:`~.loop.TrainingRun`."""
    acc, optim = run.accelerator, run.cfg.optim
    with frozen(run.objective.facial.discriminators):
        losses = run.objective(batch, run.unet, run.controlnet, acc.autocast)
        acc.backward(losses.loss)
    if acc.sync_gradients and optim.max_grad_norm:
        acc.clip_grad_norm_(run.trainable, optim.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return losses


def discriminator_step(run, losses: BatchLosses) -> None:
    """Back-propagate the discriminators' loss on ``losses``' batch (through the prepared discriminators) and, when
    gradients sync, step their optimiser and zero their gradients. Adds ``facial_gan_d`` to ``losses.parts``. No-op
    when the discriminators are off or the batch has no predicted clean latent."""
    if run.disc_optimizer is None or losses.pred_x0 is None or not run.objective.use_facial:
        return
    acc = run.accelerator
    d_loss = run.objective.discriminator_loss(losses, run.discriminators)
    acc.backward(d_loss)
    if acc.sync_gradients:
        run.disc_optimizer.step()
        run.disc_optimizer.zero_grad(set_to_none=True)
    losses.parts["facial_gan_d"] = d_loss.detach()


def optimise_batch(run, batch: dict) -> BatchLosses:
    """One micro-batch: :func:`generator_step` then :func:`discriminator_step`, under ``accelerator.accumulate``
    of every trained model (the discriminators included, so DDP skips their all-reduce between syncs)."""
    models = [*run.models, *([run.discriminators] if run.discriminators is not None else [])]
    with run.accelerator.accumulate(*models):
        losses = generator_step(run, batch)
        discriminator_step(run, losses)
    return losses
