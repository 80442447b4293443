"""Synthetic InSAR training sets, generated on the fly with their labels.

The paper's interferograms (§3.2) and deformation scenes (§3.3) are not public, so the
plugin builds scenes from the same ingredients: one deformation source (the label) seen
in the radar line of sight, plus what masks it in real data: turbulent and
topography-correlated atmospheric delay, orbital ramps and decorrelation noise. A sample
is a pure function of (seed, index), so a dataset needs no storage and never drifts.

Conventions: coordinates east/north/up in metres; phase in radians,
``phase = -4π/λ · d_LOS`` with ``d_LOS`` the displacement towards the satellite
(Sentinel-1 C band, ascending track, right-looking, incidence 39°).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, check_cancel
from .sar_ocean import SarOceanScenes

WAVELENGTH = 0.0555  # m, Sentinel-1 C band
POISSON = 0.25
INCIDENCE_DEG = 39.0
HEADING_DEG = -12.0  # ascending track, flying north-north-west
_LOOK = np.radians(HEADING_DEG + 90.0)  # right-looking: the beam points 90° right of the track
_INC = np.radians(INCIDENCE_DEG)
# Unit vector from the ground to the satellite (east, north, up).
LOS_ENU = np.array([-np.sin(_INC) * np.sin(_LOOK), -np.sin(_INC) * np.cos(_LOOK), np.cos(_INC)])

MIN_SIZE = 16
SOURCE_TYPES = ("no_deformation", "point_source", "fault", "dike", "sill")
DATASETS = ("interferograms", "deformation", "sar")

TURBULENCE_BETA = 8.0 / 3.0  # Kolmogorov-like spectrum of the wet delay
DEM_BETA = 3.5  # typical of natural topography
TURBULENCE_RMS = (0.5, 3.0)  # rad
DEM_RELIEF = (500.0, 3000.0)  # m, heights span 0..relief
STRATIFIED_GRADIENT = 3e-3  # rad/m, |K| at most: about 1 cm of delay per 300 m
RAMP_MAX = 3.0  # rad across the scene
QUADRATIC_RAMP_PROBABILITY = 0.3
NOISE_SIGMA = (0.1, 0.8)  # rad, decorrelation noise

# Source geometry as fractions of the scene extent, so a 32-pixel and a 128-pixel scene
# of the same footprint hold the same kind of signal. Displacements in metres. The lower
# bounds keep every class recognisable under the atmosphere (a classifier tells 85 % of the
# scenes apart; with 1 cm uplift, 5 cm slip and deep sills it was 71 %: README, Class fidelity).
_POINT_SOURCE = {"depth": (0.1, 0.3), "uplift": (0.03, 0.1)}
_DISLOCATIONS = {
    "fault": {"dip": (30.0, 90.0), "rake": (-180.0, 180.0), "slip": (0.15, 0.5), "opening": (0.0, 0.0),
              "length": (0.15, 0.4), "width": (0.1, 0.25), "top": (0.01, 0.1), "signed": False},
    "dike": {"dip": (70.0, 90.0), "rake": (0.0, 0.0), "slip": (0.0, 0.0), "opening": (0.1, 1.0),
             "length": (0.1, 0.3), "width": (0.05, 0.15), "top": (0.01, 0.08), "signed": False},
    "sill": {"dip": (0.0, 10.0), "rake": (0.0, 0.0), "slip": (0.0, 0.0), "opening": (0.05, 0.4),
             "length": (0.1, 0.3), "width": (0.1, 0.3), "top": (0.03, 0.1), "signed": True},
}
_VERTICAL_COS = 3e-5  # below, the 1/cos(dip) terms of eq. 28 lose more digits than the vertical limit (eq. 29) is off


def los_phase(east: np.ndarray, north: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Interferometric phase [rad] of a surface displacement [m]."""
    towards_satellite = LOS_ENU[0] * east + LOS_ENU[1] * north + LOS_ENU[2] * up
    return -4.0 * np.pi / WAVELENGTH * towards_satellite


def wrap(phase: np.ndarray) -> np.ndarray:
    """Wrapped phase in [-π, π]: what an interferogram shows before unwrapping."""
    return np.angle(np.exp(1j * np.asarray(phase, dtype=np.float64))).astype(np.float32)


