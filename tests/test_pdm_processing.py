"""The PDM algorithms in real QGIS: generation as layers, qgis_process, bad input, cancel, datasets, evaluation."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from conftest import read_band
from qgis_insar_ml.core.datasets.synthetic import SOURCE_TYPES
from qgis_insar_ml.core.diffusion.pdm_file import save_pdm
from qgis_insar_ml.core.diffusion.unet import UNetConfig, UNetModel
from test_processing import staged_plugin_dir

SIZE = 16


def tiny_pdm(path: Path, super_resolution: bool = False) -> Path:
    """A small untrained class-conditional PDM file (learned variance, null class), with coefficients."""
    torch.manual_seed(0)
    config = UNetConfig(image_size=SIZE * (2 if super_resolution else 1), in_channels=1, out_channels=2,
                        model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
                        num_classes=None if super_resolution else len(SOURCE_TYPES),
                        null_class=not super_resolution, low_res_channels=1 if super_resolution else 0)
    card = {"diffusion": {"steps": 50, "noise_schedule": "cosine", "learn_sigma": True},
            "classes": None if super_resolution else list(SOURCE_TYPES),
            "normalisation": {"range": [-1, 1], "coefficients": {name: [[-2.0 - i, 3.0 + i]] for i, name in
                                                                 enumerate(SOURCE_TYPES)}}}
    if super_resolution:
        card["super_resolution"] = {"scale": 2, "low_res_size": SIZE}
    return save_pdm(UNetModel(config), path, card)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return tiny_pdm(tmp_path_factory.mktemp("pdm") / "tiny.safetensors")


def generate(tmp_path: Path, model: Path, **extra):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = {"MODEL": str(model), "COUNT": 5, "SAMPLER": "ddim", "STEPS": 3, "SEED": 1,
              "OUTPUT_FOLDER": str(tmp_path / "out"), **extra}
    return processing.run("insarml:pdm_generate", params, context=context, feedback=QgsProcessingFeedback()), context


def test_generate_writes_layers_with_classes_georeferencing_and_seeds(tmp_path, insarml_provider, model_file):
    from qgis.core import QgsCoordinateReferenceSystem, QgsRasterLayer

    result, context = generate(tmp_path, model_file, EXTENT="500000,500320,5800000,5800320 [EPSG:32631]",
                               PIXEL_SIZE=10.0, WRAPPED=True)
    paths = result["OUTPUT_LAYERS"]
    assert result["COUNT_WRITTEN"] == 5 and len(paths) == 5
    assert [Path(p).name for p in paths] == [f"pdm_{i:04d}_{SOURCE_TYPES[i]}.tif" for i in range(5)]
    assert sorted(context.layersToLoadOnCompletion()) == sorted(paths)
    for index, path in enumerate(paths):
        layer = QgsRasterLayer(path, "x", "gdal")
        assert layer.isValid() and (layer.width(), layer.height()) == (SIZE, SIZE)
        assert layer.crs() == QgsCoordinateReferenceSystem("EPSG:32631")
        ds = gdal.Open(path)
        # centred on the extent's centre with 10 m pixels
        assert ds.GetGeoTransform() == (500160 - 80, 10.0, 0.0, 5800160 + 80, 0.0, -10.0)
        meta = ds.GetMetadata()
        assert meta["INSARML_CLASS"] == SOURCE_TYPES[index] and meta["INSARML_UNITS"] == "rad"
        unwrapped, wrapped = read_band(path, 1), read_band(path, 2)
        low, high = -2.0 - index, 3.0 + index     # rescaled into the class's only training range
        assert low - 1e-4 <= unwrapped.min() and unwrapped.max() <= high + 1e-4
        assert np.allclose(np.angle(np.exp(1j * unwrapped)), wrapped, atol=1e-5)
    again, _ = generate(tmp_path / "again", model_file, EXTENT="500000,500320,5800000,5800320 [EPSG:32631]",
                        PIXEL_SIZE=10.0, WRAPPED=True)
    for first, second in zip(paths, again["OUTPUT_LAYERS"]):
        assert np.array_equal(read_band(first), read_band(second))
    other, _ = generate(tmp_path / "other", model_file, SEED=2)
    assert not np.array_equal(read_band(paths[0]), read_band(other["OUTPUT_LAYERS"][0]))


def test_generate_one_class_without_placement_or_rescale(tmp_path, insarml_provider, model_file):
    result, _ = generate(tmp_path, model_file, CLASS_LABEL="fault", COUNT=3, RESCALE=False, SAMPLER="dpm_solver++",
                         GUIDANCE_SCALE=2.0)
    for path in result["OUTPUT_LAYERS"]:
        ds = gdal.Open(path)
        assert ds.GetMetadata()["INSARML_CLASS"] == "fault" and ds.GetProjection() == ""
        assert ds.GetGeoTransform() == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
        values = read_band(path)
        assert -1.0 <= values.min() and values.max() <= 1.0


def _payload_checkpoint(folder: Path, marker: Path) -> Path:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"image_size": 32, "num_input_channels": 1,
                                                       "num_model_channels": 32, "num_res_blocks": 1}))
    torch.save({"weights": Payload()}, folder / "model000100.pt")
    return folder / "model000100.pt"


@pytest.mark.parametrize("case, message", [
    ("deepinsar", "not a PDM"),
    ("class", "Class 7 is out of range: this model has 5 classes"),
    ("class_name", "neither a class index nor a class name"),
    ("count", "COUNT must be at least 1"),
    ("corrupt", "corrupt"),
    ("payload", "refers to Python code"),
    ("superres", "super-resolution model"),
    ("wrapped", "WRAPPED needs RESCALE"),
])
def test_generate_bad_input_is_explained_and_writes_nothing(tmp_path, insarml_provider, model_file, case, message):
    from qgis.core import QgsProcessingException

    from qgis_insar_ml.paths import data_dir

    marker = tmp_path / "executed"
    extra = {"deepinsar": {"MODEL": str(data_dir("models") / "deepinsar_phase.safetensors")},
             "class": {"CLASS_LABEL": "7"}, "class_name": {"CLASS_LABEL": "volcano"}, "count": {"COUNT": 0},
             "corrupt": {"MODEL": str(tmp_path / "corrupt.safetensors")},
             "payload": {"MODEL": str(tmp_path / "ref" / "model000100.pt")},
             "superres": {"MODEL": str(tmp_path / "sr.safetensors")},
             "wrapped": {"WRAPPED": True, "RESCALE": False}}[case]
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00garbage" * 10)
    (tmp_path / "corrupt.json").write_text((model_file.with_suffix(".json")).read_text())
    _payload_checkpoint(tmp_path / "ref", marker)
    tiny_pdm(tmp_path / "sr.safetensors", super_resolution=True)
    with pytest.raises(QgsProcessingException, match=message):
        generate(tmp_path, model_file, **extra)
    assert not marker.exists()
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_cancel_mid_sampling_leaves_no_file(tmp_path, insarml_provider, model_file):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: feedback.cancel() if percent > 30 else None)
    with pytest.raises(QgsProcessingException, match="No output was written"):
        processing.run("insarml:pdm_generate", {"MODEL": str(model_file), "COUNT": 4, "SAMPLER": "ancestral",
                                                "STEPS": 20, "OUTPUT_FOLDER": str(tmp_path / "out")},
                       feedback=feedback)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.rglob("*"))


def test_qgis_process_runs_pdm_generate(tmp_path, model_file):
    binary = os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin")
    site = os.path.dirname(os.path.dirname(torch.__file__))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(staged_plugin_dir(tmp_path)),
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile"), "PYTHONPATH": site}
    subprocess.run([binary, "plugins", "enable", "qgis_insar_ml"], env=env, capture_output=True)
    runs = []
    for name in ("a", "b"):
        done = subprocess.run([binary, "--json", "run", "insarml:pdm_generate", "--", f"MODEL={model_file}",
                               "COUNT=2", "CLASS_LABEL=1", "SAMPLER=heun", "STEPS=2", "SEED=5", "PIXEL_SIZE=30",
                               f"OUTPUT_FOLDER={tmp_path / name}"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        runs.append(json.loads(done.stdout[done.stdout.index("{"):])["results"])
    assert runs[0]["COUNT_WRITTEN"] == 2 and len(runs[0]["OUTPUT_LAYERS"]) == 2
    first = runs[0]["OUTPUT_LAYERS"][0]
    assert gdal.Open(first).GetGeoTransform() == (0.0, 30.0, 0.0, 0.0, 0.0, -30.0)
    assert np.array_equal(read_band(first), read_band(runs[1]["OUTPUT_LAYERS"][0]))


def test_synthetic_dataset_and_evaluation_algorithms(tmp_path, insarml_provider):
    import processing

    def dataset(name: str, seed: int) -> dict:
        return processing.run("insarml:synthetic_dataset", {"DATASET": "interferograms", "SIZE": 32, "COUNT": 40,
                                                            "SEED": seed, "WRAPPED": True,
                                                            "OUTPUT_FOLDER": str(tmp_path / name)})

    real = dataset("real", 0)
    assert json.loads(real["COUNTS"]) == {name: 8 for name in SOURCE_TYPES}
    dataset("same_kind", 1)
    result = processing.run("insarml:pdm_evaluate", {
        "REAL_FOLDER": str(tmp_path / "real"), "GENERATED_FOLDER": str(tmp_path / "same_kind"),
        "ENCODER_STEPS": 30, "CLASSIFIER_STEPS": 30, "OUTPUT_JSON": str(tmp_path / "report.json"),
        "OUTPUT_PNG": str(tmp_path / "plot.png")})
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n_real"] == 40 and report["classes"] == sorted(SOURCE_TYPES)
    # two draws of the same dataset: close semivariograms, most values inside the real band
    assert result["SEMIVARIOGRAM_DISTANCE"] < 0.15 and result["FRACTION_INSIDE_BAND"] > 0.85
    assert result["PRECISION"] > 0.5 and result["RECALL"] > 0.5
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def test_pdm_train_algorithm_writes_a_model_and_card(tmp_path, insarml_provider):
    import processing

    result = processing.run("insarml:pdm_train", {
        "DATASET": "deformation", "IMAGE_SIZE": 16, "STEPS": 2, "BATCH_SIZE": 4, "CHANNEL_MULT": "1,2",
        "ATTENTION": "", "DIFFUSION_STEPS": 20, "VALIDATE_EVERY": 1, "OUTPUT_MODEL": str(tmp_path / "m.safetensors")})
    card = json.loads(Path(result["MODEL_CARD"]).read_text())
    assert card["kind"] == "pdm" and card["classes"] == list(SOURCE_TYPES) and card["training"]["steps"] == 2
    assert card["unet"]["channel_mult"] == [1, 2] and card["diffusion"]["steps"] == 20
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="no DATASET_FOLDER"):
        processing.run("insarml:pdm_train", {"DATASET": "folder", "OUTPUT_MODEL": str(tmp_path / "x.safetensors")})
