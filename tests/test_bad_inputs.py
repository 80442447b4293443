"""Inputs that used to pass silently or crash: each now stops with one message naming the file and the fix."""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.raster_io import InputRaster
from qgis_insar_ml.processing.base import LOG_TAG, InsarMlAlgorithm
from qgis_insar_ml.processing.compat import WARNING

from conftest import noisy_fringes, read_band, write_raster
from test_processing import run, staged_plugin_dir

ROWS, COLS = 60, 80


def degrees_phase() -> np.ndarray:
    return np.degrees(np.angle(noisy_fringes(ROWS, COLS)[1])).astype(np.float32)


def truncate(path: str, keep: float) -> str:
    """Cut a file to ``keep`` of its bytes, as an interrupted download leaves it."""
    with open(path, "r+b") as handle:
        handle.truncate(int(os.path.getsize(path) * keep))
    return path


def assert_nothing_written(folder: Path, inputs: set[str]) -> None:
    """Only the inputs are left (and the .aux.xml statistics QGIS keeps beside them): no output, no hidden file."""
    left = {p.name for p in folder.iterdir() if not p.name.endswith(".aux.xml")}
    assert left == inputs


def boxcar(folder: Path, inputs: dict, feedback: QgsProcessingFeedback | None = None, **extra) -> dict:
    return run("insarml:filter_boxcar", {**inputs, "WINDOW": 5, "OUTPUT_PHASE": str(folder / "phase.tif"),
                                         "OUTPUT_COHERENCE": str(folder / "coherence.tif"), **extra}, feedback)


def refused(folder: Path, inputs: dict, **extra) -> str:
    """The message of a refused boxcar run, after checking it left nothing behind."""
    names = {Path(p).name for p in inputs.values() if Path(p).parent == folder}
    with pytest.raises(QgsProcessingException) as error:
        boxcar(folder, inputs, **extra)
    assert_nothing_written(folder, names)
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_truncated_geotiff_fails_mid_run_naming_the_file(tmp_path, insarml_provider):
    _, ifg = noisy_fringes(400, 300)
    path = truncate(write_raster(tmp_path / "cut.tif", ifg), 0.6)  # strips: the first rows still read
    feedback = QgsProcessingFeedback()
    progress = []
    feedback.progressChanged.connect(progress.append)
    with pytest.raises(QgsProcessingException, match=r"INTERFEROGRAM: .*cut\.tif is damaged or truncated: GDAL could "
                                                     r"not read the block at row \d+, column \d+ .*Re-download or "
                                                     r"re-export it\.$"):
        boxcar(tmp_path, {"INTERFEROGRAM": path}, feedback, TILE_SIZE=64)
    assert max(progress) > 0  # it failed inside the tiling loop, with outputs already open
    assert_nothing_written(tmp_path, {"cut.tif"})


def test_truncated_slc_is_refused_before_any_output(tmp_path, insarml_provider):
    _, ifg = noisy_fringes(ROWS, COLS)
    inputs = {"SLC_REFERENCE": truncate(write_raster(tmp_path / "s1.tif", ifg), 0.5),
              "SLC_SECONDARY": write_raster(tmp_path / "s2.tif", ifg)}
    message = refused(tmp_path, inputs)
    assert "SLC_REFERENCE" in message and "s1.tif is damaged or truncated" in message


def test_phase_in_degrees_is_refused_with_the_conversion(tmp_path, insarml_provider):
    message = refused(tmp_path, {"INTERFEROGRAM": write_raster(tmp_path / "phase_deg.tif", degrees_phase())})
    assert "phase_deg.tif looks like a phase in degrees (values up to 17" in message
    assert '"phase_deg@1" * 3.14159265 / 180' in message
    assert 'gdal_calc.py -A phase_deg.tif --calc="A*pi/180"' in message


def test_phase_beyond_degrees_is_refused_as_not_wrapped(tmp_path, insarml_provider):
    unwrapped = np.linspace(-400, 400, ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS)
    message = refused(tmp_path, {"INTERFEROGRAM": write_raster(tmp_path / "unw.tif", unwrapped)})
    assert "unw.tif holds values up to 400" in message and "arctan2(sin(A),cos(A))" in message


