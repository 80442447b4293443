"""The tiling engine every raster algorithm runs through.

The raster is partitioned into *cores* of nearly equal size. Each tile is its core plus
``overlap`` pixels of context (the halo) on every side, clipped to the raster. A tile's
result is kept on its core widened by a seam of ``overlap // 4`` pixels into each
neighbour; across the seam, neighbouring results are cross-faded with linear weights
that sum to one. So:

- any operator whose radius is at most ``overlap - overlap // 4`` gives exactly the
  untiled result (both sides of a seam agree), and the cross-fade only hides the edge
  effects of operators that reach further (CNNs, Goldstein patches);
- phases are blended as unit phasors and complex values as complex values, never as
  angles;
- non-finite results (no-data) carry no weight.

Results are accumulated per *cell* (the pieces into which core and seam boundaries cut
the raster) and a cell is written as soon as every tile that touches it is done. Peak
memory is a few tiles plus one seam-high strip, independent of the raster's height.
Progress and cancel are checked before every tile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

import numpy as np

from .errors import InsarMlError
from .progress import Progress, SilentProgress, check_cancel
from .raster_io import Window

BLEND_REAL, BLEND_COMPLEX, BLEND_PHASE = "real", "complex", "phase"


class Block(Protocol):
    """What a reader hands to the processing function: at least a validity mask."""

    valid: np.ndarray


@dataclass(frozen=True)
class Tile:
    read: Window       # core + halo, clipped to the raster: what the function sees
    core: Window       # this tile's share of the partition
    keep: Window       # core + seams: what this tile contributes


@dataclass(frozen=True)
class _Axis:
    """Core boundaries and seam layout along one axis."""

    bounds: list[int]
    seam: int
    halo: int
    size: int

    def tile_span(self, i: int) -> tuple[int, int, int, int, int, int]:
        """(read0, read1, core0, core1, keep0, keep1) of tile i."""
        c0, c1 = self.bounds[i], self.bounds[i + 1]
        k0 = c0 - self.seam if i > 0 else c0
        k1 = c1 + self.seam if i < len(self.bounds) - 2 else c1
        return max(0, c0 - self.halo), min(self.size, c1 + self.halo), c0, c1, k0, k1

    def cells(self) -> list[tuple[int, int, tuple[int, ...]]]:
        """(start, stop, tiles covering it) for every cell along the axis."""
        n = len(self.bounds) - 1
        out: list[tuple[int, int, tuple[int, ...]]] = []
        for i in range(n):
            lo = self.bounds[i] + (self.seam if i > 0 else 0)
            hi = self.bounds[i + 1] - (self.seam if i < n - 1 else 0)
            if hi > lo:
                out.append((lo, hi, (i,)))
            if i < n - 1:
                b = self.bounds[i + 1]
                if self.seam:
                    out.append((b - self.seam, b + self.seam, (i, i + 1)))
        return out

    def weights(self, i: int, start: int, stop: int) -> np.ndarray:
        """Tile i's cross-fade weights on [start, stop): 1 inside its core, a ramp on seams."""
        pos = np.arange(start, stop, dtype=np.float64) + 0.5
        w = np.ones(stop - start)
        if self.seam:
            lo, hi = self.bounds[i], self.bounds[i + 1]
            if i > 0:
                w = np.where(pos < lo + self.seam, (pos - (lo - self.seam)) / (2 * self.seam), w)
            if i < len(self.bounds) - 2:
                w = np.where(pos > hi - self.seam, ((hi + self.seam) - pos) / (2 * self.seam), w)
        return np.clip(w, 0.0, 1.0)


