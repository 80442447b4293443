"""Generation as a cascade: a base PDM's samples super-resolved 2× in the same pdm_generate run."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from osgeo import gdal

from conftest import read_band
from qgis_insar_ml.core.datasets.synthetic import SOURCE_TYPES
from qgis_insar_ml.core.diffusion.data import downsample
from test_gui import group_layers, iface, own_settings, project, run_dialog, user_models  # noqa: F401  (fixtures)
from test_pdm_processing import SIZE, tiny_pdm

EXTENT = "500000,500320,5800000,5800320 [EPSG:32631]"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny 16×16 base PDM, a tiny 16→32 super-resolution PDM), random weights."""
    folder = tmp_path_factory.mktemp("cascade")
    return tiny_pdm(folder / "base.safetensors"), tiny_pdm(folder / "sr.safetensors", super_resolution=True)


def run(tmp_path: Path, base: Path | str, feedback=None, **extra) -> dict:
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = {"MODEL": str(base), "COUNT": 3, "SAMPLER": "ddim", "STEPS": 3, "SEED": 1,
              "OUTPUT_FOLDER": str(tmp_path / "out"), **extra}
    return processing.run("insarml:pdm_generate", params, context=context,
                          feedback=feedback or QgsProcessingFeedback())


def test_cascade_doubles_the_grid_keeps_the_extent_and_averages_back_to_each_sample(tmp_path, insarml_provider,
                                                                                   models):
    base, sr = models
    settings = {"SUPERRESOLUTION_MODEL": str(sr), "SR_STEPS": 4, "EXTENT": EXTENT, "PIXEL_SIZE": 10.0,
                "WRAPPED": True}
    result = run(tmp_path / "a", base, LOW_RES_FOLDER=str(tmp_path / "a" / "low"), **settings)
    assert result["COUNT_WRITTEN"] == 3
    for index, (high_path, low_path) in enumerate(zip(result["OUTPUT_LAYERS"], result["LOW_RES_LAYERS"])):
        assert Path(high_path).name == Path(low_path).name == f"pdm_{index:04d}_{SOURCE_TYPES[index]}.tif"
        high_ds, low_ds = gdal.Open(high_path), gdal.Open(low_path)
        assert (low_ds.RasterXSize, high_ds.RasterXSize, high_ds.RasterYSize) == (SIZE, 2 * SIZE, 2 * SIZE)
        # the base placement (10 m pixels centred on the extent), then half the pixel on the same extent
        assert low_ds.GetGeoTransform() == (500080.0, 10.0, 0.0, 5800240.0, 0.0, -10.0)
        assert high_ds.GetGeoTransform() == (500080.0, 5.0, 0.0, 5800240.0, 0.0, -5.0)
        assert high_ds.GetProjection() == low_ds.GetProjection() != ""
        meta = high_ds.GetMetadata()
        assert meta["INSARML_UNITS"] == "rad" and meta["INSARML_CLASS"] == SOURCE_TYPES[index]
        assert '"SR_STEPS": 4' in meta["INSARML_PARAMETERS"] and "sr.safetensors" in meta["INSARML_PARAMETERS"]
        low, high = read_band(low_path).astype(np.float64), read_band(high_path).astype(np.float64)
        # radians from the class's training range, and the super-resolved scene averages back to it
        assert -2.0 - index - 1e-4 <= low.min() and low.max() <= 3.0 + index + 1e-4
        np.testing.assert_allclose(downsample(high), low, atol=1e-4)
        assert not np.allclose(high, np.repeat(np.repeat(low, 2, 0), 2, 1), atol=1e-3)   # detail was added
        np.testing.assert_allclose(read_band(high_path, 2), np.angle(np.exp(1j * high)), atol=1e-5)
    again = run(tmp_path / "b", base, **settings)
    assert again["LOW_RES_LAYERS"] == []
    for first, second in zip(result["OUTPUT_LAYERS"], again["OUTPUT_LAYERS"]):
        assert np.array_equal(read_band(first), read_band(second))
    other = run(tmp_path / "c", base, **{**settings, "SEED": 2})
    assert not np.array_equal(read_band(result["OUTPUT_LAYERS"][0]), read_band(other["OUTPUT_LAYERS"][0]))


