"""Input widgets the dialogs share: raster inputs, model and device choosers, the torch notice."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from osgeo import gdal
from qgis.core import Qgis, QgsApplication, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..dependencies import install_command, missing_torch_packages
from . import settings
from .model_cards import list_models, summary
from .tasks import CommandTask

_LAYER_FILTER = getattr(Qgis, "LayerFilter", None)  # 3.34+
RASTER_LAYERS = _LAYER_FILTER.RasterLayer if _LAYER_FILTER else QgsMapLayerProxyModel.RasterLayer
RASTER_FILTER = "Rasters (*.tif *.tiff *.vrt *.img *.hdr *.int *.unw *.cor *.slc *.h5 *.nc *.zarr);;All files (*)"


def _complex_band(layer: QgsRasterLayer) -> bool:
    ds = gdal.Open(layer.source())
    return ds is not None and gdal.DataTypeIsComplex(ds.GetRasterBand(1).DataType) == 1


def is_complex(layer: QgsRasterLayer) -> bool:
    """Complex rasters or real/imaginary band pairs: SLCs and complex interferograms."""
    return layer.bandCount() == 2 or _complex_band(layer)


def is_real_band(layer: QgsRasterLayer) -> bool:
    """One real band: amplitudes."""
    return layer.bandCount() == 1 and not _complex_band(layer)


def any_raster(layer: QgsRasterLayer) -> bool:
    return True


class RasterInput(QWidget):
    """A loaded raster layer (only the suitable GDAL rasters are listed) or a file."""

    def __init__(self, suitable: Callable[[QgsRasterLayer], bool] = any_raster, optional: bool = False,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.suitable = suitable
        self.combo = QgsMapLayerComboBox()
        self.combo.setFilters(RASTER_LAYERS)
        self.combo.setAllowEmptyLayer(optional)
        self.combo.setMinimumWidth(260)
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Choose a raster file")
        self.browse.clicked.connect(self._browse)
        if optional:
            self.combo.setLayer(None)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        self.refresh()

    def refresh(self) -> None:
        """Hide the layers that cannot serve this input (other providers, wrong band layout)."""
        unsuitable = [layer for layer in QgsProject.instance().mapLayers().values()
                      if isinstance(layer, QgsRasterLayer)
                      and (layer.providerType() != "gdal" or not self.suitable(layer))]
        self.combo.setExceptedLayerList(unsuitable)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Raster", settings.get("last_input_folder", ""), RASTER_FILTER)
        if path:
            settings.put("last_input_folder", str(Path(path).parent))
            self.set_path(path)

    def set_path(self, path: str) -> None:
        self.combo.setAdditionalItems([path])
        self.combo.setCurrentIndex(self.combo.findText(path))

    def path(self) -> str | None:
        """The GDAL source of the chosen layer, the chosen file, or None."""
        layer = self.combo.currentLayer()
        if layer is not None:
            return layer.source()
        text = self.combo.currentText()
        return text if text in self.combo.additionalItems() else None

    def name(self) -> str | None:
        layer = self.combo.currentLayer()
        path = self.path()
        return layer.name() if layer is not None else (Path(path).stem if path else None)


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (none without torch)."""
    if missing_torch_packages():
        return []
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []


class DeviceCombo(QComboBox):
    """auto, cpu and each detected GPU by name; remembers the last choice."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.addItem("auto (GPU when there is one)", "auto")
        self.addItem("cpu", "cpu")
        for index, name in enumerate(gpu_names()):
            self.addItem(f"cuda:{index} — {name}", f"cuda:{index}")
        self.setCurrentIndex(max(0, self.findData(settings.get("device", "auto"))))
        self.currentIndexChanged.connect(lambda _: settings.put("device", self.device()))

    def device(self) -> str:
        return self.currentData()


class ModelChooser(QWidget):
    """The models of one kind from the shipped and the user folders, with the chosen card's summary."""

    def __init__(self, kind: str, automatic: str | None, accept: Callable[[dict], bool] = lambda card: True,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.kind, self.automatic, self.accept = kind, automatic, accept
        self.combo = QComboBox()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.summary)
        self.combo.currentIndexChanged.connect(self._show_summary)
        self.reload()

    def reload(self) -> None:
        """List the models again (one may have been trained or imported since), keeping the choice."""
        chosen = self.combo.currentText()
        self.combo.blockSignals(True)
        self.combo.clear()
        if self.automatic:
            self.combo.addItem(self.automatic, None)
        for entry in list_models(self.kind):
            if self.accept(entry.card):
                self.combo.addItem(entry.name + ("" if entry.shipped else " (user)"), entry)
        self.combo.setCurrentIndex(max(0, self.combo.findText(chosen)))
        self.combo.blockSignals(False)
        self.combo.currentIndexChanged.emit(self.combo.currentIndex())
        self._show_summary()

    def entry(self):
        return self.combo.currentData()

    def path(self) -> str | None:
        entry = self.entry()
        return str(entry.weights) if entry is not None else None

    def _show_summary(self) -> None:
        entry = self.entry()
        if self.combo.count() == 0:
            text = (f"No {self.kind} model found in the plugin or the user model folder "
                    f"({settings.user_model_folder()}). Train or import one (Models dialog).")
        else:
            text = summary(entry) if entry is not None else ""
        self.summary.setText(text)
        self.summary.setVisible(bool(text))


class TorchNotice(QWidget):
    """Shown instead of silence when torch is missing: the exact command, and a button that runs it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        missing = missing_torch_packages()
        self.setVisible(bool(missing))
        self.message = QLabel(f"This tool needs PyTorch; this QGIS's Python cannot import {' and '.join(missing)}. "
                              f"Install it with:<br><code>{install_command()}</code><br>then restart QGIS.")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.install = QPushButton("Install")
        self.install.clicked.connect(self.run_install)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setVisible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.install)
        layout.addWidget(self.output)
        self.task: CommandTask | None = None

    def run_install(self) -> None:
        self.install.setEnabled(False)
        self.output.setVisible(True)
        self.output.setPlainText(f"$ {install_command()}\nrunning…")
        self.task = CommandTask("Installing PyTorch for InSAR ML", install_command(), self._installed)
        QgsApplication.taskManager().addTask(self.task)

    def _installed(self, ok: bool, output: str) -> None:
        verdict = "Installed: restart QGIS to use it." if ok else "The installation failed (see above)."
        self.output.setPlainText(f"$ {install_command()}\n{output}\n{verdict}")
        self.install.setEnabled(not ok)
