"""insarml:deepinsar_train: train a DeepInSAR model on the simulator or on teacher rasters."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import InsarMlAlgorithm
from .compat import DOUBLE, INTEGER
from .inputs import add_interferogram_inputs, interferogram_arguments

INPUT_KINDS = ["phase+amplitudes", "phase"]


class DeepInsarTrainAlgorithm(InsarMlAlgorithm):
    needs_torch = True
    algorithm_id = "deepinsar_train"
    display_name = "Train DeepInSAR"
    group_name = "Deep learning"
    help_text = (
        "Trains a DeepInSAR model. Without REFERENCE_PHASE it learns from the built-in simulator: 128×128 patches "
        "generated on the fly from all 18 configurations (S1–S3 × F1–F3 × stripes or not), with a fixed, "
        "disjoint validation set. With REFERENCE_PHASE and REFERENCE_COHERENCE it is the paper's teacher–student "
        "mode for real data: the inputs (SLC pair, or interferogram with amplitudes) learn to reproduce a trusted "
        "filtered phase and coherence (thresholded at 0.5 when BINARIZE_COHERENCE), no-data excluded. Adam with "
        "warm-up and cosine decay, checkpoints every CHECKPOINT_EVERY steps, early stopping on the validation loss; "
        "RESUME continues from the checkpoint with its loss history. Cancel saves a checkpoint. Returns the model "
        "path, so models can chain train → filter."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_interferogram_inputs(self, slcs=True)
        self.add_raster_input("REFERENCE_PHASE", "Teacher: reference (trusted filtered) phase")
        self.add_raster_input("REFERENCE_COHERENCE", "Teacher: reference coherence")
        self.addParameter(QgsProcessingParameterEnum("INPUT_KIND", "Model input", INPUT_KINDS,
                                                     defaultValue=INPUT_KINDS[0], usesStaticStrings=True))
        for name, description, default, minimum in (("STEPS", "Training steps", 2000, 1),
                                                    ("BATCH_SIZE", "Batch size", 16, 1),
                                                    ("PATCH_SIZE", "Patch size [px]", 128, 32),
                                                    ("SEED", "Random seed", 0, 0)):
            self.addParameter(QgsProcessingParameterNumber(name, description, INTEGER, default, minValue=minimum))
        self.addParameter(QgsProcessingParameterNumber("LEARNING_RATE", "Learning rate (Adam)", DOUBLE, 1e-3,
                                                       minValue=1e-7, maxValue=1.0))
        self.add_advanced_int("VALIDATE_EVERY", "Validate every N steps", 100, 1, 10**7)
        self.add_advanced_int("CHECKPOINT_EVERY", "Checkpoint every N steps", 200, 1, 10**7)
        self.add_advanced_int("PATIENCE", "Early stopping: validation rounds without improvement", 10, 1, 10**6)
        self.addParameter(QgsProcessingParameterBoolean("BINARIZE_COHERENCE",
                                                        "Teacher: threshold the reference coherence at 0.5", True))
        self.addParameter(QgsProcessingParameterBoolean("RESUME", "Resume from the checkpoint", False))
        self.addParameter(QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N)", "auto"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_MODEL", "Model file",
                                                                "DeepInSAR model (*.safetensors)"))
        self.addOutput(QgsProcessingOutputFile("MODEL_CARD", "Model card (JSON)"))

    def execute(self, parameters, context, progress):
        from ..core.model_files import card_path
        from ..core.deepinsar.training import TrainSettings, train_deepinsar

        teacher = None
        if parameters.get("REFERENCE_PHASE"):
            teacher = interferogram_arguments(self, parameters, context) | {
                name.lower(): self.raster_path(parameters, name, context)
                for name in ("REFERENCE_PHASE", "REFERENCE_COHERENCE")}
        integer = lambda name: self.parameterAsInt(parameters, name, context)  # noqa: E731
        settings = TrainSettings(
            output=self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context),
            in_channels=4 if self.parameterAsEnumString(parameters, "INPUT_KIND", context) == INPUT_KINDS[0] else 2,
            steps=integer("STEPS"), batch_size=integer("BATCH_SIZE"), patch_size=integer("PATCH_SIZE"),
            learning_rate=self.parameterAsDouble(parameters, "LEARNING_RATE", context), seed=integer("SEED"),
            validate_every=integer("VALIDATE_EVERY"), checkpoint_every=integer("CHECKPOINT_EVERY"),
            patience=integer("PATIENCE"), resume=self.parameterAsBoolean(parameters, "RESUME", context),
            device=self.parameterAsString(parameters, "DEVICE", context) or "auto", teacher=teacher,
            binarize_coherence=self.parameterAsBoolean(parameters, "BINARIZE_COHERENCE", context))
        result = train_deepinsar(settings, progress, progress.info)
        return {"OUTPUT_MODEL": result.model, "MODEL_CARD": str(card_path(Path(result.model)))}
