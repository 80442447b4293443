"""The network's input tensor and the paper's amplitude normalisation (eqs. 6–8).

Raw SAR amplitudes span orders of magnitude and differ between sensors and sites; the
network needs inputs of similar scale. The paper maps each amplitude image through its
median absolute deviation (MAD), the modified Z-score and a tanh into [0, 1]:

    MAD = median(|A − Ã|),   A_mz = 0.6745 (A − Ã) / MAD,   Â = (tanh(A_mz / 7) + 1) / 2

The statistics (Ã, MAD) belong to the whole image: on a large raster they come from a
large sample of it, never from each tile, so that neighbouring tiles agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AmplitudeStats:
    """Median and MAD of one amplitude image."""

    median: float
    mad: float

    @classmethod
    def of(cls, amplitude: np.ndarray) -> "AmplitudeStats":
        values = np.asarray(amplitude, np.float64)
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            return cls(0.0, 1.0)
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median)))
        return cls(median, mad if mad > 0 else max(abs(median), 1e-12))


def normalize_amplitude(amplitude: np.ndarray, stats: AmplitudeStats) -> np.ndarray:
    """Eqs. 6–8: modified Z-score squashed by tanh into [0, 1]."""
    z = 0.6745 * (np.asarray(amplitude, np.float32) - stats.median) / stats.mad
    return (0.5 * (np.tanh(z / 7.0) + 1.0)).astype(np.float32)


def make_observation(phase: np.ndarray, amplitudes: tuple[np.ndarray, np.ndarray] | None = None,
                     stats: tuple[AmplitudeStats, AmplitudeStats] | None = None) -> np.ndarray:
    """``[cos φ, sin φ, Â1, Â2]`` (C, H, W) float32, or ``[cos φ, sin φ]`` without amplitudes."""
    channels = [np.cos(phase), np.sin(phase)]
    if amplitudes is not None:
        stats = stats or (AmplitudeStats.of(amplitudes[0]), AmplitudeStats.of(amplitudes[1]))
        channels += [normalize_amplitude(a, s) for a, s in zip(amplitudes, stats)]
    return np.stack(channels).astype(np.float32)


def source_amplitude_stats(source) -> tuple[AmplitudeStats, AmplitudeStats]:
    """Amplitude statistics of a whole :class:`~..inputs.InterferogramSource`, from a sample."""
    first, second = source.amplitude_sample()
    return AmplitudeStats.of(first), AmplitudeStats.of(second)
