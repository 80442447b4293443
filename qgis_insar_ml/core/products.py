"""Readers for the InSAR products users download or make: one pair, or every pair of a stack.

A reader recognises a product's layout from the file or folder the user picked and returns
:class:`ProductPair` records: plain strings naming the files, cheap to send to other processes.
:meth:`ProductPair.source` opens them as an :class:`InterferogramSource`, converting on the fly
(GDAL VRTs written as XML strings, nothing on disk) what the product stores differently from
what the filters read: LiCSAR's uint8 coherence and multilooked intensities, SNAP's i/q bands,
one pair of MintPy's 3-D stacks, georeferencing kept in product metadata.

Layouts: LiCSAR/LiCSBAS, ASF HyP3 (GAMMA and ISCE2 bursts), ISCE2 topsApp ``merged/``, SNAP
BEAM-DIMAP, MintPy ``ifgramStack.h5``, and plain interferogram rasters.
"""
from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

from osgeo import gdal, osr

from .errors import InsarMlError
from .inputs import InterferogramSource

gdal.UseExceptions()

_PAIR = re.compile(r"(?<!\d)((?:19|20)\d{6})(?:T\d{6})?[_-]((?:19|20)\d{6})(?:T\d{6})?(?!\d)")
# name tokens of the rasters beside interferograms in a plain folder (not pairs), and of unwrapped phases
_NOT_INTERFEROGRAM = re.compile(r"(?:^|[._-])(cc|coh|coherence|corr?|amp|amplitude|mli|pwr|dem|hgt|mask)(?:[._-]|$)",
                                re.IGNORECASE)
OUTPUT_MARK = ".insarml"  # in the name of every output that mirrors an input
_UNWRAPPED = re.compile(r"(?:^|[._-])unw(?:[._-]|$)", re.IGNORECASE)
_SNAP_DATE = re.compile(r"\d{2}[A-Z][a-z]{2}\d{4}")
_HYP3_SUFFIXES = ("_wrapped_phase.tif", "_unw_phase.tif", "_corr.tif", "_amp.tif")
_LICSAR_PHASES = ("geo.diff_unfiltered_pha.tif", "geo.diff_pha.tif", "geo.unw.tif")
_ISCE_FILES = ("topophase.flat", "filt_topophase.flat", "topophase.cor", "phsig.cor")
_PIXEL_GRID = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # what GDAL's ISCE driver reports for radar geometry (no georeferencing)
EXPECTED = ("a LiCSAR/LiCSBAS frame or pair folder (<pair>/<pair>.geo.diff_pha.tif), a HyP3 job folder "
            "(*_wrapped_phase.tif or *_unw_phase.tif), an ISCE2 merged/ folder (topophase.flat with .vrt or .xml), "
            "a SNAP .dim product, a MintPy ifgramStack.h5, or interferogram rasters (.tif)")


@dataclass(frozen=True)
class ProductPair:
    """One interferometric pair found in a product, ready to filter.

    The fields name files (or GDAL subdatasets) only, so that the record is cheap to pickle;
    ``band``, ``geotransform``, ``crs_wkt``, ``nodata`` and ``unwrapped`` say what the files
    alone do not: which band holds this pair (MintPy stacks), the georeferencing and no-data
    value kept in the product's metadata (MintPy attributes, SNAP .dim), and whether the
    interferogram is an unwrapped phase (read wrapped, as exp(i·phase)).
    """

    name: str
    product: str                   # "licsar" | "hyp3" | "isce2" | "snap" | "mintpy" | "raster"
    interferogram: str | None
    slc_reference: str | None = None
    slc_secondary: str | None = None
    amplitude_reference: str | None = None
    amplitude_secondary: str | None = None
    coherence: str | None = None
    notes: tuple[str, ...] = ()
    output_stem: str = ""
    band: int = 1
    geotransform: tuple[float, ...] | None = None
    crs_wkt: str = ""
    nodata: float | None = None
    unwrapped: bool = False

    @property
    def has_amplitudes(self) -> bool:
        """Whether :meth:`source` will know the SLC amplitudes (the rule of
        :attr:`InterferogramSource.has_amplitudes`: an interferogram takes precedence over SLCs),
        known without opening a file."""
        return bool(self.amplitude_reference or (not self.interferogram and self.slc_reference
                                                 and self.slc_secondary))

    def source(self) -> InterferogramSource:
        """Open the inputs as the filters read them."""
        return InterferogramSource(**self.source_arguments())

    def source_arguments(self) -> dict:
        """The :class:`InterferogramSource` keyword arguments that read this pair (VRT XML where converted)."""
        views = _Views(self)
        arguments = dict(
            interferogram=views.interferogram(), slc_reference=views.slc(self.slc_reference),
            slc_secondary=views.slc(self.slc_secondary),
            amplitude_reference=views.amplitude(self.amplitude_reference),
            amplitude_secondary=views.amplitude(self.amplitude_secondary), coherence=views.coherence())
        return arguments | {"labels": views.labels}


