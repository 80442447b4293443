"""Where the plugin's data folders are, installed (zip layout) or in a source checkout."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_HERE = Path(__file__).parent  # unresolved: inside a staged plugin folder of symlinks


def data_dir(name: str) -> Path:
    """``resources`` or ``models``: beside the package when installed, one level up in a checkout."""
    for base in (_HERE, _PACKAGE, _PACKAGE.parent):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    return _PACKAGE / name


def icon_path(name: str) -> str:
    return str(data_dir("resources") / "icons" / name)
