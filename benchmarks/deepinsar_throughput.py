"""DeepInSAR end to end through qgis_process: SLC pair in, phase and coherence GeoTIFFs out.

For each size, a complex64 GeoTIFF SLC pair (simulated S2-F2 scenes with stripes, 2048²
chunks with their own seeds) is written once into --work and reused. Every measurement is
a fresh ``qgis_process.bin run insarml:deepinsar_filter`` process under ``/usr/bin/time``:
wall time, and peak RSS of the process (``/usr/bin/time``'s maximum resident set size; it
waits for qgis_process's own children, and GDAL's compression threads are threads of it).
Also measured: the fixed cost (qgis_process starting, loading the plugin, torch and the
model, on a 64×64 pair) and the forward pass alone (the network on one default-size tile,
in this process, in the precision the run chose).

    make stage && .venv/bin/python benchmarks/deepinsar_throughput.py                # 4 Mpx ×3, 64 Mpx ×1
    .venv/bin/python benchmarks/deepinsar_throughput.py --sizes 4 --repeats 3 --runtime torch

--runtime sets INSARML_CPU_RUNTIME (auto: OpenVINO when installed, else torch);
--precision sets INSARML_CPU_PRECISION (auto: bfloat16 only if the first-tile check passes).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QGIS_PROCESS = "/usr/bin/qgis_process.bin"
TIME = "/usr/bin/time"
CHUNK = 2048


def side_of(megapixels: float) -> int:
    """Square side of an N-Mpx raster, N in units of 2^20 px (4 → 2048, 64 → 8192)."""
    return int(round(math.sqrt(megapixels * 2**20)))


def make_pair(work: Path, side: int) -> tuple[Path, Path]:
    """A side×side complex64 SLC pair, written once; chunks of S2-F2 scenes with stripes."""
    import numpy as np
    from osgeo import gdal

    from qgis_insar_ml.core.simulator import simulate_pair

    paths = (work / f"slc1_{side}.tif", work / f"slc2_{side}.tif")
    if all(p.exists() for p in paths):
        return paths
    work.mkdir(parents=True, exist_ok=True)
    gdal.UseExceptions()
    partial = [p.with_name(f".{p.name}.partial") for p in paths]
    driver = gdal.GetDriverByName("GTiff")
    datasets = [driver.Create(str(p), side, side, 1, gdal.GDT_CFloat32, ["TILED=YES", "BIGTIFF=YES"])
                for p in partial]
    for ds in datasets:  # a georeferenced raster, as a real product would be
        ds.SetGeoTransform((500000.0, 10.0, 0.0, 5800000.0, 0.0, -10.0))
        ds.SetProjection(_utm31())
    seed = 0
    for r in range(0, side, CHUNK):
        for c in range(0, side, CHUNK):
            rows, cols = min(CHUNK, side - r), min(CHUNK, side - c)
            pair = simulate_pair(max(rows, 64), max(cols, 64), "S2", "F2", True, seed=101 + seed)
            seed += 1
            for ds, slc in zip(datasets, (pair.reference, pair.secondary)):
                ds.GetRasterBand(1).WriteArray(np.ascontiguousarray(slc[:rows, :cols]), c, r)
    datasets = None
    for tmp, final in zip(partial, paths):
        os.replace(tmp, final)
    return paths


def _utm31() -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    return srs.ExportToWkt()


def qgis_env(runtime: str, precision: str) -> dict[str, str]:
    import torch

    site = str(Path(torch.__file__).resolve().parents[1])
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(REPO / "build" / "plugins"),
               PYTHONDONTWRITEBYTECODE="1", INSARML_CPU_RUNTIME=runtime, INSARML_CPU_PRECISION=precision)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p)
    return env


def enable_plugin(env: dict[str, str]) -> None:
    done = subprocess.run([QGIS_PROCESS, "plugins", "enable", "qgis_insar_ml"], capture_output=True, text=True, env=env)
    if done.returncode != 0 and "already enabled" not in done.stdout + done.stderr:
        sys.exit(f"qgis_process could not enable the plugin:\n{done.stdout}\n{done.stderr}\n(run `make stage` first)")


def run_filter(slcs: tuple[Path, Path], out: Path, env: dict[str, str]) -> dict:
    """One fresh qgis_process run: seconds, peak RSS [MB] and what the algorithm logged."""
    phase, coherence = out.with_name(out.name + "_phase.tif"), out.with_name(out.name + "_coh.tif")
    args = [TIME, "-f", "INSARML_TIME %e %M", QGIS_PROCESS, "run", "insarml:deepinsar_filter", "--",
            f"SLC_REFERENCE={slcs[0]}", f"SLC_SECONDARY={slcs[1]}", f"OUTPUT_PHASE={phase}",
            f"OUTPUT_COHERENCE={coherence}"]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not phase.is_file() or not coherence.is_file():
        sys.exit(f"deepinsar_filter failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    match = re.search(r"INSARML_TIME ([\d.]+) (\d+)", done.stderr)
    log = done.stdout + done.stderr
    runtime = re.search(r" on (OpenVINO \S+|torch) on cpu", log)
    precision = re.search(r"(using mixed precision|keeping float32|Precision: float32[^\n]*)", log)
    for path in (phase, coherence):
        path.unlink(missing_ok=True)
    return {"seconds": seconds, "peak_rss_mb": int(match.group(2)) / 1024 if match else float("nan"),
            "log": [l for l in log.splitlines() if "DeepInSAR:" in l or "bfloat16" in l or "OpenVINO" in l],
            "runtime": runtime.group(1) if runtime else "?",
            "precision": "bfloat16" if precision and "mixed" in precision.group(1) else "float32",
            "converted": "converted the model once" in log}


def forward_alone(slcs: tuple[Path, Path], runtime: str, precision: str, repeats: int = 5) -> dict:
    """The network alone on one default-size tile of the input, in a fresh process."""
    code = f"""
