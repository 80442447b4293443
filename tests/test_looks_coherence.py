"""The looks-aware coherence of phase-only interferograms: the shipped estimator, LOOKS, fitting."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from qgis_insar_ml.core.deepinsar.inference import filter_arrays, filter_deepinsar_raster
from qgis_insar_ml.core.deepinsar.looks_coherence import (CARD_KEY, LooksCoherence, fit_looks_coherence,
                                                          parse_look_count)
from qgis_insar_ml.core.deepinsar.modelfile import load_model
from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.inputs import InterferogramBlock, InterferogramSource
from qgis_insar_ml.core.products import open_product
from qgis_insar_ml.core.realistic_simulator import simulate_realistic_pair
from qgis_insar_ml.core.stack import StackFilter, filter_stack

from conftest import REPO, read_band, write_raster
from test_deepinsar import SHIPPED_4CH, SHIPPED_PHASE, _tiny_model
from test_processing import run
from test_stack import PAIRS, make_frame, outputs, phase_input

INTERIOR = slice(24, -24)


@pytest.mark.parametrize("text,expected", [("20x4", 80.0), ("4 x 1", 4.0), ("3.5", 3.5), ("", None), (None, None),
                                           (12, 12.0)])
def test_looks_are_read_as_users_write_them(text, expected):
    assert parse_look_count(text) == expected


@pytest.mark.parametrize("text,message", [("abc", "rows x columns"), ("0.5", "between 1 and 160"),
                                          ("400", "between 1 and 160"), ("0x4", "rows x columns"),
                                          ("nan", "between 1 and 160")])
def test_bad_looks_get_one_clear_error(text, message):
    with pytest.raises(InsarMlError, match=message):
        parse_look_count(text)


def _estimates(net, estimator, gamma: float, looks: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """(mean, RMSE against the truth) of the head and the looks-aware estimate over three scenes."""
    out: dict[str, list[np.ndarray]] = {"head": [], "looks": []}
    truth = []
    for seed in (1, 2, 3):
        scene = simulate_realistic_pair(160, 160, seed, looks, coherence=gamma, holes=False,
                                        signals=("deformation", "turbulence"))
        block = InterferogramBlock(scene.interferogram, None, None, scene.valid)
        out["head"].append(filter_arrays(net, block)[1][INTERIOR, INTERIOR])
        out["looks"].append(filter_arrays(net, block, coherence_from_looks=partial(
            estimator.estimate, looks=float(looks[0] * looks[1])))[1][INTERIOR, INTERIOR])
        truth.append(scene.coherence[INTERIOR, INTERIOR])
    true = np.stack(truth)
    return {k: (float(np.mean(v)), float(np.sqrt(np.mean((np.stack(v) - true) ** 2)))) for k, v in out.items()}


def test_known_looks_separate_a_coherent_single_look_phase_from_a_multilooked_incoherent_one():
    """The head reads γ = 0.85 single look and γ = 0.35 with 4×1 looks alike; with the looks they part."""
    net, card = load_model(SHIPPED_PHASE)
    estimator = LooksCoherence.from_card(card, SHIPPED_PHASE.name)
    coherent = _estimates(net, estimator, 0.85, (1, 1))
    multilooked = _estimates(net, estimator, 0.35, (4, 1))
    assert abs(coherent["head"][0] - multilooked["head"][0]) < 0.15
    assert coherent["looks"][0] - multilooked["looks"][0] > 0.3
    for case in (coherent, multilooked):
        assert case["looks"][1] < 0.7 * case["head"][1]
    assert multilooked["looks"][1] < 0.08 and coherent["looks"][1] < 0.15


@pytest.fixture
def phase_raster(tmp_path):
    scene = simulate_realistic_pair(96, 96, 5, (4, 1), coherence=0.4, holes=False)
    return write_raster(tmp_path / "phase.tif", np.angle(scene.interferogram).astype(np.float32))


def test_looks_change_the_coherence_of_a_phase_raster_and_are_recorded(tmp_path, phase_raster):
    source = InterferogramSource(interferogram=phase_raster)
    outputs = {}
    for looks in (None, "4x1"):
        name = "head" if looks is None else "looks"
        outputs[name] = filter_deepinsar_raster(source, device="cpu", output_phase=str(tmp_path / f"{name}_p.tif"),
                                                output_coherence=str(tmp_path / f"{name}_c.tif"), looks=looks)
    head, calibrated = (read_band(outputs[k]["OUTPUT_COHERENCE"]) for k in ("head", "looks"))
    np.testing.assert_array_equal(read_band(outputs["head"]["OUTPUT_PHASE"]), read_band(outputs["looks"]["OUTPUT_PHASE"]))
    assert abs(float(calibrated[INTERIOR, INTERIOR].mean()) - 0.4) < abs(float(head[INTERIOR, INTERIOR].mean()) - 0.4)
    recorded = json.loads(gdal.Open(outputs["looks"]["OUTPUT_COHERENCE"]).GetMetadataItem("INSARML_PARAMETERS"))
    assert recorded["LOOKS"] == 4.0


def test_looks_with_a_model_whose_card_has_no_estimator_are_refused(tmp_path, phase_raster):
    with pytest.raises(InsarMlError, match="has no looks-aware coherence in its card.*fit-looks-coherence"):
        filter_deepinsar_raster(InterferogramSource(interferogram=phase_raster), _tiny_model(tmp_path, 2),
                                output_coherence=str(tmp_path / "c.tif"), looks=4)
    assert not (tmp_path / "c.tif").exists()


def test_looks_go_through_processing_and_bad_ones_are_named(tmp_path, insarml_provider, phase_raster):
    out = run("insarml:deepinsar_filter", {"INTERFEROGRAM": phase_raster, "DEVICE": "cpu", "LOOKS": "4x1",
                                           "OUTPUT_COHERENCE": str(tmp_path / "c.tif"), "OUTPUT_PHASE": None})
    coherence = read_band(out["OUTPUT_COHERENCE"])
    assert abs(float(coherence[INTERIOR, INTERIOR].mean()) - 0.4) < 0.1
    with pytest.raises(QgsProcessingException, match="LOOKS must be rows x columns"):
        run("insarml:deepinsar_filter", {"INTERFEROGRAM": phase_raster, "LOOKS": "four",
                                         "OUTPUT_COHERENCE": str(tmp_path / "bad.tif")})
    assert not (tmp_path / "bad.tif").exists()


def test_stack_outputs_record_the_looks_of_phase_only_pairs():
    stack_filter = StackFilter(looks=80.0)
    assert stack_filter.recorded(False)[1]["LOOKS"] == 80.0
    assert stack_filter.recorded(True)[1]["LOOKS"] is None  # amplitudes: the looks do not change the pixels
    with pytest.raises(InsarMlError, match="between 1 and 160"):
        StackFilter(looks=1000.0).check()


def test_fitting_writes_a_working_estimator_into_the_card_and_leaves_the_weights(tmp_path):
    model = tmp_path / "phase.safetensors"
    model.write_bytes(SHIPPED_PHASE.read_bytes())
    card = json.loads(SHIPPED_PHASE.with_suffix(".json").read_text())
    del card[CARD_KEY]
    model.with_suffix(".json").write_text(json.dumps(card))
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    fit_looks_coherence(model, scenes=10, steps=200, seed=3, log=lambda message: None)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before
    net, card = load_model(model)
    estimator = LooksCoherence.from_card(card, model.name)
    assert card[CARD_KEY]["training"]["scenes"] == 10
    scene = simulate_realistic_pair(96, 96, 9, (1, 1), coherence=0.7, holes=False)
    _, gamma = filter_arrays(net, InterferogramBlock(scene.interferogram, None, None, scene.valid),
                             coherence_from_looks=partial(estimator.estimate, looks=1.0))
    assert np.isfinite(gamma).all() and 0.0 <= gamma.min() and gamma.max() <= 1.0
    with pytest.raises(InsarMlError, match="takes amplitudes"):
        fit_looks_coherence(SHIPPED_4CH, scenes=1)


def test_a_damaged_estimator_in_a_card_is_named():
    card = json.loads(SHIPPED_PHASE.with_suffix(".json").read_text())
    card[CARD_KEY]["layers"][0]["bias"] = [0.0]
    with pytest.raises(InsarMlError, match="invalid 'looks_coherence' entry.*fit-looks-coherence"):
        LooksCoherence.from_card(card, SHIPPED_PHASE.name)


def test_a_stack_with_looks_matches_the_single_pair_and_other_looks_filter_it_again(tmp_path):
    frame = make_frame(tmp_path)
    filter_stack(str(frame), StackFilter(looks=4.0, device="cpu"), workers=0)
    single = filter_deepinsar_raster(open_product(str(phase_input(frame, PAIRS[0]))).source(), device="cpu",
                                     output_coherence=str(tmp_path / "single_coh.tif"), looks=4.0)
    np.testing.assert_array_equal(read_band(str(outputs(frame, PAIRS[0])[1])), read_band(single["OUTPUT_COHERENCE"]))
    log: list[str] = []
    filter_stack(str(frame), StackFilter(device="cpu"), workers=0, log=log.append)
    assert any("other settings (LOOKS)" in line for line in log)
    bad = subprocess.run([sys.executable, "-m", "qgis_insar_ml", "filter", str(frame), "--looks", "four",
                          "--workers", "0"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "LOOKS must be rows x columns" in bad.stderr and "Traceback" not in bad.stderr
