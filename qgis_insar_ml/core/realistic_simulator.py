"""Simulated InSAR pairs with the statistics of real data, to train DeepInSAR and for users.

The paper's simulator (``simulator.py``) ties coherence to amplitude, so a network trained
on it learns "bright = coherent", which fails on real scenes. Here brightness and coherence
are independent fields, tied only where physics ties them (water: dark and incoherent;
layover: bright and incoherent), and the speckle, multilooking and phase signals follow
the standard models of distributed scatterers:

- **Reflectivity** σ² per pixel: smooth land-cover brightness × a gamma texture of shape ν
  (single-look intensity is then K-distributed) × sparse bright point targets.
- **Coherence** γ: a smooth field spanning a range, plus sharp patches of water (γ ≈ 0),
  vegetation (reduced γ) and layover (low γ) on steep slopes facing the radar.
- **The pair** is circular complex Gaussian with covariance
  ``[[σ², σ²γe^{iφ}], [σ²γe^{-iφ}, σ²]]``, so ``interferogram = reference · conj(secondary)``
  has expected phase φ, the clean phase.
- **Multilooking** over ``looks = (rows, columns)``: simulating ``height·rows × width·cols``
  pixels and block-averaging costs 72 ms for the speckle alone of a 128×128 output with
  20×4 looks on one core (5×5: 27 ms), over the training budget. So for L = rows·cols > 1
  the multilooked 2×2 sample covariance is drawn directly from its complex Wishart
  distribution (Bartlett decomposition): four random numbers per output pixel whatever L,
  exact when the covariance is constant over the window. Fringes inside the window, the
  variation that matters, enter through the window's mean covariance (so the draw's mean is
  exact, its spread that of a constant window), computed exactly for a phase linear over the
  window: the mean of ``exp(iφ)`` is the product of the Dirichlet kernels ``sin(n·g/2) / (n·sin(g/2))``
  (``g`` rad per full-resolution pixel, ``n`` looks along the axis), which multiplies γ;
  where it is negative (one to two fringes inside a window) the mean phase flips by π. At the
  output grid's Nyquist rate a window keeps about 2/π of γ. Texture and coherence are
  taken constant within a window, and rupture steps inside one do not decorrelate it.
- **Phase** φ: a random mix of the paper's Gaussian bubbles, Mogi/Okada deformation,
  turbulent and topography-correlated delay, orbital and flat-earth ramps, and surface
  ruptures (a phase step along a curve).
- **No-data holes**: ``valid`` is False there, and the interferogram, powers and coherence 0.

All lengths are pixels of the output (multilooked) grid.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.special import ndtr

from .datasets.synthetic import (
    DEM_RELIEF,
    RAMP_MAX,
    SOURCE_TYPES,
    STRATIFIED_GRADIENT,
    TURBULENCE_RMS,
    _source_phase,
    fractal_dem,
    orbital_ramp,
    power_law_field,
    stratified_delay,
    turbulent_atmosphere,
)
from .errors import InsarMlError
from .simulator import _motion, _wrap

SIGNALS = ("bubbles", "deformation", "turbulence", "topography", "ramp", "rupture")
COHERENCE_MAPS = ("smooth", "patchy")
MIN_SIZE, MAX_SIZE = 16, 4096  # the power-law fields need a few pixels; Okada's float64 temporaries cap the top
MAX_LOOKS = 100  # per axis
# Training looks when multilooked: isotropic and anisotropic windows of common products
# (Sentinel-1 4×1 and 5×1, LiCSAR 20×4) in both orientations, 2 to 49 looks.
TRAINING_LOOKS = ((2, 2), (3, 3), (4, 4), (5, 5), (7, 7), (4, 1), (1, 4), (5, 1), (1, 5), (8, 2), (2, 8),
                  (10, 2), (2, 10), (20, 4), (4, 20), (3, 1), (1, 3))
NYQUIST_MARGIN = 0.85  # the highest training fringe rate, as a fraction of π rad/px
# A share of training scenes has near-field fringe rates: 99th-percentile gradient from 1 rad/px
# to beyond Nyquist, where the densest percent aliases as in real coseismic products (LiCSAR
# Greece at 3×: 3.3 rad/px); networks trained without them smoothed such fringes away.
NEAR_FIELD_SHARE = 0.25
NEAR_FIELD_RATES = (1.0, 1.15 * np.pi)

_TAG = 0x5EA1  # keeps these random streams apart from the other simulators'
_TRAINING_TAG = 0x7EA1
_BUBBLE_AMPLITUDE = (2.0, 15.0)  # rad, bound of the paper's bubble amplitudes
_PIXEL_SPACING = 100.0  # m; the source models are scale-free, so only the ratio to the extent matters
_DEFORMATION_GRID = 512  # px a side, at most, where the source model is evaluated
_RUPTURE_STEP = (1.0, 8.0)  # rad
_WATER_FRACTION, _VEGETATION_FRACTION, _LAYOVER_FRACTION = 0.15, 0.3, 0.08  # upper bounds
_WATER_GAMMA = 0.05  # upper bound
_LAYOVER_GAMMA = (0.05, 0.3)
_VEGETATION_GAMMA_FACTOR = (0.2, 0.6)
_WATER_BRIGHTNESS = (0.005, 0.05)
_LAYOVER_BRIGHTNESS = (3.0, 10.0)
_BRIGHTNESS_SPREAD = (0.2, 0.7)  # std of the log brightness
_TARGET_DENSITY = (0.001, 0.01)  # point targets per pixel
_TARGET_GAIN = (10.0, 300.0)  # log-uniform


@dataclass(frozen=True)
class RealisticScene:
    interferogram: np.ndarray  # complex64 (H, W): multilooked <s1 s2*>, 0 in holes
    power_reference: np.ndarray  # float32 (H, W): multilooked <|s1|^2>, 0 in holes
    power_secondary: np.ndarray  # float32 (H, W): multilooked <|s2|^2>, 0 in holes
    clean_phase: np.ndarray  # float32 (H, W) in [-pi, pi): expected phase of the interferogram
    coherence: np.ndarray  # float32 (H, W): true γ of the (multilooked) pair in [0, 1], 0 in holes
    valid: np.ndarray  # bool (H, W): False in no-data holes
    looks: tuple[int, int]  # (rows, columns) averaged into each pixel
    reference: np.ndarray | None  # complex64 single-look SLCs, only when looks == (1, 1)
    secondary: np.ndarray | None
    reflectivity: np.ndarray  # float32 (H, W): σ², the expected power of either SLC per look


@dataclass(frozen=True)
class _Settings:
    fringe_scale: float
    fringe_rate: float | None  # rad/px: 99th percentile of the smooth phase gradient, replaces its natural size
    signals: tuple[str, ...]
    coherence: str | float
    coherence_range: tuple[float, float]
    texture_shape: float | None
    bright_targets: bool
    holes: bool
    bandwidth: tuple[float, float] = (1.0, 1.0)  # sensor bandwidth / sampling rate per axis (1: white speckle)
    weighting: float = 1.0                       # spectral weighting: 1 = none, 0.54 = full Hamming


def simulate_realistic_pair(height: int, width: int, seed: int, looks: tuple[int, int] = (1, 1),
                            fringe_scale: float = 1.0, *, signals: tuple[str, ...] | list[str] = SIGNALS,
                            coherence: str | float = "patchy", coherence_range: tuple[float, float] = (0.1, 0.95),
                            texture_shape: float | None = 4.0, bright_targets: bool = True,
                            holes: bool = True, bandwidth: tuple[float, float] = (1.0, 1.0),
                            weighting: float = 1.0) -> RealisticScene:
    """One pair on a ``height × width`` output grid of ``looks = (rows, columns)`` looks;
    a pure function of the arguments.

    ``fringe_scale`` multiplies every phase signal. ``signals`` picks among :data:`SIGNALS`.
    ``coherence`` is a map type (``"smooth"``: a smooth field spanning ``coherence_range``;
    ``"patchy"``: that plus water, vegetation and layover patches) or a constant γ.
    ``texture_shape`` is the shape ν of the gamma texture; None gives uniform reflectivity
    (pure speckle). ``bright_targets`` adds point scatterers; ``holes`` no-data areas.
    ``bandwidth`` (rows, columns) is the sensor's bandwidth over its sampling rate and
    ``weighting`` its spectral (Hamming-type) weighting: real SLCs are oversampled and weighted,
    so their speckle and decorrelation noise are correlated between neighbouring pixels
    (0.1–0.5 in the Envisat, Sentinel-1 and despeckCL data); (1, 1) and 1 give white speckle.
    They shape single-look scenes only: look averaging leaves little of that correlation.
    """
    for name, value in (("height", height), ("width", width)):
        if not _is_int(value) or not MIN_SIZE <= value <= MAX_SIZE:
            raise InsarMlError(f"{name} must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {value!r}; "
                               "simulate larger areas as several scenes.")
    if not _is_int(seed) or seed < 0:
        raise InsarMlError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
    if (not isinstance(looks, (tuple, list)) or len(looks) != 2
            or not all(_is_int(v) and 1 <= v <= MAX_LOOKS for v in looks)):
        raise InsarMlError(f"looks must be (rows, columns), two integers from 1 to {MAX_LOOKS}, got {looks!r}; "
                           "e.g. (1, 1) for single-look or (4, 20).")
    if not _is_number(fringe_scale) or fringe_scale < 0:
        raise InsarMlError(f"fringe_scale must be a finite number ≥ 0, got {fringe_scale!r}; 1 is the natural size.")
    unknown = [s for s in signals if s not in SIGNALS]
    if isinstance(signals, str) or unknown:
        raise InsarMlError(f"signals must be a list of names among {', '.join(SIGNALS)}; got {signals!r}.")
    if isinstance(coherence, str):
        if coherence not in COHERENCE_MAPS:
            raise InsarMlError(f"coherence must be one of {', '.join(COHERENCE_MAPS)} or a number in [0, 1], "
                               f"got {coherence!r}.")
    elif not _is_number(coherence) or not 0.0 <= coherence <= 1.0:
        raise InsarMlError(f"A constant coherence must lie in [0, 1], got {coherence!r}.")
    if (not isinstance(coherence_range, (tuple, list)) or len(coherence_range) != 2
            or not all(_is_number(v) for v in coherence_range)
            or not 0.0 <= coherence_range[0] <= coherence_range[1] <= 1.0):
        raise InsarMlError(f"coherence_range must be (low, high) with 0 ≤ low ≤ high ≤ 1, "
                           f"got {coherence_range!r}.")
    lo, hi = coherence_range
    if (not isinstance(bandwidth, (tuple, list)) or len(bandwidth) != 2
            or not all(_is_number(b) and 0.2 <= b <= 1.0 for b in bandwidth)):
        raise InsarMlError(f"bandwidth must be (rows, columns) with each between 0.2 and 1, got {bandwidth!r}; "
                           "(1, 1) is white speckle.")
    if not _is_number(weighting) or not 0.5 <= weighting <= 1.0:
        raise InsarMlError(f"weighting must lie in [0.5, 1] (1 = none, 0.54 = Hamming), got {weighting!r}.")
    if texture_shape is not None and not (_is_number(texture_shape) and texture_shape > 0):
        raise InsarMlError(f"texture_shape must be a positive number or None, got {texture_shape!r}.")
    settings = _Settings(float(fringe_scale), None, tuple(signals), coherence if isinstance(coherence, str)
                         else float(coherence), (float(lo), float(hi)), texture_shape, bool(bright_targets),
                         bool(holes), (float(bandwidth[0]), float(bandwidth[1])), float(weighting))
    return _simulate(int(height), int(width), int(seed), (int(looks[0]), int(looks[1])), settings)


def random_training_scene(size: int, seed: int) -> RealisticScene:
    """A ``size × size`` training scene whose looks, signal mix, coherence map, texture and
    fringe rate are drawn from ``seed``: the training distribution.

    Half the scenes are single-look, half multilooked with a window of
    :data:`TRAINING_LOOKS`; fringe rates are log-uniform from nearly flat (0.01 rad/px) to
    near Nyquist, or a near field beyond it (:data:`NEAR_FIELD_SHARE`); coherence ranges
    anywhere in [0, 0.98] (patches reach 0); 80 % of scenes have a sensor spectrum (see
    :func:`simulate_realistic_pair`).
    """
    if not _is_int(size) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InsarMlError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}.")
    if not _is_int(seed) or seed < 0:
        raise InsarMlError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _TRAINING_TAG]))
    looks = (1, 1) if rng.random() < 0.5 else TRAINING_LOOKS[rng.integers(len(TRAINING_LOOKS))]
    signals = tuple(s for s in SIGNALS if rng.random() < (0.3 if s == "rupture" else 0.5))
    kind = rng.random()
    coherence: str | float = float(rng.uniform(0.0, 0.98)) if kind < 0.1 else "smooth" if kind < 0.4 else "patchy"
    lo, hi = np.sort(rng.uniform(0.0, 0.98, 2))
    settings = _Settings(
        fringe_scale=1.0,
        fringe_rate=_training_fringe_rate(rng),
        signals=signals, coherence=coherence, coherence_range=(float(lo), float(hi)),
        texture_shape=None if rng.random() < 0.2 else float(np.exp(rng.uniform(np.log(0.7), np.log(30.0)))),
        bright_targets=bool(rng.random() < 0.7), holes=bool(rng.random() < 0.3),
        **_training_sensor(rng))
    return _simulate(int(size), int(size), int(seed), looks, settings)


def _training_fringe_rate(rng: np.random.Generator) -> float:
    """Log-uniform from nearly flat to near Nyquist, or (a share NEAR_FIELD_SHARE) a near field."""
    if rng.random() < NEAR_FIELD_SHARE:
        return float(rng.uniform(*NEAR_FIELD_RATES))
    return float(np.exp(rng.uniform(np.log(0.01), np.log(NYQUIST_MARGIN * np.pi))))


def _training_sensor(rng: np.random.Generator) -> dict:
    """Most training scenes get a sensor spectrum: bandwidth 0.55–1 of the sampling rate per
    axis and weighting from none to Hamming (drawn after every other setting, so the rest of
    the training distribution is unchanged)."""
    if rng.random() < 0.2:
        return {}
    return {"bandwidth": (float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.55, 1.0))),
            "weighting": float(rng.uniform(0.54, 1.0))}


def parse_looks(text: str) -> tuple[int, int]:
    """``"20x4"`` → (20, 4): looks as rows × columns, the way users write them."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×*]\s*(\d+)\s*", str(text))
    rows, cols = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not (1 <= rows <= MAX_LOOKS and 1 <= cols <= MAX_LOOKS):
        raise InsarMlError(f"Looks must be written rows x columns with 1 to {MAX_LOOKS} each, e.g. 1x1, 4x1 or "
                           f"20x4; got {text!r}.")
    return rows, cols


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


