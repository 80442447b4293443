"""The current map canvas extent as a window of an input raster: a VRT, so nothing is copied."""
from __future__ import annotations

import uuid
from pathlib import Path

from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from ..core.errors import InsarMlError


def clip_to_extent(path: str, extent: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> str:
    """A VRT of ``path`` cut to ``extent`` (in ``crs``); inputs on one grid get the same window."""
    layer = QgsRasterLayer(path, "", "gdal")
    if crs.isValid() and layer.crs().isValid() and crs != layer.crs():
        extent = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()).transformBoundingBox(extent)
    extent = extent.intersect(layer.extent())
    if extent.isEmpty():
        raise InsarMlError(f"The map canvas extent does not overlap {Path(path).name}. Zoom to the raster, or "
                           "choose 'Whole raster'.")
    target = Path(QgsProcessingUtils.tempFolder()) / f"{Path(path).stem}_canvas_{uuid.uuid4().hex[:8]}.vrt"
    try:  # GDAL raises or returns None, depending on whether exceptions are on in this process
        dataset = gdal.Translate(str(target), path, format="VRT", projWin=[extent.xMinimum(), extent.yMaximum(),
                                                                           extent.xMaximum(), extent.yMinimum()])
    except RuntimeError as exc:
        dataset, message = None, str(exc)
    else:
        message = gdal.GetLastErrorMsg()
    if dataset is None:
        raise InsarMlError(f"{Path(path).name} cannot be cut to the map canvas extent ({message}).")
    dataset = None  # closing it writes the VRT
    return str(target)