def mogi(east: np.ndarray, north: np.ndarray, depth: float, volume_change: float,
         nu: float = POISSON) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface displacement (east, north, up) [m] of a point pressure source (Mogi 1958).

    ``east``/``north`` [m] from the epicentre; ``volume_change`` [m³], positive for inflation.
    """
    scale = (1.0 - nu) * volume_change / np.pi / (east ** 2 + north ** 2 + depth ** 2) ** 1.5
    return scale * east, scale * north, scale * depth


def okada(east: np.ndarray, north: np.ndarray, *, depth: float, strike: float, dip: float, length: float,
          width: float, rake: float = 0.0, slip: float = 0.0, opening: float = 0.0,
          nu: float = POISSON) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface displacement (east, north, up) [m] of a rectangular dislocation in an elastic
    half-space (Okada 1985, eqs. 25-30).

    ``east``/``north`` [m] from the surface projection of the fault centroid, ``depth`` [m] of
    the centroid. Angles in degrees, Aki-Richards convention: the fault dips to the right of
    the strike, rake 0° is left-lateral and 90° reverse. ``slip`` [m] on the plane, ``opening``
    [m] across it (dikes, sills). The top edge must be buried: at a surface rupture the
    equations are singular on the trace.
    """
    if length <= 0 or width <= 0:
        raise InsarMlError(f"Fault length and width must be positive, got {length} m and {width} m.")
    if not 0.0 <= dip <= 90.0:
        raise InsarMlError(f"Dip must be within 0-90°, got {dip}°; flip the strike by 180° instead.")
    sd, cd = np.sin(np.radians(dip)), np.cos(np.radians(dip))
    if cd < _VERTICAL_COS:
        sd, cd = 1.0, 0.0
    if depth - 0.5 * width * sd <= 0:
        raise InsarMlError(f"The fault's top edge is at or above the surface (centroid depth {depth} m, "
                           f"width {width} m, dip {dip}°). Increase the depth or reduce the width.")
    st, ct = np.sin(np.radians(strike)), np.cos(np.radians(strike))
    # Okada's frame: x along strike, y to its left, origin above the start of the bottom edge.
    bottom = depth + 0.5 * width * sd
    x = ct * north + st * east + 0.5 * length
    y = st * north - ct * east + 0.5 * width * cd
    p = y * cd + bottom * sd
    q = y * sd - bottom * cd
    u1, u2 = slip * np.cos(np.radians(rake)), slip * np.sin(np.radians(rake))
    ux = uy = uz = 0.0
    # Chinnery's notation f(ξ,η)|| = f(x,p) - f(x,p-W) - f(x-L,p) + f(x-L,p-W).
    for xi, eta, sign in ((x, p, 1.0), (x, p - width, -1.0), (x - length, p, -1.0), (x - length, p - width, 1.0)):
        cx, cy, cz = _okada_corner(xi, eta, q, sd, cd, u1, u2, opening, 1.0 - 2.0 * nu)
        ux, uy, uz = ux + sign * cx, uy + sign * cy, uz + sign * cz
    return st * ux - ct * uy, ct * ux + st * uy, uz


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, and 0 where b is 0: Okada's (1992) value on the singular lines."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _okada_corner(xi: np.ndarray, eta: np.ndarray, q: np.ndarray, sd: float, cd: float,
                  u1: float, u2: float, u3: float, m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One corner term of Okada's (1985) eqs. 25-27 for all three dislocation components;
    ``m`` is μ/(λ+μ) = 1-2ν."""
    r = np.sqrt(xi ** 2 + eta ** 2 + q ** 2)
    # R+η and R+ξ without cancellation when η or ξ is negative: (R+η)(R-η) = ξ²+q².
    r_eta = np.where(eta >= 0, r + eta, _safe_div(xi ** 2 + q ** 2, r - eta))
    r_xi = np.where(xi >= 0, r + xi, _safe_div(eta ** 2 + q ** 2, r - xi))
    log_r_eta = np.log(np.where(r_eta > 0, r_eta, _safe_div(1.0, r - eta)))  # Okada (1992): -ln(R-η)
    inv_r_reta = _safe_div(1.0, r * r_eta)
    inv_r_rxi = _safe_div(1.0, r * r_xi)
    theta = np.arctan(_safe_div(xi * eta, q * r))
    y_t = eta * cd + q * sd
    d_t = eta * sd - q * cd  # depth of the corner's edge: positive for a buried fault
    r_d = r + d_t
    if cd > 0:
        x_ = np.sqrt(xi ** 2 + q ** 2)
        i5 = m * 2.0 / cd * np.arctan(_safe_div(eta * (x_ + q * cd) + x_ * (r + x_) * sd, xi * (r + x_) * cd))
        i4 = m / cd * (np.log(r_d) - sd * log_r_eta)
        i3 = m * (y_t / (cd * r_d) - log_r_eta) + sd / cd * i4
        i1 = -m * xi / (cd * r_d) - sd / cd * i5
    else:
        i1 = -0.5 * m * xi * q / r_d ** 2
        i3 = 0.5 * m * (eta / r_d + y_t * q / r_d ** 2 - log_r_eta)
        i4 = -m * q / r_d
        i5 = -m * xi * sd / r_d
    i2 = -m * log_r_eta - i3
    ss, ds, tf = -u1 / (2 * np.pi), -u2 / (2 * np.pi), u3 / (2 * np.pi)
    open_term = xi * q * inv_r_reta - theta
    ux = (ss * (xi * q * inv_r_reta + theta + i1 * sd) + ds * (q / r - i3 * sd * cd)
          + tf * (q ** 2 * inv_r_reta - i3 * sd ** 2))
    uy = (ss * (y_t * q * inv_r_reta + q * cd * r * inv_r_reta + i2 * sd)
          + ds * (y_t * q * inv_r_rxi + cd * theta - i1 * sd * cd)
          + tf * (-d_t * q * inv_r_rxi - sd * open_term - i1 * sd ** 2))
    uz = (ss * (d_t * q * inv_r_reta + q * sd * r * inv_r_reta + i4 * sd)
          + ds * (d_t * q * inv_r_rxi + sd * theta - i5 * sd * cd)
          + tf * (y_t * q * inv_r_rxi + cd * open_term - i5 * sd ** 2))
    return ux, uy, uz


def power_law_field(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-RMS Gaussian random field with power spectrum P(k) ∝ k^-beta.

    Spectral synthesis: filtered white noise, periodic across the scene edges, which keeps
    the spectrum exact at every wavenumber (a cropped field would leak power).
    """
    k = np.hypot(np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :])
    gain = np.zeros_like(k)
    gain[k > 0] = k[k > 0] ** (-beta / 2.0)
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * gain, s=shape)
    field -= field.mean()
    return field / field.std()


