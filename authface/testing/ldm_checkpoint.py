"""Diffusers models -> single-file checkpoints with the original (LDM / ControlNet) key layout, for tests.

The original Stable Diffusion checkpoints (``v1-5-pruned-emaonly.safetensors``, ``sd_xl_base_1.0.safetensors``,
``control_v11f1e_sd15_tile.pth``) store the CompVis/Stability LDM module tree: ``model.diffusion_model.*`` (UNet
``input_blocks`` / ``middle_block`` / ``output_blocks``), ``first_stage_model.*`` (VAE ``encoder.down.*``),
``cond_stage_model.transformer.*`` (SD 1.x CLIP, transformers' layout), ``conditioner.embedders.0.transformer.*``
and ``conditioner.embedders.1.model.*`` (SDXL's CLIP and OpenCLIP, the latter with fused ``in_proj`` q/k/v and a
transposed ``text_projection``), ``control_model.*`` (ControlNet, with ``zero_convs`` and ``input_hint_block``).

diffusers only converts that layout *to* its own (``diffusers.loaders.single_file_utils``). This module is the
inverse of those functions, derived from the same maps (``DIFFUSERS_TO_LDM_MAPPING`` and the index arithmetic of
``convert_ldm_unet_checkpoint`` / ``convert_controlnet_checkpoint`` / ``convert_ldm_vae_checkpoint`` /
``convert_open_clip_checkpoint``), and general in the number of blocks and layers per block, so it serves both
full-size replicas and tiny test models. ``from_single_file`` on its output gives back the same tensors.

It is test tooling: the library never imports it.
"""

from __future__ import annotations

import re

import torch

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
          "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}  # fmt: skip
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}  # fmt: skip


def _ldm_maps(kind: str) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    return DIFFUSERS_TO_LDM_MAPPING[kind]


def _rename(rest: str, table: dict) -> str:
    for new, old in table.items():
        if rest == new or rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def _blocks_to_ldm(key: str, config: dict, up_has_attention: list[bool]) -> str | None:
    """The LDM name of a UNet/ControlNet down, mid or up block key (``None`` if it is none of those)."""
    per = config["layers_per_block"] + 1  # LDM input/output blocks per diffusers block
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key)
    if m:
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":
            return f"input_blocks.{(b + 1) * per}.0.op.{rest.removeprefix('conv.')}"
        index = 1 + b * per + j
        return f"input_blocks.{index}.0.{_rename(rest, RESNET)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        kind, j, rest = m[1], int(m[2]), m[3]
        return f"middle_block.{2 * j}.{_rename(rest, RESNET)}" if kind == "resnets" else f"middle_block.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "upsamplers":
            return f"output_blocks.{b * per + per - 1}.{2 if up_has_attention[b] else 1}.{rest}"
        index = b * per + j
        return f"output_blocks.{index}.0.{_rename(rest, RESNET)}" if kind == "resnets" else f"output_blocks.{index}.1.{rest}"
    return None


def _embeddings_to_ldm(key: str, maps: dict, config: dict) -> str | None:
    if key in maps["layers"]:
        return maps["layers"][key]
    if config.get("class_embed_type") in ("timestep", "projection") and key in maps["class_embed_type"]:
        return maps["class_embed_type"][key]
    if config.get("addition_embed_type") == "text_time" and key in maps["addition_embed_type"]:
        return maps["addition_embed_type"][key]
    return None


def unet_to_ldm(state: dict, config: dict) -> dict:
    """A diffusers ``UNet2DConditionModel`` state dict -> LDM keys (without ``model.diffusion_model.``)."""
    maps = _ldm_maps("unet")
    up_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    out = {}
    for key, value in state.items():
        name = _embeddings_to_ldm(key, maps, config) or _blocks_to_ldm(key, config, up_attn)
        if name is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out[name] = value
    return out


def controlnet_to_ldm(state: dict, config: dict) -> dict:
    """A diffusers ``ControlNetModel`` state dict -> the original ControlNet keys (without ``control_model.``):
    ``zero_convs.N.0``, ``middle_block_out.0``, ``input_hint_block.{0,2,...,14}``."""
    maps = _ldm_maps("controlnet")
    out = {}
    for key, value in state.items():
        name = _embeddings_to_ldm(key, maps, config)
        if name is None:
            m = re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key)
            c = re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", key)
            if m:
                name = f"zero_convs.{m[1]}.0.{m[2]}"
            elif c:
                name = f"input_hint_block.{2 * (int(c[1]) + 1)}.{c[2]}"
            elif key.startswith("controlnet_mid_block."):
                name = "middle_block_out.0." + key.removeprefix("controlnet_mid_block.")
            else:
                name = _blocks_to_ldm(key, config, [])
        if name is None:
            raise KeyError(f"no LDM name for ControlNet key {key}")
        out[name] = value
    return out


