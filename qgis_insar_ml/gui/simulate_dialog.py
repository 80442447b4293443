"""Simulate pair: the DeepInSAR simulator's 18 configurations, or the realistic simulator with
the look windows of common products, as simple choices."""
from __future__ import annotations

from itertools import product
from pathlib import Path
from xml.sax.saxutils import escape

from osgeo import gdal
from qgis.PyQt.QtWidgets import QComboBox

from ..core.simulator import FRINGE_AMPLITUDE, NOISE_SIGMA
from .dialog import ToolDialog
from .filter_dialog import spin
from .layers import COHERENCE, PHASE, add_styled_layers

NOISE_TEXT = {"S1": "low noise", "S2": "medium noise", "S3": "high noise"}
FRINGE_TEXT = {"F1": "few fringes", "F2": "more fringes", "F3": "dense fringes"}
# "S2-F1-S" → (noise, fringes, stripes): the names the DeepInSAR tables use
CONFIGURATIONS = {f"{noise}-{fringe}-{'S' if strips else 'NS'}": (noise, fringe, strips)
                  for noise, fringe, strips in product(NOISE_SIGMA, FRINGE_AMPLITUDE, (True, False))}
# Look windows (rows x columns) of common products for the realistic simulator.
LOOKS = {"1x1": "single-look SLCs", "4x1": "4×1 looks", "5x1": "5×1 looks (HyP3-like)",
         "4x20": "4×20 looks (LiCSAR-like)", "2x10": "2×10 looks (ISCE2-like)", "3x3": "3×3 looks"}
SLC_OUTPUTS = (("OUTPUT_SLC_REFERENCE", "reference"), ("OUTPUT_SLC_SECONDARY", "secondary"))
AMPLITUDE_OUTPUTS = (("OUTPUT_AMPLITUDE_REFERENCE", "amplitude_reference"),
                     ("OUTPUT_AMPLITUDE_SECONDARY", "amplitude_secondary"))


def phase_view(path: str) -> str:
    """A VRT beside ``path`` showing the phase of its complex band 1 (GDAL's ``phase`` pixel function)."""
    ds = gdal.Open(path)
    geo = ", ".join(repr(v) for v in ds.GetGeoTransform())
    target = Path(path).with_name(f"{Path(path).stem}_phase.vrt")
    target.write_text(
        f'<VRTDataset rasterXSize="{ds.RasterXSize}" rasterYSize="{ds.RasterYSize}">\n'
        f"  <SRS>{escape(ds.GetProjection())}</SRS>\n  <GeoTransform>{geo}</GeoTransform>\n"
        '  <VRTRasterBand dataType="Float32" band="1" subClass="VRTDerivedRasterBand">\n'
        "    <SourceTransferType>CFloat64</SourceTransferType>\n"
        "    <Description>phase [rad]</Description>\n    <PixelFunctionType>phase</PixelFunctionType>\n"
        f'    <SimpleSource><SourceFilename relativeToVRT="0">{escape(str(Path(path).resolve()))}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource>\n  </VRTRasterBand>\n</VRTDataset>\n", encoding="utf-8")
    return str(target)


class SimulateDialog(ToolDialog):
    title = "Simulate pair"

    def __init__(self, iface, parent=None):
        super().__init__(iface, parent)
        self.configuration = QComboBox()
        for name, (noise, fringe, strips) in CONFIGURATIONS.items():
            self.configuration.addItem(f"{name}: {NOISE_TEXT[noise]}, {FRINGE_TEXT[fringe]}, "
                                       f"{'with' if strips else 'no'} stripes", name)
        self.configuration.setCurrentIndex(self.configuration.findData("S2-F2-S"))
        self.noise_model = QComboBox()
        self.noise_model.addItem("DeepInSAR paper (18 configurations)", "paper")
        self.noise_model.addItem("Realistic (speckle, coherence maps, real-world signals)", "realistic")
        self.looks = QComboBox()
        for key, text in LOOKS.items():
            self.looks.addItem(text, key)
        self.width_box, self.height_box = spin(16, 20000, 512), spin(16, 20000, 512)
        self.seed = spin(0, 2**31 - 1, 0)
        for label, widget in (("Statistics", self.noise_model), ("Configuration", self.configuration),
                              ("Looks", self.looks), ("Width [px]", self.width_box),
                              ("Height [px]", self.height_box), ("Seed", self.seed)):
            self.form.addRow(label, widget)
        self.noise_model.currentIndexChanged.connect(self._show_model_choices)
        self._show_model_choices()
        self.output_folder = self.add_output_folder("simulate_output_folder")
        self.advanced_box.setVisible(False)
        self.submitted: dict = {}

    def _realistic(self) -> bool:
        return self.noise_model.currentData() == "realistic"

    def _show_model_choices(self) -> None:
        """The paper's configurations or the realistic simulator's look windows, never both."""
        for widget, shown in ((self.configuration, not self._realistic()), (self.looks, self._realistic())):
            widget.setVisible(shown)
            self.form.labelForField(widget).setVisible(shown)

    def name(self) -> str:
        if self._realistic():
            return f"sim_realistic_{self.looks.currentData()}_seed{self.seed.value()}"
        return f"sim_{self.configuration.currentData()}_seed{self.seed.value()}"

    def request(self) -> tuple[str, dict]:
        noise, fringe, strips = CONFIGURATIONS[self.configuration.currentData()]
        looks = self.looks.currentData() if self._realistic() else "1x1"
        # multilooked scenes have no single-look SLCs: their amplitudes take the SLCs' place
        slcs_or_amplitudes = SLC_OUTPUTS if looks == "1x1" else AMPLITUDE_OUTPUTS
        name = self.name()
        self.submitted = {"WIDTH": self.width_box.value(), "HEIGHT": self.height_box.value(), "NOISE_LEVEL": noise,
                          "FRINGE_LEVEL": fringe, "STRIPS": strips, "SEED": self.seed.value(),
                          "NOISE_MODEL": self.noise_model.currentData(), "LOOKS": looks,
                          **{key: self.destination(self.output_folder, f"{name}_{suffix}") for key, suffix in
                             (*slcs_or_amplitudes, ("OUTPUT_INTERFEROGRAM", "interferogram"),
                              ("OUTPUT_CLEAN_PHASE", "clean_phase"), ("OUTPUT_COHERENCE", "coherence"))}}
        return "insarml:simulate_pair", self.submitted

    def on_success(self, results: dict) -> None:
        outputs = [(phase_view(results["OUTPUT_INTERFEROGRAM"]), "noisy phase", PHASE),
                   (results["OUTPUT_CLEAN_PHASE"], "clean phase", PHASE),
                   (results["OUTPUT_COHERENCE"], "true coherence", COHERENCE)]
        add_styled_layers(self.name(), outputs, {"algorithm": "insarml:simulate_pair", "parameters": self.submitted})
        self.show_message(f"Simulated; all outputs in {Path(results['OUTPUT_INTERFEROGRAM']).parent}.")
