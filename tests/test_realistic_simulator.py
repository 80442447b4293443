"""Statistics of the realistic simulator against theory, and its Processing algorithm."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal
from scipy import stats
from scipy.special import gammaln, hyp2f1

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.realistic_simulator import (
    NEAR_FIELD_RATES,
    NYQUIST_MARGIN,
    SIGNALS,
    TRAINING_LOOKS,
    _look_decorrelation,
    _training_fringe_rate,
    parse_looks,
    random_training_scene,
    simulate_realistic_pair,
)
from qgis_insar_ml.core.simulator import sample_coherence

from conftest import REPO, read_band

# Uniform reflectivity, flat phase, no holes: the bare speckle model.
BARE = {"signals": (), "texture_shape": None, "bright_targets": False, "holes": False}


def lee_phase_pdf(phi: np.ndarray, gamma: float, looks: int, phi0: float = 0.0) -> np.ndarray:
    """Density of the L-look interferometric phase (Lee et al. 1994)."""
    beta = gamma * np.cos(phi - phi0)
    first = (np.exp(gammaln(looks + 0.5) - gammaln(looks)) * (1 - gamma ** 2) ** looks * beta
             / (2 * np.sqrt(np.pi) * (1 - beta ** 2) ** (looks + 0.5)))
    return first + (1 - gamma ** 2) ** looks / (2 * np.pi) * hyp2f1(looks, 1, 0.5, beta ** 2)


@pytest.mark.parametrize("gamma", [0.3, 0.6, 0.9])
def test_sample_coherence_of_a_constant_coherence_scene_is_that_coherence(gamma):
    scene = simulate_realistic_pair(160, 160, 1, coherence=gamma, **BARE)
    estimate = sample_coherence(scene.reference, scene.secondary, 15)[8:-8, 8:-8]  # 225 looks: bias < 0.01
    assert abs(estimate.mean() - gamma) < 0.01
    np.testing.assert_array_equal(scene.coherence, np.float32(gamma))


def test_coherence_is_independent_of_the_texture():
    """A gamma texture and point targets scale both SLCs alike: the sample coherence stays γ."""
    scene = simulate_realistic_pair(160, 160, 4, coherence=0.7, signals=(), texture_shape=1.0, holes=False)
    estimate = sample_coherence(scene.reference, scene.secondary, 15)[8:-8, 8:-8]
    assert abs(np.median(estimate) - 0.7) < 0.02


@pytest.mark.parametrize("gamma, looks", [(0.5, (1, 1)), (0.8, (1, 1)), (0.7, (2, 2)), (0.6, (4, 5)),
                                          (0.3, (20, 4))])
def test_phase_histogram_matches_the_multilook_phase_density(gamma, looks):
    scene = simulate_realistic_pair(256, 256, 2, looks, coherence=gamma, **BARE)
    phase = np.angle(scene.interferogram).ravel()
    n_bins, sub = 48, 40
    fine = np.linspace(-np.pi, np.pi, n_bins * sub + 1)
    centres = 0.5 * (fine[1:] + fine[:-1])
    probability = (lee_phase_pdf(centres, gamma, looks[0] * looks[1]) * (fine[1] - fine[0])).reshape(n_bins, sub).sum(1)
    assert abs(probability.sum() - 1.0) < 1e-6
    observed, _ = np.histogram(phase, np.linspace(-np.pi, np.pi, n_bins + 1))
    expected = probability * phase.size
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, n_bins - 1) > 1e-3
    assert np.abs(observed / phase.size - probability).max() < 0.06 * probability.max()


@pytest.mark.parametrize("looks", [(1, 1), (4, 5), (20, 4)])
def test_intensity_over_reflectivity_is_gamma_with_the_number_of_looks(looks):
    """Full model (texture, point targets, patches): per look, intensity / σ² is Exp(1);
    averaged over L looks it is Gamma(L, 1/L): mean 1, std 1/√L."""
    scene = simulate_realistic_pair(256, 256, 3, looks)
    n_looks = looks[0] * looks[1]
    reflectivity = scene.reflectivity[scene.valid]
    assert reflectivity.max() / np.median(reflectivity) > 10  # point targets
    for power in (scene.power_reference, scene.power_secondary):
        ratio = power[scene.valid] / reflectivity
        assert abs(ratio.mean() - 1) < 0.02
        assert abs(ratio.std() * np.sqrt(n_looks) - 1) < 0.03
        assert stats.kstest(ratio, stats.gamma(n_looks, scale=1 / n_looks).cdf).pvalue > 1e-3


def test_single_look_intensity_is_k_distributed_with_the_texture():
    """Speckle over a gamma texture of shape ν (times a smooth log-normal brightness): the
    reflectivity's normalised variance is at least the texture's 1/ν, and the intensity is the
    compound of both, E[I²] = 2·E[σ⁴] (K distribution), heavier-tailed than pure speckle."""
    nu = 2.0
    scene = simulate_realistic_pair(256, 256, 5, coherence=0.5, signals=(), texture_shape=nu, bright_targets=False,
                                    holes=False)
    reflectivity, intensity = scene.reflectivity.astype(np.float64), scene.power_reference.astype(np.float64)
    spread = np.var(reflectivity) / np.mean(reflectivity) ** 2
    assert 1 / nu < spread < (1 + 1 / nu) * np.exp(0.7 ** 2) - 1
    assert abs(np.mean(intensity ** 2) / (2 * np.mean(reflectivity ** 2)) - 1) < 0.1
    assert np.mean(intensity ** 2) / np.mean(intensity) ** 2 > 2 * (1 + 1 / nu) * 0.9


def test_expected_interferogram_is_reflectivity_times_coherence_at_the_clean_phase():
    """E<s1 s2*> = σ²·γ·exp(iφ) with φ the clean phase and γ the labelled coherence, which for
    multilooked scenes includes the loss from fringes inside the look window."""
    means = []
    for seed in range(4):
        scene = simulate_realistic_pair(256, 256, seed, (1, 8), 4.0, coherence=0.9, signals=("ramp", "bubbles"),
                                        texture_shape=None, bright_targets=False, holes=False)
        normalised = scene.interferogram * np.exp(-1j * scene.clean_phase) / scene.reflectivity
        assert abs(normalised.mean() - scene.coherence.mean()) < 0.01
        means.append(scene.coherence.mean())
    assert min(means) < 0.5 < 0.85 < max(means)  # dense fringes inside the 8-look windows decorrelate


@pytest.mark.parametrize("looks", [(1, 8), (4, 1), (5, 3)])
def test_look_decorrelation_is_the_window_mean_of_a_linear_phase(looks):
    """Against the mean of exp(iφ) over the full-resolution pixels of a window, for gradients
    up to the output grid's Nyquist rate (π rad/px), where a window keeps about 2/π of γ."""
    rows, cols = looks
    gy, gx = np.meshgrid(np.linspace(-3.0, 3.0, 7), np.linspace(-np.pi, np.pi, 9), indexing="ij")  # rad/output px
    for g_rows, g_cols in zip(gy.ravel(), gx.ravel()):
        y, x = np.mgrid[0:5, 0:5].astype(np.float64)
        phase = g_rows * y + g_cols * x
        k_rows = (np.arange(rows) - (rows - 1) / 2) / rows
        k_cols = (np.arange(cols) - (cols - 1) / 2) / cols
        brute = np.exp(1j * (g_rows * k_rows[:, None] + g_cols * k_cols[None, :])).mean()
        decorrelation = _look_decorrelation(phase, looks)
        np.testing.assert_allclose(decorrelation[2, 2], brute.real, atol=1e-5)
        assert abs(brute.imag) < 1e-9


