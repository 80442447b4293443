"""DeepInSAR filtering of rasters of any size: tiles through the engine, CPU or GPU.

Coherence: with amplitudes (or SLCs) it is, by default, the maximum-likelihood estimate over
a ``coherence_window`` box after removing the restored phase (:func:`~..filters.compensated_coherence`):
on real speckle the network's own coherence head reads low (Amsterdam 0.56 where the pair's
documented coherence is 0.75), the fringe-compensated estimate does not, and it beats the
best Boxcar window in every configuration of the real-signal benchmark. Phase-only inputs
use the network's head, recalibrated for the product's number of looks when it is given
(:mod:`.looks_coherence`); ``coherence_window`` 0 always gives the head.

The amplitude statistics come from a sample of the whole raster, so every tile is
normalised alike. Tiles go to the network in batches (a GPU fills up on a batch); a CUDA
out-of-memory error halves the batch and tries again.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ...paths import data_dir
from ..errors import InsarMlError
from ..filters import DEFAULT_COHERENCE_WINDOW, compensated_coherence
from ..inputs import InterferogramBlock, InterferogramSource
from ..pipeline import OutputSpec, run_raster_pipeline
from ..progress import Progress, SilentProgress
from ..raster_io import Window, bounded_gdal_cache
from ..tiling import BLEND_COMPLEX, BLEND_PHASE, BLEND_REAL
from .config import DeepInsarConfig
from .cpu_runtime import PRECISION_ENV, cached_cpu_runner, cpu_runner, cpu_without_torch, requested_precision
from .fringes import network_input
from .looks_coherence import LooksCoherence, parse_look_count
from .modelfile import load_model, read_model
from .observation import AmplitudeStats, normalize_amplitude, source_amplitude_stats

# No torch at import: a CPU run of a model whose OpenVINO conversion is cached never needs it,
# and importing it costs about 0.9 s and 190 MB. Functions that use torch import it themselves.
if TYPE_CHECKING:
    import torch

    from .model import DeepInsarNet

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


def shipped_model(has_amplitudes: bool) -> Path:
    """The shipped model that fits the inputs: 4-channel with amplitudes, else phase-only."""
    path = data_dir("models") / SHIPPED[4 if has_amplitudes else 2]
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
                            log: Callable[[str], None] = lambda message: None,
                            coherence_window: int = DEFAULT_COHERENCE_WINDOW,
                            looks: float | None = None) -> dict[str, str]:
    """Restore the phase and estimate the coherence of an interferogram of any size.

    ``looks``: the number of looks of a phase-only interferogram (see :mod:`.looks_coherence`)."""
    progress = progress or SilentProgress()
    model_path = Path(model) if model else shipped_model(source.has_amplitudes)
    weights, card, config = read_model(model_path)
    channels = config.in_channels
    if channels == 4 and not source.has_amplitudes:
        raise InsarMlError(
            f"The model {model_path.name} takes phase and amplitudes, but the inputs carry only a phase. "
            "Give the SLC pair or both amplitude rasters, or use the phase-only model.")
    check_coherence_window(coherence_window)
    looks = parse_look_count(looks)
    from_looks = _coherence_from_looks(card, model_path.name, source.has_amplitudes, looks, coherence_window, log)
    runner, device_name = _runner(weights, config, device, log)
    # The sample reads blocks from all over the raster: through a small cache, or GDAL's default
    # (5 % of RAM) keeps up to the whole input in memory, and peak memory grows with the raster.
    with bounded_gdal_cache(SAMPLE_CACHE_BYTES):
        stats = source_amplitude_stats(source) if channels == 4 else None
    rf = int(card["receptive_field"])
    overlap = default_overlap(rf) if overlap is None else overlap
    tile_size = tile_size or (2048 if runner.on_gpu else CPU_TILE_SIZE)
    batch_size = batch_size or (8 if runner.on_gpu else 1)
    log(f"DeepInSAR: model {model_path.name} ({card['input']}, receptive field {rf} px) on {runner.describe()}; "
        f"tiles {tile_size} px, overlap {overlap} px, batch {batch_size}")
    if overlap < rf // 2:
        log(f"Warning: OVERLAP {overlap} is smaller than the receptive field's radius ({rf // 2} px); "
            "tile seams may show.")
    precision: dict[str, bool] = {}
    outputs = [name for name, path in (("OUTPUT_PHASE", output_phase), ("OUTPUT_COHERENCE", output_coherence),
                                       ("OUTPUT_INTERFEROGRAM", output_interferogram)) if path]

    def process(blocks: list[InterferogramBlock], windows: list[Window]) -> list[dict[str, np.ndarray]]:
        observations = [_observation(block, config, stats) for block in blocks]
        first: list[tuple[np.ndarray, np.ndarray]] = []
        if "reduced" not in precision:
            precision["reduced"], chosen = choose_runner_precision(runner, observations[0], log)
            first = [chosen]
        pairs = first + _run_batches(runner, observations[len(first):], log, precision["reduced"])
        return [_outputs(block, phase, coherence, outputs, coherence_window, from_looks)
                for block, (phase, coherence) in zip(blocks, pairs)]

    with bounded_gdal_cache(PIPELINE_CACHE_MB * 2**20):
        return run_raster_pipeline(
            source.grid, source.read, process, OUTPUTS,
            {"OUTPUT_PHASE": output_phase, "OUTPUT_COHERENCE": output_coherence,
             "OUTPUT_INTERFEROGRAM": output_interferogram},
            "insarml:deepinsar_filter",
            {"MODEL": str(model_path), "DEVICE": device_name, "TILE_SIZE": tile_size, "OVERLAP": overlap,
             "BATCH_SIZE": batch_size, "RUNTIME": runner.name, "COHERENCE_WINDOW": coherence_window,
             "LOOKS": None if source.has_amplitudes else looks},
            tile_size, overlap, progress, model=model_path.name, batch_size=batch_size, align=config.downsample)


def _runner(weights: Path, config, device: str, log: Callable[[str], None]):
    """(runner, device name): a cached OpenVINO model on the CPU without torch, else through torch."""
    if cpu_without_torch(device):
        runner = cached_cpu_runner(config, weights)
        if runner is not None:
            return runner, "cpu"
    from ..torch_runtime import pick_device  # torch: a GPU, the torch runtime, or a model's first conversion
    from .torch_runner import TorchRunner

    torch_device = pick_device(device)
    net, _ = load_model(weights, torch_device)
    if torch_device.type == "cuda":
        return TorchRunner(net, torch_device), str(torch_device)
    return cpu_runner(net, weights, log), str(torch_device)


def _coherence_from_looks(card: dict, name: str, has_amplitudes: bool, looks: float | None,
                          coherence_window: int, log: Callable[[str], None]) -> Callable | None:
    """The looks-aware estimate for phase-only inputs with known looks, else None (and why, in the log)."""
    if has_amplitudes:
        if looks is not None:
            log("LOOKS is not needed with amplitudes or SLCs: the coherence comes from the powers.")
        return None
    if looks is None:
        log("Phase-only input without LOOKS: the coherence is the network's head, which cannot tell looks from "
            "coherence; give the product's looks (e.g. 20x4) for a calibrated coherence.")
        return None
    if coherence_window == 0:
        return None
    estimator = LooksCoherence.from_card(card, name)
    if estimator is None:
        raise InsarMlError(f"The model {name} has no looks-aware coherence in its card. Leave LOOKS empty, or fit "
                           f"one: python -m qgis_insar_ml fit-looks-coherence {name}")
    log(f"Coherence: looks-aware estimate for {looks:g} looks.")
    return partial(estimator.estimate, looks=looks)


def filter_arrays(net: DeepInsarNet, block: InterferogramBlock, stats=None,
                  coherence_window: int = DEFAULT_COHERENCE_WINDOW,
                  coherence_from_looks: Callable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(filtered phase, coherence) of one in-memory block with torch in float32, on the network's device.

    ``coherence_from_looks``: ``LooksCoherence.estimate`` with the looks bound, for phase-only blocks."""
    check_coherence_window(coherence_window)
    if net.config.in_channels == 4 and stats is None:
        stats = (AmplitudeStats.of(np.sqrt(block.power_reference)), AmplitudeStats.of(np.sqrt(block.power_secondary)))
    from .torch_runner import TorchRunner  # a torch network: torch is loaded already

    device = next(net.parameters()).device
    phase, coherence = _run_same_shapes(TorchRunner(net, device), [_observation(block, net.config, stats)], False)[0]
    out = _outputs(block, phase, coherence, [], coherence_window, coherence_from_looks)
    return out["OUTPUT_PHASE"], out["OUTPUT_COHERENCE"]


