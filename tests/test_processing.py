"""The plugin in real headless QGIS: loading, the provider, every algorithm, models, qgis_process."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildParameterSource,
)
from qgis.PyQt.QtWidgets import QMenu

from conftest import REPO, model_child, noisy_fringes, read_band, run_model_file, write_raster

ALGORITHM_IDS = {"insarml:simulate_pair", "insarml:filter_boxcar", "insarml:filter_goldstein",
                 "insarml:evaluate_filter", "insarml:deepinsar_filter", "insarml:deepinsar_train",
                 "insarml:synthetic_dataset", "insarml:pdm_train", "insarml:pdm_generate", "insarml:pdm_superresolve",
                 "insarml:pdm_evaluate", "insarml:filter_stack"}


def run(algorithm: str, parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run(algorithm, parameters, feedback=feedback or QgsProcessingFeedback())


def simulate(tmp_path: Path, size: int = 160, **overrides) -> dict:
    names = ["OUTPUT_SLC_REFERENCE", "OUTPUT_SLC_SECONDARY", "OUTPUT_INTERFEROGRAM", "OUTPUT_CLEAN_PHASE",
             "OUTPUT_COHERENCE"]
    params = {"WIDTH": size, "HEIGHT": size, "NOISE_LEVEL": "S2", "FRINGE_LEVEL": "F1", "STRIPS": False, "SEED": 3,
              **{n: str(tmp_path / f"{n.lower()}.tif") for n in names}, **overrides}
    return run("insarml:simulate_pair", params)


class RasterMenuIface:
    """pytest-qgis's iface plus the raster-menu calls the plugin makes, on a real QMenu."""

    def __init__(self, iface):
        self._iface = iface
        self.raster_menu = QMenu("Raster", iface.mainWindow())
        self.submenus: dict[str, QMenu] = {}

    def __getattr__(self, name):
        return getattr(self._iface, name)

    def addPluginToRasterMenu(self, name, action):  # noqa: N802
        self.submenus.setdefault(name, self.raster_menu.addMenu(name)).addAction(action)

    def removePluginRasterMenu(self, name, action):  # noqa: N802
        self.submenus[name].removeAction(action)


def test_plugin_loads_adds_toolbar_and_menu_and_unloads(qgis_iface, qgis_processing):
    import qgis_insar_ml

    iface = RasterMenuIface(qgis_iface)
    plugin = qgis_insar_ml.classFactory(iface)
    registry = QgsApplication.processingRegistry()
    already = registry.providerById("insarml")
    if already is not None:
        registry.removeProvider(already)
    plugin.initGui()
    try:
        provider = registry.providerById("insarml")
        assert {a.id() for a in provider.algorithms()} == ALGORITHM_IDS
        names = ["Filter & coherence (DeepInSAR)", "Classical filters", "Generate scenes (PDM)", "Super-resolve",
                 "Simulate pair", "Train DeepInSAR", "Train PDM", "Models", "Diagnostics"]
        assert [a.text() for a in plugin.toolbar.actions()] == names
        assert [a.text() for a in iface.submenus["InSAR ML"].actions()] == names
        assert all(not a.icon().isNull() for a in plugin.toolbar.actions())
    finally:
        plugin.unload()
    assert registry.providerById("insarml") is None
    assert iface.submenus["InSAR ML"].actions() == []


def test_provider_lists_algorithms(insarml_provider):
    assert {a.id() for a in insarml_provider.algorithms()} == ALGORITHM_IDS
    for alg in insarml_provider.algorithms():
        assert alg.shortHelpString() and alg.group()


def test_simulate_pair_writes_physically_consistent_rasters(tmp_path, insarml_provider):
    out = simulate(tmp_path)
    s1, s2 = read_band(out["OUTPUT_SLC_REFERENCE"]), read_band(out["OUTPUT_SLC_SECONDARY"])
    ifg, clean = read_band(out["OUTPUT_INTERFEROGRAM"]), read_band(out["OUTPUT_CLEAN_PHASE"])
    assert ifg.dtype == np.complex64 and clean.dtype == np.float32
    np.testing.assert_allclose(ifg, s1 * np.conj(s2), rtol=1e-5, atol=1e-6)
    coherence = read_band(out["OUTPUT_COHERENCE"])
    assert coherence[:, :20].mean() < coherence[:, -20:].mean()
    # same seed, same pixels
    again = simulate(tmp_path / "..", **{"OUTPUT_CLEAN_PHASE": str(tmp_path / "again.tif")})
    np.testing.assert_array_equal(read_band(again["OUTPUT_CLEAN_PHASE"]), clean)


