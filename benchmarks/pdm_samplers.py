"""Samplers of a PDM against ancestral sampling on the full chain, on held-out synthetic data.

For each sampler (ancestral respaced, DDIM η=0, DPM-Solver++ multistep as SDE η=1 and ODE η=0, Heun) at each
number of network evaluations (NFE; Heun spends 2 per step) the same class-balanced
batch is generated with the same seed, plus ancestral sampling on all T steps as the
reference. Columns: semivariogram distance to held-out real scenes (RMS log-ratio of
the mean curves), whether the generated mean curve lies inside the real 95 % band at
every lag, FID and precision/recall (k = 3) in the feature space of an encoder trained
on a disjoint synthetic set, and seconds per sample on this machine.

Generated samples are re-stretched to [−1, 1] before scoring, as the paper does (§4.2):
the real scenes are min-max normalised, and PDMs explore a slightly smaller range.
Each configuration's samples are cached in build/pdm_samplers/ in seeded chunks of 64, so
an interrupted run resumes where it stopped and more scenes only add chunks.

The distance is an RMS over lags of the log-ratio of mean curves, and a few rough scenes
weigh heavily in a mean: with 64 scenes it varies by about ±0.04 from seed to seed, the
size of the 10 % being tested. The two compared configurations (ancestral on all T steps
and DPM-Solver++ at 20 NFE) therefore get 256 scenes each, against 1000 real ones.

    .venv/bin/python benchmarks/pdm_samplers.py --samples 32 --key-samples 256 --real 1000
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

from qgis_insar_ml.core.datasets.folder import min_max_scale  # noqa: E402
from qgis_insar_ml.core.diffusion.data import VALIDATION_OFFSET, SyntheticPdmData  # noqa: E402
from qgis_insar_ml.core.diffusion.evaluation import (  # noqa: E402
    frechet_distance, precision_recall, semivariogram, semivariogram_band, semivariogram_distance, train_encoder)
from qgis_insar_ml.core.diffusion.generate import generate, sampler_options  # noqa: E402
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm  # noqa: E402

TEST_OFFSET = 2 * VALIDATION_OFFSET       # held-out real scenes: never trained or validated on
ENCODER_OFFSET = 3 * VALIDATION_OFFSET    # the encoder's own training scenes
# (row label, sampler, options): DPM-Solver++ both as the SDE solver (the plugin's default) and the ODE one
VARIANTS = (("ancestral", "ancestral", {}), ("ddim", "ddim", {"eta": 0.0}),
            ("dpm_solver++ (SDE)", "dpm_solver++", {"eta": 1.0}), ("dpm_solver++ (ODE)", "dpm_solver++", {"eta": 0.0}),
            ("heun", "heun", {}))
KEY = "dpm_solver++ (SDE)"
CHUNK = 64                                # scenes per seeded, separately cached batch


def stretch(samples: np.ndarray) -> np.ndarray:
    return np.stack([min_max_scale(s, (-1.0, 1.0))[0] for s in samples[:, 0]]).astype(np.float32)


def real_scenes(model_card: dict, count: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    dataset = "interferograms" if "interferograms" in model_card["training"]["data"] else "deformation"
    data = SyntheticPdmData(dataset, int(model_card["sample_size"]), int(model_card["training"]["seed"]))
    batch = data.batch_from(offset, count)
    return batch.x0.numpy()[:, 0], batch.labels.numpy()


def run_config(pdm, label: str, sampler: str, nfe: int, count: int, seed: int, cache: Path, options: dict) -> dict:
    """``count`` scenes in chunks of at most CHUNK, chunk k seeded with ``seed`` + k and cached on its own.

    Asking for more scenes later only adds chunks, so an ancestral run on the full chain is
    never repeated. Each chunk is class-balanced by itself.
    """
    parts, seconds = [], 0.0
    for k, first in enumerate(range(0, count, CHUNK)):
        n = min(CHUNK, count - first)
        path = cache / f"{label.replace(' ', '_').strip('()')}_{nfe}_s{seed + k}_{n}.npz"
        if not path.is_file():
            tic = time.perf_counter()
            samples, _ = generate(pdm, n, sampler=sampler, steps=nfe // 2 if sampler == "heun" else nfe,
                                  seed=seed + k, batch_size=n, options=options)
            np.savez(path, samples=samples, seconds=(time.perf_counter() - tic) / n)
        saved = np.load(path)
        parts.append(saved["samples"])
        seconds += float(saved["seconds"]) * n
    return {"samples": np.concatenate(parts), "seconds": seconds / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "pdm_interferograms_64.safetensors"))
    parser.add_argument("--samples", type=int, default=32, help="generated scenes per configuration")
    parser.add_argument("--key-samples", type=int, default=256,
                        help="scenes for the two compared configurations: ancestral on all T steps and "
                             "DPM-Solver++ at 20 NFE (the distance's sampling noise shrinks with the count)")
    parser.add_argument("--real", type=int, default=1000, help="held-out real scenes")
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 20, 50, 100, 250])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpm-order", type=int, default=2)
    parser.add_argument("--dpm-skip", default="logSNR")
    parser.add_argument("--out", default=str(REPO / "docs" / "pdm_samplers"))
    parser.add_argument("--update-card", action="store_true", help="record the results in the model's card")
    args = parser.parse_args()

    torch.manual_seed(0)
    pdm = load_pdm(args.model)
    cache = REPO / "build" / "pdm_samplers" / Path(args.model).stem
    cache.mkdir(parents=True, exist_ok=True)
    real, _ = real_scenes(pdm.card, args.real, TEST_OFFSET)
    fit, fit_labels = real_scenes(pdm.card, 1000, ENCODER_OFFSET)
    encoder = train_encoder(fit[:, None], fit_labels, steps=400, seed=0)
    real_features = encoder.features(real[:, None])
    _, real_gamma = semivariogram(real)
    low, high = semivariogram_band(real_gamma)
    T = pdm.diffusion_settings["steps"]

    configs = [VARIANTS[0] + (T,)] + [variant + (n,) for variant in VARIANTS for n in args.nfe]
    rows, kept, gammas = [], {}, {}
    for label, sampler, extra, nfe in configs:
        options = sampler_options(sampler, args.dpm_order, args.dpm_skip, extra.get("eta"))
        key = (label, nfe) in (("ancestral", T), (KEY, 20))
        count = args.key_samples if key else args.samples
        done = run_config(pdm, label, sampler, nfe, count, args.seed, cache, options)
        samples = stretch(done["samples"])
        _, gamma = semivariogram(samples)
        mean_gamma = np.nanmean(gamma, axis=0)
        features = encoder.features(samples[:, None])
        precision, recall = precision_recall(real_features, features, 3)
        row = {"sampler": label, "nfe": nfe, "samples": count, "semivariogram_distance": semivariogram_distance(real_gamma, gamma),
               "inside_band_every_lag": bool(((mean_gamma >= low) & (mean_gamma <= high)).all()),
               "fid": frechet_distance(real_features, features), "precision": precision, "recall": recall,
               "seconds_per_sample": done["seconds"]}
        if key:   # the spread of the distance between seeded chunks shows how precise the figure is
            row["chunk_distances"] = [semivariogram_distance(real_gamma, gamma[i:i + CHUNK])
                                      for i in range(0, count, CHUNK)]
        rows.append(row)
        kept[(label, nfe)] = samples
        gammas[(label, nfe)] = gamma
        print(json.dumps(row), flush=True)

    reference = rows[0]
    dpm20 = next((r for r in rows if r["sampler"] == KEY and r["nfe"] == 20), None)
    ode20 = next((r for r in rows if r["sampler"] == "dpm_solver++ (ODE)" and r["nfe"] == 20), None)
    summary = {"model": Path(args.model).name, "samples": args.samples, "key_samples": args.key_samples,
               "real": args.real, "T": T,
               "dpm_order": args.dpm_order, "dpm_skip": args.dpm_skip, "rows": rows,
               "reference_inside_band_every_lag": reference["inside_band_every_lag"]}
    if dpm20:
        summary["dpm20_over_reference"] = dpm20["semivariogram_distance"] / reference["semivariogram_distance"]
        summary["dpm20_within_10_percent"] = dpm20["semivariogram_distance"] <= 1.1 * reference["semivariogram_distance"]
        summary["speedup_nfe"] = T / 20
        ratios = bootstrap_ratios(real_gamma, gammas[("ancestral", T)], gammas[(KEY, 20)])
        summary["dpm20_over_reference_95"] = np.percentile(ratios, [2.5, 97.5]).tolist()
        summary["dpm20_within_10_percent_bootstrap_share"] = float(np.mean(ratios <= 1.1))
    if ode20:
        summary["dpm20_ode_over_reference"] = ode20["semivariogram_distance"] / reference["semivariogram_distance"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    out.with_suffix(".md").write_text(markdown(rows))
    figure(kept, real, pdm.classes, out.with_name(out.name + "_grid.png"), 20 if 20 in args.nfe else args.nfe[0], T)
    print(markdown(rows))
    print({k: v for k, v in summary.items() if k != "rows"})
    if args.update_card:
        card_file = Path(args.model).with_suffix(".json")
        card = json.loads(card_file.read_text())
        card["benchmark"] = {"command": "benchmarks/pdm_samplers.py " + " ".join(sys.argv[1:]), **summary}
        card_file.write_text(json.dumps(card, indent=1))


def bootstrap_ratios(real_gamma: np.ndarray, reference: np.ndarray, candidate: np.ndarray, rounds: int = 2000,
                     seed: int = 0) -> np.ndarray:
    """distance(candidate) / distance(reference) with each generated set's scenes resampled with replacement.

    Its spread is how well the scene counts pin the ratio down.
    """
    rng = np.random.default_rng(seed)

    def resampled(gamma: np.ndarray) -> float:
        return semivariogram_distance(real_gamma, gamma[rng.integers(0, len(gamma), len(gamma))])

    return np.array([resampled(candidate) / resampled(reference) for _ in range(rounds)])


def markdown(rows: list[dict]) -> str:
    lines = ["| sampler | NFE | scenes | semivariogram distance | inside 95 % band at every lag | FID | precision | recall "
             "| s / sample |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['sampler']} | {r['nfe']} | {r['samples']} | {r['semivariogram_distance']:.3f} | "
                     f"{'yes' if r['inside_band_every_lag'] else 'no'} | {r['fid']:.2f} | {r['precision']:.2f} | "
                     f"{r['recall']:.2f} | {r['seconds_per_sample']:.3f} |")
    return "\n".join(lines) + "\n"


def figure(kept: dict, real: np.ndarray, classes: list[str] | None, path: Path, nfe: int, T: int) -> None:
    """Rows: real scenes, each sampler at ``nfe`` NFE, and ancestral on the full chain; one class per column."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = ([("held-out real", real)] + [(f"{label}, {nfe} NFE", kept[(label, nfe)]) for label, _, _ in VARIANTS]
            + [(f"ancestral, {T} NFE", kept[("ancestral", T)])])
    columns = len(classes) if classes else 5
    fig = Figure(figsize=(2 * columns, 2.1 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.imshow(images[c], cmap="RdBu_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0 and classes:
                ax.set_title(classes[c], fontsize=9)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
