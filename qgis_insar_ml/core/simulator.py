"""Synthetic SLC pairs with known clean phase and coherence (DeepInSAR simulator, §4.1).

Real interferograms have no ground truth, so training and evaluation use simulated
pairs. Lengths are pixels of the paper's 1000x1000 scenes; a smaller output is a crop
of such a scene, so fringe density per pixel is the paper's whatever the output size.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy.ndimage import uniform_filter

from .errors import InsarMlError

NOISE_SIGMA = {"S1": 0.1, "S2": 0.2, "S3": 0.3}  # per real/imag component
FRINGE_AMPLITUDE = {"F1": 4.0, "F2": 20.0, "F3": 40.0}  # rad, bubble amplitude bound
CONFIGURATIONS: list[tuple[str, str, bool]] = [
    (noise, fringe, strips)
    for noise, fringe, strips in product(NOISE_SIGMA, FRINGE_AMPLITUDE, (True, False))
]

MAX_SIZE = 8192
_SCENE = 1000  # the paper's scene side, px
_BUBBLES_PER_MPX = 150
_BUBBLE_SIGMA = (10.0, 150.0)
_BUBBLE_TRUNCATION = 4.0  # sigmas
_STRIPE_MODES = 64
_STRIPE_CORRELATION = 60.0  # px
_STRIPE_THRESHOLD = 0.2533  # P(|N(0,1)| < t) = 0.2: 20% of the scene is stripe
_STRIPE_AMPLITUDE = 0.1
_AMPLITUDE_RANGE = (0.1, 1.1)


@dataclass(frozen=True)
class SimulatedPair:
    reference: np.ndarray  # complex64 (H, W) noisy reference SLC
    secondary: np.ndarray  # complex64 (H, W) noisy secondary SLC
    interferogram: np.ndarray  # complex64 (H, W) = reference * conj(secondary)
    clean_phase: np.ndarray  # float32 (H, W) in [-pi, pi): angle of clean_ref * conj(clean_sec)
    coherence: np.ndarray  # float32 (H, W) true coherence A^2/(A^2+2 sigma^2)
    amplitude: np.ndarray  # float32 (H, W) clean amplitude A shared by both SLCs


def simulate_pair(
    height: int,
    width: int,
    noise_level: str = "S2",
    fringe_level: str = "F2",
    strips: bool = True,
    seed: int = 0,
) -> SimulatedPair:
    """One noisy SLC pair plus its ground truth, a pure function of the arguments.

    The motion, amplitude and noise streams do not depend on ``strips``, so the S and
    NS variants of a seed are the same scene with and without low-amplitude bands.
    """
    _check_size("height", height)
    _check_size("width", width)
    noise_idx = _level_index("noise_level", noise_level, NOISE_SIGMA)
    fringe_idx = _level_index("fringe_level", fringe_level, FRINGE_AMPLITUDE)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InsarMlError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
    motion_ss, stripes_ss, amplitude_ss, noise_ss = np.random.SeedSequence(
        [int(seed), noise_idx, fringe_idx]
    ).spawn(4)

    psi, (row0, col0) = _motion(
        np.random.default_rng(motion_ss), height, width, FRINGE_AMPLITUDE[fringe_level]
    )
    amplitude = _amplitude_ramp(np.random.default_rng(amplitude_ss), height, width)
    if strips:
        stripe = _stripe_mask(np.random.default_rng(stripes_ss), height, width, row0, col0)
        amplitude[stripe] = _STRIPE_AMPLITUDE

    sigma = NOISE_SIGMA[noise_level]
    noise = np.random.default_rng(noise_ss).standard_normal((4, height, width), dtype=np.float32)
    noise *= np.float32(sigma)
    reference = (amplitude + noise[0] + 1j * noise[1]).astype(np.complex64)
    secondary = (amplitude * np.exp(-1j * psi) + (noise[2] + 1j * noise[3])).astype(np.complex64)

    a2 = amplitude.astype(np.float64) ** 2
    return SimulatedPair(
        reference=reference,
        secondary=secondary,
        interferogram=reference * np.conj(secondary),
        clean_phase=_wrap(psi),
        coherence=(a2 / (a2 + 2.0 * sigma**2)).astype(np.float32),
        amplitude=amplitude,
    )


def sample_coherence(reference: np.ndarray, secondary: np.ndarray, window: int) -> np.ndarray:
    """Maximum-likelihood coherence |<s1 s2*>| / sqrt(<|s1|^2><|s2|^2>) over a box window."""
    if reference.shape != secondary.shape:
        raise InsarMlError(
            f"reference {reference.shape} and secondary {secondary.shape} differ in shape; "
            "pass co-registered images of the same size."
        )
    if not 1 <= window:
        raise InsarMlError(f"window must be at least 1 pixel, got {window!r}.")

    def box(a: np.ndarray) -> np.ndarray:
        # mode="constant" pads with zeros; the window count cancels in the ratio.
        return uniform_filter(a.astype(np.float64), size=window, mode="constant")

    cross = reference * np.conj(secondary)
    numerator = np.hypot(box(cross.real), box(cross.imag))
    denominator = np.sqrt(box(np.abs(reference) ** 2) * box(np.abs(secondary) ** 2))
    out = np.zeros(reference.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out.astype(np.float32)


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_SIZE:
        raise InsarMlError(
            f"{name} must be an integer from 1 to {MAX_SIZE} pixels, got {value!r}; "
            "simulate larger areas as several tiles."
        )


def _level_index(name: str, value: str, table: dict[str, float]) -> int:
    if value not in table:
        allowed = ", ".join(repr(k) for k in table)
        raise InsarMlError(f"{name} must be one of {allowed}, got {value!r}.")
    return list(table).index(value)


def _motion(
    rng: np.random.Generator, height: int, width: int, amplitude_bound: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """Sum of rotated Gaussian bubbles on the crop, and the crop's top-left scene corner.

    Bubbles are drawn for the whole virtual scene (at least the paper's 1000x1000) so
    that density per pixel matches the paper; each is evaluated only inside its
    4-sigma box intersected with the crop, which keeps small crops cheap.
    """
    scene_h, scene_w = max(_SCENE, height), max(_SCENE, width)
    n = round(_BUBBLES_PER_MPX * scene_h * scene_w / 1e6)
    cy = rng.uniform(0.0, scene_h, n)
    cx = rng.uniform(0.0, scene_w, n)
    s1 = rng.uniform(*_BUBBLE_SIGMA, n)
    s2 = rng.uniform(*_BUBBLE_SIGMA, n)
    theta = rng.uniform(0.0, np.pi, n)
    amp = rng.uniform(-amplitude_bound, amplitude_bound, n)
    row0 = int(rng.integers(0, scene_h - height + 1))
    col0 = int(rng.integers(0, scene_w - width + 1))

    c, s = np.cos(theta), np.sin(theta)
    # Quadratic form (u/s1)^2 + (v/s2)^2 of the rotated axes, in dx, dy.
    qxx = c**2 / s1**2 + s**2 / s2**2
    qyy = s**2 / s1**2 + c**2 / s2**2
    qxy = c * s * (1.0 / s1**2 - 1.0 / s2**2)
    half_w = _BUBBLE_TRUNCATION * np.sqrt((s1 * c) ** 2 + (s2 * s) ** 2)
    half_h = _BUBBLE_TRUNCATION * np.sqrt((s1 * s) ** 2 + (s2 * c) ** 2)
    r_lo = np.clip(np.ceil(cy - half_h).astype(int) - row0, 0, height)
    r_hi = np.clip(np.floor(cy + half_h).astype(int) + 1 - row0, 0, height)
    c_lo = np.clip(np.ceil(cx - half_w).astype(int) - col0, 0, width)
    c_hi = np.clip(np.floor(cx + half_w).astype(int) + 1 - col0, 0, width)

    psi = np.zeros((height, width), dtype=np.float32)
    for i in np.flatnonzero((r_hi > r_lo) & (c_hi > c_lo)):
        dy = (np.arange(r_lo[i], r_hi[i]) + row0 - cy[i]).astype(np.float32)
        dx = (np.arange(c_lo[i], c_hi[i]) + col0 - cx[i]).astype(np.float32)
        e = np.multiply.outer(dy * np.float32(-qxy[i]), dx)
        e += (np.float32(-0.5 * qyy[i]) * dy**2)[:, None]
        e += (np.float32(-0.5 * qxx[i]) * dx**2)[None, :]
        np.exp(e, out=e)
        e *= np.float32(amp[i])
        psi[r_lo[i] : r_hi[i], c_lo[i] : c_hi[i]] += e
    return psi, (row0, col0)


def _amplitude_ramp(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Sorted Rayleigh rows mapped to [0.1, 1.1]: amplitude, hence coherence, grows rightwards."""
    lo, hi = _AMPLITUDE_RANGE
    if width == 1:
        return np.full((height, 1), 0.5 * (lo + hi), dtype=np.float32)
    rows = np.sort(rng.rayleigh(1.0, (height, width)), axis=1)
    rmin, rmax = rows[:, :1], rows[:, -1:]
    return (lo + (hi - lo) * (rows - rmin) / (rmax - rmin)).astype(np.float32)


def _stripe_mask(
    rng: np.random.Generator, height: int, width: int, row0: int, col0: int
) -> np.ndarray:
    """Winding bands (~20% of the scene) near the zero contours of a smooth random field.

    The field is a sum of random Fourier modes with Gaussian wavevectors, i.e. a
    Gaussian-correlated field of length ~60 px; it is evaluated at absolute scene
    coordinates so any crop agrees with the full scene. cos(a + b) is split into
    row and column factors so the field costs one small matrix product.
    """
    k = rng.normal(0.0, 1.0 / _STRIPE_CORRELATION, (2, _STRIPE_MODES))
    phase = rng.uniform(0.0, 2.0 * np.pi, _STRIPE_MODES)
    y = np.arange(row0, row0 + height, dtype=np.float64)[:, None] * k[0]
    x = np.arange(col0, col0 + width, dtype=np.float64)[:, None] * k[1] + phase
    field = np.cos(y) @ np.cos(x).T - np.sin(y) @ np.sin(x).T
    field /= np.sqrt(_STRIPE_MODES / 2.0)
    return np.abs(field) < _STRIPE_THRESHOLD


def _wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap to [-pi, pi) in float32 (values that round up to float32(pi) go to -pi)."""
    wrapped = (np.mod(phase.astype(np.float64) + np.pi, 2.0 * np.pi) - np.pi).astype(np.float32)
    wrapped[wrapped >= np.pi] = np.float32(-np.pi)
    return wrapped
