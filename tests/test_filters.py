"""Boxcar and Goldstein filters on synthetic interferograms (no QGIS needed)."""
from __future__ import annotations

import numpy as np
import pytest

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.filters import boxcar, compensated_coherence, goldstein
from qgis_insar_ml.core.metrics import phase_rmse


def fringes(shape: tuple[int, int], noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(true phase, complex64 ifg): a ramp plus a gaussian bump, with complex gaussian noise."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    bump = 3.0 * np.exp(-((rows - shape[0] / 2) ** 2 + (cols - shape[1] / 3) ** 2) / (2 * 15.0**2))
    phase = 0.08 * cols + 0.05 * rows + bump
    rng = np.random.default_rng(seed)
    speckle = noise * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return phase, (np.exp(1j * phase) + speckle).astype(np.complex64)


def test_boxcar_reduces_phase_noise() -> None:
    phase, ifg = fringes((128, 128), noise=0.6)
    filtered, coherence = boxcar(ifg, 7)
    assert filtered.dtype == np.complex64 and coherence.dtype == np.float32
    before = phase_rmse(np.angle(ifg), phase)
    after = phase_rmse(np.angle(filtered), phase)
    assert after < before / 4


def test_boxcar_noiseless_constant_phase_is_fully_coherent_up_to_the_edges() -> None:
    ifg = np.full((40, 50), np.exp(0.7j), dtype=np.complex64)
    filtered, coherence = boxcar(ifg, 5)
    np.testing.assert_allclose(coherence, 1.0, atol=1e-5)
    np.testing.assert_allclose(np.angle(filtered), 0.7, atol=1e-6)


def test_boxcar_pure_noise_has_low_coherence() -> None:
    rng = np.random.default_rng(3)
    ifg = np.exp(1j * rng.uniform(-np.pi, np.pi, (256, 256))).astype(np.complex64)
    _, coherence = boxcar(ifg, 9)
    assert coherence.mean() < 0.2


def test_boxcar_masked_zero_pixels_do_not_lower_coherence() -> None:
    rng = np.random.default_rng(4)
    amplitude = rng.uniform(0.5, 2.0, (60, 60))
    ifg = (amplitude * np.exp(-1.2j)).astype(np.complex64)
    ifg[rng.random(ifg.shape) < 0.25] = 0
    ifg[20:30, 20:30] = 0  # a masked hole larger than the window
    filtered, coherence = boxcar(ifg, 5)
    covered = np.abs(filtered) > 0
    np.testing.assert_allclose(coherence[covered], 1.0, atol=1e-5)
    assert np.all(coherence[~covered] == 0)  # window with no valid pixel: denominator 0
    assert (~covered).any()


def test_boxcar_with_slc_powers() -> None:
    rng = np.random.default_rng(5)
    reference = (rng.standard_normal((50, 40)) + 1j * rng.standard_normal((50, 40))).astype(np.complex64)
    secondary = 0.5 * np.exp(-0.4j) * reference  # noiseless pair: secondary is the reference, scaled
    ifg = reference * np.conj(secondary)
    _, coherence = boxcar(ifg, 5, np.abs(reference) ** 2, np.abs(secondary) ** 2)
    np.testing.assert_allclose(coherence, 1.0, atol=1e-5)

    unrelated = (rng.standard_normal((50, 40)) + 1j * rng.standard_normal((50, 40))).astype(np.complex64)
    _, low = boxcar(reference * np.conj(unrelated), 9, np.abs(reference) ** 2, np.abs(unrelated) ** 2)
    assert low.mean() < 0.25


def test_boxcar_block_with_halo_matches_full_raster() -> None:
    _, ifg = fringes((100, 120), noise=0.8, seed=6)
    window, halo = 7, 3
    full_ifg, full_coh = boxcar(ifg, window)
    r0, c0, h, w = 31, 47, 40, 37
    block_ifg, block_coh = boxcar(ifg[r0 - halo : r0 + h + halo, c0 - halo : c0 + w + halo], window)
    inner = (slice(halo, halo + h), slice(halo, halo + w))
    np.testing.assert_allclose(block_ifg[inner], full_ifg[r0 : r0 + h, c0 : c0 + w], atol=1e-6)
    np.testing.assert_allclose(block_coh[inner], full_coh[r0 : r0 + h, c0 : c0 + w], atol=1e-6)


@pytest.mark.parametrize("window", [4, 1, 0, 3.0])
def test_boxcar_rejects_bad_window(window: object) -> None:
    with pytest.raises(InsarMlError, match="WINDOW must be an odd number"):
        boxcar(np.ones((10, 10), np.complex64), window)


def test_boxcar_rejects_a_single_power() -> None:
    ifg = np.ones((10, 10), np.complex64)
    with pytest.raises(InsarMlError, match="both SLC powers"):
        boxcar(ifg, 3, power_reference=np.ones((10, 10)))


def test_goldstein_reduces_phase_noise() -> None:
    phase, ifg = fringes((256, 256), noise=0.8, seed=7)
    filtered = goldstein(ifg, alpha=0.8)
    assert filtered.dtype == np.complex64 and filtered.shape == ifg.shape
    assert phase_rmse(np.angle(filtered), phase) < 0.4 * phase_rmse(np.angle(ifg), phase)


@pytest.mark.parametrize("patch_size, overlap", [(32, None), (16, 5), (8, 0)])
def test_goldstein_alpha_zero_returns_input_phase(patch_size: int, overlap: int | None) -> None:
    _, ifg = fringes((70, 90), noise=1.0, seed=8)
    filtered = goldstein(ifg, alpha=0.0, patch_size=patch_size, overlap=overlap)
    error = np.angle(filtered * np.conj(ifg))
    assert np.abs(error).max() < 1e-5


@pytest.mark.parametrize(
    "patch_size, overlap, origin",
    [(32, None, (37, 53)), (16, 5, (30, 41)), (8, 0, (13, 21))],
)
def test_goldstein_block_with_halo_matches_full_raster(
    patch_size: int, overlap: int | None, origin: tuple[int, int]
) -> None:
    _, ifg = fringes((160, 170), noise=0.8, seed=9)
    step = patch_size - (patch_size // 2 if overlap is None else overlap)
    assert origin[0] % step and origin[1] % step  # the block is not aligned with the patch grid
    full = goldstein(ifg, 0.7, patch_size, overlap)

    halo, (r0, c0), (h, w) = patch_size, origin, (50, 61)
    top, left = r0 - halo, c0 - halo
    block = goldstein(
        ifg[top : r0 + h + halo, left : c0 + w + halo], 0.7, patch_size, overlap, grid_origin=(top, left)
    )
    np.testing.assert_allclose(block[halo : halo + h, halo : halo + w], full[r0 : r0 + h, c0 : c0 + w], atol=1e-5)

    unanchored = goldstein(ifg[top : r0 + h + halo, left : c0 + w + halo], 0.7, patch_size, overlap)
    assert not np.allclose(unanchored[halo : halo + h, halo : halo + w], full[r0 : r0 + h, c0 : c0 + w], atol=1e-5)


def test_goldstein_zero_input_stays_zero() -> None:
    filtered = goldstein(np.zeros((40, 40), np.complex128))
    assert filtered.dtype == np.complex64
    assert np.all(filtered == 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": -0.1}, "ALPHA"),
        ({"alpha": 1.5}, "ALPHA"),
        ({"patch_size": 24}, "PATCH_SIZE"),
        ({"patch_size": 4}, "PATCH_SIZE"),
        ({"overlap": 32}, "OVERLAP"),
        ({"overlap": -1}, "OVERLAP"),
        ({"smoothing": 2}, "SMOOTHING"),
    ],
)
def test_goldstein_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(InsarMlError, match=message):
        goldstein(np.ones((40, 40), np.complex64), **kwargs)


def _boxcar_compensated(ifg, phase, window, p1, p2, smoothing):
    """compensated_coherence written with Boxcar (float64 sums), as it is defined."""
    reference = np.exp(1j * np.asarray(phase, np.float32)).astype(np.complex64)
    if smoothing > 1:
        reference = boxcar(reference, smoothing)[0]
    return boxcar(np.asarray(ifg) * np.exp(-1j * np.angle(reference)), window, p1, p2)[1]


@pytest.mark.parametrize("smoothing", [1, 5])
def test_float32_compensated_coherence_equals_its_boxcar_definition(smoothing):
    rng = np.random.default_rng(4)
    n = 160
    s1 = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))).astype(np.complex64)
    noise = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    s2 = ((0.7 * s1 + 0.5 * noise) * np.exp(1j * np.linspace(0, 40, n))[None]).astype(np.complex64)
    s1[:30, :40] = 0  # masked: no weight, coherence 0
    s2[:30, :40] = 0
    ifg = s1 * np.conj(s2)
    p1, p2 = np.abs(s1) ** 2, np.abs(s2) ** 2
    phase = np.angle(ifg).astype(np.float32)
    phase[60:70, 60:70] = np.where(np.arange(10) % 2, 0.0, np.pi)[:, None]  # phasors that nearly cancel
    got = compensated_coherence(ifg, phase, 9, p1, p2, smoothing)
    assert got.dtype == np.float32 and got.shape == ifg.shape and np.all(got[:20, :30] == 0)
    assert np.abs(got - _boxcar_compensated(ifg, phase, 9, p1, p2, smoothing)).max() < 1e-5
