"""DeepInSAR in real QGIS: the algorithms, a train → filter model, qgis_process, no torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildParameterSource,
)

from qgis_insar_ml.core.simulator import simulate_pair

from conftest import REPO, model_child, read_band, run_model_file, write_raster
from test_deepinsar import _tiny_model
from test_processing import run, staged_plugin_dir


@pytest.fixture
def pair_files(tmp_path):
    pair = simulate_pair(96, 112, "S2", "F2", True, 12)
    return {"s1": write_raster(tmp_path / "s1.tif", pair.reference), "s2": write_raster(tmp_path / "s2.tif", pair.secondary),
            "ifg": write_raster(tmp_path / "ifg.tif", pair.interferogram),
            "phase": write_raster(tmp_path / "phase.tif", np.angle(pair.interferogram).astype(np.float32))}


def test_deepinsar_filter_runs_through_processing(tmp_path, insarml_provider, pair_files):
    feedback = QgsProcessingFeedback()
    logged = []
    feedback.pushInfo = logged.append
    out = run("insarml:deepinsar_filter", {
        "SLC_REFERENCE": pair_files["s1"], "SLC_SECONDARY": pair_files["s2"], "MODEL": _tiny_model(tmp_path, 4),
        "DEVICE": "cpu", "TILE_SIZE": 64, "OUTPUT_PHASE": str(tmp_path / "p.tif"),
        "OUTPUT_COHERENCE": str(tmp_path / "c.tif"), "OUTPUT_INTERFEROGRAM": str(tmp_path / "i.tif")}, feedback)
    phase, coherence, ifg = (read_band(out[k]) for k in ("OUTPUT_PHASE", "OUTPUT_COHERENCE", "OUTPUT_INTERFEROGRAM"))
    assert np.abs(phase).max() <= np.pi + 1e-6 and ((coherence >= 0) & (coherence <= 1)).all()
    np.testing.assert_allclose(np.abs(ifg), coherence, rtol=1e-5, atol=1e-6)
    assert any("on cpu" in line for line in logged)
    from osgeo import gdal

    assert gdal.Open(out["OUTPUT_PHASE"]).GetMetadataItem("INSARML_MODEL") == "tiny4.safetensors"


@pytest.mark.parametrize("case,message", [
    ("phase_with_4ch", "takes phase and amplitudes"),
    ("corrupt_model", "corrupt or not a safetensors file"),
    ("pickle_model", "PyTorch pickle"),
    ("no_gpu", "sees no CUDA GPU"),
])
def test_deepinsar_filter_bad_input(tmp_path, insarml_provider, pair_files, case, message):
    params = {"INTERFEROGRAM": pair_files["phase"], "MODEL": _tiny_model(tmp_path, 4),
              "OUTPUT_PHASE": str(tmp_path / "p.tif")}
    if case == "corrupt_model":
        params["MODEL"] = _tiny_model(tmp_path, 2)
        open(params["MODEL"], "wb").write(b"\x00garbage")
    elif case == "pickle_model":
        params["MODEL"] = str(tmp_path / "model.pt")
        open(params["MODEL"], "wb").write(b"\x80\x04N.")
    elif case == "no_gpu":
        params |= {"MODEL": _tiny_model(tmp_path, 2), "DEVICE": "cuda:0"}
        if __import__("torch").cuda.is_available():
            pytest.skip("this machine has a GPU")
    with pytest.raises(QgsProcessingException, match=message):
        run("insarml:deepinsar_filter", params)
    assert not (tmp_path / "p.tif").exists()


def test_deepinsar_filter_cancel_leaves_no_output(tmp_path, insarml_provider, pair_files):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p > 10 else None)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("insarml:deepinsar_filter", {"INTERFEROGRAM": pair_files["phase"], "MODEL": _tiny_model(tmp_path, 2),
                                         "TILE_SIZE": 48, "OVERLAP": 8, "OUTPUT_PHASE": str(tmp_path / "p.tif")}, feedback)
    assert not (tmp_path / "p.tif").exists()


def test_model_chain_train_then_filter(tmp_path, insarml_provider, pair_files):
    model = QgsProcessingModelAlgorithm("train_then_filter", "InSAR ML")
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    model.addChildAlgorithm(model_child("train", "insarml:deepinsar_train", {
        name: static(value) for name, value in {
            "INPUT_KIND": "phase", "STEPS": 3, "BATCH_SIZE": 2, "PATCH_SIZE": 32, "VALIDATE_EVERY": 3,
            "CHECKPOINT_EVERY": 3, "DEVICE": "cpu", "OUTPUT_MODEL": str(tmp_path / "chain.safetensors")}.items()}))
    model.addChildAlgorithm(model_child("filter", "insarml:deepinsar_filter", {
        "INTERFEROGRAM": static(pair_files["phase"]),
        "MODEL": QgsProcessingModelChildParameterSource.fromChildOutput("train", "OUTPUT_MODEL")},
        {"phase": "OUTPUT_PHASE"}))
    run_model_file(model, tmp_path / "chain.model3", str(tmp_path / "filtered.tif"))
    card = json.loads((tmp_path / "chain.json").read_text())
    assert card["input"] == "phase" and card["training"]["steps"] == 3
    assert np.isfinite(read_band(str(tmp_path / "filtered.tif"))).all()


def test_qgis_process_runs_deepinsar_filter(tmp_path, pair_files):
    import torch

    binary = os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin")
    site = os.path.dirname(os.path.dirname(torch.__file__))  # QGIS's Python sees torch as a user install would
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(staged_plugin_dir(tmp_path)),
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile"), "PYTHONPATH": site}
    subprocess.run([binary, "plugins", "enable", "qgis_insar_ml"], env=env, check=True, capture_output=True)
    done = subprocess.run([binary, "--json", "run", "insarml:deepinsar_filter", "--", f"INTERFEROGRAM={pair_files['phase']}",
                           f"MODEL={_tiny_model(tmp_path, 2)}", f"OUTPUT_PHASE={tmp_path / 'p.tif'}",
                           f"OUTPUT_COHERENCE={tmp_path / 'c.tif'}"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert read_band(str(tmp_path / "p.tif")).shape == (96, 112)


NO_TORCH = r"""
import sys
sys.modules["torch"] = None  # make torch unimportable, as on a QGIS without it
sys.path.insert(0, {repo!r})
sys.path.append("/usr/share/qgis/python/plugins")  # the Processing plugin, as QGIS puts it
from qgis.core import QgsApplication, QgsProcessingFeedback
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from qgis_insar_ml.processing.provider import InsarMlProvider
provider = InsarMlProvider()  # keep the Python object alive
QgsApplication.processingRegistry().addProvider(provider)
import processing
ids = sorted(a.id() for a in QgsApplication.processingRegistry().providerById("insarml").algorithms())
print("ALGORITHMS", ",".join(ids))
try:
    processing.run("insarml:deepinsar_filter", {{"INTERFEROGRAM": {phase!r}, "OUTPUT_PHASE": {out!r}}})
except Exception as exc:
    print("ERROR", exc)
"""


def test_plugin_loads_without_torch_and_explains_the_install(tmp_path, pair_files):
    code = NO_TORCH.format(repo=str(REPO), phase=pair_files["phase"], out=str(tmp_path / "p.tif"))
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                          capture_output=True, text=True, timeout=120)
    assert "insarml:deepinsar_filter" in done.stdout and "insarml:filter_boxcar" in done.stdout, done.stderr
    assert "needs PyTorch" in done.stdout and "python3.11 -m pip install --user torch==2.13.0 safetensors" in done.stdout
    assert not (tmp_path / "p.tif").exists()
