"""Training batches for PDMs: built-in synthetic scenes or a folder of rasters.

Every sample is min-max normalised on its own to [−1, 1] (paper §3.2, §5.2) and its
(min, max) is kept, so generated samples can be rescaled to physical units by drawing
coefficients from the training set's empirical distribution. A super-resolution batch
holds the high-resolution scene and its 2×2 area average, both normalised with the
low-resolution image's coefficients: at generation only the low-resolution image is
known, so it alone can fix the scale.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from ..datasets.folder import RasterFolderDataset, min_max_scale, to_decibels
from ..datasets.synthetic import DATASETS, builtin_scenes
from ..errors import InsarMlError

NORMALISED_RANGE = (-1.0, 1.0)
SR_SCALE = 2
VALIDATION_OFFSET = 10 ** 9          # synthetic indices of the validation set: never trained on
FOLDER_VALIDATION_EVERY = 5          # folder datasets: every 5th file of a class is held out (80/20)


class PdmBatch(NamedTuple):
    x0: torch.Tensor                  # (N, C, H, W) in [−1, 1]
    labels: torch.Tensor | None       # (N,) long, None for unconditional data
    low_res: torch.Tensor | None      # (N, C, H/2, W/2) for super-resolution
    ranges: np.ndarray                # (N, 2) the (min, max) that undo the normalisation


def downsample(image: np.ndarray, factor: int = SR_SCALE) -> np.ndarray:
    """Area average over ``factor``×``factor`` blocks of the last two axes (sizes must divide)."""
    *lead, h, w = image.shape
    return image.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def normalise_with(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    a, b = NORMALISED_RANGE
    return (a + (image - lo) * ((b - a) / max(hi - lo, 1e-12))).astype(np.float32)


def super_resolution_pair(high: np.ndarray, in_units: Callable[[np.ndarray], np.ndarray] | None = None
                          ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(high, low, min, max): both normalised with the low-resolution image's range.

    ``in_units`` (e.g. to decibels) is applied after the 2×2 average, so the low image is
    made exactly as the base model's training samples are: area average, then units.
    """
    low = downsample(high)
    if in_units is not None:
        high, low = in_units(high), in_units(low)
    lo, hi = float(low.min()), float(low.max())
    return normalise_with(high, lo, hi), normalise_with(low, lo, hi), lo, hi


def _even_crop_offset(rng: np.random.Generator, size: int, crop: int) -> tuple[int, int]:
    """A random top-left corner on the even lattice, so the crop's 2×2 blocks stay aligned."""
    span = (size - crop) // SR_SCALE
    return tuple(int(v) * SR_SCALE for v in rng.integers(0, span + 1, 2))


def _stack(images: list[np.ndarray], labels: list[int] | None, lows: list[np.ndarray] | None,
           ranges: list[tuple[float, float]]) -> PdmBatch:
    def tensor(items: list[np.ndarray]) -> torch.Tensor:
        arr = np.stack(items).astype(np.float32)
        return torch.from_numpy(arr[:, None] if arr.ndim == 3 else arr)

    return PdmBatch(tensor(images), None if labels is None else torch.tensor(labels, dtype=torch.long),
                    None if lows is None else tensor(lows), np.asarray(ranges, dtype=np.float64).reshape(-1, 2))


SAR_ZOOM = 2  # 'sar': scenes of 2·size at 50 m, area-averaged to size at 100 m (the paper's 256 → 128)


