"""Fine-tuning: LoRA on the UNet + a ControlNet on the degraded face (+ the image-quality prior), trained with
the diffusion loss and the time-aware latent facial feature loss, through accelerate (CPU, one GPU or many).

``training/train.py`` is the entry point (``accelerate launch training/train.py --config ... --data DATASET``);
the logic lives here. The output folder is an AuthFace model folder (``authface restore --model OUT``) with the
LoRA fused into its UNet, plus the LoRA alone as ``pytorch_lora_weights.safetensors`` for plain diffusers.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import TINY_RANDOM_BASE, TrainConfig, to_dict

logger = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


class TrainingDataError(ValueError):
    """The dataset cannot be trained on; the message lists every bad file or record."""


# ------------------------------------------------------------------------------------------------ components
def load_components(cfg: TrainConfig) -> dict:
    """vae, text_encoder, tokenizer, unet, controlnet, scheduler (inference) for training, on CPU in fp32."""
    from diffusers import ControlNetModel

    from .models.loading import load_base_components, load_controlnet

    m = cfg.model
    if m.base == TINY_RANDOM_BASE:
        from .testing.tiny_model import tiny_components

        comps = tiny_components(seed=cfg.seed)
    else:
        comps, _ = load_base_components(m.base, torch.float32, m.single_file_config, m.revision, m.variant)
    comps["controlnet"] = (
        ControlNetModel.from_unet(comps["unet"]) if m.controlnet is None
        else load_controlnet(m.controlnet, torch.float32, m.single_file_config, m.revision)
    )  # fmt: skip
    return comps


def _checkpoints(out: Path) -> list[Path]:
    found = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _prune_checkpoints(out: Path, limit: int | None) -> None:
    if not limit:
        return
    existing = _checkpoints(out)
    for old in existing[: max(0, len(existing) - limit + 1)]:
        shutil.rmtree(old)


def _optimizer(params, cfg: TrainConfig, lr: float):
    if cfg.optim.adam_8bit:
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=cfg.optim.weight_decay)
        except ImportError:
            logger.warning("optim.adam_8bit: bitsandbytes is not installed; using torch AdamW")
    return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.optim.weight_decay)


# ------------------------------------------------------------------------------------------------ training
def train(cfg: TrainConfig) -> Path:
    """Run a training job; returns the output (model) folder."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from .data.dataset import EpochSampler, FaceRestorationDataset, validate_images
    from .data.prepare import read_manifest
    from .losses import FacialFeatureLoss, min_snr_weight
    from .models.quality_prior import add_quality_prior, quality_labels

    if not cfg.data.dataset:
        raise TrainingDataError("no dataset: pass --data DATASET (a folder written by `authface prepare`)")
    out = Path(cfg.output.output_dir)
    log_with = None if cfg.output.log_with == "none" else cfg.output.log_with
    if log_with == "tensorboard":
        from accelerate.utils import is_tensorboard_available

        if not is_tensorboard_available():
            logger.warning("tensorboard is not installed: logging to %s/train_log.jsonl only", out)
            log_with = None
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps,
        mixed_precision=cfg.optim.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    set_seed(cfg.seed, device_specific=True)

    # 1. data: a validated manifest, every image decodable
    records = read_manifest(cfg.data.dataset)
    if cfg.data.validate_images:
        problems = validate_images(records)
        if problems:
            raise TrainingDataError("unreadable images in the dataset (fix or remove them, then re-run "
                                    "`authface prepare`):\n  " + "\n  ".join(problems))  # fmt: skip
    dataset = FaceRestorationDataset(records, cfg.data.resolution, cfg.data.degradation, cfg.seed,
                                     cfg.facial.regions, cfg.data.prompt)  # fmt: skip
    sampler = EpochSampler(len(dataset), cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.optim.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
        drop_last=len(dataset) >= cfg.optim.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),  # its own: starting an epoch never draws global RNG
    )  # fmt: skip

    # 2. models: frozen VAE/text encoder/UNet base; LoRA on the UNet; ControlNet (+ quality prior) trained
    comps = load_components(cfg)
    vae, text_encoder, tokenizer = comps["vae"], comps["text_encoder"], comps["tokenizer"]
    unet, controlnet, inference_scheduler = comps["unet"], comps["controlnet"], comps["scheduler"]
    noise_scheduler = DDPMScheduler.from_config(inference_scheduler.config)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.optim.mixed_precision, torch.float32)
    for module in (vae, text_encoder, unet, controlnet):
        module.requires_grad_(False)
    if cfg.model.train_lora:
        from peft import LoraConfig

        unet.add_adapter(LoraConfig(r=cfg.model.lora_rank, lora_alpha=cfg.model.lora_alpha, init_lora_weights="gaussian",
                                    target_modules=list(cfg.model.lora_targets)))  # fmt: skip
    if cfg.model.quality_prior:
        add_quality_prior(controlnet)
    if cfg.model.train_controlnet:
        controlnet.requires_grad_(True)
    elif cfg.model.quality_prior:
        controlnet.class_embedding.requires_grad_(True)
    if cfg.model.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        controlnet.enable_gradient_checkpointing()
    vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder.to(accelerator.device, dtype=weight_dtype)
    unet.to(accelerator.device)
    controlnet.to(accelerator.device)
    facial = FacialFeatureLoss(
        noise_scheduler.config.num_train_timesteps, cfg.facial.mode, cfg.facial.m, cfg.facial.s,
        cfg.facial.recon_weight, cfg.facial.style_weight, cfg.facial.gan_weight, cfg.facial.regions,
    ).to(accelerator.device)  # fmt: skip
    use_facial = cfg.facial.weight > 0 and cfg.facial.mode != "off"

    trainable = [p for m in (unet, controlnet) for p in m.parameters() if p.requires_grad]
    optimizer = _optimizer(trainable, cfg, cfg.optim.learning_rate)
    lr_scheduler = get_scheduler(
        cfg.optim.lr_scheduler, optimizer=optimizer,
        num_warmup_steps=cfg.optim.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.optim.max_steps * accelerator.num_processes,
    )  # fmt: skip
    models = [m for m in (unet, controlnet) if any(p.requires_grad for p in m.parameters())]
    prepared = accelerator.prepare(*models, optimizer, loader, lr_scheduler)
    models, (optimizer, loader, lr_scheduler) = list(prepared[: len(models)]), prepared[len(models) :]
    unet_t = models[0] if cfg.model.train_lora else unet
    controlnet_t = models[-1] if any(p.requires_grad for p in controlnet.parameters()) else controlnet
    disc_optimizer = None
    if facial.discriminators is not None:
        disc_optimizer = torch.optim.AdamW(facial.discriminators.parameters(), lr=cfg.facial.disc_learning_rate)
        facial.discriminators, disc_optimizer = accelerator.prepare(facial.discriminators, disc_optimizer)
    ema = None
    if cfg.optim.ema:
        ema = EMAModel(trainable, decay=cfg.optim.ema_decay)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    # 3. resume
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.optim.gradient_accumulation_steps))
    global_step, first_epoch, skip_batches = 0, 0, 0
    if cfg.output.resume_from_checkpoint:
        ref = cfg.output.resume_from_checkpoint
        path = (_checkpoints(out) or [None])[-1] if ref == "latest" else Path(ref)
        if path is None:
            logger.warning("resume_from_checkpoint=latest: no checkpoint in %s; starting fresh", out)
        elif not Path(path).is_dir():
            raise FileNotFoundError(f"checkpoint {path} does not exist (use 'latest' or a checkpoint-N folder)")
        else:
            accelerator.load_state(str(path))
            global_step = int(Path(path).name.split("-")[-1])
            first_epoch = global_step // steps_per_epoch
            skip_batches = (global_step % steps_per_epoch) * cfg.optim.gradient_accumulation_steps
            logger.info("resumed from %s at step %d", path, global_step)

    if log_with:
        accelerator.init_trackers("authface", config=_flat(to_dict(cfg)))
    alphas = noise_scheduler.alphas_cumprod.to(accelerator.device)
    pred_type = noise_scheduler.config.prediction_type
    sf = vae.config.scaling_factor
    vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
    log_path = out / "train_log.jsonl"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)

    def encode_text(captions: list[str]) -> torch.Tensor:
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(accelerator.device)  # fmt: skip
        with torch.no_grad():
            return text_encoder(ids)[0]  # (B, 77, D)

    # 4. loop
    unet_t.train()
    controlnet_t.train()
    num_epochs = math.ceil(cfg.optim.max_steps / steps_per_epoch)
    done = global_step >= cfg.optim.max_steps
    for epoch in range(first_epoch, num_epochs):
        if done:
            break
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        if hasattr(loader, "set_epoch"):  # accelerate's loader re-sets the sampler's epoch from its own counter
            loader.set_epoch(epoch)
        for batch_index, batch in enumerate(loader):
            if batch_index < skip_batches:  # resuming mid-epoch: the order is the same, so skip what was done
                continue
            with accelerator.accumulate(*models):
                hq = batch["hq"].to(accelerator.device, dtype=weight_dtype)
                lq = batch["lq"].to(accelerator.device, dtype=weight_dtype)
                b = hq.shape[0]
                with torch.no_grad():
                    latents = vae.encode(hq).latent_dist.sample() * sf  # (B, 4, R/8, R/8)
                latents = latents.float()
                noise = torch.randn_like(latents)
                t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (b,), device=latents.device)
                noisy = noise_scheduler.add_noise(latents, noise, t)
                captions = [c if torch.rand(()) >= cfg.data.caption_dropout else "" for c in batch["caption"]]
                embeds = encode_text(captions).to(weight_dtype)
                cn_kwargs = {}
                if cfg.model.quality_prior:
                    cn_kwargs["class_labels"] = quality_labels(batch["quality"].float(), b, latents.device)
                with accelerator.autocast():
                    down, mid = controlnet_t(noisy, t, encoder_hidden_states=embeds, controlnet_cond=(lq + 1) / 2,
                                             return_dict=False, **cn_kwargs)  # fmt: skip
                    pred = unet_t(noisy, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                                  mid_block_additional_residual=mid, return_dict=False)[0]  # fmt: skip
                pred = pred.float()
                target = noise if pred_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, t)
                mse = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))  # (B,)
                if cfg.optim.min_snr_gamma:
                    mse = mse * min_snr_weight(t, alphas, cfg.optim.min_snr_gamma, pred_type)
                diffusion_loss = mse.mean()
                loss, parts = diffusion_loss, {}
                if use_facial:
                    a = alphas[t].view(-1, 1, 1, 1).float()
                    if pred_type == "epsilon":
                        pred_x0 = (noisy - (1 - a).sqrt() * pred) / a.sqrt()
                    else:
                        pred_x0 = a.sqrt() * noisy - (1 - a).sqrt() * pred
                    boxes = batch["boxes"].to(latents.device) / vae_factor  # (B, R, 4) on the latent grid
                    facial_loss, parts = facial(pred_x0, latents, boxes, t)
                    loss = loss + cfg.facial.weight * facial_loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, cfg.optim.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if disc_optimizer is not None and use_facial:
                    d_loss = facial.discriminator_loss(pred_x0, latents, boxes)
                    accelerator.backward(d_loss)
                    disc_optimizer.step()
                    disc_optimizer.zero_grad(set_to_none=True)
                    parts["facial_gan_d"] = d_loss.detach()

            if not accelerator.sync_gradients:
                continue
            global_step += 1
            if ema is not None:
                ema.step(trainable)
            logs = {"loss": float(loss.detach()), "diffusion_loss": float(diffusion_loss.detach()),
                    "lr": lr_scheduler.get_last_lr()[0], **{k: float(v) for k, v in parts.items()}}  # fmt: skip
            if log_with:
                accelerator.log(logs, step=global_step)
            if accelerator.is_main_process:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": global_step, "epoch": epoch, **logs}) + "\n")
            if global_step % cfg.output.checkpointing_steps == 0:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    _prune_checkpoints(out, cfg.output.checkpoints_total_limit)
                accelerator.save_state(str(out / f"checkpoint-{global_step}"))
            if accelerator.is_main_process and cfg.output.validation_steps and \
                    global_step % cfg.output.validation_steps == 0:  # fmt: skip
                _validate(accelerator, comps, unet_t, controlnet_t, dataset, cfg, global_step, log_with)
            if global_step >= cfg.optim.max_steps:
                done = True
                break
        skip_batches = 0

    # 5. save: the model folder (LoRA fused) + the LoRA alone
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(trainable)
        _save(accelerator, comps, unet_t, controlnet_t, cfg, out)
    accelerator.end_training()
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def _pipeline(accelerator, comps, unet, controlnet):
    from .pipeline import AuthFacePipeline

    pipe = AuthFacePipeline(
        vae=comps["vae"], text_encoder=comps["text_encoder"], tokenizer=comps["tokenizer"],
        unet=accelerator.unwrap_model(unet), controlnet=accelerator.unwrap_model(controlnet),
        scheduler=comps["scheduler"],
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def _validate(accelerator, comps, unet, controlnet, dataset, cfg: TrainConfig, step: int, log_with) -> None:
    """A grid of fixed degraded faces (rows: LQ | restored | HQ) at output/validation/step-N.png."""
    from . import io

    n = min(cfg.output.num_validation, len(dataset))
    saved_epoch = dataset.epoch
    dataset.set_epoch(0)  # the same degraded faces at every validation
    items = [dataset[i] for i in range(n)]
    dataset.set_epoch(saved_epoch)
    lq = torch.stack([it["lq"] for it in items])
    hq = torch.stack([it["hq"] for it in items])
    pipe = _pipeline(accelerator, comps, unet, controlnet)
    was_training = [m.training for m in (unet, controlnet)]
    unet.eval()
    controlnet.eval()  # restored below: validation must not leave the models in eval mode
    out = pipe(lq, prompt=cfg.data.prompt, num_inference_steps=20, strength=1.0,
               generator=[torch.Generator().manual_seed(i) for i in range(n)], color_fix="none",
               output_type="pt").images  # fmt: skip
    for m, flag in zip((unet, controlnet), was_training):
        m.train(flag)
    grid = torch.cat([torch.cat(list(x), dim=2) for x in (lq, out.cpu().to(lq.dtype), hq)], dim=1)  # (3, 3R, nR)
    arr = io.tensor_to_numpy(grid.unsqueeze(0))[0]
    io.write_image(Path(cfg.output.output_dir) / "validation" / f"step-{step:06d}.png", arr)
    if log_with == "tensorboard":
        for tracker in accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("validation", arr, step, dataformats="HWC")


def _save(accelerator, comps, unet, controlnet, cfg: TrainConfig, out: Path) -> None:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    from .pipeline import AuthFacePipeline

    pipe = _pipeline(accelerator, comps, unet, controlnet)
    for module in (pipe.unet, pipe.controlnet, pipe.vae, pipe.text_encoder):
        module.to("cpu", dtype=torch.float32)
    if cfg.model.train_lora:
        lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
        AuthFacePipeline.save_lora_weights(out, unet_lora_layers=lora, weight_name=LORA_WEIGHT_NAME)
        pipe.unet.fuse_lora()
        pipe.unet.unload_lora()
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "authface_train.json").write_text(json.dumps({"config": to_dict(cfg)}, indent=2))
    logger.info("saved the model folder %s (LoRA also alone in %s)", out, LORA_WEIGHT_NAME)


