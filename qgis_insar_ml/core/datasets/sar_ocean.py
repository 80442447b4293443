"""Sentinel-1 wave-mode SAR backscatter scenes in the ten TenGeoP-SARwv classes.

TenGeoP-SARwv (Wang et al. 2019) cannot be downloaded here, so the plugin builds its
scenes from the physics that makes them: a 10 m wind field turned into the normalised
radar cross-section σ0 by the CMOD5.N geophysical model function, ocean swell and wind
sea imaged through the SAR modulation transfer function (tilt, hydrodynamic modulation,
velocity bunching and the azimuth cut-off), the signature of the scene's class, the
instrument noise floor and multi-look speckle. A scene is a pure function of
(seed, index), as the InSAR scenes of :mod:`.synthetic` are.

Geometry: C band, VV, wave mode at 23° ("wv1") or 36.5° ("wv2") incidence; rows are
azimuth (along track), columns ground range, the radar looks towards increasing columns.
Pixels are 50 m, the TenGeoP pixel spacing. σ0 is linear (not dB), float32.

Limits, by design: linear imaging only (velocity bunching is strongly non-linear for
azimuth-travelling swell; the result is clipped, not simulated), no wave-current or
wave-ice interaction, no azimuth smearing of the wind features, wind-sea waves shorter
than two pixels (100 m) reach the image only through the azimuth cut-off.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gamma as gamma_function, pi, sqrt

import numpy as np

from ..errors import InsarMlError

TENGEOP_CLASSES: tuple[tuple[str, str], ...] = (
    ("F", "pure_ocean_waves"),
    ("G", "wind_streaks"),
    ("H", "micro_convective_cells"),
    ("I", "rain_cells"),
    ("J", "biological_slicks"),
    ("K", "sea_ice"),
    ("L", "iceberg"),
    ("M", "low_wind_area"),
    ("N", "atmospheric_front"),
    ("O", "oceanic_front"),
)
"""TenGeoP-SARwv classes in the dataset's order: (folder letter, class name)."""


def tengeop_folder_name(letter: str, name: str) -> str:
    """Class subfolder name, e.g. ``F_pure_ocean_waves`` (TenGeoP letter first, so both sort alike)."""
    return f"{letter}_{name}"


SAR_CLASS_NAMES: tuple[str, ...] = tuple(tengeop_folder_name(letter, name) for letter, name in TENGEOP_CLASSES)

GRAVITY = 9.81  # m/s²
PIXEL_SPACING = 50.0  # m, TenGeoP-SARwv's pixel spacing
MIN_SCENE_SIZE = 32
WAVE_MODE_INCIDENCE = {"wv1": 23.0, "wv2": 36.5}  # degrees, Sentinel-1 wave mode beams
R_OVER_V = 115.0  # s, slant range over platform velocity for Sentinel-1 wave mode
HYDRODYNAMIC_RELAXATION = 0.5  # 1/s, relaxation rate μ of the hydrodynamic MTF
HYDRODYNAMIC_GAIN = 4.5  # Alpers & Hasselmann (1978) feedback factor
NESZ_DB = (-25.0, -22.0)  # instrument noise floor (noise-equivalent σ0) in dB
AZIMUTH_CUTOFF_M = (100.0, 350.0)  # m, bounds on λc = 2π·(R/V)·σ_v
MODULATION_LIMITS = (-0.9, 2.0)  # σ0·(1+m): never negative, no runaway bunching peaks
BRAGG_THRESHOLD_WIND = 3.0  # m/s: below, C-band Bragg waves die out (Donelan & Pierson 1987: 2-3 m/s)
BRAGG_THRESHOLD_POWER = 4.0  # σ0 ∝ (U/threshold)^4 there, down to the noise floor
DEFAULT_LOOKS = 50.0
"""Equivalent number of looks of a 50 m pixel. Wave-mode SLC resolution cells are a few
metres (about 3 m slant range × 5 m azimuth); TenGeoP's 50 m pixels average some 80 of
them, partly correlated, hence about 50 independent looks. ``looks=1`` gives single-look
speckle (exponential intensity), as a full-resolution imagette shows."""

