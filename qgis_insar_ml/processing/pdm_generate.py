"""insarml:pdm_generate: sample a PDM into georeferenced GeoTIFF layers."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import InsarMlAlgorithm
from .compat import DOUBLE, INTEGER
from .pdm_params import SAMPLER_HELP, add_model_parameter, add_sampler_parameters, load_model, sampler_settings


class PdmGenerateAlgorithm(InsarMlAlgorithm):
    needs_torch = True
    algorithm_id = "pdm_generate"
    display_name = "Generate scenes (PDM)"
    group_name = "Generative models"
    help_text = (
        "Samples COUNT synthetic scenes from a diffusion model and writes one GeoTIFF per sample to OUTPUT_FOLDER "
        "(<PREFIX>_<index>_<class>.tif), loaded as layers. MODEL: empty = the shipped class-conditional 64×64 "
        "unwrapped-interferogram PDM (classes: no_deformation, point_source, fault, dike, sill). CLASS_LABEL: "
        "a class index or name; empty = all classes in equal proportions. GUIDANCE_SCALE: 1 = conditional, "
        "0 = unconditional, > 1 = classifier-free guidance. RESCALE maps the normalised samples to radians "
        "with (min, max) pairs drawn from the training set's coefficients (per class), as the paper does; "
        "WRAPPED adds the wrapped phase as band 2 (needs RESCALE). Placement: EXTENT (+ CRS) fills an extent, "
        "or with PIXEL_SIZE centres square pixels on it; PIXEL_SIZE alone gives pixels from (0, 0); none = "
        "the plain pixel grid. The same SEED and settings give the same files. " + SAMPLER_HELP
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_model_parameter(self, "64×64 interferogram PDM")
        self.addParameter(QgsProcessingParameterString("CLASS_LABEL", "Class (index or name; empty = all classes)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber("COUNT", "Number of samples", INTEGER, 8, minValue=0))
        add_sampler_parameters(self)
        self.addParameter(QgsProcessingParameterNumber("GUIDANCE_SCALE", "Guidance scale", DOUBLE, 1.0,
                                                       minValue=0.0, maxValue=20.0))
        self.addParameter(QgsProcessingParameterBoolean("RESCALE", "Rescale to physical units (radians)", True))
        self.addParameter(QgsProcessingParameterBoolean("WRAPPED", "Also write the wrapped phase (band 2)", False))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Place on extent", optional=True))
        self.addParameter(QgsProcessingParameterCrs("CRS", "CRS (default: the extent's)", optional=True))
        self.addParameter(QgsProcessingParameterNumber("PIXEL_SIZE", "Pixel size [map units]", DOUBLE,
                                                       optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterString("PREFIX", "File name prefix", "pdm"))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "Generated scenes"))
        self.addOutput(QgsProcessingOutputNumber("COUNT_WRITTEN", "Samples written"))

    def execute(self, parameters, context, progress):
        from ..core.diffusion.generate import generate, rescale_samples
        from ..core.diffusion.scene_files import check_wrapping, write_samples
        from ..core.errors import InsarMlError
        from ..core.progress import SubProgress

        count = self.parameterAsInt(parameters, "COUNT", context)
        if count < 1:
            raise InsarMlError(f"COUNT must be at least 1, not {count}: ask for one sample or more.")
        pdm, model_path = load_model(self, parameters, context, "interferograms")
        if pdm.is_super_resolution:
            raise InsarMlError(f"{model_path} is a super-resolution model; use 'Super-resolve (PDM)' for it, or "
                               "choose a generative PDM here.")
        label = self._class_label(parameters, context, pdm)
        sampling = sampler_settings(self, parameters, context)
        rescale = self.parameterAsBoolean(parameters, "RESCALE", context)
        wrapped = self.parameterAsBoolean(parameters, "WRAPPED", context)
        check_wrapping(rescale, wrapped)
        grid = self._grid(parameters, context, pdm.config.image_size)
        samples, labels = generate(pdm, count, class_label=label,
                                   guidance_scale=self.parameterAsDouble(parameters, "GUIDANCE_SCALE", context),
                                   progress=SubProgress(progress, 0, 95), **sampling)
        if rescale:
            samples = rescale_samples(pdm, samples, labels, sampling["seed"])
        record = {k: parameters.get(k) for k in ("CLASS_LABEL", "COUNT", "SAMPLER", "STEPS", "SEED",
                                                 "GUIDANCE_SCALE", "RESCALE", "WRAPPED")}
        paths = write_samples(self.parameterAsString(parameters, "OUTPUT_FOLDER", context), samples, labels,
                              pdm.classes, grid, rescaled=rescale, wrapped=wrapped, parameters=record,
                              model=str(model_path), prefix=self.parameterAsString(parameters, "PREFIX", context)
                              or "pdm", progress=SubProgress(progress, 95, 5))
        for path in paths:
            context.addLayerToLoadOnCompletion(str(path), QgsProcessingContext.LayerDetails(
                path.stem, context.project(), "OUTPUT_LAYERS"))
        return {"OUTPUT_FOLDER": str(paths[0].parent), "OUTPUT_LAYERS": [str(p) for p in paths],
                "COUNT_WRITTEN": len(paths)}

    def _class_label(self, parameters, context, pdm) -> int | None:
        from ..core.errors import InsarMlError

        text = (self.parameterAsString(parameters, "CLASS_LABEL", context) or "").strip()
        if not text:
            return None
        if pdm.classes and text in pdm.classes:
            return pdm.classes.index(text)
        try:
            return int(text)
        except ValueError:
            known = ", ".join(pdm.classes or []) or "none (unconditional model)"
            raise InsarMlError(f"CLASS_LABEL '{text}' is neither a class index nor a class name of this model "
                               f"(classes: {known}).") from None

    def _grid(self, parameters, context, size: int):
        from ..core.diffusion.scene_files import placement

        pixel = parameters.get("PIXEL_SIZE")
        pixel_size = self.parameterAsDouble(parameters, "PIXEL_SIZE", context) if pixel not in (None, "") else None
        extent, crs = None, ""
        if parameters.get("EXTENT") not in (None, ""):
            rect = self.parameterAsExtent(parameters, "EXTENT", context)
            extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            crs_obj = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            crs = crs_obj.toWkt() if crs_obj.isValid() else ""
        if parameters.get("CRS") not in (None, ""):
            chosen = self.parameterAsCrs(parameters, "CRS", context)
            crs = chosen.toWkt() if chosen.isValid() else crs
        return placement(size, size, extent=extent, pixel_size=pixel_size, crs_wkt=crs)
