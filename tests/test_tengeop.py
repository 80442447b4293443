"""The TenGeoP-SARwv release as a PDM training set, and the README's GPU recipe on a replica of it."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, write_raster
from qgis_insar_ml.__main__ import main
from qgis_insar_ml.core.datasets.folder import RasterFolderDataset, to_decibels
from qgis_insar_ml.core.datasets.sar_ocean import TENGEOP_CLASSES
from qgis_insar_ml.core.diffusion.data import FolderPdmData, downsample, pdm_data
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm
from qgis_insar_ml.core.errors import InsarMlError

torch.set_num_threads(1)

NAMES = ["F_pure_ocean_waves", "G_wind_streaks", "H_micro_convective_cells", "I_rain_cells", "J_biological_slicks",
         "K_sea_ice", "L_iceberg", "M_low_wind_area", "N_atmospheric_front", "O_oceanic_front"]
LON_LAT = (-30.0, 0.00005, 0.0, 45.0, 0.0, -0.00005)     # wave-mode vignettes are lon/lat GeoTIFFs
SIZE = 300


def sigma0(rng: np.random.Generator, level_db: float) -> np.ndarray:
    """Linear σ0 with single-look speckle (exponential) around ``level_db``, plus a swell pattern."""
    rows, cols = np.mgrid[:SIZE, :SIZE]
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * (rows * 0.03 + cols * 0.02))
    return (10 ** (level_db / 10) * swell * rng.exponential(1.0, (SIZE, SIZE))).astype(np.float32)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """``TenGeoP/GeoTIFF/<F..O>/s1a-wv*.tiff`` as the SEANOE archive unpacks: 2 scenes in F–J, 3 in K–O,
    300×300 float σ0; K's first scene has a zero (no-return) half, for the decibel floor."""
    top = tmp_path_factory.mktemp("TenGeoP")
    rng = np.random.default_rng(2016)
    for number, (letter, _) in enumerate(TENGEOP_CLASSES):
        folder = top / "GeoTIFF" / letter
        folder.mkdir(parents=True)
        for k in range(2 if number < 5 else 3):
            scene = sigma0(rng, -25.0 + 2.0 * number)
            if letter == "K" and k == 0:
                scene[:, :150] = 0.0
            write_raster(folder / f"s1a-wv{1 + k % 2}-slc-vv-20160{number + 1:02d}t0{k}1234-0{k}5678-01{k}.tiff",
                         scene, geotransform=LON_LAT, epsg=4326)
    (top / "GeoTIFF" / "F" / "s1a-wv1-slc-vv-notes.txt").write_text("not a raster")
    return top


def read(path: Path) -> np.ndarray:
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray().astype(np.float64)


def crop_of(restored: np.ndarray, scene: np.ndarray) -> tuple[int, int]:
    """The (row, col) of the 256-pixel window whose 2×2 means give ``restored`` (128×128)."""
    means = (scene[:-1, :-1] + scene[1:, :-1] + scene[:-1, 1:] + scene[1:, 1:]) / 4
    rows, cols = np.nonzero(np.isclose(means, restored[0, 0], rtol=1e-6, atol=0))
    for r, c in zip(rows, cols):
        if r + 256 <= SIZE and c + 256 <= SIZE and np.allclose(
                downsample(scene[r:r + 256, c:c + 256]), restored, rtol=1e-5, atol=1e-5 * np.ptp(restored)):
            return int(r), int(c)
    raise AssertionError("no 256-pixel window of the scene gives this sample")


def test_the_release_reads_as_it_unpacks(release):
    for root in (release, release / "GeoTIFF"):                  # the folder above GeoTIFF, or GeoTIFF itself
        data = RasterFolderDataset(root, crop=256, size=128, normalise="[-1,1]", seed=3)
        assert data.class_names == NAMES and data.labelled
        assert len(data) == 25 and data.root == release / "GeoTIFF"
        assert [data.labels.count(k) for k in range(10)] == [2] * 5 + [3] * 5
        assert all(f.name.startswith("s1a-wv") and f.suffix == ".tiff" for f in data.files)
        assert all(f.parent.name == NAMES[label][0] for f, label in zip(data.files, data.labels))
    assert not data.skipped                                        # the .txt is not even looked at