def test_holes_are_invalid_and_zero_and_the_clean_phase_is_wrapped():
    scene = simulate_realistic_pair(128, 96, 11, (4, 1))
    hole = ~scene.valid
    assert 0 < hole.mean() < 0.5
    for values in (scene.interferogram, scene.power_reference, scene.power_secondary, scene.coherence):
        assert np.all(values[hole] == 0)
    assert scene.clean_phase.dtype == np.float32
    assert scene.clean_phase.min() >= -np.pi and scene.clean_phase.max() < np.pi
    assert scene.interferogram.dtype == np.complex64 and scene.power_reference.dtype == np.float32
    assert scene.coherence.min() >= 0 and scene.coherence.max() <= 1
    assert scene.reference is None and scene.secondary is None and scene.looks == (4, 1)


def test_single_look_scene_keeps_the_slcs_and_the_interferogram_convention():
    scene = simulate_realistic_pair(64, 80, 12)
    assert scene.interferogram.shape == (64, 80) and scene.reference.dtype == np.complex64
    np.testing.assert_allclose(scene.interferogram, scene.reference * np.conj(scene.secondary), rtol=1e-6)
    np.testing.assert_allclose(scene.power_secondary, np.abs(scene.secondary) ** 2, rtol=1e-5)


def test_patchy_coherence_has_incoherent_dark_water_but_coherence_is_not_brightness():
    """The smooth coherence field is drawn apart from brightness; only water and layover tie them."""
    correlations = []
    for seed in range(40):  # smooth fields hold few independent samples each: average over scenes
        smooth = simulate_realistic_pair(48, 48, seed, coherence="smooth", coherence_range=(0.0, 0.98),
                                         bright_targets=False, holes=False)
        correlations.append(np.corrcoef(smooth.coherence.ravel(), np.log(smooth.reflectivity).ravel())[0, 1])
    assert np.abs(np.mean(correlations)) < 0.1  # the paper's simulator: 0.99
    patchy = [simulate_realistic_pair(128, 128, seed, holes=False) for seed in range(6)]
    assert min(p.coherence.min() for p in patchy) < 0.05
    water = [p.reflectivity < 0.06 * np.median(p.reflectivity) for p in patchy]  # water: 0.005-0.05 × brightness
    assert max(w.mean() for w in water) > 0.03
    for p, w in zip(patchy, water):
        if w.mean() > 0.005:
            assert p.coherence[w].mean() < 0.05


