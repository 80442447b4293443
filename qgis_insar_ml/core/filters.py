"""Classical interferogram filters: boxcar multilook and Goldstein–Baran.

Both run on blocks cut by the tiling engine (window + halo), so they are pure functions of
their arrays: invalid pixels arrive as 0+0j and contribute nothing, and every result that
depends on position is anchored at absolute raster coordinates so that blocks agree with
a whole-raster run away from their edges.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter, uniform_filter1d

from .errors import InsarMlError
from .strips import by_row_strips

# scipy.fft threads the batched patch FFTs; two workers match the two-core speed target.
_FFT_WORKERS = 2


def _check_2d(name: str, array: np.ndarray) -> None:
    if array.ndim != 2:
        raise InsarMlError(f"{name} must be a 2-D raster block, got an array of shape {array.shape}.")


# Up to this window, box sums down the columns are shifted adds of whole rows: contiguous
# memory, 2-3x faster than scipy's strided column pass. Beyond it scipy's running sums, whose
# cost does not grow with the window.
SHIFTED_SUM_MAX_WINDOW = 21


def window_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Box mean over ``window × window`` of the last two axes, with zeros outside the block.

    Zero padding means edge and masked pixels add nothing. Means keep the dtype of ``values``
    (float32 sums of up to 21 values: 1e-7 relative).
    """
    if window > SHIFTED_SUM_MAX_WINDOW:
        return uniform_filter(values, size=(1,) * (values.ndim - 2) + (window, window), mode="constant", cval=0.0)
    half, rows = window // 2, values.shape[-2]
    padded = np.zeros(values.shape[:-2] + (rows + 2 * half, values.shape[-1]), values.dtype)
    padded[..., half:half + rows, :] = values
    columns = padded[..., :rows, :].copy()
    for shift in range(1, window):
        columns += padded[..., shift:shift + rows, :]
    columns *= 1 / window
    return uniform_filter1d(columns, window, axis=-1, mode="constant", cval=0.0)


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3 or window % 2 == 0:
        raise InsarMlError(f"WINDOW must be an odd number of pixels >= 3, got {window}.")


