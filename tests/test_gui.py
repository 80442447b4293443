"""The dialogs in headless QGIS: each opens, runs its algorithm as a QgsTask, and adds styled layers."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer, QgsRectangle

from conftest import REPO, noisy_fringes, read_band, write_raster
from test_processing import RasterMenuIface

TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def own_settings():
    """Dialogs remember choices in QgsSettings: give them back as they were after each test."""
    from qgis.core import QgsSettings

    settings = QgsSettings()
    before = {key: settings.value(key) for key in settings.allKeys() if key.startswith("insarml/")}
    yield
    settings.remove("insarml")
    for key, value in before.items():
        settings.setValue(key, value)


@pytest.fixture
def project():
    QgsProject.instance().clear()
    yield QgsProject.instance()
    QgsProject.instance().clear()


@pytest.fixture
def iface(qgis_iface, insarml_provider, project):
    return qgis_iface


@pytest.fixture
def pair_files(tmp_path):
    clean, noisy = noisy_fringes(64, 64, sigma=0.4, seed=1)
    amplitude = np.full((64, 64), 1.0, np.float32)
    return {"clean": write_raster(tmp_path / "clean.tif", clean),
            "ifg": write_raster(tmp_path / "ifg.tif", noisy),
            "phase": write_raster(tmp_path / "phase.tif", np.angle(noisy).astype(np.float32)),
            "amp1": write_raster(tmp_path / "amp1.tif", amplitude),
            "amp2": write_raster(tmp_path / "amp2.tif", amplitude)}


def group_layers(name: str) -> list[QgsRasterLayer]:
    group = QgsProject.instance().layerTreeRoot().findGroup(name)
    assert group is not None, [g.name() for g in QgsProject.instance().layerTreeRoot().children()]
    return [node.layer() for node in group.findLayers()]


def run_dialog(qtbot, dialog) -> None:
    """Click Run and wait for the task to end; fail with the dialog's message if it did not start."""
    dialog.run_button.click()
    assert dialog.job is not None, dialog.message.text()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=TIMEOUT_MS)
    assert "#b00020" not in dialog.message.styleSheet(), dialog.message.text()


def test_toolbar_and_menu_open_every_dialog(qgis_iface, qgis_processing, project):
    import qgis_insar_ml

    iface = RasterMenuIface(qgis_iface)
    plugin = qgis_insar_ml.classFactory(iface)
    registry = QgsApplication.processingRegistry()
    if registry.providerById("insarml") is not None:
        registry.removeProvider(registry.providerById("insarml"))
    plugin.initGui()
    try:
        for key, _, _, factory in plugin.tools():
            if factory is not None:
                dialog = plugin.open_dialog(key, factory)
                assert dialog.isVisible() and dialog.windowTitle().startswith("InSAR ML")
                assert plugin.open_dialog(key, factory) is dialog  # reused, not stacked
                dialog.close()
    finally:
        plugin.unload()


def test_boxcar_dialog_adds_styled_phase_and_coherence_in_a_group(qtbot, iface, pair_files):
    from qgis_insar_ml.gui.filter_dialog import FilterDialog

    dialog = FilterDialog(iface, "boxcar")
    qtbot.addWidget(dialog)
    dialog.interferogram.set_path(pair_files["ifg"])
    dialog.window.setValue(5)
    run_dialog(qtbot, dialog)
    layers = group_layers("ifg")
    assert [layer.name() for layer in layers] == ["Boxcar phase", "Boxcar coherence"], dialog.message.text()
    phase, coherence = layers
    assert phase.customProperty("insarml/style") == "phase"
    assert phase.customProperty("insarml/algorithm") == "insarml:filter_boxcar"
    assert json.loads(phase.customProperty("insarml/parameters"))["WINDOW"] == 5
    shader = phase.renderer().shader().rasterShaderFunction()
    assert shader.minimumValue() == pytest.approx(-math.pi) and shader.maximumValue() == pytest.approx(math.pi)
    items = shader.colorRampItemList()
    assert items[0].color == items[-1].color  # cyclic
    ce = coherence.renderer().contrastEnhancement()
    assert (ce.minimumValue(), ce.maximumValue()) == (0.0, 1.0)
    values = read_band(coherence.source())
    assert 0 <= np.nanmin(values) and np.nanmax(values) <= 1 and np.nanmean(values) > 0.3
    clean = read_band(pair_files["clean"])
    error = np.angle(np.exp(1j * (read_band(phase.source()) - clean)))
    noisy = np.angle(np.exp(1j * (np.angle(read_band(pair_files["ifg"])) - clean)))
    assert np.sqrt(np.mean(error ** 2)) < 0.7 * np.sqrt(np.mean(noisy ** 2))


