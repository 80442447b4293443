"""The PDM paper's released SAR models (improved-diffusion checkpoints) load as they are.

The checkpoints here are written the way the paper's code writes them: a plain state_dict
of Parameters under the reference key names, beside the metadata its training scripts
dump (``train_lowres.py`` / ``train_superres.py`` keys), in folders named like the
released zips, at a tiny size.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qgis_insar_ml.core.diffusion.pdm_file import config_from_reference_metadata, load_pdm, reference_class_names
from qgis_insar_ml.core.diffusion.unet import UNetModel
from qgis_insar_ml.core.errors import InsarMlError
from test_gui import iface, own_settings, project, user_models  # noqa: F401  (fixtures)
from test_pdm_unet import inputs, randomized
from test_tengeop import NAMES

torch.set_num_threads(1)

COMMON = {
    "type_dataset": "image", "data_train_dir": "./data/sar_tengeop/train/", "data_val_dir": "./data/sar_tengeop/val/",
    "num_epochs": 70, "schedule_sampler": "loss-second-moment", "lr": 1e-4, "weight_decay": 0.0,
    "lr_anneal_steps": 0, "batch_size": 8, "microbatch": 4, "ema_rate": "0.99", "save_interval": None,
    "resume_checkpoint": None, "use_fp16": False, "fp16_scale_growth": 1e-3, "num_input_channels": 1,
    "num_model_channels": 32, "num_res_blocks": 1, "num_heads": 4, "num_heads_upsample": -1,
    "attention_resolutions": "16,8", "dropout": 0.1, "learn_sigma": True, "sigma_small": False,
    "class_cond": True, "num_class": 10, "diffusion_steps": 2000, "noise_schedule": "cosine",
    "timestep_respacing": "", "loss_name": "rescaled_mse", "output_type": "epsilon", "rescale_timesteps": True,
    "use_checkpoint": False, "use_scale_shift_norm": True, "compute_val": False, "crop": True,
}
META_LOWRES = {**COMMON, "image_size": 32, "image_size_hr": 64}          # paper: 128, from 256 crops
META_SUPERRES = {**COMMON, "image_size": 64, "image_size_lr": 32}        # paper: 128 → 256
LOWRES, SUPERRES = "SAR_lowres_128_cond_sigma_2000", "SAR_superres_128_to_256_cond_sigma_2000"
CHECKPOINT = "ema_rate=0.99_33.pt"


def released(root: Path, folder: str, meta: dict, seed: int, metadata_name: str = "metadata.json"
             ) -> tuple[UNetModel, Path]:
    """A released model folder: the checkpoint as the reference saves it, and its metadata."""
    config, _ = config_from_reference_metadata(meta)
    model = randomized(UNetModel(config), seed)
    run = root / folder
    run.mkdir(parents=True, exist_ok=True)
    torch.save({k: torch.nn.Parameter(v.clone()) for k, v in model.state_dict().items()}, run / CHECKPOINT)
    (run / metadata_name).write_text(json.dumps(meta))
    return model, run / CHECKPOINT


def bilinear_half_pixel(low: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resampling of a square (h, h) image to (size, size), pixel centres aligned
    (align_corners=False): source coordinate (i + 0.5)·h/size − 0.5, clamped at the edges."""
    h = low.shape[0]
    src = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, h - 1)
    w = src - i0
    rows = low[i0] * (1 - w)[:, None] + low[i1] * w[:, None]
    return rows[:, i0] * (1 - w)[None] + rows[:, i1] * w[None]


def test_bilinear_upsampling_is_the_half_pixel_kind():
    low = np.array([[0.0, 4.0], [8.0, 12.0]])
    expected = [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]]        # worked by hand
    np.testing.assert_allclose(bilinear_half_pixel(low, 4), expected)
    torch.testing.assert_close(F.interpolate(torch.tensor(low)[None, None], size=(4, 4), mode="bilinear",
                                             align_corners=False)[0, 0], torch.tensor(expected, dtype=torch.float64))
    rng = np.random.default_rng(4)
    image = rng.normal(size=(16, 16))
    torch.testing.assert_close(
        F.interpolate(torch.tensor(image)[None, None], size=(32, 32), mode="bilinear")[0, 0],
        torch.tensor(bilinear_half_pixel(image, 32)), rtol=0, atol=1e-12)


