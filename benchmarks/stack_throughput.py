"""Stack filtering throughput: one worker against two, end to end through the command line.

A stack of simulated pairs (16 of 2048×2048 by default, complex interferograms named
``<date1>_<date2>.tif`` in one folder) is made once into the cache folder. Each measurement
runs ``python -m qgis_insar_ml filter`` in a fresh process, from the GeoTIFFs on disk to the
filtered GeoTIFFs on disk: ``--workers 1`` filters in that process without Dask, ``--workers
2`` on a local Dask cluster of two single-threaded processes (its start-up is counted).

    .venv/bin/python benchmarks/stack_throughput.py --cache out/bench/stack
    .venv/bin/python benchmarks/stack_throughput.py --cache out/bench/stack --methods boxcar deepinsar
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NOISE_LEVELS = ("S1", "S2", "S3")
FRINGE_LEVELS = ("F1", "F2", "F3")


def make_stack(folder: Path, pairs: int, size: int) -> list[Path]:
    """``pairs`` simulated size×size interferograms (made once; reused while they are there)."""
    from qgis_insar_ml.core.simulation_io import simulate_pair_rasters

    folder.mkdir(parents=True, exist_ok=True)
    start = date(2020, 1, 1)
    paths = []
    for index in range(pairs):
        reference, secondary = start + timedelta(days=12 * index), start + timedelta(days=12 * (index + 1))
        path = folder / f"{reference:%Y%m%d}_{secondary:%Y%m%d}.tif"
        if not path.is_file():
            noise, fringes = NOISE_LEVELS[index % 3], FRINGE_LEVELS[(index // 3) % 3]
            simulate_pair_rasters(size, size, noise, fringes, index % 2 == 0, seed=index,
                                  destinations={"OUTPUT_INTERFEROGRAM": str(path)})
            print(f"made {path.name}", flush=True)
        paths.append(path)
    return paths


def measure(stack: Path, method: str, workers: int, output: Path) -> dict:
    """Wall-clock seconds of one CLI run that filters every pair (outputs removed afterwards)."""
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "qgis_insar_ml", "filter", str(stack), "--method", method,
               "--workers", str(workers), "--output-folder", str(output)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(output, ignore_errors=True)
    return {"seconds": round(seconds, 2), "filtered": summary["filtered"], "command": " ".join(command[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="folder for the simulated stack (kept)")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--methods", nargs="+", default=["boxcar"], choices=("boxcar", "goldstein", "deepinsar"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "stack_throughput.json")
    args = parser.parse_args()
    stack = args.cache / f"stack_{args.pairs}x{args.size}"
    make_stack(stack, args.pairs, args.size)
    megapixels = args.pairs * args.size**2 / 1e6
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at start, "
               f"Python {platform.python_version()}")
    rows = []
    for method in args.methods:
        single = None
        for workers in args.workers:
            run = measure(stack, method, workers, args.cache / "filtered")
            single = single or run["seconds"]
            rows.append({"method": method, "workers": workers, **run,
                         "pairs_per_s": round(args.pairs / run["seconds"], 3),
                         "mpx_per_s": round(megapixels / run["seconds"], 2),
                         "speedup": round(single / run["seconds"], 2)})
            print(rows[-1], flush=True)
    print(f"\n{args.pairs} pairs of {args.size}×{args.size} ({megapixels:.1f} Mpx), {machine}\n")
    print("| method | workers | seconds | pairs/s | Mpx/s | speed-up |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['workers']} | {r['seconds']} | {r['pairs_per_s']} | {r['mpx_per_s']} | "
              f"{r['speedup']} |")
    args.output.write_text(json.dumps({"machine": machine, "pairs": args.pairs, "size": args.size,
                                       "megapixels": round(megapixels, 1), "runs": rows}, indent=2) + "\n")
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