def _simulate(height: int, width: int, seed: int, looks: tuple[int, int], p: _Settings) -> RealisticScene:
    shape = (height, width)
    # One stream per ingredient (and per signal), so switching one off leaves the others unchanged.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, _TAG]).spawn(7 + len(SIGNALS))]
    coherence_rng, brightness_rng, landcover_rng, targets_rng, dem_rng, holes_rng, speckle_rng = streams[:7]
    signal_rngs = dict(zip(SIGNALS, streams[7:]))

    dem = fractal_dem(dem_rng, shape, dem_rng.uniform(*DEM_RELIEF))
    phase = _smooth_phase(signal_rngs, shape, p.signals, dem) * p.fringe_scale
    if p.fringe_rate is not None:
        rate = np.quantile(np.hypot(*np.gradient(phase)), 0.99)
        if rate > 0:
            phase *= p.fringe_rate / rate
    window = _look_decorrelation(phase, looks)
    if "rupture" in p.signals:
        phase += p.fringe_scale * _rupture(signal_rngs["rupture"], shape)

    if isinstance(p.coherence, float):
        gamma = np.full(shape, p.coherence, dtype=np.float32)
    else:
        gamma = _smooth_coherence(coherence_rng, shape, *p.coherence_range)
    reflectivity = _brightness(brightness_rng, shape, p.texture_shape)
    if p.coherence == "patchy":
        _add_landcover(landcover_rng, gamma, reflectivity, dem)
    if p.bright_targets:
        count = targets_rng.poisson(targets_rng.uniform(*_TARGET_DENSITY) * height * width)
        rows, cols = targets_rng.integers(0, height, count), targets_rng.integers(0, width, count)
        reflectivity[rows, cols] *= np.exp(targets_rng.uniform(*np.log(_TARGET_GAIN), count)).astype(np.float32)

    # Where one to two fringes fit in a window the look average points the other way: fold that into the phase.
    effective = (gamma * np.abs(window)).astype(np.float32)
    expected_phase = np.where(window < 0, phase + np.pi, phase)
    reference, secondary, ifg, power1, power2 = _speckle(speckle_rng, reflectivity, effective, expected_phase, looks,
                                                         p.bandwidth, p.weighting)

    valid = _holes(holes_rng, shape) if p.holes else np.ones(shape, dtype=bool)
    for array in (ifg, power1, power2, effective, reference, secondary):
        if array is not None:
            array[~valid] = 0
    return RealisticScene(interferogram=ifg, power_reference=power1, power_secondary=power2,
                          clean_phase=_wrap(expected_phase), coherence=effective, valid=valid, looks=looks,
                          reference=reference, secondary=secondary, reflectivity=reflectivity)