def test_boxcar_and_goldstein_reduce_error_and_score_through_evaluate(tmp_path, insarml_provider):
    sim = simulate(tmp_path, size=200)
    truth = {"REFERENCE_PHASE": sim["OUTPUT_CLEAN_PHASE"], "REFERENCE_COHERENCE": sim["OUTPUT_COHERENCE"]}
    noisy = run("insarml:evaluate_filter", {"ESTIMATED_PHASE": sim["OUTPUT_INTERFEROGRAM"], **{"REFERENCE_PHASE": sim["OUTPUT_CLEAN_PHASE"]}})
    box = run("insarml:filter_boxcar", {"SLC_REFERENCE": sim["OUTPUT_SLC_REFERENCE"],
                                        "SLC_SECONDARY": sim["OUTPUT_SLC_SECONDARY"], "WINDOW": 5,
                                        "TILE_SIZE": 96, "OUTPUT_PHASE": str(tmp_path / "box_phase.tif"),
                                        "OUTPUT_COHERENCE": str(tmp_path / "box_coh.tif")})
    gold = run("insarml:filter_goldstein", {"INTERFEROGRAM": sim["OUTPUT_INTERFEROGRAM"], "ALPHA": 0.8,
                                            "OUTPUT_PHASE": str(tmp_path / "gold.tif"),
                                            "OUTPUT_COHERENCE": str(tmp_path / "gold_coh.tif")})
    report = tmp_path / "box.json"
    box_score = run("insarml:evaluate_filter", {"ESTIMATED_PHASE": box["OUTPUT_PHASE"],
                                                "ESTIMATED_COHERENCE": box["OUTPUT_COHERENCE"], **truth,
                                                "OUTPUT_REPORT": str(report)})
    gold_score = run("insarml:evaluate_filter", {"ESTIMATED_PHASE": gold["OUTPUT_PHASE"], **truth,
                                                 "ESTIMATED_COHERENCE": gold["OUTPUT_COHERENCE"]})
    assert box_score["PHASE_RMSE"] < 0.6 * noisy["PHASE_RMSE"]
    assert gold_score["PHASE_RMSE"] < 0.8 * noisy["PHASE_RMSE"]
    assert box_score["RESIDUE_COUNT"] < 0.2 * noisy["RESIDUE_COUNT"]
    assert box_score["PHASE_SSIM"] > noisy["PHASE_SSIM"]
    assert 0 < box_score["COHERENCE_RMSE"] < 0.25
    assert json.loads(report.read_text())["metrics"]["PHASE_RMSE"] == pytest.approx(box_score["PHASE_RMSE"])
    ds = gdal.Open(box["OUTPUT_PHASE"])
    assert ds.GetMetadataItem("INSARML_ALGORITHM") == "insarml:filter_boxcar"
    assert json.loads(ds.GetMetadataItem("INSARML_PARAMETERS"))["WINDOW"] == 5


def test_phase_only_input_and_html_report(tmp_path, insarml_provider):
    clean, noisy = noisy_fringes(120, 140, sigma=0.6)
    phase = write_raster(tmp_path / "phase.tif", np.angle(noisy).astype(np.float32))
    ref = write_raster(tmp_path / "clean.tif", clean)
    out = run("insarml:filter_boxcar", {"INTERFEROGRAM": phase, "WINDOW": 7,
                                        "OUTPUT_PHASE": str(tmp_path / "p.tif"), "OUTPUT_COHERENCE": str(tmp_path / "c.tif")})
    score = run("insarml:evaluate_filter", {"ESTIMATED_PHASE": out["OUTPUT_PHASE"], "REFERENCE_PHASE": ref,
                                            "OUTPUT_REPORT": str(tmp_path / "r.html")})
    assert score["PHASE_RMSE"] < 0.15
    assert "<td>PHASE_RMSE</td>" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("case,message", [
    ("real_as_slc", "is a real raster with 1 band"),
    ("different_sizes", "must be co-registered on the same pixel grid"),
    ("one_pixel", "only 1×1 pixels"),
    ("all_nodata", "no valid pixel"),
    ("missing_file", "nope.tif"),
])
def test_bad_input_gives_a_clear_processing_error(tmp_path, insarml_provider, case, message):
    _, ifg = noisy_fringes(40, 50)
    amp = np.abs(ifg).astype(np.float32)
    params = {"WINDOW": 5, "OUTPUT_PHASE": str(tmp_path / "p.tif"), "OUTPUT_COHERENCE": str(tmp_path / "c.tif")}
    if case == "real_as_slc":
        params |= {"SLC_REFERENCE": write_raster(tmp_path / "a.tif", amp), "SLC_SECONDARY": write_raster(tmp_path / "b.tif", ifg)}
    elif case == "different_sizes":
        params |= {"SLC_REFERENCE": write_raster(tmp_path / "a.tif", ifg),
                   "SLC_SECONDARY": write_raster(tmp_path / "b.tif", ifg[:30].copy())}
    elif case == "one_pixel":
        params |= {"INTERFEROGRAM": write_raster(tmp_path / "a.tif", ifg[:1, :1].copy())}
    elif case == "all_nodata":
        params |= {"INTERFEROGRAM": write_raster(tmp_path / "a.tif", np.full((40, 50), -1.0, np.float32), nodata=-1.0)}
    else:
        params |= {"INTERFEROGRAM": str(tmp_path / "nope.tif")}
    with pytest.raises(QgsProcessingException, match=message):
        run("insarml:filter_boxcar", params)
    assert not (tmp_path / "p.tif").exists() and not (tmp_path / "c.tif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cancel_in_processing_leaves_no_output(tmp_path, insarml_provider):
    _, ifg = noisy_fringes(300, 300)
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p > 20 else None)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("insarml:filter_goldstein", {"INTERFEROGRAM": write_raster(tmp_path / "ifg.tif", ifg), "TILE_SIZE": 96,
                                         "OUTPUT_PHASE": str(tmp_path / "g.tif")}, feedback)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ifg.tif"]


