"""The standard statistics of distributed scatterers: correlated speckle and multilooking.

Both the realistic simulator and the real-signal benchmark build a secondary SLC from a
reference one with the circular complex Gaussian model of a pair with coherence γ,

    s2 = (γ·s1 + √(1−γ²)·|s1|_local·n) · exp(−iφ),   n ~ CN(0, 1),

so ``<s1 s2*> = γ·<|s1|²>·exp(iφ)`` and the interferogram ``s1·conj(s2)`` has phase φ.
``|s1|_local`` is the RMS amplitude of ``s1`` over a small window, so the decorrelated
part carries the local brightness (its power matches the reference's) without copying
the reference's speckle, which would leak coherence.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from .errors import InsarMlError


def local_rms_amplitude(slc: np.ndarray, window: int = 5) -> np.ndarray:
    """RMS amplitude of ``slc`` over a ``window``×``window`` box (float32)."""
    return np.sqrt(uniform_filter(np.abs(slc).astype(np.float32) ** 2, size=window, mode="reflect"))


def speckle_like(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-power circular Gaussian noise with the power spectrum of ``reference`` (complex64).

    Decorrelation noise reaches an SLC through the same sensor transfer function as the
    signal, so in real (oversampled, spectrally weighted) SLCs it is as spatially correlated
    as their speckle: neighbouring phases correlate at 0.3–0.5 in the Sentinel-1 and despeckCL
    scenes. White noise misses that.
    """
    noise = rng.standard_normal((2, *np.shape(reference)), dtype=np.float32)
    white = noise[0] + 1j * noise[1]
    shaped = np.fft.ifft2(np.fft.fft2(white) * np.abs(np.fft.fft2(reference)))
    return (shaped / np.sqrt(np.mean(np.abs(shaped) ** 2))).astype(np.complex64)


def correlated_secondary(reference: np.ndarray, coherence: np.ndarray | float, phase: np.ndarray | float,
                         rng: np.random.Generator, window: int = 5, sensor_spectrum: bool = False) -> np.ndarray:
    """A secondary SLC with coherence ``coherence`` to ``reference`` and interferometric
    phase ``phase`` (reference · conj(secondary) has phase ``phase``), complex64.

    ``sensor_spectrum``: the decorrelated part has the reference's power spectrum
    (:func:`speckle_like`) instead of being white."""
    reference = np.asarray(reference)
    gamma = np.asarray(coherence, dtype=np.float32)
    if np.any(gamma < 0) or np.any(gamma > 1):
        raise InsarMlError("The coherence must lie in [0, 1].")
    if sensor_spectrum:
        n = speckle_like(reference, rng)
    else:
        noise = rng.standard_normal((2, *reference.shape), dtype=np.float32)
        n = (noise[0] + 1j * noise[1]) * np.float32(np.sqrt(0.5))
    mixed = gamma * reference + np.sqrt(1.0 - gamma ** 2) * local_rms_amplitude(reference, window) * n
    return (mixed * np.exp(-1j * np.asarray(phase, dtype=np.float32))).astype(np.complex64)


def multilook(values: np.ndarray, looks: tuple[int, int]) -> np.ndarray:
    """Mean over non-overlapping ``(rows, columns)`` blocks, as SAR processors multilook;
    a trailing partial block is dropped."""
    rows, cols = (int(v) for v in looks)
    if rows < 1 or cols < 1:
        raise InsarMlError(f"Looks must be at least 1×1, got {rows}×{cols}.")
    height, width = values.shape[-2] // rows, values.shape[-1] // cols
    if height == 0 or width == 0:
        raise InsarMlError(f"The image ({values.shape[-2]}×{values.shape[-1]}) is smaller than one "
                           f"{rows}×{cols} look window.")
    cut = values[..., :height * rows, :width * cols]
    return cut.reshape(*values.shape[:-2], height, rows, width, cols).mean(axis=(-3, -1))
