"""Phase/coherence metrics and residues on hand-built phase fields (no QGIS needed)."""
from __future__ import annotations

import numpy as np
import pytest

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.filters import boxcar
from qgis_insar_ml.core.metrics import (
    coherence_rmse,
    phase_rmse,
    phase_ssim,
    residue_count,
    residue_density,
    residues,
    wrap,
)

RNG_SEED = 11


def smooth_phase(shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Wrapped ramp plus gaussian bump: crosses the ±π cut many times."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    bump = 4.0 * np.exp(-((rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2) / (2 * 10.0**2))
    return wrap(0.15 * cols + 0.1 * rows + bump)


def vortex() -> np.ndarray:
    """One phase singularity on a 9x9 grid, inside the 2x2 loop whose top-left pixel is [4, 4]."""
    rows, cols = np.mgrid[:9, :9].astype(np.float64)
    return np.angle((cols - 4.5) + 1j * (rows - 4.5))


def test_wrap_range() -> None:
    values = np.array([-3 * np.pi, -np.pi, -1e-20, 0.0, np.pi, 7.0, 2 * np.pi - 1e-12])
    wrapped = wrap(values)
    assert np.all(wrapped >= -np.pi) and np.all(wrapped < np.pi)
    np.testing.assert_allclose(np.exp(1j * wrapped), np.exp(1j * values), atol=1e-12)
    assert wrap(np.pi) == -np.pi


def test_phase_rmse_ignores_whole_cycles_and_measures_offsets() -> None:
    phase = smooth_phase()
    result = phase_rmse(phase, phase + 2 * np.pi)
    assert isinstance(result, float) and result < 1e-12
    assert phase_rmse(wrap(phase + 0.3), phase) == pytest.approx(0.3, abs=1e-9)


def test_phase_rmse_excludes_nan_and_masked_pixels() -> None:
    phase = smooth_phase()
    estimate = wrap(phase + 0.3)
    estimate[:10] = np.nan
    estimate[-5:] = phase[-5:] + 2.0  # large error, but masked out below
    mask = np.ones(phase.shape, bool)
    mask[-5:] = False
    assert phase_rmse(estimate, phase, mask) == pytest.approx(0.3, abs=1e-9)


def test_coherence_rmse() -> None:
    reference = np.linspace(0, 1, 400).reshape(20, 20)
    result = coherence_rmse(reference - 0.1, reference)
    assert isinstance(result, float) and result == pytest.approx(0.1, abs=1e-12)


def test_ssim_identical_images_is_one_even_across_the_cut() -> None:
    phase = smooth_phase()
    assert phase_ssim(phase, phase) == pytest.approx(1.0, abs=1e-12)
    # Whole cycles added pixel by pixel: the aligned estimate is the reference again.
    cycles = np.random.default_rng(RNG_SEED).integers(-2, 3, phase.shape)
    assert phase_ssim(phase + 2 * np.pi * cycles, phase) == pytest.approx(1.0, abs=1e-9)
    mask = np.zeros(phase.shape, bool)
    mask[:, :30] = True
    assert phase_ssim(phase, phase, mask) == pytest.approx(1.0, abs=1e-12)


def test_ssim_decreases_with_noise_and_is_low_for_unrelated_noise() -> None:
    rng = np.random.default_rng(RNG_SEED)
    phase = smooth_phase()
    noise = rng.standard_normal(phase.shape)
    scores = [phase_ssim(wrap(phase + sigma * noise), phase) for sigma in (0.0, 0.1, 0.3, 0.6, 1.0)]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert phase_ssim(rng.uniform(-np.pi, np.pi, phase.shape), phase) < 0.3


def test_smooth_ramp_has_no_residues() -> None:
    charges = residues(smooth_phase())
    assert charges.dtype == np.int8 and charges.shape == (63, 63)
    assert not charges.any()


def test_single_vortex_has_one_residue_of_each_sign() -> None:
    phase = vortex()
    charges = residues(phase)
    assert np.count_nonzero(charges) == 1 and charges[4, 4] == 1
    conjugate = residues(-phase)
    assert np.count_nonzero(conjugate) == 1 and conjugate[4, 4] == -1
    assert residue_count(phase) == 1
    assert residue_density(phase) == pytest.approx(1 / 64)


def test_invalid_pixels_exclude_their_loops() -> None:
    phase = vortex()
    mask = np.ones(phase.shape, bool)
    mask[5, 5] = False  # a corner of the vortex loop
    assert residue_count(phase, mask) == 0
    assert residue_density(phase, mask) == 0.0
    with_nan = phase.copy()
    with_nan[4, 4] = np.nan
    assert residue_count(with_nan) == 0
    assert residues(with_nan)[4, 4] == 0


def test_filtering_removes_residues() -> None:
    rng = np.random.default_rng(RNG_SEED)
    phase = smooth_phase((96, 96))
    noise = 0.7 * (rng.standard_normal(phase.shape) + 1j * rng.standard_normal(phase.shape)) / np.sqrt(2)
    ifg = (np.exp(1j * phase) + noise).astype(np.complex64)
    noisy = residue_count(np.angle(ifg))
    filtered = residue_count(np.angle(boxcar(ifg, 5)[0]))
    assert isinstance(noisy, int) and noisy > 10 * max(filtered, 1)


@pytest.mark.parametrize(
    "metric",
    [
        lambda p, m: phase_rmse(p, p, m),
        lambda p, m: phase_ssim(p, p, m),
        lambda p, m: coherence_rmse(p, p, m),
        residue_count,
        residue_density,
    ],
)
def test_empty_mask_raises(metric) -> None:
    phase = smooth_phase((16, 16))
    with pytest.raises(InsarMlError, match="no valid pixels to compare"):
        metric(phase, np.zeros(phase.shape, bool))


def test_shape_mismatch_raises() -> None:
    with pytest.raises(InsarMlError, match="same shape"):
        phase_rmse(np.zeros((4, 4)), np.zeros((4, 5)))
