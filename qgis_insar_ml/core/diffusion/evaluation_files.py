"""Comparing a folder of real scenes with a folder of generated ones: JSON + PNG report.

Both folders use the class-subfolder layout (or plain files) that the synthetic datasets
and :func:`..scene_files.write_samples` write; band 1 of each raster is compared. With
``normalise`` every scene is min-max scaled to [−1, 1] first, so the statistics compare
spatial structure, as the paper does after rescaling; without it, physical values.

When both folders are labelled (class subfolders, or the ``INSARML_CLASS`` metadata that
``insarml:pdm_generate`` writes into each file), the report also holds the class fidelity:
per-class accuracy of a classifier trained on half of the real scenes (see
:mod:`.class_fidelity`), with its accuracy on the other half as the ceiling.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from osgeo import gdal

from ..datasets.folder import RasterFolderDataset, raster_shape
from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, SubProgress, check_cancel
from .class_fidelity import fidelity_report, load_classifier, train_classifier
from .evaluation import evaluate_sets, load_encoder, plot_evaluation, train_encoder

CLASS_METADATA_KEY = "INSARML_CLASS"      # written by the synthetic datasets and insarml:pdm_generate

SCENE_SUFFIXES = (".tif", ".tiff")  # GeoTIFF scenes, as TenGeoP names them too


class SceneFolder(NamedTuple):
    scenes: np.ndarray                    # (N, H, W) float32, band 1
    labels: list[str] | None              # class name of each scene; None when the folder is unlabelled
    classes: list[str]                    # sorted class names (the folder's own name when unlabelled)
    size: int


def _metadata_classes(files: list[Path]) -> list[str] | None:
    """The INSARML_CLASS item of every file, or None as soon as one file lacks it."""
    names = []
    for path in files:
        dataset = gdal.Open(str(path))
        name = dataset.GetMetadataItem(CLASS_METADATA_KEY) if dataset is not None else None
        if not name:
            return None
        names.append(name)
    return names


def read_scene_folder(folder: str | os.PathLike, normalise: bool, progress: Progress | None = None) -> SceneFolder:
    """Band 1 of every square-croppable raster, with its class from the subfolder or the file's metadata."""
    progress = progress or SilentProgress()
    root = Path(folder)
    if not root.is_dir():
        raise InsarMlError(f"{root} is not a folder. Choose the folder that holds the scenes (or their class "
                           "subfolders).")
    first = next((p for p in sorted(root.rglob("*")) if p.suffix.lower() in SCENE_SUFFIXES
                  and not p.name.startswith(".")), None)
    if first is None:
        raise InsarMlError(f"No GeoTIFF scene in {root}. Write scenes there first (e.g. with Synthetic InSAR "
                           "dataset or Generate scenes).")
    _, rows, cols = raster_shape(first)
    size = min(rows, cols)
    dataset = RasterFolderDataset(root, crop=size, size=size, normalise="[-1,1]", extensions=SCENE_SUFFIXES)
    scenes = []
    for index in range(len(dataset)):
        check_cancel(progress)
        scaled, _, (lo, hi) = dataset[index]
        image = scaled.numpy()[0].astype(np.float64)
        scenes.append(image if normalise else lo + (image + 1.0) * 0.5 * (hi - lo))
        progress.set_progress(100.0 * (index + 1) / len(dataset))
    names = ([dataset.class_names[label] for label in dataset.labels] if dataset.labelled
             else _metadata_classes(dataset.files))
    classes = sorted(set(names)) if names else dataset.class_names
    return SceneFolder(np.stack(scenes).astype(np.float32), names, classes, size)


