"""`make demo`: simulate, filter, score and plot — every step through qgis_process.

Steps: simulate a 1024×1024 pair (S2, F2, stripes); filter it with Boxcar (from the
SLCs), Goldstein (from the interferogram) and DeepInSAR (from the SLCs, shipped 4-channel
model); score the noisy input and every result against the simulated truth; write
GeoTIFFs, metrics (Markdown + JSON) and a figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qgis_insar_ml.core.raster_io import read_full  # noqa: E402


def qgis_process(binary: str, algorithm: str, **parameters) -> dict:
    """Run one algorithm with qgis_process and return its results."""
    args = [binary, "--json", "run", algorithm, "--", *(f"{k}={v}" for k, v in parameters.items())]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{algorithm} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout[done.stdout.index("{"):])["results"]


def enable_plugin(binary: str) -> None:
    """`plugins enable` (exit code 1 with "already enabled" is fine too)."""
    done = subprocess.run([binary, "plugins", "enable", "qgis_insar_ml"], capture_output=True, text=True)
    if done.returncode != 0 and "already enabled" not in done.stdout + done.stderr:
        sys.exit(f"qgis_process could not enable the plugin (QGIS_PLUGINPATH={os.environ['QGIS_PLUGINPATH']}):\n"
                 f"{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qgis-process", default="/usr/bin/qgis_process.bin")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QGIS_PLUGINPATH", str(REPO / "build" / "plugins"))
    # QGIS's own Python runs the algorithms: let it import the torch installed beside this one
    import torch

    site = str(Path(torch.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p)
    enable_plugin(args.qgis_process)
    run = lambda algorithm, **p: qgis_process(args.qgis_process, algorithm, **p)  # noqa: E731

    print(f"1/4 simulate_pair {args.size}×{args.size} S2 F2 stripes, seed {args.seed}")
    sim = run("insarml:simulate_pair", WIDTH=args.size, HEIGHT=args.size, NOISE_LEVEL="S2", FRINGE_LEVEL="F2",
              STRIPS="true", SEED=args.seed, OUTPUT_SLC_REFERENCE=out / "slc_reference.tif",
              OUTPUT_SLC_SECONDARY=out / "slc_secondary.tif", OUTPUT_INTERFEROGRAM=out / "interferogram.tif",
              OUTPUT_CLEAN_PHASE=out / "clean_phase.tif", OUTPUT_COHERENCE=out / "true_coherence.tif")
    print("2/5 filter_boxcar (window 5, from the SLC pair), filter_goldstein (alpha 0.5, patch 32), deepinsar_filter")
    box = run("insarml:filter_boxcar", SLC_REFERENCE=sim["OUTPUT_SLC_REFERENCE"],
              SLC_SECONDARY=sim["OUTPUT_SLC_SECONDARY"], WINDOW=5, OUTPUT_PHASE=out / "boxcar_phase.tif",
              OUTPUT_COHERENCE=out / "boxcar_coherence.tif")
    gold = run("insarml:filter_goldstein", INTERFEROGRAM=sim["OUTPUT_INTERFEROGRAM"], ALPHA=0.5, PATCH_SIZE=32,
               OUTPUT_PHASE=out / "goldstein_phase.tif", OUTPUT_COHERENCE=out / "goldstein_coherence.tif")
    deep = run("insarml:deepinsar_filter", SLC_REFERENCE=sim["OUTPUT_SLC_REFERENCE"],
               SLC_SECONDARY=sim["OUTPUT_SLC_SECONDARY"], OUTPUT_PHASE=out / "deepinsar_phase.tif",
               OUTPUT_COHERENCE=out / "deepinsar_coherence.tif")
    print("3/5 evaluate_filter against the simulated truth")
    truth = {"REFERENCE_PHASE": sim["OUTPUT_CLEAN_PHASE"], "REFERENCE_COHERENCE": sim["OUTPUT_COHERENCE"]}
    scores = {
        "unfiltered input": run("insarml:evaluate_filter", ESTIMATED_PHASE=sim["OUTPUT_INTERFEROGRAM"],
                                REFERENCE_PHASE=sim["OUTPUT_CLEAN_PHASE"], OUTPUT_REPORT=out / "metrics_input.json"),
        "Boxcar 5×5": run("insarml:evaluate_filter", ESTIMATED_PHASE=box["OUTPUT_PHASE"],
                          ESTIMATED_COHERENCE=box["OUTPUT_COHERENCE"], OUTPUT_REPORT=out / "metrics_boxcar.json", **truth),
        "Goldstein α=0.5": run("insarml:evaluate_filter", ESTIMATED_PHASE=gold["OUTPUT_PHASE"],
                               ESTIMATED_COHERENCE=gold["OUTPUT_COHERENCE"], OUTPUT_REPORT=out / "metrics_goldstein.json",
                               **truth),
        "DeepInSAR (shipped 4-channel)": run("insarml:evaluate_filter", ESTIMATED_PHASE=deep["OUTPUT_PHASE"],
                                             ESTIMATED_COHERENCE=deep["OUTPUT_COHERENCE"],
                                             OUTPUT_REPORT=out / "metrics_deepinsar.json", **truth),
    }
    write_tables(scores, out)
    print("4/5 figure")
    figure(out, sim, box, gold, deep)
    print("5/5 pdm_generate: one 64×64 interferogram per class (DPM-Solver++, 20 steps), pdm_superresolve 2×")
    scenes = run("insarml:pdm_generate", COUNT=5, SAMPLER="dpm_solver++", STEPS=20, SEED=args.seed, WRAPPED="true",
                 PIXEL_SIZE=200, OUTPUT_FOLDER=out / "generated")["OUTPUT_LAYERS"]
    high = run("insarml:pdm_superresolve", INPUT=scenes[2], SAMPLER="dpm_solver++", STEPS=20, SEED=args.seed,
               OUTPUT=out / "generated_superresolved.tif")["OUTPUT"]
    generated_figure(out, scenes, high)
    print((out / "metrics.md").read_text())
    print(f"Outputs in {out}")


def write_tables(scores: dict[str, dict], out: Path) -> None:
    keys = ["PHASE_RMSE", "PHASE_SSIM", "COHERENCE_RMSE", "RESIDUE_COUNT", "RESIDUE_DENSITY"]
    clean = {m: {k: s.get(k) for k in keys} for m, s in scores.items()}
    (out / "metrics.json").write_text(json.dumps(clean, indent=2))
    fmt = lambda v: "–" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| method | phase RMSE [rad] | phase SSIM | coherence RMSE | residues | residue density |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {m} | " + " | ".join(fmt(s[k]) for k in keys) + " |" for m, s in clean.items()]
    (out / "metrics.md").write_text("\n".join(lines) + "\n")


def figure(out: Path, sim: dict, box: dict, gold: dict, deep: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("Noisy interferogram", sim["OUTPUT_INTERFEROGRAM"], "phase"),
              ("Truth (clean phase)", sim["OUTPUT_CLEAN_PHASE"], "phase"),
              ("Boxcar 5×5", box["OUTPUT_PHASE"], "phase"),
              ("Goldstein α=0.5", gold["OUTPUT_PHASE"], "phase"),
              ("DeepInSAR", deep["OUTPUT_PHASE"], "phase"),
              ("True coherence", sim["OUTPUT_COHERENCE"], "coherence"),
              ("Boxcar coherence", box["OUTPUT_COHERENCE"], "coherence"),
              ("DeepInSAR coherence", deep["OUTPUT_COHERENCE"], "coherence")]
    fig, axes = plt.subplots(2, 4, figsize=(17, 8.6), constrained_layout=True)
    for ax, (title, path, kind) in zip(axes.flat, panels):
        values, _ = read_full(path, title, "phase" if kind == "phase" else "real")
        if kind == "phase":
            im = ax.imshow(values, cmap="twilight", vmin=-3.1416, vmax=3.1416, interpolation="nearest")
        else:
            im = ax.imshow(values, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8, label="phase [rad]" if kind == "phase" else "coherence")
    fig.suptitle("qgis_insar_ml demo: simulated S2-F2 pair with stripes, filtered and scored via qgis_process")
    fig.savefig(out / "figure.png", dpi=90)
    plt.close(fig)


def generated_figure(out: Path, scenes: list[str], high: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from osgeo import gdal

    fig, axes = plt.subplots(2, len(scenes) + 1, figsize=(3.2 * (len(scenes) + 1), 6.4), constrained_layout=True)
    for column, path in enumerate(scenes):
        ds = gdal.Open(str(path))
        name = ds.GetMetadata().get("INSARML_CLASS", "")
        for row, band in enumerate((1, 2)):
            values = ds.GetRasterBand(band).ReadAsArray()
            ax = axes[row][column]
            ax.imshow(values, cmap="RdBu_r" if band == 1 else "twilight", interpolation="nearest")
            ax.set_title(f"{name} ({'unwrapped' if band == 1 else 'wrapped'})", fontsize=9)
            ax.set_axis_off()
    for row, (title, path) in enumerate((("64×64 input", scenes[2]), ("2× super-resolved", high))):
        ax = axes[row][-1]
        ax.imshow(read_full(path, title, "real", band=1)[0], cmap="RdBu_r", interpolation="nearest")  # unwrapped
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle("Shipped PDMs via qgis_process: one generated interferogram per source type [rad]")
    fig.savefig(out / "generated.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