def turbulent_atmosphere(rng: np.random.Generator, shape: tuple[int, int], rms: float) -> np.ndarray:
    """Turbulent wet delay [rad]: a Kolmogorov-like field of the given RMS."""
    return rms * power_law_field(rng, shape, TURBULENCE_BETA)


def fractal_dem(rng: np.random.Generator, shape: tuple[int, int], relief: float) -> np.ndarray:
    """Synthetic topography [m] spanning 0..relief, fractal like real terrain."""
    field = power_law_field(rng, shape, DEM_BETA)
    return relief * (field - field.min()) / (field.max() - field.min())


def stratified_delay(dem: np.ndarray, gradient: float) -> np.ndarray:
    """Stratified tropospheric delay [rad]: linear in height, zero at the mean height."""
    return gradient * (dem - dem.mean())


def orbital_ramp(rng: np.random.Generator, shape: tuple[int, int], max_rad: float = RAMP_MAX,
                 quadratic: bool = False) -> np.ndarray:
    """Residual orbit error [rad]: a random plane spanning up to ``max_rad`` along each axis,
    plus a random quadratic surface when ``quadratic``."""
    y, x = np.meshgrid(np.linspace(-0.5, 0.5, shape[0]), np.linspace(-0.5, 0.5, shape[1]), indexing="ij")
    a, b = rng.uniform(-max_rad, max_rad, 2)
    ramp = a * x + b * y
    if quadratic:
        c, d, e = rng.uniform(-max_rad, max_rad, 3)
        ramp = ramp + c * x ** 2 + d * y ** 2 + e * x * y
    return ramp


