"""Optional dependencies: the plugin loads without torch and says how to install it."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .core.errors import InsarMlError

TORCH_REQUIREMENTS = ("torch==2.13.0", "safetensors")


def python_executable() -> str:
    """The interpreter of the Python that QGIS embeds.

    Inside QGIS ``sys.executable`` is the QGIS binary or whatever ``python3`` is first on
    PATH, so look beside ``sys.prefix`` (Linux/macOS ``bin/python3.X``, Windows ``python.exe``).
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.prefix)
    for candidate in (prefix / "bin" / f"python{version}", prefix / "bin" / "python3", prefix / "python.exe",
                      prefix / "python3.exe"):
        if candidate.is_file():
            return str(candidate)
    return sys.executable or "python3"


def install_command() -> str:
    return f"{python_executable()} -m pip install --user {' '.join(TORCH_REQUIREMENTS)}"


def missing_torch_packages() -> list[str]:
    """The deep-learning packages this Python cannot find.

    Found, not imported: importing torch costs about a second and 190 MB, and a CPU run of a
    model whose OpenVINO conversion is cached never needs it.
    """
    missing = []
    for name in ("torch", "safetensors"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module without a spec
            found = False
        if not found:
            missing.append(name)
    return missing


def require_torch() -> None:
    """Raise a clear error naming the install command when torch is not installed."""
    missing = missing_torch_packages()
    if missing:
        raise InsarMlError(
            f"This algorithm needs PyTorch, and this QGIS's Python cannot import {' and '.join(missing)}. "
            f"Install it with:\n    {install_command()}\nthen restart QGIS.")
