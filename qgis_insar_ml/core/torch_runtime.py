"""Devices, torchrun process groups, learning-rate schedules and checkpoint files.

Shared by every training loop (DeepInSAR, PDMs) and every inference path, so that
``auto`` means the same device everywhere and checkpoints are written the same way.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from .errors import InsarMlError


def pick_device(name: str = "auto", rank: int = 0) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cuda`` (and ``auto``) under torchrun: the rank's
    GPU; ``cuda:N`` must exist."""
    if name in ("", "auto"):
        return torch.device(f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and torch.cuda.is_available():  # one GPU per torchrun rank, as for auto
        return torch.device(f"cuda:{rank % torch.cuda.device_count()}")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InsarMlError(f"Unknown device '{name}'. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InsarMlError(f"DEVICE {name} was asked for, but this torch sees no CUDA GPU "
                           f"(torch {torch.__version__}). Use 'auto' or 'cpu'.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise InsarMlError(f"DEVICE {name}: only {torch.cuda.device_count()} GPU(s) are visible.")
    return device


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size); starts the process group when run under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def warmup_cosine_rate(base: float, step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor``·base at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def save_checkpoint_file(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint under a hidden name, then rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint_file(path: Path, what: str) -> dict[str, Any]:
    """A checkpoint read with ``weights_only``: tensors, numbers, strings and containers only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, foreign, or a pickle holding more than tensors and numbers
        raise InsarMlError(f"{path} is not a valid {what} checkpoint ({str(exc).splitlines()[0][:200]}).") from None
    if not isinstance(state, dict) or "step" not in state:
        raise InsarMlError(f"{path} is not a valid {what} checkpoint (no training state in it).")
    return state