def _axis(size: int, tile_size: int, overlap: int, align: int = 1) -> _Axis:
    """Nearly equal cores; with ``align`` > 1 every core bound and read-window start is a
    multiple of it (networks that pixel-unshuffle by ``align`` are shift-invariant only
    on that lattice)."""
    halo = align * math.ceil(overlap / align)
    core = tile_size - 2 * halo
    n = max(1, min(math.ceil(size / core), size // align))
    bounds = [align * round(i * size / n / align) for i in range(n)] + [size]
    seam = overlap // 4 if n > 1 else 0
    return _Axis(bounds, seam, halo, size)


def check_tiling(tile_size: int, overlap: int) -> None:
    if overlap < 0:
        raise InsarMlError(f"OVERLAP must be ≥ 0 pixels, got {overlap}.")
    if tile_size < 2 * overlap + 16:
        raise InsarMlError(
            f"TILE_SIZE {tile_size} is too small for OVERLAP {overlap}: each tile needs at least "
            f"16 pixels of its own besides 2 × overlap. Use TILE_SIZE ≥ {2 * overlap + 16}."
        )


@dataclass
class _Cell:
    window: Window
    remaining: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


class TileGrid:
    """The tiles and cells of one raster."""

    def __init__(self, height: int, width: int, tile_size: int = 512, overlap: int = 32, align: int = 1):
        check_tiling(tile_size, align * math.ceil(overlap / align))
        self.height, self.width = height, width
        self._rows, self._cols = _axis(height, tile_size, overlap, align), _axis(width, tile_size, overlap, align)
        self._row_cells, self._col_cells = self._rows.cells(), self._cols.cells()

    @property
    def shape(self) -> tuple[int, int]:
        return len(self._rows.bounds) - 1, len(self._cols.bounds) - 1

    def tile(self, ty: int, tx: int) -> Tile:
        r0, r1, rc0, rc1, rk0, rk1 = self._rows.tile_span(ty)
        c0, c1, cc0, cc1, ck0, ck1 = self._cols.tile_span(tx)
        return Tile(Window(r0, c0, r1 - r0, c1 - c0), Window(rc0, cc0, rc1 - rc0, cc1 - cc0),
                    Window(rk0, ck0, rk1 - rk0, ck1 - ck0))

    def tiles(self) -> list[tuple[int, int, Tile]]:
        ny, nx = self.shape
        return [(ty, tx, self.tile(ty, tx)) for ty in range(ny) for tx in range(nx)]

    def cells_of(self, ty: int, tx: int) -> list[tuple[tuple[int, int], Window, int]]:
        """The cells tile (ty, tx) contributes to: (cell key, window, number of contributors)."""
        out = []
        for iy, (r0, r1, ys) in enumerate(self._row_cells):
            if ty not in ys:
                continue
            for ix, (c0, c1, xs) in enumerate(self._col_cells):
                if tx in xs:
                    out.append(((iy, ix), Window(r0, c0, r1 - r0, c1 - c0), len(ys) * len(xs)))
        return out

    def weights(self, ty: int, tx: int, window: Window) -> np.ndarray:
        wy = self._rows.weights(ty, window.row0, window.row0 + window.rows)
        wx = self._cols.weights(tx, window.col0, window.col0 + window.cols)
        return np.outer(wy, wx)


Sink = Callable[[Window, np.ndarray], None]
Process = Callable[[list, list[Window]], list[Mapping[str, np.ndarray]]]


def per_tile(process: Callable[[Block, Window], Mapping[str, np.ndarray]]) -> Process:
    """Adapt a one-tile function to the engine's batched interface."""
    return lambda blocks, windows: [process(b, w) for b, w in zip(blocks, windows)]


def run_tiled(
    height: int,
    width: int,
    read: Callable[[Window], Block],
    process: Process,
    sinks: Mapping[str, tuple[str, Sink]],
    tile_size: int = 512,
    overlap: int = 32,
    progress: Progress | None = None,
    batch_size: int = 1,
    align: int = 1,
) -> int:
    """Run ``process`` over every tile and stream the blended results to ``sinks``.

    ``read(window)`` returns a block with a ``valid`` mask; ``process(blocks, windows)``
    gets up to ``batch_size`` tiles at once (a GPU fills up on a batch) and returns one
    mapping per tile, output name → array covering the tile's read window. ``sinks`` maps
    each output name to (blend kind, writer). Invalid input pixels become NaN in every
    output. ``align``: see :func:`_axis`. Returns the number of valid input pixels seen.
    """
    progress = progress or SilentProgress()
    grid = TileGrid(height, width, tile_size, overlap, align)
    pending: dict[tuple[int, int], _Cell] = {}
    tiles = grid.tiles()
    valid_pixels = 0
    for first in range(0, len(tiles), batch_size):
        check_cancel(progress)
        group = tiles[first:first + batch_size]
        blocks = [read(tile.read) for _, _, tile in group]
        results = process(blocks, [tile.read for _, _, tile in group])
        for (ty, tx, tile), block, result in zip(group, blocks, results):
            valid_pixels += int(np.count_nonzero(block.valid[tile.core.relative_to(tile.read)]))
            _blend(grid, ty, tx, tile, block, result, sinks, pending)
        progress.set_progress(100.0 * (first + len(group)) / len(tiles))
    return valid_pixels


def _blend(grid: TileGrid, ty: int, tx: int, tile: Tile, block: Block, results: Mapping[str, np.ndarray],
           sinks: Mapping[str, tuple[str, Sink]], pending: dict[tuple[int, int], _Cell]) -> None:
    """Add one tile's weighted results to its cells; write the cells it completes."""
    for key, window, contributors in grid.cells_of(ty, tx):
        rel = window.relative_to(tile.read)
        if contributors == 1:
            _write_alone(window, block.valid[rel], results, rel, sinks)
            continue
        cell = pending.setdefault(key, _Cell(window, contributors))
        base = grid.weights(ty, tx, window)
        valid = block.valid[rel]
        for name, (kind, _) in sinks.items():
            values = _to_blend_space(np.asarray(results[name])[rel], kind)
            ok = valid & np.isfinite(values)
            w = np.where(ok, base, 0.0)
            contribution = np.where(ok, values, 0) * w
            if name in cell.sums:
                cell.sums[name] += contribution
                cell.weights[name] += w
            else:
                cell.sums[name] = contribution
                cell.weights[name] = w
        cell.remaining -= 1
        if cell.remaining == 0:
            _finish(pending.pop(key), sinks)


def _write_alone(window: Window, valid: np.ndarray, results: Mapping[str, np.ndarray], rel: tuple[slice, slice],
                 sinks: Mapping[str, tuple[str, Sink]]) -> None:
    """Write a cell that only one tile covers (weight 1 everywhere). The blend of one value
    is the value itself, so the float64 round trip is skipped; only phases at or beyond ±π
    go through it, which wraps them exactly as a blend would."""
    for name, (kind, write) in sinks.items():
        v = np.asarray(results[name])[rel]
        dtype = np.complex64 if kind == BLEND_COMPLEX else np.float32
        out = np.array(v, dtype=dtype)
        if kind == BLEND_PHASE:
            with np.errstate(invalid="ignore"):
                edge = np.abs(out) >= 3.14159
            if edge.any():
                out[edge] = np.angle(np.exp(1j * out[edge].astype(np.float64)))
        out[~(valid & np.isfinite(out))] = np.nan + 1j * np.nan if kind == BLEND_COMPLEX else np.nan
        write(window, out)


def _to_blend_space(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == BLEND_PHASE:
        return np.exp(1j * values.astype(np.float64))
    if kind == BLEND_COMPLEX:
        return values.astype(np.complex128)
    return values.astype(np.float64)


def _finish(cell: _Cell, sinks: Mapping[str, tuple[str, Sink]]) -> None:
    for name, (kind, write) in sinks.items():
        w = cell.weights[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = cell.sums[name] / w
        if kind == BLEND_PHASE:
            out = np.angle(mean).astype(np.float32)
        elif kind == BLEND_COMPLEX:
            out = mean.astype(np.complex64)
        else:
            out = mean.astype(np.float32)
        nan = np.nan + 1j * np.nan if kind == BLEND_COMPLEX else np.nan
        write(cell.window, np.where(w > 0, out, nan).astype(out.dtype))