def vae_to_ldm(state: dict, config: dict) -> dict:
    """A diffusers ``AutoencoderKL`` state dict -> LDM keys (without ``first_stage_model.``); attention
    projections become 1x1 convolutions as in the original checkpoints."""
    direct = _ldm_maps("vae")
    n_up = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        if key in direct:
            out[direct[key]] = value
            continue
        part, rest = key.split(".", 1)
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            name = f"down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.(.*)", rest):
            name = f"down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            name = f"up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", rest):
            name = f"up.{n_up - 1 - int(m[1])}.upsample.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
            name = f"mid.block_{int(m[1]) + 1}.{m[2]}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", rest):
            name = "mid.attn_1." + _rename(m[1], VAE_ATTENTION)
            value = value.reshape(*value.shape, 1, 1) if value.ndim == 2 else value
        else:
            raise KeyError(f"no LDM name for VAE key {key}")
        out[f"{part}.{name.replace('conv_shortcut', 'nin_shortcut')}"] = value
    return out


def clip_to_ldm(state: dict) -> dict:
    """A transformers ``CLIPTextModel`` state dict -> the transformers-4 layout the LDM checkpoints store
    (``text_model.*``; transformers >= 5.6 saves it flat)."""
    return {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def open_clip_to_ldm(state: dict) -> dict:
    """A transformers ``CLIPTextModelWithProjection`` state dict -> OpenCLIP keys (without the embedder prefix):
    ``transformer.resblocks.N.*`` with fused ``attn.in_proj_{weight,bias}``, ``token_embedding``,
    ``positional_embedding``, ``ln_final``, and ``text_projection`` stored transposed (width, projection)."""
    out = {"text_projection": state["text_projection.weight"].T.contiguous()}
    state = clip_to_ldm({k: v for k, v in state.items() if not k.startswith("text_projection")})
    direct = _ldm_maps("openclip")["layers"]
    qkv: dict = {}
    for key, value in state.items():
        if key in direct:
            out[direct[key]] = value
            continue
        m = re.match(r"text_model\.encoder\.layers\.(\d+)\.(.*)", key)
        if not m:
            if key.endswith("position_ids"):
                continue
            raise KeyError(f"no OpenCLIP name for key {key}")
        layer, rest = m[1], m[2]
        if q := re.match(r"self_attn\.([qkv])_proj\.(weight|bias)", rest):
            qkv.setdefault((layer, q[2]), {})[q[1]] = value
            continue
        out[f"transformer.resblocks.{layer}.{_rename(rest, OPEN_CLIP_LAYER)}"] = value
    for (layer, kind), parts in qkv.items():
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def ldm_state_dict(states: dict, configs: dict) -> dict:
    """The single-file checkpoint of a Stable Diffusion (1.x) or SDXL base from component state dicts:
    ``states`` holds ``unet``, ``vae``, ``text_encoder`` (+ ``text_encoder_2`` for SDXL); ``configs`` the UNet's
    and VAE's config dicts (``unet``, ``vae``). Tensors are shared, not copied."""
    out = {f"model.diffusion_model.{k}": v for k, v in unet_to_ldm(states["unet"], configs["unet"]).items()}
    out |= {f"first_stage_model.{k}": v for k, v in vae_to_ldm(states["vae"], configs["vae"]).items()}
    clip = clip_to_ldm(states["text_encoder"])
    if states.get("text_encoder_2") is None:
        return out | {f"cond_stage_model.transformer.{k}": v for k, v in clip.items()}
    out |= {f"conditioner.embedders.0.transformer.{k}": v for k, v in clip.items()}
    open_clip = open_clip_to_ldm(states["text_encoder_2"])
    return out | {f"conditioner.embedders.1.model.{k}": v for k, v in open_clip.items()}


def pipeline_to_ldm(components: dict) -> dict:
    """:func:`ldm_state_dict` of loaded components (``unet``, ``vae``, ``text_encoder``, optional
    ``text_encoder_2``)."""
    names = [n for n in ("unet", "vae", "text_encoder", "text_encoder_2") if components.get(n) is not None]
    states = {n: components[n].state_dict() for n in names}
    return ldm_state_dict(states, {n: dict(components[n].config) for n in ("unet", "vae")})


def controlnet_checkpoint(controlnet) -> dict:
    """The single-file checkpoint of a ControlNet, as lllyasviel's ``control_*.pth`` files store it
    (``control_model.*``)."""
    state = controlnet_to_ldm(controlnet.state_dict(), dict(controlnet.config))
    return {f"control_model.{k}": v for k, v in state.items()}
