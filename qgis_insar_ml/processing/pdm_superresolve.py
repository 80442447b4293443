"""insarml:pdm_superresolve: a 2× super-resolution PDM applied to a raster."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer

from .base import InsarMlAlgorithm
from .pdm_params import SAMPLER_HELP, add_model_parameter, add_sampler_parameters, load_model, sampler_settings


class PdmSuperresolveAlgorithm(InsarMlAlgorithm):
    needs_torch = True
    algorithm_id = "pdm_superresolve"
    display_name = "Super-resolve (PDM)"
    group_name = "Generative models"
    help_text = (
        "Doubles the resolution of a single-band raster (e.g. a generated 64×64 interferogram, or a real unwrapped "
        "interferogram) with a super-resolution diffusion model conditioned on it, as the paper's 128→256 model. "
        "The raster is normalised with its own range and the result mapped back, so it keeps its units; "
        "no-data stays no-data; the georeferencing keeps the extent with half the pixel size. MODEL: empty = the "
        "shipped 2× interferogram model. At most 512×512 input pixels per run: clip larger rasters first. "
        + SAMPLER_HELP
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Low-resolution raster (band 1)"))
        add_model_parameter(self, "2× super-resolution PDM")
        add_sampler_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))

    def execute(self, parameters, context, progress):
        from ..core.diffusion.scene_files import superresolve_raster

        pdm, model_path = load_model(self, parameters, context, "superresolution")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        superresolve_raster(pdm, self.raster_path(parameters, "INPUT", context), output, str(model_path),
                            progress=progress, **sampler_settings(self, parameters, context))
        return {"OUTPUT": output}
