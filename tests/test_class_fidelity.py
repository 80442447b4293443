"""Class fidelity: the classifier, the per-class scores, and their place in insarml:pdm_evaluate.

Toy classes that any classifier must separate (a Gaussian bump against straight stripes,
each at a random place, orientation, scale and sign) stand in for the real scenes; the
per-class accuracy and confusion matrix are checked against hand-counted cases.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import write_raster
from qgis_insar_ml.core.diffusion.class_fidelity import (
    confusion_matrix, fidelity_report, load_classifier, normalise_scenes, per_class_accuracy, save_classifier,
    train_classifier)
from qgis_insar_ml.core.errors import InsarMlError

SIZE = 16
WIDTHS = (8, 16)
torch.set_num_threads(1)      # tiny networks: a second thread only adds contention on a shared machine


def toy_scenes(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, SIZE, SIZE) scenes in physical-looking units, labels 0 = bump, 1 = stripes, interleaved."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    scenes, labels = [], []
    for _ in range(n_per_class):
        cy, cx = rng.uniform(4, SIZE - 4, 2)
        bump = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * rng.uniform(1.5, 3.0) ** 2))
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 7)
        stripes = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
        for label, pattern in enumerate((bump, stripes)):
            scale = rng.uniform(0.5, 20.0) * rng.choice((-1.0, 1.0))
            scenes.append(scale * (pattern + 0.1 * rng.standard_normal((SIZE, SIZE))) + rng.uniform(-50, 50))
            labels.append(label)
    return np.stack(scenes).astype(np.float32), np.array(labels)


@pytest.fixture(scope="module")
def toy_classifier():
    scenes, labels = toy_scenes(60, seed=0)
    return train_classifier(scenes, labels, ["bump", "stripes"], steps=40, seed=0, batch_size=32, widths=WIDTHS)


def test_normalise_scenes_scales_each_scene_to_the_pdm_range():
    scenes = np.stack([np.linspace(-3, 5, 16).reshape(4, 4), np.full((4, 4), 7.0), np.arange(16.0).reshape(4, 4)])
    scenes[2, 0, 0] = np.nan
    x = normalise_scenes(scenes).numpy()[:, 0]
    assert x.shape == (3, 4, 4)
    assert x[0].min() == -1.0 and x[0].max() == 1.0 and np.allclose(x[0], np.linspace(-1, 1, 16).reshape(4, 4))
    assert np.all(x[1] == 0.0)                                  # a constant scene has no contrast: mid-range
    assert x[2, 0, 0] == 0.0 and x[2, 0, 1] == -1.0 and x[2, 3, 3] == 1.0   # NaN → 0, range from valid pixels
    assert np.allclose(normalise_scenes(x).numpy()[:, 0], x)    # idempotent: real batches may come pre-scaled


def test_classifier_learns_separable_classes(toy_classifier):
    scenes, labels = toy_scenes(50, seed=1)                     # unseen scenes
    report = fidelity_report(toy_classifier, scenes, labels)
    assert report["min_accuracy"] >= 0.95 and report["passes"]
    assert report["classes"] == ["bump", "stripes"] and report["scenes"] == 100
    assert np.array(report["confusion"]).sum(axis=1).tolist() == [50, 50]
    assert toy_classifier.training_info["steps"] == 40


def test_fidelity_report_scores_the_intended_classes(toy_classifier):
    scenes, labels = toy_scenes(10, seed=2)
    # a "generator" that was asked for bumps but drew stripes in half of those cases
    intended = np.full(20, "bump", dtype=object)
    intended[np.flatnonzero(labels == 1)[5:]] = "stripes"
    report = fidelity_report(toy_classifier, scenes, intended)
    assert report["per_class_accuracy"] == {"bump": pytest.approx(10 / 15), "stripes": 1.0}
    assert report["confusion"] == [[10, 5], [0, 5]]
    assert report["mean_accuracy"] == pytest.approx((10 / 15 + 1.0) / 2) and report["min_accuracy"] == 10 / 15
    assert report["overall_accuracy"] == 0.75 and report["passes"]          # mean 83 %, lowest 67 %
    only_bumps = fidelity_report(toy_classifier, scenes[labels == 0], ["bump"] * 10)
    assert only_bumps["per_class_accuracy"]["stripes"] is None and only_bumps["mean_accuracy"] == 1.0
    with pytest.raises(InsarMlError, match="class\\(es\\) dike that the classifier does not know"):
        fidelity_report(toy_classifier, scenes, ["dike"] * 20)


def test_confusion_and_per_class_accuracy_by_hand():
    true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 1, 0, 1, 1, 0, 2, 1, 2]
    confusion = confusion_matrix(true, predicted, 4)
    assert confusion.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 1, 2, 0], [0, 0, 0, 0]]
    accuracy = per_class_accuracy(confusion)
    assert accuracy[:3].tolist() == [2 / 3, 1.0, 0.5] and np.isnan(accuracy[3])
    with pytest.raises(InsarMlError, match="class indices 0..3"):
        confusion_matrix([4], [0], 4)


def test_passes_applies_both_targets(toy_classifier):
    scenes, labels = toy_scenes(10, seed=3)
    good = fidelity_report(toy_classifier, scenes, labels)
    assert good["passes"] and good["mean_accuracy"] >= 0.8
    # every scene asked for as a bump: bump accuracy 50 %, the only class present, so the mean is 50 % < 80 %
    fails = fidelity_report(toy_classifier, scenes, np.zeros(20, dtype=int))
    assert fails["per_class_accuracy"]["bump"] == 0.5 and not fails["passes"]


def test_classifier_round_trip_and_bad_files(toy_classifier, tmp_path):
    scenes, _ = toy_scenes(5, seed=4)
    path = save_classifier(toy_classifier, tmp_path / "clf")
    loaded = load_classifier(path)
    assert loaded.class_names == ["bump", "stripes"] and loaded.training_info["seed"] == 0
    assert np.allclose(loaded.probabilities(scenes), toy_classifier.probabilities(scenes), atol=1e-6)
    with pytest.raises(InsarMlError, match="trained on 16×16 scenes, not 32×32"):
        loaded.predict(np.zeros((1, 32, 32)))
    card = json.loads((tmp_path / "clf.json").read_text())
    (tmp_path / "clf.json").write_text(json.dumps({**card, "classes": ["only_one"]}))
    with pytest.raises(InsarMlError, match="does not describe a valid scene classifier|at least two"):
        load_classifier(path)


def test_training_needs_two_classes_and_matching_labels():
    scenes, labels = toy_scenes(4, seed=5)
    with pytest.raises(InsarMlError, match="only class bump"):
        train_classifier(scenes, np.zeros(8, dtype=int), ["bump", "stripes"], steps=1)
    with pytest.raises(InsarMlError, match="7 labels for 8 scenes"):
        train_classifier(scenes, labels[:7], ["bump", "stripes"], steps=1)


def test_pdm_evaluate_reports_class_fidelity_of_labelled_folders(tmp_path, insarml_provider):
    import processing
    from qgis.core import QgsProcessingException

    from qgis_insar_ml.core.diffusion.scene_files import placement, write_samples

    real, real_labels = toy_scenes(16, seed=6)
    for i, (scene, label) in enumerate(zip(real, real_labels)):
        folder = tmp_path / "real" / ("bump", "stripes")[label]
        folder.mkdir(parents=True, exist_ok=True)
        write_raster(folder / f"{i:03d}.tif", scene)
    # generated folder as insarml:pdm_generate writes it: flat, the class in each file's metadata;
    # 8 bumps asked for as bumps, 8 stripes of which 2 were asked for as bumps
    generated, labels = toy_scenes(8, seed=7)
    intended = [0 if label == 0 or i < 4 else 1 for i, label in enumerate(labels)]
    write_samples(tmp_path / "generated", generated[:, None], intended, ["bump", "stripes"], placement(SIZE, SIZE),
                  rescaled=False, wrapped=False, parameters={}, model="toy")

    def evaluate(generated_folder: str) -> dict:
        return processing.run("insarml:pdm_evaluate", {
            "REAL_FOLDER": str(tmp_path / "real"), "GENERATED_FOLDER": generated_folder, "ENCODER_STEPS": 5,
            "CLASSIFIER_STEPS": 40, "OUTPUT_JSON": str(tmp_path / "report.json")})

    result = evaluate(str(tmp_path / "generated"))
    fidelity = json.loads((tmp_path / "report.json").read_text())["class_fidelity"]
    assert fidelity["ceiling"]["per_class_accuracy"] == {"bump": 1.0, "stripes": 1.0}
    assert fidelity["per_class_accuracy"] == {"bump": 0.8, "stripes": 1.0}
    assert fidelity["confusion"] == [[8, 2], [0, 6]]
    assert result["CLASS_ACCURACY"] == pytest.approx(0.9) and result["CLASS_ACCURACY_MIN"] == pytest.approx(0.8)

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    write_raster(unlabelled / "a.tif", generated[0])
    write_raster(unlabelled / "b.tif", generated[1])
    evaluate(str(unlabelled))
    assert json.loads((tmp_path / "report.json").read_text())["class_fidelity"] is None

    write_samples(tmp_path / "other", generated[:2, None], [0, 1], ["bump", "dike"], placement(SIZE, SIZE),
                  rescaled=False, wrapped=False, parameters={}, model="toy")
    with pytest.raises(QgsProcessingException, match="class\\(es\\) dike that the real scenes do not have"):
        evaluate(str(tmp_path / "other"))
