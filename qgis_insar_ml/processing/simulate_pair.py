"""insarml:simulate_pair: the DeepInSAR simulator as a Processing algorithm."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.simulation_io import SIMULATION_OUTPUTS, simulate_pair_rasters
from ..core.simulator import FRINGE_AMPLITUDE, MAX_SIZE, NOISE_SIGMA
from .compat import INTEGER
from .base import InsarMlAlgorithm

NOISE_LEVELS = list(NOISE_SIGMA)
FRINGE_LEVELS = list(FRINGE_AMPLITUDE)


class SimulatePairAlgorithm(InsarMlAlgorithm):
    algorithm_id = "simulate_pair"
    display_name = "Simulate InSAR pair"
    group_name = "Simulation"
    help_text = (
        "Simulates a co-registered SLC pair as in the DeepInSAR paper (§4.1): Rayleigh amplitude ramping from "
        "0.1 (left) to 1.1 (right), ~150 Gaussian motion bubbles per 1000×1000 px, optional low-amplitude "
        "stripes, complex Gaussian noise. Noise S1/S2/S3: σ = 0.1/0.2/0.3 per real/imaginary component. "
        "Fringes F1/F2/F3: bubble amplitudes up to ±4/±20/±40 rad. Outputs smaller than 1000 px are crops of "
        "a paper-scale scene. Interferogram = reference · conj(secondary). True coherence = A²/(A²+2σ²). "
        "Deterministic for a given SEED."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        for name in ("WIDTH", "HEIGHT"):
            self.addParameter(QgsProcessingParameterNumber(
                name, f"{name.title()} [px]", INTEGER, 1000, minValue=16, maxValue=MAX_SIZE))
        self.addParameter(QgsProcessingParameterEnum("NOISE_LEVEL", "Noise level", NOISE_LEVELS,
                                                     defaultValue="S2", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum("FRINGE_LEVEL", "Fringe level", FRINGE_LEVELS,
                                                     defaultValue="F2", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterBoolean("STRIPS", "Low-amplitude stripes", True))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER,
                                                       0, minValue=0))
        for name, (description, _, _) in SIMULATION_OUTPUTS.items():
            self.addParameter(QgsProcessingParameterRasterDestination(
                name, description[0].upper() + description[1:], optional=True, createByDefault=True))

    def execute(self, parameters, context, progress):
        destinations = {name: self.parameterAsOutputLayer(parameters, name, context) for name in SIMULATION_OUTPUTS}
        return simulate_pair_rasters(
            self.parameterAsInt(parameters, "WIDTH", context),
            self.parameterAsInt(parameters, "HEIGHT", context),
            self.parameterAsEnumString(parameters, "NOISE_LEVEL", context),
            self.parameterAsEnumString(parameters, "FRINGE_LEVEL", context),
            self.parameterAsBoolean(parameters, "STRIPS", context),
            self.parameterAsInt(parameters, "SEED", context),
            destinations, progress)
