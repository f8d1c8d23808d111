"""Fine-tuning: LoRA on the UNet + a ControlNet on the degraded face (+ the image-quality prior), trained with
the diffusion loss and the time-aware latent facial feature loss, through accelerate (CPU, one GPU or many).

``training/train.py`` (``accelerate launch training/train.py --config ... --data DATASET``) and ``authface train``
are the entry points (argument parsing in :mod:`authface.cli.train`); the logic lives here:

* :mod:`.components`: what is trained (base and ControlNet through :mod:`authface.models.loading`, peft LoRA, the
  quality prior, the optimiser); the one documented door to the tiny random test models.
* :mod:`.data`: the checked dataset and its deterministic loader.
* :mod:`.objective`: the loss of one batch.
* :mod:`.loop`: :func:`train`, the accelerate loop.
* :mod:`.checkpoints`: save, resume (``latest``), total-limit pruning.
* :mod:`.tracking`: ``train_log.jsonl`` and trackers; :mod:`.validation`: grids; :mod:`.export`: the model folder.

The output folder is an AuthFace model folder (``authface restore --model OUT``) with the LoRA fused into its
UNet, plus the LoRA alone as ``pytorch_lora_weights.safetensors`` for plain diffusers.
"""

from .checkpoints import LATEST, ResumePoint, checkpoint_step, list_checkpoints, prune_checkpoints
from .components import load_components, tiny_random_components
from .data import TrainingDataError
from .export import LORA_WEIGHT_NAME, TRAIN_CONFIG_NAME
from .loop import train
from .tracking import TRAIN_LOG, loss_trend, read_losses

__all__ = [
    "LATEST",
    "LORA_WEIGHT_NAME",
    "TRAIN_CONFIG_NAME",
    "TRAIN_LOG",
    "ResumePoint",
    "TrainingDataError",
    "checkpoint_step",
    "list_checkpoints",
    "load_components",
    "loss_trend",
    "prune_checkpoints",
    "read_losses",
    "tiny_random_components",
    "train",
]
