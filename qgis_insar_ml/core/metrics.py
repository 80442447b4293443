"""Quality metrics for filtered phase and coherence (DeepInSAR-style evaluation).

Phase is compared modulo 2π throughout: an estimate that differs from the reference by a
whole number of cycles is a perfect estimate. Pixels that are masked out (``mask`` False)
or NaN in either input are left out of every statistic.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

from .errors import InsarMlError

# SSIM constants of Wang et al. (2004); the data range of a wrapped phase is 2π.
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11 x 11 window
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_PHASE_RANGE = 2.0 * np.pi


def wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap phase to [-π, π)."""
    wrapped = np.mod(np.asarray(phase) + np.pi, 2.0 * np.pi) - np.pi
    # Floating-point mod can return exactly 2π for tiny negative inputs.
    return np.where(wrapped >= np.pi, wrapped - 2.0 * np.pi, wrapped)


def _valid_pixels(mask: np.ndarray | None, *arrays: np.ndarray) -> np.ndarray:
    """Boolean map of pixels that are inside ``mask`` and finite in every array."""
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays) or (mask is not None and np.shape(mask) != shape):
        shapes = [a.shape for a in arrays] + ([np.shape(mask)] if mask is not None else [])
        raise InsarMlError(f"The rasters to compare must have the same shape, got {shapes}.")
    valid = np.ones(shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).copy()
    for array in arrays:
        valid &= np.isfinite(array)
    return valid


def _require_any(valid: np.ndarray) -> None:
    if not valid.any():
        raise InsarMlError("no valid pixels to compare: the mask is empty or every pixel is NaN; check the mask.")


def _rmse(difference: np.ndarray, valid: np.ndarray) -> float:
    _require_any(valid)
    return float(np.sqrt(np.mean(np.square(difference[valid], dtype=np.float64))))


def phase_rmse(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMSE in radians of the wrapped phase error, so 2π ambiguities count as zero."""
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    valid = _valid_pixels(mask, estimate, reference)
    return _rmse(wrap(estimate - reference), valid)


def coherence_rmse(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMSE between two coherence maps."""
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    valid = _valid_pixels(mask, estimate, reference)
    return _rmse(estimate - reference, valid)


def phase_ssim_map(estimate: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004) between the reference phase and the aligned estimate.

    The paper computes SSIM on phase images, where a value just below π and one just above
    -π are the same phase but look maximally different. Comparing against the aligned
    estimate ``reference + wrap(estimate - reference)`` makes that ±π jump harmless while
    keeping every genuine error; the aligned estimate then shares the reference's own ±π
    texture, so unrelated noise scores above 0 on dense fringes. Invalid pixels are zeroed
    before filtering. The map is defined everywhere so callers can average it over any
    region (the tile cores of a streamed evaluation, for instance).
    """
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    x = np.where(valid, reference, 0.0)
    y = np.where(valid, reference + wrap(estimate - reference), 0.0)

    def blur(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, _SSIM_SIGMA, truncate=_SSIM_RADIUS / _SSIM_SIGMA)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1 = (_SSIM_K1 * _PHASE_RANGE) ** 2
    c2 = (_SSIM_K2 * _PHASE_RANGE) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def phase_ssim(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean phase SSIM over the valid pixels (see :func:`phase_ssim_map`)."""
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    valid = _valid_pixels(mask, estimate, reference)
    _require_any(valid)
    return float(phase_ssim_map(estimate, reference, valid)[valid].mean())


def residues(phase: np.ndarray) -> np.ndarray:
    """Charge (+1, -1 or 0) of every 2x2 loop, shape (H-1, W-1), int8.

    The loop runs right, down, left, up over the wrapped differences; a nonzero sum (±2π)
    marks a phase singularity that path-following unwrapping cannot cross. Loops touching a
    NaN get 0.
    """
    phase = np.asarray(phase, np.float64)
    if phase.ndim != 2:
        raise InsarMlError(f"The phase must be a 2-D raster, got an array of shape {phase.shape}.")
    top_left, top_right = phase[:-1, :-1], phase[:-1, 1:]
    bottom_left, bottom_right = phase[1:, :-1], phase[1:, 1:]
    circulation = (
        wrap(top_right - top_left)
        + wrap(bottom_right - top_right)
        + wrap(bottom_left - bottom_right)
        + wrap(top_left - bottom_left)
    )
    charge = np.rint(circulation / (2.0 * np.pi))
    return np.where(np.isfinite(charge), charge, 0).astype(np.int8)


def _loop_residues(phase: np.ndarray, mask: np.ndarray | None) -> tuple[int, int]:
    """(residues, loops) counted over loops whose four corners are valid; raises when there is none."""
    charges = residues(phase)
    valid = _valid_pixels(mask, np.asarray(phase, np.float64))
    loops = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:]
    if not loops.any():
        raise InsarMlError("no valid pixels to compare: no 2x2 loop has four valid corners; check the mask.")
    return int(np.count_nonzero(charges[loops])), int(np.count_nonzero(loops))


def residue_count(phase: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Number of residues over loops whose four corners are valid (fewer = easier unwrapping)."""
    return _loop_residues(phase, mask)[0]


def residue_density(phase: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Residues per valid loop, comparable across rasters of different size or masking."""
    count, loops = _loop_residues(phase, mask)
    return count / loops


def periodic_artifact_ratio(interferogram: np.ndarray, period: int, window: int = 9) -> float:
    """Strongest spectral peak of the fine-scale phase texture at a multiple of 1/``period``
    cycle/px, relative to the median spectral power.

    A network that works on a ``period``-times downsampled grid and upsamples without
    anti-aliasing leaves a ``period``-pixel texture. It shows in the residual phase
    ``angle(z · conj(boxcar_window(z)))`` of the output phasor ``z`` (smooth signal
    removed): its 2-D power spectrum, averaged over rows (for column frequencies) and over
    columns (for row frequencies), peaks at ``k/period`` cycle/px. Unfiltered inputs and
    Boxcar give 1–2 on the real scenes; the old pixel-shuffled model gave 255 on LiCSAR Greece.
    """
    z = np.asarray(interferogram)
    if np.isrealobj(z):
        z = np.exp(1j * z)
    z = np.where(np.isfinite(z), z, 0)
    smooth = uniform_filter(z.real, window) + 1j * uniform_filter(z.imag, window)
    residual = np.angle(z * np.conj(smooth))
    residual = residual - residual.mean()
    ratios = []
    for axis in (0, 1):
        spectrum = np.mean(np.abs(np.fft.rfft(residual, axis=axis)) ** 2, axis=1 - axis)
        n = residual.shape[axis]
        freqs = np.fft.rfftfreq(n)
        median = np.median(spectrum[1:])
        for k in range(1, period // 2 + 1):
            index = int(np.argmin(np.abs(freqs - k / period)))
            ratios.append(spectrum[index] / max(median, 1e-30))
    return float(max(ratios))
