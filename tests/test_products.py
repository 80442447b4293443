"""Product readers on tiny replicas of real layouts: LiCSAR, HyP3, ISCE2, SNAP, MintPy, plain rasters."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from conftest import GEOTRANSFORM, read_band, write_raster
from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.products import ProductPair, find_pairs, open_product
from qgis_insar_ml.core.raster_io import Window

ROWS, COLS = 32, 40
WHOLE = Window(0, 0, ROWS, COLS)
GEO_4326 = (23.0, 0.001, 0.0, 39.5, 0.0, -0.001)


def ramp(scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    y, x = np.mgrid[0:ROWS, 0:COLS]
    return (offset + scale * (0.07 * x + 0.03 * y)).astype(np.float32)


def wrapped(phase: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * phase)).astype(np.float32)


def write_byte(path: Path, array: np.ndarray, geotransform=GEO_4326, epsg: int = 4326) -> str:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), COLS, ROWS, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(array)
    ds = None
    return str(path)


def assert_epsg(wkt: str, epsg: int) -> None:
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    assert srs.GetAuthorityCode(None) == str(epsg)


# --------------------------------------------------------------------------- LiCSAR

def licsar_pair(frame: Path, pair: str, unfiltered: bool = True, mli: bool = True) -> Path:
    folder = frame / "interferograms" / pair
    folder.mkdir(parents=True)
    write_raster(folder / f"{pair}.geo.diff_pha.tif", wrapped(ramp(3.0)), GEO_4326, 4326, nodata=0)
    if unfiltered:
        write_raster(folder / f"{pair}.geo.diff_unfiltered_pha.tif", wrapped(ramp(2.0, 0.5)), GEO_4326, 4326, nodata=0)
    coherence = np.full((ROWS, COLS), 128, np.uint8)
    coherence[0, :5] = [0, 255, 1, 51, 204]
    write_byte(folder / f"{pair}.geo.cc.tif", coherence)
    if mli:
        for index, date in enumerate(pair.split("_")):
            (frame / "epochs" / date).mkdir(parents=True, exist_ok=True)
            write_raster(frame / "epochs" / date / f"{date}.geo.mli.tif", ramp(10.0, 4.0 + index), GEO_4326, 4326)
    return folder


def test_licsar_pair_prefers_unfiltered_phase_scales_coherence_and_takes_mli_square_root(tmp_path):
    folder = licsar_pair(tmp_path / "frame", "20200101_20200113")
    pair = open_product(str(folder))
    assert (pair.name, pair.product) == ("20200101_20200113", "licsar")
    assert pair.interferogram.endswith("diff_unfiltered_pha.tif")
    assert any("unfiltered" in note and "diff_pha.tif" in note for note in pair.notes)
    assert pair.output_stem == str(folder / "20200101_20200113.geo.diff_unfiltered_pha.insarml")
    source = pair.source()
    assert source.grid.geotransform == GEO_4326
    assert_epsg(source.grid.crs_wkt, 4326)
    block = source.read(WHOLE)
    mli1, mli2 = ramp(10.0, 4.0), ramp(10.0, 5.0)
    # power = (sqrt(mli))^2 = mli; the phase-only interferogram gets the amplitudes' product
    np.testing.assert_allclose(block.power_reference, mli1, rtol=1e-5)
    np.testing.assert_allclose(block.power_secondary, mli2, rtol=1e-5)
    np.testing.assert_allclose(np.angle(block.interferogram), wrapped(ramp(2.0, 0.5)), atol=1e-5)
    np.testing.assert_allclose(np.abs(block.interferogram), np.sqrt(mli1 * mli2), rtol=1e-4)
    coherence, valid = source.coherence_raster.read(WHOLE)
    np.testing.assert_allclose(coherence[0, 1:5], [1.0, 1 / 255, 0.2, 0.8], rtol=1e-6)
    assert not valid[0, 0] and valid[0, 1:].all()


def test_licsar_any_file_of_the_pair_opens_the_pair_and_its_geotransform_reaches_the_outputs(tmp_path):
    folder = licsar_pair(tmp_path / "frame", "20200101_20200113")
    for name in ("20200101_20200113.geo.cc.tif", "20200101_20200113.geo.diff_pha.tif"):
        assert open_product(str(folder / name)).interferogram.endswith("diff_unfiltered_pha.tif")


def test_a_pair_knows_without_opening_files_whether_its_source_has_amplitudes(tmp_path):
    """Stacks decide whether a finished pair is complete from the record alone."""
    frame = tmp_path / "frame"
    licsar_pair(frame, "20200113_20200125", unfiltered=False, mli=False)
    licsar_pair(frame, "20200101_20200113")
    pairs = find_pairs(str(frame))
    assert [p.has_amplitudes for p in pairs] == [p.source().has_amplitudes for p in pairs] == [True, False]


def test_licsar_frame_stack_and_filtered_only_pair(tmp_path):
    frame = tmp_path / "frame"
    licsar_pair(frame, "20200113_20200125", unfiltered=False, mli=False)
    licsar_pair(frame, "20200101_20200113")
    pairs = find_pairs(str(frame))
    assert [p.name for p in pairs] == ["20200101_20200113", "20200113_20200125"]
    second = pairs[1]
    assert second.interferogram.endswith(".geo.diff_pha.tif")
    assert any("already Goldstein-filtered" in note for note in second.notes)
    # its epochs: 20200113 exists (from the other pair), 20200125 does not -> no amplitudes, said so
    assert second.amplitude_reference is None and any("without amplitudes" in note for note in second.notes)
    assert not second.source().has_amplitudes
    # the frame folder as a single product: the first pair, and a note that there are more
    first = open_product(str(frame))
    assert first.name == "20200101_20200113" and "holds 2 pairs" in first.notes[0]
    assert open_product(str(frame), pair="20200113_20200125").name == "20200113_20200125"
    assert open_product(str(frame), pair=1).name == "20200113_20200125"


def test_licsbas_geoc_layout_with_unwrapped_phase_only_is_wrapped(tmp_path):
    geoc = tmp_path / "GEOC"
    folder = geoc / "20200101_20200113"
    folder.mkdir(parents=True)
    unwrapped = ramp(9.0, -4.0)
    unwrapped[5, 5] = np.nan
    write_raster(folder / "20200101_20200113.geo.unw.tif", unwrapped, GEO_4326, 4326, nodata=float("nan"))
    for date in ("20200101", "20200113"):
        (tmp_path / "GEOC.MLI" / date).mkdir(parents=True)
        write_raster(tmp_path / "GEOC.MLI" / date / f"{date}.geo.mli.tif", ramp(1.0, 2.0), GEO_4326, 4326)
    pair = find_pairs(str(geoc))[0]
    assert pair.amplitude_reference.endswith("GEOC.MLI/20200101/20200101.geo.mli.tif")
    assert any("wrapped the unwrapped phase" in note for note in pair.notes)
    block = pair.source().read(WHOLE)
    np.testing.assert_allclose(np.angle(block.interferogram[block.valid]), wrapped(unwrapped)[block.valid], atol=1e-4)
    assert not block.valid[5, 5] and block.valid.sum() == ROWS * COLS - 1


def test_errors_name_the_users_file_not_the_vrt(tmp_path):
    folder = licsar_pair(tmp_path / "frame", "20200101_20200113")
    write_raster(tmp_path / "frame" / "epochs" / "20200101" / "20200101.geo.mli.tif",
                 np.zeros((ROWS, COLS), np.float32), GEO_4326, 4326)
    with pytest.raises(InsarMlError, match=r"20200101\.geo\.mli\.tif is zero everywhere") as error:
        open_product(str(folder)).source()
    assert "VRTDataset" not in str(error.value)
    (folder / "20200101_20200113.geo.cc.tif").write_text("not a raster")
    with pytest.raises(InsarMlError, match=r"20200101_20200113\.geo\.cc\.tif") as error:
        open_product(str(folder)).source()
    assert "VRTDataset" not in str(error.value)


# --------------------------------------------------------------------------- HyP3

GAMMA_JOB = "S1AB_20200101T150004_20200113T145926_VVP012_INT80_G_ueF_4D09"
BURST_JOB = "S1_136231_IW2_20200604_20200616_VV_INT80_12E3"


def hyp3_job(root: Path, job: str, wrapped_phase: bool = True, amplitude: bool = True) -> Path:
    folder = root / job
    folder.mkdir(parents=True)
    if wrapped_phase:
        write_raster(folder / f"{job}_wrapped_phase.tif", wrapped(ramp(4.0, 0.1)), nodata=0)
    write_raster(folder / f"{job}_unw_phase.tif", ramp(4.0, -3.0), nodata=0)
    write_raster(folder / f"{job}_corr.tif", np.full((ROWS, COLS), 0.6, np.float32), nodata=0)
    if amplitude:
        write_raster(folder / f"{job}_amp.tif", ramp(0.5, 0.2), nodata=0)
    (folder / f"{job}.README.md.txt").write_text("ASF HyP3")
    return folder


def test_hyp3_gamma_job_notes_the_filtered_phase_and_uses_the_amplitude_for_both(tmp_path):
    folder = hyp3_job(tmp_path / "jobs", GAMMA_JOB)
    pair = open_product(str(folder / f"{GAMMA_JOB}_corr.tif"))
    assert (pair.name, pair.product) == ("20200101_20200113", "hyp3")
    assert any("GAMMA" in note and "already filtered" in note for note in pair.notes)
    assert any("used as both amplitudes" in note for note in pair.notes)
    source = pair.source()
    assert source.grid.geotransform == GEOTRANSFORM
    assert_epsg(source.grid.crs_wkt, 32631)
    block = source.read(WHOLE)
    np.testing.assert_allclose(block.power_reference, ramp(0.5, 0.2) ** 2, rtol=1e-5)
    np.testing.assert_array_equal(block.power_reference, block.power_secondary)
    np.testing.assert_allclose(np.angle(block.interferogram), wrapped(ramp(4.0, 0.1)), atol=1e-5)
    np.testing.assert_allclose(source.coherence_raster.read(WHOLE)[0], 0.6)


def test_hyp3_folder_of_jobs_and_a_burst_job_with_only_unwrapped_phase(tmp_path):
    root = tmp_path / "jobs"
    hyp3_job(root, GAMMA_JOB)
    hyp3_job(root, BURST_JOB, wrapped_phase=False, amplitude=False)
    pairs = find_pairs(str(root))
    assert [p.name for p in pairs] == ["20200101_20200113", "20200604_20200616"]
    burst = pairs[1]
    assert any("ISCE2 burst" in note and "wrapped the unwrapped phase" in note for note in burst.notes)
    block = burst.source().read(WHOLE)
    np.testing.assert_allclose(np.angle(block.interferogram), wrapped(ramp(4.0, -3.0)), atol=1e-4)
    assert block.power_reference is None
    assert find_pairs([str(root / GAMMA_JOB)])[0].name == "20200101_20200113"


# --------------------------------------------------------------------------- ISCE2

ISCE_TYPES = {"CFLOAT": (np.complex64, "CFloat32", 8), "FLOAT": (np.float32, "Float32", 4)}


def isce_image(path: Path, bands: list[np.ndarray], data_type: str, vrt: bool = True) -> None:
    """A raw BIL image with the .xml and .vrt that ISCE2's renderHdr writes (radar geometry)."""
    dtype, gdal_type, size = ISCE_TYPES[data_type]
    np.stack([b.astype(dtype) for b in bands], axis=1).tofile(path)  # BIL: line by line, bands interleaved
    coordinates = "".join(
        f'<component name="coordinate{i}"><factorymodule>isceobj.Image</factorymodule>'
        f'<factoryname>createCoordinate</factoryname><property name="delta"><value>1</value></property>'
        f'<property name="size"><value>{n}</value></property><property name="startingvalue"><value>0</value>'
        f'</property></component>' for i, n in ((1, COLS), (2, ROWS)))
    (path.parent / f"{path.name}.xml").write_text(
        f'<imageFile><property name="ISCE_VERSION"><value>Release: 2.6.3</value></property>'
        f'<property name="access_mode"><value>read</value></property>'
        f'<property name="byte_order"><value>l</value></property>{coordinates}'
        f'<property name="data_type"><value>{data_type}</value></property>'
        f'<property name="family"><value>image</value></property>'
        f'<property name="file_name"><value>{path.name}</value></property>'
        f'<property name="length"><value>{ROWS}</value></property>'
        f'<property name="number_bands"><value>{len(bands)}</value></property>'
        f'<property name="scheme"><value>BIL</value></property>'
        f'<property name="width"><value>{COLS}</value></property></imageFile>')
    if vrt:
        vrt_bands = "".join(
            f'<VRTRasterBand dataType="{gdal_type}" band="{b + 1}" subClass="VRTRawRasterBand">'
            f'<SourceFilename relativeToVRT="1">{path.name}</SourceFilename><ByteOrder>LSB</ByteOrder>'
            f'<ImageOffset>{b * COLS * size}</ImageOffset><PixelOffset>{size}</PixelOffset>'
            f'<LineOffset>{len(bands) * COLS * size}</LineOffset></VRTRasterBand>' for b in range(len(bands)))
        (path.parent / f"{path.name}.vrt").write_text(
            f'<VRTDataset rasterXSize="{COLS}" rasterYSize="{ROWS}">{vrt_bands}</VRTDataset>')