def evaluate_folders(real_folder: str | os.PathLike, generated_folder: str | os.PathLike,
                     output_json: str | os.PathLike, output_png: str | os.PathLike | None = None, *,
                     normalise: bool = True, encoder: str | None = None, encoder_steps: int = 300, seed: int = 0,
                     classifier: str | None = None, classifier_steps: int = 300,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Semivariograms (with the real 95 % band), spectra, histograms, FID and precision/recall, and the
    class fidelity when both folders are labelled."""
    progress = progress or SilentProgress()
    real_set = read_scene_folder(real_folder, normalise, SubProgress(progress, 0, 10))
    generated_set = read_scene_folder(generated_folder, normalise, SubProgress(progress, 10, 10))
    real, labels, classes, size = real_set
    generated, gen_size = generated_set.scenes, generated_set.size
    if size != gen_size:
        raise InsarMlError(f"The real scenes are {size}×{size} pixels but the generated ones are {gen_size}×"
                           f"{gen_size}; compare sets of the same size (e.g. write the real set with SIZE "
                           f"{gen_size}).")
    result = evaluate_sets(real[:, None], generated[:, None], None, SubProgress(progress, 20, 10))
    reference = real
    if encoder:
        feature_encoder = load_encoder(encoder)
    else:
        # An encoder maps the scenes it was trained on tighter than new ones, which would sink precision
        # even for a perfect generator: train it on every other real scene, score against the rest.
        if len(real) < 8:
            raise InsarMlError(f"Only {len(real)} real scenes: training the feature encoder needs at least 8 "
                               "(half train it, half are the reference). Add scenes or give an ENCODER.")
        fit = labels[0::2] if labels and len(classes) > 1 else None
        feature_encoder = train_encoder(real[0::2, None], fit, encoder_steps, seed, SubProgress(progress, 30, 30))
        reference = real[1::2]
    result["features"] = evaluate_sets(reference[:, None], generated[:, None], feature_encoder,
                                       SubProgress(progress, 60, 10))["features"]
    result["features"]["n_reference"] = len(reference)
    result["class_fidelity"] = _class_fidelity(real_set, generated_set, classifier, classifier_steps, seed,
                                               SubProgress(progress, 70, 25))
    result.update({"real_folder": str(real_folder), "generated_folder": str(generated_folder),
                   "normalised": normalise, "classes": classes})
    out = Path(output_json)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InsarMlError(f"Cannot write {out}: {exc.strerror}. Pick a writable path.") from None
    if output_png:
        plot_evaluation(result, output_png)
    progress.set_progress(100.0)
    return result


def _class_fidelity(real: SceneFolder, generated: SceneFolder, classifier: str | None, steps: int, seed: int,
                    progress: Progress) -> dict[str, Any] | None:
    """Per-class accuracy of the generated scenes (None unless both sets are labelled), with the ceiling.

    Without a classifier file one is trained on every other real scene (as the encoder is) and its
    accuracy on the rest is the ceiling; a given classifier's ceiling is measured on all real scenes.
    """
    if not (real.labels and generated.labels and len(real.classes) > 1):
        return None
    unknown = sorted(set(generated.classes) - set(real.classes))
    if unknown:
        raise InsarMlError(f"The generated scenes hold class(es) {', '.join(unknown)} that the real scenes do not "
                           f"have ({', '.join(real.classes)}), so their class fidelity cannot be measured. Compare "
                           "with real scenes of the same classes (the subfolder names must match).")
    if classifier:
        model, held_out = load_classifier(classifier), np.arange(len(real.labels))
    else:
        model = train_classifier(real.scenes[0::2], real.labels[0::2], real.classes, steps, seed, progress)
        held_out = np.arange(1, len(real.labels), 2)
    ceiling = fidelity_report(model, real.scenes[held_out], [real.labels[i] for i in held_out])
    report = fidelity_report(model, generated.scenes, generated.labels)
    progress.info("Class fidelity (share of generated scenes recognised as their class; real ceiling): "
                  + ", ".join(f"{name} {_percent(report['per_class_accuracy'][name])} "
                              f"({_percent(ceiling['per_class_accuracy'][name])})" for name in model.class_names))
    return {**report, "ceiling": ceiling, "classifier": classifier or "trained on every other real scene",
            "training": model.training_info}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"
