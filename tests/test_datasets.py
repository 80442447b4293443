"""Synthetic InSAR datasets (physics, noise, determinism, writing) and the folder dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from osgeo import gdal

from conftest import CancelAfter, read_band, write_raster
from qgis_insar_ml.core.datasets.folder import RangeRescaler, RasterFolderDataset, area_weights
from qgis_insar_ml.core.datasets.synthetic import (
    LOS_ENU, POISSON, SOURCE_TYPES, WAVELENGTH, NoisyDeformationScenes, SyntheticInterferograms, fractal_dem,
    los_phase, mogi, okada, orbital_ramp, power_law_field, turbulent_atmosphere, wrap, write_synthetic_dataset)
from qgis_insar_ml.core.errors import Cancelled, InsarMlError
from qgis_insar_ml.core.simulation_io import PIXEL_GRID_GEOTRANSFORM


# --- deformation sources -------------------------------------------------------------------

def test_mogi_matches_hand_computed_values():
    # dV = 1e6 m3 at d = 2 km, nu = 0.25: uz(0) = 0.75e6 / (pi * 4e6) = 0.0596831 m;
    # at r = d both uz and ur are uz(0) / (2 sqrt 2) = 0.0211010 m.
    e, n, u = mogi(np.array([0.0, 2000.0, 0.0]), np.array([0.0, 0.0, -2000.0]), 2000.0, 1e6)
    np.testing.assert_allclose(u, [0.0596831, 0.0211010, 0.0211010], rtol=1e-5)
    np.testing.assert_allclose(e, [0.0, 0.0211010, 0.0], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(n, [0.0, 0.0, -0.0211010], rtol=1e-5, atol=1e-12)
    assert u[0] == pytest.approx((1 - POISSON) * 1e6 / (np.pi * 2000.0 ** 2))
    # Pure uplift seen at 39° incidence, phase = -4 pi / lambda * d_LOS.
    assert los_phase(0.0, 0.0, u[0]) == pytest.approx(-4 * np.pi / WAVELENGTH * np.cos(np.radians(39)) * u[0])
    assert np.linalg.norm(LOS_ENU) == pytest.approx(1.0) and LOS_ENU[0] < 0  # ascending: satellite to the west


def _okada_point_source(x, y, d, dip, u1, u2, u3, area, nu=POISSON):
    """Okada (1985) eqs. 13-19: a point dislocation, an independent closed form for small faults."""
    m, sd, cd = 1 - 2 * nu, np.sin(np.radians(dip)), np.cos(np.radians(dip))
    p, q, r = y * cd + d * sd, y * sd - d * cd, np.sqrt(x ** 2 + y ** 2 + d ** 2)
    i1 = m * y * (1 / (r * (r + d) ** 2) - x ** 2 * (3 * r + d) / (r ** 3 * (r + d) ** 3))
    i2 = m * x * (1 / (r * (r + d) ** 2) - y ** 2 * (3 * r + d) / (r ** 3 * (r + d) ** 3))
    i3 = m * x / r ** 3 - i2
    i4 = -m * x * y * (2 * r + d) / (r ** 3 * (r + d) ** 2)
    i5 = m * (1 / (r * (r + d)) - x ** 2 * (2 * r + d) / (r ** 3 * (r + d) ** 2))
    k = area / (2 * np.pi)
    ux = k * (-u1 * (3 * x ** 2 * q / r ** 5 + i1 * sd) - u2 * (3 * x * p * q / r ** 5 - i3 * sd * cd)
              + u3 * (3 * x * q ** 2 / r ** 5 - i3 * sd ** 2))
    uy = k * (-u1 * (3 * x * y * q / r ** 5 + i2 * sd) - u2 * (3 * y * p * q / r ** 5 - i1 * sd * cd)
              + u3 * (3 * y * q ** 2 / r ** 5 - i1 * sd ** 2))
    uz = k * (-u1 * (3 * x * d * q / r ** 5 + i4 * sd) - u2 * (3 * d * p * q / r ** 5 - i5 * sd * cd)
              + u3 * (3 * d * q ** 2 / r ** 5 - i5 * sd ** 2))
    return ux, uy, uz


@pytest.mark.parametrize("dip", [0.0, 35.0, 70.0, 90.0])
@pytest.mark.parametrize("rake, slip, opening", [(0.0, 1.0, 0.0), (90.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
def test_small_okada_fault_is_a_point_dislocation(dip, rake, slip, opening):
    rng = np.random.default_rng(0)
    e, n = rng.uniform(-8000, 8000, (2, 100))
    # strike 90°: Okada's x is east and y north, so no rotation is needed on the test side.
    got = okada(e, n, depth=3000.0, strike=90.0, dip=dip, length=5.0, width=5.0, rake=rake, slip=slip, opening=opening)
    u1, u2 = slip * np.cos(np.radians(rake)), slip * np.sin(np.radians(rake))
    want = _okada_point_source(e, n, 3000.0, dip, u1, u2, opening, 25.0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-4 * np.abs(w).max())


def test_vertical_strike_slip_symmetries():
    e, n = np.meshgrid(np.linspace(-10000, 10000, 41), np.linspace(-9000, 9000, 37))
    fault = dict(depth=3000.0, strike=0.0, dip=90.0, length=4000.0, width=2000.0, rake=0.0)
    ue, un, uz = okada(e, n, slip=1.0, **fault)
    scale = np.abs(un).max()
    np.testing.assert_allclose(uz[:, 20], 0.0, atol=1e-12 * scale)  # on the fault trace
    np.testing.assert_allclose(uz, -uz[:, ::-1], atol=1e-12 * scale)  # antisymmetric across the fault
    np.testing.assert_allclose(un, -un[:, ::-1], atol=1e-12 * scale)  # fault-parallel motion flips
    np.testing.assert_allclose(ue, ue[:, ::-1], atol=1e-12 * scale)
    assert un[18, 25] > 0 > un[18, 15]  # rake 0 is left-lateral: the east block moves north
    doubled = okada(e, n, slip=2.0, **fault)
    for single, double in zip((ue, un, uz), doubled):
        np.testing.assert_allclose(double, 2 * single, rtol=1e-12, atol=1e-15)
    far = np.abs(okada(np.array([50e3, 100e3]), np.array([50e3, 100e3]), slip=1.0, **fault)[1])
    assert far[0] < 0.01 * scale and far[0] / far[1] == pytest.approx(4.0, rel=0.05)  # 1/r² far field


def test_okada_field_rotates_with_the_strike():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-6000, 6000, (2, 50))
    fault = dict(depth=2500.0, dip=40.0, length=3000.0, width=2000.0, rake=60.0, slip=1.0, opening=0.2)
    ux, uy, uz = okada(x, y, strike=90.0, **fault)  # local frame = east/north
    st, ct = np.sin(np.radians(30.0)), np.cos(np.radians(30.0))
    ue, un, uz30 = okada(st * x - ct * y, ct * x + st * y, strike=30.0, **fault)
    np.testing.assert_allclose(ue, st * ux - ct * uy, atol=1e-12)
    np.testing.assert_allclose(un, ct * ux + st * uy, atol=1e-12)
    np.testing.assert_allclose(uz30, uz, atol=1e-12)
    thrust = okada(np.zeros(1), np.zeros(1), strike=0.0, **{**fault, "rake": 90.0, "opening": 0.0})
    assert thrust[2][0] > 0  # a reverse fault lifts the ground above it


def test_okada_rejects_a_surface_rupture():
    with pytest.raises(InsarMlError, match="top edge"):
        okada(np.zeros(1), np.zeros(1), depth=500.0, strike=0.0, dip=90.0, length=1000.0, width=2000.0, slip=1.0)


# --- atmosphere and ramps ----------------------------------------------------------------

def test_turbulence_has_a_kolmogorov_spectrum():
    field = power_law_field(np.random.default_rng(2), (256, 256), 8.0 / 3.0)
    assert field.mean() == pytest.approx(0.0, abs=1e-12) and field.std() == pytest.approx(1.0)
    psd = np.abs(np.fft.fft2(field)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    edges = np.geomspace(2 / 256, 0.45, 16)
    which = np.digitize(k, edges)
    centres = [k[which == i].mean() for i in range(1, len(edges))]
    radial = [psd[which == i].mean() for i in range(1, len(edges))]
    slope = np.polyfit(np.log(centres), np.log(radial), 1)[0]
    assert abs(slope + 8.0 / 3.0) < 0.4
    assert turbulent_atmosphere(np.random.default_rng(3), (64, 64), 2.5).std() == pytest.approx(2.5)


def test_stratified_delay_follows_the_dem():
    for index in range(3):
        parts = SyntheticInterferograms(size=64, seed=4).components(index)
        assert abs(np.corrcoef(parts["stratified"].ravel(), parts["dem"].ravel())[0, 1]) > 0.9
        assert parts["dem"].min() == pytest.approx(0.0) and 500.0 <= parts["dem"].max() <= 3000.0
        assert abs(np.corrcoef(parts["turbulence"].ravel(), parts["dem"].ravel())[0, 1]) < 0.5
    dem = fractal_dem(np.random.default_rng(5), (64, 64), 1000.0)
    assert dem.max() == pytest.approx(1000.0)


def test_ramps_are_planes_unless_quadratic():
    y, x = np.mgrid[0:40, 0:50].astype(float)
    plane = np.column_stack([np.ones(x.size), x.ravel(), y.ravel()])
    quadric = np.column_stack([plane, x.ravel() ** 2, y.ravel() ** 2, (x * y).ravel()])
    for seed in range(5):
        ramp = orbital_ramp(np.random.default_rng(seed), (40, 50), max_rad=3.0).ravel()
        assert np.abs(plane @ np.linalg.lstsq(plane, ramp, rcond=None)[0] - ramp).max() < 1e-10
        assert np.ptp(ramp) <= 6.0 + 1e-9
        curved = orbital_ramp(np.random.default_rng(seed), (40, 50), quadratic=True).ravel()
        assert np.abs(plane @ np.linalg.lstsq(plane, curved, rcond=None)[0] - curved).max() > 1e-3
        assert np.abs(quadric @ np.linalg.lstsq(quadric, curved, rcond=None)[0] - curved).max() < 1e-10


# --- datasets ---------------------------------------------------------------------------

def test_classes_come_in_equal_proportions_and_carry_their_source():
    scenes = SyntheticInterferograms(size=32, seed=6)
    assert scenes.class_names == list(SOURCE_TYPES)
    counts = np.bincount([scenes.label(i) for i in range(1003)], minlength=len(SOURCE_TYPES))
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1003
    for index in range(len(SOURCE_TYPES)):
        deformation = scenes.components(index)["deformation"]
        assert (np.ptp(deformation) == 0) == (scenes.class_names[scenes.label(index)] == "no_deformation")
    subset = NoisyDeformationScenes(seed=6, classes=("fault", "no_deformation"))
    assert [subset.label(i) for i in range(4)] == [0, 1, 0, 1]
    assert subset.sample(0)[0].shape == (32, 32) and "noise" in subset.components(0)
    with pytest.raises(InsarMlError):
        SyntheticInterferograms(classes=("volcano",))


def test_samples_are_a_pure_function_of_seed_and_index():
    a, b = SyntheticInterferograms(size=64, seed=7), SyntheticInterferograms(size=64, seed=7)
    later = b.sample(3)[0]
    first = a.sample(3)[0]
    np.testing.assert_array_equal(first, later)
    assert first.dtype == np.float32
    assert not np.array_equal(first, SyntheticInterferograms(size=64, seed=8).sample(3)[0])
    assert not np.array_equal(first, a.sample(8)[0])  # same class, another scene
    deformation = NoisyDeformationScenes(seed=1)
    np.testing.assert_array_equal(deformation.sample(2)[0], NoisyDeformationScenes(seed=1).sample(2)[0])


def test_wrapping_is_exact():
    scenes = SyntheticInterferograms(size=64, seed=9)
    spans = []
    for index in range(5):
        wrapped, unwrapped, label = scenes.pair(index)
        assert label == scenes.label(index)
        np.testing.assert_array_equal(np.angle(np.exp(1j * unwrapped.astype(np.float64))).astype(np.float32), wrapped)
        assert np.abs(wrapped).max() <= np.float32(np.pi)
        cycles = (unwrapped.astype(np.float64) - wrapped) / (2 * np.pi)
        np.testing.assert_allclose(cycles, np.round(cycles), atol=1e-5)
        spans.append(np.ptp(unwrapped))
    assert max(spans) > 4 * np.pi  # several fringes: wrapping matters
    np.testing.assert_array_equal(scenes.wrap(np.float32([4.0])), wrap(np.float32([4.0])))


def test_write_synthetic_dataset_layout_and_bands(tmp_path):
    counts = write_synthetic_dataset("deformation", tmp_path / "ds", size=16, count=7, seed=3, wrapped=True)
    scenes = NoisyDeformationScenes(size=16, seed=3)
    assert counts == {"no_deformation": 2, "point_source": 2, "fault": 1, "dike": 1, "sill": 1}
    for index in range(7):
        path = tmp_path / "ds" / scenes.class_names[scenes.label(index)] / f"{index:05d}.tif"
        ds = gdal.Open(str(path))
        assert ds.RasterCount == 2 and (ds.RasterXSize, ds.RasterYSize) == (16, 16)
        assert ds.GetGeoTransform() == PIXEL_GRID_GEOTRANSFORM and ds.GetProjection() == ""
        assert ds.GetMetadataItem("INSARML_CLASS") == path.parent.name
        np.testing.assert_array_equal(read_band(path, 1), scenes.sample(index)[0])
        np.testing.assert_array_equal(read_band(path, 2), wrap(read_band(path, 1)))
    assert sorted(p.name for p in (tmp_path / "ds").rglob("*") if p.is_file()) == [f"{i:05d}.tif" for i in range(7)]
    write_synthetic_dataset("interferograms", tmp_path / "ifg", size=16, count=1, seed=0, wrapped=False)
    assert gdal.Open(str(tmp_path / "ifg" / "no_deformation" / "00000.tif")).RasterCount == 1


class _CancelOnCall:
    """Cancels from the n-th time it is asked onwards (n=2: during the first file's commit)."""

    def __init__(self, n: int):
        self.n, self.asked = n, 0

    def set_progress(self, percent: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        self.asked += 1
        return self.asked >= self.n

    def info(self, message: str) -> None:
        pass


def test_cancel_leaves_only_whole_files(tmp_path):
    with pytest.raises(Cancelled):
        write_synthetic_dataset("interferograms", tmp_path / "a", size=16, count=10, seed=0, progress=CancelAfter(3))
    written = sorted((p for p in (tmp_path / "a").rglob("*") if p.is_file()), key=lambda p: p.name)
    assert [p.name for p in written] == ["00000.tif", "00001.tif", "00002.tif"]
    assert all(gdal.Open(str(p)).RasterCount == 1 for p in written)
    with pytest.raises(Cancelled):
        write_synthetic_dataset("interferograms", tmp_path / "b", size=16, count=3, seed=0, progress=_CancelOnCall(2))
    assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file()]


@pytest.mark.parametrize("kwargs", [dict(count=0), dict(size=8), dict(dataset="sar"), dict(seed=-1)])
def test_write_synthetic_dataset_rejects_bad_settings(tmp_path, kwargs):
    settings = {"dataset": "interferograms", "folder": tmp_path, "size": 16, "count": 2, "seed": 0, **kwargs}
    with pytest.raises(InsarMlError):
        write_synthetic_dataset(**settings)
    assert not list(tmp_path.iterdir())


# --- folder dataset ---------------------------------------------------------------------

def _write_png(path, array):
    mem = gdal.GetDriverByName("MEM").Create("", array.shape[1], array.shape[0], 1, gdal.GDT_Byte)
    mem.GetRasterBand(1).WriteArray(array)
    gdal.GetDriverByName("PNG").CreateCopy(str(path), mem)


def _block_mean(x, f):
    return x.reshape(x.shape[0] // f, f, x.shape[1] // f, f).mean(axis=(1, 3))


@pytest.fixture
def scene_folder(tmp_path):
    rng = np.random.default_rng(10)
    images = {"alpha/a.tif": rng.normal(5.0, 2.0, (10, 12)).astype(np.float32),
              "beta/b.png": rng.integers(0, 256, (8, 8)).astype(np.uint8),
              "beta/deep/c.npy": rng.normal(-3.0, 1.0, (8, 8))}
    for name in ("alpha", "beta/deep", "gamma"):
        (tmp_path / name).mkdir(parents=True)
    write_raster(tmp_path / "alpha/a.tif", images["alpha/a.tif"])
    _write_png(tmp_path / "beta/b.png", images["beta/b.png"])
    np.save(tmp_path / "beta/deep/c.npy", images["beta/deep/c.npy"])
    np.save(tmp_path / "gamma/small.npy", np.ones((4, 4)))
    (tmp_path / "alpha/broken.tif").write_text("not a raster")
    (tmp_path / "alpha/.00009.partial.tif").write_text("being written")
    return tmp_path, images


def test_folder_dataset_crops_downscales_and_normalises(scene_folder):
    root, images = scene_folder
    data = RasterFolderDataset(root, crop=8, size=4, normalise="[-1,1]", seed=0)
    assert data.class_names == ["alpha", "beta", "gamma"] and data.labelled
    assert [p.name for p in data.files] == ["a.tif", "b.png", "c.npy"] and data.labels == [0, 1, 1]
    assert sorted(p.name for p, _ in data.skipped) == ["broken.tif", "small.npy"]
    for index, name in enumerate(["alpha/a.tif", "beta/b.png", "beta/deep/c.npy"]):
        tensor, label, (lo, hi) = data[index]
        assert tensor.dtype == torch.float32 and tensor.shape == (1, 4, 4) and label == data.labels[index]
        assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
        image = images[name].astype(np.float64)
        # The crop is random: it must be one of the 8x8 windows, block-averaged by 2.
        candidates = [_block_mean(image[r:r + 8, c:c + 8], 2) for r in range(image.shape[0] - 7)
                      for c in range(image.shape[1] - 7)]
        restored = (tensor[0].numpy().astype(np.float64) + 1) / 2 * (hi - lo) + lo
        match = [m for m in candidates if np.allclose(restored, m, atol=1e-5 * (hi - lo))]
        assert match and lo == pytest.approx(match[0].min(), rel=1e-12)
        assert hi == pytest.approx(match[0].max(), rel=1e-12)
    assert len(data.coefficients()) == 3 and data.coefficients()[0] == data[0][2]
    np.testing.assert_array_equal(data[0][0], RasterFolderDataset(root, crop=8, size=4, normalise="[-1,1]")[0][0])
    crops = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        crops.add(data[0][2])
    assert len(crops) > 1  # new crops each epoch (the 12x10 scene has 15 windows)


def test_area_weights_average_partial_pixels():
    np.testing.assert_allclose(area_weights(8, 4) @ np.arange(8.0), [0.5, 2.5, 4.5, 6.5])
    w = area_weights(9, 4)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w.sum(axis=0), 4 / 9)  # every input pixel counts equally
    x = np.random.default_rng(11).normal(size=(9, 9))
    assert (w @ x @ w.T).mean() == pytest.approx(x.mean())


def test_folder_without_subfolders_is_one_unlabelled_class(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(36.0).reshape(6, 6))
    np.save(tmp_path / "y.npy", np.zeros((2, 6, 6), dtype=np.complex64) + 3j)
    with pytest.raises(InsarMlError, match="bands"):
        RasterFolderDataset(tmp_path, crop=6, size=3)
    (tmp_path / "y.npy").unlink()
    data = RasterFolderDataset(tmp_path, crop=6, size=3, normalise="[0,1]")
    assert not data.labelled and data.labels == [0] and len(data.class_names) == 1
    tensor, label, coeffs = data[0]
    expected = _block_mean(np.arange(36.0).reshape(6, 6), 2)
    assert coeffs == pytest.approx((expected.min(), expected.max()))
    np.testing.assert_allclose(tensor[0].numpy(), (expected - expected.min()) / np.ptp(expected), atol=1e-6)


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "does not exist"),
    (lambda root: root.mkdir(), "No usable raster"),
    (lambda root: (root.mkdir(), (root / "a.tif").write_text("junk")), "unreadable"),
])
def test_bad_folders_are_reported(tmp_path, setup, message):
    root = tmp_path / "scenes"
    setup(root)
    with pytest.raises(InsarMlError, match=message):
        RasterFolderDataset(root, crop=4, size=2)