def decorrelation_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Random phase noise [rad] whose level varies smoothly, as coherence does over terrain."""
    modulation = np.exp(0.5 * power_law_field(rng, shape, 3.0))
    return sigma * modulation * rng.standard_normal(shape)


def _source_phase(rng: np.random.Generator, source: str, east: np.ndarray, north: np.ndarray,
                  extent: float) -> np.ndarray:
    """LOS phase [rad] of one random source of the given type somewhere near the scene centre."""
    if source == "no_deformation":
        return np.zeros_like(east)
    e0, n0 = rng.uniform(-0.2, 0.2, 2) * extent
    east, north = east - e0, north - n0
    if source == "point_source":
        depth = rng.uniform(*_POINT_SOURCE["depth"]) * extent
        uplift = rng.uniform(*_POINT_SOURCE["uplift"]) * rng.choice((-1.0, 1.0))
        return los_phase(*mogi(east, north, depth, uplift * np.pi * depth ** 2 / (1.0 - POISSON)))
    ranges = _DISLOCATIONS[source]
    dip = rng.uniform(*ranges["dip"])
    width = rng.uniform(*ranges["width"]) * extent
    opening = rng.uniform(*ranges["opening"]) * (rng.choice((-1.0, 1.0)) if ranges["signed"] else 1.0)
    return los_phase(*okada(
        east, north, strike=rng.uniform(0.0, 360.0), dip=dip, rake=rng.uniform(*ranges["rake"]),
        slip=rng.uniform(*ranges["slip"]), opening=opening, length=rng.uniform(*ranges["length"]) * extent,
        width=width, depth=(rng.uniform(*ranges["top"]) * extent + 0.5 * width * np.sin(np.radians(dip)))))


class _SyntheticScenes:
    """A labelled stream of scenes, each a pure function of (seed, index).

    Labels cycle through the classes, so any run of ``len(class_names)`` consecutive
    indices holds each class once. Each ingredient has its own random stream, so e.g.
    the atmosphere of a sample does not change when the source type list does.
    """

    _TAG: int  # keeps the datasets' random streams apart
    _TERMS: tuple[str, ...]  # components summed into a sample

    def __init__(self, size: int, seed: int, classes: tuple[str, ...] | list[str], pixel_spacing: float):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
            raise InsarMlError(f"Scene size must be an integer of at least {MIN_SIZE} pixels, got {size!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InsarMlError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
        unknown = [c for c in classes if c not in SOURCE_TYPES]
        if not classes or unknown or len(set(classes)) != len(classes):
            raise InsarMlError(f"Classes must be distinct names among {', '.join(SOURCE_TYPES)}; got {list(classes)}.")
        if not pixel_spacing > 0:
            raise InsarMlError(f"Pixel spacing must be positive, got {pixel_spacing} m.")
        self.size, self.seed, self.pixel_spacing = int(size), int(seed), float(pixel_spacing)
        self.class_names = list(classes)
        centre = (self.size - 1) / 2.0
        rows, cols = np.mgrid[0:self.size, 0:self.size].astype(np.float64)
        self._east, self._north = (cols - centre) * self.pixel_spacing, (centre - rows) * self.pixel_spacing

    def label(self, index: int) -> int:
        return index % len(self.class_names)

    def components(self, index: int) -> dict[str, np.ndarray]:
        """Every ingredient of sample ``index`` [rad] (and its ``dem`` [m] when stratified)."""
        if index < 0:
            raise InsarMlError(f"Sample index must be non-negative, got {index}.")
        source, atmo, strat, ramp, noise = (np.random.default_rng(s) for s in
                                            np.random.SeedSequence([self.seed, self._TAG, index]).spawn(5))
        shape = (self.size, self.size)
        out = {"deformation": _source_phase(source, self.class_names[self.label(index)], self._east, self._north,
                                            self.size * self.pixel_spacing)}
        if "turbulence" in self._TERMS:
            out["turbulence"] = turbulent_atmosphere(atmo, shape, atmo.uniform(*TURBULENCE_RMS))
        if "stratified" in self._TERMS:
            out["dem"] = fractal_dem(strat, shape, strat.uniform(*DEM_RELIEF))
            out["stratified"] = stratified_delay(out["dem"], strat.uniform(-STRATIFIED_GRADIENT, STRATIFIED_GRADIENT))
        if "ramp" in self._TERMS:
            out["ramp"] = orbital_ramp(ramp, shape, RAMP_MAX, ramp.random() < QUADRATIC_RAMP_PROBABILITY)
        if "noise" in self._TERMS:
            out["noise"] = decorrelation_noise(noise, shape, noise.uniform(*NOISE_SIGMA))
        return out

    def sample(self, index: int) -> tuple[np.ndarray, int]:
        """(unwrapped phase float32 (H, W) [rad], label)."""
        parts = self.components(index)
        return sum(parts[t] for t in self._TERMS).astype(np.float32), self.label(index)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(wrapped, unwrapped, label): a training pair for phase unwrapping."""
        unwrapped, label = self.sample(index)
        return wrap(unwrapped), unwrapped, label

    wrap = staticmethod(wrap)