def loss_trend(log_path: Path, window: int = 5) -> tuple[float, float]:
    """(mean loss of the first ``window`` logged steps, mean of the last ``window``) from train_log.jsonl."""
    losses = [json.loads(line)["loss"] for line in Path(log_path).read_text().splitlines() if line.strip()]
    return float(np.mean(losses[:window])), float(np.mean(losses[-window:]))


# ------------------------------------------------------------------------------------------------ entry point
def add_train_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML training config (configs/train/*.yaml)")
    parser.add_argument("--data", help="dataset folder from `authface prepare` (data.dataset)")
    parser.add_argument("--output", help="output/model folder (output.output_dir)")
    parser.add_argument("--resume_from_checkpoint", "--resume-from-checkpoint", dest="resume",
                        help="'latest' or a checkpoint-N folder")  # fmt: skip
    parser.add_argument("--max_steps", "--max-steps", dest="max_steps", type=int)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set optim.learning_rate=5e-5 (repeatable)")  # fmt: skip


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a face restorer (one process; use accelerate launch training/train.py for more)",
        description="Fine-tune LoRA + ControlNet (+ quality prior) on a dataset from `authface prepare`.",
    )  # fmt: skip
    add_train_arguments(p)
    p.set_defaults(func=run_from_args)


def run_from_args(args) -> int:
    """Resolve the config from CLI arguments and train; 0 on success, 2 for config/data errors."""
    import os
    import sys

    from .config import ConfigError, load_config
    from .data.prepare import ManifestError

    overrides = []
    if args.data:
        overrides.append(f"data.dataset={args.data}")
    if args.output:
        overrides.append(f"output.output_dir={args.output}")
    if args.resume:
        overrides.append(f"output.resume_from_checkpoint={args.resume}")
    if args.max_steps:
        overrides.append(f"optim.max_steps={args.max_steps}")
    try:
        cfg = load_config(TrainConfig, args.config, overrides + list(args.overrides))
    except ConfigError as e:
        print(f"authface-train: config error: {e}", file=sys.stderr)
        return 2
    try:
        out = train(cfg)
    except (ManifestError, TrainingDataError, FileNotFoundError) as e:
        print(f"authface-train: error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        print(f"authface-train: model folder written to {out}", file=sys.stderr)
    return 0