import json, os, sys, time
sys.path.insert(0, {str(REPO)!r})
os.environ["INSARML_CPU_RUNTIME"], os.environ["INSARML_CPU_PRECISION"] = {runtime!r}, {precision!r}
from pathlib import Path
from qgis_insar_ml.core.deepinsar import inference as inf
from qgis_insar_ml.core.deepinsar.cpu_runtime import cpu_runner
from qgis_insar_ml.core.deepinsar.modelfile import load_model
from qgis_insar_ml.core.deepinsar.observation import source_amplitude_stats
from qgis_insar_ml.core.inputs import InterferogramSource
from qgis_insar_ml.core.raster_io import Window
src = InterferogramSource(slc_reference={str(slcs[0])!r}, slc_secondary={str(slcs[1])!r})
tile = min(inf.CPU_TILE_SIZE, src.grid.width, src.grid.height)
model = inf.data_dir("models") / inf.SHIPPED[4]
net, card = load_model(model)
runner = cpu_runner(net, model, print)
obs = inf._observation(src.read(Window(0, 0, tile, tile)), net.config, source_amplitude_stats(src))
reduced, _ = inf.choose_runner_precision(runner, obs, print)
runner.run(obs[None], reduced)
times = []
for _ in range({repeats}):
    t = time.perf_counter(); runner.run(obs[None], reduced); times.append(time.perf_counter() - t)
times.sort()
print("RESULT", json.dumps({{"tile": tile, "seconds": times[len(times) // 2], "runtime": runner.describe(),
                            "precision": "bfloat16" if reduced else "float32"}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[4, 64], help="Mpx (2^20 px): 4 → 2048², 64 → 8192²")
    parser.add_argument("--repeats", type=int, nargs="+", default=None,
                        help="runs per size (median reported); default 3 below 16 Mpx, else 1")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "deepinsar_throughput")
    parser.add_argument("--runtime", default="auto", choices=("auto", "torch", "openvino"))
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"))
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "deepinsar_throughput.json")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = qgis_env(args.runtime, args.precision)
    enable_plugin(env)
    repeats = args.repeats or [3 if mp < 16 else 1 for mp in args.sizes]
    if len(repeats) == 1:
        repeats = repeats * len(args.sizes)

    tiny = make_pair(work, 64)
    fixed = [run_filter(tiny, work / "tiny", env) for _ in range(3)]
    rows = []
    load = os.getloadavg()[0]
    for mp, n in zip(args.sizes, repeats):
        side = side_of(mp)
        slcs = make_pair(work, side)
        runs = [run_filter(slcs, work / f"out_{side}", env) for _ in range(n)]
        seconds = statistics.median(r["seconds"] for r in runs)
        mpx = side * side / 1e6
        rows.append({"size": f"{side}×{side}", "megapixels": round(mpx, 2), "runs": n,
                     "seconds": round(seconds, 2), "all_seconds": [round(r["seconds"], 2) for r in runs],
                     "mpx_per_s": round(mpx / seconds, 2),
                     "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
                     "runtime": runs[0]["runtime"], "precision": runs[0]["precision"], "log": runs[0]["log"]})
        print({k: v for k, v in rows[-1].items() if k != "log"}, flush=True)
    forward = forward_alone(make_pair(work, side_of(args.sizes[0])), args.runtime, args.precision)
    fixed_s = statistics.median(r["seconds"] for r in fixed)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {load:.2f} at start",
        "command": "qgis_process.bin run insarml:deepinsar_filter -- SLC_REFERENCE SLC_SECONDARY OUTPUT_PHASE "
                   "OUTPUT_COHERENCE (defaults)",
        "runtime_option": args.runtime, "precision_option": args.precision,
        "fixed_overhead": {"what": "qgis_process start, plugin, model (torch only on a first conversion), 64×64 pair", "seconds": round(fixed_s, 2),
                           "all_seconds": [round(r["seconds"], 2) for r in fixed],
                           "peak_rss_mb": round(max(r["peak_rss_mb"] for r in fixed))},
        "forward": {**forward, "seconds": round(forward["seconds"], 3),
                    "mpx_per_s": round(forward["tile"] ** 2 / forward["seconds"] / 1e6, 2)},
        "runs": rows,
    }
    print("\n| input | runs | seconds (median) | Mpx/s | peak RSS [MB] | runtime | precision |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} ({r['megapixels']} Mpx) | {r['runs']} | {r['seconds']} | {r['mpx_per_s']} | "
              f"{r['peak_rss_mb']} | {r['runtime']} | {r['precision']} |")
    f = result["forward"]
    print(f"\nForward pass alone ({f['runtime']}, {f['precision']}, {f['tile']}² tile): {f['seconds']} s, "
          f"{f['mpx_per_s']} Mpx/s.")
    o = result["fixed_overhead"]
    print(f"Fixed cost per run (qgis_process start, plugin, model; 64×64 pair): {o['seconds']} s "
          f"(runs {o['all_seconds']}), peak RSS {o['peak_rss_mb']} MB.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nWrote {args.json}")


if __name__ == "__main__":
    main()
