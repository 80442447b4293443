"""Diagnostics: the versions and devices a bug report needs, one click to copy."""
from __future__ import annotations

import platform
import sys

from osgeo import gdal
from qgis.core import Qgis
from qgis.PyQt.QtWidgets import QApplication, QDialog, QDialogButtonBox, QPlainTextEdit, QVBoxLayout, QWidget

from ..dependencies import install_command, missing_torch_packages
from .model_cards import list_models, model_folders


def report() -> str:
    lines = [f"QGIS {Qgis.QGIS_VERSION}", f"GDAL {gdal.__version__}",
             f"Python {platform.python_version()} ({sys.executable})", f"Platform {platform.platform()}"]
    missing = missing_torch_packages()
    if missing:
        lines += [f"PyTorch: not importable ({', '.join(missing)} missing)", f"Install with: {install_command()}"]
    else:
        import safetensors
        import torch

        lines += [f"torch {torch.__version__}, safetensors {safetensors.__version__}",
                  f"CUDA {torch.version.cuda or 'none'} (available: {torch.cuda.is_available()})",
                  f"CPU threads: {torch.get_num_threads()}"]
        lines += [f"GPU cuda:{i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
                  if torch.cuda.is_available()]
    for folder, shipped in model_folders():
        lines.append(f"{'Shipped' if shipped else 'User'} model folder: {folder}"
                     f"{'' if folder.is_dir() else ' (does not exist yet)'}")
    lines += [f"  {entry.name} ({entry.kind})" for entry in list_models()]
    return "\n".join(lines)


class DiagnosticsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("InSAR ML — Diagnostics")
        self.text = QPlainTextEdit(report())
        self.text.setReadOnly(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton("Copy to clipboard", QDialogButtonBox.ButtonRole.ActionRole).clicked.connect(self.copy)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(640, 360)

    def copy(self) -> None:
        QApplication.clipboard().setText(self.text.toPlainText())
