"""Filter & coherence: DeepInSAR, Boxcar or Goldstein on an SLC pair or an interferogram."""
from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from ..core.errors import InsarMlError
from . import settings
from .dialog import ToolDialog
from .extent import clip_to_extent
from .layers import COHERENCE, PHASE, add_styled_layers
from .widgets import DeviceCombo, ModelChooser, RasterInput, any_raster, is_complex, is_real_band

METHODS = {"deepinsar": ("DeepInSAR", "insarml:deepinsar_filter"),
           "boxcar": ("Boxcar", "insarml:filter_boxcar"),
           "goldstein": ("Goldstein", "insarml:filter_goldstein")}
INTERFEROGRAM, SLC_PAIR = "interferogram", "slc"
WHOLE, CANVAS = "whole", "canvas"


def spin(minimum: int, maximum: int, value: int, automatic: bool = False) -> QSpinBox:
    """An integer field; with ``automatic`` its lowest value reads 'automatic' (the algorithm decides)."""
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setValue(value)
    if automatic:
        box.setSpecialValueText("automatic")
    return box


class FilterDialog(ToolDialog):
    title = "Filter & coherence"

    def __init__(self, iface, method: str = "deepinsar", parent=None):
        super().__init__(iface, parent)
        self.submitted: dict = {}  # the parameters of the last run, recorded on its layers
        self.method = QComboBox()
        for key, (label, _) in METHODS.items():
            self.method.addItem(label, key)
        self.input_kind = QComboBox()
        self.input_kind.addItem("Interferogram (optional amplitudes)", INTERFEROGRAM)
        self.input_kind.addItem("SLC pair", SLC_PAIR)
        self.interferogram = RasterInput(any_raster)
        self.amplitude_reference = RasterInput(is_real_band, optional=True)
        self.amplitude_secondary = RasterInput(is_real_band, optional=True)
        self.slc_reference = RasterInput(is_complex)
        self.slc_secondary = RasterInput(is_complex)
        self.model = ModelChooser("deepinsar", "Automatic: the shipped model that fits the inputs")
        self.device = DeviceCombo()
        self.looks = QLineEdit()
        self.looks.setPlaceholderText("e.g. 20x4 or 80; empty = unknown")
        self.looks.setToolTip("The interferogram's number of looks (rows x columns): DeepInSAR's coherence of a "
                              "phase without amplitudes needs it to tell looks from coherence.")
        self.window = spin(3, 101, 5)
        self.window.setSingleStep(2)
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.0, 1.0)
        self.alpha.setSingleStep(0.1)
        self.alpha.setValue(0.5)
        self.extent = QComboBox()
        self.extent.addItem("Whole raster", WHOLE)
        self.extent.addItem("Current map canvas", CANVAS)
        for label, widget in (("Method", self.method), ("Input", self.input_kind),
                              ("Interferogram (complex, or phase [rad])", self.interferogram),
                              ("Reference amplitude (optional)", self.amplitude_reference),
                              ("Secondary amplitude (optional)", self.amplitude_secondary),
                              ("Reference SLC", self.slc_reference), ("Secondary SLC", self.slc_secondary),
                              ("Model", self.model), ("Device", self.device),
                              ("Looks of a phase-only input", self.looks), ("Window [px, odd]", self.window),
                              ("Alpha (strength)", self.alpha), ("Extent", self.extent)):
            self.form.addRow(label, widget)
        self.output_folder = self.add_output_folder("filter_output_folder")
        self.tile_size = spin(31, 16384, settings.get("tile_size", 31, int), automatic=True)
        self.overlap = spin(-1, 4096, -1, automatic=True)
        self.tile_size.valueChanged.connect(lambda value: settings.put("tile_size", value))
        self.advanced.addRow("Tile size [px]", self.tile_size)
        self.advanced.addRow("Tile overlap [px]", self.overlap)
        self.input_kind.currentIndexChanged.connect(self._show_fields)
        self.method.currentIndexChanged.connect(self._show_fields)
        self.method.setCurrentIndex(self.method.findData(method))
        self._show_fields()

    def _show_fields(self) -> None:
        """Only the rows that the chosen method and input kind use."""
        method, pair = self.method.currentData(), self.input_kind.currentData() == SLC_PAIR
        self.needs_torch = method == "deepinsar"
        for widget, shown in ((self.model, method == "deepinsar"), (self.device, method == "deepinsar"),
                              (self.looks, method == "deepinsar" and not pair),
                              (self.window, method == "boxcar"), (self.alpha, method == "goldstein"),
                              (self.interferogram, not pair), (self.amplitude_reference, not pair),
                              (self.amplitude_secondary, not pair), (self.slc_reference, pair),
                              (self.slc_secondary, pair)):
            widget.setVisible(shown)
            self.form.labelForField(widget).setVisible(shown)
        self.update_torch_notice(self.needs_torch)
        self.adjustSize()

    def _input_paths(self) -> dict[str, str]:
        if self.input_kind.currentData() == SLC_PAIR:
            if self.method.currentData() == "goldstein":
                raise InsarMlError("Goldstein filters an interferogram: choose 'Interferogram' as input, or use "
                                   "Boxcar or DeepInSAR for an SLC pair.")
            paths = {"SLC_REFERENCE": self.slc_reference.path(), "SLC_SECONDARY": self.slc_secondary.path()}
            if None in paths.values():
                raise InsarMlError("Choose both SLCs (reference and secondary).")
            return paths
        if self.interferogram.path() is None:
            raise InsarMlError("Choose an interferogram (a loaded raster layer or a file).")
        amplitudes = (self.amplitude_reference.path(), self.amplitude_secondary.path())
        if (amplitudes[0] is None) != (amplitudes[1] is None):
            raise InsarMlError("Give both amplitudes or neither.")
        paths = {"INTERFEROGRAM": self.interferogram.path()}
        if amplitudes[0] is not None:
            paths.update(AMPLITUDE_REFERENCE=amplitudes[0], AMPLITUDE_SECONDARY=amplitudes[1])
        return paths

    def input_name(self) -> str:
        pair = self.input_kind.currentData() == SLC_PAIR
        return (self.slc_reference if pair else self.interferogram).name() or "InSAR ML"

    def request(self) -> tuple[str, dict]:
        method = self.method.currentData()
        parameters = self._input_paths()
        if self.extent.currentData() == CANVAS:
            canvas = self.iface.mapCanvas()
            crs = canvas.mapSettings().destinationCrs()
            parameters = {name: clip_to_extent(path, canvas.extent(), crs) for name, path in parameters.items()}
        if self.tile_size.value() != self.tile_size.minimum():
            if self.tile_size.value() < 32:
                raise InsarMlError("The tile size must be at least 32 px (or 'automatic').")
            parameters["TILE_SIZE"] = self.tile_size.value()
        if self.overlap.value() >= 0:
            parameters["OVERLAP"] = self.overlap.value()
        name = self.input_name()
        parameters["OUTPUT_PHASE"] = self.destination(self.output_folder, f"{name}_{method}_phase")
        parameters["OUTPUT_COHERENCE"] = self.destination(self.output_folder, f"{name}_{method}_coherence")
        if method == "deepinsar":
            parameters.update(MODEL=self.model.path() or "", DEVICE=self.device.device())
            if self.looks.isVisible() and self.looks.text().strip():
                parameters["LOOKS"] = self.looks.text().strip()
        elif method == "boxcar":
            if self.window.value() % 2 == 0:
                raise InsarMlError(f"The window must be an odd number of pixels, not {self.window.value()}.")
            parameters["WINDOW"] = self.window.value()
        else:
            parameters["ALPHA"] = self.alpha.value()
        self.submitted = parameters
        return METHODS[method][1], parameters

    def on_success(self, results: dict) -> None:
        method = self.method.currentData()
        label = METHODS[method][0]
        outputs = [(results[key], f"{label} {what}", style) for key, what, style in
                   (("OUTPUT_PHASE", "phase", PHASE), ("OUTPUT_COHERENCE", "coherence", COHERENCE))
                   if results.get(key)]
        provenance = {"algorithm": METHODS[method][1], "parameters": self.submitted}
        if method == "deepinsar":
            provenance["model"] = self.model.path() or "shipped (automatic)"
        add_styled_layers(self.input_name(), outputs, provenance)
        self.show_message(f"{label}: added {len(outputs)} layer(s) to the group '{self.input_name()}'.")
