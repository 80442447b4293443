"""Per-class statistics of a class-conditional PDM against held-out scenes of its built-in dataset.

For every class: semivariograms with the real scenes' 95 % band, radial power spectra,
value histograms in physical units (dB for ``sar``) with their earth mover's (W1) distance,
then FID and precision/recall (k = 3) in the project's feature encoder, a classifier
CNN trained on other real scenes
(:func:`~qgis_insar_ml.core.diffusion.evaluation.train_encoder`). Small sets bias FID
upwards, so each class also gets the FID of a second, disjoint real set of the generated
set's size: the floor that a perfect generator would reach with that many samples; the
histogram distance gets the same floor.

Generated samples come from the same cache and settings as pdm_class_fidelity.py
(SDE-DPM-Solver++, 20 steps, ``--guidance``, default the card's recommended scale) and are
re-stretched to [−1, 1] before their spatial statistics are taken, as in pdm_samplers.py;
the histograms rescale them to physical units with the card's coefficients, as
``insarml:pdm_generate`` RESCALE does.

    .venv/bin/python benchmarks/pdm_per_class.py --model models/pdm_sar_64.safetensors --dataset sar \\
        --per-class 32 --update-card --figure docs/pdm_sar_per_class.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pdm_class_fidelity import (  # noqa: E402
    CACHE, CEILING_OFFSET, CLASSIFIER_OFFSET, builtin_model, cached_samples, generator_version, real_batches,
    real_scenes, update_card)
from pdm_samplers import stretch  # noqa: E402
from qgis_insar_ml.core.diffusion.data import SyntheticPdmData  # noqa: E402
from qgis_insar_ml.core.diffusion.evaluation import (  # noqa: E402
    FeatureEncoder, evaluate_sets, frechet_distance, load_encoder, plot_evaluation, save_encoder, train_encoder,
    value_histograms)
from qgis_insar_ml.core.diffusion.generate import rescale_samples  # noqa: E402
from qgis_insar_ml.core.model_files import recommended_guidance  # noqa: E402

FLOOR_OFFSET = CEILING_OFFSET + 100_000   # a second held-out real set, for the small-sample FID floor


def held_out(data: SyntheticPdmData, offset: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scenes in [−1, 1], the same in physical units, labels) of ``count`` class-balanced real scenes."""
    parts = real_batches(data, offset, count)
    scenes = np.concatenate([p.x0.numpy()[:, 0] for p in parts])
    ranges = np.concatenate([p.ranges for p in parts])
    lo, hi = ranges[:, :1, None], ranges[:, 1:, None]
    return scenes, (scenes + 1.0) / 2.0 * (hi - lo) + lo, np.concatenate([p.labels.numpy() for p in parts])