# CMOD5.N coefficients c1..c28 (Hersbach 2010, J. Atmos. Oceanic Technol. 27, 721-736;
# Verhoef et al. 2008, KNMI report "CMOD5.n - the CMOD5 GMF for neutral winds"), as
# published by ECMWF/KNMI and distributed with e.g. met-sar-vind (sarwind/cmod5n.py) and
# xsarsea (the 'cmod5n' GMF); index 0 is unused so the indices match the paper.
_CMOD5N = np.array([0.0,
                    -0.6878, -0.7957, 0.3380, -0.1728, 0.0000, 0.0040, 0.1103, 0.0159, 6.7329, 2.7713,
                    -2.2885, 0.4971, -0.7250, 0.0450, 0.0066, 0.3222, 0.0120, 22.7000, 2.0813, 3.0000,
                    8.3659, -3.3428, 1.3236, 6.2437, 2.3893, 0.3249, 4.1590, 1.6930])
_CMOD_THETA_MID, _CMOD_THETA_HALF, _CMOD_POWER = 40.0, 25.0, 1.6


def cmod5n(wind_speed: np.ndarray | float, relative_direction_deg: np.ndarray | float,
           incidence_deg: np.ndarray | float) -> np.ndarray:
    """C-band VV σ0 (linear) of the sea for a 10 m equivalent-neutral wind (CMOD5.N).

    ``relative_direction_deg`` is the angle between the wind direction (where it blows
    from) and the radar look direction: 0° upwind (the wind blows towards the radar),
    180° downwind, 90° crosswind. σ0 = B0·(1 + B1·cos φ + B2·cos 2φ)^1.6.
    """
    c = _CMOD5N
    v = np.maximum(np.asarray(wind_speed, dtype=np.float64), 1e-6)
    phi = np.radians(np.asarray(relative_direction_deg, dtype=np.float64))
    x = (np.asarray(incidence_deg, dtype=np.float64) - _CMOD_THETA_MID) / _CMOD_THETA_HALF
    # B0: isotropic part, a saturating (logistic) function of the wind with a low-wind taper.
    a0 = c[1] + c[2] * x + c[3] * x ** 2 + c[4] * x ** 3
    a1 = c[5] + c[6] * x
    a2 = c[7] + c[8] * x
    gamma = c[9] + c[10] * x + c[11] * x ** 2
    s0 = c[12] + c[13] * x
    s = a2 * v
    low = s < s0
    a3 = 1.0 / (1.0 + np.exp(-np.maximum(s, s0)))
    a3 = np.where(low, a3 * (s / s0) ** (s0 * (1.0 - a3)), a3)
    b0 = a3 ** gamma * 10.0 ** (a0 + a1 * v)
    # B1: upwind/downwind asymmetry, fading at high wind.
    b1 = c[14] * (1.0 + x) - c[15] * v * (0.5 + x - np.tanh(4.0 * (x + c[16] + c[17] * v)))
    b1 = b1 / (np.exp(0.34 * (v - c[18])) + 1.0)
    # B2: upwind/crosswind asymmetry, with a cubic continuation below y0.
    y0, pn = c[19], c[20]
    v0 = c[21] + c[22] * x + c[23] * x ** 2
    d1 = c[24] + c[25] * x + c[26] * x ** 2
    d2 = c[27] + c[28] * x
    v2 = v / v0 + 1.0
    taper_a, taper_b = y0 - (y0 - 1.0) / pn, 1.0 / (pn * (y0 - 1.0) ** (pn - 1.0))
    v2 = np.where(v2 < y0, taper_a + taper_b * np.maximum(v2 - 1.0, 0.0) ** pn, v2)
    b2 = (-d1 + d2 * v2) * np.exp(-v2)
    return b0 * np.maximum(1.0 + b1 * np.cos(phi) + b2 * np.cos(2.0 * phi), 0.0) ** _CMOD_POWER


def calm_sea_factor(wind_speed: np.ndarray) -> np.ndarray:
    """Factor on σ0 below the wind that sustains capillary Bragg waves: CMOD5.N is not
    valid there and levels off, while a calm sea turns radar-dark (down to the noise floor)."""
    return np.minimum(np.asarray(wind_speed) / BRAGG_THRESHOLD_WIND, 1.0) ** BRAGG_THRESHOLD_POWER


