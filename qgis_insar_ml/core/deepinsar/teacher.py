"""Teacher–student patches (paper §3.5): real rasters with a trusted reference.

Kept apart from the simulated patches because it reads rasters through GDAL, which a
GPU server that trains on the simulators alone need not have.
"""
from __future__ import annotations

import numpy as np

from ..errors import InsarMlError
from ..inputs import InterferogramSource
from ..raster_io import InputRaster, Window, check_same_grid
from .data import VALIDATION_SEED_BASE, Batch
from .observation import make_observation, source_amplitude_stats


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