def test_same_seed_same_scene_and_other_seed_other_scene():
    a, b = simulate_realistic_pair(64, 64, 5, (2, 3)), simulate_realistic_pair(64, 64, 5, (2, 3))
    c = simulate_realistic_pair(64, 64, 6, (2, 3))
    for name in ("interferogram", "power_reference", "power_secondary", "clean_phase", "coherence", "valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.clean_phase, c.clean_phase)
    t1, t2 = random_training_scene(64, 9), random_training_scene(64, 9)
    np.testing.assert_array_equal(t1.interferogram, t2.interferogram)
    assert t1.looks == t2.looks


def test_switching_one_signal_off_keeps_the_others():
    both = simulate_realistic_pair(64, 64, 2, signals=("bubbles", "ramp"), holes=False)
    bubbles = simulate_realistic_pair(64, 64, 2, signals=("bubbles",), holes=False)
    ramp = simulate_realistic_pair(64, 64, 2, signals=("ramp",), holes=False)
    difference = np.angle(np.exp(1j * (both.clean_phase - bubbles.clean_phase - ramp.clean_phase)))
    assert np.abs(difference).max() < 1e-4


def test_rupture_is_a_sharp_phase_step():
    smooth = simulate_realistic_pair(96, 96, 3, signals=("ramp",), holes=False)
    ruptured = simulate_realistic_pair(96, 96, 3, signals=("ramp", "rupture"), holes=False)
    step = np.angle(np.exp(1j * (ruptured.clean_phase - smooth.clean_phase))).astype(np.float64)
    jumps = np.maximum(np.abs(np.diff(step, axis=0))[:, :-1], np.abs(np.diff(step, axis=1))[:-1, :])
    assert jumps.max() > 0.5  # at least half a radian between neighbours along the trace
    assert np.median(jumps) < 0.05  # and smooth elsewhere


def test_training_distribution_covers_looks_coherence_and_fringe_rates():
    scenes = [random_training_scene(64, seed) for seed in range(48)]
    looks = [s.looks for s in scenes]
    assert 0.3 < np.mean([lk == (1, 1) for lk in looks]) < 0.7
    assert any(r != c for r, c in looks) and set(looks) - {(1, 1)} <= set(TRAINING_LOOKS)
    assert min(s.coherence[s.valid].min() for s in scenes) < 0.05
    assert max(s.coherence.max() for s in scenes) > 0.9
    rates = [np.quantile(np.abs(np.angle(np.exp(1j * np.diff(s.clean_phase, axis=1)))), 0.99) for s in scenes]
    assert min(rates) < 0.05 and max(rates) > 1.5
    assert any(not s.valid.all() for s in scenes) and any(s.valid.all() for s in scenes)
    for s in scenes:
        assert s.interferogram.shape == (64, 64) and np.isfinite(s.interferogram).all()
        assert (s.reference is None) == (s.looks != (1, 1))


def test_a_share_of_training_scenes_has_near_field_fringe_rates():
    """About a quarter of the scenes get a 99th-percentile gradient of 1 rad/px to beyond
    Nyquist; the log-uniform rates alone stop at 0.85π and reach 1 rad/px in 18 % of scenes."""
    rates = np.array([_training_fringe_rate(np.random.default_rng(seed)) for seed in range(400)])
    assert rates.max() > NYQUIST_MARGIN * np.pi and rates.max() <= NEAR_FIELD_RATES[1]
    assert 0.3 < np.mean(rates >= 1.0) < 0.46


@pytest.mark.parametrize("kwargs, message", [
    ({"height": 8}, "height must be an integer from 16"),
    ({"width": 5000}, "width must be an integer from 16 to 4096"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"looks": (0, 1)}, "looks must be"),
    ({"looks": 4}, "looks must be"),
    ({"fringe_scale": float("nan")}, "fringe_scale must be"),
    ({"signals": ("bubbles", "volcano")}, "signals must be"),
    ({"coherence": "forest"}, "coherence must be one of"),
    ({"coherence": 1.5}, "constant coherence must lie"),
    ({"coherence_range": (0.8, 0.2)}, "coherence_range"),
    ({"coherence_range": 0.5}, "coherence_range"),
    ({"fringe_scale": "big"}, "fringe_scale must be"),
    ({"texture_shape": 0.0}, "texture_shape"),
])
def test_bad_arguments_say_what_to_do(kwargs, message):
    arguments = {"height": 32, "width": 32, "seed": 0, **kwargs}
    with pytest.raises(InsarMlError, match=message):
        simulate_realistic_pair(**arguments)


