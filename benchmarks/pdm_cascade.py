"""128×128 interferograms from the cascade (shipped 64² PDM + shipped 2× super-resolution) against real ones.

The cascade is what ``insarml:pdm_generate`` with SUPERRESOLVE does: class-balanced 64² samples
from ``pdm_interferograms_64`` (SDE-DPM-Solver++, 20 steps, the card's guidance), rescaled to radians, each
super-resolved by ``pdm_superres_2x`` (20 steps, back-projected onto the sample). The real set is
held-out built-in 128² interferograms (indices never trained or validated on). As in
pdm_samplers.py, every scene is stretched to [−1, 1] before its semivariogram is taken, and a
set passes a class when its mean semivariogram lies inside the real scenes' 95 % band at every
lag (1–64 px).

To tell the stages apart, three more sets are scored per class:

- ``base``: the 64² samples against the real 128² scenes averaged 2×2 (what the SR model takes);
- ``base_own``: the same samples against real 64² scenes, the base model's own training kind;
- ``sr_of_real``: the SR model applied to those real 64² averages, against the real 128² scenes
  (the SR stage given perfect inputs);
- ``base_bilinear``: the 64² samples upsampled bilinearly, against the real 128² scenes (the
  base stage without the SR's detail).

Samples are cached in build/pdm_cascade/ in seeded chunks of 8 per class, so a rerun only
scores and more scenes only add chunks.

    .venv/bin/python benchmarks/pdm_cascade.py --per-class 16 --real 400 --threads 1  # ~12 min, one core
    .venv/bin/python benchmarks/pdm_cascade.py --per-class 64 --real 1000             # ~40 min
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pdm_class_fidelity import model_key  # noqa: E402
from pdm_samplers import TEST_OFFSET, stretch  # noqa: E402
from qgis_insar_ml.core.datasets.synthetic import SyntheticInterferograms  # noqa: E402
from qgis_insar_ml.core.diffusion.data import downsample  # noqa: E402
from qgis_insar_ml.core.diffusion.evaluation import (  # noqa: E402
    semivariogram, semivariogram_band, semivariogram_distance)
from qgis_insar_ml.core.diffusion.generate import (  # noqa: E402
    check_cascade, generate, rescale_samples, superresolve_samples)
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm  # noqa: E402
from qgis_insar_ml.core.model_files import recommended_guidance  # noqa: E402

MODELS = REPO / "models"
CHUNK = 8                                 # scenes per class in one seeded, separately cached chunk


def real_scenes(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out built-in 128² interferograms [rad] (N, 128, 128) and their labels."""
    scenes = SyntheticInterferograms(128, seed=0)
    pairs = [scenes.sample(TEST_OFFSET + k) for k in range(count)]
    return np.stack([p[0] for p in pairs]).astype(np.float64), np.array([p[1] for p in pairs])


def cached(path: Path, make) -> dict:
    if not path.is_file():
        tic = time.perf_counter()
        arrays = make()
        np.savez(path, seconds=time.perf_counter() - tic, **arrays)
    return dict(np.load(path))


