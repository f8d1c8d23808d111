"""The image-quality prior: a zero-initialised embedding of a quality score added to the ControlNet's time
embedding, so a model trained with each image's own score can be asked for "quality 0.9" at sampling time.

It uses diffusers' own ``class_embed_type="timestep"`` path of ``ControlNetModel`` (score × 1000 → sinusoidal
features → ``TimestepEmbedding`` MLP → added to the time embedding), so a model with the prior saves, loads and
runs through plain diffusers code. The MLP's last layer starts at zero: before training, the prior changes
nothing (plug-and-play on any pretrained ControlNet).
"""

from __future__ import annotations

import torch

QUALITY_SCALE = 1000.0
"""Scores in [0, 1] are mapped to the timestep range [0, 1000] before the sinusoidal projection."""
DEFAULT_QUALITY = 0.9
"""The score asked for when a model has the prior and the caller gives none: better than the average photo."""


def has_quality_prior(controlnet) -> bool:
    """Whether ``controlnet`` (a diffusers ``ControlNetModel``) has the quality embedding."""
    return (
        getattr(controlnet.config, "class_embed_type", None) == "timestep"
        and controlnet.class_embedding is not None
    )


def add_quality_prior(controlnet) -> None:
    """Give ``controlnet`` a zero-initialised quality embedding (in place; no-op if it has one).

    The embedding's first layer is randomly initialised from the global torch RNG; its last layer is zero.

    Raises:
        ValueError: the ControlNet has a class embedding of another kind.
    """
    from diffusers.models.embeddings import TimestepEmbedding

    if has_quality_prior(controlnet):
        return
    if controlnet.class_embedding is not None:
        raise ValueError(
            "this ControlNet already has a class embedding of another kind; cannot add the quality prior"
        )
    in_dim = controlnet.time_embedding.linear_1.in_features
    out_dim = controlnet.time_embedding.linear_2.out_features
    emb = TimestepEmbedding(in_dim, out_dim)
    torch.nn.init.zeros_(emb.linear_2.weight)
    torch.nn.init.zeros_(emb.linear_2.bias)
    controlnet.class_embedding = emb.to(device=controlnet.device, dtype=controlnet.dtype)
    controlnet.register_to_config(class_embed_type="timestep")


def quality_labels(score, batch: int, device, dtype=torch.float32) -> torch.Tensor:
    """Scores (float or (B,) tensor in [0, 1]) -> ControlNet ``class_labels`` (B,) in [0, 1000], ``dtype``.

    Raises:
        ValueError: a score outside [0, 1].
    """
    score = torch.as_tensor(score, dtype=torch.float32, device=device)
    if score.ndim == 0:
        score = score.expand(batch)
    if ((score < 0) | (score > 1)).any():
        raise ValueError(f"quality scores must be in [0, 1], got {score.tolist()}")
    return (score * QUALITY_SCALE).to(dtype)