@dataclass(frozen=True)
class SeaState:
    """What a scene's ocean looks like to the radar. Directions are in the image frame,
    degrees counter-clockwise from the range axis (0° = away from the radar, 90° = towards
    increasing rows); a wind direction is where the wind blows *to*, a swell direction where
    the waves travel to."""

    incidence_deg: float
    wind_speed: float  # m/s, 10 m neutral
    wind_direction_deg: float
    swell_wavelength: float  # m, peak
    swell_direction_deg: float
    swell_height: float  # m, significant wave height of the swell
    wave_age: float  # c_p/U10 of the wind sea: 0.8 young .. 1.2 fully developed
    nesz_db: float


def relative_wind_direction(wind_direction_deg: np.ndarray | float) -> np.ndarray | float:
    """CMOD's φ of a wind blowing *to* ``wind_direction_deg`` (image frame): wind blowing
    towards the radar (to 180°) is upwind, φ = 0."""
    return np.mod(np.asarray(wind_direction_deg) - 180.0, 360.0)


class _WaveGrid:
    """Wavenumbers of a size×size scene: kr along range (columns), ka along azimuth (rows),
    each wavenumber a wave travelling in its direction (the full plane, not Hermitian)."""

    def __init__(self, size: int, spacing: float):
        k = 2.0 * np.pi * np.fft.fftfreq(size, d=spacing)
        self.ka, self.kr = np.meshgrid(k, k, indexing="ij")
        self.k = np.hypot(self.kr, self.ka)
        self.k[0, 0] = 1e-9
        self.omega = np.sqrt(GRAVITY * self.k)
        self.direction = np.arctan2(self.ka, self.kr)
        self.cell = (2.0 * np.pi / (size * spacing)) ** 2  # dk² of one wavenumber cell


_OMEGA_1D = np.linspace(0.15, 6.0, 600)  # rad/s, for the wind sea's 1D moments


def _jonswap(omega: np.ndarray, omega_p: float, gamma: float = 3.3) -> np.ndarray:
    """JONSWAP shape S(ω) (unscaled): Pierson-Moskowitz ω⁻⁵ with a peak enhancement γ."""
    sigma = np.where(omega <= omega_p, 0.07, 0.09)
    peak = gamma ** np.exp(-((omega - omega_p) ** 2) / (2.0 * sigma ** 2 * omega_p ** 2))
    return omega ** -5.0 * np.exp(-1.25 * (omega_p / omega) ** 4) * peak


def wind_sea_height(wind_speed: float, wave_age: float) -> float:
    """Significant height [m] of the wind sea: Pierson-Moskowitz's 0.21·U²/g when fully
    developed (wave age 1.2), less for a younger sea (Hs ∝ c_p² at fixed wind)."""
    return 0.21 * wind_speed ** 2 / GRAVITY * min(1.0, wave_age / 1.2) ** 2


def wave_spectrum(grid: _WaveGrid, state: SeaState) -> np.ndarray:
    """Directional elevation spectrum F(k) [m⁴/rad²] on the grid: a JONSWAP wind sea
    spread as cos^(2s) about the wind, plus a narrow swell (Gaussian in |k| and direction)
    scaled to its significant height."""
    omega_p = GRAVITY / (state.wave_age * max(state.wind_speed, 0.5))
    shape_1d = _jonswap(_OMEGA_1D, omega_p)
    scale = (wind_sea_height(state.wind_speed, state.wave_age) / 4.0) ** 2 / np.trapz(shape_1d, _OMEGA_1D)
    # F(k, θ) k dk dθ = S(ω) D(θ) dω dθ with dω/dk = g/(2ω)  →  F = S·D·g/(2ωk)
    spread_s = 6.0
    off_wind = np.angle(np.exp(1j * (grid.direction - np.radians(state.wind_direction_deg))))
    spread = np.cos(off_wind / 2.0) ** (2 * spread_s) * _cos2s_norm(spread_s)
    wind_sea = scale * _jonswap(grid.omega, omega_p) * spread * GRAVITY / (2.0 * grid.omega * grid.k)
    kp = 2.0 * np.pi / state.swell_wavelength
    off_swell = np.angle(np.exp(1j * (grid.direction - np.radians(state.swell_direction_deg))))
    swell = np.exp(-0.5 * ((grid.k - kp) / (0.08 * kp)) ** 2 - 0.5 * (off_swell / np.radians(12.0)) ** 2)
    swell *= (state.swell_height / 4.0) ** 2 / max(swell.sum() * grid.cell, 1e-30)
    spectrum = wind_sea + swell
    spectrum[0, 0] = 0.0
    return spectrum