def test_phase_in_radians_with_a_few_outliers_is_accepted(tmp_path, insarml_provider):
    phase = np.radians(degrees_phase())
    phase.flat[::250] = 50.0  # 0.4 % of the pixels: stray values do not make it "degrees"
    boxcar(tmp_path, {"INTERFEROGRAM": write_raster(tmp_path / "phase.tif", phase)})
    assert read_band(str(tmp_path / "phase.tif")).shape == (ROWS, COLS)


def test_several_bands_are_refused_listing_them_and_a_band_can_be_picked(tmp_path, insarml_provider):
    phase = np.radians(degrees_phase())
    bands = [np.zeros_like(phase), phase, np.ones_like(phase)]
    path = write_raster(tmp_path / "stack.tif", bands)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(2).SetDescription("phase")
    ds = None
    message = refused(tmp_path, {"INTERFEROGRAM": path})
    assert 'stack.tif has 3 bands (1 (Float32), 2 "phase" (Float32), 3 (Float32))' in message
    assert "Set INTERFEROGRAM_BAND" in message and "gdal_translate -b N stack.tif" in message

    picked = boxcar(tmp_path, {"INTERFEROGRAM": path}, INTERFEROGRAM_BAND=2)
    (tmp_path / "single").mkdir()
    single = boxcar(tmp_path / "single", {"INTERFEROGRAM": write_raster(tmp_path / "band2.tif", phase)})
    np.testing.assert_array_equal(read_band(picked["OUTPUT_PHASE"]), read_band(single["OUTPUT_PHASE"]))
    with pytest.raises(QgsProcessingException, match=r"stack\.tif has no band 4; its bands are 1 \(Float32\)"):
        boxcar(tmp_path, {"INTERFEROGRAM": path}, INTERFEROGRAM_BAND=4)


def test_two_real_bands_are_still_a_complex_interferogram(tmp_path, insarml_provider):
    _, ifg = noisy_fringes(ROWS, COLS)
    (tmp_path / "pair").mkdir()
    real_imaginary = write_raster(tmp_path / "ri.tif", [ifg.real.copy(), ifg.imag.copy()])
    from_pair = boxcar(tmp_path / "pair", {"INTERFEROGRAM": real_imaginary})
    from_complex = boxcar(tmp_path, {"INTERFEROGRAM": write_raster(tmp_path / "c.tif", ifg)})
    np.testing.assert_allclose(read_band(from_pair["OUTPUT_PHASE"]), read_band(from_complex["OUTPUT_PHASE"]),
                               atol=1e-6)


def test_zero_amplitude_slc_is_refused_naming_it(tmp_path, insarml_provider):
    _, ifg = noisy_fringes(ROWS, COLS)
    inputs = {"SLC_REFERENCE": write_raster(tmp_path / "s1.tif", ifg),
              "SLC_SECONDARY": write_raster(tmp_path / "zero.tif", np.zeros_like(ifg))}
    message = refused(tmp_path, inputs)
    assert message.startswith("SLC_SECONDARY: the amplitude of zero.tif is zero everywhere") and "re-export" in message


def test_zero_amplitude_rasters_are_refused_naming_them(tmp_path, insarml_provider):
    phase = np.radians(degrees_phase())
    amplitude = np.full_like(phase, 3.0)
    amplitude[:, :10] = 0  # zeros at the border are fine: only "zero everywhere" is refused
    inputs = {"INTERFEROGRAM": write_raster(tmp_path / "p.tif", phase),
              "AMPLITUDE_REFERENCE": write_raster(tmp_path / "a1.tif", amplitude),
              "AMPLITUDE_SECONDARY": write_raster(tmp_path / "a2.tif", amplitude)}
    (tmp_path / "accepted").mkdir()
    boxcar(tmp_path / "accepted", inputs)
    (tmp_path / "refused").mkdir()
    inputs["AMPLITUDE_REFERENCE"] = write_raster(tmp_path / "refused" / "zero.tif", np.zeros_like(phase))
    message = refused(tmp_path / "refused", inputs)
    assert message.startswith("AMPLITUDE_REFERENCE: the amplitude of zero.tif is zero everywhere")