def cached_encoder(data: SyntheticPdmData, args: argparse.Namespace) -> FeatureEncoder:
    path = CACHE / (f"encoder_{data.dataset}_{data.scenes.size // data.zoom}_{generator_version(data)}_seed{data.seed}"
                    f"_n{args.encoder_scenes}_steps{args.encoder_steps}.safetensors")
    if path.is_file():
        return load_encoder(path)
    scenes, labels = real_scenes(data, CLASSIFIER_OFFSET, args.encoder_scenes)
    encoder = train_encoder(scenes[:, None], labels, steps=args.encoder_steps, seed=args.seed)
    save_encoder(encoder, path)
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a class-conditional PDM (.safetensors)")
    parser.add_argument("--dataset", required=True, help="its built-in dataset (interferograms, deformation, sar)")
    parser.add_argument("--per-class", type=int, default=32, help="generated samples per class")
    parser.add_argument("--real-per-class", type=int, default=100, help="held-out real scenes per class")
    parser.add_argument("--guidance", type=float, default=None, help="default: the card's recommended scale")
    parser.add_argument("--sampler", default="dpm_solver++")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--encoder-scenes", type=int, default=4000)
    parser.add_argument("--encoder-steps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "pdm_per_class.json")
    parser.add_argument("--figure", type=Path, default=None, help="PNG: one row per class")
    parser.add_argument("--update-card", action="store_true", help="record the summary in the model's card")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pdm, data = builtin_model(args.model, args.dataset)
    guidance = args.guidance if args.guidance is not None else recommended_guidance(pdm.card)
    n_classes = len(pdm.classes)
    real, real_units, real_labels = held_out(data, CEILING_OFFSET, args.real_per_class * n_classes)
    floor, floor_units, floor_labels = held_out(data, FLOOR_OFFSET, args.per_class * n_classes)
    samples, labels, seconds = cached_samples(pdm, args.model, guidance, args)
    generated = stretch(samples[:, None])
    generated_units = rescale_samples(pdm, samples[:, None], labels.tolist(), seed=args.seed)[:, 0]
    encoder = cached_encoder(data, args)
    units = {"interferograms": "rad", "deformation": "rad"}.get(args.dataset) or pdm.card.get(
        "normalisation", {}).get("units") or "value"

    real_features, floor_features = encoder.features(real[:, None]), encoder.features(floor[:, None])

    def scores(mask_real: np.ndarray, mask_gen: np.ndarray, mask_floor: np.ndarray) -> dict:
        result = evaluate_sets(real[mask_real], generated[mask_gen], encoder)
        stats = result["channels"][0]
        edges, h_real, h_gen = value_histograms(real_units[mask_real], generated_units[mask_gen])
        stats["histogram"] = {"edges": edges.tolist(), "real": h_real.tolist(), "generated": h_gen.tolist(),
                              "units": units}
        # the earth mover's distance between the value distributions: fair to the bimodal dB of wave mode
        # (23° and 36.5°), where a mean or median shift depends on the mixture, and to heavy-tailed ranges
        stats["histogram_w1"] = wasserstein_distance(real_units[mask_real].ravel(), generated_units[mask_gen].ravel())
        stats["histogram_w1_real_floor"] = wasserstein_distance(real_units[mask_real].ravel(),
                                                                floor_units[mask_floor].ravel())
        result["features"]["fid_real_floor"] = frechet_distance(real_features[mask_real], floor_features[mask_floor])
        return result

    per_class = {name: scores(real_labels == c, labels == c, floor_labels == c) for c, name in enumerate(pdm.classes)}
    pooled = scores(np.ones(len(real), bool), np.ones(len(generated), bool), np.ones(len(floor), bool))

    def summary(result: dict) -> dict:
        stats, feats = result["channels"][0], result["features"]
        curve = {key: np.array(stats["semivariogram"][key], dtype=float)
                 for key in ("lags", "real_low", "real_high", "generated_mean")}
        outside = (curve["generated_mean"] < curve["real_low"]) | (curve["generated_mean"] > curve["real_high"])
        return {"semivariogram_distance": stats["semivariogram"]["distance"],
                "mean_inside_band_every_lag": not outside.any(), "lags_outside_band": curve["lags"][outside].tolist(),
                "fraction_inside_band": stats["semivariogram"]["fraction_inside_band"],
                "spectrum_distance": stats["spectrum"]["distance"], "histogram_w1": stats["histogram_w1"],
                "histogram_w1_real_floor": stats["histogram_w1_real_floor"], "fid": feats["fid"],
                "fid_real_floor": feats["fid_real_floor"], "precision": feats["precision"], "recall": feats["recall"]}

    report = {"command": "benchmarks/pdm_per_class.py " + " ".join(sys.argv[1:]), "model": args.model.name,
              "sampler": args.sampler, "steps": args.steps, "guidance_scale": guidance,
              "generated_per_class": args.per_class, "real_per_class": args.real_per_class, "units": units,
              "seconds_per_sample": seconds, "pooled": summary(pooled),
              "classes": {name: summary(r) for name, r in per_class.items()}}
    head = ("| class | semivariogram distance | mean curve in real 95 % band | samples' γ in band | spectrum "
            f"distance | histogram W1 [{units}] (real floor) | FID (real floor) | precision | recall |\n"
            + "|---" * 10 + "|\n")

    def band(s: dict) -> str:
        lags = s["lags_outside_band"]
        return "every lag" if not lags else f"out at {len(lags)} lags ({lags[0]:g}–{lags[-1]:g} px)"

    rows = [(name, s) for name, s in report["classes"].items()] + [("all classes", report["pooled"])]
    print(head + "".join(
        f"| {name} | {s['semivariogram_distance']:.3f} | {band(s)} | {100 * s['fraction_inside_band']:.0f} % | "
        f"{s['spectrum_distance']:.3f} | {s['histogram_w1']:.2f} ({s['histogram_w1_real_floor']:.2f}) | "
        f"{s['fid']:.2f} ({s['fid_real_floor']:.2f}) | {s['precision']:.2f} | {s['recall']:.2f} |\n"
        for name, s in rows))

    merged = json.loads(args.output.read_text()) if args.output.is_file() else {}
    merged[args.model.stem] = {**report, "curves": {name: r["channels"][0] for name, r in per_class.items()}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(merged, indent=1))
    if args.figure:
        plot_evaluation({"channels": [r["channels"][0] for r in per_class.values()],
                         "features": pooled["features"], "n_real": len(real), "n_generated": len(generated)},
                        args.figure, row_titles=list(pdm.classes), value_label=units)
    if args.update_card:
        update_card(args.model, "per_class_statistics", report)


if __name__ == "__main__":
    main()
