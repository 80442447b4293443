"""Training DeepInSAR: simulator or teacher–student, resumable, early-stopped, DDP-ready.

One loop serves the Processing algorithm, the CLI and ``torchrun``: it reports to a
:class:`~..progress.Progress`, checks cancel every step (cancel saves a checkpoint), and
under ``torchrun`` wraps the network in DistributedDataParallel (gloo on CPU, NCCL on
GPU). Checkpoints are plain tensors and numbers, read back with
``torch.load(weights_only=True)``; the finished model is the best validation state,
written as safetensors with its card.
"""
from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import Cancelled, InsarMlError
from ..progress import Progress, SilentProgress
from ..torch_runtime import (distributed_rank_world, load_checkpoint_file, pick_device, save_checkpoint_file,
                             warmup_cosine_rate)
from .data import Batch, SimulatedPatches, configuration_index
from .fringes import network_input
from .model import DEFAULT_CONFIG, DeepInsarConfig, DeepInsarNet, restore
from .modelfile import load_model, save_model


@dataclass
class TrainSettings:
    output: str                            # model file to write (.safetensors)
    in_channels: int = 4                   # 4 = phase + amplitudes, 2 = phase only
    architecture: DeepInsarConfig | None = None  # None: the default configuration
    steps: int = 2000
    batch_size: int = 16
    patch_size: int = 128
    learning_rate: float = 1e-3            # Adam, as the paper
    warmup_steps: int = 100                # then cosine decay to 5 % of the rate
    seed: int = 0
    checkpoint: str | None = None          # default: <output>.ckpt.pt
    checkpoint_every: int = 200
    validate_every: int = 100
    patience: int = 10                     # validation rounds without improvement before stopping
    resume: bool = False
    device: str = "auto"
    coherence_weight: float = 1.0
    teacher: dict | None = None            # InterferogramSource kwargs + reference_phase/reference_coherence
    binarize_coherence: bool = True        # teacher mode: threshold the reference coherence at 0.5
    validation_per_config: int = 2
    balance: bool = True                   # phase loss relative to each patch's own noise (see losses)
    configurations: list[str] | None = None  # simulator mix, names like S1-F1-NS; repeats weigh more
    realistic: float = 0.0                 # share of realistic-simulator scenes among the simulated ones
    workers: int = 0                       # processes simulating batches ahead (0: in this process, as in QGIS)
    time_limit_s: float | None = None      # stop (like an early stop) after this long; None: no limit
    init: str | None = None                # start from this model's weights (fine-tuning; see start_from)

    @property
    def objective(self) -> str:
        return "balanced" if self.balance else "eq9"

    def config(self) -> DeepInsarConfig:
        return replace(self.architecture or DEFAULT_CONFIG, in_channels=self.in_channels)

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint or f"{Path(self.output).with_suffix('')}.ckpt.pt")


@dataclass
class TrainResult:
    model: str
    steps_done: int
    best_validation_loss: float
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def _tensors(batch: Batch, device: torch.device) -> tuple[torch.Tensor, ...]:
    obs, clean, coh, weight = (torch.from_numpy(a).to(device) for a in
                               (batch.observation, batch.clean, batch.coherence, batch.weight))
    return obs.contiguous(memory_format=torch.channels_last), clean, coh, weight


# Least mean noise energy per pixel a balanced patch is measured against: that of a
# phase error of about 0.1 rad RMS.
NOISE_FLOOR = 0.01


