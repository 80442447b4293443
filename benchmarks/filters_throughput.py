"""Boxcar and Goldstein throughput (Mpx/s) and peak RSS on 1, 16 and 64 Mpx interferograms.

Each measurement runs in a fresh Python process (the same core call that the Processing
algorithms make, from a GeoTIFF on disk to compressed GeoTIFFs on disk), so its peak RSS
is its own. Inputs are made by tiling a simulated 2048×2048 S2-F2 interferogram, or give
a real raster with --interferogram.

    .venv/bin/python benchmarks/filters_throughput.py            # 1, 16, 64 Mpx
    .venv/bin/python benchmarks/filters_throughput.py --sizes 1 --interferogram ifg.tif
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURE = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from qgis_insar_ml.core.classical import filter_boxcar_raster, filter_goldstein_raster
from qgis_insar_ml.core.inputs import InterferogramSource
source = InterferogramSource(interferogram={src!r})
start = time.perf_counter()
if {method!r} == "boxcar":
    filter_boxcar_raster(source, 5, {out!r} + "_phase.tif", {out!r} + "_coh.tif")
else:
    filter_goldstein_raster(source, 0.5, 32, output_phase={out!r} + "_phase.tif")
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak.
hwm_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({{"seconds": seconds, "peak_rss_mb": hwm_kb / 1024}}))
"""


def make_input(path: Path, megapixels: int) -> Path:
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


def measure(method: str, src: Path, out: Path) -> dict:
    code = MEASURE.format(repo=str(REPO), src=str(src), method=method, out=str(out))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for suffix in ("_phase.tif", "_coh.tif"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64], help="Mpx (2^20 px) per input")
    parser.add_argument("--interferogram", type=Path, help="benchmark this raster instead of simulated ones")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "bench")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = ([(args.interferogram.stem, args.interferogram)] if args.interferogram else
              [(f"{mp} Mpx", make_input(args.work / f"ifg_{mp}mpx.tif", mp)) for mp in args.sizes])
    rows = []
    from osgeo import gdal

    for label, src in inputs:
        ds = gdal.Open(str(src))
        mpx = ds.RasterXSize * ds.RasterYSize / 1e6
        for method in ("boxcar", "goldstein"):
            m = measure(method, src, args.work / f"out_{method}")
            rows.append({"input": label, "megapixels": round(mpx, 2), "method": method,
                         "seconds": round(m["seconds"], 2), "mpx_per_s": round(mpx / m["seconds"], 2),
                         "peak_rss_mb": round(m["peak_rss_mb"])})
            print(rows[-1], flush=True)
    print("\n| input | method | seconds | Mpx/s | peak RSS [MB] |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} ({r['megapixels']} Mpx) | {r['method']} | {r['seconds']} | {r['mpx_per_s']} | {r['peak_rss_mb']} |")
    (args.work / "filters_throughput.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
