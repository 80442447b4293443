"""Physics checks for the DeepInSAR-style simulator (thresholds, not just shapes)."""
from __future__ import annotations

import numpy as np
import pytest

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.simulator import (
    CONFIGURATIONS,
    NOISE_SIGMA,
    SimulatedPair,
    sample_coherence,
    simulate_pair,
)


def _wrap(phase: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * phase))


def _fringe_density(clean_phase: np.ndarray) -> float:
    """Mean absolute wrapped phase gradient (rad/px) over both axes."""
    p = clean_phase.astype(np.float64)
    return 0.5 * (
        np.mean(np.abs(_wrap(np.diff(p, axis=0)))) + np.mean(np.abs(_wrap(np.diff(p, axis=1))))
    )


def _fields(pair: SimulatedPair) -> dict[str, np.ndarray]:
    return {
        "reference": pair.reference,
        "secondary": pair.secondary,
        "interferogram": pair.interferogram,
        "clean_phase": pair.clean_phase,
        "coherence": pair.coherence,
        "amplitude": pair.amplitude,
    }


def test_configurations_are_the_papers_18():
    assert len(CONFIGURATIONS) == 18
    assert len(set(CONFIGURATIONS)) == 18
    assert CONFIGURATIONS[0] == ("S1", "F1", True)
    assert CONFIGURATIONS[1] == ("S1", "F1", False)
    assert CONFIGURATIONS[-1] == ("S3", "F3", False)


def test_dtypes_and_shapes():
    pair = simulate_pair(40, 70, "S2", "F2", True, seed=1)
    for name in ("reference", "secondary", "interferogram"):
        assert getattr(pair, name).dtype == np.complex64, name
    for name in ("clean_phase", "coherence", "amplitude"):
        assert getattr(pair, name).dtype == np.float32, name
    for name, value in _fields(pair).items():
        assert value.shape == (40, 70), name


def test_deterministic_and_seed_dependent():
    a = simulate_pair(128, 96, "S2", "F3", True, seed=7)
    b = simulate_pair(128, 96, "S2", "F3", True, seed=7)
    c = simulate_pair(128, 96, "S2", "F3", True, seed=8)
    for name, value in _fields(a).items():
        assert np.array_equal(value, _fields(b)[name]), name
    for name in ("reference", "secondary", "clean_phase", "amplitude"):
        assert not np.array_equal(_fields(a)[name], _fields(c)[name]), name


def test_stripes_do_not_change_motion():
    with_strips = simulate_pair(1000, 1000, "S2", "F2", True, seed=3)
    without = simulate_pair(1000, 1000, "S2", "F2", False, seed=3)
    no_stripe = with_strips.amplitude == without.amplitude
    assert 0.6 < no_stripe.mean() < 0.9
    assert np.array_equal(with_strips.clean_phase[no_stripe], without.clean_phase[no_stripe])
    assert np.array_equal(with_strips.clean_phase, without.clean_phase)


def test_interferogram_convention_and_clean_phase():
    pair = simulate_pair(256, 256, "S1", "F2", False, seed=4)
    assert np.array_equal(pair.interferogram, pair.reference * np.conj(pair.secondary))
    assert pair.clean_phase.min() >= -np.pi - 1e-6
    assert pair.clean_phase.max() < np.pi
    # Clean SLCs per the convention: reference A, secondary A exp(-i psi).
    clean_ifg = pair.amplitude * np.conj(pair.amplitude * np.exp(-1j * pair.clean_phase))
    assert np.max(np.abs(_wrap(np.angle(clean_ifg) - pair.clean_phase))) < 1e-5
    # The noisy interferogram must follow +psi (not -psi) where coherence is high.
    high = pair.coherence > 0.95
    assert high.sum() > 100
    diff = _wrap(np.angle(pair.interferogram[high]) - pair.clean_phase[high])
    assert np.sqrt(np.mean(diff**2)) < 0.3


