"""Parameters that the PDM algorithms share: model file and sampler settings."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.diffusion.names import SAMPLER_NAMES, SKIP_TYPES
from .base import InsarMlAlgorithm
from .compat import ADVANCED, DOUBLE, INTEGER

SAMPLER_HELP = (
    "Samplers: 'ancestral' (DDPM, respaced to STEPS), 'ddim' (deterministic at ETA 0), 'dpm_solver++' "
    "(multistep, DPM_ORDER 1–3, DPM_SKIP time_uniform/logSNR/time_quadratic; ETA 1 by default = "
    "SDE-DPM-Solver++, ETA 0 = the ODE solver) and 'heun' (probability-flow ODE, 2 network calls per step). "
    "All honour the model's own schedule and length and feed the network the continuous time."
)


def add_model_parameter(algorithm: InsarMlAlgorithm, shipped: str) -> None:
    # No extension filter: QGIS 3.22 validates it and would refuse reference *.pt checkpoints.
    algorithm.addParameter(QgsProcessingParameterFile(
        "MODEL", f"PDM model (.safetensors, or reference model*.pt / ema_*.pt; empty = shipped {shipped})",
        optional=True))


def add_sampler_parameters(algorithm: InsarMlAlgorithm, default_steps: int = 20) -> None:
    algorithm.addParameter(QgsProcessingParameterEnum("SAMPLER", "Sampler", list(SAMPLER_NAMES),
                                                      defaultValue="dpm_solver++", usesStaticStrings=True))
    algorithm.addParameter(QgsProcessingParameterNumber("STEPS", "Sampling steps", INTEGER, default_steps,
                                                        minValue=1, maxValue=4000))
    algorithm.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0, minValue=0))
    order = QgsProcessingParameterNumber("DPM_ORDER", "DPM-Solver++ order", INTEGER, 2, minValue=1, maxValue=3)
    skip = QgsProcessingParameterEnum("DPM_SKIP", "DPM-Solver++ time grid", list(SKIP_TYPES),
                                      defaultValue="logSNR", usesStaticStrings=True)
    eta = QgsProcessingParameterNumber("ETA", "Stochasticity eta of DDIM / DPM-Solver++ (empty = 0 for DDIM, "
                                       "1 for DPM-Solver++ orders 1-2)", DOUBLE, optional=True, minValue=0.0)
    device = QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N)", "auto")
    for param in (order, skip, eta, device):
        param.setFlags(param.flags() | ADVANCED)
        algorithm.addParameter(param)


def sampler_settings(algorithm: InsarMlAlgorithm, parameters: dict, context: QgsProcessingContext) -> dict:
    """sampler, steps, seed and the sampler's options, as :func:`generate` takes them."""
    from ..core.diffusion.generate import sampler_options

    sampler = algorithm.parameterAsEnumString(parameters, "SAMPLER", context)
    return {"sampler": sampler, "steps": algorithm.parameterAsInt(parameters, "STEPS", context),
            "seed": algorithm.parameterAsInt(parameters, "SEED", context),
            "options": sampler_options(sampler, algorithm.parameterAsInt(parameters, "DPM_ORDER", context),
                                       algorithm.parameterAsEnumString(parameters, "DPM_SKIP", context),
                                       None if parameters.get("ETA") in (None, "")
                                       else algorithm.parameterAsDouble(parameters, "ETA", context))}


def load_model(algorithm: InsarMlAlgorithm, parameters: dict, context: QgsProcessingContext, shipped: str,
               name: str = "MODEL"):
    """The PDM that parameter ``name`` chooses (empty: the shipped one of that kind), on the chosen device."""
    from ..core.diffusion.pdm_file import load_pdm
    from ..core.diffusion.scene_files import shipped_pdm
    from ..core.torch_runtime import pick_device

    path = algorithm.parameterAsFile(parameters, name, context) or str(shipped_pdm(shipped))
    device = pick_device(algorithm.parameterAsString(parameters, "DEVICE", context) or "auto")
    return load_pdm(path, device), path
