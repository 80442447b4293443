"""Training and validation patches: simulated (all 18 configurations) or teacher rasters.

Seeds: a scene seed drawn for training lies in [0, 10^9); the fixed validation set uses
10^9 + k and the benchmark's test set 2·10^9 + k, so the three never share a scene.
Every batch is a pure function of (seed, step, rank): a resumed or distributed run draws
exactly the batches it would have drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InsarMlError
from ..inputs import InterferogramSource
from ..raster_io import InputRaster, Window, check_same_grid
from ..simulator import CONFIGURATIONS, simulate_pair
from .observation import make_observation, source_amplitude_stats

TRAIN_SEED_RANGE = 10**9
VALIDATION_SEED_BASE = 10**9
TEST_SEED_BASE = 2 * 10**9


@dataclass
class Batch:
    observation: np.ndarray  # (B, C, H, W) float32
    clean: np.ndarray        # (B, 2, H, W) float32: [cos, sin] of the reference phase
    coherence: np.ndarray    # (B, 1, H, W) float32 target in [0, 1]
    weight: np.ndarray       # (B, 1, H, W) float32: 0 where the pixel must not count


def simulated_sample(config_index: int, seed: int, size: int, in_channels: int) -> tuple[np.ndarray, ...]:
    """One simulated patch: (observation, clean [cos, sin], true coherence)."""
    noise, fringe, strips = CONFIGURATIONS[config_index]
    pair = simulate_pair(size, size, noise, fringe, strips, seed)
    amplitudes = (np.abs(pair.reference), np.abs(pair.secondary)) if in_channels == 4 else None
    obs = make_observation(np.angle(pair.interferogram), amplitudes)
    clean = np.stack([np.cos(pair.clean_phase), np.sin(pair.clean_phase)]).astype(np.float32)
    return obs, clean, pair.coherence[None]


def _stack(samples: list[tuple[np.ndarray, ...]]) -> Batch:
    obs, clean, coh = (np.stack(parts) for parts in zip(*samples))
    return Batch(obs, clean, coh, np.ones_like(coh))


def configuration_index(name: str) -> int:
    """Index in CONFIGURATIONS of a name like ``S1-F2-S`` (stripes) or ``S3-F1-NS``."""
    names = [f"{n}-{f}-{'S' if s else 'NS'}" for n, f, s in CONFIGURATIONS]
    if name not in names:
        raise InsarMlError(f"Unknown simulator configuration {name!r}: use names like {names[0]} or {names[-1]}.")
    return names.index(name)


class SimulatedPatches:
    """Patches from the simulator, cycling through a mix of the 18 configurations.

    ``mix`` lists configuration indices to cycle through (default: all 18 once); listing
    one several times over-represents it, e.g. to fine-tune on the scenes a model finds
    hardest without forgetting the others.
    """

    def __init__(self, seed: int, patch_size: int = 128, in_channels: int = 4, mix: list[int] | None = None):
        self.seed, self.patch_size, self.in_channels = seed, patch_size, in_channels
        self.mix = list(mix) if mix else list(range(len(CONFIGURATIONS)))

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Batch:
        rng = np.random.default_rng([self.seed, step, rank])
        first = int(rng.integers(len(self.mix)))
        samples = []
        for i in range(batch_size):
            config = self.mix[(first + i) % len(self.mix)]
            # each configuration has its own seed stream
            scene_seed = int(np.random.default_rng([self.seed, config, step, rank, i]).integers(TRAIN_SEED_RANGE))
            samples.append(simulated_sample(config, scene_seed, self.patch_size, self.in_channels))
        return _stack(samples)

    def validation(self, per_config: int = 2) -> Batch:
        """The fixed validation set: ``per_config`` patches of every configuration."""
        return _stack([simulated_sample(c, VALIDATION_SEED_BASE + 1000 * c + k, self.patch_size, self.in_channels)
                       for c in range(len(CONFIGURATIONS)) for k in range(per_config)])


class TeacherPatches:
    """Patches cut from real rasters with a trusted reference phase and coherence (§3.5).

    The inputs are the filter's (SLC pair, or interferogram + optional amplitudes); the
    targets are the teacher's filtered phase and coherence. With ``binarize`` the
    coherence target is thresholded at 0.5, as the paper does for a biased teacher.
    Patches with no-data are excluded; a fixed 10 % of patch positions is held out for
    validation.
    """

    def __init__(self, source: InterferogramSource, reference_phase: str, reference_coherence: str,
                 seed: int, patch_size: int = 128, in_channels: int = 4, binarize: bool = True):
        if in_channels == 4 and not source.has_amplitudes:
            raise InsarMlError("The 4-channel model needs amplitudes: give the SLC pair, or the interferogram "
                               "with AMPLITUDE_REFERENCE and AMPLITUDE_SECONDARY (or train the phase-only model).")
        self.source, self.seed, self.patch_size, self.in_channels, self.binarize = (
            source, seed, patch_size, in_channels, binarize)
        self.reference_phase = InputRaster(reference_phase, "REFERENCE_PHASE", "phase")
        self.reference_coherence = InputRaster(reference_coherence, "REFERENCE_COHERENCE", "real")
        grid = check_same_grid([self.reference_phase, self.reference_coherence])
        if (grid.width, grid.height) != (source.grid.width, source.grid.height):
            raise InsarMlError("The teacher rasters must be on the input's pixel grid.")
        if min(grid.width, grid.height) < patch_size:
            raise InsarMlError(f"The rasters ({grid.width}×{grid.height}) are smaller than one training patch "
                               f"({patch_size} px). Lower PATCH_SIZE.")
        self.stats = source_amplitude_stats(source) if in_channels == 4 else None
        self.grid = grid

    def _is_validation(self, row0: int, col0: int) -> bool:
        cell = (row0 // self.patch_size, col0 // self.patch_size)
        return np.random.default_rng([self.seed, 7, *cell]).random() < 0.1

    def _sample(self, rng: np.random.Generator, validation: bool) -> tuple[np.ndarray, ...] | None:
        row0 = int(rng.integers(self.grid.height - self.patch_size + 1))
        col0 = int(rng.integers(self.grid.width - self.patch_size + 1))
        if self._is_validation(row0, col0) != validation:
            return None
        window = Window(row0, col0, self.patch_size, self.patch_size)
        block = self.source.read(window)
        phase, valid_p = self.reference_phase.read(window)
        coherence, valid_c = self.reference_coherence.read(window)
        valid = block.valid & valid_p & valid_c
        if valid.mean() < 0.9:
            return None
        amps = (np.sqrt(block.power_reference), np.sqrt(block.power_secondary)) if self.stats else None
        obs = make_observation(np.angle(block.interferogram), amps, self.stats)
        clean = np.stack([np.cos(phase), np.sin(phase)]).astype(np.float32)
        target = (coherence >= 0.5).astype(np.float32) if self.binarize else np.clip(coherence, 0, 1)
        return obs, clean, target[None], valid[None].astype(np.float32)

    def _batch(self, rng: np.random.Generator, batch_size: int, validation: bool) -> Batch:
        samples: list[tuple[np.ndarray, ...]] = []
        for _ in range(200 * batch_size):
            sample = self._sample(rng, validation)
            if sample is not None:
                samples.append(sample)
                if len(samples) == batch_size:
                    obs, clean, coh, weight = (np.stack(p) for p in zip(*samples))
                    return Batch(obs, clean, coh, weight)
        raise InsarMlError("Could not find enough valid training patches (most are no-data). "
                           "Check the no-data masks or lower PATCH_SIZE.")

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Batch:
        return self._batch(np.random.default_rng([self.seed, step, rank]), batch_size, validation=False)

    def validation(self, per_config: int = 2) -> Batch:
        return self._batch(np.random.default_rng([self.seed, VALIDATION_SEED_BASE]), max(8, per_config * 4),
                           validation=True)
