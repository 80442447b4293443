"""Fringe-adaptive averages (the network's view of dense fringes) and row strips in threads."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from qgis_insar_ml.core.deepinsar.config import DEFAULT_CONFIG, fringe_reach
from qgis_insar_ml.core.deepinsar.fringes import _features, fringe_features, network_input
from qgis_insar_ml.core.deepinsar.model import DeepInsarNet
from qgis_insar_ml.core.deepinsar.modelfile import load_model, save_model
from qgis_insar_ml.core.deepinsar.training import train_deepinsar
from qgis_insar_ml.core.filters import _compensated_coherence, boxcar, compensated_coherence, window_mean
from qgis_insar_ml.core.metrics import phase_rmse
from qgis_insar_ml.core.speckle import correlated_secondary
from qgis_insar_ml.core.strips import by_row_strips

from test_deepinsar import TINY, tiny_settings

WINDOWS = DEFAULT_CONFIG.fringe_windows  # (9, 3), (9, 5)
MARGIN = 12


def _phasor(phase: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(phase), np.sin(phase)]).astype(np.float32)


def _dense_fringes(size: int = 192) -> np.ndarray:
    """Fringes turning at 1.2–2.8 rad/px along rows (up to 90 % of Nyquist) and 0.9 down columns."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return 1.2 * x - 0.9 * y + 0.8 * x ** 2 / size


