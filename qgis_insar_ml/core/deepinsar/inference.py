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
from ..raster_io import Window, bounded_gdal_cache
from ..tiling import BLEND_COMPLEX, BLEND_PHASE, BLEND_REAL
from .cpu_runtime import PRECISION_ENV, TorchRunner, cpu_runner, requested_precision
from .model import DeepInsarNet
from .modelfile import load_model
from .observation import AmplitudeStats, normalize_amplitude, source_amplitude_stats
from ..torch_runtime import pick_device

# Tiles on the CPU: see benchmarks/deepinsar_throughput.py (larger tiles waste less on halos).
CPU_TILE_SIZE = 896
SAMPLE_CACHE_BYTES = 16 * 2**20
# GDAL's block cache while tiles stream (the engine's default is 128 MB): blocks are re-read cheaply,
# and what the cache holds adds to the network's working memory.
PIPELINE_CACHE_MB = 32
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
    # The sample reads blocks from all over the raster: through a small cache, or GDAL's default
    # (5 % of RAM) keeps up to the whole input in memory, and peak memory grows with the raster.
    with bounded_gdal_cache(SAMPLE_CACHE_BYTES):
        stats = source_amplitude_stats(source) if channels == 4 else None
    rf = int(card["receptive_field"])
    overlap = default_overlap(rf) if overlap is None else overlap
    on_gpu = torch_device.type == "cuda"
    tile_size = tile_size or (2048 if on_gpu else CPU_TILE_SIZE)
    batch_size = batch_size or (8 if on_gpu else 1)
    runner = TorchRunner(net, torch_device) if on_gpu else cpu_runner(net, model_path.with_suffix(".safetensors"), log)
    log(f"DeepInSAR: model {model_path.name} ({card['input']}, receptive field {rf} px) on {runner.describe()}; "
        f"tiles {tile_size} px, overlap {overlap} px, batch {batch_size}")
    if overlap < rf // 2:
        log(f"Warning: OVERLAP {overlap} is smaller than the receptive field's radius ({rf // 2} px); "
            "tile seams may show.")
    precision: dict[str, bool] = {}
    outputs = [name for name, path in (("OUTPUT_PHASE", output_phase), ("OUTPUT_COHERENCE", output_coherence),
                                       ("OUTPUT_INTERFEROGRAM", output_interferogram)) if path]

    def process(blocks: list[InterferogramBlock], windows: list[Window]) -> list[dict[str, np.ndarray]]:
        observations = [_observation(block, channels, stats) for block in blocks]
        first: list[tuple[np.ndarray, np.ndarray]] = []
        if "reduced" not in precision:
            precision["reduced"], chosen = choose_runner_precision(runner, observations[0], log)
            first = [chosen]
        pairs = first + _run_batches(runner, observations[len(first):], log, precision["reduced"])
        return [_outputs(phase, coherence, outputs) for phase, coherence in pairs]

    with bounded_gdal_cache(PIPELINE_CACHE_MB * 2**20):
        return run_raster_pipeline(
            source.grid, source.read, process, OUTPUTS,
            {"OUTPUT_PHASE": output_phase, "OUTPUT_COHERENCE": output_coherence,
             "OUTPUT_INTERFEROGRAM": output_interferogram},
            "insarml:deepinsar_filter",
            {"MODEL": str(model_path), "DEVICE": str(torch_device), "TILE_SIZE": tile_size, "OVERLAP": overlap,
             "BATCH_SIZE": batch_size, "RUNTIME": runner.name},
            tile_size, overlap, progress, model=model_path.name, batch_size=batch_size, align=net.config.downsample)


def filter_arrays(net: DeepInsarNet, block: InterferogramBlock, stats=None) -> tuple[np.ndarray, np.ndarray]:
    """(filtered phase, coherence) of one in-memory block with torch in float32, on the network's device."""
    channels = net.config.in_channels
    if channels == 4 and stats is None:
        stats = (AmplitudeStats.of(np.sqrt(block.power_reference)), AmplitudeStats.of(np.sqrt(block.power_secondary)))
    device = next(net.parameters()).device
    result = _forward(net, [_observation(block, channels, stats)], device)[0]
    return result["OUTPUT_PHASE"], result["OUTPUT_COHERENCE"]


def _observation(block: InterferogramBlock, channels: int, stats) -> np.ndarray:
    """The network input of one block, float32 (C, H, W); invalid pixels are 0 in every channel."""
    ifg = block.interferogram
    magnitude = np.abs(ifg)
    obs = np.empty((channels,) + ifg.shape, np.float32)
    # cos φ and sin φ straight from the complex values (angle, cos and sin cost 3× more); 0 → φ = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(ifg.real, magnitude, out=obs[0])
        np.divide(ifg.imag, magnitude, out=obs[1])
    zero = magnitude == 0
    obs[0][zero], obs[1][zero] = 1.0, 0.0
    if channels == 4:
        for out, power, stat in zip(obs[2:], (block.power_reference, block.power_secondary), stats):
            np.sqrt(power, out=out)
            out[...] = normalize_amplitude(out, stat)
    obs[:, ~block.valid] = 0.0
    return obs


