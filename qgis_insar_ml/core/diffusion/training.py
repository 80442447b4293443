"""Training PDMs: EMA, gradient clipping, mixed precision on GPU, resumable, DDP-ready.

One loop serves ``insarml:pdm_train``, the CLI ``train-pdm`` and ``torchrun``. It follows
improved DDPM as the paper does: hybrid loss with a learned variance, loss-aware
importance sampling of the timesteps, and an exponential moving average of the weights
(the EMA is what gets shipped: it samples better than the raw weights). Class labels
are dropped to the null class 10 % of the time so that classifier-free guidance works.
Checkpoints hold tensors and numbers only and are read back with ``weights_only``.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import Cancelled, InsarMlError
from ..progress import Progress, SilentProgress
from ..torch_runtime import (distributed_rank_world, load_checkpoint_file, pick_device, save_checkpoint_file,
                             warmup_cosine_rate)
from .data import NORMALISED_RANGE, SR_SCALE, PdmBatch, pdm_data
from .gaussian_diffusion import GaussianDiffusion, LossSecondMomentResampler, UniformSampler
from .pdm_file import save_pdm
from .unet import UNetConfig, UNetModel

TIMESTEP_SAMPLERS = ("loss-aware", "uniform")
RANGES_KEPT_PER_CLASS = 256     # normalising coefficients kept in the card for rescaling


@dataclass
class PdmTrainSettings:
    output: str                                  # model file to write (.safetensors + .json card)
    dataset: str = "interferograms"              # built-in "interferograms" / "deformation", or a folder
    image_size: int = 64
    super_resolution: bool = False               # learn 2× super-resolution (conditioned on image_size/2)
    crop: int | None = None                      # super-resolution: train on crops of this size
    folder_crop: int | None = None               # folder datasets: crop this, then area-average to image_size
    decibels: bool = False                       # folder datasets of SAR σ0: learn 10·log10 of the averages
    class_conditional: bool = True
    label_dropout: float = 0.1                   # share of null labels: classifier-free guidance
    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (8,)   # downsample rates with self-attention
    num_heads: int = 4
    dropout: float = 0.0
    learn_sigma: bool = True
    diffusion_steps: int = 1000
    noise_schedule: str = "cosine"
    timestep_sampler: str = "loss-aware"
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_steps: int = 100
    ema_rate: float = 0.999
    grad_clip: float = 1.0
    mixed_precision: bool = True                 # bf16 autocast, on GPU only
    seed: int = 0
    checkpoint: str | None = None                # default: <output>.ckpt.pt
    checkpoint_every: int = 200
    validate_every: int = 100
    validation_size: int = 64
    resume: bool = False
    device: str = "auto"

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint or f"{Path(self.output).with_suffix('')}.ckpt.pt")

    def unet_config(self, num_classes: int | None) -> UNetConfig:
        conditional = self.class_conditional and num_classes is not None and not self.super_resolution
        return UNetConfig(
            image_size=self.image_size, in_channels=1, out_channels=2 if self.learn_sigma else 1,
            model_channels=self.model_channels, channel_mult=tuple(self.channel_mult),
            num_res_blocks=self.num_res_blocks, dropout=self.dropout, num_heads=self.num_heads,
            attention_resolutions=() if self.super_resolution else tuple(self.attention_resolutions),
            num_classes=num_classes if conditional else None, null_class=conditional and self.label_dropout > 0,
            low_res_channels=1 if self.super_resolution else 0)

    def diffusion(self) -> GaussianDiffusion:
        return GaussianDiffusion(self.diffusion_steps, self.noise_schedule, "eps",
                                 "learned_range" if self.learn_sigma else "fixed_small")

    def validate(self) -> None:
        checks = [
            (self.steps >= 1, f"STEPS must be at least 1, not {self.steps}."),
            (self.batch_size >= 1, f"BATCH_SIZE must be at least 1, not {self.batch_size}."),
            (self.learning_rate > 0, f"LEARNING_RATE must be positive, not {self.learning_rate}."),
            (0.0 <= self.ema_rate < 1.0, f"EMA rate must be in [0, 1), not {self.ema_rate}."),
            (0.0 <= self.label_dropout < 1.0, f"Label dropout must be in [0, 1), not {self.label_dropout}."),
            (10 <= self.diffusion_steps <= 4000, f"Diffusion steps must be between 10 and 4000, "
                                                 f"not {self.diffusion_steps}."),
            (self.timestep_sampler in TIMESTEP_SAMPLERS, f"Unknown timestep sampler '{self.timestep_sampler}' "
                                                         f"(known: {', '.join(TIMESTEP_SAMPLERS)})."),
            (self.validation_size >= 2, "The validation set needs at least 2 samples."),
        ]
        for ok, message in checks:
            if not ok:
                raise InsarMlError(message)


@dataclass
class PdmTrainResult:
    model: str
    steps_done: int
    final_validation_loss: float
    history: list[dict] = field(default_factory=list)


def model_kwargs(batch: PdmBatch, labels: torch.Tensor | None, device: torch.device) -> dict:
    kwargs = {}
    if labels is not None:
        kwargs["y"] = labels.to(device)
    if batch.low_res is not None:
        kwargs["low_res"] = batch.low_res.to(device)
    return kwargs


def drop_labels(labels: torch.Tensor | None, null_label: int | None, share: float,
                generator: torch.Generator) -> torch.Tensor | None:
    """Labels with a random ``share`` replaced by the null class (classifier-free guidance)."""
    if labels is None or null_label is None or share <= 0:
        return labels
    dropped = torch.rand(labels.shape, generator=generator) < share
    return torch.where(dropped, torch.full_like(labels, null_label), labels)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, rate: float) -> None:
    for target, source in zip(ema.parameters(), net.parameters()):
        target.mul_(rate).add_(source.detach(), alpha=1.0 - rate)


def ema_rate_at(rate: float, step: int) -> float:
    """The EMA rate warmed up as (1+n)/(10+n): early averages are not dragged by the random start."""
    return min(rate, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def validation_losses(model: torch.nn.Module, diffusion: GaussianDiffusion, batch: PdmBatch,
                      device: torch.device, chunk: int = 32) -> dict[str, float]:
    """Hybrid, L_simple and L_vlb-term losses at fixed, evenly spread timesteps and fixed noise."""
    model.eval()
    n = batch.x0.shape[0]
    generator = torch.Generator().manual_seed(12345)
    noise = torch.randn(batch.x0.shape, generator=generator)
    t = torch.linspace(0, diffusion.num_timesteps - 1, n).round().long()
    sums = {"loss": 0.0, "mse": 0.0, "vb": 0.0}
    for i in range(0, n, chunk):
        part = PdmBatch(batch.x0[i:i + chunk], None if batch.labels is None else batch.labels[i:i + chunk],
                        None if batch.low_res is None else batch.low_res[i:i + chunk], batch.ranges[i:i + chunk])
        out = diffusion.training_losses(model, part.x0.to(device), t[i:i + chunk].to(device),
                                        noise[i:i + chunk].to(device), model_kwargs(part, part.labels, device))
        for key in sums:
            sums[key] += float(out[key].sum())
    model.train()
    return {key: value / n for key, value in sums.items()}


class _RangeRecorder:
    """Up to N (min, max) normalising coefficients per class, for rescaling generated samples."""

    def __init__(self, classes: list[str] | None, kept: dict | None = None):
        self.names = classes or ["all"]
        self.kept: dict[str, list[list[float]]] = kept or {name: [] for name in self.names}

    def add(self, batch: PdmBatch) -> None:
        labels = batch.labels.tolist() if batch.labels is not None else [0] * len(batch.ranges)
        for label, (lo, hi) in zip(labels, batch.ranges.tolist()):
            bucket = self.kept[self.names[label]]
            if len(bucket) < RANGES_KEPT_PER_CLASS:
                bucket.append([lo, hi])


def train_pdm(settings: PdmTrainSettings, progress: Progress | None = None,
              log: Callable[[str], None] = print,
              on_record: Callable[[dict], None] | None = None) -> PdmTrainResult:
    """Train (or resume) a PDM and write its EMA weights to ``settings.output``.

    ``on_record`` receives every history entry as it is made (a live loss curve).
    """
    settings.validate()
    progress = progress or SilentProgress()
    rank, world = distributed_rank_world()
    device = pick_device(settings.device, rank)
    torch.manual_seed(settings.seed + rank)
    data = pdm_data(settings.dataset, settings.image_size, settings.seed, settings.super_resolution,
                    settings.crop, settings.folder_crop, settings.decibels)
    classes = data.classes if settings.class_conditional and not settings.super_resolution else None
    try:
        config = settings.unet_config(len(classes) if classes else None)
    except ValueError as exc:
        raise InsarMlError(f"The U-Net settings are invalid: {exc}.") from None
    if config.num_classes is None:
        classes = None
    diffusion = settings.diffusion()
    net = UNetModel(config).to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    sampler = (LossSecondMomentResampler(diffusion.num_timesteps) if settings.timestep_sampler == "loss-aware"
               else UniformSampler(diffusion.num_timesteps))
    ranges = _RangeRecorder(classes)
    state = _load_checkpoint(settings, config, net, ema, optimizer, sampler, log) if settings.resume else None
    start = state["step"] if state else 0
    history: list[dict] = state["history"] if state else []
    if state:
        ranges = _RangeRecorder(classes, state["ranges"])
    validation = data.validation(settings.validation_size)
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    per_rank = max(1, math.ceil(settings.batch_size / world))
    generator = torch.Generator().manual_seed(settings.seed * 1000 + rank + 7919 * start)
    autocast = device.type == "cuda" and settings.mixed_precision
    log(f"PDM training on {device} ({world} process(es)), {sum(p.numel() for p in net.parameters())} parameters, "
        f"{data.describe()}, steps {start}→{settings.steps}, batch {per_rank * world}")
    net.train()
    step, tic, last_val = start, time.perf_counter(), math.nan
    while step < settings.steps:
        if progress.is_cancelled():
            _save_checkpoint(settings, rank, config, net, ema, optimizer, sampler, step, history, ranges)
            raise Cancelled(f"Cancelled at step {step}; checkpoint saved to {settings.checkpoint_path()} "
                            "(resume from it to continue).")
        lr = warmup_cosine_rate(settings.learning_rate, step, settings.steps, settings.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data.batch(step * world + rank, per_rank)
        ranges.add(batch)
        t, weights = sampler.sample(per_rank, generator)
        labels = drop_labels(batch.labels, net.null_label, settings.label_dropout, generator)
        noise = torch.randn(batch.x0.shape, generator=generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            losses = diffusion.training_losses(model, batch.x0.to(device), t.to(device), noise.to(device),
                                               model_kwargs(batch, labels, device))
        loss = (losses["loss"].float() * weights.to(device)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip))
        optimizer.step()
        update_ema(ema, net, ema_rate_at(settings.ema_rate, step))
        _update_sampler(sampler, t, losses["loss"].detach().float(), world)
        step += 1
        record = {"step": step, "loss": loss.item(), "mse": float(losses["mse"].detach().mean()),
                  "vb": float(losses["vb"].detach().mean()), "lr": lr, "grad_norm": grad_norm}
        if step % settings.validate_every == 0 or step == settings.steps:
            metrics = validation_losses(ema, diffusion, validation, device)
            record.update({f"val_{k}": v for k, v in metrics.items()})
            last_val = metrics["loss"]
            rate = (step - start) * per_rank * world / (time.perf_counter() - tic)
            eta = (settings.steps - step) * per_rank * world / max(rate, 1e-9)
            record["samples_per_second"] = rate
            log(f"step {step}/{settings.steps} loss {loss.item():.4f} val {metrics['loss']:.4f} "
                f"(mse {metrics['mse']:.4f}, vb {metrics['vb']:.4f}) {rate:.1f} samples/s, ETA {eta / 60:.1f} min")
        history.append(record)
        if on_record:
            on_record(record)
        if step % settings.checkpoint_every == 0:
            _save_checkpoint(settings, rank, config, net, ema, optimizer, sampler, step, history, ranges)
        progress.set_progress(100.0 * step / settings.steps)
    _save_checkpoint(settings, rank, config, net, ema, optimizer, sampler, step, history, ranges)
    model_path = Path(settings.output)
    if rank == 0:
        model_path = save_pdm(ema, settings.output, _card(settings, data, classes, ranges, step, last_val))
    if world > 1:
        torch.distributed.barrier()
    return PdmTrainResult(str(model_path), step, last_val, history)


def _update_sampler(sampler: UniformSampler, t: torch.Tensor, losses: torch.Tensor, world: int) -> None:
    """Feed the loss-aware sampler every rank's (t, loss), so all ranks keep the same probabilities."""
    if world > 1:
        ts, ls = [torch.zeros_like(t) for _ in range(world)], [torch.zeros_like(losses) for _ in range(world)]
        torch.distributed.all_gather(ts, t.to(losses.device))
        torch.distributed.all_gather(ls, losses)
        t, losses = torch.cat(ts).cpu(), torch.cat(ls).cpu()
    sampler.update(t.cpu(), losses.cpu())