def test_deepinsar_dialog_with_amplitudes_uses_the_chosen_shipped_model(qtbot, iface, pair_files):
    from qgis_insar_ml.gui.filter_dialog import FilterDialog

    dialog = FilterDialog(iface, "deepinsar")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.notice.isVisible() and dialog.run_button.isEnabled()
    models = [dialog.model.combo.itemText(i) for i in range(dialog.model.combo.count())]
    assert models[0].startswith("Automatic") and {"deepinsar_4ch", "deepinsar_phase"} <= set(models)
    dialog.model.combo.setCurrentIndex(models.index("deepinsar_4ch"))
    assert "phase+amplitudes" in dialog.model.summary.text()
    assert [dialog.device.itemData(i) for i in range(2)] == ["auto", "cpu"]
    dialog.device.setCurrentIndex(1)
    dialog.interferogram.set_path(pair_files["ifg"])
    dialog.amplitude_reference.set_path(pair_files["amp1"])
    dialog.amplitude_secondary.set_path(pair_files["amp2"])
    dialog.tile_size.setValue(256)
    run_dialog(qtbot, dialog)
    phase, coherence = group_layers("ifg")
    assert json.loads(phase.customProperty("insarml/parameters"))["TILE_SIZE"] == 256
    assert phase.customProperty("insarml/model").endswith("deepinsar_4ch.safetensors")
    assert json.loads(phase.customProperty("insarml/parameters"))["DEVICE"] == "cpu"
    values = read_band(coherence.source())
    assert values.shape == (64, 64) and 0 <= values.min() and values.max() <= 1
    clean = read_band(pair_files["clean"])
    error = np.angle(np.exp(1j * (read_band(phase.source()) - clean)))
    assert np.sqrt(np.mean(error ** 2)) < 0.5


def test_deepinsar_dialog_passes_the_looks_of_a_phase_only_input(qtbot, iface, pair_files):
    from qgis_insar_ml.gui.filter_dialog import FilterDialog

    dialog = FilterDialog(iface, "deepinsar")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.device.setCurrentIndex(1)
    dialog.interferogram.set_path(pair_files["ifg"])
    dialog.looks.setText("four")
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=TIMEOUT_MS)
    assert "LOOKS must be rows x columns" in dialog.message.text()
    dialog.looks.setText("4x1")
    run_dialog(qtbot, dialog)
    phase, coherence = group_layers("ifg")
    assert json.loads(coherence.customProperty("insarml/parameters"))["LOOKS"] == "4x1"
    assert np.abs(read_band(phase.source())).max() <= np.pi + 1e-6
    values = read_band(coherence.source())
    assert 0 <= values.min() and values.max() <= 1 and values.std() > 0
    dialog.input_kind.setCurrentIndex(1)  # an SLC pair has amplitudes: no looks asked
    assert not dialog.looks.isVisible()


def test_filter_dialog_bad_input_gives_a_message_not_a_traceback(qtbot, iface, pair_files):
    from qgis_insar_ml.gui.filter_dialog import FilterDialog

    dialog = FilterDialog(iface, "goldstein")
    qtbot.addWidget(dialog)
    dialog.run_button.click()
    assert dialog.job is None and "Choose an interferogram" in dialog.message.text()
    dialog.interferogram.set_path(pair_files["ifg"])
    dialog.amplitude_reference.set_path(pair_files["amp1"])
    dialog.run_button.click()
    assert "both amplitudes or neither" in dialog.message.text()
    dialog.input_kind.setCurrentIndex(1)
    dialog.run_button.click()
    assert "Goldstein filters an interferogram" in dialog.message.text()
    # an error raised inside the algorithm arrives as the algorithm's message
    dialog.input_kind.setCurrentIndex(0)
    dialog.amplitude_reference.combo.setAdditionalItems([])
    dialog.interferogram.set_path(str(Path(pair_files["ifg"]).with_name("missing.tif")))
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=TIMEOUT_MS)
    assert "missing.tif" in dialog.message.text() and "Traceback" not in dialog.message.text()


