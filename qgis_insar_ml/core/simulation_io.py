"""Write a simulated pair as GeoTIFFs (the ``insarml:simulate_pair`` algorithm's core)."""
from __future__ import annotations

from .progress import Progress, SilentProgress, check_cancel
from .raster_io import GridInfo, OutputBand, OutputRaster, OutputSet, Window, provenance
from .simulator import simulate_pair

# Simulated scenes have no georeference: pixel coordinates, north up, row 0 at the top.
PIXEL_GRID_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)

SIMULATION_OUTPUTS = {
    "OUTPUT_SLC_REFERENCE": ("reference SLC (noisy, complex)", "reference", True),
    "OUTPUT_SLC_SECONDARY": ("secondary SLC (noisy, complex)", "secondary", True),
    "OUTPUT_INTERFEROGRAM": ("noisy interferogram reference*conj(secondary)", "interferogram", True),
    "OUTPUT_CLEAN_PHASE": ("clean interferometric phase [rad]", "clean_phase", False),
    "OUTPUT_COHERENCE": ("true coherence A^2/(A^2+2 sigma^2)", "coherence", False),
}


def simulate_pair_rasters(width: int, height: int, noise_level: str, fringe_level: str, strips: bool,
                          seed: int, destinations: dict[str, str | None],
                          progress: Progress | None = None) -> dict[str, str]:
    """Simulate one pair and write the requested outputs; all or nothing."""
    progress = progress or SilentProgress()
    pair = simulate_pair(height, width, noise_level, fringe_level, strips, seed)
    grid = GridInfo(width, height, PIXEL_GRID_GEOTRANSFORM, "")
    meta = provenance("insarml:simulate_pair", {"WIDTH": width, "HEIGHT": height, "NOISE_LEVEL": noise_level,
                                                 "FRINGE_LEVEL": fringe_level, "STRIPS": strips, "SEED": seed})
    wanted = {name: path for name, path in destinations.items() if path}
    outputs = {name: OutputRaster(path, grid, [OutputBand(SIMULATION_OUTPUTS[name][0], SIMULATION_OUTPUTS[name][2])], meta)
               for name, path in wanted.items()}
    with OutputSet(outputs) as opened:
        for done, (name, out) in enumerate(opened.items()):
            check_cancel(progress)
            out.write(Window(0, 0, height, width), getattr(pair, SIMULATION_OUTPUTS[name][1]))
            progress.set_progress(50.0 * (done + 1) / len(opened))
        return OutputSet(opened).commit(progress)