def _smooth_phase(rngs: dict[str, np.random.Generator], shape: tuple[int, int], signals: tuple[str, ...],
                  dem: np.ndarray) -> np.ndarray:
    """The sum of the smooth phase signals [rad], float64: everything but rupture steps."""
    height, width = shape
    phase = np.zeros(shape)
    if "bubbles" in signals:
        rng = rngs["bubbles"]
        phase += _motion(rng, height, width, rng.uniform(*_BUBBLE_AMPLITUDE))[0]
    if "deformation" in signals:
        phase += _deformation(rngs["deformation"], shape)
    if "turbulence" in signals:
        rng = rngs["turbulence"]
        phase += turbulent_atmosphere(rng, shape, rng.uniform(*TURBULENCE_RMS))
    if "topography" in signals:
        rng = rngs["topography"]
        phase += stratified_delay(dem, rng.uniform(-STRATIFIED_GRADIENT, STRATIFIED_GRADIENT))
    if "ramp" in signals:
        rng = rngs["ramp"]
        # Flat-earth residual up to near Nyquist (mostly gentle), plus a residual orbit (synthetic.orbital_ramp).
        rate, direction = NYQUIST_MARGIN * np.pi * rng.random() ** 2, rng.uniform(0.0, 2.0 * np.pi)
        y, x = np.arange(height) - (height - 1) / 2.0, np.arange(width) - (width - 1) / 2.0
        phase += rate * (np.sin(direction) * y[:, None] + np.cos(direction) * x[None, :])
        phase += orbital_ramp(rng, shape, RAMP_MAX, quadratic=rng.random() < 0.3)
    return phase


