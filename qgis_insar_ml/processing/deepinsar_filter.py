"""insarml:deepinsar_filter: DeepInSAR phase restoration and coherence, tile by tile."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.filters import DEFAULT_COHERENCE_WINDOW
from .base import InsarMlAlgorithm
from .inputs import add_interferogram_inputs, interferogram_source


class DeepInsarFilterAlgorithm(InsarMlAlgorithm):
    needs_torch = True
    algorithm_id = "deepinsar_filter"
    display_name = "DeepInSAR filter and coherence"
    group_name = "Deep learning"
    help_text = (
        "Restores the interferometric phase and estimates the coherence with a DeepInSAR network (Sun et al.). "
        "Input: the SLC pair, or INTERFEROGRAM (complex, or phase in radians) with optional amplitudes. MODEL: "
        "a .safetensors model with its JSON card; empty = the shipped model that fits the inputs (4-channel "
        "[cos φ, sin φ, Â1, Â2] when amplitudes are known, else the phase-only [cos φ, sin φ] model). DEVICE: "
        "auto (the GPU when there is one), cpu, cuda or cuda:N; the device used is logged. Rasters of any size "
        "run tile by tile; the default overlap covers the model's receptive field. COHERENCE_WINDOW: with "
        "amplitudes or SLCs the coherence is the maximum-likelihood estimate over this box after removing the "
        "restored phase (fringe-compensated; calibrated on real speckle); 0 = the network's coherence head, "
        "which phase-only inputs use. LOOKS: the number of looks of a phase-only interferogram (rows x columns "
        "such as 20x4 for LiCSAR, or a number): the phase alone cannot tell looks from coherence, so with LOOKS "
        "the coherence is the looks-aware estimate fitted for the model (see its card), without it the head's. "
        "OUTPUT_INTERFEROGRAM is coherence · exp(i · filtered phase)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_interferogram_inputs(self, slcs=True)
        # no extension or filter: QGIS would reject a wrong file with a bare "incorrect value",
        # while the loader says what the file is and what it should be
        self.addParameter(QgsProcessingParameterFile("MODEL", "Model (.safetensors; empty = shipped model)",
                                                     optional=True))
        self.addParameter(QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N)", "auto"))
        self.add_tiling_parameters(None)
        self.add_advanced_int("BATCH_SIZE", "Tiles per batch (empty = automatic)", None, 1, 256)
        self.add_looks_parameter()
        self.add_advanced_int("COHERENCE_WINDOW", "Coherence window with amplitudes [px, odd; 0 = network head]",
                              DEFAULT_COHERENCE_WINDOW, 0, 51)
        for name, description, default in (("OUTPUT_PHASE", "Filtered phase", True),
                                           ("OUTPUT_COHERENCE", "Coherence", True),
                                           ("OUTPUT_INTERFEROGRAM", "Filtered interferogram (complex)", False)):
            self.addParameter(QgsProcessingParameterRasterDestination(name, description, optional=True,
                                                                      createByDefault=default))

    def execute(self, parameters, context, progress):
        from ..core.deepinsar.inference import filter_deepinsar_raster

        tile_size, overlap = self.tiling(parameters, context)
        return filter_deepinsar_raster(
            interferogram_source(self, parameters, context),
            self.parameterAsFile(parameters, "MODEL", context) or None,
            self.parameterAsString(parameters, "DEVICE", context) or "auto",
            tile_size, overlap, self.optional_int(parameters, "BATCH_SIZE", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_PHASE", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_COHERENCE", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT_INTERFEROGRAM", context),
            progress, progress.info, self.parameterAsInt(parameters, "COHERENCE_WINDOW", context),
            self.looks(parameters, context))
