"""Scores for generated scenes, each checked against a case whose answer is known.

Semivariograms against a brute-force pair sum and against white noise (γ = σ²); spectra
against a synthetic power-law field; FID against the closed form for Gaussians;
precision/recall against sets with known overlap; the encoder against two classes it
must tell apart.
"""
from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from conftest import CancelAfter
from qgis_insar_ml.core.diffusion.evaluation import (ENCODER_FORMAT, evaluate_sets, fraction_inside_band,
                                                     frechet_distance, load_encoder, plot_evaluation,
                                                     precision_recall, radial_power_spectrum, save_encoder,
                                                     semivariogram, semivariogram_band, semivariogram_distance,
                                                     train_encoder, value_histograms)
from qgis_insar_ml.core.errors import Cancelled, InsarMlError


def brute_force_semivariogram(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Matheron's estimator by looping over every lag vector and every valid pixel pair."""
    h, w = image.shape
    num, den = np.zeros(len(edges) - 1), np.zeros(len(edges) - 1)
    for dy in range(-(h - 1), h):
        for dx in range(-(w - 1), w):
            d = np.hypot(dy, dx)
            b = np.searchsorted(edges, d, side="right") - 1
            if d == 0 or not 0 <= b < len(num):
                continue
            a = image[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            c = image[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            ok = np.isfinite(a) & np.isfinite(c)
            num[b] += np.sum((c[ok] - a[ok]) ** 2)
            den[b] += ok.sum()
    with np.errstate(invalid="ignore"):
        return np.where(den > 0, num / (2 * den), np.nan)


def correlated_fields(n: int, size: int, length: float, seed: int) -> np.ndarray:
    """Periodic Gaussian random fields of unit variance and correlation length ≈ ``length`` px."""
    rng = np.random.default_rng(seed)
    fields = np.stack([gaussian_filter(rng.standard_normal((size, size)), length, mode="wrap") for _ in range(n)])
    return fields / fields.std()


def power_law_fields(n: int, size: int, beta: float, seed: int) -> np.ndarray:
    """Fields whose power spectrum is exactly ∝ |k|^−β (white noise shaped in Fourier space)."""
    k = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])
    k[0, 0] = np.inf
    noise = np.random.default_rng(seed).standard_normal((n, size, size))
    return np.fft.ifft2(np.fft.fft2(noise) * k ** (-beta / 2)).real


# --------------------------------------------------------------------------- semivariogram


@pytest.mark.parametrize("with_nans", [False, True])
def test_fft_semivariogram_equals_brute_force(with_nans):
    rng = np.random.default_rng(1)
    images = 100.0 + np.cumsum(rng.standard_normal((3, 9, 11)), axis=2)   # offset: tests cancellation
    if with_nans:
        images[rng.random(images.shape) < 0.25] = np.nan
        images[2, :, :6] = np.nan
    lags, gamma = semivariogram(images, max_lag=6, bins=4)
    edges = np.linspace(0.5, 6.5, 5)
    np.testing.assert_allclose(lags, 0.5 * (edges[:-1] + edges[1:]))
    expected = np.stack([brute_force_semivariogram(im, edges) for im in images])
    np.testing.assert_allclose(gamma, expected, rtol=1e-9, atol=1e-9)


def test_semivariogram_default_bins_are_integer_lags_and_all_nan_image_gives_nan():
    images = np.random.default_rng(2).standard_normal((2, 12, 16))
    images[1] = np.nan
    lags, gamma = semivariogram(images)
    np.testing.assert_allclose(lags, np.arange(1, 7))
    assert np.isfinite(gamma[0]).all() and np.isnan(gamma[1]).all()
    with pytest.raises(InsarMlError):
        semivariogram(images, max_lag=0)
    with pytest.raises(InsarMlError):
        semivariogram(images[0])


def test_white_noise_semivariogram_is_its_variance_at_every_lag():
    _, gamma = semivariogram(np.random.default_rng(3).normal(5.0, 2.0, (20, 64, 64)))
    np.testing.assert_allclose(gamma.mean(axis=0), 4.0, rtol=0.03)


def test_longer_correlation_length_rises_slower():
    _, short = semivariogram(correlated_fields(10, 64, 2.0, seed=4))
    _, long = semivariogram(correlated_fields(10, 64, 6.0, seed=5))
    short, long = short.mean(axis=0), long.mean(axis=0)
    assert np.all(long[:10] < short[:10])
    assert np.all(np.diff(long[:10]) > 0) and np.all(np.diff(short[:3]) > 0)
    assert np.argmax(long > 0.5 * long.max()) > np.argmax(short > 0.5 * short.max())


def test_band_distance_and_fraction_inside_band():
    _, real = semivariogram(correlated_fields(60, 48, 3.0, seed=6))
    _, same = semivariogram(correlated_fields(60, 48, 3.0, seed=7))
    low, high = semivariogram_band(real)
    mean = real.mean(axis=0)
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(low < high)
    assert semivariogram_distance(real, real) == 0.0
    distances = [semivariogram_distance(real, semivariogram(correlated_fields(30, 48, length, seed=8))[1])
                 for length in (3.0, 4.0, 6.0)]
    assert distances[0] < 0.1 < distances[1] < distances[2]
    assert fraction_inside_band(real, same) > 0.8                 # ≈ 0.95 up to sampling noise
    assert fraction_inside_band(real, 0.3 * same) < 0.3           # the paper's unscaled samples
    with pytest.raises(InsarMlError):
        semivariogram_band(real, level=1.5)


# --------------------------------------------------------------------------- spectra, histograms


@pytest.mark.parametrize("beta", [2.0, 3.0])
def test_radial_spectrum_slope_of_power_law_field(beta):
    k, psd = radial_power_spectrum(power_law_fields(8, 64, beta, seed=9))
    assert k[0] == pytest.approx(1 / 64) and k[-1] == pytest.approx(0.5) and psd.shape == (8, 32)
    fit = (k >= 0.04) & (k <= 0.3)
    slope = np.polyfit(np.log(k[fit]), np.log(psd.mean(axis=0)[fit]), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.2)


def test_radial_spectrum_ignores_mean_and_nans():
    fields = power_law_fields(2, 32, 2.0, seed=10)
    _, psd = radial_power_spectrum(fields)
    _, shifted = radial_power_spectrum(fields + 50.0)
    np.testing.assert_allclose(shifted, psd, rtol=1e-9)
    holed = fields.copy()
    holed[:, 3, 4] = np.nan
    assert np.isfinite(radial_power_spectrum(holed)[1]).all()


def test_value_histograms_share_edges_and_are_densities():
    rng = np.random.default_rng(11)
    edges, h_real, h_gen = value_histograms(rng.normal(0, 1, (4, 8, 8)), rng.normal(3, 1, (4, 8, 8)), bins=20)
    assert len(edges) == 21 and h_real.shape == h_gen.shape == (20,)
    widths = np.diff(edges)
    assert np.sum(h_real * widths) == pytest.approx(1.0) and np.sum(h_gen * widths) == pytest.approx(1.0)
    assert np.sum(edges[:-1] * h_gen * widths) > np.sum(edges[:-1] * h_real * widths) + 2


# --------------------------------------------------------------------------- FID, precision/recall


def exact_gaussian_sample(n: int, mean: np.ndarray, variances: np.ndarray, seed: int) -> np.ndarray:
    """Samples whose sample mean and (ddof=1) covariance are exactly ``mean`` and diag(``variances``)."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return mean + z * np.sqrt(variances)


def test_fid_matches_closed_form_for_gaussians():
    mu_a, var_a = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.5, 3.0])
    mu_b, var_b = np.array([1.0, 1.0, 0.0, 0.5]), np.array([4.0, 2.0, 1.0, 0.25])
    a, b = exact_gaussian_sample(500, mu_a, var_a, 12), exact_gaussian_sample(300, mu_b, var_b, 13)
    closed = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(closed, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shifts = [frechet_distance(a, a + s) for s in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(shifts, [4 * 0.25, 4 * 1.0, 4 * 4.0], rtol=1e-8)


def test_fid_survives_fewer_samples_than_dimensions():
    rng = np.random.default_rng(14)
    value = frechet_distance(rng.standard_normal((10, 64)), rng.standard_normal((12, 64)))
    assert np.isfinite(value) and value > 0
    with pytest.raises(InsarMlError):
        frechet_distance(rng.standard_normal((10, 3)), rng.standard_normal((10, 4)))


def test_precision_recall_known_overlaps():
    rng = np.random.default_rng(15)
    real = rng.standard_normal((200, 8))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    precision, recall = precision_recall(real, real + 20.0)
    assert precision == 0.0 and recall == 0.0
    shift = np.zeros(8)
    shift[0] = 12.0
    two_modes = np.concatenate([rng.standard_normal((150, 8)), rng.standard_normal((150, 8)) + shift])
    one_mode = rng.standard_normal((300, 8))
    same_precision, same_recall = precision_recall(two_modes[:150], one_mode)   # k=3 in 8-d: ≈ 0.85, not 1
    precision, recall = precision_recall(two_modes, one_mode)
    assert precision > 0.7 and 0.3 < recall < 0.6 * same_recall
    with pytest.raises(InsarMlError):
        precision_recall(real[:3], real[:3], k=3)


# --------------------------------------------------------------------------- encoder


def stripes_and_blobs(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """n/2 stripe images (random angle, period, phase) and n/2 Gaussian-blob images, 16×16, noisy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:16, 0:16].astype(np.float64)
    images = []
    for i in range(n):
        if i % 2 == 0:
            angle, period = rng.uniform(0, np.pi), rng.uniform(3, 6)
            img = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
        else:
            img = np.zeros((16, 16))
            for _ in range(rng.integers(1, 4)):
                cy, cx, s = rng.uniform(2, 14), rng.uniform(2, 14), rng.uniform(1.5, 3)
                img += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
        images.append(img + 0.1 * rng.standard_normal((16, 16)))
    return torch.tensor(np.stack(images)[:, None], dtype=torch.float32), np.arange(n) % 2


