"""The interferogram/SLC/amplitude inputs that the filter algorithms share."""
from __future__ import annotations

from qgis.core import QgsProcessingContext

from ..core.inputs import InterferogramSource
from .base import InsarMlAlgorithm

INPUTS = {
    "INTERFEROGRAM": "Interferogram (complex, or wrapped phase in radians)",
    "SLC_REFERENCE": "Reference SLC (complex)",
    "SLC_SECONDARY": "Secondary SLC (complex)",
    "AMPLITUDE_REFERENCE": "Reference amplitude",
    "AMPLITUDE_SECONDARY": "Secondary amplitude",
}


def add_interferogram_inputs(algorithm: InsarMlAlgorithm, slcs: bool) -> None:
    """Add the optional input rasters (SLC pair only where the algorithm accepts it)."""
    for name, description in INPUTS.items():
        if slcs or not name.startswith("SLC_"):
            algorithm.add_raster_input(name, description)


def interferogram_source(algorithm: InsarMlAlgorithm, parameters: dict,
                         context: QgsProcessingContext) -> InterferogramSource:
    paths = {name.lower(): algorithm.raster_path(parameters, name, context)
             for name in INPUTS if name in parameters}
    return InterferogramSource(**paths)
