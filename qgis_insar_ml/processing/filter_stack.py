"""insarml:filter_stack: DeepInSAR, Boxcar or Goldstein on every pair of a stack, resumably."""
from __future__ import annotations

from qgis.core import (
    QgsMessageLog,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.errors import Cancelled, InsarMlError
from ..core.stack import METHODS, StackFilter, filter_stack
from ..dependencies import require_torch
from .base import InsarMlAlgorithm
from .compat import DOUBLE, FILE_SOURCE, FOLDER, INTEGER, WARNING

METHOD_NAMES = {"deepinsar": "DeepInSAR", "boxcar": "Boxcar", "goldstein": "Goldstein"}


class FilterStackAlgorithm(InsarMlAlgorithm):
    algorithm_id = "filter_stack"
    display_name = "Filter a stack of interferograms"
    group_name = "Stacks"
    help_text = (
        "Filters every pair of a stack with DeepInSAR, Boxcar or Goldstein (the same code as the single-pair "
        "algorithms). INPUT_FOLDER: a LiCSAR frame, a HyP3 folder or a folder of interferogram rasters; "
        "INPUT_FILES: rasters, HyP3 folders or a MintPy ifgramStack.h5. Each pair gets <stem>.tif (filtered phase) "
        "and <stem>.coherence.tif, beside its input or under OUTPUT_FOLDER with the same folder layout; for a "
        "MintPy stack they are also assembled into ifgramStack_insarml.h5. Resumable: complete outputs made with "
        "the same settings are skipped, so a cancelled run continues where it stopped. A pair that fails does not "
        "stop the others: it is listed with its error in the log and in insarml_filter_report.json. WORKERS: "
        "pairs filtered in parallel by local Dask worker processes (empty = one per core; DeepInSAR: one per "
        "GPU, or QGIS's process on the CPU; 0 or 1 = one after another in QGIS's process, without Dask). LOOKS: "
        "the pairs' number of looks (e.g. 20x4 for LiCSAR), for DeepInSAR's coherence of phase-only pairs."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("INPUT_FOLDER", "Input folder (LiCSAR frame, HyP3, rasters)",
                                                     behavior=FOLDER, optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT_FILES", "Input files (rasters, HyP3 folders, MintPy ifgramStack.h5)", FILE_SOURCE, optional=True))
        self.addParameter(QgsProcessingParameterEnum("METHOD", "Method", [METHOD_NAMES[m] for m in METHODS],
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("WINDOW", "Boxcar window [px, odd]", INTEGER, 5,
                                                       minValue=3, maxValue=101))
        self.addParameter(QgsProcessingParameterNumber("ALPHA", "Goldstein alpha (filter strength, 0–1)", DOUBLE,
                                                       0.5, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber("PATCH_SIZE", "Goldstein patch size [px, power of two]",
                                                       INTEGER, 32, minValue=8, maxValue=256))
        self.addParameter(QgsProcessingParameterFile("MODEL", "DeepInSAR model (.safetensors; empty = shipped model)",
                                                     optional=True))
        self.addParameter(QgsProcessingParameterString("DEVICE", "DeepInSAR device (auto, cpu, cuda, cuda:N)", "auto"))
        self.add_advanced_int("COHERENCE_WINDOW", "Coherence window [px, odd] (empty = Goldstein 5, DeepInSAR 9; "
                                                  "0 = DeepInSAR's network head)", None, 0, 101)
        self.add_looks_parameter()
        self.add_tiling_parameters(None)
        self.add_advanced_int("WORKERS", "Parallel workers (empty = one per core or GPU; 0 or 1 = in QGIS)",
                              None, 0, 1024)
        self.addParameter(QgsProcessingParameterFolderDestination(
            "OUTPUT_FOLDER", "Output folder (empty = beside the inputs)", optional=True, createByDefault=False))
        for name, description in (("FILTERED", "Pairs filtered"), ("SKIPPED", "Pairs complete already"),
                                  ("FAILED", "Pairs that failed")):
            self.addOutput(QgsProcessingOutputNumber(name, description))
        self.addOutput(QgsProcessingOutputFile("REPORT", "Report (JSON)"))

    def execute(self, parameters, context, progress):
        inputs = [path for path in [self.parameterAsFile(parameters, "INPUT_FOLDER", context),
                                    *self.parameterAsFileList(parameters, "INPUT_FILES", context)] if path]
        if not inputs:
            raise InsarMlError("No input: give INPUT_FOLDER (a LiCSAR frame, a HyP3 folder or a folder of "
                               "interferograms) or INPUT_FILES (rasters or a MintPy ifgramStack.h5).")
        method = METHODS[self.parameterAsEnum(parameters, "METHOD", context)]
        if method == "deepinsar":
            require_torch()
        tile_size, overlap = self.tiling(parameters, context)
        stack_filter = StackFilter(
            method, self.parameterAsInt(parameters, "WINDOW", context),
            self.parameterAsDouble(parameters, "ALPHA", context),
            self.parameterAsInt(parameters, "PATCH_SIZE", context),
            self.optional_int(parameters, "COHERENCE_WINDOW", context),
            self.parameterAsFile(parameters, "MODEL", context) or None,
            self.parameterAsString(parameters, "DEVICE", context) or "auto", tile_size, overlap,
            self.looks(parameters, context))
        output_folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context) or None
        try:
            result = filter_stack(inputs, stack_filter, output_folder,
                                  self.optional_int(parameters, "WORKERS", context), progress=progress)
        except Cancelled as exc:  # complete pairs are kept: not the single-output "nothing was written"
            raise InsarMlError(str(exc)) from None
        for failure in result.failures:
            progress.info(f"FAILED {failure.pair}: {failure.error}")
        if result.failures:
            QgsMessageLog.logMessage(
                f"filter_stack: {len(result.failures)} of {len(result.results)} pairs failed "
                f"({', '.join(f.pair for f in result.failures)}); see {result.report}", "InSAR ML", WARNING)
        return {"FILTERED": result.count("filtered"), "SKIPPED": result.count("skipped"),
                "FAILED": result.count("failed"), "REPORT": str(result.report)}
