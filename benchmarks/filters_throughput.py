"""Boxcar and Goldstein end to end (GeoTIFF in, compressed GeoTIFFs out): Mpx/s and peak RSS.

Each measurement runs in a fresh process, so its peak RSS is its own:

- ``core``: a Python process making the core call the Processing algorithms make
  (Boxcar 5×5 writes phase and coherence, Goldstein α=0.5 the phase); the time excludes
  the imports, the peak RSS is the process's ``VmHWM``;
- ``qgis_process``: ``qgis_process.bin run insarml:filter_boxcar`` as a user runs it, under
  ``/usr/bin/time`` (wall time including QGIS's start, maximum resident set size). Its fixed
  cost (start, plugin, a 64×64 input) is measured too and printed below the table.

Inputs are complex64 tiled GeoTIFFs made by tiling a simulated 2048² S2-F2 interferogram,
written once into --work and reused; or give a real raster with --interferogram. The load
average before and after is printed: the figures are only comparable on an idle machine.

    make stage && .venv/bin/python benchmarks/filters_throughput.py       # 4 and 64 Mpx
    .venv/bin/python benchmarks/filters_throughput.py --sizes 4 --qgis-process-sizes
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from deepinsar_throughput import QGIS_PROCESS, TIME, enable_plugin

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURE = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from qgis_insar_ml.core.classical import filter_boxcar_raster, filter_goldstein_raster
from qgis_insar_ml.core.inputs import InterferogramSource
start = time.perf_counter()
source = InterferogramSource(interferogram={src!r})
if {method!r} == "boxcar":
    filter_boxcar_raster(source, 5, {phase!r}, {coherence!r})
else:
    filter_goldstein_raster(source, 0.5, 32, output_phase={phase!r})
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak.
hwm_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({{"seconds": seconds, "peak_rss_mb": hwm_kb / 1024}}))
"""
METHODS = {"boxcar": "Boxcar 5×5", "goldstein": "Goldstein α=0.5"}


def make_input(path: Path, megapixels: float) -> Path:
    """A side×side complex64 GeoTIFF tiled from one simulated 2048² scene."""
    import numpy as np
    from osgeo import gdal

    from qgis_insar_ml.core.simulator import simulate_pair

    side = int(math.sqrt(megapixels * 2**20))
    if path.exists():
        return path
    scene = simulate_pair(min(side, 2048), min(side, 2048), "S2", "F2", True, seed=11).interferogram
    ds = gdal.GetDriverByName("GTiff").Create(str(path), side, side, 1, gdal.GDT_CFloat32,
                                              ["TILED=YES", "BIGTIFF=YES"])
    band = ds.GetRasterBand(1)
    step = scene.shape[0]
    for r in range(0, side, step):
        for c in range(0, side, step):
            band.WriteArray(np.ascontiguousarray(scene[: min(step, side - r), : min(step, side - c)]), c, r)
    ds = None
    return path


def _outputs(out: Path, method: str) -> list[Path]:
    return [Path(f"{out}_phase.tif")] + ([Path(f"{out}_coh.tif")] if method == "boxcar" else [])


def _collect(outputs: list[Path]) -> float:
    """Total size of the outputs [MB]; removes them."""
    size = sum(p.stat().st_size for p in outputs) / 1e6
    for p in outputs:
        p.unlink()
    return size


def measure_core(method: str, src: Path, out: Path) -> dict:
    outputs = _outputs(out, method)
    code = MEASURE.format(repo=str(REPO), src=str(src), method=method, phase=str(outputs[0]),
                          coherence=str(outputs[-1]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "output_mb": _collect(outputs)}


def measure_qgis_process(src: Path, out: Path, env: dict[str, str]) -> dict:
    """One fresh ``qgis_process run insarml:filter_boxcar``: wall seconds and peak RSS."""
    outputs = _outputs(out, "boxcar")
    args = [TIME, "-f", "INSARML_TIME %e %M", QGIS_PROCESS, "run", "insarml:filter_boxcar", "--",
            f"INTERFEROGRAM={src}", "WINDOW=5", f"OUTPUT_PHASE={outputs[0]}", f"OUTPUT_COHERENCE={outputs[1]}"]
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    match = re.search(r"INSARML_TIME ([\d.]+) (\d+)", done.stderr)
    if done.returncode != 0 or not match or not all(p.is_file() for p in outputs):
        sys.exit(f"qgis_process failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {"seconds": float(match.group(1)), "peak_rss_mb": int(match.group(2)) / 1024,
            "output_mb": _collect(outputs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[4, 64], help="Mpx (2^20 px) per input")
    parser.add_argument("--qgis-process-sizes", type=float, nargs="*", default=[64],
                        help="sizes also run through qgis_process (Boxcar); none: skip qgis_process")
    parser.add_argument("--interferogram", type=Path, help="benchmark this raster instead of simulated ones")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "bench")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = ([(args.interferogram.stem, args.interferogram, True)] if args.interferogram else
              [(f"{mp:g} Mpx", make_input(args.work / f"ifg_{mp:g}mpx.tif", mp), mp in args.qgis_process_sizes)
               for mp in args.sizes])
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(REPO / "build" / "plugins")}
    if any(through_qgis for *_, through_qgis in inputs):
        enable_plugin(env)
    load_before = os.getloadavg()[0]
    from osgeo import gdal

    rows = []
    for label, src, through_qgis in inputs:
        ds = gdal.Open(str(src))
        mpx = ds.RasterXSize * ds.RasterYSize / 1e6
        runs = [(m, "core", partial(measure_core, m, src, args.work / f"out_{m}")) for m in METHODS]
        if through_qgis:
            runs.append(("boxcar", "qgis_process", partial(measure_qgis_process, src, args.work / "out_qgis", env)))
        for method, path, run in runs:
            m = run()
            rows.append({"input": label, "megapixels": round(mpx, 2), "method": METHODS[method], "path": path,
                         "seconds": round(m["seconds"], 2), "mpx_per_s": round(mpx / m["seconds"], 1),
                         "peak_rss_mb": round(m["peak_rss_mb"]), "output_mb": round(m["output_mb"])})
            print(rows[-1], flush=True)
    fixed = None
    if any(through_qgis for *_, through_qgis in inputs):
        tiny = args.work / "ifg_tiny.tif"
        if not tiny.exists():
            gdal.Translate(str(tiny), str(inputs[0][1]), srcWin=[0, 0, 64, 64])
        fixed = measure_qgis_process(tiny, args.work / "out_qgis", env)
    load_after = os.getloadavg()[0]
    print("\n| input | method | run | seconds | Mpx/s | peak RSS [MB] | outputs [MB] |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} ({r['megapixels']} Mpx) | {r['method']} | {r['path']} | {r['seconds']} | "
              f"{r['mpx_per_s']} | {r['peak_rss_mb']} | {r['output_mb']} |")
    if fixed:
        print(f"\nqgis_process fixed cost (start, plugin, 64×64 input): {fixed['seconds']:.2f} s, "
              f"{fixed['peak_rss_mb']:.0f} MB peak RSS")
    print(f"Load average (1 min) before / after: {load_before:.2f} / {load_after:.2f} on {os.cpu_count()} CPUs")
    (args.work / "filters_throughput.json").write_text(json.dumps(
        {"rows": rows, "qgis_process_fixed": fixed, "load_average": [load_before, load_after],
         "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))


if __name__ == "__main__":
    main()
