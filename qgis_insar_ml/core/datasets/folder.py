"""A folder of rasters as a training set (the TenGeoP-SARwv layout), and the way back to units.

Paper §3.1 and §5.2: each scene is randomly cropped (256 px), downscaled by area
averaging (128 px) and min-max normalised on its own, because diffusion models cope badly
with samples of very different ranges. The normalising (min, max) of every sample is kept,
so :class:`RangeRescaler` can put generated samples back into physical units by drawing
ranges from their empirical distribution.

The TenGeoP-SARwv release is read as it unpacks: ``GeoTIFF/<letter>/s1a-wv*.tiff``, one
float σ0 band per file, letters F–O named after the class (``F_pure_ocean_waves`` …).
Backscatter can be taken in decibels (10·log10 σ0 of the area average, with a floor);
the kept coefficients are then in dB.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from osgeo import gdal

from ..errors import InsarMlError
from .sar_ocean import SAR_CLASS_NAMES, TENGEOP_CLASSES

gdal.UseExceptions()

NORMALISATIONS = {"[0,1]": (0.0, 1.0), "[-1,1]": (-1.0, 1.0)}
DEFAULT_EXTENSIONS = (".tif", ".tiff", ".png", ".npy")
TENGEOP_FOLDER = "geotiff"           # the release's top folder (any case), above the letter folders
TENGEOP_NAMES = dict(zip((letter for letter, _ in TENGEOP_CLASSES), SAR_CLASS_NAMES))
DECIBEL_FLOOR = -40.0                # dB: below any ocean σ0 Sentinel-1 resolves, above log10(0) = −∞


def to_decibels(values: np.ndarray, floor_db: float = DECIBEL_FLOOR) -> np.ndarray:
    """10·log10 of linear backscatter, never below ``floor_db``: zeros and the small negative
    values thermal-noise removal leaves would otherwise give −∞ or NaN."""
    return 10.0 * np.log10(np.maximum(values, 10.0 ** (floor_db / 10.0)))


def dataset_root(root: Path) -> Path:
    """``root/GeoTIFF`` when ``root`` is the folder the TenGeoP-SARwv archive was unpacked in,
    so either that folder or its ``GeoTIFF`` folder can be chosen; ``root`` otherwise."""
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() == TENGEOP_FOLDER and any(
                (child / letter).is_dir() for letter in TENGEOP_NAMES):
            return child
    return root


def _target_range(normalise: str) -> tuple[float, float]:
    if normalise not in NORMALISATIONS:
        raise InsarMlError(f"Unknown normalisation {normalise!r}; choose one of {', '.join(NORMALISATIONS)}.")
    return NORMALISATIONS[normalise]


def min_max_scale(x: np.ndarray, target: tuple[float, float]) -> tuple[np.ndarray, float, float]:
    """``x`` mapped linearly onto ``target`` with its (min, max); a constant sample maps to the
    middle of the target range, since it has no contrast to stretch."""
    lo, hi = float(np.min(x)), float(np.max(x))
    a, b = target
    if hi > lo:
        return a + (x - lo) * ((b - a) / (hi - lo)), lo, hi
    return np.full_like(x, 0.5 * (a + b)), lo, hi


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix that averages each output cell over the input pixels it covers,
    partial pixels pro rata: a block mean when n_in is a multiple of n_out, and no aliasing
    of speckle otherwise (unlike point sampling)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pixel = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], pixel[None, :] + 1) - np.maximum(edges[:-1, None], pixel[None, :])
    return np.clip(overlap, 0.0, None) * (n_out / n_in)


def _real(values: np.ndarray) -> np.ndarray:
    """Amplitude of complex data (SLCs), the values themselves otherwise, as float64."""
    return np.abs(values) if np.iscomplexobj(values) else np.asarray(values, dtype=np.float64)


def raster_shape(path: Path) -> tuple[int, int, int]:
    """(channels, rows, cols) from the file header, without reading pixels."""
    if path.suffix.lower() == ".npy":
        shape = np.load(path, mmap_mode="r").shape
        if len(shape) not in (2, 3):
            raise ValueError(f"array of shape {shape}, expected (H, W) or (C, H, W)")
        return (1, *shape) if len(shape) == 2 else shape
    ds = gdal.Open(str(path))
    return ds.RasterCount, ds.RasterYSize, ds.RasterXSize


def _read_window(path: Path, row0: int, col0: int, rows: int, cols: int) -> np.ndarray:
    """(C, rows, cols) float64 of one window, no-data as NaN."""
    if path.suffix.lower() == ".npy":
        array = np.load(path, mmap_mode="r")
        array = array[None] if array.ndim == 2 else array
        return _real(np.array(array[:, row0:row0 + rows, col0:col0 + cols]))
    ds = gdal.Open(str(path))
    channels = []
    for i in range(ds.RasterCount):
        band = ds.GetRasterBand(i + 1)
        values = _real(band.ReadAsArray(col0, row0, cols, rows))
        nodata = band.GetNoDataValue()
        if nodata is not None:
            values[values == nodata] = np.nan
        channels.append(values)
    return np.stack(channels)


class RasterFolderDataset:
    """Scenes in ``root/<class>/...`` (any depth), labels numbered by sorted class name.

    Without class subfolders, the rasters in ``root`` form one unlabelled class
    (``labelled`` is False). When every class folder is a TenGeoP-SARwv letter (F–O), the
    classes take the TenGeoP names (``F_pure_ocean_waves`` …, same order), and ``root`` may
    be the folder above ``GeoTIFF``. GeoTIFF/PNG are read through GDAL, ``.npy`` as (H, W) or
    (C, H, W) arrays; complex values become amplitudes. Files whose name starts with a dot
    (e.g. rasters still being written) are ignored.

    Scenes smaller than ``crop`` are skipped, not padded: padding would add flat borders
    the model would learn as content. Skipped and unreadable files are listed in
    ``skipped``; a class whose files are all skipped keeps its name and label, so labels
    do not shift with the files present. No-data pixels take the mean of the valid pixels
    of their crop.

    ``dataset[i]`` is ``(tensor float32 (C, size, size), label, (min, max))``: a random crop,
    area-averaged to ``size``, with ``decibels`` converted by :func:`to_decibels` (after the
    average: speckle is averaged in power, as multilooking does), min-max normalised to
    ``normalise``; (min, max) are the coefficients that undo the normalisation (in dB with
    ``decibels``). Crops are a pure function of (seed, epoch, index); :meth:`set_epoch`
    draws new crops for the next epoch.
    """

    def __init__(self, root: str | os.PathLike, crop: int = 256, size: int = 128, normalise: str = "[0,1]",
                 seed: int = 0, extensions: Iterable[str] = DEFAULT_EXTENSIONS, decibels: bool = False,
                 decibel_floor: float = DECIBEL_FLOOR):
        for name, value in (("crop", crop), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InsarMlError(f"{name} must be a positive integer number of pixels, got {value!r}.")
        if size > crop:
            raise InsarMlError(f"The output size ({size} px) cannot exceed the crop ({crop} px): "
                               "samples are downscaled, never upsampled. Lower the size or raise the crop.")
        self.crop, self.size, self.seed, self.epoch = int(crop), int(size), int(seed), 0
        self._target = _target_range(normalise)
        self._weights = area_weights(self.crop, self.size)
        self.decibels, self.decibel_floor = bool(decibels), float(decibel_floor)
        self.root = Path(root)
        if not self.root.is_dir():
            raise InsarMlError(f"Dataset folder {self.root} does not exist. Choose the folder that holds "
                               "the class subfolders (or the rasters themselves).")
        self.root = dataset_root(self.root)
        suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}

        def rasters(folder: Path) -> list[Path]:
            return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                          and not any(part.startswith(".") for part in p.relative_to(self.root).parts))

        classes = [(d.name, rasters(d)) for d in sorted(self.root.iterdir())
                   if d.is_dir() and not d.name.startswith(".")]
        classes = [(name, files) for name, files in classes if files]
        self.labelled = bool(classes)
        if not self.labelled:
            classes = [(self.root.name, rasters(self.root))]
        self.class_names = [name for name, _ in classes]
        if self.labelled and all(name in TENGEOP_NAMES for name in self.class_names):
            self.class_names = [TENGEOP_NAMES[name] for name in self.class_names]
        self.files: list[Path] = []
        self.labels: list[int] = []
        self.skipped: list[tuple[Path, str]] = []
        self._shapes: list[tuple[int, int]] = []
        self.channels = 0
        for label, (_, files) in enumerate(classes):
            for path in files:
                self._add(path, label)
        if not self.files:
            found = sum(len(files) for _, files in classes)
            why = f"; e.g. {self.skipped[0][0].name}: {self.skipped[0][1]}" if self.skipped else ""
            raise InsarMlError(f"No usable raster in {self.root}: {found} file(s) with extension "
                               f"{', '.join(sorted(suffixes))} found{why}. Put rasters of at least "
                               f"{self.crop}×{self.crop} pixels there, or lower the crop.")
        self._coefficients: dict[tuple[int, int], tuple[float, float]] = {}

    def _add(self, path: Path, label: int) -> None:
        try:
            channels, rows, cols = raster_shape(path)
        except (RuntimeError, ValueError, OSError) as exc:
            self.skipped.append((path, f"unreadable ({exc})"))
            return
        if min(rows, cols) < self.crop:
            self.skipped.append((path, f"{cols}×{rows} pixels, smaller than the {self.crop}-pixel crop"))
            return
        if self.channels and channels != self.channels:
            raise InsarMlError(f"{path} has {channels} band(s) but {self.files[0]} has {self.channels}. "
                               "All scenes of a dataset must have the same number of bands.")
        self.channels = channels
        self.files.append(path)
        self.labels.append(label)
        self._shapes.append((rows, cols))

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Draw new crops: without this every epoch would see the same ones."""
        self.epoch = int(epoch)

    def scene(self, index: int) -> np.ndarray:
        """(C, size, size) float64: this epoch's random crop of scene ``index``, area-averaged,
        in the file's own units (no decibels yet), no-data filled with the crop's mean."""
        rows, cols = self._shapes[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        row0, col0 = int(rng.integers(0, rows - self.crop + 1)), int(rng.integers(0, cols - self.crop + 1))
        block = _read_window(self.files[index], row0, col0, self.crop, self.crop)
        invalid = ~np.isfinite(block)
        if invalid.any():
            block[invalid] = np.mean(block[~invalid]) if not invalid.all() else 0.0
        return self._weights @ block @ self._weights.T

    def in_units(self, values: np.ndarray, index: int) -> np.ndarray:
        """``values`` of scene ``index`` in the units the model learns: decibels or unchanged."""
        if not self.decibels:
            return values
        if np.all(values < 0):
            raise InsarMlError(f"{self.files[index]} holds only negative values, so it is not linear backscatter: "
                               "it looks like it is in dB already. Train without the decibel option.")
        return to_decibels(values, self.decibel_floor)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, tuple[float, float]]:
        scaled, lo, hi = min_max_scale(self.in_units(self.scene(index), index), self._target)
        self._coefficients[(self.epoch, index)] = (lo, hi)
        return torch.from_numpy(scaled.astype(np.float32)), self.labels[index], (lo, hi)

    def coefficients(self) -> list[tuple[float, float]]:
        """The (min, max) of every sample served so far in this process, one per (epoch, index)."""
        return list(self._coefficients.values())