@pytest.fixture(scope="module")
def encoder_and_data():
    images, labels = stripes_and_blobs(128, seed=16)
    names = np.where(labels == 0, "stripes", "blobs")
    return train_encoder(images, names, steps=40, seed=0, batch_size=32), images, labels


def test_classifier_encoder_separates_the_classes(encoder_and_data):
    encoder, _, _ = encoder_and_data
    test_images, labels = stripes_and_blobs(128, seed=17)
    feats = encoder.features(test_images)
    assert feats.shape == (128, 64) and encoder.training_info["objective"] == "classifier"
    stripes, blobs = feats[labels == 0], feats[labels == 1]
    within = max(frechet_distance(stripes[::2], stripes[1::2]), frechet_distance(blobs[::2], blobs[1::2]))
    between = frechet_distance(stripes, blobs)
    assert between > 20 * within


def test_encoder_is_reproducible_saved_and_loaded(encoder_and_data, tmp_path):
    encoder, images, _ = encoder_and_data
    weights = save_encoder(encoder, tmp_path / "enc")
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["format"] == ENCODER_FORMAT and card["encoder"]["widths"] == [16, 32, 64, 64]
    loaded = load_encoder(weights.with_suffix(".json"))
    np.testing.assert_array_equal(loaded.features(images[:8]), encoder.features(images[:8]))
    assert loaded.training_info == encoder.training_info
    again = train_encoder(images[:16], None, steps=2, seed=3, batch_size=8)
    np.testing.assert_array_equal(again.features(images[:4]),
                                  train_encoder(images[:16], None, steps=2, seed=3, batch_size=8).features(images[:4]))
    assert again.training_info["objective"] == "autoencoder"
    with pytest.raises(InsarMlError):
        encoder.features(torch.zeros(2, 3, 16, 16))
    (tmp_path / "bad.json").write_text('{"format": "qgis_insar_ml.pdm"}')
    (tmp_path / "bad.safetensors").write_bytes(weights.read_bytes())
    with pytest.raises(InsarMlError):
        load_encoder(tmp_path / "bad.safetensors")


