"""The frame every tool dialog shares: a form, an Advanced section, messages, progress, Run/Cancel/Close."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessing
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import InsarMlError
from ..dependencies import missing_torch_packages
from . import settings
from .tasks import AlgorithmRun
from .widgets import ModelChooser, RasterInput, TorchNotice


class ToolDialog(QDialog):
    """Subclasses fill :attr:`form` and :attr:`advanced`, and implement :meth:`request` and :meth:`on_success`.

    Bad input raises :class:`InsarMlError` in :meth:`request`; its message, like the algorithm's own
    errors, is shown in the dialog instead of a traceback.
    """

    title = ""
    needs_torch = False

    def __init__(self, iface, parent: QWidget | None = None):
        super().__init__(parent or iface.mainWindow())
        self.iface = iface
        self.job: AlgorithmRun | None = None
        self.setWindowTitle(f"InSAR ML — {self.title}")
        self.notice = TorchNotice()
        self.notice.setVisible(False)
        self.form = QFormLayout()
        self.advanced_box = QgsCollapsibleGroupBox("Advanced")
        self.advanced_box.setCollapsed(True)
        self.advanced = QFormLayout(self.advanced_box)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.body = QVBoxLayout(self)
        self.body.addWidget(self.notice)
        self.body.addLayout(self.form)
        self.body.addWidget(self.advanced_box)
        self.extra = QVBoxLayout()
        self.body.addLayout(self.extra)
        self.body.addWidget(self.message)
        self.body.addWidget(self.progress)
        self.body.addWidget(self.buttons)

    def update_torch_notice(self, needed: bool) -> None:
        """Show the install notice (and block Run) when this tool needs torch and it is missing."""
        blocked = needed and bool(missing_torch_packages())
        self.notice.setVisible(blocked)
        self.run_button.setEnabled(not blocked and self.job is None)

    def showEvent(self, event) -> None:  # noqa: N802
        """Each time the dialog opens: layers and models may have come or gone since."""
        self.update_torch_notice(self.needs_torch)
        for raster_input in self.findChildren(RasterInput):
            raster_input.refresh()
        for chooser in self.findChildren(ModelChooser):
            chooser.reload()
        super().showEvent(event)

    def add_output_folder(self, key: str) -> QgsFileWidget:
        """A folder for the outputs; empty = temporary files."""
        widget = QgsFileWidget()
        widget.setStorageMode(QgsFileWidget.GetDirectory)
        widget.setFilePath(settings.get(key, ""))
        widget.lineEdit().setPlaceholderText("[temporary files]")
        widget.fileChanged.connect(lambda path: settings.put(key, path))
        self.form.addRow("Output folder", widget)
        return widget

    @staticmethod
    def destination(folder: QgsFileWidget, name: str) -> str:
        """``folder/name.tif``, or a temporary output when no folder is chosen."""
        base = folder.filePath().strip()
        if not base:
            return QgsProcessing.TEMPORARY_OUTPUT
        if not Path(base).is_dir():
            raise InsarMlError(f"The output folder {base} does not exist. Choose an existing folder or leave it "
                               "empty for temporary files.")
        return str(Path(base) / f"{name}.tif")

    # --- running -------------------------------------------------------------------------------------
    def request(self) -> tuple[str, dict]:
        """(algorithm id, parameters) from the fields; raise InsarMlError on bad input."""
        raise NotImplementedError

    def on_success(self, results: dict) -> None:
        raise NotImplementedError

    def run(self) -> None:
        self.show_message("")
        try:
            algorithm_id, parameters = self.request()
            self.job = AlgorithmRun(algorithm_id, parameters, self._done, lambda p: self.progress.setValue(int(p)))
        except InsarMlError as exc:
            self.show_message(str(exc), error=True)
            return
        self.set_running(True)

    def cancel(self) -> None:
        if self.job is not None:
            self.show_message("Cancelling…")
            self.job.cancel()

    def shutdown(self) -> None:
        """The plugin unloads: stop the running task and close."""
        self.cancel()
        self.close()

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        self.progress.setValue(0)

    def _done(self, ok: bool, results: dict, message: str) -> None:
        self.job = None
        self.set_running(False)
        if not ok:
            self.show_message(message, error=True)
            return
        try:
            self.on_success(results)
        except InsarMlError as exc:
            self.show_message(str(exc), error=True)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00020;" if error else "")
        self.message.setVisible(bool(text))

    def add_button(self, text: str) -> QPushButton:
        return self.buttons.addButton(text, QDialogButtonBox.ButtonRole.ActionRole)
