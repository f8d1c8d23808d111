"""The inpainting mask as a fourth channel of the ControlNet condition.

A ControlNet trained with ``training/train.py --task inpaint`` sees the degraded crop (RGB in [0, 1]) and the mask
of the region to generate (1 = generate) as one (B, 4, H, W) condition. An existing 3-channel ControlNet (made from
the UNet, or a tile ControlNet) is converted by widening the first convolution of its condition embedding
(``controlnet_cond_embedding.conv_in``) to 4 input channels, the new channel's weights set to zero: the converted
ControlNet computes exactly what it computed before until training teaches it to use the mask (the zero-init of
ControlNet's own zero convolutions, Zhang et al., "Adding Conditional Control to Text-to-Image Diffusion Models",
ICCV 2023). diffusers' ``ControlNetModel`` keeps the width in its config (``conditioning_channels``), so the
converted model saves and loads with ``save_pretrained`` / ``from_pretrained`` unchanged.
"""

from __future__ import annotations

import torch

MASK_CHANNELS = 4
"""``conditioning_channels`` of a ControlNet with the mask channel: RGB + mask."""


def has_mask_channel(controlnet) -> bool:
    """Whether ``controlnet`` takes the (B, 4, H, W) RGB + mask condition."""
    return int(getattr(controlnet.config, "conditioning_channels", 3)) == MASK_CHANNELS


def add_mask_channel(controlnet) -> None:
    """Widen ``controlnet``'s condition to RGB + mask, the mask channel zero-initialised (module docstring).

    In place; the converted ControlNet's output is unchanged for any mask. No-op when it already has the channel.

    Raises:
        ValueError: a ControlNet whose condition is not 3 (RGB) or 4 channels.
    """
    if has_mask_channel(controlnet):
        return
    conv = controlnet.controlnet_cond_embedding.conv_in
    if conv.in_channels != 3:
        raise ValueError(f"cannot add a mask channel to a ControlNet with {conv.in_channels} condition channels")
    wide = torch.nn.Conv2d(MASK_CHANNELS, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           device=conv.weight.device, dtype=conv.weight.dtype)  # fmt: skip
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, :3] = conv.weight
        wide.bias.copy_(conv.bias)
    wide.requires_grad_(conv.weight.requires_grad)
    controlnet.controlnet_cond_embedding.conv_in = wide
    controlnet.register_to_config(conditioning_channels=MASK_CHANNELS)


def mask_tensor(mask, like: torch.Tensor) -> torch.Tensor:
    """``mask`` as float32 (B, 1, H, W) in {0, 1} on ``like``'s device, for crops ``like`` (B, 3, H, W): a tensor
    (B, 1, H, W) or (B, H, W), or a sequence of B bool/uint8/float (H, W) arrays; nonzero = generate, for every
    form.

    Raises:
        ValueError: another number of masks or another size than the crops (named, with the expected size).
    """
    expected = (like.shape[0], 1, *like.shape[2:])
    if not isinstance(mask, torch.Tensor):
        import numpy as np

        arrays = [np.asarray(m) for m in mask]
        sizes = sorted({a.shape for a in arrays})
        if len(arrays) != like.shape[0] or sizes != [tuple(like.shape[2:])]:
            raise ValueError(f"mask must be one (H, W) = {tuple(like.shape[2:])} mask per crop ({like.shape[0]}), "
                             f"got {len(arrays)} of sizes {sizes}")  # fmt: skip
        mask = torch.from_numpy(np.stack([a != 0 for a in arrays]))
    mask = mask[:, None] if mask.ndim == 3 else mask
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must be one (H, W) = {tuple(like.shape[2:])} mask per crop ({like.shape[0]}), "
                         f"got {tuple(mask.shape)}")  # fmt: skip
    return (mask.to(like.device) != 0).float()


def control_condition(controlnet, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The ControlNet condition of crops ``image`` ([-1, 1] RGB, (B, 3, H, W)): the crops in [0, 1], and for a
    ControlNet with the mask channel the ``mask`` ((B, 1, H, W) in [0, 1], 1 = generate; None = zeros, i.e. plain
    restoration) as a fourth channel. Same dtype and device as ``image``.

    Raises:
        ValueError: a ``mask`` for a ControlNet without the mask channel, or of another size.
    """
    if not has_mask_channel(controlnet):
        if mask is not None:
            raise ValueError(
                "this ControlNet has no mask channel (conditioning_channels 3); train one with "
                "training/train.py --task inpaint, or inpaint without a mask channel (authface.inpaint)"
            )
        return (image + 1) / 2
    return with_mask_channel(image, mask)


def with_mask_channel(image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The RGB + mask condition, (B, 4, H, W): crops ``image`` ([-1, 1] RGB, (B, 3, H, W)) in [0, 1], then ``mask``
    ((B, 1, H, W) in [0, 1], 1 = generate; None = zeros: plain restoration). The one definition of the layout, for
    the pipeline and for training. Raises ValueError for a mask of another size."""
    control = (image + 1) / 2
    if mask is None:
        mask = torch.zeros_like(control[:, :1])
    if mask.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ValueError(f"mask must be (B, 1, H, W) = {(image.shape[0], 1, *image.shape[2:])}, got {tuple(mask.shape)}")
    return torch.cat([control, mask.to(control)], dim=1)
