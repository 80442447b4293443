"""Sentinel-1 wave-mode σ0 scenes (TenGeoP classes): CMOD5.N, wave imaging, speckle, class
signatures, determinism, and the 'sar' dataset in the writer, the PDM batches and QGIS."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from qgis_insar_ml.core.datasets.folder import to_decibels
from qgis_insar_ml.core.datasets.sar_ocean import (
    SAR_CLASS_NAMES,
    TENGEOP_CLASSES,
    SarOceanScenes,
    SeaState,
    azimuth_cutoff,
    cmod5n,
    gamma_speckle,
)
from qgis_insar_ml.core.datasets.synthetic import write_synthetic_dataset
from qgis_insar_ml.core.diffusion.data import SyntheticPdmData, downsample, pdm_data
from qgis_insar_ml.core.errors import InsarMlError

F, G, K, L, M = (SAR_CLASS_NAMES.index(name) for name in
                 ("F_pure_ocean_waves", "G_wind_streaks", "K_sea_ice", "L_iceberg", "M_low_wind_area"))


def db(value) -> np.ndarray:
    return 10.0 * np.log10(value)


def test_cmod5n_matches_the_formula_worked_by_hand_at_40_degrees():
    # At 40° incidence x = 0, so B0 = a3^c9·10^c1 with a3 = logistic(c7·v), and B1, B2 reduce
    # to a few coefficients: worked by hand for 10 m/s, -12.95 / -17.95 / -13.72 dB.
    np.testing.assert_allclose(db(cmod5n(10.0, [0.0, 90.0, 180.0], 40.0)), [-12.95, -17.95, -13.72], atol=0.01)


def test_cmod5n_wind_direction_and_incidence_dependence():
    speeds = np.arange(2.0, 25.0, 1.0)
    for incidence in (23.0, 36.5):
        for phi in (0.0, 90.0, 180.0):
            assert np.all(np.diff(cmod5n(speeds, phi, incidence)) > 0), (incidence, phi)  # grows with the wind
        upwind, crosswind, downwind = cmod5n(10.0, [0.0, 90.0, 180.0], incidence)
        assert crosswind < min(upwind, downwind)  # the cos 2φ term: crosswind darkest
    upwind, _, downwind = cmod5n(10.0, [0.0, 90.0, 180.0], 36.5)
    assert upwind > downwind  # the cos φ term, clear at wv2's incidence
    # Steep incidence dependence: wv1 (23°) several dB brighter than wv2 (36.5°)
    assert 5.0 < db(cmod5n(8.0, 45.0, 23.0) / cmod5n(8.0, 45.0, 36.5)) < 12.0
    assert -13.0 < db(cmod5n(10.0, 0.0, 36.5)) < -10.0  # about -11.6 dB
    assert -5.0 < db(cmod5n(10.0, 0.0, 23.0)) < -3.0  # about -4.0 dB


def test_cmod5n_is_symmetric_about_the_look_direction():
    np.testing.assert_allclose(cmod5n(7.0, 30.0, 30.0), cmod5n(7.0, 330.0, 30.0))


def _swell_state(wavelength: float, direction: float) -> SeaState:
    return SeaState(incidence_deg=36.5, wind_speed=6.0, wind_direction_deg=200.0, swell_wavelength=wavelength,
                    swell_direction_deg=direction, swell_height=2.0, wave_age=1.0, nesz_db=-24.0)


@pytest.mark.parametrize("wavelength, direction", [(250.0, 20.0), (350.0, 140.0), (200.0, 60.0)])
def test_swell_wavelength_and_direction_recovered_from_the_image_spectrum(wavelength, direction):
    scenes = SarOceanScenes(size=256, seed=3, looks=None)
    image = scenes.expected_sigma0(F, _swell_state(wavelength, direction))
    power = np.abs(np.fft.fft2(image / image.mean() - 1.0)) ** 2
    k = 2.0 * np.pi * np.fft.fftfreq(256, d=scenes.pixel_spacing)
    ka, kr = np.meshgrid(k, k, indexing="ij")
    power[np.hypot(ka, kr) < 2.0 * np.pi / 1000.0] = 0.0  # the wind's km-scale gustiness
    power = np.fft.fftshift(power)
    ka, kr = np.fft.fftshift(ka), np.fft.fftshift(kr)
    peak = power >= np.quantile(power, 0.999)  # the image spectrum is symmetric: ±k
    weights = power * peak
    k_peak = np.sum(np.hypot(ka, kr) * weights) / weights.sum()
    # direction modulo 180° from the doubled-angle mean
    angle = np.degrees(np.angle(np.sum(weights * np.exp(2j * np.arctan2(ka, kr))))) / 2.0
    assert abs(2.0 * np.pi / k_peak - wavelength) < 0.12 * wavelength
    assert abs((angle - direction + 90.0) % 180.0 - 90.0) < 10.0


def test_azimuth_cutoff_grows_with_the_sea_state():
    calm = _swell_state(250.0, 0.0)
    rough = dataclasses.replace(calm, wind_speed=12.0, swell_height=3.0)
    assert 100.0 <= azimuth_cutoff(calm) < azimuth_cutoff(rough) <= 350.0


@pytest.mark.parametrize("looks", [1.0, 4.0, 50.0])
def test_speckle_has_the_requested_equivalent_number_of_looks(looks):
    speckle = gamma_speckle(np.random.default_rng(0), (256, 256), looks)
    assert abs(speckle.mean() - 1.0) < 0.02
    assert abs(speckle.mean() ** 2 / speckle.var() - looks) < 0.05 * looks
    # In a scene, speckle multiplies the expected σ0: their ratio has the same statistics.
    scenes = SarOceanScenes(size=128, seed=1, looks=looks)
    ratio = scenes.sample(F)[0] / scenes.expected_sigma0(F)
    assert abs(ratio.mean() ** 2 / ratio.var() - looks) < 0.07 * looks


def _expected(label: int, size: int = 128, draws: int = 3) -> list[tuple[np.ndarray, SeaState]]:
    scenes = SarOceanScenes(size=size, seed=5, looks=None)
    indices = [label + 10 * k for k in range(draws)]
    return [(db(scenes.expected_sigma0(i)), scenes.sea_state(i)) for i in indices]


def test_low_wind_areas_reach_the_noise_floor():
    near_floor = [np.mean(image < state.nesz_db + 3.0) for image, state in _expected(M)]
    assert min(near_floor) > 0.3
    assert max(np.mean(image < state.nesz_db + 3.0) for image, state in _expected(F)) < 0.05


def test_icebergs_are_bright_compact_targets():
    for image, _ in _expected(L):
        assert image.max() - np.median(image) > 6.0
        assert np.mean(image > np.median(image) + 6.0) < 0.01  # compact
    for image, _ in _expected(F):
        assert image.max() - np.median(image) < 6.0


def _km_scale_anisotropy(image: np.ndarray, wind_direction: float) -> float:
    """Power at 0.8-6 km wavelengths with wave vectors across the wind over that along it."""
    size = image.shape[0]
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    k = 2.0 * np.pi * np.fft.fftfreq(size, d=50.0)
    ka, kr = np.meshgrid(k, k, indexing="ij")
    band = (np.hypot(ka, kr) > 2.0 * np.pi / 6000.0) & (np.hypot(ka, kr) < 2.0 * np.pi / 800.0)
    off = np.abs(np.angle(np.exp(2j * (np.arctan2(ka, kr) - np.radians(wind_direction))))) / 2.0
    across, along = band & (off > np.radians(60.0)), band & (off < np.radians(30.0))
    return power[across].mean() / power[along].mean()


def test_wind_streaks_are_rolls_along_the_wind():
    assert min(_km_scale_anisotropy(image, state.wind_direction_deg) for image, state in _expected(G, 256)) > 5.0
    assert max(_km_scale_anisotropy(image, state.wind_direction_deg) for image, state in _expected(F, 256)) < 3.0


def test_sea_ice_has_no_swell_inside_the_floes():
    scenes = SarOceanScenes(size=128, seed=2, looks=None)
    index = next(i for i in range(K, 200, 10) if scenes.sea_state(i).swell_height > 1.0)
    rough = scenes.expected_sigma0(index, dataclasses.replace(scenes.sea_state(index), swell_height=3.0))
    calm = scenes.expected_sigma0(index, dataclasses.replace(scenes.sea_state(index), swell_height=0.01))
    unchanged = np.isclose(rough, calm, rtol=1e-9)
    assert 0.3 < unchanged.mean() < 1.0  # the floes: σ0 of the ice, whatever the swell


def test_scenes_are_pure_functions_of_seed_and_index_and_cycle_the_classes():
    first, again = SarOceanScenes(size=64, seed=4), SarOceanScenes(size=64, seed=4)
    for index in (0, 7, 23):
        image, label = first.sample(index)
        np.testing.assert_array_equal(image, again.sample(index)[0])
        assert image.dtype == np.float32 and image.shape == (64, 64) and np.all(image > 0)
        assert label == index % 10
    assert not np.array_equal(first.sample(3)[0], SarOceanScenes(size=64, seed=5).sample(3)[0])
    assert [name.split("_", 1)[0] for name in SAR_CLASS_NAMES] == [letter for letter, _ in TENGEOP_CLASSES]
    assert SAR_CLASS_NAMES[0] == "F_pure_ocean_waves" and len(SAR_CLASS_NAMES) == 10


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 16}, "at least 32"), ({"seed": -1}, "non-negative"), ({"looks": 0}, "looks must be positive")])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(InsarMlError, match=message):
        SarOceanScenes(**kwargs)


def test_pdm_batches_learn_decibels_of_100m_averages():
    data = SyntheticPdmData("sar", 32, seed=2)
    batch = data.batch(0, 10)
    assert batch.x0.shape == (10, 1, 32, 32) and batch.labels.tolist() == list(range(10))
    assert float(batch.x0.min()) == -1.0 and float(batch.x0.max()) == 1.0
    scene = to_decibels(downsample(SarOceanScenes(size=64, seed=2).sample(3)[0]))
    np.testing.assert_allclose(batch.ranges[3], [scene.min(), scene.max()], rtol=1e-5)
    assert np.all(batch.ranges > -40.0) and np.all(batch.ranges < 25.0)  # dB, not linear σ0
    assert "dB" in data.describe() and "100 m" in data.describe()
    sr = pdm_data("sar", 32, 2, super_resolution=True, decibels=True)
    pair = sr.batch(0, 2)
    assert pair.low_res.shape == (2, 1, 16, 16) and pair.labels is None


def test_wrapped_phase_is_refused_for_sar(tmp_path):
    with pytest.raises(InsarMlError, match="no phase"):
        write_synthetic_dataset("sar", tmp_path / "bad", size=32, count=2, wrapped=True)
    assert not (tmp_path / "bad").exists()


def test_synthetic_dataset_algorithm_writes_the_tengeop_folders(tmp_path, insarml_provider):
    import processing
    from osgeo import gdal

    result = processing.run("insarml:synthetic_dataset", {"DATASET": "sar", "SIZE": 32, "COUNT": 12, "SEED": 7,
                                                          "OUTPUT_FOLDER": str(tmp_path / "sar")})
    counts = json.loads(result["COUNTS"])
    assert list(counts) == list(SAR_CLASS_NAMES)
    assert counts["F_pure_ocean_waves"] == counts["G_wind_streaks"] == 2 and counts["O_oceanic_front"] == 1
    assert sorted(p.name for p in (tmp_path / "sar").iterdir()) == sorted(SAR_CLASS_NAMES)
    scenes = SarOceanScenes(size=32, seed=7)
    for index in (0, 6, 11):
        name = SAR_CLASS_NAMES[index % 10]
        raster = gdal.Open(str(tmp_path / "sar" / name / f"{index:05d}.tif"))
        band = raster.GetRasterBand(1)
        assert raster.RasterCount == 1 and band.GetDescription() == "NRCS sigma0 [linear]"
        assert raster.GetMetadataItem("INSARML_PIXEL_SPACING_M") == "50.0"
        assert raster.GetMetadataItem("INSARML_CLASS") == name
        np.testing.assert_array_equal(band.ReadAsArray(), scenes.sample(index)[0])
