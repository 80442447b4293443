"""Train DeepInSAR / Train PDM: the core training loop in a QThread with a live loss curve.

Training calls the same core functions as ``insarml:deepinsar_train`` / ``insarml:pdm_train``
(the Processing algorithms have no per-step callback, and a curve needs one). The dialog can be
closed while training goes on; a status-bar button reopens it. Cancel saves a checkpoint that
'Resume' continues.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QThread, pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QPlainTextEdit, QToolButton

from ..core.datasets.synthetic import DATASETS
from ..core.errors import Cancelled, InsarMlError
from ..processing.pdm_train import parse_integers as integers
from . import settings
from .dialog import ToolDialog
from .filter_dialog import spin
from .plots import LossPlot
from .widgets import DeviceCombo, RasterInput

PDM, DEEPINSAR = "pdm", "deepinsar"
FOLDER = "folder"
SIMULATOR = "simulator"
TEACHER = "teacher"
# teacher–student inputs (paper §3.5): the core's InterferogramSource names plus the trusted references
TEACHER_INPUTS = (("interferogram", "Interferogram (complex, or phase)"),
                  ("amplitude_reference", "Reference amplitude (optional)"),
                  ("amplitude_secondary", "Secondary amplitude (optional)"),
                  ("reference_phase", "Teacher: reference phase"),
                  ("reference_coherence", "Teacher: reference coherence"))


class TrainWorker(QThread):
    """Runs one training; is the core's Progress (cancel flag) and forwards records and log lines."""

    record = pyqtSignal(dict)
    log = pyqtSignal(str)
    done = pyqtSignal(bool, str)  # ok, model path or the message saying why not

    def __init__(self, kind: str, train_settings):
        super().__init__()
        self.kind, self.train_settings = kind, train_settings
        self._cancel = threading.Event()

    def set_progress(self, percent: float) -> None:
        pass  # the dialog shows steps from the records

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def info(self, message: str) -> None:
        self.log.emit(message)

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        try:
            if self.kind == PDM:
                from ..core.diffusion.training import train_pdm as train
            else:
                from ..core.deepinsar.training import train_deepinsar as train
            result = train(self.train_settings, self, self.log.emit, self.record.emit)
        except (Cancelled, InsarMlError) as exc:
            self.done.emit(False, str(exc))
        except Exception as exc:  # noqa: BLE001 (a thread cannot raise to the user: say what happened)
            self.done.emit(False, f"Training failed: {type(exc).__name__}: {exc}")
        else:
            self.done.emit(True, result.model)


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class TrainDialog(ToolDialog):
    needs_torch = True

    def __init__(self, iface, kind: str, parent=None):
        self.kind = kind
        self.title = "Train PDM" if kind == PDM else "Train DeepInSAR"
        super().__init__(iface, parent)
        self.worker: TrainWorker | None = None
        self.dataset = QComboBox()
        if kind == PDM:
            for name in DATASETS:
                self.dataset.addItem(f"built-in '{name}'", name)
            self.dataset.addItem("raster folder (one subfolder per class)", FOLDER)
        else:
            self.dataset.addItem("built-in simulator (all 18 configurations)", SIMULATOR)
            self.dataset.addItem("teacher rasters (real data, teacher–student)", TEACHER)
        self.teacher = {key: RasterInput(optional=True) for key, _ in TEACHER_INPUTS} if kind == DEEPINSAR else {}
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.image_size = spin(8, 1024, 64)
        self.input_kind = QComboBox()
        self.input_kind.addItem("phase + amplitudes (4 channels)", 4)
        self.input_kind.addItem("phase only (2 channels)", 2)
        self.steps = spin(1, 10**7, 2000)
        self.batch_size = spin(1, 4096, 32 if kind == PDM else 16)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(6)
        self.learning_rate.setRange(1e-6, 1.0)
        self.learning_rate.setSingleStep(1e-4)
        self.learning_rate.setValue(4e-4 if kind == PDM else 1e-3)
        self.seed = spin(0, 2**31 - 1, 0)
        self.device = DeviceCombo()
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.SaveFile)
        self.output.setFilter("Model (*.safetensors)")
        self.output.setFilePath(str(settings.user_model_folder() / f"my_{kind}.safetensors"))
        self.resume = QCheckBox("Resume from the checkpoint")
        rows = [("Dataset", self.dataset), ("Raster folder", self.folder)] if kind == PDM else \
            [("Dataset", self.dataset), *((label, self.teacher[key]) for key, label in TEACHER_INPUTS),
             ("Model input", self.input_kind)]
        if kind == PDM:
            rows.append(("Image size [px]", self.image_size))
        rows += [("Training steps", self.steps), ("Batch size", self.batch_size),
                 ("Learning rate", self.learning_rate), ("Seed", self.seed), ("Device", self.device),
                 ("Model file", self.output), ("", self.resume)]
        for label, widget in rows:
            self.form.addRow(label, widget)
        self.validate_every = spin(1, 10**7, 100)
        self.checkpoint_every = spin(1, 10**7, 200)
        self.diffusion_steps = spin(10, 4000, 1000)
        self.channel_mult = QLineEdit("1,1,2,2")
        self.attention = QLineEdit("8")
        self.model_channels = spin(8, 1024, 32)
        self.patch_size = spin(32, 4096, 128)
        self.patience = spin(1, 10**6, 10)
        advanced = [("Validate every N steps", self.validate_every), ("Checkpoint every N steps",
                                                                      self.checkpoint_every)]
        advanced += [("Diffusion steps T", self.diffusion_steps), ("U-Net channel multipliers", self.channel_mult),
                     ("Attention at downsample rates", self.attention), ("U-Net base channels",
                                                                         self.model_channels)] if kind == PDM else \
            [("Patch size [px]", self.patch_size), ("Early-stopping patience", self.patience)]
        for label, widget in advanced:
            self.advanced.addRow(label, widget)
        self.plot = LossPlot()
        self.stats = QLabel("Not started.")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setFixedHeight(80)
        for widget in (self.plot, self.stats, self.log):
            self.extra.addWidget(widget)
        self.status_button = QToolButton()
        self.status_button.clicked.connect(self.reopen)
        self.status_button.setVisible(False)
        iface.mainWindow().statusBar().addPermanentWidget(self.status_button)
        self.started = (0.0, 0, 0)  # wall time, first step and batch of this run: samples/s and ETA

    def train_settings(self):
        """The core's settings from the fields; bad values raise InsarMlError."""
        output = self.output.filePath().strip()
        if not output:
            raise InsarMlError("Choose where to save the model (a .safetensors file).")
        if not output.endswith(".safetensors"):
            output += ".safetensors"
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        common = dict(output=output, steps=self.steps.value(), batch_size=self.batch_size.value(),
                      learning_rate=self.learning_rate.value(), seed=self.seed.value(),
                      validate_every=self.validate_every.value(), checkpoint_every=self.checkpoint_every.value(),
                      resume=self.resume.isChecked(), device=self.device.device())
        if self.kind == DEEPINSAR:
            from ..core.deepinsar.training import TrainSettings

            return TrainSettings(in_channels=self.input_kind.currentData(), patch_size=self.patch_size.value(),
                                 patience=self.patience.value(), teacher=self.teacher_rasters(), **common)
        from ..core.diffusion.training import PdmTrainSettings

        dataset = self.dataset.currentData()
        if dataset == FOLDER:
            dataset = self.folder.filePath().strip()
            if not dataset:
                raise InsarMlError("Choose the raster folder (one subfolder per class), or a built-in dataset.")
        return PdmTrainSettings(dataset=dataset, image_size=self.image_size.value(),
                                diffusion_steps=self.diffusion_steps.value(),
                                channel_mult=integers(self.channel_mult.text(), "U-Net channel multipliers"),
                                attention_resolutions=integers(self.attention.text(), "Attention rates"),
                                model_channels=self.model_channels.value(), **common)

    def teacher_rasters(self) -> dict | None:
        """The teacher–student inputs, or None for the simulator; missing required ones raise."""
        if self.dataset.currentData() != TEACHER:
            return None
        paths = {key: widget.path() for key, widget in self.teacher.items()}
        missing = [label for key, label in TEACHER_INPUTS if "optional" not in label and not paths[key]]
        if missing:
            raise InsarMlError(f"Teacher–student training needs: {', '.join(missing)}.")
        return paths

    def run(self) -> None:
        self.show_message("")
        try:
            train_settings = self.train_settings()
        except InsarMlError as exc:
            self.show_message(str(exc), error=True)
            return
        if not self.resume.isChecked():
            self.plot.clear()
        self.worker = TrainWorker(self.kind, train_settings)
        self.worker.record.connect(self.on_record)
        self.worker.log.connect(self.log.appendPlainText)
        self.worker.done.connect(self.on_done)
        self.started = (time.perf_counter(), -1, train_settings.batch_size)
        self.set_running(True)
        self.progress.setMaximum(train_settings.steps)
        self.status_button.setText(f"{self.title}: starting…")
        self.status_button.setVisible(True)
        self.worker.start()

    def on_record(self, record: dict) -> None:
        tic, first, batch = self.started
        if first < 0:
            self.started = (time.perf_counter(), record["step"], batch)
        self.plot.add(record)
        total = self.progress.maximum()
        elapsed = time.perf_counter() - self.started[0]
        done = record["step"] - self.started[1]
        rate = done * batch / elapsed if done > 0 and elapsed > 0 else 0.0
        eta = (total - record["step"]) * batch / rate if rate else 0.0
        self.stats.setText(f"step {record['step']}/{total} · loss {record['loss']:.4f} · {rate:.1f} samples/s · "
                           f"ETA {format_seconds(eta)}")
        self.progress.setValue(record["step"])
        self.status_button.setText(f"{self.title}: step {record['step']}/{total}")
        if "val_loss" in record or record["step"] % 10 == 0 or record["step"] == total:
            self.plot.redraw()

    def on_done(self, ok: bool, message: str) -> None:
        self.worker.wait()
        self.worker = None
        self.set_running(False)
        self.plot.redraw()
        self.status_button.setVisible(False)
        if ok:
            self.show_message(f"Model saved to {message}.")
            self.resume.setChecked(False)
        else:
            self.show_message(message, error="checkpoint saved" not in message)
            self.resume.setChecked("checkpoint saved" in message)

    def cancel(self) -> None:
        if self.worker is not None:
            self.show_message("Cancelling: saving a checkpoint…")
            self.worker.cancel()

    def reopen(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def shutdown(self) -> None:
        """The plugin unloads: stop the training (it saves a checkpoint) and remove the status button."""
        if self.worker is not None:
            self.worker.done.disconnect()
            self.worker.cancel()
            self.worker.wait()
            self.worker = None
        self.iface.mainWindow().statusBar().removeWidget(self.status_button)
        self.status_button.deleteLater()
        self.close()