def test_range_rescaler_reproduces_the_ranges():
    rng = np.random.default_rng(12)
    lows = rng.normal(0.0, 5.0, 50)
    pairs = list(zip(lows, lows + rng.lognormal(0.0, 1.0, 50)))
    rescaler = RangeRescaler.from_coefficients(pairs, seed=1)
    unit = np.broadcast_to(np.linspace(0.0, 1.0, 16).reshape(1, 1, 4, 4), (20000, 1, 4, 4))
    out = rescaler.rescale(unit).astype(np.float64)
    drawn = np.column_stack([out.reshape(len(out), -1).min(axis=1), out.reshape(len(out), -1).max(axis=1)])
    known = np.array(pairs)
    nearest = np.abs(drawn[:, None, :] - known[None]).max(axis=2).argmin(axis=1)
    np.testing.assert_allclose(drawn, known[nearest], rtol=1e-5, atol=1e-5)  # only pairs that exist
    frequency = np.bincount(nearest, minlength=50) / len(out)
    assert np.abs(frequency - 1 / 50).max() < 0.006  # each with its empirical weight
    again = RangeRescaler.from_coefficients(pairs, seed=1).rescale(torch.from_numpy(unit * 2 - 1), normalise="[-1,1]")
    np.testing.assert_allclose(again, out, rtol=1e-6, atol=1e-5)
    shrunk = RangeRescaler.from_coefficients([(10.0, 20.0)]).rescale(np.array([[0.25, 0.5, 0.75]]), stretch=True)
    np.testing.assert_allclose(shrunk, [[10.0, 15.0, 20.0]])
    with pytest.raises(InsarMlError):
        RangeRescaler.from_coefficients([])
    with pytest.raises(InsarMlError):
        RangeRescaler.from_coefficients([(2.0, 1.0)])