class SyntheticPdmData:
    """Batches of the built-in synthetic scenes (:mod:`..datasets.synthetic`), class = source
    type, or TenGeoP class for ``sar``.

    ``sar`` scenes are learned in dB (10·log10 σ0, floor as :func:`to_decibels`), so the
    ranges and generated samples are in dB; for the base model they are made at twice the
    size (50 m pixels) and area-averaged 2×2 to 100 m before the dB, as the paper crops 256
    and downsizes to 128. For super-resolution, scenes are made at ``size`` (50 m for
    ``sar``) and the model learns from random ``crop``-pixel windows of them: the U-Net has
    no attention in that case, so it is fully convolutional and generates the whole scene
    at inference.
    """

    def __init__(self, dataset: str, size: int, seed: int, super_resolution: bool = False, crop: int | None = None):
        if dataset not in DATASETS:
            raise InsarMlError(f"Unknown synthetic dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
        self.decibels = dataset == "sar"
        self.zoom = SAR_ZOOM if self.decibels and not super_resolution else 1
        self.scenes = builtin_scenes(dataset, size * self.zoom, seed)
        self.dataset, self.seed, self.super_resolution = dataset, seed, super_resolution
        self.crop = crop if super_resolution and crop else size
        if super_resolution and (size % SR_SCALE or self.crop % (2 * SR_SCALE) or self.crop > size):
            raise InsarMlError(f"Super-resolution scenes need an even size and a crop ≤ size divisible by 4 "
                               f"(size {size}, crop {self.crop}).")
        self.classes: list[str] | None = list(self.scenes.class_names)

    def _sample(self, index: int) -> tuple[np.ndarray, np.ndarray | None, int, float, float]:
        scene, label = self.scenes.sample(index)
        if not self.super_resolution:
            if self.zoom > 1:
                scene = downsample(scene, self.zoom)
            if self.decibels:
                scene = to_decibels(scene)
            scaled, lo, hi = min_max_scale(scene, NORMALISED_RANGE)
            return scaled.astype(np.float32), None, label, lo, hi
        if self.crop < scene.shape[0]:
            r, c = _even_crop_offset(np.random.default_rng([self.seed, index, 7]), scene.shape[0], self.crop)
            scene = scene[r:r + self.crop, c:c + self.crop]
        high, low, lo, hi = super_resolution_pair(scene, to_decibels if self.decibels else None)
        return high, low, label, lo, hi

    def batch_from(self, first: int, n: int) -> PdmBatch:
        parts = [self._sample(first + i) for i in range(n)]
        return _stack([p[0] for p in parts], None if self.super_resolution else [p[2] for p in parts],
                      [p[1] for p in parts] if self.super_resolution else None, [(p[3], p[4]) for p in parts])

    def batch(self, draw: int, n: int) -> PdmBatch:
        """The ``draw``-th training batch of ``n`` (draws never overlap, so no sample repeats)."""
        return self.batch_from(draw * n, n)

    def validation(self, n: int) -> PdmBatch:
        return self.batch_from(VALIDATION_OFFSET, n)

    def describe(self) -> str:
        if self.decibels:
            size = self.scenes.size // self.zoom
            spacing = self.scenes.pixel_spacing * self.zoom
            return (f"built-in synthetic 'sar' scenes (Sentinel-1 wave-mode σ0 in the TenGeoP classes), {size}² px "
                    f"at {spacing:g} m, in dB (10·log10 σ0), seed {self.seed}")
        return f"built-in synthetic '{self.dataset}' scenes, {self.scenes.size}² px, seed {self.seed}"


class FolderPdmData:
    """Batches of a raster folder (TenGeoP-SARwv layout: one subfolder per class).

    Crops of ``crop`` pixels are area-averaged to the model size, as the paper crops 256
    and downsizes to 128; ``decibels`` trains on 10·log10 of the averages (SAR σ0). Every
    5th file of each class is held out for validation (the paper's 80/20 per class), and
    at least one of every class with two files or more, so each class is validated.
    """

    def __init__(self, root: str | os.PathLike, size: int, crop: int, seed: int, super_resolution: bool = False,
                 decibels: bool = False):
        self.source = RasterFolderDataset(root, crop=crop, size=size, normalise="[-1,1]", seed=seed,
                                          decibels=decibels)
        if self.source.channels != 1:
            raise InsarMlError(f"The rasters in {root} have {self.source.channels} bands; PDM training uses "
                               "single-band scenes. Write one band per file (e.g. with gdal_translate -b 1).")
        self.root, self.seed, self.super_resolution = Path(root), seed, super_resolution
        self.decibels = bool(decibels)
        if super_resolution and size % SR_SCALE:
            raise InsarMlError(f"Super-resolution needs an even size, not {size}.")
        self.classes = self.source.class_names if self.source.labelled and not super_resolution else None
        by_class: dict[int, list[int]] = {}
        for index, label in enumerate(self.source.labels):
            by_class.setdefault(label, []).append(index)
        self.validation_indices = [i for members in by_class.values() for k, i in enumerate(members)
                                   if k % FOLDER_VALIDATION_EVERY == FOLDER_VALIDATION_EVERY - 1
                                   or (k == len(members) - 1 and 2 <= len(members) < FOLDER_VALIDATION_EVERY)]
        held = set(self.validation_indices)
        self.train_indices = [i for i in range(len(self.source)) if i not in held] or list(range(len(self.source)))

    def _from_indices(self, indices: list[int]) -> PdmBatch:
        images, lows, labels, ranges = [], [], [], []
        for index in indices:
            if self.super_resolution:    # scaled by the low-resolution image's range
                image, low, lo, hi = super_resolution_pair(
                    self.source.scene(index)[0], lambda values: self.source.in_units(values, index))
                lows.append(low)
            else:
                scaled, _, (lo, hi) = self.source[index]
                image = scaled.numpy()[0]
            images.append(image)
            labels.append(self.source.labels[index])
            ranges.append((lo, hi))
        return _stack(images, labels if self.classes else None, lows if self.super_resolution else None, ranges)

    def batch(self, draw: int, n: int) -> PdmBatch:
        rng = np.random.default_rng([self.seed, draw])
        epoch = draw * n // max(1, len(self.train_indices))
        self.source.set_epoch(epoch)
        return self._from_indices([self.train_indices[int(i)] for i in rng.integers(0, len(self.train_indices), n)])

    def validation(self, n: int) -> PdmBatch:
        self.source.set_epoch(0)
        indices = self.validation_indices or self.train_indices
        return self._from_indices([indices[k % len(indices)] for k in range(n)])

    def describe(self) -> str:
        units = f", in dB (floor {self.source.decibel_floor:g} dB)" if self.source.decibels else ""
        return f"raster folder {self.root} ({len(self.source)} scenes{units}, classes: {self.classes or 'none'})"


def pdm_data(dataset: str, size: int, seed: int, super_resolution: bool = False, crop: int | None = None,
             folder_crop: int | None = None, decibels: bool = False) -> SyntheticPdmData | FolderPdmData:
    """The built-in dataset of that name, or the raster folder at that path (``decibels``: for folders;
    the built-in 'sar' scenes are in dB anyway)."""
    if dataset in DATASETS:
        if decibels and dataset != "sar":  # the built-in 'sar' scenes are learned in dB anyway
            raise InsarMlError(f"Decibels are for folders of SAR backscatter (σ0), not the built-in '{dataset}' "
                               "scenes. Drop the decibel option or give a folder.")
        return SyntheticPdmData(dataset, size, seed, super_resolution, crop)
    if not Path(dataset).is_dir():
        raise InsarMlError(f"DATASET '{dataset}' is neither a built-in dataset ({', '.join(DATASETS)}) nor a "
                           "folder of rasters. Give one of those names or an existing folder.")
    return FolderPdmData(dataset, size, folder_crop or size, seed, super_resolution, decibels)
