"""insarml:filter_goldstein: Goldstein–Baran adaptive filter."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination

from ..core.classical import filter_goldstein_raster
from .compat import DOUBLE, INTEGER
from .base import InsarMlAlgorithm
from .inputs import add_interferogram_inputs, interferogram_source


class FilterGoldsteinAlgorithm(InsarMlAlgorithm):
    algorithm_id = "filter_goldstein"
    display_name = "Goldstein filter"
    group_name = "Classical filters"
    help_text = (
        "Goldstein–Baran adaptive power-spectrum filter: each PATCH_SIZE×PATCH_SIZE patch's spectrum is "
        "weighted by its smoothed magnitude to the power ALPHA (0 = no filtering, 1 = strongest); overlapping "
        "patches are blended in the complex domain. Input: INTERFEROGRAM (complex, or phase in radians). "
        "Optionally writes a boxcar coherence (COHERENCE_WINDOW) beside the filtered phase."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_interferogram_inputs(self, slcs=False)
        self.addParameter(QgsProcessingParameterNumber("ALPHA", "Alpha (filter strength, 0–1)",
                                                       DOUBLE, 0.5, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber("PATCH_SIZE", "Patch size [px, power of two]",
                                                       INTEGER, 32, minValue=8, maxValue=256))
        self.addParameter(QgsProcessingParameterNumber("PATCH_OVERLAP", "Patch overlap [px] (empty = half a patch)",
                                                       INTEGER, None, optional=True,
                                                       minValue=0, maxValue=255))
        self.addParameter(QgsProcessingParameterNumber("COHERENCE_WINDOW", "Coherence window [px, odd]",
                                                       INTEGER, 5, minValue=3, maxValue=101))
        self.add_tiling_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PHASE", "Filtered phase"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_COHERENCE", "Coherence (boxcar)",
                                                                  optional=True, createByDefault=False))

    def execute(self, parameters, context, progress):
        tile_size, overlap = self.tiling(parameters, context)
        return filter_goldstein_raster(
            interferogram_source(self, parameters, context),
            self.parameterAsDouble(parameters, "ALPHA", context),
            self.parameterAsInt(parameters, "PATCH_SIZE", context),
            self.optional_int(parameters, "PATCH_OVERLAP", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_PHASE", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_COHERENCE", context),
            self.parameterAsInt(parameters, "COHERENCE_WINDOW", context),
            tile_size, overlap, progress)