def test_cascade_without_placement_halves_the_pixel_grid(tmp_path, insarml_provider, models):
    base, sr = models
    result = run(tmp_path, base, SUPERRESOLUTION_MODEL=str(sr), COUNT=1, RESCALE=False)
    ds = gdal.Open(result["OUTPUT_LAYERS"][0])
    assert ds.GetGeoTransform() == (0.0, 0.5, 0.0, 0.0, 0.0, -0.5) and ds.RasterXSize == 2 * SIZE
    assert ds.GetMetadata()["INSARML_UNITS"] == "normalised [-1, 1]"


@pytest.mark.parametrize("case, message", [
    ("size", "pdm_superres_2x.safetensors super-resolves 64×64 scenes 2×, but base.safetensors generates 16×16"),
    ("shipped", "pdm_superres_2x.safetensors super-resolves 64×64 scenes 2×, but base.safetensors generates 16×16"),
    ("not_sr", "base.safetensors is not a super-resolution model"),
])
def test_cascade_mismatch_is_explained_and_writes_nothing(tmp_path, insarml_provider, models, case, message):
    from qgis.core import QgsProcessingException

    from qgis_insar_ml.paths import data_dir

    base, _ = models
    extra = {"size": {"SUPERRESOLUTION_MODEL": str(data_dir("models") / "pdm_superres_2x.safetensors")},
             "not_sr": {"SUPERRESOLUTION_MODEL": str(base)},
             "shipped": {"SUPERRESOLVE": True}}[case]
    with pytest.raises(QgsProcessingException, match=message):
        run(tmp_path, base, LOW_RES_FOLDER=str(tmp_path / "low"), **extra)
    assert not any(tmp_path.rglob("*.tif"))


def test_cancel_during_super_resolution_leaves_no_file(tmp_path, insarml_provider, models):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    base, sr = models
    feedback = QgsProcessingFeedback()
    cancelled_at: list[float] = []

    def cancel_in_second_stage(percent: float) -> None:
        if percent > 5 and not cancelled_at:     # the base stage weighs 2 of 2 + 4·50 steps: 0.9 %
            cancelled_at.append(time.perf_counter())
            feedback.cancel()

    feedback.progressChanged.connect(cancel_in_second_stage)
    with pytest.raises(QgsProcessingException, match="No output was written"):
        run(tmp_path, base, feedback, SUPERRESOLUTION_MODEL=str(sr), STEPS=2, SR_STEPS=50, COUNT=4,
            SAMPLER="ancestral", LOW_RES_FOLDER=str(tmp_path / "low"))
    assert cancelled_at and time.perf_counter() - cancelled_at[0] < 1.0
    assert not any(tmp_path.rglob("*.tif"))


def test_shipped_models_give_128_pixel_interferograms(tmp_path, insarml_provider):
    """The shipped 64² interferogram PDM and 2× model: 128² scenes in radians that average back to the 64² ones."""
    result = run(tmp_path, "", SUPERRESOLVE=True, COUNT=2, CLASS_LABEL="point_source",
                 SAMPLER="dpm_solver++", STEPS=8, SR_STEPS=8, LOW_RES_FOLDER=str(tmp_path / "low"))
    for high_path, low_path in zip(result["OUTPUT_LAYERS"], result["LOW_RES_LAYERS"]):
        high, low = read_band(high_path).astype(np.float64), read_band(low_path).astype(np.float64)
        assert high.shape == (128, 128) and low.shape == (64, 64)
        np.testing.assert_allclose(downsample(high), low, atol=1e-4 * np.ptp(low))
        # the same field with finer pixels: detail of a few % of the range around the interpolated sample
        # (measured 0.017-0.040 at 8 and 20 steps; a random-weight model gives noise of the field's size)
        detail = high - scipy.ndimage.zoom(low, 2, order=1, mode="nearest", grid_mode=True)
        assert 0.005 < np.sqrt(np.mean(detail ** 2)) / np.ptp(low) < 0.06


