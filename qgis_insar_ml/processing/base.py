"""What every insarml algorithm shares: naming, help, progress and error reporting."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from ..core.errors import Cancelled, InsarMlError
from ..dependencies import require_torch
from ..paths import icon_path
from .compat import ADVANCED, INTEGER


class FeedbackProgress:
    """Adapts a QgsProcessingFeedback to the core's Progress protocol."""

    def __init__(self, feedback: QgsProcessingFeedback | None):
        self._feedback = feedback

    def set_progress(self, percent: float) -> None:
        if self._feedback is not None:
            self._feedback.setProgress(percent)

    def is_cancelled(self) -> bool:
        return self._feedback is not None and self._feedback.isCanceled()

    def info(self, message: str) -> None:
        if self._feedback is not None:
            self._feedback.pushInfo(message)


class InsarMlAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set the class attributes and implement :meth:`execute`."""

    needs_torch = False
    algorithm_id = ""
    display_name = ""
    group_name = ""
    help_text = ""

    def createInstance(self):  # noqa: N802
        return type(self)()

    def name(self) -> str:
        return self.algorithm_id

    def displayName(self) -> str:  # noqa: N802
        return self.display_name

    def group(self) -> str:
        return self.group_name

    def groupId(self) -> str:  # noqa: N802
        return self.group_name.lower().replace(" ", "_")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.help_text

    def icon(self) -> QIcon:
        return QIcon(icon_path("insarml.svg"))

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        try:
            if self.needs_torch:
                require_torch()
            return self.execute(parameters, context, FeedbackProgress(feedback))
        except InsarMlError as exc:
            raise QgsProcessingException(str(exc)) from None
        except Cancelled as exc:
            raise QgsProcessingException(f"{exc} No output was written.") from None

    def execute(self, parameters: dict, context: QgsProcessingContext, progress: FeedbackProgress) -> dict[str, Any]:
        raise NotImplementedError

    # Parameter helpers shared by the algorithms.
    def add_raster_input(self, name: str, description: str, optional: bool = True) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(name, description, optional=optional))

    def raster_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
        """The GDAL path of a raster parameter (None when unset)."""
        if parameters.get(name) in (None, ""):
            return None
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise InsarMlError(f"{name}: cannot open {parameters.get(name)!r} as a raster. Check the path.")
        if layer.providerType() != "gdal":
            raise InsarMlError(f"{name}: {layer.name()} is not a file raster read by GDAL (provider "
                               f"{layer.providerType()}). Save it as a GeoTIFF first.")
        return layer.source()

    def add_advanced_int(self, name: str, description: str, default: int | None, minimum: int,
                         maximum: int) -> None:
        """An advanced integer parameter; an empty default means "automatic"."""
        param = QgsProcessingParameterNumber(name, description, INTEGER, default, optional=default is None,
                                             minValue=minimum, maxValue=maximum)
        param.setFlags(param.flags() | ADVANCED)
        self.addParameter(param)

    def add_tiling_parameters(self, tile_size: int | None = 512) -> None:
        self.add_advanced_int("TILE_SIZE", "Tile size [px]" + (" (empty = automatic)" if tile_size is None else ""),
                              tile_size, 32, 16384)
        self.add_advanced_int("OVERLAP", "Tile overlap [px] (empty = automatic)", None, 0, 4096)

    def optional_int(self, parameters: dict, name: str, context: QgsProcessingContext) -> int | None:
        """An integer parameter whose empty value means "automatic"."""
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsInt(parameters, name, context)

    def tiling(self, parameters: dict, context: QgsProcessingContext) -> tuple[int | None, int | None]:
        return self.optional_int(parameters, "TILE_SIZE", context), self.optional_int(parameters, "OVERLAP", context)
