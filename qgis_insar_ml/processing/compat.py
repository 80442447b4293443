"""Enum spellings that moved between QGIS 3.22 and 3.36+: one place to pick the right one."""
from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)

_NUMBER_TYPE = getattr(Qgis, "ProcessingNumberParameterType", None)  # 3.36+
INTEGER = _NUMBER_TYPE.Integer if _NUMBER_TYPE else QgsProcessingParameterNumber.Integer
DOUBLE = _NUMBER_TYPE.Double if _NUMBER_TYPE else QgsProcessingParameterNumber.Double

_PARAMETER_FLAG = getattr(Qgis, "ProcessingParameterFlag", None)  # 3.36+
ADVANCED = _PARAMETER_FLAG.Advanced if _PARAMETER_FLAG else QgsProcessingParameterDefinition.FlagAdvanced

_FILE_BEHAVIOR = getattr(Qgis, "ProcessingFileParameterBehavior", None)  # 3.36+
FOLDER = _FILE_BEHAVIOR.Folder if _FILE_BEHAVIOR else QgsProcessingParameterFile.Folder

_SOURCE_TYPE = getattr(Qgis, "ProcessingSourceType", None)  # 3.36+
FILE_SOURCE = _SOURCE_TYPE.File if _SOURCE_TYPE else QgsProcessing.TypeFile

_MESSAGE_LEVEL = getattr(Qgis, "MessageLevel", None)
WARNING = _MESSAGE_LEVEL.Warning if _MESSAGE_LEVEL else Qgis.Warning
