"""Fine-tuning: LoRA on the UNet + a ControlNet on the degraded face (+ the image-quality prior), trained with
the diffusion loss and the time-aware latent facial feature loss, through accelerate (CPU, one GPU or many).

``training/train.py`` (``accelerate launch training/train.py --config ... --data DATASET``) and ``authface train``
are the entry points (argument parsing in :mod:`authface.cli.train`); the logic lives here:

* :mod:`.components`: what is trained (base and ControlNet through :mod:`authface.models.loading`, peft LoRA, the
  quality prior, the optimiser); the one documented door to the tiny random test models.
* :mod:`.data`: the checked dataset and its deterministic loader.
* :mod:`.objective`: the loss of one batch.
* :mod:`.loop`: :func:`train`, the accelerate loop (:func:`setup_run`: everything before the first step).
* :mod:`.steps`: one micro-batch: the generator step, the region discriminators' step.
* :mod:`.checkpoints`: save (completion marker last), resume (``latest``: newest complete), total-limit pruning.
* :mod:`.tracking`: ``train_log.jsonl`` and trackers; :mod:`.validation`: grids; :mod:`.export`: the model folder.

The output folder is an AuthFace model folder (``authface restore --model OUT``) with the LoRA fused into its
UNet, plus the LoRA alone as ``pytorch_lora_weights.safetensors`` for plain diffusers.
"""

from .checkpoints import (
    COMPLETE_MARKER,
    LATEST,
    ResumePoint,
    checkpoint_step,
    is_complete,
    list_checkpoints,
    prune_checkpoints,
)
from .components import load_components, tiny_random_components
from .data import TrainingDataError, check_images
from .export import LORA_WEIGHT_NAME, TRAIN_CONFIG_NAME
from .loop import TrainingRun, setup_run, train
from .steps import discriminator_step, generator_step, optimise_batch
from .tracking import TRAIN_LOG, loss_trend, read_losses

__all__ = [
    "COMPLETE_MARKER",
    "LATEST",
    "LORA_WEIGHT_NAME",
    "TRAIN_CONFIG_NAME",
    "TRAIN_LOG",
    "ResumePoint",
    "TrainingDataError",
    "TrainingRun",
    "check_images",
    "checkpoint_step",
    "discriminator_step",
    "generator_step",
    "is_complete",
    "list_checkpoints",
    "load_components",
    "loss_trend",
    "optimise_batch",
    "prune_checkpoints",
    "read_losses",
    "setup_run",
    "tiny_random_components",
    "train",
]
