"""GDAL reading of radar rasters and the all-or-nothing GeoTIFF writer."""
from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.inputs import InterferogramSource
from qgis_insar_ml.core.raster_io import (GridInfo, InputRaster, OutputBand, OutputRaster, Window,
                                         bounded_gdal_cache, read_full)

from conftest import GEOTRANSFORM, write_raster

RNG = np.random.default_rng(7)
SLC = (RNG.standard_normal((20, 30)) + 1j * RNG.standard_normal((20, 30))).astype(np.complex64) * 100


@pytest.mark.parametrize("gdal_type", [gdal.GDT_CInt16, gdal.GDT_CInt32, gdal.GDT_CFloat32, gdal.GDT_CFloat64])
def test_complex_types_read_as_complex(tmp_path, gdal_type):
    path = str(tmp_path / "slc.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 30, 20, 1, gdal_type)
    ds.GetRasterBand(1).WriteArray(np.round(SLC))
    ds = None
    values, valid = read_full(path, "SLC_REFERENCE", "complex")
    assert values.dtype == np.complex64 and valid.all()
    np.testing.assert_array_equal(values, np.round(SLC))


def test_two_real_bands_are_real_and_imaginary(tmp_path):
    path = write_raster(tmp_path / "pair.tif", [SLC.real.copy(), SLC.imag.copy()])
    values, _ = read_full(path, "SLC_REFERENCE", "complex")
    np.testing.assert_array_equal(values, SLC)


@pytest.mark.parametrize("driver,name", [("ENVI", "ifg.bin"), ("GTiff", "ifg.tif"), ("ROI_PAC", "ifg.int")])
def test_formats_and_vrt(tmp_path, driver, name):
    path = write_raster(tmp_path / name, SLC, driver=driver)
    vrt = str(tmp_path / "ifg.vrt")
    gdal.BuildVRT(vrt, [path])
    for candidate in (path, vrt):
        values, _ = read_full(candidate, "INTERFEROGRAM", "interferogram")
        np.testing.assert_array_equal(values, SLC)


def test_phase_from_complex_and_from_real(tmp_path):
    phase = np.angle(SLC).astype(np.float32)
    from_complex, _ = read_full(write_raster(tmp_path / "c.tif", SLC), "X", "phase")
    from_real, _ = read_full(write_raster(tmp_path / "p.tif", phase), "X", "phase")
    np.testing.assert_allclose(from_complex, phase, atol=1e-6)
    np.testing.assert_array_equal(from_real, phase)


def test_nodata_and_nan_are_invalid_and_zeroed(tmp_path):
    amp = np.abs(SLC).astype(np.float32)
    amp[3, 4] = -9999
    amp[5, 6] = np.nan
    values, valid = read_full(write_raster(tmp_path / "a.tif", amp, nodata=-9999), "AMPLITUDE_REFERENCE", "real")
    assert not valid[3, 4] and not valid[5, 6] and valid.sum() == amp.size - 2
    assert values[3, 4] == 0 and values[5, 6] == 0


def test_slc_pair_gives_reference_times_conjugate_secondary(tmp_path):
    s2 = SLC * np.exp(-1j * 0.7)
    source = InterferogramSource(slc_reference=write_raster(tmp_path / "s1.tif", SLC),
                                 slc_secondary=write_raster(tmp_path / "s2.tif", s2.astype(np.complex64)))
    block = source.read(Window(0, 0, 20, 30))
    np.testing.assert_allclose(np.angle(block.interferogram), 0.7, atol=1e-5)
    np.testing.assert_allclose(block.power_reference, np.abs(SLC) ** 2, rtol=1e-5)
    assert source.has_amplitudes


def test_phase_with_amplitudes_builds_the_complex_interferogram(tmp_path):
    phase = np.full((20, 30), 0.3, np.float32)
    a1, a2 = np.full((20, 30), 2.0, np.float32), np.full((20, 30), 3.0, np.float32)
    source = InterferogramSource(interferogram=write_raster(tmp_path / "p.tif", phase),
                                 amplitude_reference=write_raster(tmp_path / "a1.tif", a1),
                                 amplitude_secondary=write_raster(tmp_path / "a2.tif", a2))
    block = source.read(Window(2, 3, 4, 5))
    np.testing.assert_allclose(block.interferogram, 6 * np.exp(0.3j), rtol=1e-6)
    np.testing.assert_allclose(block.power_secondary, 9.0)


def test_real_raster_where_complex_expected(tmp_path):
    path = write_raster(tmp_path / "amp.tif", np.abs(SLC).astype(np.float32))
    with pytest.raises(InsarMlError, match="SLC_REFERENCE: amp.tif is a real raster .* complex values were expected"):
        InputRaster(path, "SLC_REFERENCE", "complex")


def test_mismatched_grids_are_errors(tmp_path):
    s1 = write_raster(tmp_path / "s1.tif", SLC)
    small = write_raster(tmp_path / "small.tif", SLC[:10])
    shifted = write_raster(tmp_path / "shift.tif", SLC, geotransform=(500100.0, 20.0, 0, 5800000.0, 0, -20.0))
    other_crs = write_raster(tmp_path / "crs.tif", SLC, epsg=4326)
    with pytest.raises(InsarMlError, match="SLC_SECONDARY is 30×10 pixels but SLC_REFERENCE is 30×20"):
        InterferogramSource(slc_reference=s1, slc_secondary=small)
    with pytest.raises(InsarMlError, match="different geotransforms"):
        InterferogramSource(slc_reference=s1, slc_secondary=shifted)
    with pytest.raises(InsarMlError, match="different CRS"):
        InterferogramSource(slc_reference=s1, slc_secondary=other_crs)


def test_tiny_and_missing_inputs(tmp_path):
    tiny = write_raster(tmp_path / "tiny.tif", SLC[:1, :1].copy())
    with pytest.raises(InsarMlError, match="only 1×1 pixels"):
        InterferogramSource(interferogram=tiny)
    with pytest.raises(InsarMlError, match="file not found: .*nope.tif"):
        InterferogramSource(interferogram=str(tmp_path / "nope.tif"))
    with pytest.raises(InsarMlError, match="either INTERFEROGRAM or the two SLCs"):
        InterferogramSource(interferogram=tiny, slc_reference=tiny)


def test_writer_commits_compressed_georeferenced_geotiff(tmp_path):
    grid = GridInfo(30, 20, GEOTRANSFORM, InputRaster(write_raster(tmp_path / "s.tif", SLC), "X", "complex").grid.crs_wkt)
    out = OutputRaster(tmp_path / "out.tif", grid, [OutputBand("coherence magnitude")], {"INSARML_ALGORITHM": "test",
                       "INSARML_PARAMETERS": json.dumps({"WINDOW": 5})})
    data = np.abs(SLC).astype(np.float32)
    out.write(Window(0, 0, 10, 30), data[:10])
    assert not (tmp_path / "out.tif").exists()
    out.write(Window(10, 0, 10, 30), data[10:])
    out.commit()
    ds = gdal.Open(str(tmp_path / "out.tif"))
    band = ds.GetRasterBand(1)
    np.testing.assert_array_equal(band.ReadAsArray(), data)
    assert band.GetDescription() == "coherence magnitude"
    assert np.isnan(band.GetNoDataValue())
    assert ds.GetGeoTransform() == GEOTRANSFORM and "WGS 84 / UTM zone 31N" in ds.GetProjection()
    assert ds.GetMetadata_Dict()["INSARML_ALGORITHM"] == "test"
    assert ds.GetMetadata_Dict()["INSARML_VERSION"] != "unknown"
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] in ("ZSTD", "DEFLATE")  # ZSTD where GDAL has it
    assert band.GetBlockSize() == [256, 256]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "s.tif"]


