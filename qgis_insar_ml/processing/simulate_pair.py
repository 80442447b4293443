"""insarml:simulate_pair: the DeepInSAR simulator and the realistic one as a Processing algorithm."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.realistic_simulator import parse_looks
from ..core.simulation_io import NOISE_MODELS, SIMULATION_OUTPUTS, SLC_OUTPUTS, simulate_pair_rasters
from ..core.simulator import FRINGE_AMPLITUDE, MAX_SIZE, NOISE_SIGMA
from .compat import DOUBLE, INTEGER
from .base import InsarMlAlgorithm

NOISE_LEVELS = list(NOISE_SIGMA)
FRINGE_LEVELS = list(FRINGE_AMPLITUDE)
# Outputs that existed before the amplitudes stay created by default; the amplitudes are opt-in.
_CREATED_BY_DEFAULT = (*SLC_OUTPUTS, "OUTPUT_INTERFEROGRAM", "OUTPUT_CLEAN_PHASE", "OUTPUT_COHERENCE")


class SimulatePairAlgorithm(InsarMlAlgorithm):
    algorithm_id = "simulate_pair"
    display_name = "Simulate InSAR pair"
    group_name = "Simulation"
    help_text = (
        "Simulates a co-registered pair with its ground truth (clean phase, true coherence). "
        "Interferogram = reference · conj(secondary). Deterministic for a given SEED.\n\n"
        "NOISE_MODEL paper (default): as in the DeepInSAR paper (§4.1): Rayleigh amplitude ramping from "
        "0.1 (left) to 1.1 (right), ~150 Gaussian motion bubbles per 1000×1000 px, optional low-amplitude "
        "stripes, complex Gaussian noise. Noise S1/S2/S3: σ = 0.1/0.2/0.3 per real/imaginary component. "
        "Fringes F1/F2/F3: bubble amplitudes up to ±4/±20/±40 rad. Outputs smaller than 1000 px are crops of "
        "a paper-scale scene. True coherence = A²/(A²+2σ²). LOOKS and FRINGE_SCALE are not used.\n\n"
        "NOISE_MODEL realistic: the statistics of real data. Circular Gaussian speckle over a gamma-textured "
        "reflectivity with bright point targets; a coherence map independent of brightness (smooth variation "
        "plus water: dark, γ≈0; vegetation: low γ; layover: bright, low γ); a mix of Gaussian bubbles, "
        "Mogi/Okada deformation, turbulent and topography-correlated atmosphere, orbital and flat-earth ramps "
        "and surface ruptures (phase steps); no-data holes, NaN in every output. LOOKS (rows x columns, e.g. "
        "1x1, 4x1, 20x4) averages that many looks into each output pixel, including the decorrelation of "
        "fringes inside the window: WIDTH × HEIGHT is the multilooked grid, at most 4096 px. With more than "
        "one look there are no single-look SLCs: leave the SLC outputs empty and use the multilooked "
        "amplitude outputs. FRINGE_SCALE multiplies every phase signal (1: natural size). The noise level, "
        "fringe level and stripes are not used."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        for name in ("WIDTH", "HEIGHT"):
            self.addParameter(QgsProcessingParameterNumber(
                name, f"{name.title()} [px]", INTEGER, 1000, minValue=16, maxValue=MAX_SIZE))
        self.addParameter(QgsProcessingParameterEnum("NOISE_MODEL", "Noise model", list(NOISE_MODELS),
                                                     defaultValue="paper", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum("NOISE_LEVEL", "Noise level (paper model)", NOISE_LEVELS,
                                                     defaultValue="S2", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum("FRINGE_LEVEL", "Fringe level (paper model)", FRINGE_LEVELS,
                                                     defaultValue="F2", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterBoolean("STRIPS", "Low-amplitude stripes (paper model)", True))
        self.addParameter(QgsProcessingParameterString(
            "LOOKS", "Looks, rows x columns (realistic model), e.g. 1x1, 4x1, 20x4", "1x1"))
        self.addParameter(QgsProcessingParameterNumber(
            "FRINGE_SCALE", "Fringe scale (realistic model)", DOUBLE, 1.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER,
                                                       0, minValue=0))
        for name, (description, _) in SIMULATION_OUTPUTS.items():
            self.addParameter(QgsProcessingParameterRasterDestination(
                name, description[0].upper() + description[1:], optional=True,
                createByDefault=name in _CREATED_BY_DEFAULT))

    def execute(self, parameters, context, progress):
        destinations = {name: self.parameterAsOutputLayer(parameters, name, context) for name in SIMULATION_OUTPUTS}
        return simulate_pair_rasters(
            self.parameterAsInt(parameters, "WIDTH", context),
            self.parameterAsInt(parameters, "HEIGHT", context),
            self.parameterAsEnumString(parameters, "NOISE_LEVEL", context),
            self.parameterAsEnumString(parameters, "FRINGE_LEVEL", context),
            self.parameterAsBoolean(parameters, "STRIPS", context),
            self.parameterAsInt(parameters, "SEED", context),
            destinations, progress,
            noise_model=self.parameterAsEnumString(parameters, "NOISE_MODEL", context),
            looks=parse_looks(self.parameterAsString(parameters, "LOOKS", context)),
            fringe_scale=self.parameterAsDouble(parameters, "FRINGE_SCALE", context))
