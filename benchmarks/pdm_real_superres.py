"""The shipped 2× super-resolution PDMs on real scenes: real speckle and real unwrapped phase.

Our generators prove little by themselves, so each super-resolution model is also given
real scenes from ``--realdata`` (``../shared/realdata``, never copied into the project):

- ``pdm_sar_superres_2x``: the Sentinel-1 IW GRD VV scene (pyroSAR, dB, 20 m) and the Envisat
  SLC of the isce3 test data (its 480² interior), 2×2-looked to 4-look intensity. Truth = the scene; input = its
  2×2 mean in linear σ0, in dB, as the model was trained.
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

    .venv/bin/python benchmarks/pdm_real_superres.py --realdata ../shared/realdata
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

from qgis_insar_ml.core.datasets.folder import to_decibels  # noqa: E402
from qgis_insar_ml.core.diffusion.data import downsample  # noqa: E402
from qgis_insar_ml.core.diffusion.evaluation import semivariogram  # noqa: E402
from qgis_insar_ml.core.diffusion.generate import superresolve  # noqa: E402
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm  # noqa: E402

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


def crops(scene: np.ndarray, stride: int) -> Iterator[np.ndarray]:
    for r in range(0, scene.shape[0] - CROP + 1, stride):
        for c in range(0, scene.shape[1] - CROP + 1, stride):
            crop = scene[r:r + CROP, c:c + CROP]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--sar-model", type=Path, default=REPO / "models" / "pdm_sar_superres_2x.safetensors")
    parser.add_argument("--interferogram-model", type=Path, default=REPO / "models" / "pdm_superres_2x.safetensors")
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--max-crops", type=int, default=8, help="per scene")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "pdm_real_superres.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"command": "benchmarks/pdm_real_superres.py " + " ".join(sys.argv[1:]),
              args.sar_model.stem: score(args.sar_model, sar_scenes(args.realdata), to_decibels, args),
              args.interferogram_model.stem: score(args.interferogram_model, unwrapped_scenes(args.realdata),
                                                   lambda x: x, args)}
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