def test_phase_error_grows_with_noise():
    rmse = []
    for noise in ("S1", "S2", "S3"):
        pair = simulate_pair(256, 256, noise, "F2", False, seed=5)
        err = _wrap(np.angle(pair.interferogram) - pair.clean_phase)
        rmse.append(np.sqrt(np.mean(err**2)))
    assert rmse[0] < rmse[1] < rmse[2]
    assert rmse[2] > 1.5 * rmse[0]


def test_fringe_density_grows_with_fringe_level():
    density = {
        fringe: np.mean(
            [_fringe_density(simulate_pair(512, 512, "S2", fringe, False, seed=s).clean_phase)
             for s in range(3)]
        )
        for fringe in ("F1", "F2", "F3")
    }
    assert density["F1"] < density["F2"] < density["F3"]
    assert density["F3"] >= 3.0 * density["F1"]


def test_amplitude_ramp_and_coherence():
    pair = simulate_pair(512, 512, "S2", "F1", False, seed=6)
    assert abs(pair.amplitude[:, :3].mean() - 0.1) < 0.05
    assert abs(pair.amplitude[:, -1].mean() - 1.1) < 0.05
    assert np.all(np.diff(pair.amplitude, axis=1) >= 0)
    sigma = NOISE_SIGMA["S2"]
    a2 = pair.amplitude.astype(np.float64) ** 2
    assert np.allclose(pair.coherence, a2 / (a2 + 2 * sigma**2), atol=1e-6)
    assert pair.coherence[:, :50].mean() < pair.coherence[:, -50:].mean()


def test_sample_coherence_tracks_true_coherence():
    pair = simulate_pair(512, 512, "S1", "F1", False, seed=2)
    estimate = sample_coherence(pair.reference, pair.secondary, 9)
    assert estimate.dtype == np.float32 and estimate.shape == (512, 512)
    inner = (slice(4, -4), slice(4, -4))  # away from zero-padded edges
    est, true = estimate[inner], pair.coherence[inner]
    valid = true > 0.3
    assert valid.mean() > 0.9
    assert np.corrcoef(est[valid], true[valid])[0, 1] > 0.9
    assert np.mean(np.abs(est[valid] - true[valid])) < 0.1


def test_sample_coherence_of_identical_images_is_one():
    rng = np.random.default_rng(0)
    slc = (rng.standard_normal((32, 32)) + 1j * rng.standard_normal((32, 32))).astype(np.complex64)
    assert np.allclose(sample_coherence(slc, slc, 5), 1.0, atol=1e-5)


def test_stripes_cover_about_twenty_percent():
    with_strips = simulate_pair(1000, 1000, "S3", "F1", True, seed=9)
    without = simulate_pair(1000, 1000, "S3", "F1", False, seed=9)
    stripe = with_strips.amplitude != without.amplitude
    assert 0.15 <= stripe.mean() <= 0.25
    assert np.all(with_strips.amplitude[stripe] == np.float32(0.1))


def test_small_output_is_a_crop_with_paper_fringe_density():
    seeds = range(8)
    crop = np.mean([_fringe_density(simulate_pair(256, 256, "S2", "F2", False, seed=100 + s).clean_phase)
                    for s in seeds])
    scene = np.mean([_fringe_density(simulate_pair(1000, 1000, "S2", "F2", False, seed=s).clean_phase)
                     for s in seeds[:3]])
    assert abs(crop - scene) < 0.4 * scene


def test_small_crop_is_cheap():
    import time

    simulate_pair(128, 128, "S2", "F2", True, seed=0)
    start = time.perf_counter()
    for s in range(5):
        simulate_pair(128, 128, "S2", "F2", True, seed=s)
    assert (time.perf_counter() - start) / 5 < 0.05


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"noise_level": "S4"}, "S4"),
        ({"fringe_level": "F0"}, "F0"),
        ({"height": 0}, "0"),
        ({"width": 8193}, "8193"),
    ],
)
def test_bad_inputs_raise_with_value(kwargs, bad):
    args = {"height": 16, "width": 16, **kwargs}
    with pytest.raises(InsarMlError, match=bad):
        simulate_pair(**args)
