"""The shipped PDMs against real signals: real speckle and real unwrapped phase.

Our generators prove little by themselves, so the models also meet real scenes from
``--realdata`` (``../shared/realdata``, never copied into the project).

Super-resolution: each model super-resolves real scenes from their 2×2 means.

- ``pdm_sar_superres_2x``: the Sentinel-1 IW GRD VV scene (pyroSAR, dB, 20 m) and the Envisat
  SLC of the isce3 test data (its 480² interior), 2×2-looked to 4-look intensity. Truth = the
  scene; input = its 2×2 mean in linear σ0, in dB, as the model was trained.
- ``pdm_superres_2x``: the LiCSAR coseismic unwrapped interferograms of Greece and
  Afghanistan [rad]. Truth = the scene; input = its 2×2 mean.

Each scene is cut into 128² crops (stride ``--stride``, crops holding no-data skipped); each
crop is super-resolved (SDE-DPM-Solver++, 20 steps, back-projected onto the input) and
compared with the truth, beside bilinear and bicubic upsampling:

- relative RMSE (RMSE / the truth's range): a sample of the posterior, not its mean, so
  bicubic interpolation is expected to win it;
- texture: the log-ratio of the mean semivariogram at lag 1 to the truth's (0 = the right
  amount of fine detail; interpolation is too smooth, < 0) and the RMS log-ratio over lags
  1–16 px, the semivariogram distance of the other PDM benchmarks.

Generation: ``pdm_interferograms_64`` samples (class-balanced, 20 steps, the card's guidance)
against every no-data-free 64² crop (stride 32) of the same LiCSAR unwrapped products, about
100 m pixels like the built-in scenes, with the band test of pdm_cascade.py (all scenes
stretched to [−1, 1]; inside the real 95 % band at every lag?). The built-in scenes are scored
against the same crops, so the generator's own distance to real data stands beside the model's.

    .venv/bin/python benchmarks/pdm_real_signal.py --realdata ../shared/realdata
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import scipy.ndimage
import torch
from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pdm_cascade import band_test  # noqa: E402
from pdm_samplers import TEST_OFFSET  # noqa: E402

from qgis_insar_ml.core.datasets.folder import to_decibels  # noqa: E402
from qgis_insar_ml.core.datasets.synthetic import SyntheticInterferograms  # noqa: E402
from qgis_insar_ml.core.diffusion.data import downsample  # noqa: E402
from qgis_insar_ml.core.diffusion.evaluation import semivariogram  # noqa: E402
from qgis_insar_ml.core.diffusion.generate import generate, superresolve  # noqa: E402
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm  # noqa: E402
from qgis_insar_ml.core.model_files import recommended_guidance  # noqa: E402

CROP = 128
MAX_LAG = 16
LICSAR_RAD_PER_M = 4 * np.pi / 0.05546576  # Sentinel-1 C band: two-way phase per metre of LOS


def read_band(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    if dataset is None:
        raise SystemExit(f"Cannot read {path}: check --realdata (the folder of ../shared/realdata's README).")
    return dataset.GetRasterBand(1).ReadAsArray().astype(np.float64)


def sar_scenes(root: Path) -> dict[str, np.ndarray]:
    """Real σ0 (linear) scenes."""
    grd_db = read_band(next((root / "03_sar_slc_backscatter" / "pyrosar_s1_grd_db").glob("*.tif")))
    grd_db[grd_db < -60] = np.nan                                    # outside the swath
    slc = gdal.Open(str(root / "03_sar_slc_backscatter" / "isce3_testdata" / "warped_envisat.slc.vrt"))
    intensity = np.abs(slc.GetRasterBand(1).ReadAsArray()[10:-10, 10:-10]).astype(np.float64) ** 2  # warped: zero rim
    return {"Sentinel-1 IW GRD VV (20 m, dB)": 10.0 ** (grd_db / 10.0),
            "Envisat SLC, 2×2 looks": downsample(intensity)}


def unwrapped_scenes(root: Path) -> dict[str, np.ndarray]:
    """Real unwrapped LiCSAR interferograms [rad]."""
    folder = root / "01_wrapped"
    return {f"LiCSAR {name} .unw": read_band(folder / f"licsar_coseismic_{name}" / f"{name}.unw.vrt") * LICSAR_RAD_PER_M
            for name in ("greece", "afghanistan")}


def crops(scene: np.ndarray, stride: int, size: int = CROP) -> Iterator[np.ndarray]:
    for r in range(0, scene.shape[0] - size + 1, stride):
        for c in range(0, scene.shape[1] - size + 1, stride):
            crop = scene[r:r + size, c:c + size]
            if np.isfinite(crop).all() and np.ptp(crop) > 0:
                yield crop


def texture(truths: np.ndarray, guesses: np.ndarray) -> dict[str, float]:
    _, g_true = semivariogram(truths, MAX_LAG)
    _, g_guess = semivariogram(guesses, MAX_LAG)
    ratio = np.log(np.nanmean(g_guess, axis=0) / np.nanmean(g_true, axis=0))
    return {"log_ratio_lag_1": float(ratio[0]), "distance": float(np.sqrt(np.nanmean(ratio ** 2)))}


def score(pdm_file: Path, scenes: dict[str, np.ndarray], to_model: Callable[[np.ndarray], np.ndarray],
          args: argparse.Namespace) -> dict:
    """Per scene: relative RMSE and texture of the PDM, bilinear and bicubic, in the model's units."""
    pdm = load_pdm(pdm_file)
    methods = {"pdm": lambda low, k: superresolve(pdm, low, steps=args.steps, seed=k),
               "bilinear": lambda low, k: scipy.ndimage.zoom(low, 2, order=1, mode="nearest", grid_mode=True),
               "bicubic": lambda low, k: scipy.ndimage.zoom(low, 2, order=3, mode="nearest", grid_mode=True)}
    result = {}
    for name, scene in scenes.items():
        tic = time.perf_counter()
        truths, guesses = [], {m: [] for m in methods}
        for k, crop in enumerate(list(crops(scene, args.stride))[:args.max_crops]):
            truth, low = to_model(crop), to_model(downsample(crop))
            truths.append(truth)
            for method, run in methods.items():
                guesses[method].append(run(low, k))
        truth_stack = np.stack(truths)
        span = np.ptp(truth_stack, axis=(1, 2))
        result[name] = {"crops": len(truths), "seconds": round(time.perf_counter() - tic, 1), **{
            method: {"relative_rmse": float(np.mean(np.sqrt(np.mean((np.stack(g) - truth_stack) ** 2, axis=(1, 2)))
                                                    / span)),
                     **texture(truth_stack, np.stack(g))}
            for method, g in guesses.items()}}
        row = result[name]
        print(f"{name}: {row['crops']} crops  " + "  ".join(
            f"{m} rmse {row[m]['relative_rmse']:.4f} lag1 {row[m]['log_ratio_lag_1']:+.2f} d {row[m]['distance']:.3f}"
            for m in methods), flush=True)
    return result