def boxcar(
    ifg: np.ndarray,
    window: int,
    power_reference: np.ndarray | None = None,
    power_secondary: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Moving-average (multilook) filter: (complex64 window mean of ``ifg``, float32 coherence).

    Coherence is the maximum-likelihood estimator (DeepInSAR eq. 5),
    ``|Σ ifg| / sqrt(Σ P1 · Σ P2)`` with ``P1 = |s1|²`` and ``P2 = |s2|²`` the SLC powers;
    without the powers it is ``|Σ ifg| / Σ |ifg|``, which for unit-magnitude input is the
    phase-only estimate ``|mean(exp(iφ))|``. Zero-padded sums make the window count cancel,
    so raster edges and masked (zero) pixels need no special case. Coherence is 0 where the
    denominator is 0 and is clipped to [0, 1].
    """
    _check_window(window)
    if (power_reference is None) != (power_secondary is None):
        raise InsarMlError(
            "Give both SLC powers (reference and secondary) for the maximum-likelihood coherence, or neither."
        )
    ifg = np.asarray(ifg)
    _check_2d("The interferogram", ifg)
    window = int(window)

    # float32 arrays throughout: within float32 rounding of a float64 run, at half the memory traffic.
    real = window_mean(ifg.real.astype(np.float32, copy=False), window)
    imag = window_mean(ifg.imag.astype(np.float32, copy=False), window)
    if power_reference is None:
        denominator = window_mean(np.abs(ifg).astype(np.float32, copy=False), window)
    else:
        powers = [np.asarray(p, dtype=np.float32) for p in (power_reference, power_secondary)]
        if any(p.shape != ifg.shape for p in powers):
            raise InsarMlError(
                f"The SLC power rasters must have the interferogram's shape {ifg.shape}, "
                f"got {powers[0].shape} and {powers[1].shape}."
            )
        denominator = np.sqrt(window_mean(powers[0], window))
        denominator *= np.sqrt(window_mean(powers[1], window))

    with np.errstate(invalid="ignore", divide="ignore"):
        # |Σ ifg| / denominator from parts divided first: each is at most 1 (Cauchy–Schwarz), so
        # their squares cannot overflow float32 as |Σ ifg|² can for bright scatterers.
        coherence = np.square(real / denominator) + np.square(imag / denominator)
    np.sqrt(coherence, out=coherence)
    coherence[~(denominator > 0)] = 0
    filtered = np.empty(ifg.shape, np.complex64)
    filtered.real, filtered.imag = real, imag
    if not ifg.all():
        # Running sums along rows leave ~1e-17 residues over all-masked windows: make those exactly empty.
        # (A block without zero pixels has none: every window holds its own centre.)
        empty = window_mean((ifg != 0).astype(np.float32), window) < 0.5 / window**2
        coherence[empty] = 0
        filtered[empty] = 0
    return filtered, np.clip(coherence, 0.0, 1.0, out=coherence)


# Box of the fringe-compensated coherence: 9 px beat 7 and nearly matched 11 on the real-signal
# benchmark (constant and smooth γ) and lose little to 5 on the realistic simulator's sharp patches.
DEFAULT_COHERENCE_WINDOW = 9
# Box that smooths the removed phase. Unsmoothed, a restored phase that still follows some noise
# makes the residual look coherent (Amsterdam 0.86, despeckCL 0.81 against Boxcar's 0.75 and 0.49);
# 5 px gives 0.79 and 0.56 and keeps linear fringes up to 2π/5 rad/px (9 px lost the benchmark's
# near-field fringes: 13/24 wins against 22/24).
COMPENSATION_SMOOTHING = 5


def compensated_coherence(ifg: np.ndarray, phase: np.ndarray, window: int, power_reference: np.ndarray,
                          power_secondary: np.ndarray, smoothing: int = COMPENSATION_SMOOTHING) -> np.ndarray:
    """Maximum-likelihood coherence over a box window after removing a known phase (float32).

    Boxcar's estimate drops wherever fringes turn within its window, so it reads dense
    fringes as decorrelation. With the (``smoothing``-box averaged) restored phase removed
    first, the window averages noise only: the estimate keeps Boxcar's calibration on flat
    areas and loses the fringe bias (flat-earth fringes, coseismic near fields). A symmetric
    box average keeps a linear fringe's phase, so the smoothing removes noise, not fringes.

    Boxcar's coherence of ``ifg · exp(−i·angle(box mean of exp(i·phase)))``, computed in
    float32 like Boxcar: within 1e-6 of float64 arrays at less than half the time (float64
    was a third of a DeepInSAR run on the CPU), in row strips in threads (:mod:`.strips`).
    """
    _check_window(window)
    ifg = np.asarray(ifg)
    _check_2d("The interferogram", ifg)
    window = int(window)
    return by_row_strips(lambda *pieces: _compensated_coherence(*pieces, window, smoothing),
                         (ifg, np.asarray(phase, np.float32), power_reference, power_secondary),
                         window // 2 + smoothing // 2)


def compensated_phasor(ifg: np.ndarray, phase: np.ndarray, smoothing: int = COMPENSATION_SMOOTHING
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(real, imaginary) float32 of ``ifg · exp(−i·angle(box mean of exp(i·phase)))``: the
    interferogram with the (``smoothing``-box averaged) phase removed; no smoothing for 1."""
    cos, sin = np.cos(phase), np.sin(phase)
    if smoothing > 1:  # the unit phasor of the box mean; angle 0 where the mean is 0, as np.angle
        cos, sin = window_mean(cos, smoothing), window_mean(sin, smoothing)
        norm = np.hypot(cos, sin)
        empty = norm == 0
        norm[empty] = 1.0
        cos[empty] = 1.0
        cos /= norm
        sin /= norm
    real, imag = np.asarray(ifg.real, np.float32), np.asarray(ifg.imag, np.float32)
    return real * cos + imag * sin, imag * cos - real * sin


def _compensated_coherence(ifg: np.ndarray, phase: np.ndarray, power_reference: np.ndarray,
                           power_secondary: np.ndarray, window: int, smoothing: int) -> np.ndarray:
    real, imag = compensated_phasor(ifg, phase, smoothing)
    numerator = np.hypot(window_mean(real, window), window_mean(imag, window))
    # √ΣP1 · √ΣP2: the product of the sums could overflow float32 for bright scatterers.
    denominator = np.sqrt(window_mean(np.asarray(power_reference, np.float32), window))
    denominator *= np.sqrt(window_mean(np.asarray(power_secondary, np.float32), window))
    support = window_mean((ifg != 0).astype(np.float32), window) > 0.5 / window**2
    coherence = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=support & (denominator > 0))
    return np.clip(coherence, 0.0, 1.0, out=coherence)


def _patch_window(patch_size: int) -> np.ndarray:
    """Raised-cosine taper, positive on every patch pixel so each covered pixel has weight > 0."""
    return np.sin(np.pi * (np.arange(patch_size) + 0.5) / patch_size) ** 2


def _grid_span(origin: int, length: int, patch_size: int, step: int) -> tuple[int, int]:
    """(first patch index, patch count) of the absolute grid ``k * step`` covering [origin, origin + length)."""
    first = (origin - patch_size) // step + 1
    last = (origin + length - 1) // step
    return first, last - first + 1


def _overlap_add_1d(weights: np.ndarray, count: int, step: int) -> np.ndarray:
    """Sum of the 1-D taper over ``count`` patches spaced by ``step``."""
    total = np.zeros((count - 1) * step + weights.size, dtype=np.float64)
    for k in range(count):
        total[k * step : k * step + weights.size] += weights
    return total