def losses(net: torch.nn.Module, batch: Batch, device: torch.device, coherence_weight: float,
           balance: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(total, phase, coherence) losses, eq. 9 on the residual and eq. 11 on the logits,
    plus the (observation, residual, logits) they came from.

    With ``balance``, each patch's eq. 9 error is divided by its own noise energy
    ‖y − x‖²: a quiet, smooth patch (S1-F1) then weighs as much as a noisy one, instead of
    vanishing beside it, and the loss measures the improvement over the unfiltered input.

    The coherence term is eq. 11's cross-entropy minus the targets' own entropy (the KL
    divergence): the same gradients, but zero at a perfect fit, so with soft targets the
    validation loss is not swamped by a constant floor and tracks the phase too."""
    obs, clean, coh, weight = _tensors(batch, device)
    residual, logits = net(obs)
    norm = weight.sum().clamp_min(1.0)
    noise = obs[:, :2] - clean
    error = ((residual - noise) ** 2) * weight
    if balance:
        # the floor keeps nearly noise-free (many-look, coherent) patches from dominating
        floor = NOISE_FLOOR * weight.sum(dim=(1, 2, 3)).clamp_min(1.0)
        per_patch = error.sum(dim=(1, 2, 3)) / torch.maximum(((noise ** 2) * weight).sum(dim=(1, 2, 3)), floor)
        phase = 0.5 * per_patch.mean()
    else:
        phase = 0.5 * error.sum() / norm
    target = coh.clamp(1e-6, 1 - 1e-6)
    entropy = -(target * target.log() + (1 - target) * (1 - target).log())
    coherence = ((F.binary_cross_entropy_with_logits(logits, coh, reduction="none") - entropy) * weight).sum() / norm
    return phase + coherence_weight * coherence, phase, coherence, (obs, residual, logits)


@torch.no_grad()
def validation_metrics(net: torch.nn.Module, batch: Batch, device: torch.device,
                       coherence_weight: float, balance: bool = False) -> dict[str, float]:
    """Validation loss, phase RMSE [rad] and coherence RMSE, in mini-batches."""
    net.eval()
    sums = {"loss": 0.0, "phase": 0.0, "coherence": 0.0}
    n = batch.observation.shape[0]
    for i in range(0, n, 8):
        part = Batch(*(a[i:i + 8] for a in (batch.observation, batch.clean, batch.coherence, batch.weight)))
        loss, _, _, (obs, residual, logits) = losses(net, part, device, coherence_weight, balance)
        phase, _ = restore(obs, residual)
        truth = torch.atan2(torch.from_numpy(part.clean[:, 1]), torch.from_numpy(part.clean[:, 0])).to(device)
        err = torch.remainder(phase - truth + math.pi, 2 * math.pi) - math.pi
        coh_err = torch.sigmoid(logits) - torch.from_numpy(part.coherence).to(device)
        k = part.observation.shape[0]
        sums["loss"] += float(loss) * k
        sums["phase"] += float((err ** 2).mean()) * k
        sums["coherence"] += float((coh_err ** 2).mean()) * k
    net.train()
    return {"loss": sums["loss"] / n, "phase_rmse": math.sqrt(sums["phase"] / n),
            "coherence_rmse": math.sqrt(sums["coherence"] / n)}


def train_deepinsar(settings: TrainSettings, progress: Progress | None = None,
                    log: Callable[[str], None] = print,
                    on_record: Callable[[dict], None] | None = None) -> TrainResult:
    """Train (or resume training) a DeepInSAR model and write it to ``settings.output``.

    ``on_record`` receives every history entry as it is made (a live loss curve).
    """
    progress = progress or SilentProgress()
    rank, world = distributed_rank_world()
    device = pick_device(settings.device, rank)
    torch.manual_seed(settings.seed)
    config = settings.config()
    net = DeepInsarNet(config)
    if settings.init and not settings.resume:
        start_from(net, settings.init, log)
    net = net.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    data = _data(settings)
    validation = data.validation(settings.validation_per_config)
    state = _load_checkpoint(settings, net, optimizer, log) if settings.resume else None
    start = state["step"] if state else 0
    history: list[dict] = state["history"] if state else []
    best = state["best_loss"] if state else float("inf")
    best_state = state["best_state"] if state else None
    bad_rounds = state["bad_rounds"] if state else 0
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    per_rank = max(1, math.ceil(settings.batch_size / world))
    log(f"DeepInSAR training on {device} ({world} process(es)), {sum(p.numel() for p in net.parameters())} "
        f"parameters, steps {start}→{settings.steps}, batch {per_rank * world} of {settings.patch_size}² patches")
    net.train()
    stopped_early = False
    step = start
    tic = time.perf_counter()
    with _BatchSource(data, per_rank, rank, settings.workers) as batches:
        while step < settings.steps:
            if progress.is_cancelled():
                _save_checkpoint(settings, rank, net, optimizer, step, history, best, best_state, bad_rounds)
                raise Cancelled(f"Cancelled at step {step}; checkpoint saved to {settings.checkpoint_path()} "
                                "(resume from it to continue).")
            for group in optimizer.param_groups:
                group["lr"] = warmup_cosine_rate(settings.learning_rate, step, settings.steps, settings.warmup_steps)
            loss, phase_loss, coherence_loss, _ = losses(model, batches.get(step, settings.steps), device,
                                                         settings.coherence_weight, settings.balance)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            record = {"step": step, "loss": loss.item(), "phase_loss": phase_loss.item(),
                      "coherence_loss": coherence_loss.item(), "lr": optimizer.param_groups[0]["lr"]}
            if step % settings.validate_every == 0 or step == settings.steps:
                metrics = validation_metrics(net, validation, device, settings.coherence_weight, settings.balance)
                record.update({f"val_{k}": v for k, v in metrics.items()})
                rate = (step - start) * per_rank * world / (time.perf_counter() - tic)
                log(f"step {step}/{settings.steps} loss {loss.item():.4f} val {metrics['loss']:.4f} "
                    f"phase RMSE {metrics['phase_rmse']:.4f} rad, coherence RMSE {metrics['coherence_rmse']:.4f} "
                    f"({rate:.1f} patches/s)")
                if metrics["loss"] < best:
                    best, bad_rounds = metrics["loss"], 0
                    best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                else:
                    bad_rounds += 1
            history.append(record)
            if on_record:
                on_record(record)
            if step % settings.checkpoint_every == 0:
                _save_checkpoint(settings, rank, net, optimizer, step, history, best, best_state, bad_rounds)
            progress.set_progress(100.0 * step / settings.steps)
            if bad_rounds >= settings.patience:
                log(f"Early stop at step {step}: no validation improvement in {bad_rounds} rounds.")
                stopped_early = True
                break
            if settings.time_limit_s is not None and time.perf_counter() - tic > settings.time_limit_s:
                log(f"Stopped at step {step}: the time limit of {settings.time_limit_s:.0f} s is reached.")
                stopped_early = True
                break
    _save_checkpoint(settings, rank, net, optimizer, step, history, best, best_state, bad_rounds)
    if best_state is None:
        best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    model_path = Path(settings.output)
    if rank == 0:
        model_path = save_model(best_state, config, _card(settings, step, best), settings.output)
    if world > 1:
        torch.distributed.barrier()
    return TrainResult(str(model_path), step, best, history, stopped_early)


class _BatchSource:
    """Batches by step number, simulated ahead by ``workers`` processes when asked.

    Simulation, not the network, limits training speed on a GPU. Every batch is a pure
    function of its step, so prefetching changes nothing but the speed; with no workers
    (inside QGIS, where child processes are unwelcome) batches are made on demand.
    """

    def __init__(self, data, batch_size: int, rank: int, workers: int):
        self.data, self.batch_size, self.rank, self.workers = data, batch_size, rank, workers
        self.pool: ProcessPoolExecutor | None = None
        self.pending: dict[int, Future] = {}

    def __enter__(self) -> "_BatchSource":
        if self.workers > 0:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def get(self, step: int, last: int) -> Batch:
        if self.pool is None:
            return self.data.batch(step, self.batch_size, self.rank)
        for ahead in range(step, min(step + 4 * self.workers, last)):
            if ahead not in self.pending:
                self.pending[ahead] = self.pool.submit(self.data.batch, ahead, self.batch_size, self.rank)
        return self.pending.pop(step).result()


class _NetworkInputs:
    """Batches of ``data`` with the fringe-adaptive averages the network reads (made in the
    simulation workers when there are some)."""

    def __init__(self, data, windows: tuple[tuple[int, int], ...]):
        self.data, self.windows = data, windows

    def _widened(self, batch: Batch) -> Batch:
        return replace(batch, observation=network_input(batch.observation, self.windows))

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Batch:
        return self._widened(self.data.batch(step, batch_size, rank))

    def validation(self, per_config: int = 2) -> Batch:
        return self._widened(self.data.validation(per_config))


def _data(settings: TrainSettings):
    return _NetworkInputs(_patches(settings), settings.config().fringe_windows)


def _patches(settings: TrainSettings):
    if settings.teacher is None:
        mix = [configuration_index(name) for name in settings.configurations] if settings.configurations else None
        return SimulatedPatches(settings.seed, settings.patch_size, settings.in_channels, mix, settings.realistic)
    from ..inputs import InterferogramSource  # GDAL, needed only to read the teacher's rasters
    from .teacher import TeacherPatches

    teacher = dict(settings.teacher)
    phase, coherence = teacher.pop("reference_phase", None), teacher.pop("reference_coherence", None)
    if not phase or not coherence:
        raise InsarMlError("Teacher–student training needs REFERENCE_PHASE and REFERENCE_COHERENCE rasters.")
    return TeacherPatches(InterferogramSource(**teacher), phase, coherence, settings.seed, settings.patch_size,
                          settings.in_channels, settings.binarize_coherence)


def _card(settings: TrainSettings, steps: int, best: float) -> dict:
    mode = ("teacher-student" if settings.teacher else
            f"simulators: {settings.realistic:.0%} realistic scenes, the rest the paper's 18 configurations")
    hyper = {k: v for k, v in asdict(settings).items() if k not in ("output", "checkpoint", "teacher", "architecture")}
    hyper["schedule_steps"] = hyper.pop("steps")
    return {"training": {"mode": mode, "steps": steps, "best_validation_loss": best, **hyper,
                         "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}}


def start_from(net: DeepInsarNet, path: str, log: Callable[[str], None]) -> None:
    """Load a model file's weights into ``net``: a new schedule and optimiser on old weights.

    A donor that ``net`` extends is grown: the fringe-adaptive inputs it lacks, and dense
    layers appended after its own (same dilations first), start with zero weight where
    they join the donor's layers (the stem, the transition), so the network starts out
    computing exactly what the donor did and learns to use them.
    """
    donor, _ = load_model(path)
    old, new = donor.config, net.config
    grown_inputs = old.fringe_windows in ((), new.fringe_windows)
    grown_layers = new.dilations[:old.layers] == old.dilations
    if not (grown_inputs and grown_layers and
            replace(old, fringe_windows=new.fringe_windows, dilations=new.dilations) == new):
        raise InsarMlError(f"The model {Path(path).name} has another architecture than the one to train; "
                           "fine-tune with the same architecture and input kind (or one that only adds "
                           "fringe-adaptive inputs or dense layers after its own).")
    net.load_state_dict(_grown(donor.state_dict(), net.state_dict()))
    added = new.layers - old.layers
    log(f"Starting from the weights of {Path(path).name}" + (f", with {added} new dense layer(s)." if added else "."))


def _grown(old: dict, fresh: dict) -> dict:
    """``old`` weights inside the shapes of ``fresh`` (a network that extends the donor):
    a tensor that grew keeps the donor's values in its leading slice; a convolution's new
    input channels get zero weight, a BatchNorm's new channels and new layers their fresh
    initialisation (unused until those zero weights move)."""
    grown = {}
    for key, value in fresh.items():
        donor = old.get(key)
        if donor is None:
            grown[key] = value
        elif donor.shape == value.shape:
            grown[key] = donor
        else:
            grown[key] = torch.zeros_like(value) if value.dim() == 4 else value.clone()
            grown[key][tuple(slice(0, n) for n in donor.shape)] = donor
    return grown


def _save_checkpoint(settings, rank, net, optimizer, step, history, best, best_state, bad_rounds) -> None:
    if rank != 0:
        return
    save_checkpoint_file({"step": step, "model": net.state_dict(), "optimizer": optimizer.state_dict(), "history": history,
                "best_loss": best, "best_state": best_state, "bad_rounds": bad_rounds,
                "architecture": settings.config().to_dict(), "objective": settings.objective},
                         settings.checkpoint_path())


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write the best validation state of a (running or finished) training as a model file."""
    path = Path(checkpoint)
    state = load_checkpoint_file(path, "DeepInSAR")
    try:
        config = DeepInsarConfig.from_dict(state["architecture"])
        weights = state["best_state"] or state["model"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"{path} is not a valid DeepInSAR checkpoint ({exc}).") from None
    card = {"training": {"mode": "exported from checkpoint", "checkpoint": path.name, "steps": state["step"],
                         "best_validation_loss": state["best_loss"]}}
    return save_model(weights, config, card, output)


def _load_checkpoint(settings, net, optimizer, log) -> dict | None:
    path = settings.checkpoint_path()
    if not path.is_file():
        log(f"No checkpoint at {path}: starting from scratch.")
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["architecture"] != settings.config().to_dict():
            raise InsarMlError(f"The checkpoint {path.name} is for another architecture; it cannot be resumed "
                               "with these settings.")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except InsarMlError:
        raise
    except Exception as exc:  # a corrupt file or a pickle with anything but tensors and numbers
        raise InsarMlError(f"Cannot resume from {path}: it is not a valid DeepInSAR checkpoint ({exc}).") from None
    log(f"Resuming from {path} at step {state['step']}.")
    if state.get("objective", "eq9") != settings.objective:
        log(f"The training objective changed ({state.get('objective', 'eq9')} → {settings.objective}): "
            "validation losses are not comparable, so the best model is chosen afresh from here on.")
        state.update(best_loss=float("inf"), best_state=None, bad_rounds=0)
    return state