def test_looks_are_parsed_as_rows_by_columns():
    assert parse_looks("20x4") == (20, 4) and parse_looks(" 4 × 1 ") == (4, 1) and parse_looks("1X1") == (1, 1)
    for bad in ("4", "0x1", "4x1x2", "axb", "200x1"):
        with pytest.raises(InsarMlError, match="rows x columns"):
            parse_looks(bad)
    with pytest.raises(InsarMlError, match="size must be"):
        random_training_scene(8, 0)


def test_the_simulators_import_and_run_without_gdal():
    """Training servers have no GDAL: the scene generators must not need it."""
    code = ("import sys; sys.modules['osgeo'] = None\n"
            "from qgis_insar_ml.core.realistic_simulator import random_training_scene\n"
            "from qgis_insar_ml.core.datasets.synthetic import SyntheticInterferograms\n"
            "random_training_scene(32, 1); SyntheticInterferograms(size=32).sample(0)\n"
            "assert sys.modules['osgeo'] is None and 'qgis' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert set(SIGNALS) == {"bubbles", "deformation", "turbulence", "topography", "ramp", "rupture"}


# --- insarml:simulate_pair with the realistic model ---------------------------------------------------------------

def run_simulate(parameters: dict) -> dict:
    import processing
    from qgis.core import QgsProcessingFeedback

    return processing.run("insarml:simulate_pair", parameters, feedback=QgsProcessingFeedback())


def test_simulate_pair_realistic_writes_multilooked_rasters(tmp_path, insarml_provider):
    names = ["OUTPUT_INTERFEROGRAM", "OUTPUT_CLEAN_PHASE", "OUTPUT_COHERENCE", "OUTPUT_AMPLITUDE_REFERENCE",
             "OUTPUT_AMPLITUDE_SECONDARY"]
    out = run_simulate({"WIDTH": 96, "HEIGHT": 80, "NOISE_MODEL": "realistic", "LOOKS": "4x1", "SEED": 11,
                        "FRINGE_SCALE": 0.5,
                        **{n: str(tmp_path / f"{n.lower()}.tif") for n in names}})
    ifg, clean, coherence = (read_band(out[n]) for n in names[:3])
    amp1, amp2 = read_band(out["OUTPUT_AMPLITUDE_REFERENCE"]), read_band(out["OUTPUT_AMPLITUDE_SECONDARY"])
    assert ifg.shape == (80, 96) and ifg.dtype == np.complex64 and clean.dtype == np.float32
    hole = np.isnan(clean)
    assert 0 < hole.mean() < 0.5
    for values in (coherence, amp1, amp2, ifg):
        np.testing.assert_array_equal(np.isnan(values), hole)
    valid = ~hole
    assert gdal.Open(out["OUTPUT_COHERENCE"]).GetRasterBand(1).GetNoDataValue() is not None
    assert np.all(np.abs(ifg[valid]) <= amp1[valid] * amp2[valid] * (1 + 1e-5))  # Cauchy-Schwarz per window
    # Same pixels as the core simulator: the written rasters are the scene.
    scene = simulate_realistic_pair(80, 96, 11, (4, 1), 0.5)
    np.testing.assert_array_equal(valid, scene.valid)
    np.testing.assert_allclose(amp1[valid] ** 2, scene.power_reference[valid], rtol=1e-5)
    # 4-look statistics: the phase error shrinks with coherence and the looks follow the reflectivity.
    error = np.angle(ifg * np.exp(-1j * clean))
    coherent, incoherent = valid & (coherence > 0.8), valid & (coherence < 0.2)
    assert np.abs(np.exp(1j * error[coherent]).mean()) > 0.85
    assert np.abs(np.exp(1j * error[incoherent]).mean()) < 0.3
    ratio = amp1[valid] ** 2 / scene.reflectivity[valid]
    assert abs(ratio.mean() - 1) < 0.05 and abs(ratio.std() - 0.5) < 0.05
    meta = gdal.Open(out["OUTPUT_INTERFEROGRAM"]).GetMetadata()
    assert json.loads(meta["INSARML_PARAMETERS"])["LOOKS"] == "4x1"


def test_simulate_pair_refuses_slc_outputs_with_several_looks(tmp_path, insarml_provider):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="no single-look SLCs.*LOOKS to 1x1"):
        run_simulate({"WIDTH": 64, "HEIGHT": 64, "NOISE_MODEL": "realistic", "LOOKS": "20x4",
                      "OUTPUT_SLC_REFERENCE": str(tmp_path / "slc.tif"),
                      "OUTPUT_INTERFEROGRAM": str(tmp_path / "ifg.tif")})
    assert not list(tmp_path.iterdir())


def test_sensor_spectrum_correlates_neighbouring_speckle_and_keeps_the_coherence():
    """An oversampled, Hamming-weighted sensor correlates neighbours as real SLCs do (0.1–0.5),
    and the pair keeps its coherence."""
    white = simulate_realistic_pair(256, 256, 3, coherence=0.6, signals=(), holes=False, bright_targets=False,
                                    texture_shape=None)
    shaped = simulate_realistic_pair(256, 256, 3, coherence=0.6, signals=(), holes=False, bright_targets=False,
                                     texture_shape=None, bandwidth=(0.7, 0.7), weighting=0.75)

    def neighbour_correlation(slc):
        return abs(np.mean(slc[:, 1:] * np.conj(slc[:, :-1]))) / np.mean(np.abs(slc) ** 2)

    assert neighbour_correlation(white.reference) < 0.05
    assert 0.3 < neighbour_correlation(shaped.reference) < 0.7
    coherence = sample_coherence(shaped.reference, shaped.secondary, 15)[10:-10, 10:-10]
    assert abs(coherence.mean() - 0.6) < 0.04
    with pytest.raises(InsarMlError, match="bandwidth"):
        simulate_realistic_pair(64, 64, 0, bandwidth=(0.1, 1.0))