def _deformation(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """LOS phase [rad] of one random Mogi or Okada source (``synthetic._source_phase``).

    Okada's model costs most of a large scene, so beyond :data:`_DEFORMATION_GRID` pixels a
    side it is evaluated on a coarser grid and interpolated with a cubic spline: the sources
    are buried at least 1 % of the scene deep, several coarse pixels, so the field is smooth there.
    """
    height, width = shape
    rows = np.linspace(0.0, height - 1.0, min(height, _DEFORMATION_GRID))
    cols = np.linspace(0.0, width - 1.0, min(width, _DEFORMATION_GRID))
    east = (cols[None, :] - (width - 1) / 2.0) * _PIXEL_SPACING
    north = ((height - 1) / 2.0 - rows[:, None]) * _PIXEL_SPACING
    east, north = np.broadcast_arrays(east, north)
    source = SOURCE_TYPES[1 + rng.integers(len(SOURCE_TYPES) - 1)]
    phase = _source_phase(rng, source, east, north, max(height, width) * _PIXEL_SPACING)
    if phase.shape == shape:
        return phase
    return RectBivariateSpline(rows, cols, phase)(np.arange(height), np.arange(width))


def _rupture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A surface rupture [rad]: a phase step of random sign and size along a curved trace,
    decaying away from it like a fault slipping from the surface down to a locking depth D
    (``s/π · atan(D/d)`` at signed distance d), often ending at tips inside the scene."""
    height, width = shape
    size = max(height, width)
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2.0)[:, None]
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2.0)[None, :]
    theta = rng.uniform(0.0, np.pi)
    along = -np.sin(theta) * x + np.cos(theta) * y
    curvature = rng.uniform(-1.0, 1.0) / size  # the trace bends by up to a quarter of the scene
    distance = (np.cos(theta) * x + np.sin(theta) * y - rng.uniform(-0.3, 0.3) * min(height, width)
                - curvature * along ** 2)
    step = rng.choice((-1.0, 1.0)) * rng.uniform(*_RUPTURE_STEP)
    depth = rng.uniform(1.0, 0.15 * size)
    side = np.where(distance >= 0, 0.5 * np.pi, -0.5 * np.pi)
    slip = (step / np.pi) * (side - np.arctan(distance / depth))
    if rng.random() < 0.5:  # the trace ends inside the scene: taper the slip to zero at its tips
        centre, half = rng.uniform(-0.25, 0.25) * size, rng.uniform(0.2, 0.5) * size
        slip *= 0.5 * (1.0 - np.tanh((np.abs(along - centre) - half) / depth))
    return slip


def _look_decorrelation(phase: np.ndarray, looks: tuple[int, int]) -> np.ndarray:
    """Mean of exp(i(φ − φ_centre)) over each look window for φ linear over it: real, signed."""
    rows, cols = looks
    if rows * cols == 1:
        return np.ones(phase.shape, dtype=np.float32)
    grad_rows, grad_cols = np.gradient(phase)  # rad per output pixel
    return (_dirichlet(rows, grad_rows / rows) * _dirichlet(cols, grad_cols / cols)).astype(np.float32)


def _dirichlet(n: int, step: np.ndarray) -> np.ndarray:
    """Mean of exp(i·step·(k − (n−1)/2)) over k = 0..n−1."""
    if n == 1:
        return np.ones_like(step)
    half = 0.5 * step
    denominator = n * np.sin(half)
    small = np.abs(denominator) < 1e-6
    return np.where(small, 1.0, np.sin(n * half) / np.where(small, 1.0, denominator))


def _smooth_coherence(rng: np.random.Generator, shape: tuple[int, int], lo: float, hi: float) -> np.ndarray:
    """Large-scale γ spanning [lo, hi] about uniformly (a smooth Gaussian field through its CDF)."""
    return (lo + (hi - lo) * ndtr(power_law_field(rng, shape, 3.0))).astype(np.float32)


def _brightness(rng: np.random.Generator, shape: tuple[int, int], texture_shape: float | None) -> np.ndarray:
    """σ²: smooth log-normal land-cover brightness × gamma texture of mean 1; 1 without texture."""
    if texture_shape is None:
        return np.ones(shape, dtype=np.float32)
    spread = rng.uniform(*_BRIGHTNESS_SPREAD)
    brightness = np.exp(spread * power_law_field(rng, shape, 3.0) - 0.5 * spread ** 2)
    texture = rng.standard_gamma(texture_shape, shape) / texture_shape
    return (brightness * texture).astype(np.float32)


def _add_landcover(rng: np.random.Generator, gamma: np.ndarray, reflectivity: np.ndarray, dem: np.ndarray) -> None:
    """Sharp patches where physics ties brightness to coherence, in place: vegetation (lower γ),
    layover on the steepest slopes facing the radar (bright, low γ), water (dark, γ ≈ 0)."""
    shape = gamma.shape
    vegetation = _patches(power_law_field(rng, shape, 3.0), rng.uniform(0.0, _VEGETATION_FRACTION))
    gamma[vegetation] *= rng.uniform(*_VEGETATION_GAMMA_FACTOR)
    # Range grows with the column: a slope rising towards near range (left) faces the radar.
    layover = _patches(-np.gradient(dem, axis=1), rng.uniform(0.0, _LAYOVER_FRACTION))
    gamma[layover] = rng.uniform(*_LAYOVER_GAMMA)
    reflectivity[layover] *= rng.uniform(*_LAYOVER_BRIGHTNESS)
    water = _patches(power_law_field(rng, shape, 3.5), rng.uniform(0.0, _WATER_FRACTION))
    gamma[water] = rng.uniform(0.0, _WATER_GAMMA)
    reflectivity[water] *= rng.uniform(*_WATER_BRIGHTNESS)


def _patches(field: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of pixels where ``field`` is highest: sharp-edged blobs of a smooth field."""
    if fraction <= 0:
        return np.zeros(field.shape, dtype=bool)
    return field > np.quantile(field, 1.0 - fraction)


def _holes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Valid mask with 1-3 no-data areas: ellipses (masked or unprocessed areas) or a swath edge."""
    height, width = shape
    valid = np.ones(shape, dtype=bool)
    y, x = np.arange(height)[:, None], np.arange(width)[None, :]
    for _ in range(rng.integers(1, 4)):
        if rng.random() < 0.25:
            cut = max(1, int(rng.uniform(0.02, 0.1) * width))
            valid[:, slice(0, cut) if rng.random() < 0.5 else slice(width - cut, width)] = False
        else:
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            ry, rx = rng.uniform(0.03, 0.15) * height, rng.uniform(0.03, 0.15) * width
            valid &= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 > 1.0
    return valid


def _sensor_filter(shape: tuple[int, int], bandwidth: tuple[float, float], weighting: float) -> np.ndarray:
    """The sensor's transfer function on the FFT grid, normalised to unit mean power."""
    axes = []
    for n, band in zip(shape, bandwidth):
        f = np.fft.fftfreq(n)
        inside = np.abs(f) <= band / 2
        axes.append(np.where(inside, weighting + (1 - weighting) * np.cos(2 * np.pi * f / band), 0.0))
    response = np.outer(*axes)
    return (response / np.sqrt(np.mean(response ** 2))).astype(np.float32)


def _speckle(rng: np.random.Generator, reflectivity: np.ndarray, gamma: np.ndarray, phase: np.ndarray,
             looks: tuple[int, int], bandwidth: tuple[float, float] = (1.0, 1.0), weighting: float = 1.0
             ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """(reference, secondary, <s1 s2*>, <|s1|²>, <|s2|²>) of a circular Gaussian pair with
    covariance σ²·[[1, γe^{iφ}], [γe^{-iφ}, 1]], averaged over rows·cols looks; the SLCs only
    for single-look."""
    rows, cols = looks
    n_looks = rows * cols
    shape = reflectivity.shape
    sigma = np.sqrt(reflectivity)
    decorrelated = np.sqrt(1.0 - gamma ** 2)
    rotation = np.exp(1j * phase.astype(np.float32)).astype(np.complex64)
    if n_looks == 1:
        noise = rng.standard_normal((4, *shape), dtype=np.float32) * np.float32(np.sqrt(0.5))
        n1, n2 = noise[0] + 1j * noise[1], noise[2] + 1j * noise[3]
        if bandwidth != (1.0, 1.0) or weighting != 1.0:
            response = _sensor_filter(shape, bandwidth, weighting)
            n1, n2 = (np.fft.ifft2(np.fft.fft2(n) * response).astype(np.complex64) for n in (n1, n2))
        reference = (sigma * n1).astype(np.complex64)
        secondary = (sigma * (gamma * n1 + decorrelated * n2) * np.conj(rotation)).astype(np.complex64)
        ifg = reference * np.conj(secondary)
        return (reference, secondary, ifg, (np.abs(reference) ** 2).astype(np.float32),
                (np.abs(secondary) ** 2).astype(np.float32))
    # Bartlett: W = A T Tᴴ Aᴴ with A the Cholesky factor of the covariance, T lower triangular,
    # |T11|² ~ Gamma(L), |T22|² ~ Gamma(L−1), T21 ~ CN(0, 1); the sample covariance is W / L.
    t11 = np.sqrt(rng.standard_gamma(n_looks, shape).astype(np.float32))
    t22_sq = rng.standard_gamma(n_looks - 1, shape).astype(np.float32)
    noise = rng.standard_normal((2, *shape), dtype=np.float32) * np.float32(np.sqrt(0.5))
    t21 = noise[0] + 1j * noise[1]
    scale = reflectivity / np.float32(n_looks)
    ifg = (scale * (gamma * t11 ** 2 * rotation + decorrelated * t11 * np.conj(t21))).astype(np.complex64)
    power1 = (scale * t11 ** 2).astype(np.float32)
    mixed = gamma * t11 * np.conj(rotation) + decorrelated * t21
    power2 = (scale * (mixed.real ** 2 + mixed.imag ** 2 + decorrelated ** 2 * t22_sq)).astype(np.float32)
    return None, None, ifg, power1, power2