def check_coherence_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not (
            window == 0 or (window >= 3 and window % 2 == 1)):
        raise InsarMlError(f"COHERENCE_WINDOW must be 0 (the network's coherence head) or an odd number of "
                           f"pixels ≥ 3, got {window}.")


def _observation(block: InterferogramBlock, config: DeepInsarConfig, stats) -> np.ndarray:
    """The network input of one block, float32 (C, H, W): the observation (invalid pixels 0
    in every channel) and its fringe-adaptive averages."""
    channels = config.in_channels
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
    return network_input(obs, config.fringe_windows)


def _outputs(block: InterferogramBlock, phase: np.ndarray, coherence: np.ndarray, wanted: list[str],
             coherence_window: int, coherence_from_looks: Callable | None = None) -> dict[str, np.ndarray]:
    """The requested outputs of one tile; the coherence is fringe-compensated when powers are known,
    looks-aware for a phase with known looks, else the network's head."""
    if coherence_window and block.power_reference is not None:
        coherence = compensated_coherence(block.interferogram, phase, coherence_window, block.power_reference,
                                          block.power_secondary)
    elif coherence_window and coherence_from_looks is not None:
        coherence = coherence_from_looks(block.interferogram, phase, coherence, block.valid)
    out = {"OUTPUT_PHASE": phase, "OUTPUT_COHERENCE": coherence}
    if "OUTPUT_INTERFEROGRAM" in wanted:
        out["OUTPUT_INTERFEROGRAM"] = coherence * np.exp(1j * phase)
    return out


