"""Boxcar and Goldstein filtering of rasters of any size, through the tiling engine."""
from __future__ import annotations

import numpy as np

from .filters import boxcar, goldstein
from .inputs import InterferogramBlock, InterferogramSource
from .pipeline import OutputSpec, run_raster_pipeline
from .progress import Progress
from .raster_io import Window
from .tiling import BLEND_PHASE, BLEND_REAL, per_tile

PHASE = OutputSpec("filtered interferometric phase [rad], reference*conj(secondary)", BLEND_PHASE)
COHERENCE = OutputSpec("coherence magnitude [0-1]", BLEND_REAL)
DEFAULT_TILE_SIZE = 512


def exact_overlap(radius: int) -> int:
    """The smallest tile overlap with which an operator of this radius gives exactly the
    untiled result (radius ≤ overlap − overlap // 4, see core.tiling). Below 4 pixels there
    is no seam to cross-fade, so every pixel is written straight from one tile."""
    overlap = radius
    while overlap - overlap // 4 < radius:
        overlap += 1
    return overlap


def filter_boxcar_raster(source: InterferogramSource, window: int = 5, output_phase: str | None = None,
                         output_coherence: str | None = None, tile_size: int | None = None,
                         overlap: int | None = None, progress: Progress | None = None) -> dict[str, str]:
    """Moving-average phase and maximum-likelihood coherence (DeepInSAR eq. 5)."""
    tile_size = tile_size or DEFAULT_TILE_SIZE
    overlap = exact_overlap(window // 2) if overlap is None else overlap

    def process(block: InterferogramBlock, _: Window) -> dict[str, np.ndarray]:
        filtered, coherence = boxcar(block.interferogram, window, block.power_reference, block.power_secondary)
        return {"OUTPUT_PHASE": np.angle(filtered), "OUTPUT_COHERENCE": coherence}

    return run_raster_pipeline(
        source.grid, source.read, per_tile(process), {"OUTPUT_PHASE": PHASE, "OUTPUT_COHERENCE": COHERENCE},
        {"OUTPUT_PHASE": output_phase, "OUTPUT_COHERENCE": output_coherence},
        "insarml:filter_boxcar", {"WINDOW": window, "TILE_SIZE": tile_size, "OVERLAP": overlap},
        tile_size, overlap, progress)


def filter_goldstein_raster(source: InterferogramSource, alpha: float = 0.5, patch_size: int = 32,
                            patch_overlap: int | None = None, output_phase: str | None = None,
                            output_coherence: str | None = None, coherence_window: int = 5,
                            tile_size: int | None = None, overlap: int | None = None,
                            progress: Progress | None = None) -> dict[str, str]:
    """Goldstein–Baran adaptive filter; optionally a boxcar coherence beside it."""
    tile_size = tile_size or DEFAULT_TILE_SIZE
    overlap = patch_size if overlap is None else overlap

    def process(block: InterferogramBlock, window: Window) -> dict[str, np.ndarray]:
        filtered = goldstein(block.interferogram, alpha, patch_size, patch_overlap,
                             grid_origin=(window.row0, window.col0))
        out = {"OUTPUT_PHASE": np.angle(filtered)}
        if output_coherence:
            out["OUTPUT_COHERENCE"] = boxcar(block.interferogram, coherence_window,
                                             block.power_reference, block.power_secondary)[1]
        return out

    return run_raster_pipeline(
        source.grid, source.read, per_tile(process), {"OUTPUT_PHASE": PHASE, "OUTPUT_COHERENCE": COHERENCE},
        {"OUTPUT_PHASE": output_phase, "OUTPUT_COHERENCE": output_coherence},
        "insarml:filter_goldstein",
        {"ALPHA": alpha, "PATCH_SIZE": patch_size, "PATCH_OVERLAP": patch_overlap,
         "COHERENCE_WINDOW": coherence_window, "TILE_SIZE": tile_size, "OVERLAP": overlap},
        tile_size, overlap, progress)
