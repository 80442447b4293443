"""The PDM U-Net (improved-diffusion layout) and PDM model files."""
from __future__ import annotations

import json
import math
import pickle

import pytest
import torch

from qgis_insar_ml.core.diffusion.pdm_file import config_from_reference_metadata, load_pdm, save_pdm
from qgis_insar_ml.core.diffusion.unet import (AttentionBlock, UNetConfig, UNetModel, attention_downsample_rates,
                                               reference_channel_mult, timestep_embedding)
from qgis_insar_ml.core.errors import InsarMlError

torch.set_num_threads(1)


def tiny_config(**kw) -> UNetConfig:
    """image 32, 1 channel, 32 model channels, 1 res block, attention at ds 2, mult (1, 2), 3 classes, learn_sigma."""
    d = dict(image_size=32, in_channels=1, model_channels=32, out_channels=2, num_res_blocks=1,
             attention_resolutions=(2,), dropout=0.0, channel_mult=(1, 2), num_classes=3,
             use_scale_shift_norm=True, num_heads=1, num_heads_upsample=-1)
    d.update(kw)
    return UNetConfig(**d)


def randomized(model: UNetModel, seed: int = 0) -> UNetModel:
    """Give every weight a random value (the zero-initialised convs would hide everything)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def inputs(n=2, c=1, size=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, size, size, generator=g)


# The state_dict of tiny_config(), key for key as improved-diffusion's UNetModel names it.
def _res(prefix, cin, cout, emb=128, scale_shift=True, skip=None):
    keys = [(f"{prefix}.in_layers.0.weight", (cin,)), (f"{prefix}.in_layers.0.bias", (cin,)),
            (f"{prefix}.in_layers.2.weight", (cout, cin, 3, 3)), (f"{prefix}.in_layers.2.bias", (cout,)),
            (f"{prefix}.emb_layers.1.weight", ((2 if scale_shift else 1) * cout, emb)),
            (f"{prefix}.emb_layers.1.bias", ((2 if scale_shift else 1) * cout,)),
            (f"{prefix}.out_layers.0.weight", (cout,)), (f"{prefix}.out_layers.0.bias", (cout,)),
            (f"{prefix}.out_layers.3.weight", (cout, cout, 3, 3)), (f"{prefix}.out_layers.3.bias", (cout,))]
    if cin != cout:
        keys += [(f"{prefix}.skip_connection.weight", (cout, cin, 1, 1)), (f"{prefix}.skip_connection.bias", (cout,))]
    return keys


def _attn(prefix, ch):
    return [(f"{prefix}.norm.weight", (ch,)), (f"{prefix}.norm.bias", (ch,)),
            (f"{prefix}.qkv.weight", (3 * ch, ch, 1)), (f"{prefix}.qkv.bias", (3 * ch,)),
            (f"{prefix}.proj_out.weight", (ch, ch, 1)), (f"{prefix}.proj_out.bias", (ch,))]


EXPECTED_TINY_LAYOUT = [
    ("time_embed.0.weight", (128, 32)), ("time_embed.0.bias", (128,)),
    ("time_embed.2.weight", (128, 128)), ("time_embed.2.bias", (128,)),
    ("label_emb.weight", (3, 128)),
    ("input_blocks.0.0.weight", (32, 1, 3, 3)), ("input_blocks.0.0.bias", (32,)),
    *_res("input_blocks.1.0", 32, 32),
    ("input_blocks.2.0.op.weight", (32, 32, 3, 3)), ("input_blocks.2.0.op.bias", (32,)),
    *_res("input_blocks.3.0", 32, 64), *_attn("input_blocks.3.1", 64),
    *_res("middle_block.0", 64, 64), *_attn("middle_block.1", 64), *_res("middle_block.2", 64, 64),
    *_res("output_blocks.0.0", 128, 64), *_attn("output_blocks.0.1", 64),
    *_res("output_blocks.1.0", 96, 64), *_attn("output_blocks.1.1", 64),
    ("output_blocks.1.2.conv.weight", (64, 64, 3, 3)), ("output_blocks.1.2.conv.bias", (64,)),
    *_res("output_blocks.2.0", 96, 32),
    *_res("output_blocks.3.0", 64, 32),
    ("out.0.weight", (32,)), ("out.0.bias", (32,)), ("out.2.weight", (2, 32, 3, 3)), ("out.2.bias", (2,)),
]


def test_state_dict_layout_matches_improved_diffusion():
    model = UNetModel(tiny_config())
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == EXPECTED_TINY_LAYOUT
    # a few names spelled out in full, as they appear in reference checkpoints
    keys = dict(got)
    for k in ("time_embed.0.weight", "input_blocks.0.0.weight", "input_blocks.1.0.in_layers.0.weight",
              "input_blocks.1.0.emb_layers.1.weight", "input_blocks.1.0.out_layers.3.weight",
              "input_blocks.3.1.qkv.weight", "middle_block.1.proj_out.weight",
              "output_blocks.0.0.skip_connection.weight", "out.2.weight", "label_emb.weight"):
        assert k in keys
    # zero-initialised: last conv of every ResBlock, attention projections and the output conv
    sd = model.state_dict()
    assert torch.count_nonzero(sd["out.2.weight"]) == 0
    assert torch.count_nonzero(sd["input_blocks.1.0.out_layers.3.weight"]) == 0
    assert torch.count_nonzero(sd["middle_block.1.proj_out.weight"]) == 0


def test_without_scale_shift_and_unconditional():
    model = UNetModel(tiny_config(use_scale_shift_norm=False, num_classes=None, out_channels=1))
    sd = model.state_dict()
    assert "label_emb.weight" not in sd
    assert tuple(sd["input_blocks.1.0.emb_layers.1.weight"].shape) == (32, 128)
    out = randomized(model)(inputs(), torch.tensor([3.0, 700.0]))
    assert out.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError):
        model(inputs(), torch.tensor([1.0, 2.0]), y=torch.tensor([0, 1]))


def test_forward_shapes_and_learned_sigma_channels():
    model = randomized(UNetModel(tiny_config()))
    with torch.no_grad():
        out = model(inputs(), torch.tensor([10.0, 500.0]), y=torch.tensor([0, 2]))
    assert out.shape == (2, 2, 32, 32)
    assert torch.isfinite(out).all()
    two = randomized(UNetModel(tiny_config(in_channels=2, out_channels=4)))
    with torch.no_grad():
        assert two(inputs(c=2), 5.0, y=torch.tensor([1, 1])).shape == (2, 4, 32, 32)   # scalar time broadcasts
    with pytest.raises(ValueError):
        model(inputs(), torch.tensor([1.0, 2.0]))              # class-conditional without labels


def test_timestep_embedding_hand_values():
    t = torch.tensor([0.0, 1.0, 2.5])
    emb = timestep_embedding(t, 4)
    # half = 2, frequencies 10000^(-0/2) = 1 and 10000^(-1/2) = 0.01; cos block first, then sin
    expected = torch.tensor([[math.cos(v), math.cos(0.01 * v), math.sin(v), math.sin(0.01 * v)] for v in t.tolist()])
    torch.testing.assert_close(emb, expected, rtol=0, atol=1e-6)
    odd = timestep_embedding(t, 5)
    assert odd.shape == (3, 5) and torch.all(odd[:, 4] == 0)
    torch.testing.assert_close(odd[:, :4], expected, rtol=0, atol=1e-6)


def test_fractional_timesteps_are_not_truncated():
    model = randomized(UNetModel(tiny_config()))
    x, y = inputs(n=1), torch.tensor([1])
    with torch.no_grad():
        a = model(x, torch.tensor([10.0]), y)
        a2 = model(x, torch.tensor([10.0]), y)
        b = model(x, torch.tensor([10.4]), y)
        c = model(x, torch.tensor([10.01]), y)
    torch.testing.assert_close(a, a2)
    big, small = (a - b).abs().max().item(), (a - c).abs().max().item()
    assert big > 1e-5                 # 10.0 and 10.4 are different times
    assert 0 < small < big            # and the output moves continuously with t


def test_attention_uses_the_legacy_head_ordering():
    torch.manual_seed(3)
    ch, heads, d = 64, 2, 32
    block = AttentionBlock(ch, num_heads=heads)
    with torch.no_grad():
        block.proj_out.weight.normal_(0, 0.1)
    x = torch.randn(1, ch, 4, 4)
    flat = x.reshape(1, ch, 16)
    qkv = block.qkv(block.norm(flat))[0]          # [3C, T]
    outs = []
    for h in range(heads):                        # each head owns 3d consecutive rows: q, then k, then v
        rows = qkv[h * 3 * d:(h + 1) * 3 * d]
        q, k, v = rows[:d], rows[d:2 * d], rows[2 * d:]
        w = torch.softmax(q.T @ k / math.sqrt(d), dim=-1)      # [T, S]
        outs.append(v @ w.T)                                   # [d, T]
    expected = flat + block.proj_out(torch.cat(outs)[None])
    torch.testing.assert_close(block(x), expected.reshape(1, ch, 4, 4), rtol=1e-5, atol=1e-5)


def test_null_class_for_classifier_free_guidance():
    model = randomized(UNetModel(tiny_config(null_class=True)))
    assert model.state_dict()["label_emb.weight"].shape == (4, 128)
    assert model.null_label == 3
    x, t = inputs(), torch.tensor([20.0, 20.0])
    with torch.no_grad():
        null = model(x, t, y=torch.tensor([3, 3]))
        default = model(x, t)                     # no labels: the null label
        cond = model(x, t, y=torch.tensor([0, 0]))
    torch.testing.assert_close(null, default)
    assert not torch.allclose(null, cond)
    assert UNetModel(tiny_config()).null_label is None
    with pytest.raises(ValueError):
        tiny_config(num_classes=None, null_class=True)


def test_low_resolution_conditioning():
    model = randomized(UNetModel(tiny_config(low_res_channels=1)))
    assert model.state_dict()["input_blocks.0.0.weight"].shape == (32, 2, 3, 3)
    x, t, y = inputs(), torch.tensor([5.0, 5.0]), torch.tensor([0, 1])
    low = inputs(size=16, seed=5)
    with torch.no_grad():
        out = model(x, t, y, low_res=low)
        other = model(x, t, y, low_res=low + 1.0)
    assert out.shape == (2, 2, 32, 32)
    assert not torch.allclose(out, other)
    with pytest.raises(ValueError):
        model(x, t, y)                            # a super-resolution model needs low_res


def test_config_dict_round_trip_and_reference_helpers():
    cfg = tiny_config(null_class=True, low_res_channels=1)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert UNetConfig.from_dict(d) == cfg
    assert reference_channel_mult(128) == (1, 1, 2, 3, 4)
    assert reference_channel_mult(256) == (1, 1, 2, 2, 4, 4)
    assert attention_downsample_rates(64, "16,8") == (4, 8)
    assert UNetConfig(image_size=64, model_channels=32).channel_mult == (1, 2, 3, 4)
    with pytest.raises(ValueError):
        UNetConfig.from_dict({**d, "bogus": 1})


# --------------------------------------------------------------------------- model files


REFERENCE_METADATA = {
    "data_train_dir": "/data/train", "num_epochs": 70, "schedule_sampler": "loss-second-moment", "lr": 1e-4,
    "batch_size": 4, "ema_rate": "0.9999", "use_fp16": False, "image_size": 32, "num_input_channels": 1,
    "num_model_channels": 32, "num_res_blocks": 1, "num_heads": 1, "num_heads_upsample": -1,
    "attention_resolutions": "16", "dropout": 0.0, "learn_sigma": True, "sigma_small": False,
    "class_cond": True, "num_class": 3, "diffusion_steps": 2000, "noise_schedule": "cosine",
    "timestep_respacing": "", "loss_name": "rescaled_mse", "output_type": "epsilon",
    "rescale_timesteps": True, "use_checkpoint": False, "use_scale_shift_norm": True, "type_dataset": "image",
}


def reference_run(tmp_path, meta=REFERENCE_METADATA, name="ema_0.9999_000100.pt"):
    """A training folder as the reference code leaves it: a plain state_dict and metadata.json."""
    cfg, _ = config_from_reference_metadata(meta)
    model = randomized(UNetModel(cfg), seed=7)
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    # the reference saves {name: Parameter} (its EMA/master parameters)
    torch.save({k: torch.nn.Parameter(v.clone()) for k, v in model.state_dict().items()}, folder / name)
    (folder / "metadata.json").write_text(json.dumps(meta))
    return model, folder / name


def test_reference_metadata_mapping():
    cfg, diff = config_from_reference_metadata(REFERENCE_METADATA)
    assert cfg.channel_mult == (1, 2, 2, 2)                   # derived from image_size 32 like script_util
    assert cfg.attention_resolutions == (2,)                  # "16" at 32 px → ds 2
    assert (cfg.in_channels, cfg.out_channels, cfg.num_classes, cfg.null_class) == (1, 2, 3, False)
    assert diff == {"steps": 2000, "noise_schedule": "cosine", "learn_sigma": True, "predict": "eps",
                    "rescale_timesteps": True, "sigma_small": False, "timestep_respacing": ""}
    cfg2, _ = config_from_reference_metadata({**REFERENCE_METADATA, "image_size": 64,
                                              "attention_resolutions": "16,8", "learn_sigma": False})
    assert cfg2.attention_resolutions == (4, 8) and cfg2.out_channels == 1


def test_reference_checkpoint_round_trip(tmp_path):
    model, ckpt = reference_run(tmp_path)
    loaded = load_pdm(ckpt)
    assert loaded.source == "improved-diffusion"
    assert not loaded.model.training
    assert loaded.diffusion_settings["steps"] == 2000 and loaded.diffusion_settings["learn_sigma"]
    assert loaded.classes == ["class 0", "class 1", "class 2"] and loaded.config.num_classes == 3   # unnamed
    x, t, y = inputs(), torch.tensor([12.5, 1999.0 * 1000 / 2000]), torch.tensor([2, 0])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, t, y), model(x, t, y), rtol=0, atol=0)
    # and it converts to our format without loss
    out = save_pdm(loaded.model, tmp_path / "converted", loaded.card)
    again = load_pdm(out)
    assert again.source == "qgis_insar_ml" and again.config == loaded.config
    with torch.no_grad():
        torch.testing.assert_close(again.model(x, t, y), model(x, t, y), rtol=0, atol=0)


def test_reference_super_resolution_checkpoint(tmp_path):
    meta = {**REFERENCE_METADATA, "image_size_lr": 16, "class_cond": False, "num_class": None}
    model, ckpt = reference_run(tmp_path, meta, name="model_epoch=3_iter=100.pt")
    loaded = load_pdm(ckpt)
    assert loaded.config.low_res_channels == 1 and loaded.is_super_resolution
    assert loaded.model.state_dict()["input_blocks.0.0.weight"].shape[1] == 2
    x, t, low = inputs(), torch.tensor([3.0, 4.0]), inputs(size=16, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, t, low_res=low), model(x, t, low_res=low), rtol=0, atol=0)


def test_safetensors_round_trip(tmp_path):
    model = randomized(UNetModel(tiny_config(null_class=True)))
    card = {"diffusion": {"steps": 1000, "noise_schedule": "linear", "learn_sigma": True},
            "classes": ["ocean waves", "sea ice", "rain cells"], "normalization": {"min": 0, "max": 1}}
    weights = save_pdm(model, tmp_path / "sar_pdm", card)
    assert weights.name == "sar_pdm.safetensors"
    written = json.loads((tmp_path / "sar_pdm.json").read_text())
    assert written["format"] == "qgis_insar_ml.pdm" and written["kind"] == "pdm"
    assert written["unet"]["null_class"] is True
    assert not list(tmp_path.glob(".*partial"))
    for given in (weights, tmp_path / "sar_pdm.json"):
        loaded = load_pdm(given)
        assert loaded.source == "qgis_insar_ml"
        assert loaded.classes == ["ocean waves", "sea ice", "rain cells"]
        assert loaded.diffusion_settings["predict"] == "eps" and loaded.diffusion_settings["rescale_timesteps"]
        assert loaded.card["normalization"] == {"min": 0, "max": 1}
        x, t = inputs(), torch.tensor([100.0, 0.5])
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x, t, torch.tensor([3, 1])), model(x, t, torch.tensor([3, 1])),
                                       rtol=0, atol=0)


def test_save_refuses_inconsistent_cards(tmp_path):
    model = UNetModel(tiny_config())
    with pytest.raises(InsarMlError, match="learn_sigma"):
        save_pdm(model, tmp_path / "m", {"diffusion": {"steps": 10, "learn_sigma": False}})
    with pytest.raises(InsarMlError, match="class names"):
        save_pdm(model, tmp_path / "m", {"diffusion": {"steps": 10}, "classes": ["a", "b"]})
    with pytest.raises(InsarMlError, match="steps"):
        save_pdm(model, tmp_path / "m", {})
    assert not list(tmp_path.iterdir())


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer, message", [("torch", "refused without being executed"),
                                             ("pickle2", "refused without being executed"),
                                             ("pickle", "refused|corrupt")])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pickled_payload_is_never_executed(tmp_path, writer, message):
    _, ckpt = reference_run(tmp_path)
    marker = tmp_path / "pwned"
    evil = {"time_embed.0.weight": torch.zeros(1), "payload": _Payload(marker)}
    if writer == "torch":
        torch.save(evil, ckpt)
    elif writer == "pickle2":
        ckpt.write_bytes(pickle.dumps(evil, protocol=2))
    else:
        ckpt.write_bytes(pickle.dumps(evil))
    with pytest.raises(InsarMlError, match=message) as info:
        load_pdm(ckpt)
    assert ckpt.name in str(info.value)
    assert not marker.exists()


def test_corrupt_files(tmp_path):
    _, ckpt = reference_run(tmp_path)
    ckpt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    with pytest.raises(InsarMlError, match="corrupt"):
        load_pdm(ckpt)
    weights = save_pdm(UNetModel(tiny_config()), tmp_path / "ours", {"diffusion": {"steps": 10}})
    weights.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InsarMlError, match="corrupt"):
        load_pdm(weights)
    (tmp_path / "ours.json").write_text("{not json")
    with pytest.raises(InsarMlError, match="not valid JSON"):
        load_pdm(weights)


def test_wrong_kind_and_missing_card_or_metadata(tmp_path):
    weights = save_pdm(UNetModel(tiny_config()), tmp_path / "m", {"diffusion": {"steps": 10}})
    (tmp_path / "m.json").write_text(json.dumps({"format": "qgis_insar_ml.deepinsar", "kind": "deepinsar"}))
    with pytest.raises(InsarMlError, match="not a PDM.*deepinsar"):
        load_pdm(weights)
    (tmp_path / "m.json").unlink()
    with pytest.raises(InsarMlError, match="no model card"):
        load_pdm(weights)
    _, ckpt = reference_run(tmp_path)
    (ckpt.parent / "metadata.json").unlink()
    with pytest.raises(InsarMlError, match="metadata.json"):
        load_pdm(ckpt)
    with pytest.raises(InsarMlError, match="optimizer"):
        load_pdm(ckpt.parent / "opt3.pt")
    with pytest.raises(InsarMlError, match="not a PDM model file"):
        load_pdm(tmp_path / "scene.tif")


def test_weights_that_do_not_fit_the_metadata(tmp_path):
    _, ckpt = reference_run(tmp_path)
    meta = {**REFERENCE_METADATA, "num_res_blocks": 2}
    (ckpt.parent / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InsarMlError, match="do not fit.*missing"):
        load_pdm(ckpt)
    meta = {**REFERENCE_METADATA, "num_class": 5}
    (ckpt.parent / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InsarMlError, match="wrong shape.*label_emb"):
        load_pdm(ckpt)
    meta = dict(REFERENCE_METADATA)
    del meta["num_model_channels"]
    (ckpt.parent / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InsarMlError, match="num_model_channels"):
        load_pdm(ckpt)
