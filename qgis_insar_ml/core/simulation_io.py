"""Write a simulated pair as GeoTIFFs (the ``insarml:simulate_pair`` algorithm's core)."""
from __future__ import annotations

import numpy as np

from .errors import InsarMlError
from .progress import Progress, SilentProgress, check_cancel
from .raster_io import GridInfo, OutputBand, OutputRaster, OutputSet, Window, provenance
from .realistic_simulator import simulate_realistic_pair
from .simulator import simulate_pair

# Simulated scenes have no georeference: pixel coordinates, north up, row 0 at the top.
PIXEL_GRID_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)

NOISE_MODELS = ("paper", "realistic")
# name: (description, complex values)
SIMULATION_OUTPUTS = {
    "OUTPUT_SLC_REFERENCE": ("reference SLC (noisy, complex; single-look only)", True),
    "OUTPUT_SLC_SECONDARY": ("secondary SLC (noisy, complex; single-look only)", True),
    "OUTPUT_INTERFEROGRAM": ("noisy interferogram reference*conj(secondary)", True),
    "OUTPUT_CLEAN_PHASE": ("clean interferometric phase [rad]", False),
    "OUTPUT_COHERENCE": ("true coherence", False),
    "OUTPUT_AMPLITUDE_REFERENCE": ("reference amplitude sqrt(<|s1|^2>) over the looks", False),
    "OUTPUT_AMPLITUDE_SECONDARY": ("secondary amplitude sqrt(<|s2|^2>) over the looks", False),
}
SLC_OUTPUTS = ("OUTPUT_SLC_REFERENCE", "OUTPUT_SLC_SECONDARY")


def simulate_pair_rasters(width: int, height: int, noise_level: str, fringe_level: str, strips: bool,
                          seed: int, destinations: dict[str, str | None], progress: Progress | None = None,
                          noise_model: str = "paper", looks: tuple[int, int] = (1, 1),
                          fringe_scale: float = 1.0) -> dict[str, str]:
    """Simulate one pair and write the requested outputs; all or nothing.

    ``noise_model`` "paper" is the DeepInSAR simulator (``noise_level``, ``fringe_level``,
    ``strips``); "realistic" is :func:`simulate_realistic_pair` (``looks``, ``fringe_scale``),
    whose no-data holes are NaN in every output.
    """
    progress = progress or SilentProgress()
    wanted = {name: path for name, path in destinations.items() if path}
    if noise_model not in NOISE_MODELS:
        raise InsarMlError(f"Unknown noise model {noise_model!r}; choose one of {', '.join(NOISE_MODELS)}.")
    multilooked = noise_model == "realistic" and tuple(looks) != (1, 1)
    if multilooked and any(name in wanted for name in SLC_OUTPUTS):
        raise InsarMlError(
            f"Looks {looks[0]}x{looks[1]} average several SLC pixels into one, so there are no single-look SLCs "
            "to write. Leave the reference and secondary SLC outputs empty (the multilooked amplitude outputs "
            "hold the brightness), or set LOOKS to 1x1.")
    parameters = {"WIDTH": width, "HEIGHT": height, "NOISE_MODEL": noise_model, "SEED": seed}
    if noise_model == "paper":
        parameters.update(NOISE_LEVEL=noise_level, FRINGE_LEVEL=fringe_level, STRIPS=strips)
        arrays = _paper_arrays(width, height, noise_level, fringe_level, strips, seed)
    else:
        parameters.update(LOOKS=f"{looks[0]}x{looks[1]}", FRINGE_SCALE=fringe_scale)
        arrays = _realistic_arrays(width, height, seed, tuple(looks), fringe_scale)
    grid = GridInfo(width, height, PIXEL_GRID_GEOTRANSFORM, "")
    meta = provenance("insarml:simulate_pair", parameters)
    outputs = {name: OutputRaster(path, grid, [OutputBand(*SIMULATION_OUTPUTS[name])], meta)
               for name, path in wanted.items()}
    with OutputSet(outputs) as opened:
        for done, (name, out) in enumerate(opened.items()):
            check_cancel(progress)
            out.write(Window(0, 0, height, width), arrays[name])
            progress.set_progress(50.0 * (done + 1) / len(opened))
        return OutputSet(opened).commit(progress)


def _paper_arrays(width: int, height: int, noise_level: str, fringe_level: str, strips: bool,
                  seed: int) -> dict[str, np.ndarray]:
    pair = simulate_pair(height, width, noise_level, fringe_level, strips, seed)
    return {"OUTPUT_SLC_REFERENCE": pair.reference, "OUTPUT_SLC_SECONDARY": pair.secondary,
            "OUTPUT_INTERFEROGRAM": pair.interferogram, "OUTPUT_CLEAN_PHASE": pair.clean_phase,
            "OUTPUT_COHERENCE": pair.coherence, "OUTPUT_AMPLITUDE_REFERENCE": np.abs(pair.reference),
            "OUTPUT_AMPLITUDE_SECONDARY": np.abs(pair.secondary)}


def _realistic_arrays(width: int, height: int, seed: int, looks: tuple[int, int],
                      fringe_scale: float) -> dict[str, np.ndarray]:
    scene = simulate_realistic_pair(height, width, seed, looks, fringe_scale)
    arrays = {"OUTPUT_INTERFEROGRAM": scene.interferogram, "OUTPUT_CLEAN_PHASE": scene.clean_phase,
              "OUTPUT_COHERENCE": scene.coherence, "OUTPUT_AMPLITUDE_REFERENCE": np.sqrt(scene.power_reference),
              "OUTPUT_AMPLITUDE_SECONDARY": np.sqrt(scene.power_secondary)}
    if scene.reference is not None:
        arrays.update(OUTPUT_SLC_REFERENCE=scene.reference, OUTPUT_SLC_SECONDARY=scene.secondary)
    # Holes are no-data: NaN, which every reader of the plugin masks (the float outputs also declare it).
    return {name: np.where(scene.valid, values, np.nan).astype(values.dtype) for name, values in arrays.items()}
