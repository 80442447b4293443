"""The ``insarml`` Processing provider."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..paths import icon_path
from .deepinsar_filter import DeepInsarFilterAlgorithm
from .deepinsar_train import DeepInsarTrainAlgorithm
from .evaluate_filter import EvaluateFilterAlgorithm
from .filter_boxcar import FilterBoxcarAlgorithm
from .filter_goldstein import FilterGoldsteinAlgorithm
from .filter_stack import FilterStackAlgorithm
from .pdm_evaluate import PdmEvaluateAlgorithm
from .pdm_generate import PdmGenerateAlgorithm
from .pdm_superresolve import PdmSuperresolveAlgorithm
from .pdm_train import PdmTrainAlgorithm
from .simulate_pair import SimulatePairAlgorithm
from .synthetic_dataset import SyntheticDatasetAlgorithm

ALGORITHMS = (SimulatePairAlgorithm, FilterBoxcarAlgorithm, FilterGoldsteinAlgorithm, EvaluateFilterAlgorithm,
              DeepInsarFilterAlgorithm, DeepInsarTrainAlgorithm, SyntheticDatasetAlgorithm, PdmTrainAlgorithm,
              PdmGenerateAlgorithm, PdmSuperresolveAlgorithm, PdmEvaluateAlgorithm, FilterStackAlgorithm)


class InsarMlProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "insarml"

    def name(self) -> str:
        return "InSAR ML"

    def longName(self) -> str:  # noqa: N802
        return "InSAR ML: radar interferometry filtering, simulation and deep learning"

    def icon(self) -> QIcon:
        return QIcon(icon_path("insarml.svg"))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]
