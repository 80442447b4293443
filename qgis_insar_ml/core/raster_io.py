"""GDAL raster reading and writing for every algorithm of the plugin.

Reading: any format GDAL opens, window by window, as one of the radar quantities the
algorithms need (complex values, wrapped phase, amplitude), with a validity mask built
from GDAL's mask band (no-data, alpha, per-dataset masks) and non-finite values.

Writing: tiled, compressed GeoTIFFs that appear under their final name only when the
whole raster is complete. Windows go to an uncompressed staging file first (any write
pattern is cheap there); :meth:`OutputRaster.commit` compresses it into a temporary
name beside the destination and renames that over the destination.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from osgeo import gdal, osr

from .errors import Cancelled, InsarMlError
from .progress import Progress, SilentProgress

gdal.UseExceptions()

COMPLEX_TYPES = (gdal.GDT_CInt16, gdal.GDT_CInt32, gdal.GDT_CFloat32, gdal.GDT_CFloat64)
MIN_FILTER_SIZE = 3
# read_sample decimates rasters up to this many times its pixel budget, and samples blocks of larger ones.
SAMPLE_WHOLE_BELOW = 16
# GDAL's default block cache is 5 % of RAM; streaming a large raster through it would fill
# it with blocks we never read again. Runs cap it at this while they last.
STREAMING_CACHE_BYTES = 128 * 2**20
PLUGIN_VERSION_KEY = "INSARML_VERSION"


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels in absolute raster coordinates."""

    row0: int
    col0: int
    rows: int
    cols: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row0 + self.rows), slice(self.col0, self.col0 + self.cols)

    def relative_to(self, outer: "Window") -> tuple[slice, slice]:
        """Slices that cut this window out of an array covering ``outer``."""
        r, c = self.row0 - outer.row0, self.col0 - outer.col0
        return slice(r, r + self.rows), slice(c, c + self.cols)


@dataclass(frozen=True)
class GridInfo:
    """Size and georeferencing of a raster: what outputs inherit from inputs."""

    width: int
    height: int
    geotransform: tuple[float, ...] | None
    crs_wkt: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _open(path: str | os.PathLike, role: str) -> gdal.Dataset:
    path = str(path)
    if not path:
        raise InsarMlError(f"{role}: no raster given. Choose an input raster file.")
    if not path.startswith(("/vsi", "ZARR:", "HDF5:", "NETCDF:")) and not os.path.exists(path):
        raise InsarMlError(f"{role}: file not found: {path}. Check the path.")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise InsarMlError(f"{role}: GDAL cannot read {path} ({exc}). Use a raster format GDAL supports.") from None
    if ds is None or ds.RasterCount == 0:
        raise InsarMlError(f"{role}: {path} holds no raster band.")
    return ds


@contextmanager
def bounded_gdal_cache(limit: int = STREAMING_CACHE_BYTES) -> Iterator[None]:
    """Cap GDAL's block cache during a streamed run, then restore the previous cap."""
    previous = gdal.GetCacheMax()
    gdal.SetCacheMax(min(previous, limit))
    try:
        yield
    finally:
        gdal.SetCacheMax(previous)


def grid_of(ds: gdal.Dataset) -> GridInfo:
    gt = ds.GetGeoTransform(can_return_null=True)
    return GridInfo(ds.RasterXSize, ds.RasterYSize, tuple(gt) if gt else None, ds.GetProjection() or "")


