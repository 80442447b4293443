"""User choices remembered between sessions (QgsSettings under ``insarml/``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsSettings

PREFIX = "insarml/"


def get(name: str, default: Any = None, type_: type | None = None) -> Any:
    settings = QgsSettings()
    if type_ is None:
        return settings.value(PREFIX + name, default)
    return settings.value(PREFIX + name, default, type=type_)


def put(name: str, value: Any) -> None:
    QgsSettings().setValue(PREFIX + name, value)


def user_model_folder() -> Path:
    """Where imported and trained models go: chosen by the user, else inside the QGIS profile."""
    default = Path(QgsApplication.qgisSettingsDirPath()) / "insarml" / "models"
    return Path(get("model_folder", str(default)) or default)
