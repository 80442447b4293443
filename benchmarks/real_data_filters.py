"""Boxcar, Goldstein and DeepInSAR on the real scenes of ../shared/realdata.

Real data has no ground truth, so the score is the residue count (phase singularities
around 2×2 loops; fewer = easier unwrapping) of the input and of each result, plus the
mean coherence. DeepInSAR uses the shipped model that fits each scene: 4-channel where
amplitudes exist (despeckCL, Amsterdam), phase-only for the LiCSAR interferograms. The
data is read from --realdata and never copied into the project.

    .venv/bin/python benchmarks/real_data_filters.py --realdata ../shared/realdata
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qgis_insar_ml.core.classical import filter_boxcar_raster, filter_goldstein_raster  # noqa: E402
from qgis_insar_ml.core.deepinsar.inference import filter_deepinsar_raster  # noqa: E402
from qgis_insar_ml.core.evaluation import evaluate_rasters  # noqa: E402
from qgis_insar_ml.core.inputs import InterferogramSource  # noqa: E402
from qgis_insar_ml.core.raster_io import read_full  # noqa: E402

gdal.UseExceptions()


def licsar(realdata: Path, name: str, work: Path) -> dict:
    """LiCSAR wrapped phase; its zeros are no-data, which the shipped VRT does not declare."""
    vrt = work / f"{name}.vrt"
    gdal.Translate(str(vrt), str(realdata / f"01_wrapped/licsar_coseismic_{name}/{name}.diff.vrt"),
                   format="VRT", noData=0)
    return {"interferogram": str(vrt)}


def despeckcl(realdata: Path, work: Path) -> dict:
    """The MATLAB file's phase and amplitudes, as GeoTIFFs."""
    from scipy.io import loadmat

    mat = loadmat(realdata / "01_wrapped/despeckcl_insar_350/insar_test_data.mat")
    paths = {}
    for key, role in (("dphase", "interferogram"), ("ampl_master", "amplitude_reference"),
                      ("ampl_slave", "amplitude_secondary")):
        arr = mat[key].astype(np.float32)
        ds = gdal.GetDriverByName("GTiff").Create(str(work / f"despeckcl_{key}.tif"), arr.shape[1], arr.shape[0], 1,
                                                  gdal.GDT_Float32)
        ds.GetRasterBand(1).WriteArray(arr)
        ds = None
        paths[role] = str(work / f"despeckcl_{key}.tif")
    return paths


def amsterdam(realdata: Path, work: Path) -> dict:
    """The Sentinel-1 SLC pair: i/q Zarr arrays as two-band (real, imaginary) VRTs."""
    root = realdata / "01_wrapped/sarxarray_s1_slc_pair_amsterdam"
    paths = {}
    for role, date, tag in (("slc_reference", "20230319", "19Mar2023"), ("slc_secondary", "20230331", "31Mar2023")):
        znap = root / f"{date}-coreg.znap"
        bands = [f'ZARR:"{znap}":/{part}_VV_{tag}' for part in ("i", "q")]
        vrt = work / f"amsterdam_{date}.vrt"
        gdal.BuildVRT(str(vrt), bands, separate=True)
        paths[role] = str(vrt)
    return paths


_KEYS = {"input": "input", "Boxcar 5×5": "boxcar5", "Goldstein α=0.5": "goldstein0.5", "DeepInSAR": "deepinsar"}


def run_scene(name: str, inputs: dict, work: Path) -> dict:
    source = InterferogramSource(**inputs)
    box = filter_boxcar_raster(source, 5, str(work / f"{name}_boxcar_phase.tif"), str(work / f"{name}_boxcar_coh.tif"))
    interferogram = inputs.get("interferogram") or _raw_interferogram(source, work / f"{name}_interferogram.tif")
    amplitudes = {k: v for k, v in inputs.items() if k.startswith("amplitude_")}
    gold = filter_goldstein_raster(InterferogramSource(interferogram=interferogram, **amplitudes), 0.5, 32,
                                   output_phase=str(work / f"{name}_goldstein.tif"))
    deep = filter_deepinsar_raster(source, output_phase=str(work / f"{name}_deepinsar.tif"),
                                   output_coherence=str(work / f"{name}_deepinsar_coh.tif"))
    row = {"scene": name, "paths": {"input": interferogram, "Boxcar 5×5": box["OUTPUT_PHASE"],
                                    "Goldstein α=0.5": gold["OUTPUT_PHASE"], "DeepInSAR": deep["OUTPUT_PHASE"]}}
    for label, path in zip(_KEYS.values(), row["paths"].values()):
        m = evaluate_rasters(path)
        row[f"residues_{label}"] = m["RESIDUE_COUNT"]
        row[f"density_{label}"] = round(m["RESIDUE_DENSITY"], 5)
    for label, path in (("boxcar", box["OUTPUT_COHERENCE"]), ("deepinsar", deep["OUTPUT_COHERENCE"])):
        coherence, valid = read_full(path, "coherence", "real")
        row[f"mean_{label}_coherence"] = round(float(coherence[valid].mean()), 3)
    return row


def _raw_interferogram(source: InterferogramSource, path: Path) -> str:
    """reference·conj(secondary) of an SLC pair, written whole (the scenes here are small)."""
    from qgis_insar_ml.core.raster_io import OutputBand, OutputRaster, Window

    block = source.read(Window(0, 0, source.grid.height, source.grid.width))
    out = OutputRaster(path, source.grid, [OutputBand("interferogram", complex_values=True)])
    out.write(Window(0, 0, source.grid.height, source.grid.width), block.interferogram)
    return str(out.commit())


def figure(rows: list[dict], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 4, figsize=(14.5, 3.6 * len(rows)), constrained_layout=True, squeeze=False)
    for ax_row, row in zip(axes, rows):
        for ax, (label, path) in zip(ax_row, row["paths"].items()):
            phase, valid = read_full(path, label, "phase")
            ax.imshow(np.where(valid, phase, np.nan), cmap="twilight", vmin=-np.pi, vmax=np.pi, interpolation="nearest")
            ax.set_title(f"{row['scene']}: {label} ({row[f'residues_{_KEYS[label]}']} residues)")
            ax.set_axis_off()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "realdata")
    args = parser.parse_args()
    if not args.realdata.is_dir():
        sys.exit(f"No real data at {args.realdata}: pass --realdata.")
    args.work.mkdir(parents=True, exist_ok=True)
    scenes = {"greece": licsar(args.realdata, "greece", args.work),
              "afghanistan": licsar(args.realdata, "afghanistan", args.work),
              "despeckcl": despeckcl(args.realdata, args.work),
              "amsterdam": amsterdam(args.realdata, args.work)}
    rows = [run_scene(name, inputs, args.work) for name, inputs in scenes.items()]
    print("| scene | residues: input | Boxcar 5×5 | Goldstein α=0.5 | DeepInSAR | mean coherence: Boxcar | DeepInSAR |"
          "\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scene']} | {r['residues_input']} | {r['residues_boxcar5']} | {r['residues_goldstein0.5']} | "
              f"{r['residues_deepinsar']} | {r['mean_boxcar_coherence']} | {r['mean_deepinsar_coherence']} |")
    (args.work / "real_data_filters.json").write_text(json.dumps(rows, indent=2))
    figure(rows, args.work / "real_data_filters.png")


if __name__ == "__main__":
    main()
