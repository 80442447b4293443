"""Scoring a filter result against a reference, streamed tile by tile.

With a reference (simulated truth, or a trusted product): phase RMSE on the wrapped
difference, phase SSIM, coherence RMSE. Without one (real data): the residue count and
density, the no-reference measure of how hard the phase is to unwrap. Every statistic is
a sum over tile cores, so any raster size runs in tile-sized memory and gives the same
numbers as a whole-raster computation.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from .errors import InsarMlError
from .metrics import phase_ssim_map, residues, wrap
from .progress import Progress, SilentProgress, check_cancel
from .raster_io import InputRaster, check_same_grid
from .tiling import TileGrid

# SSIM reaches 5 px and residues 1 px beyond a pixel: a halo of 8 makes tiles exact.
_HALO = 8
_TILE = 1024

METRIC_NAMES = ("PHASE_RMSE", "PHASE_SSIM", "COHERENCE_RMSE", "RESIDUE_COUNT", "RESIDUE_DENSITY",
                "REFERENCE_RESIDUE_COUNT")


def evaluate_rasters(estimated_phase: str, reference_phase: str | None = None,
                     estimated_coherence: str | None = None, reference_coherence: str | None = None,
                     progress: Progress | None = None) -> dict[str, float | int | None]:
    """Compute every metric the given inputs allow; absent ones are None."""
    progress = progress or SilentProgress()
    if bool(estimated_coherence) != bool(reference_coherence):
        raise InsarMlError("Give both ESTIMATED_COHERENCE and REFERENCE_COHERENCE to score coherence, or neither.")
    est = InputRaster(estimated_phase, "ESTIMATED_PHASE", "phase")
    ref = InputRaster(reference_phase, "REFERENCE_PHASE", "phase") if reference_phase else None
    coh = [InputRaster(estimated_coherence, "ESTIMATED_COHERENCE", "real"),
           InputRaster(reference_coherence, "REFERENCE_COHERENCE", "real")] if estimated_coherence else []
    grid = check_same_grid([r for r in (est, ref, *coh) if r is not None])

    sums = dict.fromkeys(("sq_phase", "ssim", "n_phase", "sq_coh", "n_coh", "res", "ref_res", "loops",
                          "ref_loops"), 0.0)
    tiles = TileGrid(grid.height, grid.width, _TILE + 2 * _HALO, _HALO).tiles()
    for done, (_, _, tile) in enumerate(tiles):
        check_cancel(progress)
        core = np.zeros((tile.read.rows, tile.read.cols), dtype=bool)
        core[tile.core.relative_to(tile.read)] = True
        phase, valid = est.read(tile.read)
        _add_residues(sums, "res", "loops", phase, valid, core)
        if ref is not None:
            truth, valid_ref = ref.read(tile.read)
            both = valid & valid_ref
            scored = both & core
            sums["sq_phase"] += float(np.sum(wrap(phase[scored] - truth[scored].astype(np.float64)) ** 2))
            sums["ssim"] += float(np.sum(phase_ssim_map(phase, truth, both)[scored]))
            sums["n_phase"] += int(np.count_nonzero(scored))
            _add_residues(sums, "ref_res", "ref_loops", truth, valid_ref, core)
        if coh:
            (c_est, v_est), (c_ref, v_ref) = (r.read(tile.core) for r in coh)
            ok = v_est & v_ref
            sums["sq_coh"] += float(np.sum((c_est[ok].astype(np.float64) - c_ref[ok]) ** 2))
            sums["n_coh"] += int(np.count_nonzero(ok))
        progress.set_progress(100.0 * (done + 1) / len(tiles))

    if sums["loops"] == 0:
        raise InsarMlError("ESTIMATED_PHASE has no valid pixel to score (all no-data?). Check the input.")
    if ref is not None and sums["n_phase"] == 0:
        raise InsarMlError("ESTIMATED_PHASE and REFERENCE_PHASE share no valid pixel. Check their no-data masks.")
    if coh and sums["n_coh"] == 0:
        raise InsarMlError("The coherence rasters share no valid pixel. Check their no-data masks.")
    return {
        "PHASE_RMSE": math.sqrt(sums["sq_phase"] / sums["n_phase"]) if ref is not None else None,
        "PHASE_SSIM": sums["ssim"] / sums["n_phase"] if ref is not None else None,
        "COHERENCE_RMSE": math.sqrt(sums["sq_coh"] / sums["n_coh"]) if coh else None,
        "RESIDUE_COUNT": int(sums["res"]),
        "RESIDUE_DENSITY": sums["res"] / sums["loops"],
        "REFERENCE_RESIDUE_COUNT": int(sums["ref_res"]) if ref is not None else None,
    }


def _add_residues(sums: dict, count_key: str, loops_key: str, phase: np.ndarray, valid: np.ndarray,
                  core: np.ndarray) -> None:
    """Add the residues of the loops whose top-left corner lies in the tile's core."""
    loops = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:] & core[:-1, :-1]
    sums[count_key] += int(np.count_nonzero(residues(phase)[loops]))
    sums[loops_key] += int(np.count_nonzero(loops))


def write_report(metrics: dict, inputs: dict[str, str | None], path: str) -> str:
    """Write the metrics as JSON, or as an HTML table when ``path`` ends in .html."""
    target = Path(path)
    report = {"metrics": metrics, "inputs": {k: v for k, v in inputs.items() if v}}
    if target.suffix.lower() in (".html", ".htm"):
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in metrics.items())
        ins = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in report["inputs"].items())
        text = (f"<html><head><meta charset='utf-8'><title>InSAR ML evaluation</title></head><body>"
                f"<h1>InSAR ML evaluation</h1><table border='1'><tr><th>metric</th><th>value</th></tr>{rows}"
                f"</table><h2>Inputs</h2><ul>{ins}</ul></body></html>")
    else:
        text = json.dumps(report, indent=2)
    tmp = target.with_name(f".{target.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return str(target)


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
