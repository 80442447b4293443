"""The tiling engine: exact identity, exact local filters, cancel, streaming memory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from qgis_insar_ml.core.errors import Cancelled, InsarMlError
from qgis_insar_ml.core.filters import boxcar
from qgis_insar_ml.core.inputs import InterferogramSource
from qgis_insar_ml.core.classical import filter_boxcar_raster
from qgis_insar_ml.core.raster_io import Window
from qgis_insar_ml.core.tiling import BLEND_COMPLEX, BLEND_PHASE, BLEND_REAL, TileGrid, per_tile, run_tiled

from conftest import CancelAfter, noisy_fringes, read_band, write_raster


@dataclass
class ArrayBlock:
    values: dict
    valid: np.ndarray


def run_on_arrays(arrays: dict[str, tuple[str, np.ndarray]], process, tile_size, overlap, valid=None, batch_size=1):
    """Tile in-memory arrays; return the blended outputs."""
    first = next(iter(arrays.values()))[1]
    height, width = first.shape
    valid = np.ones((height, width), bool) if valid is None else valid
    outputs = {name: np.full(a.shape, np.nan, dtype=a.dtype) for name, (_, a) in arrays.items()}

    def read(window: Window) -> ArrayBlock:
        return ArrayBlock({n: a[window.slices] for n, (_, a) in arrays.items()}, valid[window.slices])

    def sink(name):
        def write(window, array):
            outputs[name][window.slices] = array
        return write

    run_tiled(height, width, read, per_tile(process), {n: (kind, sink(n)) for n, (kind, _) in arrays.items()},
              tile_size, overlap, batch_size=batch_size)
    return outputs


@pytest.mark.parametrize("shape,tile,overlap", [
    ((1, 1), 64, 8), ((2, 3), 64, 8), ((5, 200), 40, 8), ((300, 517), 64, 8),
    ((1000, 37), 128, 32), ((129, 130), 48, 16), ((256, 256), 64, 16),
])
def test_identity_is_bit_exact(shape, tile, overlap):
    rng = np.random.default_rng(1)
    real = rng.standard_normal(shape).astype(np.float32) * 1e3
    cplx = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    phase = np.angle(cplx).astype(np.float32)
    out = run_on_arrays({"real": (BLEND_REAL, real), "complex": (BLEND_COMPLEX, cplx), "phase": (BLEND_PHASE, phase)},
                        lambda block, _: block.values, tile, overlap)
    assert np.array_equal(out["real"], real)
    assert np.array_equal(out["complex"], cplx)
    assert np.abs(np.angle(np.exp(1j * (out["phase"].astype(np.float64) - phase)))).max() < 1e-6


def test_batches_of_tiles_give_the_same_result():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((211, 190)).astype(np.float32)
    smooth = lambda block, _: {"v": block.values["v"] * 2 + 1}  # noqa: E731
    one = run_on_arrays({"v": (BLEND_REAL, real)}, smooth, 64, 8)
    many = run_on_arrays({"v": (BLEND_REAL, real)}, smooth, 64, 8, batch_size=5)
    assert np.array_equal(one["v"], many["v"]) and np.array_equal(one["v"], real * 2 + 1)


def test_every_pixel_is_covered_by_exactly_one_core():
    grid = TileGrid(1001, 777, 128, 32)
    cover = np.zeros((1001, 777), int)
    for _, _, tile in grid.tiles():
        cover[tile.core.slices] += 1
        assert tile.read.row0 <= tile.keep.row0 and tile.keep.row0 + tile.keep.rows <= tile.read.row0 + tile.read.rows
    assert (cover == 1).all()


def test_tiled_boxcar_equals_untiled_away_from_edges():
    _, ifg = noisy_fringes(300, 410, sigma=0.8)
    whole_filtered, whole_coherence = boxcar(ifg, 7)

    def process(block, _):
        filtered, coherence = boxcar(block.values["ifg"], 7)
        return {"ifg": filtered, "coh": coherence}

    out = run_on_arrays({"ifg": (BLEND_COMPLEX, ifg), "coh": (BLEND_REAL, ifg.real.astype(np.float32))},
                        process, tile_size=64, overlap=8)
    inner = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(out["ifg"][inner], whole_filtered[inner], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["coh"][inner], whole_coherence[inner], rtol=0, atol=1e-5)
    # zero padding is the same at raster edges whether tiled or not, so edges agree too
    np.testing.assert_allclose(out["coh"], whole_coherence, rtol=0, atol=1e-5)


def test_blend_is_smooth_for_an_operator_wider_than_the_overlap():
    """An operator that sees the tile edge (a tile-mean) is cross-faded, not cut."""
    ramp = np.tile(np.linspace(0, 1, 400, dtype=np.float32), (50, 1))
    out = run_on_arrays({"v": (BLEND_REAL, ramp)},
                        lambda block, _: {"v": np.full_like(block.values["v"], block.values["v"].mean())},
                        tile_size=80, overlap=16)
    jumps = np.abs(np.diff(out["v"][25]))
    assert jumps.max() < 0.05


def test_invalid_pixels_become_nan_and_carry_no_weight():
    values = np.arange(100 * 90, dtype=np.float32).reshape(100, 90)
    valid = np.ones_like(values, bool)
    valid[40:45, 10:80] = False
    out = run_on_arrays({"v": (BLEND_REAL, values)}, lambda block, _: block.values, 48, 8, valid)
    assert np.isnan(out["v"][~valid]).all()
    assert np.array_equal(out["v"][valid], values[valid])


@pytest.mark.parametrize("align", [2, 4])
def test_aligned_grid_starts_tiles_on_the_lattice(align):
    grid = TileGrid(1001, 515, 96, 13, align)
    cover = np.zeros((1001, 515), int)
    for _, _, tile in grid.tiles():
        assert tile.read.row0 % align == 0 and tile.read.col0 % align == 0
        assert tile.core.row0 % align == 0 and tile.core.col0 % align == 0
        cover[tile.core.slices] += 1
    assert (cover == 1).all()


def test_bad_tiling_settings_are_explained():
    with pytest.raises(InsarMlError, match="TILE_SIZE 40 is too small for OVERLAP 16"):
        TileGrid(100, 100, 40, 16)


def test_cancel_after_n_tiles_leaves_no_output(tmp_path):
    _, ifg = noisy_fringes(400, 400)
    src = write_raster(tmp_path / "ifg.tif", ifg)
    progress = CancelAfter(3)
    with pytest.raises(Cancelled):
        filter_boxcar_raster(InterferogramSource(interferogram=src), 5, str(tmp_path / "phase.tif"),
                             str(tmp_path / "coh.tif"), tile_size=64, overlap=8, progress=progress)
    assert progress.calls == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ifg.tif"]


def test_streamed_file_output_matches_in_memory_filter(tmp_path):
    _, ifg = noisy_fringes(333, 257)
    src = write_raster(tmp_path / "ifg.tif", ifg)
    outputs = filter_boxcar_raster(InterferogramSource(interferogram=src), 5, str(tmp_path / "phase.tif"),
                                   str(tmp_path / "coh.tif"), tile_size=96, overlap=16)
    filtered, coherence = boxcar(ifg, 5)
    phase = read_band(outputs["OUTPUT_PHASE"])
    assert np.abs(np.angle(np.exp(1j * (phase - np.angle(filtered))))).max() < 1e-5
    np.testing.assert_allclose(read_band(outputs["OUTPUT_COHERENCE"]), coherence, atol=1e-6)