def _cos2s_norm(s: float) -> float:
    """1/∫cos^(2s)(θ/2)dθ over a full turn."""
    return gamma_function(s + 1.0) / (2.0 * sqrt(pi) * gamma_function(s + 0.5))


def orbital_velocity_std(state: SeaState) -> float:
    """RMS radial orbital velocity [m/s] of the whole sea, resolved or not: what smears
    the image in azimuth. σ_v² = Σ ω²·E·(sin²θ·cos²(wave vs range) + cos²θ)."""
    theta = np.radians(state.incidence_deg)
    omega_p = GRAVITY / (state.wave_age * max(state.wind_speed, 0.5))
    shape_1d = _jonswap(_OMEGA_1D, omega_p)
    m2 = (np.trapz(_OMEGA_1D ** 2 * shape_1d, _OMEGA_1D) / np.trapz(shape_1d, _OMEGA_1D)
          * (wind_sea_height(state.wind_speed, state.wave_age) / 4.0) ** 2)
    swell_omega2 = GRAVITY * 2.0 * np.pi / state.swell_wavelength
    swell_m2 = swell_omega2 * (state.swell_height / 4.0) ** 2
    swell_range = np.cos(np.radians(state.swell_direction_deg)) ** 2
    geometry = np.sin(theta) ** 2 * 0.5 + np.cos(theta) ** 2  # wind sea: spread over directions
    return float(np.sqrt(m2 * geometry + swell_m2 * (np.sin(theta) ** 2 * swell_range + np.cos(theta) ** 2)))


def azimuth_cutoff(state: SeaState) -> float:
    """Azimuth cut-off wavelength λc = 2π·(R/V)·σ_v [m], kept within AZIMUTH_CUTOFF_M."""
    return float(np.clip(2.0 * np.pi * R_OVER_V * orbital_velocity_std(state), *AZIMUTH_CUTOFF_M))


def imaging_mtf(grid: _WaveGrid, state: SeaState, tilt_slope: float) -> np.ndarray:
    """Linear SAR modulation transfer function: RAR (tilt + hydrodynamic) plus velocity
    bunching (Alpers & Hasselmann 1978; Hasselmann & Hasselmann 1991).

    ``tilt_slope`` is d ln σ0 / dθ [1/rad] of the scene's wind from CMOD5.N; a slope rising
    away from the radar faces it (smaller local incidence), hence T_tilt = -i·kr·dlnσ0/dθ.
    """
    theta = np.radians(state.incidence_deg)
    kr, ka, k, omega = grid.kr, grid.ka, grid.k, grid.omega
    mu = HYDRODYNAMIC_RELAXATION
    tilt = -1j * kr * tilt_slope
    hydrodynamic = HYDRODYNAMIC_GAIN * omega * (kr ** 2 / k) * (omega - 1j * mu) / (omega ** 2 + mu ** 2)
    radial_velocity = -omega * (np.sin(theta) * kr / k + 1j * np.cos(theta))  # T^v
    bunching = -1j * R_OVER_V * ka * radial_velocity
    return tilt + hydrodynamic + bunching


def wave_modulation(rng: np.random.Generator, grid: _WaveGrid, state: SeaState) -> np.ndarray:
    """The relative σ0 modulation m of the imaged sea (one random realisation of its
    spectrum), clipped to MODULATION_LIMITS."""
    spectrum = wave_spectrum(grid, state)
    size = grid.k.shape[0]
    # Complex amplitudes of travelling waves: E|a|² = 2·F·dk², so var(Re η) = ΣF·dk².
    amplitude = np.sqrt(spectrum * grid.cell) * (rng.standard_normal(grid.k.shape)
                                                 + 1j * rng.standard_normal(grid.k.shape)) * size * size
    theta = state.incidence_deg
    slope = (np.log(cmod5n(state.wind_speed, relative_wind_direction(state.wind_direction_deg), theta + 0.5))
             - np.log(cmod5n(state.wind_speed, relative_wind_direction(state.wind_direction_deg), theta - 0.5)))
    tilt_slope = float(slope) / np.radians(1.0)
    xi = azimuth_cutoff(state) / (2.0 * np.pi)
    transfer = imaging_mtf(grid, state, tilt_slope) * np.exp(-0.5 * (grid.ka * xi) ** 2)
    return np.clip(np.fft.ifft2(transfer * amplitude).real, *MODULATION_LIMITS)


