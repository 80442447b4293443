"""Coherence of phase-only interferograms when the number of looks is known.

The phase alone cannot tell a coherent single-look phase from a less coherent multilooked
one: both scatter alike. The phase-only network's coherence head, which never learns the
looks, reads 0.57 at γ = 0.85 single look and 0.48 at γ = 0.35 with 4×1 looks (real-signal
benchmark). Users know their product's looks (LiCSAR 20×4, HyP3 10×2 or 20×4), as SNAPHU asks
for them. Given L, a small per-pixel network maps

- the head's logit,
- the resultant length of the unit phasors after removing the restored phase, over
  :data:`COMPENSATED_WINDOWS` (how far the phase strays from the restored one),
- the plain resultant length over :data:`RAW_WINDOWS` (the same without the network),
- log L,

to γ. It is fitted on realistic simulator scenes (:func:`fit_looks_coherence`, ``python -m
qgis_insar_ml fit-looks-coherence``) and kept in the model card as numbers: data, not code.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InsarMlError
from ..filters import compensated_phasor, window_mean
from ..realistic_simulator import parse_looks
from ..strips import by_row_strips

COMPENSATED_WINDOWS = (5, 11, 21, 31)
RAW_WINDOWS = (3, 7)
HALO = max(COMPENSATED_WINDOWS) // 2 + 2   # px of context the features read beyond a pixel
MAX_LOOKS = 160                  # the fit's scenes reach 32×5 looks
LOG_LOOKS_SCALE = math.log(100.0)
CHUNK_PIXELS = 1 << 16           # pixels per matrix product: hidden layers stay a few MB
CARD_KEY = "looks_coherence"
_LOGIT_CLIP = 1e-4


def parse_look_count(text: str | float | None) -> float | None:
    """Looks L from what a user writes: ``"20x4"`` (rows × columns), a number (``"80"``,
    or an equivalent number of looks such as ``"3.5"``), or empty for unknown (None)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str) and re.search(r"[xX×*]", text):
        rows, cols = parse_looks(text)
        value = float(rows * cols)
    else:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise InsarMlError(f"LOOKS must be rows x columns (e.g. 20x4), a number of looks (e.g. 80) or empty, "
                               f"got {text!r}.") from None
    if not (math.isfinite(value) and 1.0 <= value <= MAX_LOOKS):
        raise InsarMlError(f"LOOKS must lie between 1 and {MAX_LOOKS} looks (the range the phase-only coherence "
                           f"was fitted on), got {text!r}.")
    return value