def test_generate_dialog_previews_both_stages(qtbot, iface, user_models):  # noqa: F811
    from qgis_insar_ml.gui.generate_dialog import GenerateDialog

    user_models.mkdir(parents=True, exist_ok=True)
    tiny_pdm(user_models / "tiny_pdm.safetensors")
    tiny_pdm(user_models / "tiny_sr.safetensors", super_resolution=True)
    dialog = GenerateDialog(iface)
    qtbot.addWidget(dialog)
    assert "tiny_sr (user)" not in [dialog.model.combo.itemText(i) for i in range(dialog.model.combo.count())]
    dialog.model.combo.setCurrentIndex(dialog.model.combo.findText("tiny_pdm (user)"))
    assert not dialog.sr_model.isEnabled()
    dialog.superresolve.setChecked(True)
    assert dialog.sr_model.isEnabled()
    dialog.sr_model.combo.setCurrentIndex(dialog.sr_model.combo.findText("tiny_sr (user)"))
    dialog.count.setValue(3)
    dialog.sampler.setCurrentText("ddim")
    dialog.steps.setValue(2)
    dialog.sr_steps.setValue(3)
    run_dialog(qtbot, dialog)
    assert dialog.submitted["SR_STEPS"] == 3 and dialog.submitted["SUPERRESOLUTION_MODEL"].endswith("tiny_sr.safetensors")
    axes = dialog.preview.figure.axes
    assert len(axes) == 6     # each sample's low-resolution and super-resolved stage side by side
    assert [a.images[0].get_array().shape for a in axes[:2]] == [(SIZE, SIZE), (2 * SIZE, 2 * SIZE)]
    dialog.add_to_map.click()
    assert [layer.width() for layer in group_layers("PDM tiny_pdm seed 0")] == [2 * SIZE] * 3


def test_shipped_sar_models_give_128_pixel_backscatter_scenes_in_db(tmp_path, insarml_provider):
    """The shipped SAR PDM (64², 100 m) and its 2× model (50 m): σ0 scenes in dB, classes named like TenGeoP's."""
    from qgis.core import QgsProcessingException

    from qgis_insar_ml.core.datasets.sar_ocean import SAR_CLASS_NAMES
    from qgis_insar_ml.paths import data_dir

    sar, sr = data_dir("models") / "pdm_sar_64.safetensors", data_dir("models") / "pdm_sar_superres_2x.safetensors"
    result = run(tmp_path, sar, SUPERRESOLUTION_MODEL=str(sr), COUNT=2, CLASS_LABEL="M_low_wind_area",
                 SAMPLER="dpm_solver++", STEPS=8, SR_STEPS=8, LOW_RES_FOLDER=str(tmp_path / "low"))
    for high_path, low_path in zip(result["OUTPUT_LAYERS"], result["LOW_RES_LAYERS"]):
        ds = gdal.Open(high_path)
        assert ds.GetRasterBand(1).GetDescription() == "generated SAR backscatter σ0 [dB]"
        assert ds.GetMetadataItem("INSARML_UNITS") == "dB" and ds.GetMetadataItem("INSARML_CLASS") in SAR_CLASS_NAMES
        high, low = read_band(high_path).astype(np.float64), read_band(low_path).astype(np.float64)
        assert high.shape == (128, 128) and low.shape == (64, 64)
        # ocean σ0 of a low-wind scene: between the noise floor and a bright sea, in dB
        assert -45 < np.median(high) < 0 and np.ptp(high) < 60
        np.testing.assert_allclose(downsample(high), low, atol=1e-4 * np.ptp(low))
    with pytest.raises(QgsProcessingException, match="WRAPPED adds a wrapped phase.*Untick WRAPPED"):
        run(tmp_path, sar, COUNT=1, STEPS=2, WRAPPED=True, OUTPUT_FOLDER=str(tmp_path / "wrapped"))
    assert not (tmp_path / "wrapped").exists()
