"""The standard correlated-pair model and multilooking shared by the realistic simulator and
the real-signal benchmark."""
from __future__ import annotations

import numpy as np
import pytest

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.simulator import sample_coherence
from qgis_insar_ml.core.speckle import correlated_secondary, multilook, speckle_like


def _white_slc(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)).astype(np.complex64)


def _neighbour_correlation(slc: np.ndarray) -> float:
    return float(abs(np.mean(slc[:, 1:] * np.conj(slc[:, :-1]))) / np.mean(np.abs(slc) ** 2))


@pytest.mark.parametrize("sensor_spectrum", [False, True])
@pytest.mark.parametrize("gamma", [0.35, 0.85])
def test_correlated_secondary_has_the_asked_coherence_and_phase(gamma, sensor_spectrum):
    reference = _white_slc((256, 256), 1)
    secondary = correlated_secondary(reference, gamma, 0.7, np.random.default_rng(2), sensor_spectrum=sensor_spectrum)
    assert abs(sample_coherence(reference, secondary, 21)[16:-16, 16:-16].mean() - gamma) < 0.03
    assert abs(np.angle(np.mean(reference * np.conj(secondary))) - 0.7) < 0.02  # reference · conj(secondary)
    assert np.mean(np.abs(secondary) ** 2) == pytest.approx(np.mean(np.abs(reference) ** 2), rel=0.05)
    with pytest.raises(InsarMlError, match=r"\[0, 1\]"):
        correlated_secondary(reference, 1.2, 0.0, np.random.default_rng(0))


def test_speckle_like_takes_the_reference_spectrum():
    """An oversampled reference (its spectrum cut to the central 60 %) passes its neighbour
    correlation on to the noise, which white noise lacks."""
    white = _white_slc((256, 256), 3)
    spectrum = np.fft.fft2(white)
    band = np.abs(np.fft.fftfreq(256)) <= 0.3
    oversampled = np.fft.ifft2(spectrum * np.outer(band, band)).astype(np.complex64)
    noise = speckle_like(oversampled, np.random.default_rng(4))
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(1.0, rel=1e-4)
    assert _neighbour_correlation(white) < 0.05
    assert abs(_neighbour_correlation(noise) - _neighbour_correlation(oversampled)) < 0.1
    assert _neighbour_correlation(noise) > 0.4


def test_multilook_averages_whole_blocks_and_drops_the_partial_one():
    values = np.arange(5 * 7, dtype=np.float64).reshape(5, 7)
    looked = multilook(values, (2, 3))
    assert looked.shape == (2, 2)
    assert looked[0, 0] == values[:2, :3].mean() and looked[1, 1] == values[2:4, 3:6].mean()
    with pytest.raises(InsarMlError, match="smaller than one 6×1 look window"):
        multilook(values, (6, 1))
    with pytest.raises(InsarMlError, match="at least 1×1"):
        multilook(values, (0, 2))
