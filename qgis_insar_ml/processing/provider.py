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
from .simulate_pair import SimulatePairAlgorithm

ALGORITHMS = (SimulatePairAlgorithm, FilterBoxcarAlgorithm, FilterGoldsteinAlgorithm, EvaluateFilterAlgorithm,
              DeepInsarFilterAlgorithm, DeepInsarTrainAlgorithm)


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