def test_encoder_training_can_be_cancelled():
    images, labels = stripes_and_blobs(8, seed=18)
    with pytest.raises(Cancelled):
        train_encoder(images, labels, steps=50, progress=CancelAfter(2))


# --------------------------------------------------------------------------- the whole comparison


def test_evaluate_sets_is_json_and_plots(encoder_and_data, tmp_path):
    encoder, images, _ = encoder_and_data
    real = images[:40].numpy()
    generated = images[40:80].numpy().copy()
    generated[0, 0, 2, 3] = np.nan
    result = evaluate_sets(real, generated, encoder)
    json.dumps(result, allow_nan=False)
    sv = result["channels"][0]["semivariogram"]
    assert len(sv["lags"]) == 8 and sv["distance"] < 0.2 and result["features"]["fid"] >= 0
    assert 0 <= result["features"]["precision"] <= 1 and result["image_shape"] == [1, 16, 16]
    assert evaluate_sets(real[:, 0], real[:, 0])["channels"][0]["semivariogram"]["distance"] == 0.0
    png = plot_evaluation(result, tmp_path / "plots" / "evaluation.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    per_class = {**result, "channels": result["channels"] * 2}        # one row per class, as pdm_per_class.py
    rows = plot_evaluation(per_class, tmp_path / "per_class.png", row_titles=["F", "G"], value_label="dB")
    assert matplotlib.image.imread(rows).shape[0] == 2 * matplotlib.image.imread(png).shape[0]
    with pytest.raises(InsarMlError):
        evaluate_sets(real, generated[:, :, :8])