def _card(settings: PdmTrainSettings, data, classes: list[str] | None, ranges: _RangeRecorder,
          steps: int, last_val: float) -> dict:
    hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()
             if k not in ("output", "checkpoint", "resume")}
    card = {
        "diffusion": {"steps": settings.diffusion_steps, "noise_schedule": settings.noise_schedule,
                      "learn_sigma": settings.learn_sigma, "sigma_small": True, "predict": "eps",
                      "rescale_timesteps": True},
        "classes": classes,
        "sample_size": settings.image_size,
        "normalisation": {"range": list(NORMALISED_RANGE), "per_sample": True,
                          "units": "dB" if data.decibels else "as the data",
                          "coefficients": ranges.kept if classes else {"all": ranges.kept[ranges.names[0]]}},
        "training": {"data": data.describe(), "steps": steps, "final_validation_loss": last_val,
                     "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **hyper},
    }
    if settings.super_resolution:
        card["super_resolution"] = {"scale": SR_SCALE, "low_res_size": settings.image_size // SR_SCALE}
    return card


def _save_checkpoint(settings, rank, config, net, ema, optimizer, sampler, step, history, ranges) -> None:
    if rank != 0:
        return
    extra = ({"sampler_history": sampler.history, "sampler_counts": sampler.counts}
             if isinstance(sampler, LossSecondMomentResampler) else {})
    save_checkpoint_file({"step": step, "model": net.state_dict(), "ema": ema.state_dict(),
                          "optimizer": optimizer.state_dict(), "history": history, "ranges": ranges.kept,
                          "unet": config.to_dict(), "timestep_sampler": settings.timestep_sampler, **extra},
                         settings.checkpoint_path())


def _load_checkpoint(settings, config, net, ema, optimizer, sampler, log) -> dict | None:
    path = settings.checkpoint_path()
    if not path.is_file():
        log(f"No checkpoint at {path}: starting from scratch.")
        return None
    state = load_checkpoint_file(path, "PDM")
    if state.get("unet") != config.to_dict():
        raise InsarMlError(f"The checkpoint {path.name} is for another network; it cannot be resumed with these "
                           "settings. Use the same architecture and dataset, or start a new training.")
    try:
        net.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if isinstance(sampler, LossSecondMomentResampler) and "sampler_history" in state:
            sampler.history, sampler.counts = state["sampler_history"], state["sampler_counts"]
    except (KeyError, RuntimeError, ValueError) as exc:
        raise InsarMlError(f"Cannot resume from {path}: it is not a valid PDM checkpoint ({exc}).") from None
    log(f"Resuming from {path} at step {state['step']}.")
    return state