def isce_merged(root: Path, vrt: bool = True) -> tuple[Path, np.ndarray]:
    merged = root / "merged"
    merged.mkdir(parents=True)
    topophase = (ramp(1.0, 1.0) * np.exp(1j * ramp(2.0))).astype(np.complex64)
    isce_image(merged / "topophase.flat", [topophase], "CFLOAT", vrt)
    isce_image(merged / "filt_topophase.flat", [np.exp(1j * ramp(3.0))], "CFLOAT", vrt)
    isce_image(merged / "topophase.cor", [ramp(0.5, 2.0), np.full((ROWS, COLS), 0.7, np.float32)], "FLOAT", vrt)
    isce_image(merged / "phsig.cor", [np.full((ROWS, COLS), 0.9, np.float32)], "FLOAT", vrt)
    return merged, topophase


@pytest.mark.parametrize("vrt", [True, False], ids=["with .vrt", "xml only (GDAL ISCE driver)"])
def test_isce2_merged_prefers_unfiltered_uses_cor_bands_and_has_no_georeferencing(tmp_path, vrt):
    merged, topophase = isce_merged(tmp_path / "20200101_20200113", vrt)
    pair = open_product(str(tmp_path / "20200101_20200113"))
    assert (pair.name, pair.product) == ("20200101_20200113", "isce2")
    assert any("unfiltered topophase.flat" in note for note in pair.notes)
    assert any("geometric mean" in note for note in pair.notes)
    source = pair.source()
    assert source.grid.geotransform is None and source.grid.crs_wkt == ""
    block = source.read(WHOLE)
    np.testing.assert_allclose(block.interferogram, topophase, rtol=1e-5)
    np.testing.assert_allclose(block.power_reference, ramp(0.5, 2.0) ** 2, rtol=1e-5)
    np.testing.assert_allclose(source.coherence_raster.read(WHOLE)[0], 0.7, rtol=1e-6)
    assert open_product(str(merged / "filt_topophase.flat.xml")).interferogram == pair.interferogram