def looks_features(unit: np.ndarray, phase: np.ndarray, head: np.ndarray, valid: np.ndarray,
                   looks: float) -> np.ndarray:
    """Per-pixel inputs of the estimator, float32 (F, H, W); ``unit`` is the unit phasor (0 where invalid).

    The resultant lengths are :func:`~..filters.compensated_coherence` of the unit phasors with
    the valid mask as both powers, computed here with the compensation shared by every window
    (0.20 s per Mpx for all six windows, against 0.32 s through six separate calls)."""
    weight = valid.astype(np.float32)
    clipped = np.clip(head, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    columns = [np.log(clipped / (1.0 - clipped))]
    real, imag = np.asarray(unit.real, np.float32), np.asarray(unit.imag, np.float32)
    compensated = compensated_phasor(unit, phase)
    columns += [_resultant_length(*compensated, weight, w) for w in COMPENSATED_WINDOWS]
    columns += [_resultant_length(real, imag, weight, w) for w in RAW_WINDOWS]
    columns.append(np.full(phase.shape, math.log(looks) / LOG_LOOKS_SCALE, np.float32))
    return np.stack(columns).astype(np.float32, copy=False)


def _resultant_length(real: np.ndarray, imag: np.ndarray, weight: np.ndarray, window: int) -> np.ndarray:
    """|box mean of a phasor| / box mean of the weights, in [0, 1]; 0 without a valid pixel."""
    length = np.hypot(window_mean(real, window), window_mean(imag, window))
    count = window_mean(weight, window)
    out = np.divide(length, count, out=np.zeros_like(length), where=count > 0.5 / window**2)
    return np.clip(out, 0.0, 1.0, out=out)


FEATURE_COUNT = 1 + len(COMPENSATED_WINDOWS) + len(RAW_WINDOWS) + 1


@dataclass(frozen=True)
class LooksCoherence:
    """The fitted estimator: dense layers with SiLU between them and a sigmoid at the end."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]   # (weight (in, out), bias (out,)) per layer

    @classmethod
    def from_card(cls, card: dict, name: str) -> LooksCoherence | None:
        """The estimator a model card holds, None when it holds none."""
        entry = card.get(CARD_KEY)
        if entry is None:
            return None
        try:
            layers = tuple((np.asarray(layer["weight"], np.float32), np.asarray(layer["bias"], np.float32))
                           for layer in entry["layers"])
            widths = [FEATURE_COUNT] + [w.shape[1] for w, _ in layers]
            if (entry["compensated_windows"] != list(COMPENSATED_WINDOWS) or entry["raw_windows"] != list(RAW_WINDOWS)
                    or any(w.shape != (i, o) or b.shape != (o,) for (w, b), i, o in zip(layers, widths, widths[1:]))
                    or widths[-1] != 1):
                raise ValueError("layer shapes or windows do not match this plugin")
        except (KeyError, TypeError, ValueError) as exc:
            raise InsarMlError(f"The model card of {name} has an invalid '{CARD_KEY}' entry ({exc}). "
                               "Refit it with: python -m qgis_insar_ml fit-looks-coherence MODEL") from None
        return cls(layers)

    def to_card(self, training: dict) -> dict:
        return {"compensated_windows": list(COMPENSATED_WINDOWS), "raw_windows": list(RAW_WINDOWS),
                "activation": "silu, sigmoid output", "training": training,
                "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers]}

    def predict(self, features: np.ndarray) -> np.ndarray:
        """γ per pixel of ``features`` (F, H, W), in chunks of CHUNK_PIXELS."""
        flat = features.reshape(features.shape[0], -1)
        out = np.empty(flat.shape[1], np.float32)
        for start in range(0, flat.shape[1], CHUNK_PIXELS):
            x = np.ascontiguousarray(flat[:, start:start + CHUNK_PIXELS].T)
            for i, (weight, bias) in enumerate(self.layers):
                x = x @ weight
                x += bias
                if i < len(self.layers) - 1:
                    x *= _sigmoid(x)  # SiLU
            out[start:start + CHUNK_PIXELS] = _sigmoid(x[:, 0])
        return out.reshape(features.shape[1:])

    def estimate(self, interferogram: np.ndarray, phase: np.ndarray, head: np.ndarray, valid: np.ndarray,
                 looks: float) -> np.ndarray:
        """γ (float32, 0 where invalid) of one phase-only tile with ``looks`` looks, in row strips in threads."""
        unit, keep = unit_phasor(interferogram, valid)
        gamma = by_row_strips(lambda *strip: self.predict(looks_features(*strip, looks)),
                              (unit, np.asarray(phase, np.float32), np.asarray(head, np.float32), keep), HALO)
        gamma[~keep] = 0.0
        return gamma


def unit_phasor(interferogram: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exp(iφ) complex64, 0 where not kept; kept = valid with a nonzero interferogram)."""
    magnitude = np.abs(interferogram)
    keep = valid & (magnitude > 0)
    unit = np.zeros(interferogram.shape, np.complex64)
    unit[keep] = interferogram[keep] / magnitude[keep]
    return unit, keep


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function through tanh: a quarter of the time of scipy's expit on float32."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


# ---------------------------------------------------------------- fitting (torch)

FIT_SIZE = 192                # px per scene
FIT_PIXELS_PER_SCENE = 3000
FIT_HIDDEN = 32
WIDE_LOOKS = ((10, 10), (25, 4), (20, 8), (32, 5))  # beyond the training scenes' 80 looks, every fifth scene


def fit_looks_coherence(model: str | os.PathLike, scenes: int = 400, steps: int = 4000, seed: int = 0,
                        log: Callable[[str], None] = print) -> Path:
    """Fit the estimator for a phase-only model on ``scenes`` simulated scenes and write it into
    the model's card (the weights file is untouched). Returns the card's path."""
    import torch

    from ..inputs import InterferogramBlock
    from ..model_files import card_path
    from ..realistic_simulator import random_training_scene, simulate_realistic_pair
    from .inference import filter_arrays
    from .modelfile import load_model, read_model

    weights, card, config = read_model(model)
    if config.in_channels != 2:
        raise InsarMlError(f"{weights.name} takes amplitudes; the looks-aware coherence is for phase-only models "
                           "(models with amplitudes estimate the coherence from them).")
    net, _ = load_model(weights)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    interior = np.zeros((FIT_SIZE, FIT_SIZE), bool)  # pixels whose feature windows lie inside the scene
    interior[HALO:-HALO, HALO:-HALO] = True
    with torch.no_grad():
        for k in range(scenes):
            scene_seed = int(rng.integers(2**31))
            if k % 5 == 4:
                scene = simulate_realistic_pair(
                    FIT_SIZE, FIT_SIZE, scene_seed, WIDE_LOOKS[rng.integers(len(WIDE_LOOKS))],
                    float(np.exp(rng.uniform(math.log(0.3), math.log(3.0)))),
                    coherence=str(rng.choice(["smooth", "patchy"])), coherence_range=tuple(np.sort(rng.uniform(0, 0.98, 2))))
            else:
                scene = random_training_scene(FIT_SIZE, scene_seed)
            looks = float(scene.looks[0] * scene.looks[1])
            unit, keep = unit_phasor(scene.interferogram, scene.valid)
            phase, head = filter_arrays(net, InterferogramBlock(unit, None, None, keep), coherence_window=0)
            features = looks_features(unit, phase, head, keep, looks)
            candidates = np.flatnonzero((keep & interior).ravel())
            if candidates.size == 0:
                continue
            chosen = rng.choice(candidates, min(FIT_PIXELS_PER_SCENE, candidates.size), replace=False)
            inputs.append(features.reshape(FEATURE_COUNT, -1)[:, chosen].T)
            targets.append(scene.coherence.ravel()[chosen])
    x = torch.from_numpy(np.concatenate(inputs))
    y = torch.from_numpy(np.concatenate(targets).astype(np.float32))
    log(f"Looks-aware coherence: {x.shape[0]} pixels from {scenes} scenes in {time.perf_counter() - started:.0f} s.")
    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(FEATURE_COUNT, FIT_HIDDEN), torch.nn.SiLU(),
                              torch.nn.Linear(FIT_HIDDEN, FIT_HIDDEN), torch.nn.SiLU(), torch.nn.Linear(FIT_HIDDEN, 1))
    optimiser = torch.optim.Adam(mlp.parameters(), 3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        pick = torch.randint(0, x.shape[0], (4096,), generator=generator)
        loss = ((torch.sigmoid(mlp(x[pick])[:, 0]) - y[pick]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        rmse = float(((torch.sigmoid(mlp(x)[:, 0]) - y) ** 2).mean().sqrt())
    linear = [m for m in mlp if isinstance(m, torch.nn.Linear)]
    estimator = LooksCoherence(tuple((m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                                     for m in linear))
    log(f"Fitted in {time.perf_counter() - started:.0f} s; RMSE on the fitting pixels {rmse:.4f}.")
    training = {"scenes": scenes, "scene_size": FIT_SIZE, "pixels": int(x.shape[0]), "steps": steps, "seed": seed,
                "rmse_on_fit": round(rmse, 4),
                "data": "random_training_scene (the models' training distribution) and, every fifth scene, "
                        f"realistic scenes with {', '.join(f'{r}x{c}' for r, c in WIDE_LOOKS)} looks",
                "command": f"python -m qgis_insar_ml fit-looks-coherence {weights.name} --scenes {scenes} "
                           f"--steps {steps} --seed {seed}"}
    card = {**card, CARD_KEY: estimator.to_card(training)}
    path = card_path(weights)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path
