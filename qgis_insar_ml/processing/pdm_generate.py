"""insarml:pdm_generate: sample a PDM into georeferenced GeoTIFF layers."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
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
        "0 = unconditional, > 1 = classifier-free guidance; empty = the scale the model's card recommends "
        "(3 for the shipped models, where samples show their class best; else 1). RESCALE maps the normalised samples to radians "
        "with (min, max) pairs drawn from the training set's coefficients (per class), as the paper does; "
        "WRAPPED adds the wrapped phase as band 2 (needs RESCALE). Placement: EXTENT (+ CRS) fills an extent, "
        "or with PIXEL_SIZE centres square pixels on it; PIXEL_SIZE alone gives pixels from (0, 0); none = "
        "the plain pixel grid. The same SEED and settings give the same files. SUPERRESOLVE (or a "
        "SUPERRESOLUTION_MODEL) makes it a cascade: each sample is then super-resolved 2× in the same run, as "
        "'Super-resolve (PDM)' does (in the sample's units, its 2×2 means equal the sample), with SR_STEPS steps "
        "(empty = STEPS) of the same sampler; SUPERRESOLUTION_MODEL empty = the shipped 64→128 interferogram "
        "model, so the shipped models give 128×128 interferograms. The placement is the base sample's: the "
        "super-resolved scenes cover the same extent with half its pixel size. LOW_RES_FOLDER (optional) also "
        "keeps the samples before super-resolution. " + SAMPLER_HELP
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_model_parameter(self, "64×64 interferogram PDM")
        self.addParameter(QgsProcessingParameterString("CLASS_LABEL", "Class (index or name; empty = all classes)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber("COUNT", "Number of samples", INTEGER, 8, minValue=0))
        add_sampler_parameters(self)
        self.addParameter(QgsProcessingParameterNumber("GUIDANCE_SCALE", "Guidance scale (empty = the model's "
                                                       "recommended scale)", DOUBLE, None, optional=True,
                                                       minValue=0.0, maxValue=20.0))
        self.addParameter(QgsProcessingParameterBoolean("SUPERRESOLVE", "Super-resolve each sample 2× (cascade)",
                                                        False))
        self.addParameter(QgsProcessingParameterFile(
            "SUPERRESOLUTION_MODEL", "Super-resolution PDM of the cascade (empty = shipped pdm_superres_2x)",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber("SR_STEPS", "Super-resolution sampling steps (empty = STEPS)",
                                                       INTEGER, optional=True, minValue=1, maxValue=4000))
        self.addParameter(QgsProcessingParameterBoolean("RESCALE", "Rescale to physical units (radians, or dB for SAR backscatter models)", True))
        self.addParameter(QgsProcessingParameterBoolean("WRAPPED", "Also write the wrapped phase (band 2)", False))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Place on extent", optional=True))
        self.addParameter(QgsProcessingParameterCrs("CRS", "CRS (default: the extent's)", optional=True))
        self.addParameter(QgsProcessingParameterNumber("PIXEL_SIZE", "Pixel size [map units]", DOUBLE,
                                                       optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterString("PREFIX", "File name prefix", "pdm"))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "LOW_RES_FOLDER", "Cascade: also write the samples before super-resolution to", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "Generated scenes"))
        self.addOutput(QgsProcessingOutputMultipleLayers("LOW_RES_LAYERS", "Samples before super-resolution"))
        self.addOutput(QgsProcessingOutputNumber("COUNT_WRITTEN", "Samples written"))

    def execute(self, parameters, context, progress):
        from ..core.diffusion.generate import check_cascade, generate, rescale_samples, superresolve_samples
        from ..core.diffusion.scene_files import check_wrapping, physical_units, superresolved_grid, write_samples
        from ..core.errors import InsarMlError
        from ..core.model_files import recommended_guidance
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
        physical = physical_units(pdm.card)
        check_wrapping(rescale, wrapped, physical)
        size = pdm.config.image_size
        grid = low_grid = self._grid(parameters, context, size)
        guidance = (recommended_guidance(pdm.card) if parameters.get("GUIDANCE_SCALE") in (None, "")
                    else self.parameterAsDouble(parameters, "GUIDANCE_SCALE", context))
        record = {k: parameters.get(k) for k in ("CLASS_LABEL", "COUNT", "SAMPLER", "STEPS", "SEED",
                                                 "RESCALE", "WRAPPED")} | {"GUIDANCE_SCALE": guidance}
        cascade = (self.parameterAsBoolean(parameters, "SUPERRESOLVE", context)
                   or bool(self.parameterAsFile(parameters, "SUPERRESOLUTION_MODEL", context)))
        base_share = 95.0
        if cascade:
            sr, sr_path = load_model(self, parameters, context, "superresolution", "SUPERRESOLUTION_MODEL")
            check_cascade(pdm, sr)
            sr_steps = (sampling["steps"] if parameters.get("SR_STEPS") in (None, "")
                        else self.parameterAsInt(parameters, "SR_STEPS", context))
            grid = superresolved_grid(low_grid)
            record.update(SUPERRESOLVE=True, SUPERRESOLUTION_MODEL=str(sr_path), SR_STEPS=sr_steps)
            # progress in proportion to the work: steps × pixels of each stage
            base_share *= sampling["steps"] / (sampling["steps"] + sr_steps * grid.pixels / low_grid.pixels)
        samples, labels = generate(pdm, count, class_label=label,
                                   guidance_scale=guidance,
                                   progress=SubProgress(progress, 0, base_share), **sampling)
        if rescale:
            samples = rescale_samples(pdm, samples, labels, sampling["seed"])
        low_samples = samples
        if cascade:
            samples = superresolve_samples(sr, low_samples, labels, **{**sampling, "steps": sr_steps},
                                           progress=SubProgress(progress, base_share, 95 - base_share))
        prefix = self.parameterAsString(parameters, "PREFIX", context) or "pdm"
        low_folder = self.parameterAsString(parameters, "LOW_RES_FOLDER", context) if cascade else ""
        paths = write_samples(self.parameterAsString(parameters, "OUTPUT_FOLDER", context), samples, labels,
                              pdm.classes, grid, rescaled=rescale, wrapped=wrapped, parameters=record,
                              model=str(model_path), prefix=prefix, physical=physical,
                              progress=SubProgress(progress, 95, 2.5 if low_folder else 5))
        low_paths = [] if not low_folder else write_samples(
            low_folder, low_samples, labels, pdm.classes, low_grid, rescaled=rescale, wrapped=wrapped,
            parameters={**record, "STAGE": "before super-resolution"}, model=str(model_path), prefix=prefix,
            physical=physical, progress=SubProgress(progress, 97.5, 2.5))
        for path in paths:
            context.addLayerToLoadOnCompletion(str(path), QgsProcessingContext.LayerDetails(
                path.stem, context.project(), "OUTPUT_LAYERS"))
        return {"OUTPUT_FOLDER": str(paths[0].parent), "OUTPUT_LAYERS": [str(p) for p in paths],
                "COUNT_WRITTEN": len(paths), "LOW_RES_FOLDER": low_folder or None,
                "LOW_RES_LAYERS": [str(p) for p in low_paths]}

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
