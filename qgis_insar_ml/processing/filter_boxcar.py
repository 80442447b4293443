"""insarml:filter_boxcar: moving-average phase and ML coherence."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination

from ..core.classical import filter_boxcar_raster
from .compat import INTEGER
from .base import InsarMlAlgorithm
from .inputs import add_interferogram_inputs, interferogram_source


class FilterBoxcarAlgorithm(InsarMlAlgorithm):
    algorithm_id = "filter_boxcar"
    display_name = "Boxcar filter and coherence"
    group_name = "Classical filters"
    help_text = (
        "Moving-average (multilook) filter of the complex interferogram, with the maximum-likelihood coherence "
        "|Σ s1·s2*| / √(Σ|s1|² Σ|s2|²) over a WINDOW×WINDOW box (DeepInSAR eq. 5). Input: INTERFEROGRAM "
        "(complex, or phase in radians) or the two SLCs; optional amplitudes make the coherence use the SLC "
        "powers. Without amplitudes the coherence is |Σ ifg| / Σ |ifg|. Works on rasters of any size, tile by tile."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_interferogram_inputs(self, slcs=True)
        self.addParameter(QgsProcessingParameterNumber("WINDOW", "Window size [px, odd]",
                                                       INTEGER, 5, minValue=3, maxValue=101))
        self.add_tiling_parameters()
        for name, description in (("OUTPUT_PHASE", "Filtered phase"), ("OUTPUT_COHERENCE", "Coherence")):
            self.addParameter(QgsProcessingParameterRasterDestination(name, description, optional=True,
                                                                      createByDefault=True))

    def execute(self, parameters, context, progress):
        tile_size, overlap = self.tiling(parameters, context)
        return filter_boxcar_raster(
            interferogram_source(self, parameters, context),
            self.parameterAsInt(parameters, "WINDOW", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_PHASE", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_COHERENCE", context),
            tile_size, overlap, progress)