class InputRaster:
    """One input raster, read window by window as a radar quantity.

    ``kind`` says what the caller needs:
    - ``"complex"``: a complex band, or two real bands taken as real and imaginary parts;
    - ``"interferogram"``: complex values as above, or else one real band of phase in radians;
    - ``"phase"``: wrapped phase in radians from a complex raster (its angle) or a real band;
    - ``"real"``: one real band (amplitude, coherence, ...).
    """

    def __init__(self, path: str | os.PathLike, role: str, kind: str):
        self.path, self.role, self.kind = str(path), role, kind
        self.dataset = _open(path, role)
        self.grid = grid_of(self.dataset)
        band1 = self.dataset.GetRasterBand(1)
        self.is_complex = band1.DataType in COMPLEX_TYPES
        self.is_real_imag_pair = not self.is_complex and self.dataset.RasterCount == 2
        if kind == "complex" and not (self.is_complex or self.is_real_imag_pair):
            raise InsarMlError(
                f"{role}: {Path(self.path).name} is a real raster with {self.dataset.RasterCount} band(s), "
                "but complex values were expected. Give a complex raster (CInt16/CFloat32...) "
                "or a two-band raster with the real and imaginary parts."
            )
        if kind == "real" and self.is_complex:
            raise InsarMlError(
                f"{role}: {Path(self.path).name} is complex, but a real-valued raster was expected "
                "(for an amplitude, take the modulus first, e.g. with the raster calculator)."
            )
        self._bands = [self.dataset.GetRasterBand(i + 1)
                       for i in range(2 if self.is_real_imag_pair and kind != "real" else 1)]
        self._masked = [not (b.GetMaskFlags() & gdal.GMF_ALL_VALID) for b in self._bands]

    @property
    def is_phase_only(self) -> bool:
        """True when the raster holds a phase and no magnitude (a single real band)."""
        return not (self.is_complex or self.is_real_imag_pair)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Return (values, valid) for ``window``; invalid pixels are zeroed."""
        args = (window.col0, window.row0, window.cols, window.rows)
        raw = [b.ReadAsArray(*args) for b in self._bands]
        valid = np.ones((window.rows, window.cols), dtype=bool)
        for band, masked in zip(self._bands, self._masked):
            if masked:
                valid &= band.GetMaskBand().ReadAsArray(*args) > 0
        if self.is_complex:
            values = raw[0].astype(np.complex64, copy=False)
        elif self.is_real_imag_pair and self.kind != "real":
            values = (raw[0] + 1j * raw[1]).astype(np.complex64)
        else:
            values = raw[0].astype(np.float32, copy=False)
        valid &= np.isfinite(values)
        if self.kind == "phase" and np.iscomplexobj(values):
            values = np.angle(values).astype(np.float32)
        values = np.where(valid, values, 0).astype(values.dtype, copy=False)
        return values, valid


    def read_sample(self, max_pixels: int = 2**20) -> np.ndarray:
        """The whole raster decimated to at most ``max_pixels`` (nearest), magnitudes of
        complex values, non-finite and masked pixels as NaN: for whole-raster statistics.

        A decimated read decodes every block of the raster (3 s for a 64 Mpx SLC pair), so a
        raster larger than SAMPLE_WHOLE_BELOW × ``max_pixels`` is sampled instead by whole
        blocks spread evenly over it (about SAMPLE_WHOLE_BELOW / 2 × ``max_pixels`` pixels read: an eighth of
        a 64 Mpx raster, 0.4 s instead of 3 s), flattened.
        """
        g = self.grid
        bx, by = self._bands[0].GetBlockSize()
        if g.width * g.height > SAMPLE_WHOLE_BELOW * max_pixels and bx * by <= max_pixels:
            return self._sample_blocks(max_pixels, bx, by)
        step = max(1.0, (g.width * g.height / max_pixels) ** 0.5)
        cols, rows = max(1, int(g.width / step)), max(1, int(g.height / step))
        raw = [b.ReadAsArray(buf_xsize=cols, buf_ysize=rows).astype(np.complex64 if self.is_complex else np.float32)
               for b in self._bands]
        values = np.abs(raw[0] + 1j * raw[1]) if len(raw) == 2 else np.abs(raw[0])
        for band, masked in zip(self._bands, self._masked):
            if masked:
                values[band.GetMaskBand().ReadAsArray(buf_xsize=cols, buf_ysize=rows) == 0] = np.nan
        return values.astype(np.float32)

    def _sample_blocks(self, max_pixels: int, bx: int, by: int) -> np.ndarray:
        g = self.grid
        nbx, nby = -(-g.width // bx), -(-g.height // by)
        wanted = max(1, min(nbx * nby, SAMPLE_WHOLE_BELOW // 2 * max_pixels // (bx * by)))
        # blocks at random (a fixed seed: the same sample every run), not on a grid that could
        # alias with periodic structure
        chosen = np.sort(np.random.default_rng(0).choice(nbx * nby, wanted, replace=False))
        pieces = []
        for row, col in zip(chosen // nbx, chosen % nbx):
            window = Window(int(row) * by, int(col) * bx, min(by, g.height - int(row) * by),
                            min(bx, g.width - int(col) * bx))
            args = (window.col0, window.row0, window.cols, window.rows)
            raw = [b.ReadAsArray(*args) for b in self._bands]
            values = np.abs(raw[0] + 1j * raw[1]) if len(raw) == 2 else np.abs(raw[0])
            values = values.astype(np.float32)
            for band, masked in zip(self._bands, self._masked):
                if masked:
                    values[band.GetMaskBand().ReadAsArray(*args) == 0] = np.nan
            pieces.append(values.ravel())
        sample = np.concatenate(pieces)
        step = max(1, -(-sample.size // max_pixels))
        return sample[::step]


def check_same_grid(rasters: Sequence[InputRaster]) -> GridInfo:
    """All inputs must share size, CRS and geotransform; return that grid."""
    first = rasters[0]
    for other in rasters[1:]:
        a, b = first.grid, other.grid
        if (a.width, a.height) != (b.width, b.height):
            raise InsarMlError(
                f"{other.role} is {b.width}×{b.height} pixels but {first.role} is {a.width}×{a.height}. "
                "Inputs must be co-registered on the same pixel grid: resample or crop them first."
            )
        if a.crs_wkt and b.crs_wkt and not osr.SpatialReference(a.crs_wkt).IsSame(osr.SpatialReference(b.crs_wkt)):
            raise InsarMlError(f"{other.role} and {first.role} have different CRS. Reproject one onto the other's grid.")
        if a.geotransform and b.geotransform and not np.allclose(a.geotransform, b.geotransform, rtol=0, atol=1e-9 * max(1.0, *map(abs, a.geotransform))):
            raise InsarMlError(
                f"{other.role} and {first.role} have different geotransforms (origin or pixel size). "
                "Inputs must be on the same pixel grid."
            )
    g = first.grid
    if min(g.width, g.height) < MIN_FILTER_SIZE:
        raise InsarMlError(
            f"{first.role} is only {g.width}×{g.height} pixels; at least "
            f"{MIN_FILTER_SIZE}×{MIN_FILTER_SIZE} are needed."
        )
    return g


@dataclass(frozen=True)
class OutputBand:
    """One band of an output raster."""

    description: str
    complex_values: bool = False


class OutputRaster:
    """A GeoTIFF being written window by window; visible at ``path`` only after :meth:`commit`."""

    def __init__(self, path: str | os.PathLike, grid: GridInfo, bands: Sequence[OutputBand],
                 metadata: dict[str, str] | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".tif", ".tiff"):
            raise InsarMlError(f"Output {self.path.name}: only GeoTIFF (.tif) outputs are supported.")
        if not self.path.parent.is_dir():
            raise InsarMlError(f"Output folder {self.path.parent} does not exist. Create it or pick another path.")
        self.bands = list(bands)
        tag = f"{os.getpid()}-{id(self):x}"
        self._stage_path = self.path.parent / f".{self.path.stem}.{tag}.stage.tif"
        self._partial_path = self.path.parent / f".{self.path.stem}.{tag}.partial.tif"
        dtype = gdal.GDT_CFloat32 if any(b.complex_values for b in self.bands) else gdal.GDT_Float32
        self._dtype = dtype
        driver = gdal.GetDriverByName("GTiff")
        self._ds = driver.Create(str(self._stage_path), grid.width, grid.height, len(self.bands), dtype,
                                 ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_NEEDED",
                                  "SPARSE_OK=TRUE"])
        if grid.geotransform:
            self._ds.SetGeoTransform(grid.geotransform)
        if grid.crs_wkt:
            self._ds.SetProjection(grid.crs_wkt)
        for i, band in enumerate(self.bands):
            b = self._ds.GetRasterBand(i + 1)
            b.SetDescription(band.description)
            if dtype == gdal.GDT_Float32:
                b.SetNoDataValue(float("nan"))
        meta = {PLUGIN_VERSION_KEY: plugin_version(), **(metadata or {})}
        self._ds.SetMetadata(meta)

    def write(self, window: Window, array: np.ndarray, band: int = 0) -> None:
        target = np.complex64 if self._dtype == gdal.GDT_CFloat32 else np.float32
        self._ds.GetRasterBand(band + 1).WriteArray(np.asarray(array, dtype=target), window.col0, window.row0)

    def flush(self) -> None:
        """Push written blocks to disk so GDAL's cache does not grow with the raster."""
        if self._ds is not None:
            self._ds.FlushCache()

    def commit(self, progress: Progress | None = None) -> Path:
        """Compress the staged raster into place; cancel-aware."""
        progress = progress or SilentProgress()
        self._ds.FlushCache()
        self._ds = None
        predictor = "1" if self._dtype == gdal.GDT_CFloat32 else "3"
        options = gdal.TranslateOptions(
            format="GTiff",
            creationOptions=["TILED=YES", "COMPRESS=DEFLATE", f"PREDICTOR={predictor}", "ZLEVEL=1",
                             "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS"],
            callback=lambda *_: 0 if progress.is_cancelled() else 1,
        )
        try:
            result = gdal.Translate(str(self._partial_path), str(self._stage_path), options=options)
        except RuntimeError as exc:
            self.abort()
            if progress.is_cancelled():
                raise Cancelled("Cancelled by the user.") from None
            raise InsarMlError(f"Could not write {self.path}: {exc}") from None
        if result is None:
            self.abort()
            raise Cancelled("Cancelled by the user.")
        result = None
        os.replace(self._partial_path, self.path)
        self._stage_path.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Remove every trace of this output."""
        self._ds = None
        for p in (self._stage_path, self._partial_path):
            p.unlink(missing_ok=True)


def write_whole_raster(path: str | os.PathLike, grid: GridInfo, bands: Sequence[tuple[str, np.ndarray]],
                       metadata: dict[str, str] | None = None, progress: Progress | None = None) -> Path:
    """Write a small in-memory raster (one array per band) as a GeoTIFF that appears whole or not at all."""
    outputs = OutputSet({"raster": OutputRaster(path, grid, [OutputBand(d) for d, _ in bands], metadata)})
    whole = Window(0, 0, grid.height, grid.width)
    with outputs as opened:
        for index, (_, values) in enumerate(bands):
            opened["raster"].write(whole, values, band=index)
        outputs.commit(progress)
    return Path(path)


class OutputSet:
    """Several outputs committed together, or all removed when anything fails."""

    def __init__(self, outputs: dict[str, OutputRaster]):
        self.outputs = outputs

    def __enter__(self) -> dict[str, OutputRaster]:
        return self.outputs

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for out in self.outputs.values():
                out.abort()

    def commit(self, progress: Progress | None = None) -> dict[str, str]:
        done: dict[str, str] = {}
        try:
            for name, out in self.outputs.items():
                done[name] = str(out.commit(progress))
        except BaseException:
            for out in self.outputs.values():
                out.abort()
            for path in done.values():
                Path(path).unlink(missing_ok=True)
            raise
        return done


def provenance(algorithm: str, parameters: dict, model: str | None = None) -> dict[str, str]:
    """GDAL metadata that records how an output was made."""
    meta = {"INSARML_ALGORITHM": algorithm,
            "INSARML_PARAMETERS": json.dumps(parameters, sort_keys=True, default=str)}
    if model:
        meta["INSARML_MODEL"] = model
    return meta


def plugin_version() -> str:
    """The version in metadata.txt, wherever the package is installed."""
    for candidate in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[2]):
        meta = candidate / "metadata.txt"
        if meta.is_file():
            for line in meta.read_text(encoding="utf-8").splitlines():
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    return "unknown"


def read_full(path: str | os.PathLike, role: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole raster (small rasters: tests, reports, figures)."""
    raster = InputRaster(path, role, kind)
    return raster.read(Window(0, 0, raster.grid.height, raster.grid.width))
