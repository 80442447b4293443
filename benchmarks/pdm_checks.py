"""Quick checks of shipped models 2 and 3 on held-out synthetic scenes.

Model 2 (32×32 deformation): semivariogram distance and band test of SDE-DPM-Solver++ at
20 NFE (guidance 1 and the card's) against 400 held-out scenes, as in pdm_samplers.py.
Model 3 (2× super-resolution): held-out 128×128 interferograms are averaged to 64×64, super-resolved, and compared with
the truth (RMSE relative to each scene's range) against bilinear and bicubic upsampling.

    .venv/bin/python benchmarks/pdm_checks.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pdm_samplers import TEST_OFFSET, real_scenes, stretch  # noqa: E402
from qgis_insar_ml.core.datasets.synthetic import SyntheticInterferograms  # noqa: E402
from qgis_insar_ml.core.diffusion.data import downsample  # noqa: E402
from qgis_insar_ml.core.diffusion.evaluation import (  # noqa: E402
    semivariogram, semivariogram_band, semivariogram_distance)
from qgis_insar_ml.core.diffusion.generate import generate, superresolve  # noqa: E402
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm  # noqa: E402
from qgis_insar_ml.core.model_files import recommended_guidance  # noqa: E402


def deformation_check(count: int = 128) -> dict:
    """Plain conditional sampling and the card's recommended guidance, against 400 held-out scenes."""
    pdm = load_pdm(REPO / "models" / "pdm_deformation_32.safetensors")
    real, _ = real_scenes(pdm.card, 400, TEST_OFFSET)
    _, g_real = semivariogram(real)
    low, high = semivariogram_band(g_real)
    rows = {}
    for guidance in sorted({1.0, recommended_guidance(pdm.card)}):
        samples, _ = generate(pdm, count, sampler="dpm_solver++", steps=20, seed=0, batch_size=64,
                              guidance_scale=guidance)
        _, g_gen = semivariogram(stretch(samples))
        mean = np.nanmean(g_gen, axis=0)
        rows[f"guidance {guidance:g}"] = {"semivariogram_distance": semivariogram_distance(g_real, g_gen),
                                          "inside_band_every_lag": bool(((mean >= low) & (mean <= high)).all())}
    return {"scenes": count, **rows}


def superresolution_check(count: int = 16) -> dict:
    pdm = load_pdm(REPO / "models" / "pdm_superres_2x.safetensors")
    scenes = SyntheticInterferograms(128, seed=0)
    errors: dict[str, list[float]] = {"pdm (dpm_solver++, 20 NFE)": [], "bilinear": [], "bicubic": []}
    for k in range(count):
        truth = scenes.sample(TEST_OFFSET + k)[0].astype(np.float64)
        low = downsample(truth)
        span = truth.max() - truth.min()
        guesses = {"pdm (dpm_solver++, 20 NFE)": superresolve(pdm, low, steps=20, seed=k),
                   "bilinear": scipy.ndimage.zoom(low, 2, order=1, mode="nearest", grid_mode=True),
                   "bicubic": scipy.ndimage.zoom(low, 2, order=3, mode="nearest", grid_mode=True)}
        for name, guess in guesses.items():
            errors[name].append(float(np.sqrt(np.mean((guess - truth) ** 2)) / span))
    return {"scenes": count, "relative_rmse": {name: float(np.mean(v)) for name, v in errors.items()}}


if __name__ == "__main__":
    result = {"deformation_32": deformation_check(), "superres_2x": superresolution_check()}
    print(json.dumps(result, indent=1))
    (REPO / "docs" / "pdm_checks.json").write_text(json.dumps(result, indent=1))