def _validate_goldstein(alpha: float, patch_size: int, overlap: int, smoothing: int) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise InsarMlError(f"ALPHA must be between 0 (no filtering) and 1 (strongest), got {alpha}.")
    if (
        isinstance(patch_size, bool)
        or not isinstance(patch_size, (int, np.integer))
        or patch_size < 8
        or patch_size & (patch_size - 1)
    ):
        raise InsarMlError(f"PATCH_SIZE must be a power of two >= 8 (e.g. 32 or 64), got {patch_size}.")
    if not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < patch_size:
        raise InsarMlError(f"OVERLAP must be a whole number of pixels in [0, {patch_size - 1}], got {overlap}.")
    if not isinstance(smoothing, (int, np.integer)) or smoothing < 1 or smoothing % 2 == 0:
        raise InsarMlError(f"SMOOTHING must be an odd number of spectral bins >= 1 (e.g. 3), got {smoothing}.")


def goldstein(
    ifg: np.ndarray,
    alpha: float = 0.5,
    patch_size: int = 32,
    overlap: int | None = None,
    smoothing: int = 3,
    grid_origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Goldstein–Baran adaptive power-spectrum filter; returns complex64.

    Each ``patch_size`` square patch is weighted in frequency by ``S**alpha`` (``S`` = box-
    smoothed ``|FFT|``, normalised to its patch maximum) so strong fringes are kept and noise
    damped. Patches start at absolute raster rows/columns that are multiples of
    ``step = patch_size - overlap``; ``grid_origin`` is the absolute (row, col) of the block's
    pixel [0, 0], which makes a block with a halo >= ``patch_size`` match the whole-raster
    result away from its edges. Overlapping patches are blended in the complex domain with a
    raised-cosine taper. Masked (zero) pixels receive values from their neighbours; the caller
    re-applies its mask if it needs them invalid.
    """
    overlap = patch_size // 2 if overlap is None else overlap
    _validate_goldstein(alpha, patch_size, overlap, smoothing)
    ifg = np.asarray(ifg)
    _check_2d("The interferogram", ifg)
    step = patch_size - overlap
    rows, cols = ifg.shape

    # Zero-pad so the block is covered by whole patches of the absolute grid.
    first_row, n_row = _grid_span(int(grid_origin[0]), rows, patch_size, step)
    first_col, n_col = _grid_span(int(grid_origin[1]), cols, patch_size, step)
    top = int(grid_origin[0]) - first_row * step
    left = int(grid_origin[1]) - first_col * step
    padded_rows = (n_row - 1) * step + patch_size
    padded_cols = (n_col - 1) * step + patch_size
    # complex128 keeps alpha=0 an identity to 1e-5 in phase even at low-magnitude pixels.
    padded = np.zeros((padded_rows, padded_cols), dtype=np.complex128)
    padded[top : top + rows, left : left + cols] = ifg

    patches = sliding_window_view(padded, (patch_size, patch_size))[::step, ::step]
    spectrum = scipy.fft.fft2(patches, axes=(-2, -1), workers=_FFT_WORKERS)
    smoothed = np.abs(spectrum)
    for axis in (-2, -1):  # the spectrum is periodic, hence the circular box filter
        smoothed = uniform_filter1d(smoothed, smoothing, axis=axis, mode="wrap")
    response = smoothed**alpha
    peak = response.max(axis=(-2, -1), keepdims=True)
    response *= np.divide(1.0, peak, out=np.zeros_like(peak), where=peak > 0)  # all-zero patch -> 0
    taper = _patch_window(patch_size)
    filtered = scipy.fft.ifft2(spectrum * response, axes=(-2, -1), workers=_FFT_WORKERS)
    filtered *= taper[:, None] * taper[None, :]

    # Overlap-add: patches k and k + stride never overlap, so all patches sharing
    # (row index mod stride, col index mod stride) are added at once through a
    # (patch, pixel, patch, pixel) view of the accumulator.
    stride = -(-patch_size // step)
    span = stride * step
    accum = np.zeros(((n_row + stride) * step, (n_col + stride) * step), dtype=np.complex128)
    for i in range(min(stride, n_row)):
        for j in range(min(stride, n_col)):
            group = filtered[i::stride, j::stride]
            gr, gc = group.shape[:2]
            target = accum[i * step : i * step + gr * span, j * step : j * step + gc * span]
            target = target.reshape(gr, span, gc, span)[:, :patch_size, :, :patch_size]
            target += group.transpose(0, 2, 1, 3)

    weight_rows = _overlap_add_1d(taper, n_row, step)[top : top + rows]
    weight_cols = _overlap_add_1d(taper, n_col, step)[left : left + cols]
    result = accum[top : top + rows, left : left + cols] / np.outer(weight_rows, weight_cols)
    return result.astype(np.complex64)