def open_product(path: str, pair: str | int | None = None) -> ProductPair:
    """The pair in what the user picked: a product folder or one of its files, or a stack.

    ``pair`` picks one pair of a stack (MintPy file, LiCSAR frame, folder of HyP3 jobs ...)
    by name (``20200101_20200113``) or index; empty = the first (its notes say so).
    """
    p = _existing(path)
    if p.is_file() and not _is_mintpy(p):
        if p.suffix.lower() in (".h5", ".he5"):
            raise InsarMlError(f"{p} is an HDF5 file but not a MintPy ifgramStack.h5 (no unwrapPhase or wrapPhase "
                               "stack). Pick a MintPy ifgramStack.h5.")
        return _pick([_pair_from_file(p) or _plain_raster(p)], pair, p)
    single = _pair_in_folder(p) if p.is_dir() else None
    pairs = [single] if single is not None else (_mintpy_pairs(p) if _is_mintpy(p) else _stack_in_folder(p))
    if not pairs:
        raise InsarMlError(f"{p} is not a product layout the plugin knows. Expected {EXPECTED}.")
    return _pick(pairs, pair, p)


def find_pairs(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[ProductPair]:
    """Every pair of a stack, sorted by name: folders, product files, or a list of them."""
    pairs: list[ProductPair] = []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
        p = _existing(path)
        if _is_mintpy(p):
            pairs += _mintpy_pairs(p)
        elif p.is_file():
            pairs.append(open_product(str(p)))
        else:
            single = _pair_in_folder(p)
            found = [single] if single is not None else _stack_in_folder(p)
            if not found:
                raise InsarMlError(f"No interferometric pair found in {p}. Expected {EXPECTED}.")
            pairs += found
    if not pairs:
        raise InsarMlError("No input given: pick a product folder or files.")
    return sorted(pairs, key=lambda pair: (pair.name, pair.output_stem))


# --------------------------------------------------------------------------- recognising layouts

def _existing(path: str) -> Path:
    if not str(path).strip():
        raise InsarMlError("No product given: pick a product file or folder.")
    p = Path(path).expanduser()
    if not p.exists():
        raise InsarMlError(f"Product not found: {p}. Check the path.")
    return p.resolve()


def _is_mintpy(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in (".h5", ".he5") and _mintpy_phase_dataset(p) is not None


def _pair_from_file(p: Path) -> ProductPair | None:
    """The product a file belongs to, or None for a plain raster."""
    name = p.name.lower()
    if p.suffix.lower() == ".dim":
        return _snap_pair(p)
    if p.parent.suffix.lower() == ".data" and p.suffix.lower() in (".img", ".hdr"):
        return _snap_pair(_dim_of(p.parent))
    if _PAIR.search(p.name) and any(name.endswith(s) for s in (*_LICSAR_PHASES, "geo.cc.tif")):
        return _licsar_pair(p.parent)
    if any(name.endswith(s) for s in _HYP3_SUFFIXES):
        return _hyp3_pair(p.parent)
    if _isce_base(p.name) is not None:
        return _isce_pair(p.parent, geocoded=".geo" in p.name)
    return None


def _pair_in_folder(p: Path) -> ProductPair | None:
    """The single pair a folder is (LiCSAR pair, HyP3 job, ISCE2 merged/, SNAP .data), or None."""
    if p.suffix.lower() == ".data" and p.with_suffix(".dim").is_file():
        return _snap_pair(p.with_suffix(".dim"))
    if _licsar_phase(p) is not None:
        return _licsar_pair(p)
    if _hyp3_phase(p) is not None:
        return _hyp3_pair(p)
    for folder in (p, p / "merged"):
        for geocoded in (False, True):
            if any(_isce_file(folder, base, geocoded) for base in ("topophase.flat", "filt_topophase.flat")):
                return _isce_pair(folder, geocoded)
    return None


def _stack_in_folder(p: Path) -> list[ProductPair]:
    """Every pair under a stack folder (LiCSAR frame, HyP3 jobs, SNAP products, MintPy, rasters)."""
    licsar_root = p / "interferograms" if (p / "interferograms").is_dir() else p
    subfolders = sorted(d for d in licsar_root.iterdir() if d.is_dir())
    licsar = [_licsar_pair(d) for d in subfolders if _licsar_phase(d) is not None]
    if licsar:
        return licsar
    hyp3 = [_hyp3_pair(d) for d in sorted(p.iterdir()) if d.is_dir() and _hyp3_phase(d) is not None]
    if hyp3:
        return hyp3
    snap = [_snap_pair(f) for f in sorted(p.glob("*.dim"))]
    if snap:
        return snap
    for h5 in (p / "ifgramStack.h5", p / "inputs" / "ifgramStack.h5"):
        if _is_mintpy(h5):
            return _mintpy_pairs(h5)
    return [_plain_raster(f) for f in sorted(p.iterdir())
            if f.suffix.lower() in (".tif", ".tiff") and f.is_file() and not _is_derived(f.name)
            and not _NOT_INTERFEROGRAM.search(f.stem) and _is_interferogram_raster(f)]


def _is_derived(name: str) -> bool:
    """A hidden file (an output being written) or this plugin's own output: never an input pair."""
    return name.startswith(".") or OUTPUT_MARK in name


def _pair_name(text: str, fallback: str) -> str:
    match = _PAIR.search(text)
    return f"{match.group(1)}_{match.group(2)}" if match else fallback


def _stem(folder: Path, name: str) -> str:
    return str(folder / f"{name}{OUTPUT_MARK}")


def _pick(pairs: list[ProductPair], pair: str | int | None, path: Path) -> ProductPair:
    if pair in (None, ""):
        if len(pairs) == 1:
            return pairs[0]
        return replace(pairs[0], notes=(f"{path.name} holds {len(pairs)} pairs; filtered the first, {pairs[0].name} "
                                        "(set PAIR to pick another, or filter them all with the stack algorithm).",
                                        *pairs[0].notes))
    names = [p.name for p in pairs]
    if isinstance(pair, int) or str(pair).strip().lstrip("-").isdigit():
        index = int(pair)
        if not -len(pairs) <= index < len(pairs):
            raise InsarMlError(f"PAIR {index}: {path.name} holds {len(pairs)} pairs (indices 0 to {len(pairs) - 1}).")
        return pairs[index]
    if str(pair).strip() not in names:
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise InsarMlError(f"PAIR {pair}: no such pair in {path.name}. Its pairs are {shown}.")
    return pairs[names.index(str(pair).strip())]


# --------------------------------------------------------------------------- plain rasters

def _is_interferogram_raster(path: Path) -> bool:
    """A raster with one complex band or one real band (a phase), as a folder of interferograms holds."""
    try:
        ds = gdal.Open(str(path))
    except RuntimeError:
        return False
    return ds is not None and ds.RasterCount == 1


def _plain_raster(p: Path) -> ProductPair:
    """A raster as the INTERFEROGRAM input reads it; one named as unwrapped (``unw``) is wrapped."""
    unwrapped = bool(_UNWRAPPED.search(p.stem))
    notes = (f"{p.name}: its name says unwrapped phase (unw); wrapped it.",) if unwrapped else ()
    return ProductPair(_pair_name(p.name, p.stem), "raster", str(p), notes=notes,
                       output_stem=_stem(p.parent, p.stem), unwrapped=unwrapped)


# --------------------------------------------------------------------------- LiCSAR / LiCSBAS

def _licsar_phase(folder: Path) -> Path | None:
    """The pair folder's phase raster, preferring the unfiltered one."""
    if not folder.is_dir() or not _PAIR.fullmatch(folder.name):
        return None
    for suffix in _LICSAR_PHASES:
        candidate = folder / f"{folder.name}.{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _licsar_pair(folder: Path) -> ProductPair:
    phase = _licsar_phase(folder)
    if phase is None:
        raise InsarMlError(f"{folder} is not a LiCSAR pair folder: it has no {folder.name}.geo.diff_pha.tif "
                           "(or diff_unfiltered_pha / unw).")
    name = folder.name
    notes = []
    if phase.name.endswith("diff_unfiltered_pha.tif"):
        notes.append(f"LiCSAR: used the unfiltered phase {phase.name}"
                     + (" (the Goldstein-filtered diff_pha.tif is beside it)."
                        if (folder / f"{name}.geo.diff_pha.tif").is_file() else "."))
    elif phase.name.endswith("diff_pha.tif"):
        notes.append(f"LiCSAR: used {phase.name}, which LiCSAR has already Goldstein-filtered "
                     "(no diff_unfiltered_pha.tif in the folder).")
    else:
        notes.append(f"LiCSAR: no wrapped phase in the folder; wrapped the unwrapped phase {phase.name}.")
    coherence = folder / f"{name}.geo.cc.tif"
    if coherence.is_file():
        notes.append("LiCSAR coherence: uint8 0-255 read as 0-1, 0 as no data.")
    amplitudes = [_licsar_mli(folder, date) for date in name.split("_")]
    if all(amplitudes):
        notes.append("LiCSAR amplitudes: square root of the epochs' multilooked intensities (.geo.mli.tif).")
    else:
        amplitudes = [None, None]
        notes.append("LiCSAR: no .geo.mli.tif of both epochs found (epochs/<date>/ or GEOC.MLI/<date>/); "
                     "filtering without amplitudes.")
    return ProductPair(name, "licsar", str(phase), unwrapped=phase.name.endswith("unw.tif"),
                       amplitude_reference=_str(amplitudes[0]),
                       amplitude_secondary=_str(amplitudes[1]),
                       coherence=str(coherence) if coherence.is_file() else None, notes=tuple(notes),
                       output_stem=_stem(folder, phase.name.removesuffix(".tif")))


def _licsar_mli(pair_folder: Path, date: str) -> Path | None:
    """An epoch's MLI in the frame layout (epochs/), LiCSBAS (GEOC.MLI/) or beside the pairs."""
    parent = pair_folder.parent
    frame = parent.parent if parent.name == "interferograms" else parent
    for candidate in (frame / "epochs" / date / f"{date}.geo.mli.tif",
                      parent.parent / f"{parent.name}.MLI" / date / f"{date}.geo.mli.tif",
                      parent / f"{date}.geo.mli.tif"):
        if candidate.is_file():
            return candidate
    return None


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


# --------------------------------------------------------------------------- ASF HyP3

def _hyp3_phase(folder: Path) -> Path | None:
    for suffix in ("_wrapped_phase.tif", "_unw_phase.tif"):
        found = sorted(folder.glob(f"*{suffix}"))
        if found:
            return found[0]
    return None


def _hyp3_pair(folder: Path) -> ProductPair:
    phase = _hyp3_phase(folder)
    if phase is None:
        raise InsarMlError(f"{folder} is not a HyP3 job folder: it has no *_wrapped_phase.tif or *_unw_phase.tif.")
    job = phase.name.rsplit("_wrapped_phase.tif", 1)[0].rsplit("_unw_phase.tif", 1)[0]
    processor = "ISCE2 burst" if re.match(r"S1_\d+_IW\d", job) else "GAMMA"
    notes = []
    if phase.name.endswith("_wrapped_phase.tif"):
        notes.append(f"HyP3 ({processor}): {phase.name} is already filtered by HyP3's adaptive (Goldstein) "
                     "phase filter before unwrapping; filtering it again smooths it further.")
    else:
        notes.append(f"HyP3 ({processor}): no _wrapped_phase.tif in the job; wrapped the unwrapped phase "
                     f"{phase.name}, which HyP3 unwrapped from its Goldstein-filtered interferogram.")
    amplitude = folder / f"{job}_amp.tif"
    if amplitude.is_file():
        notes.append(f"HyP3: {amplitude.name} is the reference scene's backscatter only; used as both amplitudes.")
    coherence = folder / f"{job}_corr.tif"
    return ProductPair(_pair_name(job, job), "hyp3", str(phase), unwrapped=phase.name.endswith("_unw_phase.tif"),
                       amplitude_reference=str(amplitude) if amplitude.is_file() else None,
                       amplitude_secondary=str(amplitude) if amplitude.is_file() else None,
                       coherence=str(coherence) if coherence.is_file() else None, notes=tuple(notes),
                       output_stem=_stem(folder, phase.name.removesuffix(".tif")))


# --------------------------------------------------------------------------- ISCE2 topsApp merged/

def _isce_base(filename: str) -> str | None:
    """The ISCE product a file of merged/ belongs to (``topophase.flat`` for topophase.flat.geo.vrt ...)."""
    name = filename.removesuffix(".vrt").removesuffix(".xml").removesuffix(".geo")
    return name if name in _ISCE_FILES else None


def _isce_file(folder: Path, base: str, geocoded: bool = False) -> str | None:
    """What GDAL opens for an ISCE2 image: its .vrt, else the raw file beside its .xml (ISCE driver)."""
    raw = folder / (base + (".geo" if geocoded else ""))
    if Path(f"{raw}.vrt").is_file():
        return f"{raw}.vrt"
    if raw.is_file() and Path(f"{raw}.xml").is_file():
        return str(raw)
    return None


def _isce_pair(folder: Path, geocoded: bool) -> ProductPair:
    unfiltered = _isce_file(folder, "topophase.flat", geocoded)
    filtered = _isce_file(folder, "filt_topophase.flat", geocoded)
    if unfiltered is None and filtered is None:
        raise InsarMlError(f"{folder}: no ISCE2 interferogram (topophase.flat or filt_topophase.flat"
                           f"{'.geo' if geocoded else ''} with its .vrt or .xml).")
    notes = []
    if unfiltered:
        notes.append("ISCE2: used the unfiltered topophase.flat" +
                     (" (filt_topophase.flat, Goldstein-filtered, is beside it)." if filtered else "."))
    else:
        notes.append("ISCE2: only filt_topophase.flat is there; ISCE2 has already Goldstein-filtered it.")
    correlation = _isce_file(folder, "topophase.cor", geocoded)
    phase_sigma = _isce_file(folder, "phsig.cor", geocoded)
    if correlation:
        notes.append("ISCE2 coherence: band 2 of topophase.cor. Amplitudes: its band 1, the geometric mean "
                     "sqrt(|s1|·|s2|) of the two SLCs' amplitudes (ISCE2 keeps no per-date amplitude), "
                     "used for both.")
    elif phase_sigma:
        notes.append("ISCE2 coherence: phsig.cor (phase-sigma coherence of the filtered interferogram); "
                     "no topophase.cor, so no amplitudes.")
    if not geocoded and _isce_file(folder, "topophase.flat", True):
        notes.append("ISCE2: filtered in radar geometry; pick topophase.flat.geo to filter the geocoded files.")
    if not geocoded:
        notes.append("ISCE2: radar geometry has no georeferencing; the outputs have none either.")
    name = _pair_name(str(folder), folder.parent.name if folder.name == "merged" else folder.name)
    phase = unfiltered or filtered
    return ProductPair(name, "isce2", phase, amplitude_reference=correlation, amplitude_secondary=correlation,
                       coherence=correlation or phase_sigma, notes=tuple(notes),
                       output_stem=_stem(folder, Path(phase).name.removesuffix(".vrt")))


# --------------------------------------------------------------------------- SNAP BEAM-DIMAP

def _dim_of(data_folder: Path) -> Path:
    dim = data_folder.with_suffix(".dim")
    if not dim.is_file():
        raise InsarMlError(f"{data_folder} has no {dim.name} beside it: pick the SNAP product's .dim file.")
    return dim


@dataclass(frozen=True)
class _SnapBand:
    name: str
    image: Path
    nodata: float | None


def _snap_bands(dim: Path, root: ET.Element) -> dict[str, _SnapBand]:
    """The bands stored in .data/ (virtual bands have no file), by name."""
    files = {}
    for data_file in root.iter("Data_File"):
        href = data_file.find("DATA_FILE_PATH")
        if href is not None and data_file.findtext("BAND_INDEX") is not None:
            files[data_file.findtext("BAND_INDEX").strip()] = (dim.parent / href.get("href", "")).with_suffix(".img")
    bands = {}
    for info in root.iter("Spectral_Band_Info"):
        index, name = (info.findtext("BAND_INDEX") or "").strip(), (info.findtext("BAND_NAME") or "").strip()
        if index in files and files[index].is_file():
            used = (info.findtext("NO_DATA_VALUE_USED") or "").strip().lower() == "true"
            bands[name] = _SnapBand(name, files[index], float(info.findtext("NO_DATA_VALUE")) if used else None)
    return bands


def _snap_georeferencing(root: ET.Element) -> tuple[tuple[float, ...] | None, str]:
    """CRS and geotransform of a map-geocoded product; none for radar geometry (tie-point geocoding)."""
    wkt = (root.findtext("Coordinate_Reference_System/WKT") or "").strip()
    transform = root.findtext("Geoposition/IMAGE_TO_MODEL_TRANSFORM")
    if not wkt or not transform:
        return None, ""
    srs = osr.SpatialReference()
    try:
        srs.ImportFromWkt(wkt)
    except RuntimeError:
        return None, ""
    # Java AffineTransform flat matrix (m00, m10, m01, m11, m02, m12) -> GDAL (m02, m00, m01, m12, m10, m11)
    m00, m10, m01, m11, m02, m12 = (float(v) for v in transform.split(","))
    return (m02, m00, m01, m12, m10, m11), srs.ExportToWkt()


def _snap_date(text: str) -> str:
    return datetime.strptime(text, "%d%b%Y").strftime("%Y%m%d")


def _iq_pairs(bands: dict[str, _SnapBand], prefix: str) -> list[str]:
    """Suffixes X of the bands i_<prefix>X that have their q_<prefix>X."""
    return [name[2 + len(prefix):] for name in bands
            if name.startswith(f"i_{prefix}") and f"q_{name[2:]}" in bands]


def _snap_pair(dim: Path) -> ProductPair:
    try:
        root = ET.parse(dim).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InsarMlError(f"{dim} is not a readable BEAM-DIMAP header ({exc}). Pick the .dim SNAP wrote.") from None
    bands = _snap_bands(dim, root)
    geotransform, crs = _snap_georeferencing(root)
    notes = ["SNAP: " + ("map-geocoded; georeferencing from the .dim." if geotransform
                         else "radar geometry (no map geocoding in the .dim); the outputs have no georeferencing.")]
    if re.search(r"goldstein", dim.read_text(encoding="utf-8", errors="replace"), re.IGNORECASE):
        notes.append("SNAP: the product's processing history includes the Goldstein phase filter; "
                     "its interferogram is already filtered.")
    coherences = sorted(name for name in bands if name.startswith("coh_"))
    coherence = str(bands[coherences[0]].image) if coherences else None
    interferograms = sorted(_iq_pairs(bands, "ifg_"))
    fields: dict = {}
    if interferograms:
        chosen = interferograms[0]
        fields["interferogram"] = str(bands[f"i_ifg_{chosen}"].image)
        dates = _SNAP_DATE.findall(chosen)
        name = "_".join(_snap_date(d) for d in dates[:2]) if len(dates) >= 2 else dim.stem
        others = f" (also in the product: {', '.join(interferograms[1:])})." if len(interferograms) > 1 else "."
        notes.append(f"SNAP interferogram: bands i_ifg_{chosen} + q_ifg_{chosen}{others}")
    else:
        by_date: dict[str, str] = {}
        for suffix in sorted(_iq_pairs(bands, "")):
            dates = _SNAP_DATE.findall(suffix)
            if dates:
                by_date.setdefault(_snap_date(dates[-1]), suffix)
        if len(by_date) < 2:
            raise InsarMlError(f"{dim.name}: no interferogram (i_ifg_*/q_ifg_* bands) and no co-registered SLC pair "
                               "(i_*/q_* bands of two dates) stored in its .data folder. Export the interferogram "
                               "or the co-registered stack from SNAP as BEAM-DIMAP.")
        reference, secondary = sorted(by_date)[:2]
        fields["slc_reference"] = str(bands["i_" + by_date[reference]].image)
        fields["slc_secondary"] = str(bands["i_" + by_date[secondary]].image)
        name = f"{reference}_{secondary}"
        notes.append(f"SNAP SLC pair: i_/q_{by_date[reference]} (reference) and i_/q_{by_date[secondary]} (secondary)"
                     + (f"; other dates ignored: {', '.join(sorted(by_date)[2:])}." if len(by_date) > 2 else "."))
    if coherence:
        notes.append(f"SNAP coherence: band {coherences[0]}.")
    main = Path(fields.get("interferogram") or fields["slc_reference"])
    return ProductPair(name, "snap", fields.get("interferogram"), fields.get("slc_reference"),
                       fields.get("slc_secondary"), coherence=coherence, notes=tuple(notes),
                       output_stem=_stem(dim.parent, dim.stem), geotransform=geotransform, crs_wkt=crs,
                       nodata=next(b.nodata for b in bands.values() if b.image == main))


# --------------------------------------------------------------------------- MintPy

def _subdataset(h5: Path, dataset: str) -> str:
    return f'HDF5:"{h5}"://{dataset}'


def _mintpy_phase_dataset(h5: Path) -> str | None:
    try:
        names = {name.rsplit("//", 1)[-1] for name, _ in gdal.Open(str(h5)).GetSubDatasets()}
    except RuntimeError:
        return None
    return next((d for d in ("wrapPhase", "unwrapPhase") if d in names), None)


def _mintpy_pairs(h5: Path) -> list[ProductPair]:
    phase = _mintpy_phase_dataset(h5)
    attributes = gdal.Open(str(h5)).GetMetadata()
    multidim = gdal.OpenEx(str(h5), gdal.OF_MULTIDIM_RASTER)  # kept open while its group is read
    group = multidim.GetRootGroup()
    dates = group.OpenMDArray("date").Read() if "date" in (group.GetMDArrayNames() or []) else []
    dropped = group.OpenMDArray("dropIfgram").ReadAsArray() if "dropIfgram" in group.GetMDArrayNames() else None
    count = gdal.Open(_subdataset(h5, phase)).RasterCount
    if len(dates) != 2 * count:
        raise InsarMlError(f"{h5.name}: its date dataset does not list the {count} pairs of {phase}. "
                           "Is it a MintPy ifgramStack.h5?")
    geotransform, crs = _mintpy_georeferencing(attributes)
    notes = [f"MintPy: pair read from the {phase} stack of {h5.name}."]
    if phase == "unwrapPhase":
        notes.append("MintPy: no wrapPhase in the file; wrapped the unwrapped phase.")
    if geotransform is None:
        notes.append("MintPy: radar coordinates (no X_FIRST/Y_FIRST); the outputs have no georeferencing.")
    has_coherence = "coherence" in group.GetMDArrayNames()
    pairs = []
    for index in range(count):
        name = f"{dates[2 * index]}_{dates[2 * index + 1]}"
        is_dropped = dropped is not None and not dropped[index]
        extra = (f"MintPy marks {name} as dropped (dropIfgram = False).",) if is_dropped else ()
        pairs.append(ProductPair(
            name, "mintpy", _subdataset(h5, phase),
            coherence=_subdataset(h5, "coherence") if has_coherence else None, notes=(*notes, *extra),
            output_stem=_stem(h5.parent, f"{h5.stem}.{name}"), band=index + 1, geotransform=geotransform,
            crs_wkt=crs, unwrapped=phase == "unwrapPhase"))
    return pairs


def _mintpy_georeferencing(attributes: dict[str, str]) -> tuple[tuple[float, ...] | None, str]:
    """Geotransform from X/Y_FIRST (the first pixel's upper-left corner) and X/Y_STEP; CRS from EPSG."""
    try:
        x0, dx, y0, dy = (float(attributes[k]) for k in ("X_FIRST", "X_STEP", "Y_FIRST", "Y_STEP"))
    except (KeyError, ValueError):
        return None, ""
    srs = osr.SpatialReference()
    epsg = attributes.get("EPSG", "").strip()
    if epsg.isdigit():
        srs.ImportFromEPSG(int(epsg))
    elif attributes.get("X_UNIT", "degrees").lower().startswith("deg"):
        srs.ImportFromEPSG(4326)
    else:
        return (x0, dx, 0.0, y0, 0.0, dy), ""
    return (x0, dx, 0.0, y0, 0.0, dy), srs.ExportToWkt()


# --------------------------------------------------------------------------- opening: GDAL VRT views

class _Views:
    """Each input of a pair as GDAL reads it: the file itself, or a VRT (XML string) that converts it.

    ``labels`` maps each VRT back to the user's file, for error messages.
    """

    def __init__(self, pair: ProductPair):
        self.pair = pair
        self.labels: dict[str, str] = {}
        self._georef = (pair.geotransform, pair.crs_wkt) if pair.geotransform else None

    def interferogram(self) -> str | None:
        path = self.pair.interferogram
        if path is None:
            return None
        if self.pair.product == "snap":
            return self._view(path, imag=_snap_q(path), nodata=self.pair.nodata)
        return self._view(path, band=self.pair.band, wrap=self.pair.unwrapped)

    def slc(self, path: str | None) -> str | None:
        return self._view(path, imag=_snap_q(path), nodata=self.pair.nodata) if path else None

    def amplitude(self, path: str | None) -> str | None:
        if not path:
            return None
        if self.pair.product == "licsar":
            return self._view(path, sqrt=True)
        return self._view(path, band=1)

    def coherence(self) -> str | None:
        path = self.pair.coherence
        if not path:
            return None
        ds = _open(path)
        band = self.pair.band if self.pair.product == "mintpy" else (2 if ds.RasterCount == 2 else 1)
        if ds.GetRasterBand(band).DataType == gdal.GDT_Byte:
            return self._view(path, band=band, scale=1 / 255, nodata=0.0)
        return self._view(path, band=band, nodata=self.pair.nodata)

    def _view(self, path: str, band: int = 1, imag: str | None = None, scale: float | None = None,
              nodata: float | None = None, sqrt: bool = False, wrap: bool = False) -> str:
        ds = _open(path)
        georef = self._georef or _own_georeferencing(ds)
        if (band == 1 and imag is None and scale is None and nodata is None and not sqrt and not wrap
                and ds.RasterCount == 1 and georef == _own_georeferencing(ds, keep_pixel_grid=True)):
            return path
        sources = [(path, band, ds)] + ([(imag, 1, _open(imag))] if imag else [])
        bands = "".join(_vrt_band(i + 1, src, src_band, src_ds, scale, nodata, sqrt, wrap)
                        for i, (src, src_band, src_ds) in enumerate(sources))
        header = ""
        if georef and georef[0]:
            header = (f"<SRS>{escape(georef[1])}</SRS>" if georef[1] else "") + \
                     f"<GeoTransform>{', '.join(repr(v) for v in georef[0])}</GeoTransform>"
        xml = f'<VRTDataset rasterXSize="{ds.RasterXSize}" rasterYSize="{ds.RasterYSize}">{header}{bands}</VRTDataset>'
        self.labels[xml] = _label(path, band)
        return xml


def _label(path: str, band: int) -> str:
    """The user's file a view reads: ``/x/ifgramStack.h5 (wrapPhase, band 2)`` for an HDF5 subdataset."""
    match = re.fullmatch(r'HDF5:"(.+)"://(.+)', path)
    return f"{match.group(1)} ({match.group(2)}, band {band})" if match else path


def _snap_q(i_band_image: str | None) -> str | None:
    """The q_ band file that completes a SNAP i_ band file."""
    if not i_band_image:
        return None
    p = Path(i_band_image)
    return str(p.with_name("q_" + p.name[2:]))


def _open(path: str) -> gdal.Dataset:
    if not path.startswith("HDF5:") and not Path(path).is_file():
        raise InsarMlError(f"Product file not found: {path}. The product is incomplete; download or export it again.")
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        raise InsarMlError(f"GDAL cannot read the product file {path} ({exc}).") from None
    if ds is None or ds.RasterCount == 0:
        raise InsarMlError(f"The product file {path} holds no raster band.")
    return ds


def _own_georeferencing(ds: gdal.Dataset, keep_pixel_grid: bool = False) -> tuple[tuple[float, ...] | None, str]:
    """A dataset's georeferencing; the identity pixel grid of radar geometry counts as none
    (GDAL's ISCE driver reports it, with EPSG:4326, for every radar-geometry image)."""
    gt = ds.GetGeoTransform(can_return_null=True)
    crs = ds.GetProjection() or ""
    if gt is not None and tuple(gt) == _PIXEL_GRID and not keep_pixel_grid:
        return None, ""
    return (tuple(gt) if gt else None, crs)


def _vrt_band(index: int, path: str, band: int, ds: gdal.Dataset, scale: float | None, nodata: float | None,
              sqrt: bool, wrap: bool) -> str:
    """One VRT band reading ``band`` of ``path``: scaled (no-data pixels to NaN), square-rooted,
    wrapped (an unwrapped phase as the complex exp(i·phase), no-data pixels 0 and masked), or as is."""
    source_band = ds.GetRasterBand(band)
    own_nodata = source_band.GetNoDataValue()
    nodata = own_nodata if nodata is None else nodata
    data_type = gdal.GetDataTypeName(source_band.DataType)
    source = f'<SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename><SourceBand>{band}</SourceBand>'
    if wrap:  # GDAL's polar pixel function: amplitude (1 where the phase is valid) and phase -> complex
        skip = "" if nodata is None else f"<NODATA>{'nan' if math.isnan(nodata) else repr(nodata)}</NODATA>"
        return (f'<VRTRasterBand dataType="CFloat32" band="{index}" subClass="VRTDerivedRasterBand">'
                f'{"" if nodata is None else "<NoDataValue>0</NoDataValue>"}'
                '<PixelFunctionType>polar</PixelFunctionType>'
                f'<SourceTransferType>Float32</SourceTransferType><ComplexSource>{source}{skip}'
                '<ScaleOffset>1</ScaleOffset><ScaleRatio>0</ScaleRatio></ComplexSource>'
                f'<SimpleSource>{source}</SimpleSource></VRTRasterBand>')
    if scale is not None:
        return (f'<VRTRasterBand dataType="Float32" band="{index}"><NoDataValue>nan</NoDataValue><ComplexSource>'
                f'{source}<NODATA>{nodata!r}</NODATA><ScaleOffset>0</ScaleOffset><ScaleRatio>{scale!r}</ScaleRatio>'
                '</ComplexSource></VRTRasterBand>')
    nodata_xml = "" if nodata is None else f"<NoDataValue>{'nan' if math.isnan(nodata) else repr(nodata)}</NoDataValue>"
    if sqrt:
        return (f'<VRTRasterBand dataType="Float32" band="{index}" subClass="VRTDerivedRasterBand">{nodata_xml}'
                '<PixelFunctionType>sqrt</PixelFunctionType><SourceTransferType>Float32</SourceTransferType>'
                f'<SimpleSource>{source}</SimpleSource></VRTRasterBand>')
    return (f'<VRTRasterBand dataType="{data_type}" band="{index}">{nodata_xml}<SimpleSource>{source}</SimpleSource>'
            '</VRTRasterBand>')
