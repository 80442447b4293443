"""Generated scenes on disk: placement on the map, one GeoTIFF per sample, shipped models.

Layout of a generated folder: ``<prefix>_<index:04d>_<class>.tif`` with band 1 the
sample (radians when rescaled, else the model's normalised units) and, when wrapped
versions are asked for, band 2 its wrapped phase: the same pairing as the synthetic
datasets, so a pair for unwrapping networks never gets separated.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...paths import data_dir
from ..datasets.synthetic import wrap
from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, SubProgress, check_cancel
from ..raster_io import GridInfo, InputRaster, Window, provenance, write_whole_raster
from ..simulation_io import PIXEL_GRID_GEOTRANSFORM
from .data import SR_SCALE
from .generate import superresolve
from .pdm_file import LoadedPdm

SHIPPED_PDMS = {
    "interferograms": "pdm_interferograms_64.safetensors",
    "deformation": "pdm_deformation_32.safetensors",
    "superresolution": "pdm_superres_2x.safetensors",
}


def shipped_pdm(kind: str) -> Path:
    path = data_dir("models") / SHIPPED_PDMS[kind]
    if not path.is_file():
        raise InsarMlError(f"The shipped model {path.name} is missing from {path.parent}. Reinstall the plugin "
                           "or choose a model file.")
    return path


def placement(rows: int, cols: int, *, extent: tuple[float, float, float, float] | None = None,
              pixel_size: float | None = None, crs_wkt: str = "") -> GridInfo:
    """The grid of a generated scene.

    - ``extent`` (xmin, ymin, xmax, ymax) only: the scene fills it;
    - ``extent`` and ``pixel_size``: square pixels, centred on the extent's centre;
    - ``pixel_size`` only: square pixels from (0, 0), no CRS;
    - neither: the plain pixel grid (no georeferencing).
    """
    if pixel_size is not None and not pixel_size > 0:
        raise InsarMlError(f"PIXEL_SIZE must be positive, not {pixel_size}.")
    if extent is None:
        if pixel_size is None:
            return GridInfo(cols, rows, PIXEL_GRID_GEOTRANSFORM, "")
        return GridInfo(cols, rows, (0.0, pixel_size, 0.0, 0.0, 0.0, -pixel_size), crs_wkt)
    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    if not (xmax > xmin and ymax > ymin):
        raise InsarMlError(f"The extent {xmin}, {ymin}, {xmax}, {ymax} is empty; choose an extent with a width "
                           "and a height.")
    if pixel_size is None:
        return GridInfo(cols, rows, (xmin, (xmax - xmin) / cols, 0.0, ymax, 0.0, -(ymax - ymin) / rows), crs_wkt)
    cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
    return GridInfo(cols, rows, (cx - 0.5 * cols * pixel_size, pixel_size, 0.0, cy + 0.5 * rows * pixel_size,
                                 0.0, -pixel_size), crs_wkt)


def superresolved_grid(grid: GridInfo) -> GridInfo:
    """The grid of a 2× super-resolved raster: the same extent and CRS, half the pixel size."""
    gt = grid.geotransform or PIXEL_GRID_GEOTRANSFORM
    return GridInfo(grid.width * SR_SCALE, grid.height * SR_SCALE,
                    (gt[0], gt[1] / SR_SCALE, gt[2] / SR_SCALE, gt[3], gt[4] / SR_SCALE, gt[5] / SR_SCALE),
                    grid.crs_wkt)


QUANTITIES = {"rad": "unwrapped phase", "dB": "SAR backscatter σ0"}


def physical_units(card: dict) -> str:
    """What RESCALE maps a model's samples to: dB for SAR backscatter models (their card says so), else radians."""
    return "dB" if (card.get("normalisation") or {}).get("units") == "dB" else "rad"


def check_wrapping(rescaled: bool, wrapped: bool, units: str = "rad") -> None:
    if wrapped and units != "rad":
        raise InsarMlError(f"WRAPPED adds a wrapped phase, but this model generates {QUANTITIES[units]} in "
                           f"{units}. Untick WRAPPED.")
    if wrapped and not rescaled:
        raise InsarMlError("WRAPPED needs RESCALE: wrapping is defined on phases in radians, and unrescaled "
                           "samples are in the model's normalised units. Tick RESCALE too.")


def write_samples(folder: str | os.PathLike, samples: np.ndarray, labels: list[int] | None,
                  classes: list[str] | None, grid: GridInfo, *, rescaled: bool, wrapped: bool,
                  parameters: dict, model: str, prefix: str = "pdm", physical: str = "rad",
                  progress: Progress | None = None) -> list[Path]:
    """Write each sample (N, 1, H, W) as its own GeoTIFF; returns the paths in sample order.

    ``physical``: the units of rescaled samples (:func:`physical_units` of the model's card)."""
    check_wrapping(rescaled, wrapped, physical)
    progress = progress or SilentProgress()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InsarMlError(f"Cannot create the output folder {folder}: {exc.strerror}. Pick a writable folder.") from None
    units = physical if rescaled else "normalised [-1, 1]"
    meta = {**provenance("insarml:pdm_generate", parameters, model), "INSARML_UNITS": units}
    paths = []
    for index, sample in enumerate(samples):
        check_cancel(progress)
        name = classes[labels[index]] if labels is not None and classes else "sample"
        label_meta = {"INSARML_CLASS": name, "INSARML_LABEL": str(labels[index])} if labels is not None else {}
        values = sample[0]
        bands = [(f"generated {QUANTITIES[physical] if rescaled else 'scene'} [{units}]", values)]
        if wrapped:
            bands.append(("wrapped phase [rad]", wrap(values)))
        path = folder / f"{prefix}_{index:04d}_{name}.tif"
        paths.append(write_whole_raster(path, grid, bands, {**meta, **label_meta, "INSARML_INDEX": str(index)},
                                        progress))
        progress.set_progress(100.0 * (index + 1) / len(samples))
    return paths


def superresolve_raster(pdm: LoadedPdm, source: str, output: str | os.PathLike, model: str, *,
                        sampler: str, steps: int, seed: int, options: dict | None = None,
                        progress: Progress | None = None) -> Path:
    """Band 1 of ``source`` at twice the resolution, written to ``output`` (same extent, half the pixel size)."""
    progress = progress or SilentProgress()
    raster = InputRaster(source, "INPUT", "real", band=1)
    grid = raster.grid
    values, valid = raster.read(Window(0, 0, grid.height, grid.width))
    high = superresolve(pdm, np.where(valid, values, np.nan), sampler=sampler, steps=steps, seed=seed,
                        options=options, progress=SubProgress(progress, 0, 95))
    meta = provenance("insarml:pdm_superresolve", {"INPUT": source, "SAMPLER": sampler, "STEPS": steps,
                                                    "SEED": seed}, model)
    return write_whole_raster(output, superresolved_grid(grid),
                              [(f"super-resolved {raster.dataset.GetRasterBand(1).GetDescription() or 'band 1'}",
                                high)], meta, SubProgress(progress, 95, 5))
