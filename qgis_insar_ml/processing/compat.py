"""Enum spellings that moved between QGIS 3.22 and 3.36+: one place to pick the right one."""
from __future__ import annotations

from qgis.core import Qgis, QgsProcessingParameterDefinition, QgsProcessingParameterFile, QgsProcessingParameterNumber

_NUMBER_TYPE = getattr(Qgis, "ProcessingNumberParameterType", None)  # 3.36+
INTEGER = _NUMBER_TYPE.Integer if _NUMBER_TYPE else QgsProcessingParameterNumber.Integer
DOUBLE = _NUMBER_TYPE.Double if _NUMBER_TYPE else QgsProcessingParameterNumber.Double

_PARAMETER_FLAG = getattr(Qgis, "ProcessingParameterFlag", None)  # 3.36+
ADVANCED = _PARAMETER_FLAG.Advanced if _PARAMETER_FLAG else QgsProcessingParameterDefinition.FlagAdvanced

_FILE_BEHAVIOR = getattr(Qgis, "ProcessingFileParameterBehavior", None)  # 3.36+
FOLDER = _FILE_BEHAVIOR.Folder if _FILE_BEHAVIOR else QgsProcessingParameterFile.Folder
