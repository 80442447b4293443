"""One code path from input rasters, through the tiling engine, to committed outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .errors import InsarMlError
from .progress import Progress, SilentProgress
from .raster_io import GridInfo, OutputBand, OutputRaster, OutputSet, Window, bounded_gdal_cache, provenance
from .tiling import Block, Process, run_tiled


@dataclass(frozen=True)
class OutputSpec:
    """An output the algorithm can write: its band description and how tiles blend."""

    description: str
    blend: str
    complex_values: bool = False


def run_raster_pipeline(
    grid: GridInfo,
    read: Callable[[Window], Block],
    process: Process,
    specs: Mapping[str, OutputSpec],
    destinations: Mapping[str, str | None],
    algorithm: str,
    parameters: dict,
    tile_size: int,
    overlap: int,
    progress: Progress | None = None,
    model: str | None = None,
    batch_size: int = 1,
    align: int = 1,
) -> dict[str, str]:
    """Tile ``process`` over the raster and write the requested outputs.

    Outputs whose destination is empty are not computed into a file. Either every
    requested output ends up complete under its name, or none exists.
    """
    progress = progress or SilentProgress()
    wanted = {name: path for name, path in destinations.items() if path}
    if not wanted:
        raise InsarMlError("No output requested: set at least one output file.")
    meta = provenance(algorithm, parameters, model)
    outputs = {name: OutputRaster(path, grid, [OutputBand(specs[name].description, specs[name].complex_values)], meta)
               for name, path in wanted.items()}
    with bounded_gdal_cache(), OutputSet(outputs) as opened:
        sinks = {name: (specs[name].blend, opened[name].write) for name in wanted}
        valid = run_tiled(grid.height, grid.width, read, process, sinks, tile_size, overlap, progress,
                          batch_size=batch_size, align=align)
        if valid == 0:
            raise InsarMlError("The input has no valid pixel (everything is no-data). Check the input and its no-data value.")
        return OutputSet(opened).commit(progress)