def test_zero_check_confirms_a_zero_block_sample_on_the_whole_raster(tmp_path):
    """A large raster is checked on a few sampled blocks first; a signal outside them still counts."""
    for row in range(0, 1000, 256):
        for col in range(0, 1100, 256):  # a 16×16 patch of signal in one 256×256 tile: sampled or not
            path = str(tmp_path / f"patch_{row}_{col}.tif")
            write_sparse_raster(path, {(row, col): np.ones((16, 16), np.float32)})
            InputRaster(path, "AMPLITUDE_REFERENCE", "real").refuse_zero_amplitude()
    write_sparse_raster(str(tmp_path / "sparse.tif"), {})
    with pytest.raises(InsarMlError, match="sparse.tif is zero everywhere"):
        InputRaster(str(tmp_path / "sparse.tif"), "AMPLITUDE_REFERENCE", "real").refuse_zero_amplitude()


def write_sparse_raster(path: str, patches: dict[tuple[int, int], np.ndarray]) -> None:
    """A 1100×1000 tiled raster of zeros (over the size read_sample samples by blocks) with these patches."""
    ds = gdal.GetDriverByName("GTiff").Create(path, 1100, 1000, 1, gdal.GDT_Float32, ["TILED=YES", "SPARSE_OK=TRUE"])
    for (row, col), patch in patches.items():
        ds.GetRasterBand(1).WriteArray(patch, col, row)
    ds = None


class FailingAlgorithm(InsarMlAlgorithm):
    """A real algorithm whose core step fails with an error that is not the plugin's own."""

    algorithm_id = "failing"
    display_name = "Failing step"

    def __init__(self, error: BaseException | None = None):
        super().__init__()
        self.error = error

    def createInstance(self):  # noqa: N802
        return FailingAlgorithm(self.error)

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_tiling_parameters()

    def execute(self, parameters, context, progress):
        raise self.error


@pytest.mark.parametrize("error,expected", [
    (RuntimeError("IReadBlock failed at X offset 0, Y offset 3\nsecond line"),
     "Failing step failed: RuntimeError: IReadBlock failed at X offset 0, Y offset 3. The details are in the QGIS log"),
    (MemoryError("Unable to allocate 8.00 TiB"),
     "Failing step ran out of memory (Unable to allocate 8.00 TiB). Try again with lower TILE_SIZE"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.tif"),
     "Failing step could not access /data/out.tif: No space left on device. Check that it exists"),
])
def test_foreign_errors_become_one_line_and_the_traceback_goes_to_the_log(qgis_app, qgis_processing, error,
                                                                          expected):
    from qgis import processing

    logged = []

    def record(message, tag, level):
        logged.append((message, tag, level))

    log = QgsApplication.messageLog()
    log.messageReceived.connect(record)
    try:
        with pytest.raises(QgsProcessingException) as raised:
            processing.run(FailingAlgorithm(error), {}, feedback=QgsProcessingFeedback())
    finally:
        log.messageReceived.disconnect(record)
    message = str(raised.value)
    assert message.startswith(expected) and "\n" not in message and "Traceback" not in message
    tracebacks = [m for m, tag, level in logged if tag == LOG_TAG]
    assert len(tracebacks) == 1 and tracebacks[0].startswith("Traceback") and type(error).__name__ in tracebacks[0]
    assert [level for _, tag, level in logged if tag == LOG_TAG] == [WARNING]


def test_qgis_process_prints_the_message_once_without_traceback(tmp_path):
    binary = os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(staged_plugin_dir(tmp_path)),
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile")}
    subprocess.run([binary, "plugins", "enable", "qgis_insar_ml"], env=env, check=True, capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    phase = write_raster(work / "phase_deg.tif", degrees_phase())
    result = subprocess.run([binary, "run", "insarml:filter_boxcar", "--", f"INTERFEROGRAM={phase}", "WINDOW=5",
                             f"OUTPUT_PHASE={work / 'p.tif'}"], env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("looks like a phase in degrees") == 1, output
    assert "Traceback" not in output
    assert_nothing_written(work, {"phase_deg.tif"})


def test_truncated_header_is_reported_as_damaged_not_as_missing(tmp_path, insarml_provider):
    _, ifg = noisy_fringes(ROWS, COLS)
    path = truncate(write_raster(tmp_path / "head.tif", ifg), 0.001)
    with pytest.raises(QgsProcessingException, match=r"INTERFEROGRAM: GDAL cannot open .*head\.tif \(TIFFReadDirectory"
                                                     r".*the file is damaged or truncated: re-download or re-export"):
        boxcar(tmp_path, {"INTERFEROGRAM": path})
    assert_nothing_written(tmp_path, {"head.tif"})