def test_filter_on_canvas_extent_filters_only_the_visible_window(qtbot, iface, pair_files):
    from qgis_insar_ml.gui.filter_dialog import FilterDialog

    layer = QgsRasterLayer(pair_files["ifg"], "ifg")
    QgsProject.instance().addMapLayer(layer)
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    full = layer.extent()
    center = full.center()
    canvas.setExtent(QgsRectangle(center.x() - 200, center.y() - 200, center.x() + 200, center.y() + 200))
    dialog = FilterDialog(iface, "boxcar")
    qtbot.addWidget(dialog)
    dialog.interferogram.combo.setLayer(layer)
    dialog.extent.setCurrentIndex(dialog.extent.findData("canvas"))
    run_dialog(qtbot, dialog)
    phase = group_layers("ifg")[0]
    assert 0 < phase.width() * phase.height() < 64 * 64 / 2, dialog.message.text()
    assert full.contains(phase.extent()) and phase.extent().contains(center)


def simulate_in_dialog(qtbot, iface, choices: dict[str, str], size: tuple[int, int], seed: int) -> tuple:
    """Run the Simulate dialog with combo-box ``choices`` (widget name → item data): (dialog, its layers)."""
    from qgis_insar_ml.gui.simulate_dialog import SimulateDialog

    dialog = SimulateDialog(iface)
    qtbot.addWidget(dialog)
    for widget, data in choices.items():
        combo = getattr(dialog, widget)
        combo.setCurrentIndex(combo.findData(data))
    dialog.width_box.setValue(size[0])
    dialog.height_box.setValue(size[1])
    dialog.seed.setValue(seed)
    run_dialog(qtbot, dialog)
    return dialog, group_layers(dialog.name())


def test_simulate_dialog_adds_noisy_and_clean_phase_and_coherence(qtbot, iface):
    from qgis_insar_ml.gui.simulate_dialog import CONFIGURATIONS

    dialog, (noisy, clean, coherence) = simulate_in_dialog(qtbot, iface, {"configuration": "S3-F2-NS"}, (48, 32), 4)
    assert dialog.configuration.count() == len(CONFIGURATIONS) == 18
    assert dialog.name() == "sim_S3-F2-NS_seed4"
    assert (noisy.width(), noisy.height()) == (48, 32)
    assert [layer.customProperty("insarml/style") for layer in (noisy, clean, coherence)] == \
        ["phase", "phase", "coherence"]
    phase = noisy.dataProvider().block(1, noisy.extent(), 48, 32)
    values = np.array([[phase.value(r, c) for c in range(48)] for r in range(32)])
    assert -math.pi <= values.min() < -2 and 2 < values.max() <= math.pi  # noisy phase covers the circle
    assert json.loads(clean.customProperty("insarml/parameters"))["NOISE_LEVEL"] == "S3"
    assert 0 < read_band(coherence.source()).mean() < 1


def test_simulate_dialog_realistic_multilooked_scene(qtbot, iface):
    dialog, (noisy, clean, coherence) = simulate_in_dialog(
        qtbot, iface, {"noise_model": "realistic", "looks": "4x20"}, (64, 48), 2)
    assert dialog.configuration.isHidden() and not dialog.looks.isHidden()
    assert dialog.name() == "sim_realistic_4x20_seed2"
    assert (noisy.width(), noisy.height()) == (64, 48)
    parameters = json.loads(clean.customProperty("insarml/parameters"))
    assert parameters["NOISE_MODEL"] == "realistic" and parameters["LOOKS"] == "4x20"
    assert "OUTPUT_SLC_REFERENCE" not in parameters and "OUTPUT_AMPLITUDE_REFERENCE" in parameters
    phase = read_band(clean.source())
    assert np.nanmin(phase) >= -math.pi and np.nanmax(phase) <= math.pi and np.isfinite(phase).mean() > 0.5
    gamma = read_band(coherence.source())
    assert 0 <= np.nanmin(gamma) and np.nanmax(gamma) <= 1


