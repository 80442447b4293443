"""Comparing a folder of real scenes with a folder of generated ones: JSON + PNG report.

Both folders use the class-subfolder layout (or plain files) that the synthetic datasets
and :func:`..scene_files.write_samples` write; band 1 of each raster is compared. With
``normalise`` every scene is min-max scaled to [−1, 1] first, so the statistics compare
spatial structure, as the paper does after rescaling; without it, physical values.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.folder import RasterFolderDataset, raster_shape
from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, SubProgress, check_cancel
from .evaluation import evaluate_sets, load_encoder, plot_evaluation, train_encoder


def read_scene_folder(folder: str | os.PathLike, normalise: bool, progress: Progress | None = None
                      ) -> tuple[np.ndarray, list[int], list[str], int]:
    """(scenes (N, H, W) float32, labels, class names, size) of band 1 of every square-croppable raster."""
    progress = progress or SilentProgress()
    root = Path(folder)
    if not root.is_dir():
        raise InsarMlError(f"{root} is not a folder. Choose the folder that holds the scenes (or their class "
                           "subfolders).")
    first = next((p for p in sorted(root.rglob("*.tif")) if not p.name.startswith(".")), None)
    if first is None:
        raise InsarMlError(f"No GeoTIFF scene in {root}. Write scenes there first (e.g. with Synthetic InSAR "
                           "dataset or Generate scenes).")
    _, rows, cols = raster_shape(first)
    size = min(rows, cols)
    dataset = RasterFolderDataset(root, crop=size, size=size, normalise="[-1,1]", extensions=(".tif",))
    scenes, labels = [], []
    for index in range(len(dataset)):
        check_cancel(progress)
        scaled, label, (lo, hi) = dataset[index]
        image = scaled.numpy()[0].astype(np.float64)
        scenes.append(image if normalise else lo + (image + 1.0) * 0.5 * (hi - lo))
        labels.append(label)
        progress.set_progress(100.0 * (index + 1) / len(dataset))
    return np.stack(scenes).astype(np.float32), labels, dataset.class_names, size


def evaluate_folders(real_folder: str | os.PathLike, generated_folder: str | os.PathLike,
                     output_json: str | os.PathLike, output_png: str | os.PathLike | None = None, *,
                     normalise: bool = True, encoder: str | None = None, encoder_steps: int = 300, seed: int = 0,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Semivariograms (with the real 95 % band), spectra, histograms, FID and precision/recall."""
    progress = progress or SilentProgress()
    real, labels, classes, size = read_scene_folder(real_folder, normalise, SubProgress(progress, 0, 10))
    generated, _, _, gen_size = read_scene_folder(generated_folder, normalise, SubProgress(progress, 10, 10))
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
        fit = np.asarray(labels)[0::2]
        feature_encoder = train_encoder(real[0::2, None], fit if len(classes) > 1 else None, encoder_steps, seed,
                                        SubProgress(progress, 30, 50))
        reference = real[1::2]
    result["features"] = evaluate_sets(reference[:, None], generated[:, None], feature_encoder,
                                       SubProgress(progress, 80, 15))["features"]
    result["features"]["n_reference"] = len(reference)
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
