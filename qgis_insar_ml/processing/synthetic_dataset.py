"""insarml:synthetic_dataset: write a built-in synthetic InSAR or SAR dataset to a folder of GeoTIFFs."""
from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..core.datasets.synthetic import DATASETS, SOURCE_TYPES, write_synthetic_dataset
from .base import InsarMlAlgorithm
from .compat import INTEGER


class SyntheticDatasetAlgorithm(InsarMlAlgorithm):
    algorithm_id = "synthetic_dataset"
    display_name = "Synthetic InSAR / SAR dataset"
    group_name = "Simulation"
    help_text = (
        "Writes COUNT samples of a built-in synthetic dataset as GeoTIFFs in class subfolders "
        f"(<folder>/<class>/<index>.tif; classes = deformation source types: {', '.join(SOURCE_TYPES)}), in equal "
        "proportions. 'interferograms': unwrapped interferograms (a source + turbulent atmosphere with a power-law "
        "spectrum + delay stratified on a fractal DEM + orbital ramp). 'deformation': noisy ground-deformation "
        "scenes (source + atmosphere + decorrelation noise). Band 1 is the unwrapped phase [rad]; with WRAPPED, "
        "band 2 is its wrapped phase, giving training pairs for unwrapping networks. 'sar': Sentinel-1 wave-mode "
        "backscatter in the ten TenGeoP-SARwv classes (subfolders F_pure_ocean_waves ... O_oceanic_front; SIZE at "
        "least 32): wind → σ0 by CMOD5.N at 23° or 36.5° incidence, swell and wind sea imaged through the SAR "
        "transfer function (tilt, hydrodynamic, velocity bunching, azimuth cut-off), each class's signature, the "
        "noise floor and speckle; band 1 is σ0 (linear), 50 m pixels. Sample i is a pure function "
        "of (SEED, i): the same settings always give the same files. This is the layout the PDM training and "
        "evaluation read, so the folder is also a ready-made real reference set."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterEnum("DATASET", "Dataset", list(DATASETS),
                                                     defaultValue=DATASETS[0], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber("SIZE", "Scene size [px]", INTEGER, 64, minValue=16,
                                                       maxValue=4096))
        self.addParameter(QgsProcessingParameterNumber("COUNT", "Number of samples", INTEGER, 100, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterBoolean("WRAPPED", "Also write the wrapped phase (band 2)", False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputString("COUNTS", "Samples per class (JSON)"))

    def execute(self, parameters, context, progress):
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        counts = write_synthetic_dataset(
            self.parameterAsEnumString(parameters, "DATASET", context), folder,
            self.parameterAsInt(parameters, "SIZE", context), self.parameterAsInt(parameters, "COUNT", context),
            self.parameterAsInt(parameters, "SEED", context),
            self.parameterAsBoolean(parameters, "WRAPPED", context), progress)
        return {"OUTPUT_FOLDER": folder, "COUNTS": json.dumps(counts)}