def test_super_resolution_model_is_the_reference_superresmodel():
    """SuperResModel(C) is UNetModel(2C) fed [x, bilinear(low_res)]: same keys, same output."""
    config, _ = config_from_reference_metadata(META_SUPERRES)
    assert (config.in_channels, config.low_res_channels, config.out_channels) == (1, 1, 2)
    assert config.channel_mult == (1, 2, 3, 4) and config.attention_resolutions == (4, 8)
    assert config.num_classes == 10 and config.dropout == 0.1
    sr = randomized(UNetModel(config), seed=11)
    plain = UNetModel(replace(config, in_channels=2, low_res_channels=0)).eval()
    assert [(k, v.shape) for k, v in sr.state_dict().items()] == [(k, v.shape) for k, v in plain.state_dict().items()]
    assert sr.state_dict()["input_blocks.0.0.weight"].shape == (32, 2, 3, 3)
    plain.load_state_dict(sr.state_dict(), strict=True)
    x, low = inputs(n=2, size=64, seed=2), inputs(n=2, size=32, seed=3)
    t, y = torch.tensor([17.5, 999.0]), torch.tensor([5, 9])
    upsampled = torch.from_numpy(np.stack([bilinear_half_pixel(im[0].numpy().astype(np.float64), 64)
                                           for im in low])[:, None].astype(np.float32))
    with torch.no_grad():
        out = sr(x, t, y, low_res=low)
        reference = plain(torch.cat([x, F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)], 1),
                          t, y)
        independent = plain(torch.cat([x, upsampled], 1), t, y)
        corners = plain(torch.cat([x, F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=True)], 1),
                        t, y)
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    torch.testing.assert_close(out, independent, rtol=1e-4, atol=1e-4)
    assert (out - corners).abs().max() > 1e-3            # the test tells the two kinds of upsampling apart


def test_released_models_load_with_their_classes(tmp_path):
    base, base_ckpt = released(tmp_path, LOWRES, META_LOWRES, seed=1)
    # the superres zip may name its metadata otherwise: the folder's only JSON is taken, as the paper's scripts do
    sr, sr_ckpt = released(tmp_path, SUPERRES, META_SUPERRES, seed=2, metadata_name=f"{SUPERRES}.json")
    loaded_base, loaded_sr = load_pdm(base_ckpt), load_pdm(sr_ckpt)
    for loaded in (loaded_base, loaded_sr):
        assert loaded.source == "improved-diffusion" and loaded.classes == NAMES
        assert loaded.diffusion_settings["steps"] == 2000 and loaded.diffusion_settings["noise_schedule"] == "cosine"
        assert loaded.learn_sigma and loaded.diffusion().variance == "learned_range"
    assert not loaded_base.is_super_resolution and "super_resolution" not in loaded_base.card
    assert loaded_sr.is_super_resolution and loaded_sr.card["super_resolution"] == {"scale": 2, "low_res_size": 32}
    assert loaded_base.card["converted_from"] == f"{LOWRES}/{CHECKPOINT}"
    y, t = torch.tensor([0, 9]), torch.tensor([3.0, 1999.0 * 1000 / 2000])
    x, x_high, low = inputs(size=32, seed=5), inputs(size=64, seed=6), inputs(size=32, seed=7)
    with torch.no_grad():
        torch.testing.assert_close(loaded_base.model(x, t, y), base(x, t, y), rtol=0, atol=0)
        torch.testing.assert_close(loaded_sr.model(x_high, t, y, low_res=low), sr(x_high, t, y, low_res=low),
                                   rtol=0, atol=0)
    (sr_ckpt.parent / "notes.json").write_text("{}")
    with pytest.raises(InsarMlError, match=r"no metadata.json beside it \(2 JSON files"):
        load_pdm(sr_ckpt)


