"""Scoring shared by the DeepInSAR benchmarks (deepinsar_tables.py, real_signal.py).

No I/O: the methods run on one in-memory scene, the per-configuration oracle
("best classical"), the wins / mean-ratio summary of a model against it, coherence
calibration bins, and a markdown table helper.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from qgis_insar_ml.core.deepinsar.inference import filter_arrays
from qgis_insar_ml.core.deepinsar.looks_coherence import LooksCoherence
from qgis_insar_ml.core.filters import boxcar, goldstein
from qgis_insar_ml.core.inputs import InterferogramBlock

WINDOWS = (3, 5, 7, 9, 11)
GOLDSTEIN_ALPHA, GOLDSTEIN_PATCH = 0.5, 32


def run_methods(ifg: np.ndarray, power_reference: np.ndarray, power_secondary: np.ndarray, nets: Mapping,
                valid: np.ndarray | None = None, looks: float | None = None,
                looks_estimators: Mapping[str, LooksCoherence] | None = None
                ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """(phase, coherence or None) of every method on one interferogram with its SLC powers:
    identity, Boxcar 3–11 (ML coherence from the powers), Goldstein (α 0.5, patch 32,
    Boxcar-5 coherence) and each network (4-channel ones get both powers, phase-only ones
    the unit phasor alone). A phase-only network with a looks-aware estimator in
    ``looks_estimators`` gets its coherence from the ``looks`` (as with LOOKS in QGIS), and
    its head's coherence is kept as method ``"<name>, head"``."""
    out = {"identity": (np.angle(ifg), None)}
    for w in WINDOWS:
        filtered, coherence = boxcar(ifg, w, power_reference, power_secondary)
        out[f"boxcar {w}"] = (np.angle(filtered), coherence)
    out["goldstein"] = (np.angle(goldstein(ifg, GOLDSTEIN_ALPHA, GOLDSTEIN_PATCH)), out["boxcar 5"][1])
    valid = np.ones(ifg.shape, bool) if valid is None else valid
    for name, net in nets.items():
        if net.config.in_channels == 4:
            block = InterferogramBlock(ifg, power_reference.astype(np.float32), power_secondary.astype(np.float32),
                                       valid)
        else:
            block = InterferogramBlock(np.exp(1j * np.angle(ifg)).astype(np.complex64), None, None, valid)
        phase, coherence = filter_arrays(net, block)
        estimator = (looks_estimators or {}).get(name)
        if estimator is not None and looks is not None:  # phase-only nets only have estimators
            out[f"{name}, head"] = (phase, coherence)
            coherence = estimator.estimate(block.interferogram, phase, coherence, valid, looks)
        out[name] = (phase, coherence)
    return out


def best_of(values: Mapping[str, float], candidates: Iterable[str], better: Callable = min) -> tuple[str, float]:
    """The oracle: the candidate with the best value (``better`` = min or max)."""
    names = [n for n in candidates if n in values and np.isfinite(values[n])]
    name = better(names, key=lambda n: values[n])
    return name, float(values[name])


def oracle_comparison(results: Mapping[str, Mapping[str, Mapping[str, float]]], method: str, metric: str,
                      candidates: Callable[[Mapping[str, Mapping[str, float]]], list[str]],
                      better: Callable = min) -> dict:
    """``method`` against the per-configuration best of ``candidates(scores)`` on ``metric``.

    ``results[config][method][metric]``. Returns per configuration the best candidate, its
    value, the method's value and ratio method/best, and over all configurations the wins
    (ratio < 1 for ``min`` metrics, > 1 for ``max`` ones), the count and the mean ratio.
    """
    rows = {}
    for config, scores in results.items():
        values = {n: s[metric] for n, s in scores.items() if metric in s}
        best_name, best = best_of(values, candidates(scores), better)
        value = values.get(method, float("nan"))
        rows[config] = {"best": best_name, "best_value": best, "value": value, "ratio": value / best}
    ratios = [r["ratio"] for r in rows.values()]
    wins = sum(int(r < 1 if better is min else r > 1) for r in ratios)
    return {"per_configuration": rows, "wins": wins, "count": len(rows),
            "mean_ratio": float(np.mean(ratios)) if ratios else float("nan")}


def win_line(name: str, phase: dict, coherence: dict) -> str:
    """One sentence: phase wins and mean ratio vs the best classical, coherence vs the best Boxcar."""
    return (f"{name}: phase RMSE below the best classical filter in {phase['wins']}/{phase['count']} "
            f"configurations, mean ratio {phase['mean_ratio']:.3f}; coherence RMSE below the best Boxcar in "
            f"{coherence['wins']}/{coherence['count']}, mean ratio {coherence['mean_ratio']:.3f}.")


class Calibration:
    """Mean predicted coherence against the true coherence, accumulated in bins of the truth."""

    def __init__(self, edges: Iterable[float]):
        self.edges = np.asarray(list(edges), dtype=np.float64)
        bins = len(self.edges) - 1
        self.count = np.zeros(bins, np.int64)
        self.sum_true = np.zeros(bins)
        self.sum_predicted = np.zeros(bins)

    def add(self, predicted: np.ndarray, truth: np.ndarray | float, mask: np.ndarray | None = None) -> None:
        predicted = np.asarray(predicted, np.float64)
        truth = np.broadcast_to(np.asarray(truth, np.float64), predicted.shape)
        keep = np.isfinite(predicted) & np.isfinite(truth)
        if mask is not None:
            keep &= mask
        index = np.digitize(truth[keep], self.edges[1:-1])
        self.count += np.bincount(index, minlength=len(self.count))
        self.sum_true += np.bincount(index, truth[keep], minlength=len(self.count))
        self.sum_predicted += np.bincount(index, predicted[keep], minlength=len(self.count))

    def rows(self) -> list[dict]:
        """One dict per non-empty bin: its edges, pixel count, mean true and mean predicted γ."""
        return [{"low": float(self.edges[i]), "high": float(self.edges[i + 1]), "pixels": int(n),
                 "mean_true": float(self.sum_true[i] / n), "mean_predicted": float(self.sum_predicted[i] / n)}
                for i, n in enumerate(self.count) if n]


def markdown_table(header: list[str], rows: Iterable[Iterable]) -> str:
    """A markdown table; floats are written with 4 decimals."""
    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, (float, np.floating)) else str(value)
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
