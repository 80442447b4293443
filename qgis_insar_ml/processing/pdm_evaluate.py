"""insarml:pdm_evaluate: compare generated scenes with real ones (semivariograms, FID, P/R)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from .base import InsarMlAlgorithm
from .compat import FOLDER, INTEGER


class PdmEvaluateAlgorithm(InsarMlAlgorithm):
    needs_torch = True
    algorithm_id = "pdm_evaluate"
    display_name = "Evaluate generated scenes"
    group_name = "Generative models"
    help_text = (
        "Compares a folder of generated scenes with a folder of real ones (band 1 of each GeoTIFF; class "
        "subfolders allowed; the same scene size in both). Writes a JSON report and a PNG plot: isotropic "
        "semivariograms (FFT-based) with the real set's 95 % band, the log-ratio distance of the mean curves and "
        "the share of generated values inside the band; radial power spectra; value histograms; and FID with "
        "improved precision/recall (k = 3) in the feature space of an encoder trained here on the real scenes "
        "(a classifier when they have classes, else an autoencoder) or given as ENCODER. Nothing is downloaded. "
        "NORMALISE scales every scene to [−1, 1] first, comparing structure rather than ranges. When both folders "
        "are labelled (class subfolders, or the class that Generate scenes writes into each file) the report adds "
        "the class fidelity: the share of generated scenes of each class that a classifier trained on the real "
        "scenes recognises as that class, its mean over the classes and the confusion matrix, with the "
        "classifier's accuracy on held-out real scenes as the ceiling. The classifier is trained on every other "
        "real scene, or given as CLASSIFIER (e.g. the one benchmarks/pdm_class_fidelity.py caches)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("REAL_FOLDER", "Real scenes (folder)", behavior=FOLDER))
        self.addParameter(QgsProcessingParameterFile("GENERATED_FOLDER", "Generated scenes (folder)",
                                                     behavior=FOLDER))
        self.addParameter(QgsProcessingParameterBoolean("NORMALISE", "Normalise each scene to [-1, 1]", True))
        self.addParameter(QgsProcessingParameterFile("ENCODER", "Feature encoder (.safetensors; empty = train one)",
                                                     optional=True))
        self.add_advanced_int("ENCODER_STEPS", "Encoder training steps", 300, 1, 10**6)
        self.addParameter(QgsProcessingParameterFile("CLASSIFIER", "Scene classifier (.safetensors; empty = train "
                                                     "one when the folders are labelled)", optional=True))
        self.add_advanced_int("CLASSIFIER_STEPS", "Classifier training steps", 300, 1, 10**6)
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_JSON", "Report (JSON)", "JSON (*.json)"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_PNG", "Plot (PNG)", "PNG (*.png)",
                                                                optional=True))
        for name, description in (("SEMIVARIOGRAM_DISTANCE", "Semivariogram distance (log-ratio RMS)"),
                                  ("FRACTION_INSIDE_BAND", "Share of generated semivariogram values in the band"),
                                  ("FID", "FID (own encoder)"), ("PRECISION", "Precision (k=3)"),
                                  ("RECALL", "Recall (k=3)"),
                                  ("CLASS_ACCURACY", "Class fidelity: mean per-class accuracy (labelled folders)"),
                                  ("CLASS_ACCURACY_MIN", "Class fidelity: lowest per-class accuracy")):
            self.addOutput(QgsProcessingOutputNumber(name, description))

    def execute(self, parameters, context, progress):
        from ..core.diffusion.evaluation_files import evaluate_folders

        png = self.parameterAsFileOutput(parameters, "OUTPUT_PNG", context) or None
        output_json = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context)
        result = evaluate_folders(
            self.parameterAsFile(parameters, "REAL_FOLDER", context),
            self.parameterAsFile(parameters, "GENERATED_FOLDER", context), output_json, png,
            normalise=self.parameterAsBoolean(parameters, "NORMALISE", context),
            encoder=self.parameterAsFile(parameters, "ENCODER", context) or None,
            encoder_steps=self.parameterAsInt(parameters, "ENCODER_STEPS", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            classifier=self.parameterAsFile(parameters, "CLASSIFIER", context) or None,
            classifier_steps=self.parameterAsInt(parameters, "CLASSIFIER_STEPS", context), progress=progress)
        semivariogram = result["channels"][0]["semivariogram"]
        features = result["features"] or {}
        fidelity = result["class_fidelity"] or {}
        return {"OUTPUT_JSON": output_json, "OUTPUT_PNG": png,
                "SEMIVARIOGRAM_DISTANCE": semivariogram["distance"],
                "FRACTION_INSIDE_BAND": semivariogram["fraction_inside_band"],
                "FID": features.get("fid"), "PRECISION": features.get("precision"), "RECALL": features.get("recall"),
                "CLASS_ACCURACY": fidelity.get("mean_accuracy"), "CLASS_ACCURACY_MIN": fidelity.get("min_accuracy")}