def generation(pdm_file: Path, scenes: dict[str, np.ndarray], args: argparse.Namespace) -> dict:
    """Band tests of the generated and the built-in scenes against real unwrapped crops of the model's size."""
    pdm = load_pdm(pdm_file)
    size, guidance = pdm.config.image_size, recommended_guidance(pdm.card)
    real = np.stack([crop for scene in scenes.values() for crop in crops(scene, size // 2, size)])
    samples, _ = generate(pdm, args.per_class * len(pdm.classes), sampler="dpm_solver++", steps=args.steps,
                          guidance_scale=guidance, seed=0)
    builtin = SyntheticInterferograms(size, seed=0)
    simulated = np.stack([builtin.sample(TEST_OFFSET + k)[0] for k in range(400)]).astype(np.float64)
    result = {"real_crops": len(real), "generated": len(samples), "guidance_scale": guidance,
              "generated_vs_builtin": band_test(simulated, samples[:, 0]),
              "generated_vs_real": band_test(real, samples[:, 0]),
              "builtin_vs_real": band_test(real, simulated)}
    for key in ("generated_vs_builtin", "generated_vs_real", "builtin_vs_real"):
        row = result[key]
        print(f"{key}: {'inside' if row['inside_band_every_lag'] else 'OUT'} d={row['distance']:.3f} "
              f"lag1 {row['log_ratio_lag_1']:+.2f} below {row['lags_below_band']} above {row['lags_above_band']}",
              flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--sar-model", type=Path, default=REPO / "models" / "pdm_sar_superres_2x.safetensors")
    parser.add_argument("--interferogram-model", type=Path, default=REPO / "models" / "pdm_superres_2x.safetensors")
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--max-crops", type=int, default=8, help="per scene")
    parser.add_argument("--generator-model", type=Path,
                        default=REPO / "models" / "pdm_interferograms_64.safetensors")
    parser.add_argument("--per-class", type=int, default=16, help="generated scenes per class")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "pdm_real_signal.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    real_unwrapped = unwrapped_scenes(args.realdata)
    result = {"command": "benchmarks/pdm_real_signal.py " + " ".join(sys.argv[1:]),
              args.sar_model.stem: score(args.sar_model, sar_scenes(args.realdata), to_decibels, args),
              args.interferogram_model.stem: score(args.interferogram_model, real_unwrapped, lambda x: x, args),
              args.generator_model.stem: generation(args.generator_model, real_unwrapped, args)}
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