def test_writer_abort_leaves_nothing(tmp_path):
    out = OutputRaster(tmp_path / "out.tif", GridInfo(8, 8, None, ""), [OutputBand("x", complex_values=True)])
    out.write(Window(0, 0, 8, 8), np.ones((8, 8), np.complex64))
    out.abort()
    assert list(tmp_path.iterdir()) == []


def test_writer_assembles_blocks_from_windows_in_any_order(tmp_path):
    """Windows that cut across the 256-px blocks, out of order, give the same file as one
    whole write (each block compressed once: no larger); pixels never written are NaN."""
    grid = GridInfo(700, 600, None, "")
    data = np.random.default_rng(3).random((600, 700)).astype(np.float32)
    whole = OutputRaster(tmp_path / "whole.tif", grid, [OutputBand("x")])
    whole.write(Window(0, 0, 600, 700), data)
    whole.commit()
    pieces = OutputRaster(tmp_path / "pieces.tif", grid, [OutputBand("x")])
    rows, cols = [0, 130, 390, 600], [0, 300, 511, 700]
    cells = [Window(r0, c0, r1 - r0, c1 - c0) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
    with bounded_gdal_cache(2**20):  # GDAL alone would flush part-written blocks and append them again
        for cell in reversed(cells[1:]):
            pieces.write(cell, data[cell.slices])
        pieces.commit()
    expected = data.copy()
    expected[cells[0].slices] = np.nan
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "pieces.tif")).ReadAsArray(), expected)
    assert (tmp_path / "pieces.tif").stat().st_size <= (tmp_path / "whole.tif").stat().st_size
    rewritten = OutputRaster(tmp_path / "rewritten.tif", grid, [OutputBand("x")])
    rewritten.write(Window(0, 0, 600, 700), np.zeros_like(data))
    rewritten.write(Window(100, 100, 300, 300), data[100:400, 100:400])  # over blocks already in the file
    rewritten.commit()
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "rewritten.tif")).ReadAsArray()[100:400, 100:400],
                                  data[100:400, 100:400])


def test_writer_rejects_other_formats_and_missing_folders(tmp_path):
    with pytest.raises(InsarMlError, match="only GeoTIFF"):
        OutputRaster(tmp_path / "out.img", GridInfo(8, 8, None, ""), [OutputBand("x")])
    with pytest.raises(InsarMlError, match="does not exist"):
        OutputRaster(tmp_path / "no" / "out.tif", GridInfo(8, 8, None, ""), [OutputBand("x")])
