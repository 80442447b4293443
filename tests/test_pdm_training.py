"""PDM training end to end on tiny real models: conditioning learnt, resume, cancel, rescale, super-resolution."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CancelAfter, read_band, write_raster
from qgis_insar_ml.core.diffusion.data import SyntheticPdmData, downsample, pdm_data
from qgis_insar_ml.core.diffusion.generate import coefficient_ranges, generate, rescale_samples, superresolve
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm
from qgis_insar_ml.core.diffusion.scene_files import superresolve_raster
from qgis_insar_ml.core.diffusion.training import PdmTrainSettings, train_pdm
from qgis_insar_ml.core.errors import Cancelled, InsarMlError

SIZE = 16
TINY = dict(image_size=SIZE, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
            diffusion_steps=50, batch_size=16, learning_rate=2e-3, warmup_steps=20, ema_rate=0.99,
            validation_size=8, checkpoint_every=1000)


def ramp_folder(root: Path, per_class: int = 10) -> Path:
    """Two trivially separable classes: 'east' rises to the east, 'north' to the north, with a random range."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1.0)
    for name, ramp in (("east", x), ("north", 1.0 - y)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            scene = rng.uniform(1, 5) * ramp + rng.uniform(-3, 3) + 0.05 * rng.standard_normal(ramp.shape)
            write_raster(root / name / f"{i:02d}.tif", scene.astype(np.float32))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = ramp_folder(tmp_path_factory.mktemp("ramps"))
    out = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    result = train_pdm(PdmTrainSettings(output=str(out), dataset=str(folder), steps=300, validate_every=100,
                                        **TINY), log=lambda _: None)
    return result, out


def slopes(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(east − west, north − south) mean differences of each sample."""
    s = samples[:, 0]
    half = SIZE // 2
    return s[:, :, half:].mean(axis=(1, 2)) - s[:, :, :half].mean(axis=(1, 2)), \
        s[:, :half].mean(axis=(1, 2)) - s[:, half:].mean(axis=(1, 2))


def test_class_conditional_model_learns_the_classes(trained):
    result, path = trained
    history = result.history
    assert len(history) == 300 and history[-1]["step"] == 300
    validations = [h["val_loss"] for h in history if "val_loss" in h]
    assert len(validations) == 3 and validations[-1] < validations[0]
    first, last = np.mean([h["loss"] for h in history[:20]]), np.mean([h["loss"] for h in history[-20:]])
    assert last < 0.5 * first, (first, last)

    pdm = load_pdm(path)
    assert pdm.classes == ["east", "north"] and pdm.learn_sigma and pdm.model.null_label == 2
    samples, labels = generate(pdm, 16, sampler="ddim", steps=25, seed=3)
    assert labels == [0, 1] * 8
    east, north = slopes(samples)
    is_east = np.array(labels) == 0
    assert east[is_east].mean() > 0.6 and abs(north[is_east].mean()) < 0.3
    assert north[~is_east].mean() > 0.6 and abs(east[~is_east].mean()) < 0.3
    # the same seed reproduces the samples; another does not
    again, _ = generate(pdm, 16, sampler="ddim", steps=25, seed=3)
    other, _ = generate(pdm, 16, sampler="ddim", steps=25, seed=4)
    assert np.array_equal(samples, again) and not np.allclose(samples, other)


def test_card_keeps_normalising_coefficients_per_class_and_rescale_uses_them(trained):
    _, path = trained
    pdm = load_pdm(path)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["normalisation"]["range"] == [-1.0, 1.0] and card["training"]["steps"] == 300
    east = coefficient_ranges(pdm.card, "east")
    assert len(east) > 0 and (east[:, 1] > east[:, 0]).all()
    samples = np.tile(np.linspace(-1, 1, SIZE, dtype=np.float32), (4, 1, SIZE, 1))
    physical = rescale_samples(pdm, samples, [0, 0, 1, 1], seed=1)
    lows, highs = physical.min(axis=(1, 2, 3)), physical.max(axis=(1, 2, 3))
    for lo, hi in zip(lows, highs):   # every rescaled sample spans one of the training ranges exactly
        ranges = coefficient_ranges(pdm.card)
        assert np.isclose(ranges, [lo, hi], atol=1e-4).all(axis=1).any()


def test_guidance_needs_a_null_class_and_labels_must_exist(trained):
    _, path = trained
    pdm = load_pdm(path)
    with pytest.raises(InsarMlError, match="Class 5 is out of range: this model has 2 classes"):
        generate(pdm, 2, class_label=5)
    with pytest.raises(InsarMlError, match="COUNT must be at least 1"):
        generate(pdm, 0)
    guided, labels = generate(pdm, 4, class_label=0, guidance_scale=3.0, sampler="dpm_solver++", steps=10)
    assert labels == [0] * 4 and slopes(guided)[0].mean() > 0.6


def test_resume_continues_the_history_and_cancel_saves_a_checkpoint(tmp_path):
    folder = ramp_folder(tmp_path / "ramps", per_class=5)
    settings = PdmTrainSettings(output=str(tmp_path / "m.safetensors"), dataset=str(folder), steps=10,
                                validate_every=5, **{**TINY, "checkpoint_every": 2})
    with pytest.raises(Cancelled, match="checkpoint saved"):
        train_pdm(settings, CancelAfter(4), log=lambda _: None)
    assert settings.checkpoint_path().is_file() and not (tmp_path / "m.safetensors").exists()
    state = torch.load(settings.checkpoint_path(), weights_only=True)
    assert state["step"] == 4 and len(state["history"]) == 4
    settings.resume = True
    result = train_pdm(settings, log=lambda _: None)
    assert [h["step"] for h in result.history] == list(range(1, 11))
    assert (tmp_path / "m.safetensors").is_file()
    other = PdmTrainSettings(**{**settings.__dict__, "model_channels": 64})
    with pytest.raises(InsarMlError, match="for another network"):
        train_pdm(other, log=lambda _: None)


@pytest.mark.parametrize("change, message", [
    ({"dataset": "nowhere"}, "neither a built-in dataset"),
    ({"model_channels": 16}, "U-Net settings are invalid"),
    ({"diffusion_steps": 5}, "between 10 and 4000"),
    ({"timestep_sampler": "magic"}, "Unknown timestep sampler"),
])
def test_bad_training_settings_are_explained(tmp_path, change, message):
    settings = PdmTrainSettings(output=str(tmp_path / "m.safetensors"), steps=1,
                                **{**TINY, "dataset": "interferograms", **change})
    with pytest.raises(InsarMlError, match=message):
        train_pdm(settings, log=lambda _: None)


def test_super_resolution_pairs_share_the_low_resolution_scale():
    data = SyntheticPdmData("interferograms", 64, seed=0, super_resolution=True, crop=32)
    batch = data.batch(0, 4)
    assert batch.x0.shape == (4, 1, 32, 32) and batch.low_res.shape == (4, 1, 16, 16) and batch.labels is None
    low = batch.low_res.numpy()
    assert np.allclose(low.min(axis=(1, 2, 3)), -1) and np.allclose(low.max(axis=(1, 2, 3)), 1)
    assert np.allclose(downsample(batch.x0.numpy()), low, atol=1e-5)
    with pytest.raises(InsarMlError, match="crop"):
        pdm_data("interferograms", 64, 0, super_resolution=True, crop=30)


def test_superresolve_raster_keeps_extent_units_and_nodata(tmp_path):
    out = tmp_path / "sr.safetensors"
    train_pdm(PdmTrainSettings(output=str(out), dataset="interferograms", super_resolution=True, crop=16, steps=2,
                               validate_every=2, **{**TINY, "image_size": 32}), log=lambda _: None)
    pdm = load_pdm(out)
    assert pdm.is_super_resolution and pdm.card["super_resolution"] == {"scale": 2, "low_res_size": 16}
    low = np.add.outer(np.arange(12.0), np.arange(20.0)).astype(np.float32) * 0.5 + 10
    low[0, 0] = np.nan
    write_raster(tmp_path / "low.tif", low)
    superresolve_raster(pdm, str(tmp_path / "low.tif"), tmp_path / "high.tif", str(out), sampler="ddim", steps=4,
                        seed=0)
    from osgeo import gdal

    ds = gdal.Open(str(tmp_path / "high.tif"))
    src = gdal.Open(str(tmp_path / "low.tif"))
    assert (ds.RasterXSize, ds.RasterYSize) == (40, 24)
    gt, src_gt = ds.GetGeoTransform(), src.GetGeoTransform()
    assert gt[0] == src_gt[0] and gt[3] == src_gt[3] and gt[1] == src_gt[1] / 2 and gt[5] == src_gt[5] / 2
    assert ds.GetProjection() == src.GetProjection()
    high = read_band(str(tmp_path / "high.tif"))
    assert np.isnan(high[:2, :2]).all() and np.isfinite(high[2:, 2:]).all()
    means = downsample(high)   # the result averages back to the input exactly (back-projection)
    assert np.allclose(means[1:], low[1:], atol=1e-4) and np.allclose(means[0, 1:], low[0, 1:], atol=1e-4)
    with pytest.raises(InsarMlError, match="not a super-resolution model"):
        superresolve(_plain_model(tmp_path), low)


def _plain_model(tmp_path: Path):
    out = tmp_path / "plain.safetensors"
    train_pdm(PdmTrainSettings(output=str(out), dataset="interferograms", steps=1, validate_every=1, **TINY),
              log=lambda _: None)
    return load_pdm(out)


def test_train_pdm_cli_with_two_gloo_processes(tmp_path):
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "qgis_insar_ml", "train-pdm", "--dataset", "deformation", "--image-size", "16", "--channel-mult", "1", "2",
         "--attention", "--diffusion-steps", "20", "--steps", "4", "--batch-size", "4", "--validate-every", "2",
         "--checkpoint-every", "2", "--device", "cpu", "--output", str(tmp_path / "ddp.safetensors")],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)},
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on cpu (2 process(es))" in done.stdout
    state = torch.load(tmp_path / "ddp.ckpt.pt", weights_only=True)
    assert [h["step"] for h in state["history"]] == [1, 2, 3, 4]
    # both ranks fed the loss-aware sampler: 2 processes × 2 samples × 4 steps
    assert int(state["sampler_counts"].sum()) == 16
    assert load_pdm(tmp_path / "ddp.safetensors").classes is not None