def _outputs(phase: np.ndarray, coherence: np.ndarray, wanted: list[str]) -> dict[str, np.ndarray]:
    out = {"OUTPUT_PHASE": phase, "OUTPUT_COHERENCE": coherence}
    if "OUTPUT_INTERFEROGRAM" in wanted:
        out["OUTPUT_INTERFEROGRAM"] = coherence * np.exp(1j * phase)
    return out


# Mixed precision is used only when it changes the first tile by less than this.
AMP_PHASE_TOLERANCE = 0.01   # rad, RMS of the wrapped difference
AMP_COHERENCE_TOLERANCE = 0.005


def choose_runner_precision(runner, observation: np.ndarray, log: Callable[[str], None]
                            ) -> tuple[bool, tuple[np.ndarray, np.ndarray]]:
    """(use bfloat16, the first tile's (phase, coherence) in the chosen precision).

    bfloat16 is used when the runtime has it natively (a GPU, or a CPU with AVX512-BF16 or
    AMX), ``INSARML_CPU_PRECISION`` is not ``float32``, and on this tile it changes the phase
    by less than AMP_PHASE_TOLERANCE rad RMS and the coherence by less than
    AMP_COHERENCE_TOLERANCE RMS. The rule is the same on every device.
    """
    batch = observation[None]
    cpu = not (isinstance(runner, TorchRunner) and runner.device.type == "cuda")
    if cpu and requested_precision() == "float32":
        log(f"Precision: float32 ({PRECISION_ENV}=float32).")
        return False, _first(runner.run(batch, False))
    if not runner.reduced_precision_available():
        log("Precision: float32 (this processor has no native bfloat16).")
        return False, _first(runner.run(batch, False))
    try:
        fast = _first(runner.run(batch, True))
    except RuntimeError as exc:  # no bfloat16 on this device after all
        log(f"Mixed precision unavailable ({str(exc).splitlines()[0][:200]}); using float32.")
        return False, _first(runner.run(batch, False))
    runner.release(True)  # one precision's working memory at a time: peak memory stays that of one
    exact = _first(runner.run(batch, False))
    ok = _close_enough(fast, exact, log)
    runner.release(not ok)
    return ok, fast if ok else exact


def _first(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return pair[0][0].copy(), pair[1][0].copy()


def _close_enough(fast: tuple[np.ndarray, np.ndarray], exact: tuple[np.ndarray, np.ndarray],
                  log: Callable[[str], None]) -> bool:
    phase = float(np.sqrt(np.mean(np.angle(np.exp(1j * (fast[0].astype(np.float64) - exact[0]))) ** 2)))
    coherence = float(np.sqrt(np.mean((fast[1].astype(np.float64) - exact[1]) ** 2)))
    ok = phase < AMP_PHASE_TOLERANCE and coherence < AMP_COHERENCE_TOLERANCE
    log(f"bfloat16 vs float32 on the first tile: phase {phase:.4f} rad RMS, coherence {coherence:.4f} RMS: "
        f"{'using mixed precision' if ok else 'keeping float32'}.")
    return ok


def choose_precision(net: DeepInsarNet, observation: np.ndarray, device: torch.device,
                     log: Callable[[str], None]) -> torch.dtype | None:
    """torch only: bfloat16 autocast when it is no worse than float32 on this tile, else None (float32)."""
    runner = TorchRunner(net, device)
    try:
        fast = _first(runner.run(observation[None], True))
    except RuntimeError as exc:  # no bfloat16 on this device
        log(f"Mixed precision unavailable ({exc}); using float32.")
        return None
    exact = _first(runner.run(observation[None], False))
    return torch.bfloat16 if _close_enough(fast, exact, log) else None


def _run_batches(runner, observations: list[np.ndarray], log: Callable[[str], None],
                 reduced: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(phase, coherence) of every tile; same-shaped tiles go together, and a CUDA
    out-of-memory error halves the batch."""
    if not observations:
        return []
    try:
        return _run_same_shapes(runner, observations, reduced)
    except torch.cuda.OutOfMemoryError:
        if len(observations) == 1:
            raise InsarMlError("The GPU ran out of memory on a single tile. Lower TILE_SIZE or use DEVICE cpu.") from None
        torch.cuda.empty_cache()
        half = len(observations) // 2
        log(f"CUDA out of memory with a batch of {len(observations)} tiles: retrying with {half}.")
        return (_run_batches(runner, observations[:half], log, reduced)
                + _run_batches(runner, observations[half:], log, reduced))


def _run_same_shapes(runner, observations: list[np.ndarray], reduced: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run same-shaped tiles together; padding a smaller edge tile would change its edge."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(observations)
    shapes: dict[tuple[int, ...], list[int]] = {}
    for i, obs in enumerate(observations):
        shapes.setdefault(obs.shape, []).append(i)
    for indices in shapes.values():
        batch = observations[indices[0]][None] if len(indices) == 1 else np.stack([observations[i] for i in indices])
        phase, coherence = runner.run(batch, reduced)
        for k, i in enumerate(indices):
            out[i] = (phase[k], coherence[k])
    return out


def _forward(net: DeepInsarNet, observations: list[np.ndarray], device: torch.device) -> list[dict[str, np.ndarray]]:
    """torch, float32: one output mapping per tile."""
    pairs = _run_same_shapes(TorchRunner(net, device), observations, False)
    return [_outputs(phase, coherence, list(OUTPUTS)) for phase, coherence in pairs]