def band_test(real: np.ndarray, generated: np.ndarray) -> dict:
    """Mean semivariogram of ``generated`` inside the real 95 % band at every lag? (both stretched to [−1, 1])."""
    _, g_real = semivariogram(stretch(real[:, None]))
    _, g_gen = semivariogram(stretch(generated[:, None]))
    low, high = semivariogram_band(g_real)
    mean = np.nanmean(g_gen, axis=0)
    below, above = np.flatnonzero(mean < low) + 1, np.flatnonzero(mean > high) + 1
    return {"inside_band_every_lag": bool(below.size == 0 and above.size == 0),
            "distance": semivariogram_distance(g_real, g_gen),
            "lags_below_band": below.tolist(), "lags_above_band": above.tolist(),
            "log_ratio_lag_1": float(np.log(mean[0] / np.nanmean(g_real[:, 0]))), "scenes": len(generated)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=16, help="cascade samples per class")
    parser.add_argument("--real", type=int, default=400, help="held-out real 128² scenes (all classes)")
    parser.add_argument("--steps", type=int, default=20, help="base sampler steps (SDE-DPM-Solver++)")
    parser.add_argument("--sr-steps", type=int, default=20, help="super-resolution sampler steps")
    parser.add_argument("--guidance", type=float, default=None,
                        help="base classifier-free guidance (default: the card's recommended scale)")
    parser.add_argument("--base-model", type=Path, default=MODELS / "pdm_interferograms_64.safetensors")
    parser.add_argument("--sr-model", type=Path, default=MODELS / "pdm_superres_2x.safetensors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--out", default=str(REPO / "docs" / "pdm_cascade.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base, sr = load_pdm(args.base_model), load_pdm(args.sr_model)
    check_cascade(base, sr)
    guidance = args.guidance if args.guidance is not None else recommended_guidance(base.card)
    base_key, sr_key = model_key(args.base_model), model_key(args.sr_model)
    classes = base.classes
    cache = REPO / "build" / "pdm_cascade"
    cache.mkdir(parents=True, exist_ok=True)
    real, real_labels = real_scenes(args.real)
    real_low = downsample(real)
    own = SyntheticInterferograms(64, seed=0)
    own_real = np.stack([own.sample(TEST_OFFSET + k)[0] for k in range(args.real)]).astype(np.float64)

    def cascade(n: int, seed: int) -> dict:
        samples, labels = generate(base, n * len(classes), sampler="dpm_solver++", steps=args.steps, seed=seed,
                                   guidance_scale=guidance)
        low = rescale_samples(base, samples, labels, seed)
        tic = time.perf_counter()
        high = superresolve_samples(sr, low, sampler="dpm_solver++", steps=args.sr_steps, seed=seed)
        return {"low": low[:, 0], "high": high[:, 0], "labels": np.array(labels),
                "sr_seconds": time.perf_counter() - tic}

    def sr_of_real(first: int, n: int, seed: int) -> dict:
        """The SR stage on real inputs: the real scenes first..first+n−1 of each class."""
        chosen = np.concatenate([np.flatnonzero(real_labels == c)[first:first + n] for c in range(len(classes))])
        return {"high": superresolve_samples(sr, real_low[chosen][:, None], sampler="dpm_solver++",
                                             steps=args.sr_steps, seed=seed)[:, 0], "labels": real_labels[chosen]}

    # seeded chunks of CHUNK scenes per class, cached on their own: asking for more only adds chunks
    chunks, sr_chunks = [], []
    for k, first in enumerate(range(0, args.per_class, CHUNK)):
        n, seed = min(CHUNK, args.per_class - first), args.seed + k
        total = n * len(classes)
        name = f"cascade_{base_key}_{sr_key}_g{guidance:g}_s{seed}_n{total}_b{args.steps}_sr{args.sr_steps}.npz"
        chunks.append(cached(cache / name, lambda: cascade(n, seed)))
        sr_chunks.append(cached(cache / f"sr_of_real_{sr_key}_{seed}_{total}_sr{args.sr_steps}.npz",
                                lambda: sr_of_real(first, n, seed)))
        print(f"chunk {k}: {total} scenes", flush=True)
    made = {key: np.concatenate([c[key] for c in chunks]) for key in ("low", "high", "labels")}
    sr_real = {key: np.concatenate([c[key] for c in sr_chunks]) for key in ("high", "labels")}
    count = len(made["labels"])
    bilinear = np.stack([scipy.ndimage.zoom(s, 2, order=1, mode="nearest", grid_mode=True) for s in made["low"]])

    rows = {}
    for c, name in enumerate([*classes, "all"]):
        pick = (lambda labels: np.ones(len(labels), bool)) if name == "all" else (lambda labels: labels == c)
        r, g, s = pick(real_labels), pick(made["labels"]), pick(sr_real["labels"])
        rows[name] = {"cascade": band_test(real[r], made["high"][g]),
                      "base": band_test(real_low[r], made["low"][g]),
                      "base_own": band_test(own_real[r], made["low"][g]),
                      "sr_of_real": band_test(real[r], sr_real["high"][s]),
                      "base_bilinear": band_test(real[r], bilinear[g])}
        line = "  ".join(f"{stage} {'inside' if v['inside_band_every_lag'] else 'OUT'} d={v['distance']:.3f} "
                         f"lag1 {v['log_ratio_lag_1']:+.2f}" for stage, v in rows[name].items())
        print(f"{name:15s} {line}", flush=True)

    summary = {"command": "benchmarks/pdm_cascade.py " + " ".join(sys.argv[1:]),
               "base_model": args.base_model.stem, "sr_model": args.sr_model.stem, "guidance_scale": guidance,
               "sampler": "dpm_solver++ (SDE, eta 1, order 2, logSNR)", "base_steps": args.steps,
               "sr_steps": args.sr_steps, "per_class": args.per_class, "real": args.real,
               "cascade_seconds_per_scene": sum(float(c["seconds"]) for c in chunks) / count,
               "sr_seconds_per_scene": sum(float(c["sr_seconds"]) for c in chunks) / count,
               "classes": rows}
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "classes"}, indent=1))


if __name__ == "__main__":
    main()