class SyntheticInterferograms(_SyntheticScenes):
    """Unwrapped interferograms (paper §3.2): a source, turbulent and stratified atmosphere,
    and an orbital ramp. 128 px at 100 m cover a 12.8 km scene."""

    _TAG = 0
    _TERMS = ("deformation", "turbulence", "stratified", "ramp")

    def __init__(self, size: int = 128, seed: int = 0, classes: tuple[str, ...] | list[str] = SOURCE_TYPES,
                 pixel_spacing: float = 100.0):
        super().__init__(size, seed, classes, pixel_spacing)


class NoisyDeformationScenes(_SyntheticScenes):
    """Noisy ground-deformation scenes (paper §3.3): a source masked by turbulent and
    stratified atmosphere and decorrelation noise; ramps are taken out by time-series
    processing. 32 px at 400 m cover the same 12.8 km footprint as the interferograms."""

    _TAG = 1
    _TERMS = ("deformation", "turbulence", "stratified", "noise")

    def __init__(self, size: int = 32, seed: int = 0, classes: tuple[str, ...] | list[str] = SOURCE_TYPES,
                 pixel_spacing: float = 400.0):
        super().__init__(size, seed, classes, pixel_spacing)


def builtin_scenes(dataset: str, size: int, seed: int = 0
                   ) -> SyntheticInterferograms | NoisyDeformationScenes | SarOceanScenes:
    """The scene generator of a built-in dataset: InSAR phase (§3.2, §3.3) or Sentinel-1
    wave-mode σ0 in the TenGeoP classes (§3.1, :mod:`.sar_ocean`)."""
    if dataset not in DATASETS:
        raise InsarMlError(f"Unknown synthetic dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    if dataset == "sar":
        return SarOceanScenes(size=size, seed=seed)
    return (SyntheticInterferograms if dataset == "interferograms" else NoisyDeformationScenes)(size=size, seed=seed)


def write_synthetic_dataset(dataset: str, folder: str | os.PathLike, size: int, count: int, seed: int = 0,
                            wrapped: bool = False, progress: Progress | None = None) -> dict[str, int]:
    """Write samples 0..count-1 as ``<folder>/<class>/<index:05d>.tif`` and return the count per class.

    Layout: the class-subfolder layout :class:`RasterFolderDataset` reads. Band 1 is the
    unwrapped phase [rad]; with ``wrapped`` band 2 is its wrapped phase, so a pair for
    unwrapping never gets separated. For ``sar`` band 1 is σ0 (linear) and the subfolders
    are the TenGeoP classes (``F_pure_ocean_waves`` ...). Pixel grid without georeference.
    Each file appears whole or not at all; a cancel keeps the files finished before it.
    """
    # GDAL only here: the scenes themselves are generated on training servers without it.
    from ..raster_io import GridInfo, provenance, write_whole_raster
    from ..simulation_io import PIXEL_GRID_GEOTRANSFORM

    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InsarMlError(f"The number of samples must be a positive integer, got {count!r}.")
    scenes = builtin_scenes(dataset, size, seed)
    if wrapped and dataset == "sar":
        raise InsarMlError("WRAPPED applies to the InSAR datasets only: SAR backscatter has no phase. "
                           "Leave it off for the 'sar' dataset.")
    progress = progress or SilentProgress()
    folder = Path(folder)
    try:
        for name in scenes.class_names[:count]:
            (folder / name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InsarMlError(f"Cannot create the dataset folder {folder}: {exc.strerror}. "
                           "Pick a writable folder.") from None
    grid = GridInfo(scenes.size, scenes.size, PIXEL_GRID_GEOTRANSFORM, "")
    meta = {**provenance("insarml:synthetic_dataset", {"DATASET": dataset, "SIZE": size, "COUNT": count,
                                                       "SEED": seed, "WRAPPED": wrapped}),
            "INSARML_WAVELENGTH_M": str(WAVELENGTH), "INSARML_PIXEL_SPACING_M": str(scenes.pixel_spacing)}
    counts = dict.fromkeys(scenes.class_names, 0)
    for index in range(count):
        check_cancel(progress)
        scene, label = scenes.sample(index)
        name = scenes.class_names[label]
        if dataset == "sar":
            bands = [("NRCS sigma0 [linear]", scene)]
        else:
            bands = [("unwrapped phase [rad]", scene)] + ([("wrapped phase [rad]", wrap(scene))] if wrapped else [])
        write_whole_raster(folder / name / f"{index:05d}.tif", grid, bands,
                           {**meta, "INSARML_CLASS": name, "INSARML_LABEL": str(label), "INSARML_INDEX": str(index)},
                           progress)
        counts[name] += 1
        progress.set_progress(100.0 * (index + 1) / count)
    return counts
