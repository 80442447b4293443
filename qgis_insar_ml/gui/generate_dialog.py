"""Generate scenes (PDM): sample a diffusion model, preview the first samples, then add them as layers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox

from ..core.diffusion.names import SAMPLER_NAMES
from ..core.errors import InsarMlError
from ..core.model_files import recommended_guidance
from .dialog import ToolDialog
from .filter_dialog import spin
from .layers import UNWRAPPED, add_styled_layers
from .plots import PreviewGrid
from .widgets import DeviceCombo, ModelChooser

SHIPPED = "pdm_interferograms_64.safetensors"
PREVIEWED = 8
GRID, CANVAS = "grid", "canvas"


def first_band(path: str) -> np.ndarray:
    dataset = gdal.Open(path)  # kept open while its band is read
    return dataset.GetRasterBand(1).ReadAsArray()


def is_generative(card: dict) -> bool:
    return not card.get("super_resolution")


def is_super_resolution(card: dict) -> bool:
    return bool(card.get("super_resolution"))


class GenerateDialog(ToolDialog):
    title = "Generate scenes (PDM)"
    needs_torch = True

    def __init__(self, iface, parent=None):
        super().__init__(iface, parent)
        self.model = ModelChooser("pdm", None, is_generative)
        self.class_label = QComboBox()
        self.count = spin(1, 10000, 8)
        self.sampler = QComboBox()
        self.sampler.addItems(list(SAMPLER_NAMES))
        self.sampler.setCurrentText("dpm_solver++")
        self.steps = spin(1, 4000, 20)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 20.0)
        self.guidance.setValue(1.0)
        self.seed = spin(0, 2**31 - 1, 0)
        self.superresolve = QCheckBox("Super-resolve each sample 2× (cascade)")
        self.sr_model = ModelChooser("pdm", None, is_super_resolution)
        self.sr_steps = spin(1, 4000, 20)
        for widget in (self.sr_model, self.sr_steps):
            widget.setEnabled(False)
            self.superresolve.toggled.connect(widget.setEnabled)
        self.rescale = QCheckBox("Rescale to radians")
        self.rescale.setChecked(True)
        self.wrapped = QCheckBox("Also the wrapped phase (band 2)")
        self.placement = QComboBox()
        self.placement.addItem("Pixel grid, no CRS", GRID)
        self.placement.addItem("Centred on the map canvas", CANVAS)
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.001, 1e6)
        self.pixel_size.setValue(100.0)
        for label, widget in (("Model", self.model), ("Class", self.class_label), ("Samples", self.count),
                              ("Sampler", self.sampler), ("Steps", self.steps), ("Guidance scale", self.guidance),
                              ("Seed", self.seed), ("", self.superresolve), ("Super-resolution model", self.sr_model),
                              ("Super-resolution steps", self.sr_steps), ("", self.rescale), ("", self.wrapped),
                              ("Placement", self.placement), ("Pixel size [map units]", self.pixel_size)):
            self.form.addRow(label, widget)
        self.output_folder = self.add_output_folder("generate_output_folder")
        self.device = DeviceCombo()
        self.advanced.addRow("Device", self.device)
        self.preview = PreviewGrid()
        self.preview.setVisible(False)
        self.extra.addWidget(self.preview)
        self.add_to_map = self.add_button("Add to map")
        self.add_to_map.setEnabled(False)
        self.add_to_map.clicked.connect(self.add_layers)
        self.model.combo.currentIndexChanged.connect(self._model_changed)
        self._model_changed()
        self.paths: list[str] = []
        self.submitted: dict = {}
        if self.model.combo.count() == 0:
            self.show_message(f"The shipped scene model {SHIPPED} is not installed and no other PDM was found: "
                              "train one (Train PDM) or import one (Models).", error=True)

    def _model_changed(self) -> None:
        self.class_label.clear()
        self.class_label.addItem("all classes, equal shares", "")
        entry = self.model.entry()
        for name in (entry.card.get("classes") or []) if entry is not None else []:
            self.class_label.addItem(name, name)
        self.guidance.setValue(recommended_guidance(entry.card) if entry is not None else 1.0)

    def request(self) -> tuple[str, dict]:
        if self.model.path() is None:
            raise InsarMlError("Choose a PDM model: none is installed. Train one (Train PDM) or import one (Models).")
        if self.superresolve.isChecked() and self.sr_model.path() is None:
            raise InsarMlError("Choose a super-resolution PDM for the cascade (none is installed: import one in "
                               "Models), or untick 'Super-resolve'.")
        if self.wrapped.isChecked() and not self.rescale.isChecked():
            raise InsarMlError("The wrapped phase needs radians: tick 'Rescale to radians' too.")
        folder = self.output_folder.filePath().strip()
        if folder and not Path(folder).is_dir():
            raise InsarMlError(f"The output folder {folder} does not exist.")
        parameters = {"MODEL": self.model.path(), "CLASS_LABEL": self.class_label.currentData(),
                      "COUNT": self.count.value(), "SAMPLER": self.sampler.currentText(), "STEPS": self.steps.value(),
                      "GUIDANCE_SCALE": self.guidance.value(), "SEED": self.seed.value(),
                      "RESCALE": self.rescale.isChecked(), "WRAPPED": self.wrapped.isChecked(),
                      "DEVICE": self.device.device(), "OUTPUT_FOLDER": folder or "TEMPORARY_OUTPUT"}
        if self.superresolve.isChecked():   # the samples before super-resolution, for the preview
            parameters.update(SUPERRESOLVE=True, SUPERRESOLUTION_MODEL=self.sr_model.path(),
                              SR_STEPS=self.sr_steps.value(), LOW_RES_FOLDER="TEMPORARY_OUTPUT")
        if self.placement.currentData() == CANVAS:
            canvas = self.iface.mapCanvas()
            crs = canvas.mapSettings().destinationCrs()
            extent = canvas.extent()
            parameters.update(EXTENT=f"{extent.xMinimum()},{extent.xMaximum()},{extent.yMinimum()},"
                                     f"{extent.yMaximum()} [{crs.authid()}]",
                              CRS=crs.authid(), PIXEL_SIZE=self.pixel_size.value())
        self.submitted = parameters
        self.add_to_map.setEnabled(False)
        return "insarml:pdm_generate", parameters

    def on_success(self, results: dict) -> None:
        self.paths = list(results["OUTPUT_LAYERS"])
        low_res = list(results.get("LOW_RES_LAYERS") or [])
        # a cascade shows each sample before and after super-resolution, side by side
        shown = ([path for pair in zip(low_res, self.paths) for path in pair] if low_res else self.paths)[:PREVIEWED]
        images = [first_band(path) for path in shown]
        self.preview.show_samples(images, [f"{Path(path).stem} ({image.shape[1]}×{image.shape[0]})"
                                           for path, image in zip(shown, images)])
        self.preview.setVisible(True)
        self.add_to_map.setEnabled(True)
        stages = " before and after super-resolution" if low_res else ""
        self.show_message(f"{len(self.paths)} scene(s) written to {Path(self.paths[0]).parent}; the first "
                          f"{len(shown) // (2 if low_res else 1)} are shown{stages}. 'Add to map' loads them all.")

    def add_layers(self) -> None:
        group = f"PDM {Path(self.submitted['MODEL']).stem} seed {self.submitted['SEED']}"
        add_styled_layers(group, [(path, Path(path).stem, UNWRAPPED) for path in self.paths],
                          {"algorithm": "insarml:pdm_generate", "model": self.submitted["MODEL"],
                           "parameters": self.submitted})
        self.add_to_map.setEnabled(False)
        self.show_message(f"Added {len(self.paths)} layer(s) to the group '{group}'.")