def test_crops_are_area_averaged_and_normalised_with_their_coefficients(release):
    data = RasterFolderDataset(release, crop=256, size=128, normalise="[-1,1]", seed=3)
    offsets = set()
    for index in (0, 7, 24):
        tensor, label, (lo, hi) = data[index]
        assert tensor.shape == (1, 128, 128) and tensor.dtype == torch.float32 and label == data.labels[index]
        assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
        restored = lo + (tensor[0].numpy().astype(np.float64) + 1) / 2 * (hi - lo)
        scene = read(data.files[index])
        r, c = crop_of(restored, scene)
        expected = downsample(scene[r:r + 256, c:c + 256])
        assert (lo, hi) == pytest.approx((expected.min(), expected.max()), rel=1e-12)
        offsets.add((r, c))
    assert len(offsets) == 3                                       # random crops, not always the corner
    assert data.coefficients()[-1] == (lo, hi)


def test_decibels_after_the_area_average_with_a_floor(release):
    linear = RasterFolderDataset(release, crop=256, size=128, normalise="[-1,1]", seed=5)
    decibel = RasterFolderDataset(release, crop=256, size=128, normalise="[-1,1]", seed=5, decibels=True)
    for index in range(len(decibel)):
        tensor, _, (lo, hi) = decibel[index]
        restored = lo + (tensor[0].numpy().astype(np.float64) + 1) / 2 * (hi - lo)
        averaged = linear.scene(index)[0]                          # the same crop (same seed, epoch, index)
        np.testing.assert_allclose(restored, to_decibels(averaged), atol=1e-5 * (hi - lo))
        assert -40.0 <= lo < hi < 10.0
    k_first = decibel.files.index(next(f for f in decibel.files if f.parent.name == "K"))
    assert decibel[k_first][2][0] == -40.0                         # the zero half sits on the floor
    assert linear[k_first][2][0] == 0.0


def test_scenes_already_in_db_are_refused(tmp_path):
    (tmp_path / "GeoTIFF" / "K").mkdir(parents=True)
    write_raster(tmp_path / "GeoTIFF" / "K" / "s1a-wv1-slc-vv-db.tiff", np.full((300, 300), -18.0, np.float32))
    data = RasterFolderDataset(tmp_path, crop=256, size=128, decibels=True)
    assert data.class_names == ["K_sea_ice"]
    with pytest.raises(InsarMlError, match="s1a-wv1-slc-vv-db.tiff.*dB already"):
        data[0]
    with pytest.raises(InsarMlError, match="Decibels are for folders"):
        pdm_data("interferograms", 32, 0, decibels=True)


def test_held_out_scenes_cover_every_class(release):
    data = FolderPdmData(release, size=128, crop=256, seed=0, decibels=True)
    assert data.classes == NAMES
    held = data.validation_indices
    labels = data.source.labels
    assert sorted(labels[i] for i in held) == list(range(10))      # one scene of each class
    assert set(held).isdisjoint(data.train_indices) and len(held) + len(data.train_indices) == 25
    for label in range(10):                                        # the last file of each class
        members = [i for i, value in enumerate(labels) if value == label]
        assert [i for i in held if labels[i] == label] == [members[-1]]
    validation = data.validation(20)
    assert validation.x0.shape == (20, 1, 128, 128) and validation.labels.tolist() == [labels[i] for i in held] * 2
    batch = data.batch(0, 6)
    assert set(batch.labels.tolist()) <= {labels[i] for i in data.train_indices}
    assert batch.ranges.shape == (6, 2) and (batch.ranges[:, 0] < batch.ranges[:, 1]).all()


