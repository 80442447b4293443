"""Shared fixtures: real GeoTIFFs on disk and the registered insarml provider."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
UTM31 = 32631
GEOTRANSFORM = (500000.0, 20.0, 0.0, 5800000.0, 0.0, -20.0)


def pytest_terminal_summary(terminalreporter) -> None:
    """Which QGIS the run used (also with -q): `make test` runs the suite on two versions."""
    import qgis.core

    terminalreporter.write_line(f"QGIS {qgis.core.Qgis.QGIS_VERSION} from {Path(qgis.core.__file__).parents[1]}")


def write_raster(path: Path, array: np.ndarray, geotransform=GEOTRANSFORM, epsg: int | None = UTM31,
                 nodata: float | None = None, driver: str = "GTiff") -> str:
    """Write a 2-D array (or a list of bands) to a real raster file and return its path."""
    bands = array if isinstance(array, list) else [array]
    dtype = {np.dtype(np.complex64): gdal.GDT_CFloat32, np.dtype(np.complex128): gdal.GDT_CFloat64,
             np.dtype(np.float32): gdal.GDT_Float32, np.dtype(np.float64): gdal.GDT_Float64,
             np.dtype(np.int16): gdal.GDT_Int16}[bands[0].dtype]
    rows, cols = bands[0].shape
    ds = gdal.GetDriverByName(driver).Create(str(path), cols, rows, len(bands), dtype)
    if geotransform:
        ds.SetGeoTransform(geotransform)
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for i, band in enumerate(bands):
        b = ds.GetRasterBand(i + 1)
        if nodata is not None:
            b.SetNoDataValue(nodata)
        b.WriteArray(band)
    ds = None
    return str(path)


def read_band(path: str, band: int = 1) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(band).ReadAsArray()


def noisy_fringes(rows: int, cols: int, sigma: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clean phase, noisy unit-amplitude complex interferogram) with smooth fringes."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    clean = np.angle(np.exp(1j * (0.15 * x + 0.05 * y + 3 * np.exp(-((x - cols / 2) ** 2 + (y - rows / 2) ** 2) / (0.1 * rows * cols)))))
    rng = np.random.default_rng(seed)
    noisy = np.exp(1j * clean) + sigma * (rng.standard_normal((rows, cols)) + 1j * rng.standard_normal((rows, cols)))
    return clean.astype(np.float32), noisy.astype(np.complex64)


_PROVIDERS: list = []  # keeps the Python side of registered providers alive


@pytest.fixture
def insarml_provider(qgis_app, qgis_processing):
    """The insarml provider, registered again if a test (the plugin's unload) removed it."""
    from qgis.core import QgsApplication

    from qgis_insar_ml.processing.provider import InsarMlProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("insarml")
    if provider is None:
        provider = InsarMlProvider()
        registry.addProvider(provider)
        _PROVIDERS.append(provider)
    return provider


def model_child(child_id: str, algorithm: str, sources: dict, outputs: dict[str, str] | None = None):
    """A child algorithm of a graphical model: parameter sources, and model outputs by name."""
    from qgis.core import QgsProcessingModelChildAlgorithm, QgsProcessingModelOutput

    child = QgsProcessingModelChildAlgorithm(algorithm)
    child.setChildId(child_id)
    for name, source in sources.items():
        child.addParameterSources(name, [source])
    model_outputs = {}
    for model_name, child_output in (outputs or {}).items():
        output = QgsProcessingModelOutput(model_name)
        output.setChildOutputName(child_output)
        output.setChildId(child_id)
        model_outputs[model_name] = output
    child.setModelOutputs(model_outputs)
    return child


def run_model_file(model, path: Path, destination_value: str) -> dict:
    """Save ``model`` as .model3, load it back as QGIS would, and run it."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm

    model.updateDestinationParameters()
    assert model.toFile(str(path))
    loaded = QgsProcessingModelAlgorithm()
    assert loaded.fromFile(str(path))
    destination = loaded.destinationParameterDefinitions()[0].name()
    results, ok = loaded.run({destination: destination_value}, QgsProcessingContext(), QgsProcessingFeedback())
    assert ok
    return results


class CancelAfter:
    """A Progress that asks to cancel after ``n`` progress reports (tiles)."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def set_progress(self, percent: float) -> None:
        self.calls += 1

    def is_cancelled(self) -> bool:
        return self.calls >= self.n

    def info(self, message: str) -> None:
        pass
