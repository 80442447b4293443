"""Reproduce DeepInSAR's Tables 1–4 against the best classical filter of each configuration.

Test set: 18 configurations × N images of 512×512 (default 10), each a crop of a
paper-scale scene, with scene seeds 2·10^9 + k: disjoint from training (< 10^9) and
validation (10^9 + k). Methods: the unfiltered input (identity), Boxcar 3/5/7/9/11,
Goldstein (α 0.5, patch 32, Boxcar-5 coherence), and the shipped DeepInSAR models (the
phase-only one sees the phase alone). Tables 1–3: coherence RMSE, phase RMSE, phase SSIM
per configuration, plus the best classical filter of that configuration (oracle choice)
and DeepInSAR's ratio to it. Table 4: seconds per 1000×1000 image and end-to-end Mpx/s
on a 64 Mpx GeoTIFF.

    .venv/bin/python benchmarks/deepinsar_tables.py --images 10 --update-cards
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qgis_insar_ml.core.deepinsar.data import TEST_SEED_BASE  # noqa: E402
from qgis_insar_ml.core.deepinsar.inference import filter_arrays  # noqa: E402
from qgis_insar_ml.core.deepinsar.model import PAPER_CONFIG, DeepInsarNet  # noqa: E402
from qgis_insar_ml.core.deepinsar.looks_coherence import LooksCoherence  # noqa: E402
from qgis_insar_ml.core.deepinsar.modelfile import load_model  # noqa: E402
from qgis_insar_ml.core.model_files import card_path  # noqa: E402
from qgis_insar_ml.core.filters import boxcar, goldstein  # noqa: E402
from qgis_insar_ml.core.inputs import InterferogramBlock  # noqa: E402
from qgis_insar_ml.core.metrics import coherence_rmse, phase_rmse, phase_ssim  # noqa: E402
from qgis_insar_ml.core.simulator import CONFIGURATIONS, simulate_pair  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from scoring import oracle_comparison, run_methods, win_line  # noqa: E402

MODELS = {"DeepInSAR 4-ch": REPO / "models" / "deepinsar_4ch.safetensors",
          "DeepInSAR phase-only": REPO / "models" / "deepinsar_phase.safetensors"}


def config_name(noise: str, fringe: str, strips: bool) -> str:
    return f"{noise}-{fringe}-{'S' if strips else 'NS'}"


def methods(pair, nets: dict, estimators: dict) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """(phase, coherence or None) of every method on one simulated (single-look) pair."""
    return run_methods(pair.interferogram, np.abs(pair.reference) ** 2, np.abs(pair.secondary) ** 2, nets,
                       looks=1.0, looks_estimators=estimators)


def score(images: int, size: int, nets: dict, estimators: dict) -> dict[str, dict[str, dict[str, float]]]:
    """results[config][method] = mean phase RMSE, SSIM and coherence RMSE over the images."""
    results = {}
    for index, (noise, fringe, strips) in enumerate(CONFIGURATIONS):
        sums: dict[str, dict[str, list[float]]] = {}
        for k in range(images):
            pair = simulate_pair(size, size, noise, fringe, strips, TEST_SEED_BASE + 1000 * index + k)
            for name, (phase, coherence) in methods(pair, nets, estimators).items():
                m = sums.setdefault(name, {"phase_rmse": [], "ssim": [], "coherence_rmse": []})
                m["phase_rmse"].append(phase_rmse(phase, pair.clean_phase))
                m["ssim"].append(phase_ssim(phase, pair.clean_phase))
                if coherence is not None:
                    m["coherence_rmse"].append(coherence_rmse(coherence, pair.coherence))
        name = config_name(noise, fringe, strips)
        results[name] = {method: {k: float(np.mean(v)) for k, v in m.items() if v} for method, m in sums.items()}
        print(f"{name}: " + ", ".join(f"{method} {m['phase_rmse']:.3f}" for method, m in results[name].items()),
              flush=True)
    return results


def classical(methods_scores: dict) -> list[str]:
    return [m for m in methods_scores if not m.startswith("DeepInSAR")]


def tables(results: dict, main: str) -> tuple[str, dict]:
    """Markdown Tables 1–3 and ``main`` against the per-configuration oracle
    (``{"phase": ..., "coherence": ...}`` from ``scoring.oracle_comparison``)."""
    first = next(iter(results.values()))
    names = list(first)
    coh_names = [n for n in names if "coherence_rmse" in first[n]]
    summary = {}
    text = []
    for title, metric, pool, better in (
            ("Table 1: coherence RMSE", "coherence_rmse", coh_names, min),
            ("Table 2: phase RMSE [rad]", "phase_rmse", names, min),
            ("Table 3: phase SSIM", "ssim", names, max)):
        def candidates(scores, pool=pool, metric=metric):
            return [n for n in classical(scores) if n in pool and (metric != "coherence_rmse" or n.startswith("boxcar"))]
        comparison = oracle_comparison(results, main, metric, candidates, better)
        summary[{"coherence_rmse": "coherence", "phase_rmse": "phase", "ssim": "ssim"}[metric]] = comparison
        text.append(f"\n**{title}** (mean of the images; best classical = oracle choice per configuration)\n")
        text.append("| configuration | " + " | ".join(pool) + f" | best classical | {main} / best |")
        text.append("|---" * (len(pool) + 3) + "|")
        for config, scores in results.items():
            row = comparison["per_configuration"][config]
            cells = [f"{scores[n][metric]:.4f}" for n in pool]
            text.append(f"| {config} | " + " | ".join(cells)
                        + f" | {row['best_value']:.4f} ({row['best']}) | {row['ratio']:.3f} |")
    return "\n".join(text), summary


def timing(nets: dict, work: Path, big: int) -> str:
    """Table 4: seconds for a 1000×1000 image; end-to-end Mpx/s on a big GeoTIFF."""
    pair = simulate_pair(1000, 1000, "S2", "F2", True, TEST_SEED_BASE + 999_999)
    ifg = pair.interferogram
    p1, p2 = np.abs(pair.reference) ** 2, np.abs(pair.secondary) ** 2
    valid = np.ones(ifg.shape, bool)
    runs = {"Boxcar 5": lambda: boxcar(ifg, 5, p1, p2), "Goldstein": lambda: goldstein(ifg, 0.5, 32)}
    for name, net in nets.items():
        block = InterferogramBlock(ifg, p1.astype(np.float32), p2.astype(np.float32), valid)
        runs[name] = lambda net=net, block=block: filter_arrays(net, block)
    paper = DeepInsarNet(PAPER_CONFIG).eval().to(memory_format=torch.channels_last)
    runs["paper-size network (timing only)"] = lambda: filter_arrays(paper, InterferogramBlock(
        ifg, p1.astype(np.float32), p2.astype(np.float32), valid))
    lines = ["| method | seconds per 1000×1000 (CPU, 2 cores) |", "|---|---|"]
    for name, run in runs.items():
        run()
        start = time.perf_counter()
        run()
        lines.append(f"| {name} | {time.perf_counter() - start:.2f} |")
    if big:
        lines.append("")
        lines.append(end_to_end(work, big))
    return "\n".join(lines)


def end_to_end(work: Path, megapixels: int) -> str:
    """DeepInSAR filter from a GeoTIFF SLC pair to GeoTIFF phase + coherence, timed."""
    from osgeo import gdal

    from qgis_insar_ml.core.deepinsar.inference import filter_deepinsar_raster
    from qgis_insar_ml.core.inputs import InterferogramSource

    side = int((megapixels * 2**20) ** 0.5)
    paths = [work / f"slc{i}_{megapixels}mpx.tif" for i in (1, 2)]
    if not all(p.exists() for p in paths):
        pair = simulate_pair(2048, 2048, "S2", "F2", True, TEST_SEED_BASE + 5)
        for path, slc in zip(paths, (pair.reference, pair.secondary)):
            ds = gdal.GetDriverByName("GTiff").Create(str(path), side, side, 1, gdal.GDT_CFloat32,
                                                      ["TILED=YES", "BIGTIFF=YES"])
            for r in range(0, side, 2048):
                for c in range(0, side, 2048):
                    ds.GetRasterBand(1).WriteArray(np.ascontiguousarray(slc[:min(2048, side - r), :min(2048, side - c)]), c, r)
            ds = None
    source = InterferogramSource(slc_reference=str(paths[0]), slc_secondary=str(paths[1]))
    start = time.perf_counter()
    filter_deepinsar_raster(source, output_phase=str(work / "deep_phase.tif"),
                            output_coherence=str(work / "deep_coh.tif"))
    seconds = time.perf_counter() - start
    mpx = side * side / 1e6
    return (f"End to end, DeepInSAR 4-ch on a {mpx:.1f} Mpx GeoTIFF SLC pair → phase + coherence GeoTIFFs: "
            f"{seconds:.1f} s, **{mpx / seconds:.2f} Mpx/s** (default tiles 1024 px, overlap from the receptive field).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10, help="images per configuration")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--big", type=int, default=64, help="Mpx of the end-to-end run (0 = skip)")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "deepinsar_tables")
    parser.add_argument("--model-4ch", type=Path, default=MODELS["DeepInSAR 4-ch"])
    parser.add_argument("--model-phase", type=Path, default=MODELS["DeepInSAR phase-only"])
    parser.add_argument("--update-cards", action="store_true", help="write the measured metrics into the model cards")
    args = parser.parse_args()
    MODELS.update({"DeepInSAR 4-ch": args.model_4ch, "DeepInSAR phase-only": args.model_phase})
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    loaded = {name: load_model(path) for name, path in MODELS.items() if path.is_file()}
    nets = {name: net.to(memory_format=torch.channels_last) for name, (net, _) in loaded.items()}
    estimators = {name: estimator for name, (net, card) in loaded.items() if net.config.in_channels == 2
                  and (estimator := LooksCoherence.from_card(card, MODELS[name].name)) is not None}
    results = score(args.images, args.size, nets, estimators)
    report = [f"Test set: 18 configurations × {args.images} images of {args.size}×{args.size}, seeds 2·10^9 + k."]
    summaries = {}
    for main in nets:
        text, summary = tables(results, main)
        summaries[main] = summary
        report.append(f"\n### {main}\n{text}")
        report.append("\n" + win_line(main, summary["phase"], summary["coherence"]))
    report.append("\n### Table 4: speed\n" + timing(nets, args.work, args.big))
    text = "\n".join(report)
    print(text)
    (args.work / "tables.md").write_text(text)
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    if args.update_cards:
        for name, summary in summaries.items():
            card_file = card_path(MODELS[name])
            card = json.loads(card_file.read_text())
            card["metrics"] = {
                "benchmark": f"benchmarks/deepinsar_tables.py --images {args.images} (18 configurations, {args.size}² crops)",
                "phase_rmse_wins_vs_best_classical": f"{summary['phase']['wins']}/18",
                "mean_phase_rmse_ratio_to_best_classical": round(summary["phase"]["mean_ratio"], 4),
                "coherence_rmse_wins_vs_best_boxcar": f"{summary['coherence']['wins']}/18",
                "mean_coherence_rmse_ratio_to_best_boxcar": round(summary["coherence"]["mean_ratio"], 4),
                "per_configuration": {c: r[name] for c, r in results.items()},
            }
            card_file.write_text(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