def test_isce2_filtered_only_falls_back_to_phsig(tmp_path):
    merged, _ = isce_merged(tmp_path)
    for name in ("topophase.flat", "topophase.cor"):
        for suffix in ("", ".xml", ".vrt"):
            (merged / f"{name}{suffix}").unlink()
    pair = open_product(str(merged))
    assert any("only filt_topophase.flat" in note for note in pair.notes)
    assert pair.amplitude_reference is None
    np.testing.assert_allclose(pair.source().coherence_raster.read(WHOLE)[0], 0.9, rtol=1e-6)


# --------------------------------------------------------------------------- SNAP BEAM-DIMAP

UTM_WKT_SNAP = """PROJCS["WGS 84 / UTM zone 31N", GEOGCS["WGS 84", DATUM["World Geodetic System 1984",
    SPHEROID["WGS 84", 6378137.0, 298.257223563, AUTHORITY["EPSG","7030"]], AUTHORITY["EPSG","6326"]],
    PRIMEM["Greenwich", 0.0, AUTHORITY["EPSG","8901"]], UNIT["degree", 0.017453292519943295],
    AXIS["Geodetic longitude", EAST], AXIS["Geodetic latitude", NORTH], AUTHORITY["EPSG","4326"]],
    PROJECTION["Transverse_Mercator", AUTHORITY["EPSG","9807"]], PARAMETER["central_meridian", 3.0],
    PARAMETER["latitude_of_origin", 0.0], PARAMETER["scale_factor", 0.9996], PARAMETER["false_easting", 500000.0],
    PARAMETER["false_northing", 0.0], UNIT["m", 1.0], AXIS["Easting", EAST], AXIS["Northing", NORTH],
    AUTHORITY["EPSG","32631"]]"""