@pytest.fixture
def user_models(tmp_path):
    """An empty user model folder for the test (own_settings restores the setting)."""
    from qgis_insar_ml.gui import settings

    settings.put("model_folder", str(tmp_path / "user_models"))
    return tmp_path / "user_models"


def tiny_pdm_file(folder: Path) -> Path:
    from test_pdm_processing import tiny_pdm

    folder.mkdir(parents=True, exist_ok=True)
    return tiny_pdm(folder / "tiny_pdm.safetensors")


def test_generate_dialog_previews_then_adds_styled_scenes(qtbot, iface, user_models):
    from qgis_insar_ml.gui.generate_dialog import GenerateDialog

    tiny_pdm_file(user_models)
    dialog = GenerateDialog(iface)
    qtbot.addWidget(dialog)
    dialog.model.combo.setCurrentIndex(dialog.model.combo.findText("tiny_pdm (user)"))
    assert "tiny_pdm (pdm, user model" in dialog.model.summary.text()
    classes = [dialog.class_label.itemText(i) for i in range(dialog.class_label.count())]
    assert classes[0].startswith("all classes") and len(classes) > 2
    dialog.class_label.setCurrentIndex(2)
    dialog.count.setValue(3)
    dialog.sampler.setCurrentText("ddim")
    dialog.steps.setValue(3)
    dialog.seed.setValue(5)
    dialog.wrapped.setChecked(True)
    run_dialog(qtbot, dialog)
    assert not dialog.preview.isHidden() and len(dialog.preview.figure.axes) == 3
    assert dialog.add_to_map.isEnabled()
    dialog.add_to_map.click()
    layers = group_layers("PDM tiny_pdm seed 5")
    assert len(layers) == 3 and all(classes[2] in layer.name() for layer in layers)
    for layer in layers:
        assert layer.bandCount() == 2 and layer.customProperty("insarml/style") == "unwrapped"
        assert layer.customProperty("insarml/model").endswith("tiny_pdm.safetensors")
        shader = layer.renderer().shader().rasterShaderFunction()
        scene = read_band(layer.source())
        assert shader.maximumValue() == pytest.approx(np.abs(scene).max(), rel=1e-4) == -shader.minimumValue()
        np.testing.assert_allclose(read_band(layer.source(), 2), np.angle(np.exp(1j * scene)), atol=1e-5)


def test_generate_dialog_places_scenes_on_the_canvas_and_lists_new_models(qtbot, iface, user_models):
    from qgis_insar_ml.gui.generate_dialog import GenerateDialog

    dialog = GenerateDialog(iface)
    qtbot.addWidget(dialog)
    assert "tiny_pdm (user)" not in [dialog.model.combo.itemText(i) for i in range(dialog.model.combo.count())]
    tiny_pdm_file(user_models)  # e.g. trained meanwhile: listed when the dialog is shown again
    dialog.show()
    dialog.model.combo.setCurrentIndex(dialog.model.combo.findText("tiny_pdm (user)"))
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    canvas.setExtent(QgsRectangle(500000, 5800000, 510000, 5810000))
    dialog.placement.setCurrentIndex(dialog.placement.findData("canvas"))
    dialog.pixel_size.setValue(50)
    dialog.count.setValue(1)
    dialog.steps.setValue(2)
    dialog.sampler.setCurrentText("ddim")
    run_dialog(qtbot, dialog)
    dialog.add_to_map.click()
    layer = group_layers("PDM tiny_pdm seed 0")[0]
    assert layer.crs().authid() == "EPSG:32631"
    assert layer.rasterUnitsPerPixelX() == pytest.approx(50)
    assert canvas.extent().contains(layer.extent().center())


def test_generate_dialog_cancel_stops_the_task(qtbot, iface, user_models):
    from qgis_insar_ml.gui.generate_dialog import GenerateDialog

    tiny_pdm_file(user_models)
    dialog = GenerateDialog(iface)
    qtbot.addWidget(dialog)
    dialog.model.combo.setCurrentIndex(dialog.model.combo.findText("tiny_pdm (user)"))
    dialog.count.setValue(64)
    dialog.sampler.setCurrentText("ancestral")
    dialog.steps.setValue(50)
    dialog.run_button.click()
    assert dialog.cancel_button.isEnabled()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=TIMEOUT_MS)
    assert "cancel" in dialog.message.text().lower() and not dialog.add_to_map.isEnabled()
    assert dialog.run_button.isEnabled()