def test_class_names_come_from_the_metadata():
    config, _ = config_from_reference_metadata(META_LOWRES)
    insar = {**META_LOWRES, "data_train_dir": "./data/insar_unwrap/train/", "data_val_dir": "./data/insar_unwrap/val/"}
    assert reference_class_names(insar, config, "insar_phase_128_sigma_2000") == [f"class {k}" for k in range(10)]
    assert reference_class_names(insar, config, LOWRES) == NAMES                  # the run folder says SAR
    assert reference_class_names({**insar, "data_train_dir": "/d/TenGeoP/train"}, config) == NAMES
    three, _ = config_from_reference_metadata({**META_LOWRES, "num_class": 3})
    assert reference_class_names(META_LOWRES, three, LOWRES) == ["class 0", "class 1", "class 2"]
    unconditional, _ = config_from_reference_metadata({**META_LOWRES, "class_cond": False})
    assert reference_class_names(META_LOWRES, unconditional, LOWRES) is None


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_models_dialog_imports_the_released_models_and_generate_offers_the_classes(
        qtbot, iface, user_models, tmp_path):  # noqa: F811, QGS105 (pytest fixtures of test_gui)
    from qgis_insar_ml.gui.generate_dialog import GenerateDialog
    from qgis_insar_ml.gui.models_dialog import ModelsDialog

    base, base_ckpt = released(tmp_path / "zips", LOWRES, META_LOWRES, seed=1)
    _, sr_ckpt = released(tmp_path / "zips", SUPERRES, META_SUPERRES, seed=2)
    evil_run = tmp_path / "zips" / "evil"
    evil_run.mkdir()
    (evil_run / "metadata.json").write_text(json.dumps(META_LOWRES))
    marker = tmp_path / "pwned"
    torch.save({"time_embed.0.weight": torch.zeros(1), "payload": _Payload(marker)}, evil_run / "ema_0.9999_1.pt")

    dialog = ModelsDialog()
    qtbot.addWidget(dialog)
    assert dialog.import_file(base_ckpt), dialog.message.text()
    name = f"{LOWRES}_ema_rate_0_99_33"
    assert f"as {name}" in dialog.message.text()
    assert (user_models / f"{name}.safetensors").is_file() and (user_models / f"{name}.json").is_file()
    assert dialog.import_file(sr_ckpt), dialog.message.text()
    rows = {dialog.table.item(r, 0).text(): dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())}
    assert rows[name] == f"32×32 px, classes: {', '.join(NAMES)}"
    assert rows[f"{SUPERRES}_ema_rate_0_99_33"] == "32 px → 64 px raster"
    assert not dialog.import_file(evil_run / "ema_0.9999_1.pt")
    assert "refused without being executed" in dialog.message.text() and not marker.exists()
    assert sorted(p.name for p in user_models.iterdir()) == sorted(
        f"{stem}{suffix}" for stem in (name, f"{SUPERRES}_ema_rate_0_99_33") for suffix in (".json", ".safetensors"))

    converted = load_pdm(user_models / f"{name}.safetensors")          # our format now, same numbers
    x, t, y = inputs(size=32, seed=8), torch.tensor([10.0, 20.0]), torch.tensor([3, 4])
    with torch.no_grad():
        torch.testing.assert_close(converted.model(x, t, y), base(x, t, y), rtol=0, atol=0)
    assert converted.source == "qgis_insar_ml" and converted.classes == NAMES

    generate = GenerateDialog(iface)
    qtbot.addWidget(generate)
    models = [generate.model.combo.itemText(i) for i in range(generate.model.combo.count())]
    assert f"{name} (user)" in models and not any(m.startswith(SUPERRES) for m in models)
    generate.model.combo.setCurrentIndex(generate.model.combo.findText(f"{name} (user)"))
    offered = [generate.class_label.itemData(i) for i in range(generate.class_label.count())]
    assert offered == ["", *NAMES]


def test_released_models_run_as_a_cascade_with_the_class_passed_to_the_super_resolution(tmp_path):
    from qgis_insar_ml.core.diffusion.generate import (cascade_seed, check_cascade, generate, superresolve,
                                                       superresolve_samples)

    _, base_ckpt = released(tmp_path, LOWRES, META_LOWRES, seed=1)
    _, sr_ckpt = released(tmp_path, SUPERRES, META_SUPERRES, seed=2)
    base, sr = load_pdm(base_ckpt), load_pdm(sr_ckpt)
    check_cascade(base, sr)
    low, labels = generate(base, 2, class_label=6, steps=2, seed=3)
    high = superresolve_samples(sr, low, labels, steps=2, seed=3)
    assert high.shape == (2, 1, 64, 64) and labels == [6, 6]
    # the super-resolved scene keeps the generated one as its 2×2 means (back-projection)
    np.testing.assert_allclose(high[0, 0].reshape(32, 2, 32, 2).mean(axis=(1, 3)), low[0, 0], atol=1e-4)
    # the class reaches the conditional super-resolution network: another class, another scene
    other = superresolve(sr, low[0, 0], steps=2, seed=cascade_seed(3, 0), class_label=0)
    assert not np.allclose(other, high[0, 0])
    with pytest.raises(InsarMlError, match="class-conditional"):
        superresolve(sr, low[0, 0], steps=2)
    # a conditional super-resolution model must share the base model's classes, checked before any sampling
    with pytest.raises(InsarMlError, match="class-conditional, with classes"):
        check_cascade(replace(base, classes=[f"other {i}" for i in range(10)]), sr)