# Mixed precision is used only when it changes the first tile by less than this (see _close_enough).
AMP_PHASE_TOLERANCE = 0.01   # rad, coherence²-weighted RMS of the wrapped difference
AMP_COHERENCE_TOLERANCE = 0.005
PRECISION_CHECK_SIZE = 384  # px: a multiple of the networks' 4× grid


def choose_runner_precision(runner, observation: np.ndarray, log: Callable[[str], None]
                            ) -> tuple[bool, tuple[np.ndarray, np.ndarray]]:
    """(use bfloat16, the first tile's (phase, coherence) in the chosen precision).

    bfloat16 is used when the runtime has it natively (a GPU, or a CPU with AVX512-BF16 or
    AMX), ``INSARML_CPU_PRECISION`` is not ``float32``, and on the first tile (its central
    PRECISION_CHECK_SIZE² crop: the rule is a statistic, and a crop costs a fifth of a tile)
    it changes the phase by less than AMP_PHASE_TOLERANCE rad (coherence²-weighted RMS, see
    :func:`_close_enough`) and the coherence by less than AMP_COHERENCE_TOLERANCE RMS. The rule
    is the same on every device. float32 runs first and bfloat16 second, so that the precision
    kept (mostly bfloat16 where it is native) needs no second compilation.
    """
    batch = observation[None]
    if not runner.on_gpu and requested_precision() == "float32":
        log(f"Precision: float32 ({PRECISION_ENV}=float32).")
        return False, _first(runner.run(batch, False))
    if not runner.reduced_precision_available():
        log("Precision: float32 (this processor has no native bfloat16).")
        return False, _first(runner.run(batch, False))
    sample = _central_crop(batch, PRECISION_CHECK_SIZE)
    exact = _first(runner.run(sample, False))
    runner.release(False)  # one precision's working memory at a time: peak memory stays that of one
    try:
        fast = _first(runner.run(sample, True))
    except RuntimeError as exc:  # no bfloat16 on this device after all
        log(f"Mixed precision unavailable ({str(exc).splitlines()[0][:200]}); using float32.")
        return False, exact if sample is batch else _first(runner.run(batch, False))
    ok = _close_enough(fast, exact, log)
    if not ok:
        runner.release(True)
    if sample is batch:
        return ok, fast if ok else exact
    return ok, _first(runner.run(batch, ok))