def test_models_dialog_lists_cards_and_imports_safely(qtbot, user_models, tmp_path):
    from qgis_insar_ml.gui.models_dialog import ModelsDialog

    source = tiny_pdm_file(tmp_path / "elsewhere")
    dialog = ModelsDialog()
    qtbot.addWidget(dialog)
    names = [dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount())]
    assert "deepinsar_4ch" in names and "deepinsar_phase" in names
    row = names.index("deepinsar_4ch")
    assert dialog.table.item(row, 1).text() == "deepinsar" and "phase RMSE" in dialog.table.item(row, 4).text()
    assert dialog.import_file(source)
    assert (user_models / "tiny_pdm.safetensors").is_file() and (user_models / "tiny_pdm.json").is_file()
    assert "tiny_pdm" in [dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount())]
    pickle = tmp_path / "evil.pt"
    pickle.write_bytes(b"not a model")
    assert not dialog.import_file(pickle) and "no metadata.json beside it" in dialog.message.text()
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage")
    corrupt.with_suffix(".json").write_text(json.dumps({"format": "qgis_insar_ml.deepinsar", "kind": "deepinsar"}))
    assert not dialog.import_file(corrupt) and "Not imported" in dialog.message.text()
    assert not (user_models / "corrupt.safetensors").exists()


def test_diagnostics_lists_versions_and_copies_them(qtbot):
    from qgis.PyQt.QtWidgets import QApplication

    from qgis_insar_ml.gui.diagnostics import DiagnosticsDialog

    dialog = DiagnosticsDialog()
    qtbot.addWidget(dialog)
    text = dialog.text.toPlainText()
    for expected in ("QGIS 3.", "GDAL ", "Python 3.", "torch ", "CUDA ", "Shipped model folder", "deepinsar_4ch"):
        assert expected in text
    dialog.copy()
    assert QApplication.clipboard().text() == text


def test_install_button_runs_the_command_in_a_task_and_shows_its_output(qtbot, monkeypatch):
    from qgis_insar_ml.gui import widgets

    monkeypatch.setattr(widgets, "install_command", lambda: "echo pip-output-here")
    notice = widgets.TorchNotice()
    qtbot.addWidget(notice)
    notice.install.click()
    assert not notice.install.isEnabled()
    qtbot.waitUntil(lambda: "Installed" in notice.output.toPlainText(), timeout=TIMEOUT_MS)
    assert "pip-output-here" in notice.output.toPlainText()


NO_TORCH_GUI = r"""
import sys
sys.modules["torch"] = None  # as on a QGIS without torch
sys.path.insert(0, {repo!r})
sys.path.append("/usr/share/qgis/python/plugins")
from qgis.core import QgsApplication
app = QgsApplication([], True)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from qgis.PyQt.QtWidgets import QMainWindow, QMenu
class Iface:
    def __init__(self):
        self.window = QMainWindow()
    def mainWindow(self):
        return self.window
    def addToolBar(self, name):
        return self.window.addToolBar(name)
    def addPluginToRasterMenu(self, name, action):
        pass
    def removePluginRasterMenu(self, name, action):
        pass
import qgis_insar_ml
plugin = qgis_insar_ml.classFactory(Iface())
plugin.initGui()
print("ACTIONS", len(plugin.toolbar.actions()))
for key in ("filter", "generate", "train_pdm"):
    factory = [t for t in plugin.tools() if t[0] == key][0][3]
    dialog = plugin.open_dialog(key, factory)
    print(key, "NOTICE", dialog.notice.isVisible(), "RUN", dialog.run_button.isEnabled())
    print("TEXT", dialog.notice.message.text())
plugin.unload()
"""


def test_without_torch_the_plugin_loads_and_dialogs_show_the_install_command():
    done = subprocess.run([sys.executable, "-c", NO_TORCH_GUI.format(repo=str(REPO))],
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=120)
    assert "ACTIONS 9" in done.stdout, done.stderr
    for key in ("filter", "generate", "train_pdm"):
        assert f"{key} NOTICE True RUN False" in done.stdout, done.stdout + done.stderr
    assert "-m pip install --user torch==2.13.0 safetensors" in done.stdout