def test_super_resolution_pairs_average_in_linear_units(release):
    data = FolderPdmData(release / "GeoTIFF", size=256, crop=256, seed=1, super_resolution=True, decibels=True)
    assert data.classes is None
    batch = data.batch(0, 3)
    assert batch.x0.shape == (3, 1, 256, 256) and batch.low_res.shape == (3, 1, 128, 128)
    for high, low, (lo, hi) in zip(batch.x0[:, 0].double().numpy(), batch.low_res[:, 0].double().numpy(),
                                   batch.ranges):
        assert low.min() == -1.0 and low.max() == pytest.approx(1.0, abs=1e-6)   # the low image's range
        high_db = lo + (high + 1) / 2 * (hi - lo)
        low_db = lo + (low + 1) / 2 * (hi - lo)
        # the low image is 10·log10 of the mean σ0, not the mean of the dB values (speckle biases that by −2.5 dB);
        # blocks with a floored pixel (K's zero half) are left out: the floor is not σ0
        unfloored = downsample((high_db > -40.0 + 1e-3).astype(float)) == 1
        assert unfloored.mean() > 0.3
        np.testing.assert_allclose(low_db[unfloored], to_decibels(downsample(10 ** (high_db / 10)))[unfloored],
                                   atol=2e-4)
        assert np.mean((low_db - downsample(high_db))[unfloored]) > 1.0


def readme_commands() -> list[list[str]]:
    """The train-pdm arguments of each ``torchrun`` command of the README's TenGeoP section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### TenGeoP-SARwv", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    commands = [shlex.split(line) for line in block.splitlines() if line.startswith("torchrun")]
    return [c[c.index("qgis_insar_ml") + 1:] for c in commands]


def test_readme_recipe_parses_and_trains_one_step(release, tmp_path, capsys):
    commands = readme_commands()
    assert len(commands) == 2
    base, superres = commands
    for args in commands:
        assert args[0] == "train-pdm" and args[args.index("--dataset") + 1] == "/data/TenGeoP/GeoTIFF"
        assert args[args.index("--diffusion-steps") + 1] == "2000" and args[args.index("--schedule") + 1] == "cosine"
        assert "--fixed-variance" not in args and args[args.index("--channels") + 1] == "128"
    assert args_value(base, "--res-blocks") == "4" and args_value(base, "--image-size") == "128"
    assert "--super-resolution" in superres and args_value(superres, "--image-size") == "256"
    # the full-size commands parse (a 1-step run needs a GPU: 128 channels at 128² and 256²)
    with pytest.raises(SystemExit) as info:
        main(["train-pdm", "--help"])
    assert info.value.code == 0 and "--decibels" in capsys.readouterr().out
    tiny = {"--dataset": str(release), "--channels": "32", "--steps": "1", "--batch-size": "2",
            "--device": "cpu", "--validate-every": "1", "--checkpoint-every": "1000"}
    for args, shrink, name in ((base, ["--image-size", "32", "--folder-crop", "64", "--channel-mult", "1", "2",
                                       "--attention", "2", "--res-blocks", "1"], "base"),
                               (superres, ["--image-size", "32", "--folder-crop", "32", "--channel-mult", "1", "2",
                                           "--res-blocks", "1", "--decibels"], "superres")):
        out = tmp_path / f"{name}.safetensors"
        overrides = [item for flag, value in {**tiny, "--output": str(out)}.items() for item in (flag, value)]
        assert main(args + overrides + shrink) == 0, capsys.readouterr().err     # the last value of a flag wins
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed["steps"] == 1 and np.isfinite(printed["final_validation_loss"])
        model = load_pdm(out)
        card = model.card
        assert card["diffusion"]["steps"] == 2000 and card["diffusion"]["noise_schedule"] == "cosine"
        assert card["diffusion"]["learn_sigma"] and card["training"]["dropout"] == 0.1
        if name == "base":
            assert model.classes == NAMES and model.config.num_classes == 10
            assert card["normalisation"]["units"] == "as the data"
            assert set(card["normalisation"]["coefficients"]) <= set(NAMES)
        else:
            assert model.is_super_resolution and card["super_resolution"]["low_res_size"] == 16
            assert card["normalisation"]["units"] == "dB" and card["training"]["decibels"]
            lo, hi = card["normalisation"]["coefficients"]["all"][0]
            assert -40.0 <= lo < hi < 10.0


def args_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]