def _central_crop(batch: np.ndarray, size: int) -> np.ndarray:
    """The central ``size × size`` part of a batch (itself when it is no larger)."""
    height, width = batch.shape[-2:]
    if height <= size and width <= size:
        return batch
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return np.ascontiguousarray(batch[..., top:top + size, left:left + size])


def _first(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return pair[0][0].copy(), pair[1][0].copy()


def _close_enough(fast: tuple[np.ndarray, np.ndarray], exact: tuple[np.ndarray, np.ndarray],
                  log: Callable[[str], None]) -> bool:
    """Whether reduced precision's (phase, coherence) of a tile may stand for float32's.

    Phase: the RMS of the wrapped difference, each pixel weighted by γ², the coherence float32
    predicts there. A phase is worth keeping to the extent it is determined: its spread
    grows as √(1−γ²)/γ, so where γ → 0 it is noise and any change there is immaterial, while a
    coherent pixel counts fully. γ² is bounded, unlike the inverse Cramér–Rao variance
    2Lγ²/(1−γ²), which needs a number of looks the network does not define and lets a few
    pixels with γ ≈ 1 decide alone. A change that is the same in every pixel is judged as by
    the unweighted RMS. Coherence: the unweighted RMS, as before.

    Measured (shipped 4-channel model, OpenVINO bf16 vs f32, four 896² tiles of the
    throughput benchmark's S2-F2 pair): unweighted 0.015–0.020 rad, failing the 0.01 limit,
    but 0.026–0.038 rad in pixels with γ < 0.3 against 0.004 rad where γ > 0.8; weighted
    0.004–0.008 rad; coherence 0.001. Against the true phase of an 896² S2-F2 scene the
    filter's own error is 0.4336 rad RMS in float32 and 0.4340 in bfloat16.
    """
    difference = np.angle(np.exp(1j * (fast[0].astype(np.float64) - exact[0])))
    weight = exact[1].astype(np.float64) ** 2
    total = float(weight.sum())
    phase = float(np.sqrt(np.sum(weight * difference ** 2) / total)) if total > 0 else 0.0
    plain = float(np.sqrt(np.mean(difference ** 2)))
    coherence = float(np.sqrt(np.mean((fast[1].astype(np.float64) - exact[1]) ** 2)))
    ok = phase < AMP_PHASE_TOLERANCE and coherence < AMP_COHERENCE_TOLERANCE
    log(f"bfloat16 vs float32 on the first tile: phase {phase:.4f} rad RMS weighted by coherence² "
        f"({plain:.4f} unweighted), coherence {coherence:.4f} RMS: "
        f"{'using mixed precision' if ok else 'keeping float32'}.")
    return ok


def choose_precision(net: DeepInsarNet, observation: np.ndarray, device: torch.device,
                     log: Callable[[str], None]) -> torch.dtype | None:
    """torch only: bfloat16 autocast when it is no worse than float32 on this tile, else None (float32)."""
    import torch  # a torch network: torch is loaded already

    from .torch_runner import TorchRunner

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
    if not runner.on_gpu:
        return _run_same_shapes(runner, observations, reduced)
    import torch  # a GPU runner: torch is loaded already

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

