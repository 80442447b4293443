"""DeepInSAR against classical filters on real signals with real speckle and standard statistics.

Test set, per signal scene (LiCSAR Greece and Afghanistan, reported separately and pooled):

- **real signal**: the unwrapped Sentinel-1 coseismic LOS displacement (``.unw``, metres, NaN
  no-data) converted to phase with the factor that best reproduces the product's own wrapped
  phase (``.diff``; the fit and the textbook −4π/λ are both reported), cropped to 480×480 around
  the deformation peak, at 1× and 3× its fringe rate (the unwrapped phase multiplied), rewrapped.
  No-data pixels are filled with the nearest valid value for the simulation and left out of
  every score.
- **real speckle**: the Envisat SLC of isce3's test data (500×500; its 480×480 interior, which has
  no zero fill) is the reference s1.
- **standard statistics**: ``s2 = correlated_secondary(s1, γ, φ, rng)`` with γ = 0.35, 0.6, 0.85, and
  an extra configuration with a spatially varying γ: the LiCSBAS Campi Flegrei mean coherence
  (a 121×121 crop, bilinearly zoomed to 480×480).
- **sensor-spectrum noise** (12 extra single-look configurations, summarised apart): the
  decorrelated part of s2 gets the SLC's own power spectrum (``speckle.speckle_like``), as real
  decorrelation noise does after the sensor's transfer function; the issue's model draws it
  white, which real interferograms are not (neighbouring phases correlate at 0.3–0.5).
- **multilooked**: 4×1 looks (rows × columns). The signal and γ are resampled 4× along rows to
  a 1920×480 full-resolution grid, the SLC is tiled 4× along rows (alternately flipped), the
  interferogram and both powers are formed at full resolution and multilooked back to 480×480,
  so every output pixel sees the same fringe rate as in the single-look configuration.

Methods as in ``deepinsar_tables.py`` (the paper's Tables 1–4): identity, Boxcar 3–11 (ML
coherence from the powers), Goldstein (α 0.5, patch 32, Boxcar-5 coherence) and each model of
``--models`` (4-channel: phase and both amplitudes; phase-only: the phase, and the configuration's
looks for its looks-aware coherence, as a user gives LOOKS; its head's coherence is reported as
"<model>, head"). Scores on the valid
pixels more than 16 px from the border: phase RMSE on the wrapped difference to the clean phase,
coherence RMSE to the true γ, mean predicted γ (calibration), and the periodic-artifact ratio at
period 4 of ``coherence·exp(iφ)`` (``exp(iφ)`` for the identity).

    .venv/bin/python benchmarks/real_signal.py --realdata ../shared/realdata
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal
from scipy.ndimage import distance_transform_edt, zoom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from qgis_insar_ml.core.deepinsar.looks_coherence import LooksCoherence  # noqa: E402
from qgis_insar_ml.core.deepinsar.modelfile import load_model  # noqa: E402
from qgis_insar_ml.core.filters import boxcar  # noqa: E402
from qgis_insar_ml.core.metrics import coherence_rmse, periodic_artifact_ratio, phase_rmse  # noqa: E402
from qgis_insar_ml.core.speckle import correlated_secondary, multilook  # noqa: E402
from scoring import WINDOWS, Calibration, markdown_table, oracle_comparison, run_methods, win_line  # noqa: E402

gdal.UseExceptions()

WAVELENGTH = 0.05546                      # m, Sentinel-1 C band
SIZE = 480                                # output grid (px)
BORDER = 16                               # px left out of every score
LOOKS = (4, 1)                            # rows × columns of the multilooked variant
SCALES = (1, 3)                           # fringe-rate multipliers
GAMMAS = (0.35, 0.6, 0.85)
PERIOD = 4                                # periodic-artifact period (the models' 4× grid)
SEED = 20261130
SCENES = ("greece", "afghanistan")
BOXCARS = [f"boxcar {w}" for w in WINDOWS]
CLASSICAL = ["identity", *BOXCARS, "goldstein"]
CALIBRATION_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
DEFAULT_MODELS = [REPO / "models" / "deepinsar_4ch.safetensors", REPO / "models" / "deepinsar_phase.safetensors"]


# ---------------------------------------------------------------- data

def read_band(path: Path) -> np.ndarray:
    if not path.is_file():
        sys.exit(f"Missing real-data file {path}: pass --realdata (the folder of ../shared/realdata/README.md).")
    return gdal.Open(str(path)).ReadAsArray()


def phase_scale(unw: np.ndarray, diff: np.ndarray) -> dict:
    """The factor k [rad/m] with diff ≈ wrap(k·unw + c), by maximising |mean exp(i(diff − k·unw))|;
    the agreement of the textbook ±4π/λ is reported beside it."""
    valid = np.isfinite(unw) & (diff != 0)
    u, d = unw[valid].astype(np.float64), diff[valid].astype(np.float64)

    def agreement(k: float, step: int = 1) -> complex:
        return np.mean(np.exp(1j * (d[::step] - k * u[::step])))

    coarse = np.arange(-400.0, 400.0, 0.5)
    k0 = coarse[np.argmax([abs(agreement(k, 7)) for k in coarse])]
    fine = np.arange(k0 - 0.5, k0 + 0.5, 0.02)
    k = float(fine[np.argmax([abs(agreement(k)) for k in fine])])
    textbook = 4 * np.pi / WAVELENGTH
    return {"fitted_rad_per_m": round(k, 2), "fitted_agreement": round(abs(agreement(k)), 4),
            "fitted_offset_rad": round(float(np.angle(agreement(k))), 3),
            "minus_4pi_over_lambda": round(-textbook, 2), "minus_4pi_over_lambda_agreement": round(abs(agreement(-textbook)), 4),
            "plus_4pi_over_lambda_agreement": round(abs(agreement(textbook)), 4),
            "fitted_over_4pi_over_lambda": round(k / textbook, 4)}


def crop_around_peak(values: np.ndarray, valid: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size×size window centred on the largest |deviation from the median|."""
    deviation = np.where(valid, np.abs(values - np.nanmedian(values[valid])), -1)
    row, col = np.unravel_index(np.argmax(deviation), values.shape)
    return (int(np.clip(row - size // 2, 0, values.shape[0] - size)),
            int(np.clip(col - size // 2, 0, values.shape[1] - size)))


def fill_nearest(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    index = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[tuple(index)]


def load_signal(realdata: Path, name: str) -> dict:
    """Unwrapped phase [rad] at 1× (the product's own fringe rate) on the SIZE×SIZE crop."""
    folder = realdata / f"01_wrapped/licsar_coseismic_{name}"
    unw, diff = read_band(folder / f"{name}.unw.vrt"), read_band(folder / f"{name}.diff.vrt")
    scale = phase_scale(unw, diff)
    valid = np.isfinite(unw)
    r0, c0 = crop_around_peak(unw, valid, SIZE)
    window = np.s_[r0:r0 + SIZE, c0:c0 + SIZE]
    phase = fill_nearest(unw, valid)[window].astype(np.float64) * scale["fitted_rad_per_m"]
    return {"phase": phase - np.median(phase), "valid": valid[window], "scale": scale, "crop": [r0, c0, SIZE, SIZE]}


def load_slc(realdata: Path) -> np.ndarray:
    slc = read_band(realdata / "03_sar_slc_backscatter/isce3_testdata/warped_envisat.slc.vrt")
    interior = slc[10:10 + SIZE, 10:10 + SIZE]
    if not np.all(interior != 0):
        sys.exit("The Envisat SLC has zero fill inside its 480×480 interior: unexpected file.")
    return interior.astype(np.complex64)


def load_gamma_map(realdata: Path) -> tuple[np.ndarray, dict]:
    """LiCSBAS mean coherence: the square crop with the widest spread, zoomed to SIZE×SIZE."""
    coh = read_band(realdata / "02_unwrapped_velocity/licsbas_campi_flegrei_124D/results/coh_avg.vrt").astype(np.float64)
    side = min(coh.shape)
    c0 = max(range(coh.shape[1] - side + 1), key=lambda c: np.nanstd(coh[:side, c:c + side]))
    crop = np.nan_to_num(coh[:side, c0:c0 + side], nan=0.0)
    gamma = np.clip(zoom(crop, SIZE / side, order=1), 0.0, 1.0)[:SIZE, :SIZE]
    return gamma, {"source": "licsbas_campi_flegrei_124D/results/coh_avg", "crop_columns": [c0, c0 + side],
                   "percentiles_5_50_95": np.percentile(gamma, [5, 50, 95]).round(3).tolist()}


def upsample(values: np.ndarray, looks: tuple[int, int]) -> np.ndarray:
    """Linear resampling onto a grid ``looks`` times finer, pixel centres aligned, so that
    multilooking it gives ``values`` back (up to the curvature within one look)."""
    out = np.asarray(values, np.float64)
    for axis, factor in enumerate(looks):
        if factor == 1:
            continue
        n = out.shape[axis]
        position = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
        low = np.minimum(np.floor(position).astype(int), n - 2)
        weight = position - low
        shape = [1, 1]
        shape[axis] = -1
        out = (np.take(out, low, axis) * (1 - weight).reshape(shape)
               + np.take(out, low + 1, axis) * weight.reshape(shape))
    return out


def tile(slc: np.ndarray, looks: tuple[int, int]) -> np.ndarray:
    """The SLC repeated ``looks`` times along each axis, every other copy flipped (no seams)."""
    rows = [slc if i % 2 == 0 else slc[::-1] for i in range(looks[0])]
    column = np.concatenate(rows, axis=0)
    return np.concatenate([column if j % 2 == 0 else column[:, ::-1] for j in range(looks[1])], axis=1)


def simulate(signal: np.ndarray, gamma: np.ndarray | float, slc: np.ndarray, looks: tuple[int, int],
             rng: np.random.Generator, sensor_spectrum: bool = False) -> dict:
    """Interferogram, powers, clean phase and true γ on the SIZE×SIZE output grid."""
    full_phase = upsample(signal, looks)
    full_gamma = upsample(gamma, looks) if np.ndim(gamma) else gamma
    s1 = tile(slc, looks)
    s2 = correlated_secondary(s1, full_gamma, full_phase, rng, sensor_spectrum=sensor_spectrum)
    ifg = s1 * np.conj(s2)
    p1, p2 = np.abs(s1) ** 2, np.abs(s2) ** 2
    clean = np.exp(1j * full_phase)
    if looks != (1, 1):
        ifg, p1, p2, clean = (multilook(v, looks) for v in (ifg, p1, p2, clean))
        full_gamma = multilook(full_gamma, looks) if np.ndim(gamma) else gamma
    return {"interferogram": ifg.astype(np.complex64), "p1": p1.astype(np.float32), "p2": p2.astype(np.float32),
            "clean": np.angle(clean), "gamma": np.broadcast_to(np.float32(full_gamma), ifg.shape)}


def fringe_rates(phase: np.ndarray, valid: np.ndarray, mask: np.ndarray) -> dict:
    """Per-pixel phase gradient statistics of the (unwrapped) signal on the output grid, and the
    phase RMSE that Boxcar 3 and 11 leave on the noise-free signal (the floor set by the signal)."""
    g = np.maximum(np.abs(np.diff(phase, axis=0))[:, :-1], np.abs(np.diff(phase, axis=1))[:-1])
    g = g[valid[1:, 1:] & valid[:-1, :-1]]
    clean = np.exp(1j * phase)
    floor = {f"noise_free_boxcar{w}_rmse": round(phase_rmse(np.angle(boxcar(clean, w)[0]), phase, mask), 3)
             for w in (3, 11)}
    return {"gradient_p50": round(float(np.percentile(g, 50)), 3), "gradient_p99": round(float(np.percentile(g, 99)), 3),
            "aliased_fraction": round(float(np.mean(g > np.pi)), 5), **floor}


# ---------------------------------------------------------------- scoring

SENSOR_NOISE = "sensor-spectrum noise"  # tag of the configurations whose decorrelation noise is not white


def configurations() -> list[tuple[str, int, float | str, tuple[int, int], bool]]:
    """(name, fringe scale, γ, looks, decorrelation noise with the SLC's spectrum)."""
    out = []
    for looks in ((1, 1), LOOKS):
        look_name = "1 look" if looks == (1, 1) else f"{looks[0]}×{looks[1]} looks"
        for scale in SCALES:
            for gamma in (*GAMMAS, "map"):
                out.append((f"{scale}× γ={gamma} {look_name}", scale, gamma, looks, False))
    for scale in SCALES:
        for gamma in GAMMAS:
            out.append((f"{scale}× γ={gamma} 1 look, {SENSOR_NOISE}", scale, gamma, (1, 1), True))
    return out


def score_mask(valid: np.ndarray) -> np.ndarray:
    """Valid pixels at least BORDER px from the edge."""
    interior = np.zeros(valid.shape, bool)
    interior[BORDER:-BORDER, BORDER:-BORDER] = True
    return interior & valid


def score_scene(signal: dict, slc: np.ndarray, gamma_map: np.ndarray, nets: dict, scene_index: int,
                calibration: dict, estimators: dict) -> dict:
    mask = score_mask(signal["valid"])
    results = {}
    for index, (name, scale, gamma, looks, sensor_spectrum) in enumerate(configurations()):
        rng = np.random.default_rng([SEED, scene_index, index])
        sim = simulate(scale * signal["phase"], gamma_map if gamma == "map" else gamma, slc, looks, rng,
                       sensor_spectrum)
        scores = {}
        methods = run_methods(sim["interferogram"], sim["p1"], sim["p2"], nets, looks=float(looks[0] * looks[1]),
                              looks_estimators=estimators)
        for method, (phase, coherence) in methods.items():
            s = {"phase_rmse": phase_rmse(phase, sim["clean"], mask)}
            z = np.exp(1j * phase) if coherence is None else coherence * np.exp(1j * phase)
            s["artifact_ratio"] = periodic_artifact_ratio(z[BORDER:-BORDER, BORDER:-BORDER], PERIOD)
            if coherence is not None:
                s["coherence_rmse"] = coherence_rmse(coherence, sim["gamma"], mask)
                s["mean_coherence"] = float(coherence[mask].mean())
                if gamma == "map" and method in calibration["methods"]:
                    calibration["bins"].setdefault((looks, method), Calibration(CALIBRATION_EDGES)).add(
                        coherence, sim["gamma"], mask)
            scores[method] = s
        results[name] = scores
        print(f"  {name}: " + ", ".join(f"{m} {s['phase_rmse']:.3f}" for m, s in scores.items()), flush=True)
    return results


def compare(results: dict, models: list[str]) -> dict:
    """Per model: phase vs the best classical and coherence vs the best Boxcar, on a set of configurations."""
    return {model: {"phase": oracle_comparison(results, model, "phase_rmse", lambda s: CLASSICAL),
                    "coherence": oracle_comparison(results, model, "coherence_rmse", lambda s: BOXCARS)}
            for model in models}


def metric_table(results: dict, metric: str, methods: list[str], models: list[str], candidates: list[str]) -> str:
    comparisons = {m: oracle_comparison(results, m, metric, lambda s: candidates) for m in models}
    rows = []
    for config, scores in results.items():
        first = comparisons[models[0]]["per_configuration"][config]
        rows.append([config, *(scores[m][metric] for m in methods),
                     f"{first['best_value']:.4f} ({first['best']})",
                     *(f"{comparisons[m]['per_configuration'][config]['ratio']:.3f}" for m in models)])
    return markdown_table(["configuration", *methods, "best classical", *(f"{m} / best" for m in models)], rows)


# ---------------------------------------------------------------- report

def report(setup: dict, results: dict, models: list[str], heads: list[str], calibration: dict,
           summaries: dict) -> str:
    methods = [*CLASSICAL, *models]
    coh_methods = [*BOXCARS, *models, *heads]
    text = ["## Real signals with real speckle: DeepInSAR against the best classical filter", "",
            f"Signals: LiCSAR coseismic `.unw` of {', '.join(SCENES)}, {SIZE}×{SIZE} crops around the deformation "
            f"peak, at {' and '.join(f'{s}×' for s in SCALES)} their fringe rate. Speckle: Envisat SLC (isce3 test "
            f"data, 480×480 interior) as the reference; secondary by `speckle.correlated_secondary` with γ = "
            f"{', '.join(map(str, GAMMAS))} and a varying γ map ({setup['gamma_map']['source']}, 5/50/95 % = "
            f"{setup['gamma_map']['percentiles_5_50_95']}). Multilooked: {LOOKS[0]}×{LOOKS[1]} looks (rows × columns) "
            f"of the full-resolution interferogram and powers, signal resampled {LOOKS[0]}× along rows first, so the "
            f"fringe rate per output pixel equals the single-look one. Scores on valid pixels ≥ {BORDER} px from the "
            f"border; seeds ({SEED}, scene, configuration). Best classical = oracle per configuration among "
            f"identity, Boxcar 3–11 and Goldstein (coherence: among the Boxcar windows).", "",
            "### Phase scale of the `.unw` (metres → radians)", "",
            markdown_table(["scene", "fitted k [rad/m]", "agreement at k", "offset c [rad]", "agreement at −4π/λ",
                            "agreement at +4π/λ", "k / (4π/λ)"],
                           [[s, v["fitted_rad_per_m"], v["fitted_agreement"], v["fitted_offset_rad"],
                             v["minus_4pi_over_lambda_agreement"], v["plus_4pi_over_lambda_agreement"],
                             v["fitted_over_4pi_over_lambda"]] for s, v in setup["phase_scale"].items()]), "",
            "Agreement = |mean exp(i(diff − k·unw))| over the valid pixels of the product (1 = the rewrapped "
            "`.unw` is the `.diff` up to a constant). The signal uses the fitted k (1× = the product's own fringes).", "",
            "### Fringe rates of the signals (max of |∂φ/∂row|, |∂φ/∂col| per pixel, rad/px)", "",
            markdown_table(["scene", "scale", "median", "99th percentile", "pixels above π (aliased)",
                            "noise-free Boxcar 3 RMSE", "noise-free Boxcar 11 RMSE"],
                           [[s, f"{k}×", *v[f"{k}x"].values()] for s, v in setup["fringe_rates"].items() for k in SCALES]),
            "",
            "The noise-free columns are the phase RMSE Boxcar leaves on the clean signal alone: the real "
            "signals have near-field gradients (and the residual noise of a real unwrapped product) that any "
            "smoothing blurs, a floor that the simulator's bubbles do not have.", ""]
    for scene, scene_results in results.items():
        text += [f"### {scene}: phase RMSE [rad]", "",
                 metric_table(scene_results, "phase_rmse", methods, models, CLASSICAL), "",
                 f"### {scene}: coherence RMSE", "",
                 metric_table(scene_results, "coherence_rmse", coh_methods, models, BOXCARS), ""]
    text += ["### Summary", ""]
    for model in models:
        for label, summary in summaries.items():
            text.append(f"- {label}: " + win_line(model, summary[model]["phase"], summary[model]["coherence"]))
    text += ["", "### Coherence calibration: mean predicted γ against the true γ", "",
             "Constant γ (pooled over both scenes and both fringe scales):", ""]
    rows = []
    for looks_name in ("1 look", f"{LOOKS[0]}×{LOOKS[1]} looks"):
        for gamma in GAMMAS:
            configs = [(s, c) for s in results for c in results[s] if c.endswith(looks_name) and f"γ={gamma} " in c]
            rows.append([looks_name, gamma, *(float(np.mean([results[s][c][m]["mean_coherence"] for s, c in configs]))
                                            for m in calibration["methods"])])
    text.append(markdown_table(["looks", "true γ", *calibration["methods"]], rows))
    text += ["", "Varying γ map (true-γ bins, pooled over scenes and scales):", ""]
    rows = []
    for looks in ((1, 1), LOOKS):
        tables = {m: calibration["bins"][(looks, m)].rows() for m in calibration["methods"]}
        for i, b in enumerate(tables[calibration["methods"][0]]):
            rows.append([f"{looks[0]}×{looks[1]}", f"[{b['low']:.1f}, {b['high']:.1f})", b["pixels"], b["mean_true"],
                         *(tables[m][i]["mean_predicted"] for m in calibration["methods"])])
    text.append(markdown_table(["looks", "true γ bin", "pixels", "mean true γ", *calibration["methods"]], rows))
    text += ["", f"### Periodic-artifact ratio at period {PERIOD} "
             "(`periodic_artifact_ratio(coherence·exp(iφ), 4)`; identity: `exp(iφ)`; ≈1 = no period-4 texture, hundreds = a visible grid)",
             "", markdown_table(["scene", "configuration", *methods],
                                [[s, c, *(f"{results[s][c][m]['artifact_ratio']:.1f}" for m in methods)]
                                 for s in results for c in results[s]])]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--models", type=Path, nargs="+", default=DEFAULT_MODELS,
                        help="DeepInSAR .safetensors files (default: the two shipped models)")
    parser.add_argument("--out-md", type=Path, default=REPO / "docs" / "real_signal.md")
    parser.add_argument("--out-json", type=Path, default=REPO / "docs" / "real_signal.json")
    parser.add_argument("--update-cards", action="store_true",
                        help="write each model's pooled wins and mean ratios into its model card")
    args = parser.parse_args()
    if not args.realdata.is_dir():
        sys.exit(f"No real data at {args.realdata}: pass --realdata (see ../shared/realdata/README.md).")
    start = time.perf_counter()
    torch.set_grad_enabled(False)
    nets, estimators = {}, {}
    for path in args.models:
        net, card = load_model(path)
        label = "DeepInSAR 4-ch" if net.config.in_channels == 4 else "DeepInSAR phase-only"
        label = label if label not in nets else f"{label} ({path.stem})"
        nets[label] = net.to(memory_format=torch.channels_last)
        estimator = LooksCoherence.from_card(card, path.name) if net.config.in_channels == 2 else None
        if estimator is not None:
            estimators[label] = estimator
    models = list(nets)
    heads = [f"{m}, head" for m in estimators]
    slc = load_slc(args.realdata)
    gamma_map, gamma_info = load_gamma_map(args.realdata)
    setup = {"size": SIZE, "border": BORDER, "looks": list(LOOKS), "scales": list(SCALES), "gammas": list(GAMMAS),
             "seed": SEED, "wavelength_m": WAVELENGTH, "slc": "isce3_testdata/warped_envisat.slc [10:490, 10:490]",
             "gamma_map": gamma_info, "models": {m: str(p) for m, p in zip(models, args.models)},
             "phase_scale": {}, "fringe_rates": {}, "crops": {}}
    calibration = {"methods": [*models, *heads, "boxcar 5", "boxcar 9"], "bins": {}}
    results = {}
    for scene_index, scene in enumerate(SCENES):
        print(f"{scene}:", flush=True)
        signal = load_signal(args.realdata, scene)
        setup["phase_scale"][scene] = signal["scale"]
        setup["crops"][scene] = signal["crop"]
        setup["fringe_rates"][scene] = {f"{k}x": fringe_rates(k * signal["phase"], signal["valid"], score_mask(signal["valid"]))
                                         for k in SCALES}
        results[scene] = score_scene(signal, slc, gamma_map, nets, scene_index, calibration, estimators)
    def pooled(keep) -> dict:
        return {f"{s}/{c}": v for s in results for c, v in results[s].items() if keep(c)}

    def white(c: str) -> bool:
        return SENSOR_NOISE not in c

    summaries = {f"{s} (12 constant-γ configurations)": compare(
        {c: v for c, v in results[s].items() if white(c) and "γ=map" not in c}, models) for s in results}
    summaries["pooled (24 constant-γ configurations)"] = compare(pooled(lambda c: white(c) and "γ=map" not in c),
                                                                models)
    summaries["pooled with varying γ (32 configurations)"] = compare(pooled(white), models)
    summaries[f"pooled, single-look with {SENSOR_NOISE} (12 configurations)"] = compare(
        pooled(lambda c: not white(c)), models)
    text = report(setup, results, models, heads, calibration, summaries)
    runtime = time.perf_counter() - start
    text += f"\n\nRuntime: {runtime:.0f} s on {torch.get_num_threads()} CPU threads.\n"
    print(text)
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text(text)
    bins = {f"{looks[0]}x{looks[1]} {m}": c.rows() for (looks, m), c in calibration["bins"].items()}
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps({"setup": setup, "results": results, "summaries": summaries,
                                         "calibration_varying_gamma": bins, "runtime_s": round(runtime, 1)}, indent=1))
    if args.update_cards:
        update_cards(summaries["pooled (24 constant-γ configurations)"],
                     summaries[f"pooled, single-look with {SENSOR_NOISE} (12 configurations)"],
                     dict(zip(models, args.models)))


def update_cards(pooled: dict, sensor_noise: dict, paths: dict[str, Path]) -> None:
    """The pooled constant-γ results of each model, beside the paper-simulator metrics in its card."""
    for model, path in paths.items():
        card_file = path.with_suffix(".json")
        card = json.loads(card_file.read_text())
        card["metrics_real_signal"] = {
            "benchmark": "benchmarks/real_signal.py: real LiCSAR signals (Greece, Afghanistan) at 1x and 3x, real "
                         "Envisat speckle, gamma 0.35/0.6/0.85, single-look and 4x1 looks (24 configurations)",
            **{f"{kind}_{key}": pooled[model][kind][key] for kind in ("phase", "coherence")
               for key in ("wins", "count", "mean_ratio")},
            "sensor_spectrum_noise": {f"{kind}_{key}": sensor_noise[model][kind][key] for kind in ("phase", "coherence")
                                      for key in ("wins", "count", "mean_ratio")}}
        card_file.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
