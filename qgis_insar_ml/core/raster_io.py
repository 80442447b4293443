"""GDAL raster reading and writing for every algorithm of the plugin.

Reading: any format GDAL opens, window by window, as one of the radar quantities the
algorithms need (complex values, wrapped phase, amplitude), with a validity mask built
from GDAL's mask band (no-data, alpha, per-dataset masks) and non-finite values.

Writing: tiled, compressed GeoTIFFs that appear under their final name only when the
whole raster is complete. Blocks are compressed as they are completed (on GDAL's worker
threads) into a hidden file beside the destination; :meth:`OutputRaster.commit` closes it
and renames it over the destination. A full disk or a read-only folder is an
:class:`InsarMlError` that names the output, and leaves nothing behind.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from osgeo import gdal, osr

from .errors import Cancelled, InsarMlError
from .progress import Progress, SilentProgress, check_cancel

gdal.UseExceptions()

COMPLEX_TYPES = (gdal.GDT_CInt16, gdal.GDT_CInt32, gdal.GDT_CFloat32, gdal.GDT_CFloat64)
MIN_FILTER_SIZE = 3
# read_sample decimates rasters up to this many times its pixel budget, and samples blocks of larger ones.
SAMPLE_WHOLE_BELOW = 16
# GDAL's default block cache is 5 % of RAM; streaming a large raster through it would fill
# it with blocks we never read again. Runs cap it at this while they last.
STREAMING_CACHE_BYTES = 128 * 2**20
PLUGIN_VERSION_KEY = "INSARML_VERSION"
# Output GeoTIFF blocks (square, in pixels).
OUTPUT_BLOCK = 256
# An output is written as ".<stem>.<pid>-<id>.partial.tif" beside its destination until it is complete.
PARTIAL_SUFFIX = ".partial.tif"
# A write that fails with less than this left on its disk is reported as a full disk.
FULL_DISK_BYTES = 2**20
# Input checks (phase units, zero amplitude) look at this many sampled pixels.
CHECK_SAMPLE_PIXELS = 2**16
# A wrapped phase in radians stays within ±π; this slack covers rounding and resampling.
PHASE_TOLERANCE = 0.01
# More than this share of sampled |phase| above π: the band is not a wrapped phase in radians.
NOT_RADIANS_SHARE = 0.01


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


def _open(path: str | os.PathLike, role: str, label: str | None = None) -> gdal.Dataset:
    """Open ``path`` (a file, a GDAL subdataset or VRT XML); messages name ``label`` (the user's file) if given."""
    path = str(path)
    shown = label or path
    if not path:
        raise InsarMlError(f"{role}: no raster given. Choose an input raster file.")
    if not path.startswith(("/vsi", "ZARR:", "HDF5:", "NETCDF:", "<VRTDataset")) and not os.path.exists(path):
        raise InsarMlError(f"{role}: file not found: {shown}. Check the path.")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        detail = str(exc).strip().replace(f"{path}: ", "")
        raise InsarMlError(f"{role}: GDAL cannot open {shown} ({detail}). Give a raster in a format GDAL supports; "
                           "if it is one, the file is damaged or truncated: re-download or re-export it.") from None
    if ds is None or ds.RasterCount == 0:
        raise InsarMlError(f"{role}: {shown} holds no raster band.")
    return ds


def check_opens(path: str, role: str) -> None:
    """Raise the InsarMlError that says why GDAL cannot open ``path`` (missing, damaged or not a raster)."""
    _open(path, role)


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

    ``band`` picks one band of a multi-band raster; without it, a raster whose bands do not
    match ``kind`` is refused rather than silently read from band 1. ``band_parameter`` names
    the setting a user can change to pick it (mentioned in that refusal). ``label`` is the
    file messages name when ``path`` is a VRT (XML) that converts it (product readers).
    """

    def __init__(self, path: str | os.PathLike, role: str, kind: str, band: int | None = None,
                 band_parameter: str | None = None, label: str | None = None):
        self.path, self.role, self.kind = str(path), role, kind
        self.label = label or self.path  # the user's file, when ``path`` is a VRT made from it
        self.name = Path(self.label).name
        self.dataset = _open(path, role, self.label)
        self.grid = grid_of(self.dataset)
        count = self.dataset.RasterCount
        if band is not None and not 1 <= band <= count:
            raise InsarMlError(f"{role}: {self.name} has no band {band}; its bands are {_band_list(self.dataset)}.")
        first = self.dataset.GetRasterBand(band or 1)
        self.is_complex = first.DataType in COMPLEX_TYPES
        self.is_real_imag_pair = (band is None and count == 2 and kind != "real"
                                  and self.dataset.GetRasterBand(2).DataType not in COMPLEX_TYPES
                                  and not self.is_complex)
        if band is None and count > 1 and not self.is_real_imag_pair:
            self._refuse_band_count(band_parameter)
        if kind == "complex" and not (self.is_complex or self.is_real_imag_pair):
            raise InsarMlError(
                f"{role}: {self.name} is a real raster with {count} band(s), "
                "but complex values were expected. Give a complex raster (CInt16/CFloat32...) "
                "or a two-band raster with the real and imaginary parts."
            )
        if kind == "real" and self.is_complex:
            raise InsarMlError(
                f"{role}: {self.name} is complex, but a real-valued raster was expected "
                "(for an amplitude, take the modulus first, e.g. with the raster calculator)."
            )
        self._bands = ([self.dataset.GetRasterBand(1), self.dataset.GetRasterBand(2)] if self.is_real_imag_pair
                       else [first])
        self._masked = [not (b.GetMaskFlags() & gdal.GMF_ALL_VALID) for b in self._bands]
        if kind in ("interferogram", "phase") and self.is_phase_only:
            self._refuse_phase_not_in_radians()

    @property
    def is_phase_only(self) -> bool:
        """True when the raster holds a phase and no magnitude (a single real band)."""
        return not (self.is_complex or self.is_real_imag_pair)

    def _refuse_band_count(self, band_parameter: str | None) -> None:
        expected = {"complex": "one complex band, or two real bands (real and imaginary parts)",
                    "real": "a single band"}.get(
            self.kind, "one complex band, two real bands (real and imaginary parts) or one band of phase")
        pick = (f"Set {band_parameter} (advanced parameter) to the band to use, or extract it" if band_parameter
                else "Extract the band(s) to use")
        pair = " [-b M for the imaginary part]" if self.kind == "complex" else ""
        raise InsarMlError(
            f"{self.role}: {self.name} has {self.dataset.RasterCount} bands ({_band_list(self.dataset)}), "
            f"but {expected} was expected, so it is unclear which to use. {pick} into a file of its own, "
            f"e.g. gdal_translate -b N{pair} {self.name} {Path(self.name).stem}_bandN.tif"
        )

    def _refuse_phase_not_in_radians(self) -> None:
        """A phase band whose values go well beyond ±π is not a wrapped phase in radians (degrees, most often)."""
        magnitudes = self.read_sample(CHECK_SAMPLE_PIXELS)
        magnitudes = magnitudes[np.isfinite(magnitudes)]
        if magnitudes.size == 0 or np.mean(magnitudes > np.pi + PHASE_TOLERANCE) <= NOT_RADIANS_SHARE:
            return
        largest = float(magnitudes.max())
        if largest <= 360 + PHASE_TOLERANCE:
            raise InsarMlError(
                f"{self.role}: {self.name} looks like a phase in degrees (values up to {largest:.1f}); a wrapped "
                "phase in radians stays within ±π. Convert it to radians first: in the raster calculator "
                f"\"{Path(self.name).stem}@1\" * 3.14159265 / 180, or gdal_calc.py -A {self.name} "
                f"--calc=\"A*pi/180\" --type=Float32 --outfile={Path(self.name).stem}_rad.tif"
            )
        raise InsarMlError(
            f"{self.role}: {self.name} holds values up to {largest:.4g}, but a wrapped phase in radians stays "
            "within ±π. If it is an unwrapped phase, wrap it first: gdal_calc.py "
            f"-A {self.name} --calc=\"arctan2(sin(A),cos(A))\" --type=Float32 "
            f"--outfile={Path(self.name).stem}_wrapped.tif; otherwise give the wrapped phase or the complex "
            "interferogram."
        )

    def refuse_zero_amplitude(self) -> None:
        """Refuse a raster whose amplitude is 0 wherever it is valid: a failed export, not a signal.

        The cheap block sample decides when it finds any signal; only an all-zero sample is
        confirmed on the whole raster (decimated), so a few valid blocks are not overlooked.
        """
        for sample in (lambda: self.read_sample(CHECK_SAMPLE_PIXELS), lambda: self._sample_decimated(2**20)):
            magnitudes = sample()
            magnitudes = magnitudes[np.isfinite(magnitudes)]
            if magnitudes.size == 0 or magnitudes.any():
                return
        raise InsarMlError(
            f"{self.role}: the amplitude of {self.name} is zero everywhere, so it carries no signal. "
            "Check that it is the right file; a failed export or coregistration writes zeros: re-export it."
        )

    def _read_raw(self, **region: int) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The bands' arrays and the combined mask (None: all valid) of a region given as ReadAsArray keywords.

        A damaged or truncated file often opens and fails only when a block is decoded: that
        failure becomes a message naming the file, wherever the read happens.
        """
        try:
            raw = [b.ReadAsArray(**region) for b in self._bands]
            masks = [b.GetMaskBand().ReadAsArray(**region) > 0 for b, m in zip(self._bands, self._masked) if m]
        except RuntimeError as exc:
            where = (f"the block at row {region['yoff']}, column {region['xoff']}" if "yoff" in region
                     else "a block while sampling it")
            raise InsarMlError(
                f"{self.role}: {self.label} is damaged or truncated: GDAL could not read {where} "
                f"({str(exc).strip()}). Re-download or re-export it."
            ) from None
        return raw, (np.logical_and.reduce(masks) if masks else None)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Return (values, valid) for ``window``; invalid pixels are zeroed."""
        raw, mask = self._read_raw(xoff=window.col0, yoff=window.row0, win_xsize=window.cols,
                                   win_ysize=window.rows)
        valid = np.ones((window.rows, window.cols), dtype=bool) if mask is None else mask
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
        return self._sample_decimated(max_pixels)

    def _sample_decimated(self, max_pixels: int) -> np.ndarray:
        g = self.grid
        step = max(1.0, (g.width * g.height / max_pixels) ** 0.5)
        cols, rows = max(1, int(g.width / step)), max(1, int(g.height / step))
        return _magnitudes(*self._read_raw(buf_xsize=cols, buf_ysize=rows))

    def _sample_blocks(self, max_pixels: int, bx: int, by: int) -> np.ndarray:
        g = self.grid
        nbx, nby = -(-g.width // bx), -(-g.height // by)
        wanted = max(1, min(nbx * nby, SAMPLE_WHOLE_BELOW // 2 * max_pixels // (bx * by)))
        # blocks at random (a fixed seed: the same sample every run), not on a grid that could
        # alias with periodic structure
        chosen = np.sort(np.random.default_rng(0).choice(nbx * nby, wanted, replace=False))
        pieces = []
        for row, col in zip(chosen // nbx, chosen % nbx):
            row0, col0 = int(row) * by, int(col) * bx
            region = self._read_raw(xoff=col0, yoff=row0, win_xsize=min(bx, g.width - col0),
                                    win_ysize=min(by, g.height - row0))
            pieces.append(_magnitudes(*region).ravel())
        sample = np.concatenate(pieces)
        step = max(1, -(-sample.size // max_pixels))
        return sample[::step]


def _magnitudes(raw: list[np.ndarray], mask: np.ndarray | None) -> np.ndarray:
    """|values| (real/imaginary pairs combined) as float32, masked pixels NaN."""
    raw = [r.astype(np.complex64 if np.iscomplexobj(r) else np.float32, copy=False) for r in raw]
    values = np.abs(raw[0] + 1j * raw[1] if len(raw) == 2 else raw[0]).astype(np.float32, copy=False)
    if mask is not None:
        values[~mask] = np.nan
    return values


def _band_list(ds: gdal.Dataset) -> str:
    """'1 "VV" (CFloat32), 2 (Float32)': the bands a user can choose from."""
    names = []
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        label = f' "{band.GetDescription()}"' if band.GetDescription() else ""
        names.append(f"{index}{label} ({gdal.GetDataTypeName(band.DataType)})")
    return ", ".join(names)


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
    """A tiled, compressed GeoTIFF written window by window; visible at ``path`` only after :meth:`commit`.

    The file is written under a hidden name beside the destination, compressed as it goes,
    and renamed by :meth:`commit`. A compressed block costs one compression when it is
    written once and whole; a block rewritten after reaching the disk is decompressed and
    appended again. So windows that cover part of a block are assembled in memory until
    the block is complete. The tiling engine writes every pixel once, row of tiles after
    row of tiles, so the blocks held at any time are about one row of blocks.
    """

    def __init__(self, path: str | os.PathLike, grid: GridInfo, bands: Sequence[OutputBand],
                 metadata: dict[str, str] | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".tif", ".tiff"):
            raise InsarMlError(f"Output {self.path.name}: only GeoTIFF (.tif) outputs are supported.")
        if not self.path.parent.is_dir():
            raise InsarMlError(f"Output folder {self.path.parent} does not exist. Create it or pick another path.")
        if not os.access(self.path.parent, os.W_OK):
            raise _write_error(self.path, "the folder is not writable")
        self.bands = list(bands)
        self.grid = grid
        self._partial_path = self.path.parent / f".{self.path.stem}.{os.getpid()}-{id(self):x}{PARTIAL_SUFFIX}"
        is_complex = any(b.complex_values for b in self.bands)
        self._dtype = np.dtype(np.complex64 if is_complex else np.float32)
        # never-written pixels read as no-data (NaN) in real outputs, as 0 in complex ones
        self._fill = 0 if is_complex else np.nan
        self._pending: dict[tuple[int, int, int], _PartialBlock] = {}
        self._complete = np.zeros((len(self.bands), -(-grid.height // OUTPUT_BLOCK), -(-grid.width // OUTPUT_BLOCK)),
                                  dtype=bool)
        options = ["TILED=YES", f"BLOCKXSIZE={OUTPUT_BLOCK}", f"BLOCKYSIZE={OUTPUT_BLOCK}", "BIGTIFF=IF_SAFER",
                   "SPARSE_OK=TRUE", "INTERLEAVE=BAND", "NUM_THREADS=ALL_CPUS", *_compression(is_complex)]
        try:
            self._ds = gdal.GetDriverByName("GTiff").Create(
                str(self._partial_path), grid.width, grid.height, len(self.bands),
                gdal.GDT_CFloat32 if is_complex else gdal.GDT_Float32, options)
            if grid.geotransform:
                self._ds.SetGeoTransform(grid.geotransform)
            if grid.crs_wkt:
                self._ds.SetProjection(grid.crs_wkt)
            for i, band in enumerate(self.bands):
                b = self._ds.GetRasterBand(i + 1)
                b.SetDescription(band.description)
                if not is_complex:
                    b.SetNoDataValue(float("nan"))
            self._ds.SetMetadata({PLUGIN_VERSION_KEY: plugin_version(), **(metadata or {})})
        except RuntimeError as exc:
            error = _write_error(self.path, exc)
            self.abort()
            raise error from None

    def write(self, window: Window, array: np.ndarray, band: int = 0) -> None:
        """Write ``array`` at ``window``: whole blocks go to the file, parts of blocks wait for the rest."""
        values = np.asarray(array, dtype=self._dtype)
        try:
            for (by, bx), block in self._blocks_in(window):
                key = (band, by, bx)
                part = _intersection(window, block)
                piece = values[part.relative_to(window)]
                if part == block:
                    self._pending.pop(key, None)
                    self._complete[key] = True
                elif not self._complete[key]:  # (a part of a block already in the file is written over it)
                    pending = self._pending.setdefault(key, _PartialBlock(block, self._dtype, self._fill))
                    if not pending.add(part, piece):
                        continue
                    part, piece = block, self._pending.pop(key).values
                    self._complete[key] = True
                self._write_to_file(part, piece, band)
        except RuntimeError as exc:
            raise _write_error(self.path, exc) from None

    def _blocks_in(self, window: Window) -> Iterator[tuple[tuple[int, int], Window]]:
        """The file blocks ``window`` touches: (block row, block column), block window."""
        g = self.grid
        for by in range(window.row0 // OUTPUT_BLOCK, -(-(window.row0 + window.rows) // OUTPUT_BLOCK)):
            for bx in range(window.col0 // OUTPUT_BLOCK, -(-(window.col0 + window.cols) // OUTPUT_BLOCK)):
                r0, c0 = by * OUTPUT_BLOCK, bx * OUTPUT_BLOCK
                yield (by, bx), Window(r0, c0, min(OUTPUT_BLOCK, g.height - r0), min(OUTPUT_BLOCK, g.width - c0))

    def _write_to_file(self, window: Window, values: np.ndarray, band: int) -> None:
        self._ds.GetRasterBand(band + 1).WriteArray(values, window.col0, window.row0)

    def finish(self) -> None:
        """Write the blocks still in memory and close the hidden file; raises if any of it failed."""
        try:
            for (band, _, _), pending in self._pending.items():
                self._write_to_file(pending.block, pending.values, band)
            self._pending.clear()
            self._ds.FlushCache()
            failure = self._close()  # closing writes the last blocks and the TIFF directory
            if failure:
                raise RuntimeError(failure)
        except RuntimeError as exc:
            error = _write_error(self.path, exc)
            self.abort()
            raise error from None

    def _close(self) -> str | None:
        """Close the file; return the error closing met, if any. GDAL's bindings raise it from
        the dataset's destructor, where Python can only hand it to ``sys.unraisablehook``."""
        errors: list[str] = []
        previous = sys.unraisablehook

        def keep(unraisable) -> None:
            if getattr(unraisable.object, "__name__", "") == "delete_Dataset":
                errors.append(str(unraisable.exc_value))
            else:
                previous(unraisable)

        sys.unraisablehook = keep
        try:
            self._ds = None
        except RuntimeError as exc:
            errors.append(str(exc))
        finally:
            sys.unraisablehook = previous
            self._ds = None
        return errors[0] if errors else None

    def publish(self) -> Path:
        """Rename the finished hidden file to its destination."""
        try:
            os.replace(self._partial_path, self.path)
        except OSError as exc:
            error = _write_error(self.path, exc)
            self.abort()
            raise error from None
        return self.path

    def commit(self, progress: Progress | None = None) -> Path:
        """Finish the file and move it into place (cancel-aware)."""
        if progress is not None and progress.is_cancelled():
            self.abort()
            raise Cancelled("Cancelled by the user.")
        self.finish()
        return self.publish()

    def abort(self) -> None:
        """Remove every trace of this output."""
        self._pending.clear()
        if getattr(self, "_ds", None) is not None:
            self._close()  # on a full disk this fails too; the file goes either way
        self._partial_path.unlink(missing_ok=True)


def remove_stale_partials(path: str | os.PathLike) -> None:
    """Remove the hidden files of outputs to ``path`` that a killed run left (a failure or cancel removes its own)."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.stem)}.*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)


class _PartialBlock:
    """A file block being assembled from the windows that cover parts of it."""

    def __init__(self, block: Window, dtype: np.dtype, fill: float):
        self.block = block
        self.values = np.full((block.rows, block.cols), fill, dtype=dtype)
        self._covered = np.zeros((block.rows, block.cols), dtype=bool)

    def add(self, part: Window, values: np.ndarray) -> bool:
        """Copy ``values`` in at ``part``; True once every pixel of the block has arrived."""
        where = part.relative_to(self.block)
        self.values[where] = values
        self._covered[where] = True
        return bool(self._covered.all())


def _intersection(a: Window, b: Window) -> Window:
    r0, c0 = max(a.row0, b.row0), max(a.col0, b.col0)
    return Window(r0, c0, min(a.row0 + a.rows, b.row0 + b.rows) - r0, min(a.col0 + a.cols, b.col0 + b.cols) - c0)


def _compression(is_complex: bool) -> list[str]:
    """ZSTD level 1 where this GDAL has it (twice DEFLATE's speed at the same size on filter
    outputs), else DEFLATE level 1. Real bands take horizontal differencing of the 32-bit words
    (4-5 % smaller outputs): the floating-point predictor saves 4 % more but doubles the
    compression time, 0.9 s of CPU per 64 Mpx output pair. libtiff has no predictor for complex samples."""
    codecs = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    codec = ["COMPRESS=ZSTD", "ZSTD_LEVEL=1"] if "<Value>ZSTD</Value>" in codecs else ["COMPRESS=DEFLATE", "ZLEVEL=1"]
    return [*codec, f"PREDICTOR={1 if is_complex else 2}"]


def _write_error(path: Path, cause: object) -> InsarMlError:
    """The error for an output that cannot be written: which file, why, and what to do.

    A GDAL exception's traceback holds the frames of the failed call, and so the dataset,
    open on the failing disk, for as long as the new error lives: it is dropped here."""
    if isinstance(cause, BaseException):
        cause.__traceback__ = None
    folder = path.parent
    if not os.access(folder, os.W_OK):
        return InsarMlError(f"Cannot write the output {path}: the folder {folder} is read-only or not writable "
                            "for this user. Choose an output in a writable folder.")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if (free is not None and free < FULL_DISK_BYTES) or "No space left" in str(cause):
        return InsarMlError(f"Cannot write the output {path}: the disk holding {folder} is full. "
                            "Free some space there or choose an output on another disk.")
    return InsarMlError(f"Cannot write the output {path} ({cause}). Check that the folder is writable and that "
                        "its disk has free space, or choose another output folder.")


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
        """Finish every file first, then rename them all: a failure to finish one leaves no other in place."""
        done: dict[str, str] = {}
        try:
            check_cancel(progress or SilentProgress())
            for out in self.outputs.values():
                out.finish()
            for name, out in self.outputs.items():
                done[name] = str(out.publish())
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


def read_full(path: str | os.PathLike, role: str, kind: str, band: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole raster (small rasters: tests, reports, figures); ``band`` picks one of several."""
    raster = InputRaster(path, role, kind, band)
    return raster.read(Window(0, 0, raster.grid.height, raster.grid.width))
