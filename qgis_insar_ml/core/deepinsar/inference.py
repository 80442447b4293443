"""DeepInSAR filtering of rasters of any size: tiles through the engine, CPU or GPU.

The amplitude statistics come from a sample of the whole raster, so every tile is
normalised alike. Tiles go to the network in batches (a GPU fills up on a batch); a CUDA
out-of-memory error halves the batch and tries again.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...paths import data_dir
from ..errors import InsarMlError
from ..inputs import InterferogramBlock, InterferogramSource
from ..pipeline import OutputSpec, run_raster_pipeline
from ..progress import Progress, SilentProgress
from ..raster_io import Window
from ..tiling import BLEND_COMPLEX, BLEND_PHASE, BLEND_REAL
from .model import DeepInsarNet, restore
from .modelfile import load_model
from .observation import AmplitudeStats, make_observation, source_amplitude_stats
from ..torch_runtime import pick_device

SHIPPED = {4: "deepinsar_4ch.safetensors", 2: "deepinsar_phase.safetensors"}
OUTPUTS = {
    "OUTPUT_PHASE": OutputSpec("DeepInSAR filtered phase [rad], reference*conj(secondary)", BLEND_PHASE),
    "OUTPUT_COHERENCE": OutputSpec("DeepInSAR coherence [0-1]", BLEND_REAL),
    "OUTPUT_INTERFEROGRAM": OutputSpec("DeepInSAR interferogram: coherence * exp(i * filtered phase)",
                                       BLEND_COMPLEX, complex_values=True),
}


def shipped_model(source: InterferogramSource) -> Path:
    """The shipped model that fits the inputs: 4-channel with amplitudes, else phase-only."""
    path = data_dir("models") / SHIPPED[4 if source.has_amplitudes else 2]
    if not path.is_file():
        raise InsarMlError(f"The shipped model {path.name} is missing from {path.parent}. Reinstall the plugin "
                           "or choose a MODEL file.")
    return path


def default_overlap(receptive_field: int) -> int:
    """At least the receptive field's radius, in whole multiples of 8."""
    return 8 * math.ceil((receptive_field // 2) / 8)


def filter_deepinsar_raster(source: InterferogramSource, model: str | None = None, device: str = "auto",
                            tile_size: int | None = None, overlap: int | None = None,
                            batch_size: int | None = None, output_phase: str | None = None,
                            output_coherence: str | None = None, output_interferogram: str | None = None,
                            progress: Progress | None = None,
                            log: Callable[[str], None] = lambda message: None) -> dict[str, str]:
    """Restore the phase and estimate the coherence of an interferogram of any size."""
    progress = progress or SilentProgress()
    model_path = Path(model) if model else shipped_model(source)
    torch_device = pick_device(device)
    net, card = load_model(model_path, torch_device)
    channels = net.config.in_channels
    if channels == 4 and not source.has_amplitudes:
        raise InsarMlError(
            f"The model {model_path.name} takes phase and amplitudes, but the inputs carry only a phase. "
            "Give the SLC pair or both amplitude rasters, or use the phase-only model.")
    stats = source_amplitude_stats(source) if channels == 4 else None
    rf = int(card["receptive_field"])
    overlap = default_overlap(rf) if overlap is None else overlap
    on_gpu = torch_device.type == "cuda"
    tile_size = tile_size or (2048 if on_gpu else 1024)
    batch_size = batch_size or (8 if on_gpu else 1)
    log(f"DeepInSAR: model {model_path.name} ({card['input']}, receptive field {rf} px) on {_device_name(torch_device)}; "
        f"tiles {tile_size} px, overlap {overlap} px, batch {batch_size}")
    if overlap < rf // 2:
        log(f"Warning: OVERLAP {overlap} is smaller than the receptive field's radius ({rf // 2} px); "
            "tile seams may show.")
    net = net.to(memory_format=torch.channels_last)
    precision: dict[str, torch.dtype | None] = {}

    def process(blocks: list[InterferogramBlock], windows: list[Window]) -> list[dict[str, np.ndarray]]:
        observations = [_observation(block, channels, stats) for block in blocks]
        if on_gpu and "dtype" not in precision:
            precision["dtype"] = choose_precision(net, observations[0], torch_device, log)
        return _run_batches(net, observations, torch_device, log, precision.get("dtype"))

    return run_raster_pipeline(
        source.grid, source.read, process, OUTPUTS,
        {"OUTPUT_PHASE": output_phase, "OUTPUT_COHERENCE": output_coherence,
         "OUTPUT_INTERFEROGRAM": output_interferogram},
        "insarml:deepinsar_filter",
        {"MODEL": str(model_path), "DEVICE": str(torch_device), "TILE_SIZE": tile_size, "OVERLAP": overlap,
         "BATCH_SIZE": batch_size},
        tile_size, overlap, progress, model=model_path.name, batch_size=batch_size, align=net.config.downsample)


def filter_arrays(net: DeepInsarNet, block: InterferogramBlock, stats=None) -> tuple[np.ndarray, np.ndarray]:
    """(filtered phase, coherence) of one in-memory block, on the network's device."""
    channels = net.config.in_channels
    if channels == 4 and stats is None:
        stats = (AmplitudeStats.of(np.sqrt(block.power_reference)), AmplitudeStats.of(np.sqrt(block.power_secondary)))
    device = next(net.parameters()).device
    result = _forward(net, [_observation(block, channels, stats)], device)[0]
    return result["OUTPUT_PHASE"], result["OUTPUT_COHERENCE"]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _observation(block: InterferogramBlock, channels: int, stats) -> np.ndarray:
    phase = np.angle(block.interferogram)
    amplitudes = None
    if channels == 4:
        amplitudes = (np.sqrt(block.power_reference), np.sqrt(block.power_secondary))
    obs = make_observation(phase, amplitudes, stats)
    obs[:, ~block.valid] = 0.0
    return obs


# Mixed precision is used only when it changes the first tile by less than this.
AMP_PHASE_TOLERANCE = 0.01   # rad, RMS of the wrapped difference
AMP_COHERENCE_TOLERANCE = 0.005


def choose_precision(net: DeepInsarNet, observation: np.ndarray, device: torch.device,
                     log: Callable[[str], None]) -> torch.dtype | None:
    """bfloat16 autocast when it is no worse than float32 on this tile, else None (float32)."""
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            fast = _forward(net, [observation], device)[0]
    except RuntimeError as exc:  # no bfloat16 on this device
        log(f"Mixed precision unavailable ({exc}); using float32.")
        return None
    exact = _forward(net, [observation], device)[0]
    phase = float(np.sqrt(np.mean(np.angle(np.exp(1j * (fast["OUTPUT_PHASE"] - exact["OUTPUT_PHASE"]))) ** 2)))
    coherence = float(np.sqrt(np.mean((fast["OUTPUT_COHERENCE"] - exact["OUTPUT_COHERENCE"]) ** 2)))
    ok = phase < AMP_PHASE_TOLERANCE and coherence < AMP_COHERENCE_TOLERANCE
    log(f"bfloat16 vs float32 on the first tile: phase {phase:.4f} rad RMS, coherence {coherence:.4f} RMS: "
        f"{'using mixed precision' if ok else 'keeping float32'}.")
    return torch.bfloat16 if ok else None


def _run_batches(net: DeepInsarNet, observations: list[np.ndarray], device: torch.device,
                 log: Callable[[str], None], dtype: torch.dtype | None = None) -> list[dict[str, np.ndarray]]:
    """Run the network on the tiles, halving the batch on CUDA out-of-memory."""
    try:
        if dtype is not None:
            with torch.autocast(device.type, dtype=dtype):
                return _forward(net, observations, device)
        return _forward(net, observations, device)
    except torch.cuda.OutOfMemoryError:
        if len(observations) == 1:
            raise InsarMlError("The GPU ran out of memory on a single tile. Lower TILE_SIZE or use DEVICE cpu.") from None
        torch.cuda.empty_cache()
        half = len(observations) // 2
        log(f"CUDA out of memory with a batch of {len(observations)} tiles: retrying with {half}.")
        return (_run_batches(net, observations[:half], device, log, dtype)
                + _run_batches(net, observations[half:], device, log, dtype))


@torch.inference_mode()
def _forward(net: DeepInsarNet, observations: list[np.ndarray], device: torch.device) -> list[dict[str, np.ndarray]]:
    """Run same-shaped tiles together; padding a smaller edge tile would change its edge."""
    out: list[dict[str, np.ndarray] | None] = [None] * len(observations)
    shapes: dict[tuple[int, ...], list[int]] = {}
    for i, obs in enumerate(observations):
        shapes.setdefault(obs.shape, []).append(i)
    for indices in shapes.values():
        x = torch.from_numpy(np.stack([observations[i] for i in indices])).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        residual, logits = net(x)
        phase, _ = restore(x, residual)
        phase, coherence = phase.float().cpu().numpy(), torch.sigmoid(logits[:, 0]).float().cpu().numpy()
        for k, i in enumerate(indices):
            out[i] = {"OUTPUT_PHASE": phase[k], "OUTPUT_COHERENCE": coherence[k],
                      "OUTPUT_INTERFEROGRAM": coherence[k] * np.exp(1j * phase[k])}
    return out