class RangeRescaler:
    """Generated samples back in physical units, with ranges drawn from the training set's.

    Each sample gets a (min, max) pair drawn, as a pair, from the empirical coefficients, so
    the spread of ranges (and the min-max dependence) of the training data is reproduced.
    With ``stretch``, a sample is first stretched to the full normalised range: diffusion
    models often generate samples that explore only part of it (paper §5.2).
    """

    def __init__(self, ranges: np.ndarray, seed: int = 0):
        ranges = np.asarray(ranges, dtype=np.float64)
        if ranges.ndim != 2 or ranges.shape[1] != 2 or len(ranges) == 0:
            raise InsarMlError("No normalising coefficients to draw from: "
                               "give the (min, max) pairs of the training samples.")
        if not np.isfinite(ranges).all() or (ranges[:, 1] < ranges[:, 0]).any():
            raise InsarMlError("Normalising coefficients must be finite (min, max) pairs with min ≤ max.")
        self.ranges = ranges
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_coefficients(cls, coefficients: Iterable[tuple[float, float]], seed: int = 0) -> "RangeRescaler":
        return cls(np.array(list(coefficients), dtype=np.float64).reshape(-1, 2), seed)

    def draw(self, n: int) -> np.ndarray:
        """(n, 2) (min, max) pairs resampled from the empirical ones."""
        return self.ranges[self._rng.integers(0, len(self.ranges), n)]

    def rescale(self, samples: np.ndarray | torch.Tensor, normalise: str = "[0,1]",
                stretch: bool = False) -> np.ndarray:
        """float32 samples (N, ...) in physical units, one drawn range per sample."""
        if isinstance(samples, torch.Tensor):
            samples = samples.detach().cpu().numpy()
        x = np.asarray(samples, dtype=np.float64)
        a, b = _target_range(normalise)
        if stretch:
            x = np.stack([min_max_scale(s, (a, b))[0] for s in x])
        lo, hi = (v.reshape((-1,) + (1,) * (x.ndim - 1)) for v in self.draw(len(x)).T)
        return (lo + (x - a) * ((hi - lo) / (b - a))).astype(np.float32)