def _pair(phase: np.ndarray, gamma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s1 = ((rng.standard_normal(phase.shape) + 1j * rng.standard_normal(phase.shape)) / np.sqrt(2)).astype(np.complex64)
    return s1 * np.conj(correlated_secondary(s1, gamma, phase, rng))


def _angle(features: np.ndarray, window: int) -> np.ndarray:
    return np.arctan2(features[3 * window + 1], features[3 * window])


@pytest.mark.parametrize("frequency", [(0.3, -2.6), (2.9, 0.5), (-1.7, 1.9)])
def test_noise_free_fringes_up_to_near_nyquist_pass_unchanged(frequency):
    y, x = np.mgrid[0:96, 0:96]
    phase = frequency[0] * x + frequency[1] * y
    features = fringe_features(_phasor(phase), WINDOWS)
    inner = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    for w, (_, average) in enumerate(WINDOWS):
        error = np.angle(np.exp(1j * (_angle(features, w) - phase)))[inner]
        assert np.abs(error).max() < 1e-3
        np.testing.assert_allclose(features[3 * w + 2][inner], 1.0, atol=1e-4)  # |D| / wa²: all phasors aligned


def test_on_dense_coherent_fringes_the_average_beats_boxcar_where_it_fails():
    phase = _dense_fringes()
    ifg = _pair(phase, 0.85, seed=4)
    inner = np.zeros(phase.shape, bool)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = True
    features = fringe_features(_phasor(np.angle(ifg)), WINDOWS)
    noisy = phase_rmse(np.angle(ifg), phase, inner)
    best_boxcar = min(phase_rmse(np.angle(boxcar(ifg, w)[0]), phase, inner) for w in (3, 5, 7))
    averaged = phase_rmse(_angle(features, 1), phase, inner)
    assert best_boxcar > 0.9 * noisy  # Boxcar averages the fringes away
    assert averaged < 0.45 * noisy and averaged < 0.5 * best_boxcar


def test_magnitude_is_a_fringe_compensated_coherence():
    phase = _dense_fringes()
    means = []
    for gamma in (0.2, 0.5, 0.8, 0.95):
        features = fringe_features(_phasor(np.angle(_pair(phase, gamma, seed=5))), WINDOWS)
        means.append(float(features[5][MARGIN:-MARGIN, MARGIN:-MARGIN].mean()))
    assert np.all(np.diff(means) > 0.05), means
    assert means[-1] > 0.8


def test_averages_reach_no_further_than_the_configured_radius():
    rng = np.random.default_rng(2)
    phasor = _phasor(rng.uniform(-np.pi, np.pi, (64, 64)))
    changed = phasor.copy()
    changed[:, 32, 32] = [0.0, 1.0] if phasor[0, 32, 32] > 0 else [1.0, 0.0]
    moved = np.abs(fringe_features(changed, WINDOWS) - fringe_features(phasor, WINDOWS)).max(axis=0) > 0
    rows, cols = np.nonzero(moved)
    reach = max(np.abs(rows - 32).max(), np.abs(cols - 32).max())
    assert 0 < reach <= fringe_reach(WINDOWS)


def test_no_data_stays_out_and_batches_match_single_images():
    rng = np.random.default_rng(3)
    phasor = _phasor(rng.uniform(-np.pi, np.pi, (2, 60, 70))).transpose(1, 0, 2, 3).copy()  # (2 images, 2, H, W)
    phasor[0, :, 20:40, 10:30] = 0.0
    batch = fringe_features(phasor, WINDOWS)
    assert batch.shape == (2, 6, 60, 70) and np.isfinite(batch).all()
    for i in range(2):
        np.testing.assert_array_equal(batch[i], fringe_features(phasor[i], WINDOWS))
    assert np.all(batch[0, 2::3, 25:35, 15:25] < 1e-6)  # deep inside the hole: nothing to average
    obs = np.concatenate([phasor, np.ones((2, 2, 60, 70), np.float32)], axis=1)
    assert network_input(obs, ()) is obs
    np.testing.assert_array_equal(network_input(obs, WINDOWS)[:, 4:], batch)


def test_row_strips_in_threads_give_the_same_bits():
    rng = np.random.default_rng(4)
    height, width = 700, 333
    ifg = (rng.standard_normal((height, width)) + 1j * rng.standard_normal((height, width))).astype(np.complex64)
    ifg[100:150, 30:90] = 0
    phase = rng.uniform(-3, 3, (height, width)).astype(np.float32)
    powers = rng.uniform(0.1, 3, (2, height, width)).astype(np.float32)
    for window in (9, 25):  # shifted sums, then scipy's running sums
        np.testing.assert_array_equal(compensated_coherence(ifg, phase, window, *powers),
                                      _compensated_coherence(ifg, phase, *powers, window, 5))
    np.testing.assert_array_equal(fringe_features(_phasor(phase), WINDOWS), _features(_phasor(phase), WINDOWS))
    stacked = np.stack([phase, -phase])
    np.testing.assert_array_equal(by_row_strips(lambda a: window_mean(a, 7), (stacked,), 3), window_mean(stacked, 7))


def test_fine_tuning_adds_fringe_inputs_to_a_model_without_them(tmp_path):
    """The donor's weights carry over and the new inputs start at zero weight: the widened
    network computes exactly what the donor did, then learns to use them."""
    plain = replace(TINY, upsample="smooth", refine_layers=1)
    with_fringes = replace(plain, fringe_windows=WINDOWS)
    torch.manual_seed(0)
    donor = save_model(DeepInsarNet(plain).state_dict(), plain, {}, tmp_path / "donor.safetensors")
    tuned = train_deepinsar(tiny_settings(tmp_path, architecture=with_fringes, init=str(donor), steps=1,
                                          learning_rate=1e-12, warmup_steps=0), log=lambda m: None)
    old, new = load_model(donor)[0].eval(), load_model(tuned.model)[0].eval()
    assert new.config.network_inputs == 4 + 6
    new.load_state_dict({**new.state_dict(), **{k: v for k, v in old.state_dict().items() if "running" in k}})
    observation = np.random.default_rng(5).uniform(-1, 1, (1, 4, 48, 40)).astype(np.float32)
    with torch.no_grad():
        before = old(torch.from_numpy(observation))
        after = new(torch.from_numpy(network_input(observation, WINDOWS)))
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-4)