def snap_product(folder: Path, bands: dict[str, np.ndarray], geocoded: bool, goldstein: bool = False) -> Path:
    """A .dim + .data/ as SNAP writes them: big-endian ENVI bands, a virtual Phase band, CRS + transform
    (map-geocoded) or tie-point bands (radar geometry)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "S1_pair.data"
    data.mkdir()
    infos, files = [], []
    for index, (name, values) in enumerate(bands.items()):
        values.astype(">f4").tofile(data / f"{name}.img")
        (data / f"{name}.hdr").write_text(
            f"ENVI\ndescription = {{Sentinel-1 IW Level-1 SLC Product - Unit: real}}\nsamples = {COLS}\n"
            f"lines = {ROWS}\nbands = 1\nheader offset = 0\nfile type = ENVI Standard\ndata type = 4\n"
            f"interleave = bsq\nbyte order = 1\nband names = {{ {name} }}\n")
        files.append(f'<Data_File><DATA_FILE_PATH href="S1_pair.data/{name}.hdr" /><BAND_INDEX>{index}</BAND_INDEX>'
                     "</Data_File>")
        infos.append(f"<Spectral_Band_Info><BAND_INDEX>{index}</BAND_INDEX><BAND_NAME>{name}</BAND_NAME>"
                     f"<DATA_TYPE>float32</DATA_TYPE><PHYSICAL_UNIT>real</PHYSICAL_UNIT>"
                     "<NO_DATA_VALUE_USED>true</NO_DATA_VALUE_USED><NO_DATA_VALUE>0.0</NO_DATA_VALUE>"
                     "</Spectral_Band_Info>")
    infos.append(f"<Spectral_Band_Info><BAND_INDEX>{len(bands)}</BAND_INDEX><BAND_NAME>Phase_ifg_VV</BAND_NAME>"
                 "<DATA_TYPE>float32</DATA_TYPE><VIRTUAL_BAND>true</VIRTUAL_BAND>"
                 "<EXPRESSION>atan2(q_ifg, i_ifg)</EXPRESSION></Spectral_Band_Info>")
    geocoding = (f"<Coordinate_Reference_System><WKT>{UTM_WKT_SNAP}</WKT></Coordinate_Reference_System>"
                 "<Geoposition><IMAGE_TO_MODEL_TRANSFORM>20.0,0.0,0.0,-20.0,500000.0,5800000.0"
                 "</IMAGE_TO_MODEL_TRANSFORM></Geoposition>" if geocoded else
                 "<Geoposition><LATITUDE_BAND>latitude</LATITUDE_BAND><LONGITUDE_BAND>longitude</LONGITUDE_BAND>"
                 "</Geoposition>")
    history = ('<MDElem name="Processing_Graph"><MDElem name="node.3"><MDATTR name="operator" type="ascii">'
               "GoldsteinPhaseFiltering</MDATTR></MDElem></MDElem>" if goldstein else "")
    dim = folder / "S1_pair.dim"
    dim.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?><Dimap_Document name="S1_pair.dim"><Metadata_Id>'
        '<METADATA_FORMAT version="2.12.1">DIMAP</METADATA_FORMAT><METADATA_PROFILE>BEAM-DATAMODEL-V1'
        "</METADATA_PROFILE></Metadata_Id><Dataset_Id><DATASET_SERIES>BEAM-PRODUCT</DATASET_SERIES>"
        f"<DATASET_NAME>S1_pair</DATASET_NAME></Dataset_Id>{geocoding}<Raster_Dimensions><NCOLS>{COLS}</NCOLS>"
        f"<NROWS>{ROWS}</NROWS><NBANDS>{len(bands) + 1}</NBANDS></Raster_Dimensions><Data_Access>"
        "<DATA_FILE_FORMAT>ENVI</DATA_FILE_FORMAT><DATA_FILE_ORGANISATION>BAND_SEPARATE</DATA_FILE_ORGANISATION>"
        f"{''.join(files)}</Data_Access><Image_Interpretation>{''.join(infos)}</Image_Interpretation>"
        f'<Dataset_Sources><MDElem name="metadata">{history}</MDElem></Dataset_Sources></Dimap_Document>',
        encoding="ISO-8859-1")
    return dim


def test_snap_interferogram_from_i_q_bands_with_georeferencing_from_the_dim(tmp_path):
    i, q = ramp(1.0, 0.5), ramp(-0.5, -0.1)
    i[3, 4] = q[3, 4] = 0.0  # SNAP's no-data
    suffix = "IW1_VV_01Jan2020_13Jan2020"
    dim = snap_product(tmp_path / "snap", {f"i_ifg_{suffix}": i, f"q_ifg_{suffix}": q,
                                           f"coh_{suffix}": np.full((ROWS, COLS), 0.4, np.float32)},
                       geocoded=True, goldstein=True)
    pair = open_product(str(dim))
    assert (pair.name, pair.product) == ("20200101_20200113", "snap")
    assert any("Goldstein" in note for note in pair.notes)
    source = pair.source()
    assert source.grid.geotransform == GEOTRANSFORM
    assert_epsg(source.grid.crs_wkt, 32631)
    block = source.read(WHOLE)
    expected = i + 1j * q
    valid = np.ones((ROWS, COLS), bool)
    valid[3, 4] = False
    np.testing.assert_array_equal(block.valid, valid)
    np.testing.assert_allclose(block.interferogram[valid], expected[valid], rtol=1e-6)
    np.testing.assert_allclose(source.coherence_raster.read(WHOLE)[0], 0.4, rtol=1e-6)
    assert open_product(str(dim.with_suffix(".data"))).interferogram == pair.interferogram


def test_snap_coregistered_slc_pair_in_radar_geometry(tmp_path):
    s1 = (ramp(1.0, 1.0) * np.exp(1j * ramp(2.0, 0.2))).astype(np.complex64)
    s2 = (ramp(1.0, 2.0) * np.exp(1j * ramp(0.5, 0.3))).astype(np.complex64)
    dim = snap_product(tmp_path / "snap", {"i_IW1_VV_mst_01Jan2020": s1.real, "q_IW1_VV_mst_01Jan2020": s1.imag,
                                           "i_IW1_VV_slv1_13Jan2020": s2.real, "q_IW1_VV_slv1_13Jan2020": s2.imag},
                       geocoded=False)
    pair = open_product(str(dim))
    assert pair.name == "20200101_20200113" and pair.interferogram is None
    assert "mst_01Jan2020" in pair.slc_reference and "slv1_13Jan2020" in pair.slc_secondary
    source = pair.source()
    assert source.grid.geotransform is None
    block = source.read(WHOLE)
    np.testing.assert_allclose(block.interferogram, s1 * np.conj(s2), rtol=1e-4)
    np.testing.assert_allclose(block.power_secondary, np.abs(s2) ** 2, rtol=1e-5)
    assert [p.name for p in find_pairs(str(tmp_path / "snap"))] == ["20200101_20200113"]


# --------------------------------------------------------------------------- MintPy

def mintpy_stack(path: Path, wrap: bool, geocoded: bool = True) -> np.ndarray:
    h5py = pytest.importorskip("h5py")
    unwrapped = np.stack([ramp(5.0 + k, k) for k in range(3)])
    with h5py.File(path, "w") as f:
        f.attrs.update({"FILE_TYPE": "ifgramStack", "LENGTH": str(ROWS), "WIDTH": str(COLS), "PROCESSOR": "isce"})
        if geocoded:
            f.attrs.update({"X_FIRST": "500000.0", "X_STEP": "20.0", "Y_FIRST": "5800000.0", "Y_STEP": "-20.0",
                            "X_UNIT": "meters", "Y_UNIT": "meters", "EPSG": "32631"})
        f["date"] = np.array([[b"20200101", b"20200113"], [b"20200113", b"20200125"], [b"20200101", b"20200125"]])
        f["dropIfgram"] = np.array([True, False, True])
        f["unwrapPhase"] = unwrapped
        if wrap:
            f["wrapPhase"] = wrapped(unwrapped)
        f["coherence"] = np.stack([np.full((ROWS, COLS), 0.1 * (k + 1), np.float32) for k in range(3)])
    return unwrapped


@pytest.mark.parametrize("wrap", [True, False], ids=["wrapPhase", "unwrapPhase only"])
def test_mintpy_stack_pairs_by_name_and_index_with_georeferencing_from_attributes(tmp_path, wrap):
    h5 = tmp_path / "inputs" / "ifgramStack.h5"
    h5.parent.mkdir()
    unwrapped = mintpy_stack(h5, wrap)
    pairs = find_pairs(str(h5))
    assert [p.name for p in pairs] == ["20200101_20200113", "20200101_20200125", "20200113_20200125"]
    pair = open_product(str(h5), pair="20200113_20200125")
    assert pair == open_product(str(h5), pair=1) == open_product(str(tmp_path), pair="1")
    assert any("dropIfgram" in note for note in pair.notes)
    assert any("wrapped the unwrapped phase" in note for note in pair.notes) != wrap
    source = pair.source()
    assert source.grid.geotransform == GEOTRANSFORM
    assert_epsg(source.grid.crs_wkt, 32631)
    block = source.read(WHOLE)
    np.testing.assert_allclose(np.angle(block.interferogram), wrapped(unwrapped[1]), atol=1e-4)
    np.testing.assert_allclose(source.coherence_raster.read(WHOLE)[0], 0.2, rtol=1e-6)
    with pytest.raises(InsarMlError, match="no such pair in ifgramStack.h5. Its pairs are 20200101_20200113"):
        open_product(str(h5), pair="20190101_20190113")
    with pytest.raises(InsarMlError, match="holds 3 pairs"):
        open_product(str(h5), pair=7)


def test_mintpy_radar_coordinates_have_no_georeferencing(tmp_path):
    h5 = tmp_path / "ifgramStack.h5"
    mintpy_stack(h5, wrap=True, geocoded=False)
    pair = open_product(str(h5))
    assert pair.name == "20200101_20200113" and "holds 3 pairs" in pair.notes[0]
    assert pair.source().grid.geotransform is None


# --------------------------------------------------------------------------- plain rasters, lists, errors

def test_folder_of_plain_interferograms_and_an_explicit_list(tmp_path):
    folder = tmp_path / "ifgs"
    folder.mkdir()
    write_raster(folder / "ifg_20200113_20200125.tif", np.exp(1j * ramp(2.0)).astype(np.complex64))
    write_raster(folder / "ifg_20200101_20200113.tif", wrapped(ramp(3.0)))
    write_raster(folder / "20200125-20200206_unw.tif", ramp(9.0, -2.0))  # PyRate/ROI_PAC naming, unwrapped
    write_raster(folder / "ifg_20200101_20200113_cc.tif", np.full((ROWS, COLS), 0.5, np.float32))  # its coherence
    write_raster(folder / "amplitudes.tif", [ramp(), ramp()])  # two bands: not an interferogram
    (folder / "notes.txt").write_text("pairs")
    pairs = find_pairs(str(folder))
    assert [(p.name, p.product) for p in pairs] == [
        ("20200101_20200113", "raster"), ("20200113_20200125", "raster"), ("20200125_20200206", "raster")]
    assert pairs[0].output_stem == str(folder / "ifg_20200101_20200113.insarml")
    np.testing.assert_allclose(np.angle(pairs[0].source().read(WHOLE).interferogram), wrapped(ramp(3.0)), atol=1e-6)
    assert "wrapped it" in pairs[2].notes[0]
    np.testing.assert_allclose(np.angle(pairs[2].source().read(WHOLE).interferogram), wrapped(ramp(9.0, -2.0)),
                               atol=1e-4)
    hyp3 = hyp3_job(tmp_path / "jobs", GAMMA_JOB)
    mixed = find_pairs([str(folder / "ifg_20200113_20200125.tif"), str(hyp3)])
    assert [(p.name, p.product) for p in mixed] == [("20200101_20200113", "hyp3"), ("20200113_20200125", "raster")]


def test_pairs_pickle_and_stay_readable(tmp_path):
    pair = open_product(str(licsar_pair(tmp_path / "frame", "20200101_20200113")))
    copy = pickle.loads(pickle.dumps(pair))
    assert copy == pair and isinstance(copy, ProductPair)
    np.testing.assert_array_equal(copy.source().read(WHOLE).interferogram, pair.source().read(WHOLE).interferogram)


def test_unknown_layouts_are_clear_errors(tmp_path):
    empty = tmp_path / "downloads"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    with pytest.raises(InsarMlError, match=r"downloads is not a product layout the plugin knows\. Expected a LiCSAR"):
        open_product(str(empty))
    with pytest.raises(InsarMlError, match=r"No interferometric pair found in .*downloads\. Expected"):
        find_pairs(str(empty))
    with pytest.raises(InsarMlError, match="Product not found: .*missing_folder"):
        find_pairs([str(tmp_path / "missing_folder"), str(empty)])
    other_h5 = tmp_path / "other.h5"
    pytest.importorskip("h5py").File(other_h5, "w").create_dataset("velocity", data=np.zeros((4, 4), np.float32))
    with pytest.raises(InsarMlError, match="not a MintPy ifgramStack.h5"):
        open_product(str(other_h5))
    data = tmp_path / "lost.data"
    data.mkdir()
    (data / "i_ifg.img").write_bytes(b"\0" * 16)
    with pytest.raises(InsarMlError, match=r"has no lost\.dim beside it"):
        open_product(str(data / "i_ifg.img"))


# --------------------------------------------------------------------------- Processing

def test_boxcar_algorithm_reads_a_licsar_pair_folder(tmp_path, insarml_provider):
    from qgis import processing
    from qgis.core import QgsProcessing, QgsProcessingException, QgsProcessingFeedback

    from qgis_insar_ml.core.classical import filter_boxcar_raster

    folder = licsar_pair(tmp_path / "frame", "20200101_20200113")
    log: list[str] = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            log.append(info)

    result = processing.run("insarml:filter_boxcar", {
        "PRODUCT": str(folder), "WINDOW": 5, "OUTPUT_PHASE": str(tmp_path / "phase.tif"),
        "OUTPUT_COHERENCE": str(tmp_path / "coherence.tif")}, feedback=Feedback())
    ds = gdal.Open(result["OUTPUT_PHASE"])
    assert ds.GetGeoTransform() == GEO_4326
    assert_epsg(ds.GetProjection(), 4326)
    expected = filter_boxcar_raster(open_product(str(folder)).source(), 5, str(tmp_path / "expected.tif"))
    np.testing.assert_allclose(read_band(result["OUTPUT_PHASE"]), read_band(expected["OUTPUT_PHASE"]), atol=1e-6)
    assert np.ptp(read_band(result["OUTPUT_PHASE"])) > 1  # the fringes survive a 5x5 boxcar
    assert any("unfiltered" in line for line in log)
    # a stack folder with PAIR, and a product file typed into the folder parameter
    frame = tmp_path / "frame"
    licsar_pair(frame, "20200113_20200125", unfiltered=False, mli=False)
    for product, pair in ((str(frame), "20200113_20200125"), (str(folder / "20200101_20200113.geo.cc.tif"), "")):
        out = processing.run("insarml:filter_boxcar", {"PRODUCT": product, "PAIR": pair,
                                                       "OUTPUT_PHASE": QgsProcessing.TEMPORARY_OUTPUT,
                                                       "OUTPUT_COHERENCE": QgsProcessing.TEMPORARY_OUTPUT})
        assert gdal.Open(out["OUTPUT_PHASE"]).GetGeoTransform() == GEO_4326
    with pytest.raises(QgsProcessingException, match="Give either PRODUCT or the input rasters \\(INTERFEROGRAM\\)"):
        processing.run("insarml:filter_boxcar", {
            "PRODUCT": str(folder), "INTERFEROGRAM": str(folder / "20200101_20200113.geo.diff_pha.tif"),
            "OUTPUT_PHASE": str(tmp_path / "both.tif")}, feedback=QgsProcessingFeedback())