def gamma_speckle(rng: np.random.Generator, shape: tuple[int, int], looks: float) -> np.ndarray:
    """Multiplicative speckle of an L-look intensity image: Gamma(L, 1/L), mean 1, variance 1/L."""
    return rng.gamma(looks, 1.0 / looks, shape)


def _white_spectrum(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.fft.rfft2(rng.standard_normal((size, size)))


def _unit_rms(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    return field / max(float(field.std()), 1e-12)


class SarOceanScenes:
    """Labelled Sentinel-1 wave-mode σ0 scenes (linear), each a pure function of (seed, index).

    Labels cycle through the ten TenGeoP classes (:data:`SAR_CLASS_NAMES`). ``looks`` sets
    the speckle (None: no speckle, the expected σ0). Each ingredient has its own random
    stream: sea state, waves, class signature and speckle.
    """

    _TAG = 2  # keeps this dataset's random streams apart from the InSAR ones

    def __init__(self, size: int = 128, seed: int = 0, looks: float | None = DEFAULT_LOOKS,
                 pixel_spacing: float = PIXEL_SPACING):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SCENE_SIZE:
            raise InsarMlError(f"SAR scene size must be an integer of at least {MIN_SCENE_SIZE} pixels, got {size!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InsarMlError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
        if looks is not None and not looks > 0:
            raise InsarMlError(f"The number of looks must be positive (1 = single-look speckle), got {looks}.")
        if not pixel_spacing > 0:
            raise InsarMlError(f"Pixel spacing must be positive, got {pixel_spacing} m.")
        self.size, self.seed, self.looks, self.pixel_spacing = int(size), int(seed), looks, float(pixel_spacing)
        self.class_names = list(SAR_CLASS_NAMES)
        self._grid = _WaveGrid(self.size, self.pixel_spacing)
        centre = (self.size - 1) / 2.0
        rows, cols = np.mgrid[0:self.size, 0:self.size].astype(np.float64)
        self._x, self._y = (cols - centre) * self.pixel_spacing, (rows - centre) * self.pixel_spacing
        self._extent = self.size * self.pixel_spacing
        kr = 2.0 * np.pi * np.fft.rfftfreq(self.size, d=self.pixel_spacing)
        ka = 2.0 * np.pi * np.fft.fftfreq(self.size, d=self.pixel_spacing)
        self._rk = np.hypot(kr[None, :], ka[:, None])
        self._rdir = np.arctan2(ka[:, None], kr[None, :])

    def label(self, index: int) -> int:
        return index % len(self.class_names)

    def _streams(self, index: int) -> list[np.random.Generator]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise InsarMlError(f"Sample index must be a non-negative integer, got {index!r}.")
        return [np.random.default_rng(s) for s in np.random.SeedSequence([self.seed, self._TAG, int(index)]).spawn(4)]

    def sea_state(self, index: int) -> SeaState:
        """The drawn conditions of scene ``index`` (its class biases the wind)."""
        return self._sea_state(self._streams(index)[0], self.label(index))

    @staticmethod
    def _sea_state(rng: np.random.Generator, label: int) -> SeaState:
        letter = TENGEOP_CLASSES[label][0]
        wind_range = {"G": (7.0, 15.0), "H": (3.0, 9.0), "J": (2.5, 6.0), "M": (0.3, 2.0)}.get(letter, (4.0, 13.0))
        swell_height = rng.uniform(1.5, 5.0) if letter == "F" else rng.uniform(0.3, 2.5)
        period = rng.uniform(9.5, 16.0)  # s: swell of 140-400 m
        return SeaState(
            incidence_deg=WAVE_MODE_INCIDENCE["wv1" if rng.random() < 0.5 else "wv2"],
            wind_speed=float(rng.uniform(*wind_range)), wind_direction_deg=float(rng.uniform(0.0, 360.0)),
            swell_wavelength=float(GRAVITY * period ** 2 / (2.0 * np.pi)),
            swell_direction_deg=float(rng.uniform(0.0, 360.0)), swell_height=float(swell_height),
            wave_age=float(rng.uniform(0.8, 1.2)), nesz_db=float(rng.uniform(*NESZ_DB)))

    def expected_sigma0(self, index: int, state: SeaState | None = None) -> np.ndarray:
        """σ0 of scene ``index`` before speckle (noise floor included), float64. ``state``
        replaces the drawn sea state (to image a chosen sea)."""
        state_rng, wave_rng, class_rng, _ = self._streams(index)
        drawn = self._sea_state(state_rng, self.label(index))
        return self._expected(state or drawn, wave_rng, class_rng, TENGEOP_CLASSES[self.label(index)][0])

    def sample(self, index: int, state: SeaState | None = None) -> tuple[np.ndarray, int]:
        """(σ0 linear float32 (H, W), label)."""
        sigma0 = self.expected_sigma0(index, state)
        if self.looks is not None:
            sigma0 = sigma0 * gamma_speckle(self._streams(index)[3], sigma0.shape, self.looks)
        return sigma0.astype(np.float32), self.label(index)

    # --- the scene ------------------------------------------------------------------------

    def _expected(self, state: SeaState, wave_rng: np.random.Generator, rng: np.random.Generator,
                  letter: str) -> np.ndarray:
        size = self.size
        direction = np.radians(state.wind_direction_deg)
        u = np.full((size, size), state.wind_speed * np.cos(direction))
        v = np.full((size, size), state.wind_speed * np.sin(direction))
        # Boundary-layer gustiness at km scales: a few per cent of the wind everywhere.
        gust = 1.0 + rng.uniform(0.02, 0.06) * self._power_law(rng, 11.0 / 3.0)
        u, v = u * gust, v * gust
        damping = np.ones((size, size))   # multiplies the sea's σ0 (slicks, rain)
        wave_damping = np.ones((size, size))  # multiplies the swell modulation
        ice: tuple[np.ndarray, np.ndarray] | None = None  # (mask, σ0 of the ice)
        targets = np.zeros((size, size))  # σ0 of bright targets, added
        if letter == "G":
            rolls = self._band_noise(rng, rng.uniform(1000.0, 5000.0), 0.3,
                                     direction + np.pi / 2.0 + np.radians(rng.uniform(-15.0, 15.0)), 12.0)
            factor = 1.0 + rng.uniform(0.06, 0.14) * rolls
            u, v = u * factor, v * factor
        elif letter == "H":
            cells = _unit_rms(np.abs(self._band_noise(rng, rng.uniform(1000.0, 3000.0), 0.35)))
            factor = 1.0 + rng.uniform(0.1, 0.2) * cells
            u, v = u * factor, v * factor
        elif letter == "I":
            u, v, damping = self._rain_cells(rng, state, u, v)
        elif letter == "J":
            slick = self._filaments(rng, 2)
            damping = 1.0 - rng.uniform(0.5, 0.9) * slick
            wave_damping = 1.0 - 0.6 * slick
        elif letter == "K":
            ice = self._sea_ice(rng)
        elif letter == "L":
            targets = self._icebergs(rng, state)
        elif letter == "M":
            # Mostly calm: a smooth field decides where a weak breeze still roughens the sea.
            calm = 1.0 / (1.0 + np.exp(-(self._power_law(rng, 4.0) + rng.uniform(0.5, 1.5)) * 3.0))
            speed = state.wind_speed * calm + rng.uniform(3.0, 6.0) * (1.0 - calm)
            u, v = speed * np.cos(direction), speed * np.sin(direction)
        elif letter == "N":
            u, v = self._atmospheric_front(rng, state, u, v)
        elif letter == "O":
            damping = self._oceanic_front(rng)
        speed = np.hypot(u, v)
        phi = relative_wind_direction(np.degrees(np.arctan2(v, u)))
        sea = cmod5n(speed, phi, state.incidence_deg) * damping * calm_sea_factor(speed)
        modulation = wave_modulation(wave_rng, self._grid, state)
        sea = sea * (1.0 + modulation * wave_damping)
        if ice is not None:
            mask, ice_sigma0 = ice
            sea = np.where(mask, ice_sigma0, sea)
        return sea + targets + 10.0 ** (state.nesz_db / 10.0)

    # --- class signatures -----------------------------------------------------------------

    def _power_law(self, rng: np.random.Generator, beta: float) -> np.ndarray:
        """Unit-RMS Gaussian field with power spectrum ∝ k^-β (periodic, spectral synthesis)."""
        gain = np.zeros_like(self._rk)
        gain[self._rk > 0] = self._rk[self._rk > 0] ** (-beta / 2.0)
        return _unit_rms(np.fft.irfft2(_white_spectrum(rng, self.size) * gain, s=(self.size, self.size)))

    def _band_noise(self, rng: np.random.Generator, wavelength: float, relative_width: float,
                    orientation: float | None = None, spread_deg: float = 0.0) -> np.ndarray:
        """Unit-RMS field with its power near one wavelength [m]; with ``orientation`` [rad]
        only wave vectors within ~``spread_deg`` of it (either sense): parallel bands."""
        k0 = 2.0 * np.pi / wavelength
        gain = np.exp(-0.5 * ((self._rk - k0) / (relative_width * k0)) ** 2)
        if orientation is not None:
            off = np.angle(np.exp(2j * (self._rdir - orientation))) / 2.0  # modulo 180°
            gain = gain * np.exp(-0.5 * (off / np.radians(spread_deg)) ** 2)
        return _unit_rms(np.fft.irfft2(_white_spectrum(rng, self.size) * gain, s=(self.size, self.size)))

    def _curve_distance(self, rng: np.random.Generator) -> np.ndarray:
        """Signed distance [m] to a random curved, slightly wavy line across the scene."""
        angle = rng.uniform(0.0, 2.0 * np.pi)
        normal, tangent = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
        x0, y0 = rng.uniform(-0.2, 0.2, 2) * self._extent
        along = (self._x - x0) * tangent[0] + (self._y - y0) * tangent[1]
        across = (self._x - x0) * normal[0] + (self._y - y0) * normal[1]
        curvature = rng.uniform(-1.5, 1.5) / self._extent
        wiggle = sum(rng.uniform(0.005, 0.02) * self._extent
                     * np.sin(2.0 * np.pi * along / (self._extent / n) + rng.uniform(0.0, 2.0 * np.pi))
                     for n in (1.0, 2.0, 4.0))
        return across + 0.5 * curvature * along ** 2 + wiggle

    def _filaments(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Thin curved filaments and closed eddy-like loops in [0, 1]: level lines of smooth fields."""
        lines = np.zeros((self.size, self.size))
        for _ in range(count):
            field = self._power_law(rng, 4.5)
            width = rng.uniform(0.05, 0.15)
            lines = np.maximum(lines, np.exp(-((field - rng.uniform(-1.0, 1.0)) / width) ** 2))
        return lines

    def _rain_cells(self, rng: np.random.Generator, state: SeaState, u: np.ndarray,
                    v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Downdraft outflows: radial gusts peaking on a ring (the gust front, stronger
        downwind) around a centre where rain damps the short waves."""
        damping = np.ones_like(u)
        for _ in range(int(rng.integers(1, 3))):
            radius = min(rng.uniform(2500.0, 5000.0), 0.45 * self._extent)
            cx, cy = rng.uniform(-0.3, 0.3, 2) * self._extent
            dx, dy = self._x - cx, self._y - cy
            r = np.hypot(dx, dy) + 1e-6
            front_width = rng.uniform(0.06, 0.15) * radius
            # outflow growing to the gust front on the ring, then dying off beyond it
            profile = np.where(r <= radius, r / radius, np.exp(-0.5 * ((r - radius) / front_width) ** 2))
            downwind = 0.5 * (1.0 + (dx * np.cos(np.radians(state.wind_direction_deg))
                                     + dy * np.sin(np.radians(state.wind_direction_deg))) / r)
            gust = rng.uniform(3.0, 8.0) * profile * (0.4 + 0.6 * downwind)
            u, v = u + gust * dx / r, v + gust * dy / r
            damping *= 1.0 - rng.uniform(0.5, 0.85) * np.exp(-0.5 * (r / (0.4 * radius)) ** 2)
        return u, v, damping

    def _sea_ice(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Floes (mask) and the ice's σ0: a level per scene, rough texture, dark leads and
        bright ridges. The sea between floes keeps its wind and swell."""
        floes = self._power_law(rng, 3.0)
        mask = floes > np.quantile(floes, 1.0 - rng.uniform(0.4, 0.95))
        level_db = rng.uniform(-20.0, -11.0)
        texture_db = rng.uniform(0.5, 1.5) * self._power_law(rng, 2.5)
        leads = self._filaments(rng, 1) > 0.5
        ridges = np.exp(-(self._power_law(rng, 3.0) / rng.uniform(0.02, 0.05)) ** 2)
        ice_db = level_db + texture_db + rng.uniform(3.0, 7.0) * ridges
        ice_db = np.where(leads, rng.uniform(-27.0, -22.0), ice_db)  # new ice / calm water in leads
        return mask & ~(leads & (rng.random() < 0.5)), 10.0 ** (ice_db / 10.0)

    def _icebergs(self, rng: np.random.Generator, state: SeaState) -> np.ndarray:
        """A few bright compact targets of 100-400 m, 6-15 dB above the sea around them, and
        some fainter bergy bits (2-6 dB above)."""
        sea_db = 10.0 * np.log10(cmod5n(state.wind_speed, relative_wind_direction(state.wind_direction_deg),
                                        state.incidence_deg))
        targets = np.zeros((self.size, self.size))
        for big in [True] * int(rng.integers(1, 4)) + [False] * int(rng.integers(0, 6)):
            cx, cy = rng.uniform(-0.45, 0.45, 2) * self._extent
            axes = rng.uniform(50.0, 200.0, 2) if big else rng.uniform(15.0, 40.0, 2)
            angle = rng.uniform(0.0, np.pi)
            dx, dy = self._x - cx, self._y - cy
            a = (dx * np.cos(angle) + dy * np.sin(angle)) / axes[0]
            b = (-dx * np.sin(angle) + dy * np.cos(angle)) / axes[1]
            shape = np.exp(-(a ** 2 + b ** 2 + (self.pixel_spacing / 2.0) ** 2 / (axes ** 2).mean()) ** 2)
            brightness_db = sea_db + (rng.uniform(6.0, 15.0) if big else rng.uniform(2.0, 6.0))
            targets += 10.0 ** (brightness_db / 10.0) * shape
        return targets

    def _atmospheric_front(self, rng: np.random.Generator, state: SeaState, u: np.ndarray,
                           v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A wind speed and direction step across a curved line, often with a bright
        convergence line on it."""
        distance = self._curve_distance(rng)
        step = 0.5 * (1.0 + np.tanh(distance / rng.uniform(100.0, 600.0)))
        turn = np.radians(rng.uniform(20.0, 90.0) * rng.choice((-1.0, 1.0)))
        ratio = rng.uniform(0.3, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 2.5)
        rotated_u = ratio * (u * np.cos(turn) - v * np.sin(turn))
        rotated_v = ratio * (u * np.sin(turn) + v * np.cos(turn))
        u, v = (1.0 - step) * u + step * rotated_u, (1.0 - step) * v + step * rotated_v
        if rng.random() < 0.5:
            line = 1.0 + rng.uniform(0.15, 0.4) * np.exp(-0.5 * (distance / rng.uniform(100.0, 250.0)) ** 2)
            u, v = u * line, v * line
        return u, v

    def _oceanic_front(self, rng: np.random.Generator) -> np.ndarray:
        """Factor on σ0: a small step across a curved front (stability changes the stress)
        and one or two thin bright (convergence) or dark (surfactant) lines along it."""
        distance = self._curve_distance(rng)
        step_db = rng.uniform(0.3, 1.0) * rng.choice((-1.0, 1.0)) * np.tanh(distance / rng.uniform(100.0, 400.0))
        lines_db = np.zeros_like(distance)
        for offset in [0.0] + ([rng.uniform(150.0, 600.0)] if rng.random() < 0.5 else []):
            amplitude = rng.uniform(1.0, 3.0) if rng.random() < 0.5 else -rng.uniform(1.0, 4.0)
            lines_db += amplitude * np.exp(-0.5 * ((distance - offset) / rng.uniform(50.0, 150.0)) ** 2)
        return 10.0 ** ((step_db + lines_db) / 10.0)
