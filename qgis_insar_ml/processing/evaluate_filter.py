"""insarml:evaluate_filter: score a filtered phase (and coherence) against a reference."""
from __future__ import annotations

from qgis.core import QgsProcessingOutputNumber, QgsProcessingParameterFileDestination

from ..core.evaluation import METRIC_NAMES, evaluate_rasters, write_report
from .base import InsarMlAlgorithm

INPUTS = {
    "ESTIMATED_PHASE": ("Estimated (filtered) phase or interferogram", False),
    "REFERENCE_PHASE": ("Reference phase (ground truth or trusted product)", True),
    "ESTIMATED_COHERENCE": ("Estimated coherence", True),
    "REFERENCE_COHERENCE": ("Reference coherence", True),
}


class EvaluateFilterAlgorithm(InsarMlAlgorithm):
    algorithm_id = "evaluate_filter"
    display_name = "Evaluate filter result"
    group_name = "Evaluation"
    help_text = (
        "Scores a filtered phase against a reference: phase RMSE [rad] on the wrapped difference "
        "angle(exp(i(est − ref))), mean phase SSIM (the estimate aligned to the reference so the ±π cut is "
        "harmless), and coherence RMSE when both coherences are given. Without a reference it still reports the "
        "residue count and density (phase residues around every 2×2 loop), the no-reference measure for real "
        "data. Writes a JSON report (or HTML when the file name ends in .html) and returns every metric as a "
        "number that models can chain."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        for name, (description, optional) in INPUTS.items():
            self.add_raster_input(name, description, optional)
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_REPORT", "Report", "JSON (*.json);;HTML (*.html)", optional=True))
        for name in METRIC_NAMES:
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").capitalize()))

    def execute(self, parameters, context, progress):
        paths = {name: self.raster_path(parameters, name, context) for name in INPUTS}
        metrics = evaluate_rasters(*paths.values(), progress=progress)
        for name, value in metrics.items():
            if value is not None:
                progress.info(f"{name}: {value:.6g}")
        result = dict(metrics)
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context)
        if report:
            result["OUTPUT_REPORT"] = write_report(metrics, paths, report)
        return result