def test_model3_chains_simulate_boxcar_evaluate(tmp_path, insarml_provider):
    model = QgsProcessingModelAlgorithm("simulate_filter_score", "InSAR ML")
    static, output = QgsProcessingModelChildParameterSource.fromStaticValue, QgsProcessingModelChildParameterSource.fromChildOutput
    model.addChildAlgorithm(model_child("sim", "insarml:simulate_pair", {
        "WIDTH": static(96), "HEIGHT": static(96), "NOISE_LEVEL": static("S1"), "FRINGE_LEVEL": static("F1"),
        "STRIPS": static(True), "SEED": static(5)}))
    model.addChildAlgorithm(model_child("box", "insarml:filter_boxcar", {
        "INTERFEROGRAM": output("sim", "OUTPUT_INTERFEROGRAM"), "WINDOW": static(5)}))
    model.addChildAlgorithm(model_child("score", "insarml:evaluate_filter", {
        "ESTIMATED_PHASE": output("box", "OUTPUT_PHASE"), "REFERENCE_PHASE": output("sim", "OUTPUT_CLEAN_PHASE"),
        "ESTIMATED_COHERENCE": output("box", "OUTPUT_COHERENCE"), "REFERENCE_COHERENCE": output("sim", "OUTPUT_COHERENCE")},
        {"report": "OUTPUT_REPORT"}))
    run_model_file(model, tmp_path / "chain.model3", str(tmp_path / "report.json"))
    metrics = json.loads((tmp_path / "report.json").read_text())["metrics"]
    assert 0 < metrics["PHASE_RMSE"] < 1.0 and metrics["COHERENCE_RMSE"] < 0.3


def staged_plugin_dir(tmp_path: Path) -> Path:
    """A plugin folder like the installed one, made of links to the checkout."""
    plugin = tmp_path / "plugins" / "qgis_insar_ml"
    plugin.mkdir(parents=True)
    for item in [*(REPO / "qgis_insar_ml").iterdir(), REPO / "metadata.txt", REPO / "resources", REPO / "models"]:
        if item.name != "__pycache__":
            (plugin / item.name).symlink_to(item)
    return plugin.parent


def test_qgis_process_runs_the_algorithms(tmp_path):
    binary = os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(staged_plugin_dir(tmp_path)),
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile")}
    subprocess.run([binary, "plugins", "enable", "qgis_insar_ml"], env=env, check=True, capture_output=True)
    sim = subprocess.run([binary, "--json", "run", "insarml:simulate_pair", "--", "WIDTH=64", "HEIGHT=48",
                          "NOISE_LEVEL=S3", "FRINGE_LEVEL=F2", "STRIPS=false", "SEED=2",
                          f"OUTPUT_INTERFEROGRAM={tmp_path / 'ifg.tif'}", f"OUTPUT_CLEAN_PHASE={tmp_path / 'clean.tif'}"],
                         env=env, capture_output=True, text=True)
    assert sim.returncode == 0, sim.stderr
    assert json.loads(sim.stdout[sim.stdout.index("{"):])["results"]["OUTPUT_INTERFEROGRAM"] == str(tmp_path / "ifg.tif")
    assert read_band(str(tmp_path / "ifg.tif")).shape == (48, 64)
    bad = subprocess.run([binary, "run", "insarml:filter_boxcar", "--", f"INTERFEROGRAM={tmp_path / 'clean.tif'}",
                          "WINDOW=4", f"OUTPUT_PHASE={tmp_path / 'p.tif'}", f"OUTPUT_COHERENCE={tmp_path / 'c.tif'}"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "WINDOW must be an odd number" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    assert not (tmp_path / "p.tif").exists()
