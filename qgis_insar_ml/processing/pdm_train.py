"""insarml:pdm_train: train a diffusion model on a built-in synthetic dataset or a raster folder."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.datasets.synthetic import DATASETS
from .base import InsarMlAlgorithm
from .compat import ADVANCED, DOUBLE, FOLDER, INTEGER

FOLDER_DATASET = "folder"
SCHEDULES = ["cosine", "linear"]


def parse_integers(text: str, name: str) -> tuple[int, ...]:
    """Parse "1,1,2,2" into (1, 1, 2, 2); shared with the training dialog so both read the fields alike."""
    from ..core.errors import InsarMlError

    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise InsarMlError(f"{name} must be comma-separated integers like 1,1,2,2, not '{text}'.") from None


class PdmTrainAlgorithm(InsarMlAlgorithm):
    needs_torch = True
    algorithm_id = "pdm_train"
    display_name = "Train PDM"
    group_name = "Generative models"
    help_text = (
        "Trains a probabilistic diffusion model (improved DDPM) on a built-in synthetic dataset "
        "('interferograms', 'deformation'; class = deformation source type; 'sar': Sentinel-1 wave-mode σ0 in "
        "the ten TenGeoP classes, learned in dB at 100 m from 50 m scenes of twice IMAGE_SIZE) or on a FOLDER "
        "of rasters (one subfolder per class, the TenGeoP-SARwv layout; crops of FOLDER_CROP px are downscaled to IMAGE_SIZE). "
        "Each scene is normalised to [−1, 1] and its (min, max) kept in the model card for rescaling. "
        "LEARN_SIGMA trains the variance with the hybrid loss (L_simple + 0.001·L_vlb) and loss-aware "
        "importance sampling of the timesteps; labels are dropped to a null class 10 % of the time for "
        "classifier-free guidance. EMA of the weights (the saved model), gradient clipping, bf16 autocast on "
        "GPU, warm-up + cosine learning rate, validation loss on a fixed held-out batch, checkpoints every "
        "CHECKPOINT_EVERY steps with the whole loss history; cancel saves a checkpoint and RESUME continues. "
        "SUPER_RESOLUTION trains a 2× model conditioned on IMAGE_SIZE/2 images (on CROP-pixel crops)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterEnum("DATASET", "Dataset", [*DATASETS, FOLDER_DATASET],
                                                     defaultValue=DATASETS[0], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFile("DATASET_FOLDER", "Raster folder (DATASET = folder)",
                                                     behavior=FOLDER, optional=True))
        self.add_advanced_int("FOLDER_CROP", "Folder: crop size before downscaling [px]", None, 8, 8192)
        for name, description, default, minimum in (("IMAGE_SIZE", "Image size [px]", 64, 8),
                                                    ("STEPS", "Training steps", 2000, 1),
                                                    ("BATCH_SIZE", "Batch size", 32, 1),
                                                    ("SEED", "Random seed", 0, 0)):
            self.addParameter(QgsProcessingParameterNumber(name, description, INTEGER, default, minValue=minimum))
        self.addParameter(QgsProcessingParameterNumber("LEARNING_RATE", "Learning rate (AdamW)", DOUBLE, 4e-4,
                                                       minValue=1e-7, maxValue=1.0))
        self.addParameter(QgsProcessingParameterBoolean("LEARN_SIGMA", "Learn the variance (hybrid loss)", True))
        self.addParameter(QgsProcessingParameterBoolean("CLASS_CONDITIONAL", "Class-conditional", True))
        self.addParameter(QgsProcessingParameterBoolean("SUPER_RESOLUTION", "2× super-resolution model", False))
        self.addParameter(QgsProcessingParameterBoolean(
            "DECIBELS", "Folder of SAR σ0 (linear): learn 10·log10 of the area averages (the built-in sar dataset "
            "always does)", False))
        self.add_advanced_int("CROP", "Super-resolution: training crop [px]", None, 8, 8192)
        self.add_advanced_int("DIFFUSION_STEPS", "Diffusion steps T", 1000, 10, 4000)
        schedule = QgsProcessingParameterEnum("NOISE_SCHEDULE", "Noise schedule", SCHEDULES,
                                              defaultValue="cosine", usesStaticStrings=True)
        channels = QgsProcessingParameterString("CHANNEL_MULT", "U-Net channel multipliers", "1,1,2,2")
        attention = QgsProcessingParameterString("ATTENTION", "Attention at downsample rates", "8", optional=True)
        for param in (schedule, channels, attention):
            param.setFlags(param.flags() | ADVANCED)
            self.addParameter(param)
        self.add_advanced_int("MODEL_CHANNELS", "U-Net base channels", 32, 8, 1024)
        self.add_advanced_int("RES_BLOCKS", "Residual blocks per level", 1, 1, 8)
        self.add_advanced_int("VALIDATE_EVERY", "Validate every N steps", 100, 1, 10**7)
        self.add_advanced_int("CHECKPOINT_EVERY", "Checkpoint every N steps", 200, 1, 10**7)
        self.addParameter(QgsProcessingParameterBoolean("RESUME", "Resume from the checkpoint", False))
        self.addParameter(QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N)", "auto"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_MODEL", "Model file",
                                                                "PDM model (*.safetensors)"))
        self.addOutput(QgsProcessingOutputFile("MODEL_CARD", "Model card (JSON)"))

    def execute(self, parameters, context, progress):
        from ..core.diffusion.training import PdmTrainSettings, train_pdm
        from ..core.errors import InsarMlError
        from ..core.model_files import card_path

        dataset = self.parameterAsEnumString(parameters, "DATASET", context)
        if dataset == FOLDER_DATASET:
            dataset = self.parameterAsFile(parameters, "DATASET_FOLDER", context)
            if not dataset:
                raise InsarMlError("DATASET is 'folder' but no DATASET_FOLDER was given: choose the folder of "
                                   "rasters (one subfolder per class).")
        integer = lambda name: self.parameterAsInt(parameters, name, context)  # noqa: E731
        settings = PdmTrainSettings(
            output=self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context), dataset=dataset,
            image_size=integer("IMAGE_SIZE"), super_resolution=self.parameterAsBoolean(parameters,
                                                                                     "SUPER_RESOLUTION", context),
            crop=self.optional_int(parameters, "CROP", context),
            folder_crop=self.optional_int(parameters, "FOLDER_CROP", context),
            decibels=self.parameterAsBoolean(parameters, "DECIBELS", context),
            class_conditional=self.parameterAsBoolean(parameters, "CLASS_CONDITIONAL", context),
            model_channels=integer("MODEL_CHANNELS"),
            channel_mult=parse_integers(self.parameterAsString(parameters, "CHANNEL_MULT", context), "CHANNEL_MULT"),
            num_res_blocks=integer("RES_BLOCKS"),
            attention_resolutions=parse_integers(self.parameterAsString(parameters, "ATTENTION", context) or "",
                                            "ATTENTION"),
            learn_sigma=self.parameterAsBoolean(parameters, "LEARN_SIGMA", context),
            diffusion_steps=integer("DIFFUSION_STEPS"),
            noise_schedule=self.parameterAsEnumString(parameters, "NOISE_SCHEDULE", context),
            steps=integer("STEPS"), batch_size=integer("BATCH_SIZE"),
            learning_rate=self.parameterAsDouble(parameters, "LEARNING_RATE", context), seed=integer("SEED"),
            validate_every=integer("VALIDATE_EVERY"), checkpoint_every=integer("CHECKPOINT_EVERY"),
            resume=self.parameterAsBoolean(parameters, "RESUME", context),
            device=self.parameterAsString(parameters, "DEVICE", context) or "auto")
        result = train_pdm(settings, progress, progress.info)
        return {"OUTPUT_MODEL": result.model, "MODEL_CARD": str(card_path(Path(result.model)))}
