"""What every insarml algorithm shares: naming, help, progress and error reporting."""
from __future__ import annotations

import os
import traceback
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsMessageLog,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QIcon

from ..core.errors import Cancelled, InsarMlError
from ..dependencies import require_torch
from ..paths import icon_path
from .compat import ADVANCED, INTEGER, WARNING

LOG_TAG = "InSAR ML"


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
        if context.feedback() is None:  # qgis_process runs without one: input readers log through it
            context.setFeedback(feedback)
        try:
            if self.needs_torch:
                require_torch()
            return self.execute(parameters, context, FeedbackProgress(feedback))
        except InsarMlError as exc:
            message = str(exc)
        except Cancelled as exc:
            message = f"{exc} No output was written."
        except QgsProcessingException:  # from the QGIS API: its message is already meant for the user
            show_error_once()
            raise
        except Exception as exc:  # noqa: BLE001 - GDAL, torch, OS: one line for the user, the traceback to the log
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, WARNING)
            message = self.failure_message(exc)
        show_error_once()
        raise QgsProcessingException(message) from None

    def failure_message(self, exc: Exception) -> str:
        """One line for an error that is not the plugin's own: what failed and what to do."""
        detail = next(iter(str(exc).strip().splitlines()), "")[:300] or type(exc).__name__
        if isinstance(exc, MemoryError) or "out of memory" in detail.lower():  # torch's OutOfMemoryError too
            smaller = "lower TILE_SIZE (advanced parameters), " if self.parameterDefinition("TILE_SIZE") else ""
            return (f"{self.display_name} ran out of memory ({detail}). Try again with {smaller}fewer other "
                    "programs open, or clip the input to a smaller area.")
        if isinstance(exc, OSError):
            where = f" {exc.filename}" if exc.filename else " a file"
            return (f"{self.display_name} could not access{where}: {exc.strerror or detail}. Check that it exists, "
                    "that you may read and write there, and that the disk has free space.")
        return (f"{self.display_name} failed: {type(exc).__name__}: {detail}. The details are in the QGIS log "
                f"(View > Panels > Log Messages, tab {LOG_TAG}); please report them with the inputs that caused this.")

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:  # noqa: N802
        """Say why an existing raster file cannot be loaded (damaged, truncated): QGIS reports it as "not found"."""
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            if (isinstance(definition, QgsProcessingParameterRasterLayer) and isinstance(value, str)
                    and os.path.isfile(value) and not definition.checkValueIsAcceptable(value, context)):
                from ..core.raster_io import check_opens  # GDAL: only when a file fails to load

                try:
                    check_opens(value, definition.name())
                except InsarMlError as exc:
                    return False, str(exc)
        return super().checkParameterValues(parameters, context)

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

    def add_looks_parameter(self) -> None:
        """LOOKS: what DeepInSAR's coherence of a phase-only interferogram needs to be calibrated."""
        self.addParameter(QgsProcessingParameterString(
            "LOOKS", "Looks of a phase-only interferogram (rows x columns, e.g. 20x4, or a number; empty = unknown)",
            optional=True))

    def looks(self, parameters: dict, context: QgsProcessingContext) -> float | None:
        from ..core.deepinsar.looks_coherence import parse_look_count  # numpy only

        return parse_look_count(self.parameterAsString(parameters, "LOOKS", context))

    def optional_int(self, parameters: dict, name: str, context: QgsProcessingContext) -> int | None:
        """An integer parameter whose empty value means "automatic"."""
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsInt(parameters, name, context)

    def tiling(self, parameters: dict, context: QgsProcessingContext) -> tuple[int | None, int | None]:
        return self.optional_int(parameters, "TILE_SIZE", context), self.optional_int(parameters, "OVERLAP", context)


def show_error_once() -> None:
    """Make qgis_process print the error that is about to be raised once, not three times.

    QGIS logs a failed algorithm's message as Critical twice (QgsProcessingAlgorithm.run, then
    the feedback's reportError), and qgis_process echoes every Critical log message to stderr
    besides printing its own "ERROR:" line, for every algorithm, native ones included. Under
    qgis_process only, the message log is silenced until control returns to the event loop,
    i.e. after the run has ended; the "ERROR:" line stays. The desktop and Python are untouched.
    """
    if QgsApplication.platform() != "qgis_process":
        return
    log = QgsApplication.messageLog()
    if not log.signalsBlocked():
        log.blockSignals(True)
        QTimer.singleShot(0, lambda: log.blockSignals(False))
