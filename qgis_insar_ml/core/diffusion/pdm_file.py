"""PDM model files: our safetensors + JSON card, and checkpoints of the reference code.

Two kinds of file load here, and both are read as data, never as code:

1. ``name.safetensors`` with its card ``name.json`` beside it (written by :func:`save_pdm`):
   ``{"format": "qgis_insar_ml.pdm", "kind": "pdm", "unet": {...}, "diffusion": {...},
   "classes": [...] | null, ...}``.
2. A checkpoint of the PDM paper's training code (the improved-diffusion lineage):
   ``model*.pt`` or ``ema_*.pt``, a plain ``state_dict``, with the ``metadata.json`` that
   the training script wrote in the same folder (the released models, e.g. the paper's
   ``SAR_lowres_128_cond_sigma_2000`` and ``SAR_superres_128_to_256_cond_sigma_2000``,
   may name it otherwise: the folder's only ``.json`` is taken then, as the paper's
   sampling scripts do).  It is opened with
   ``torch.load(..., weights_only=True)`` only: that unpickler rebuilds tensors and
   refuses every other object, so a file carrying an executable payload is rejected
   without running it.  The architecture is rebuilt from ``metadata.json`` exactly as the
   reference ``script_util.create_model`` does, and the weights must fit it key for key.
   A super-resolution checkpoint (``image_size_lr`` in the metadata, the reference
   ``SuperResModel``) gets the low-resolution input channels.  Reference metadata holds no
   class names: a 10-class SAR model (its training folder or run folder says SAR or
   TenGeoP) gets the TenGeoP-SARwv names, the labels being the sorted letters F–O as the
   reference data loader numbers them; other conditional models get "class 0", "class 1"…
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..datasets.sar_ocean import SAR_CLASS_NAMES
from ..errors import InsarMlError
from ..model_files import card_path, load_weights, read_card, read_json, save_with_card
from .gaussian_diffusion import GaussianDiffusion
from .unet import UNetConfig, UNetModel, attention_downsample_rates, reference_channel_mult

CARD_FORMAT = "qgis_insar_ml.pdm"
KIND = "pdm"
SOURCE_OURS = "qgis_insar_ml"
SOURCE_REFERENCE = "improved-diffusion"
REFERENCE_METADATA = "metadata.json"
REFERENCE_SUFFIXES = (".pt", ".pth")
NOISE_SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "x0", "v")
# the reference code's output_type → our prediction name
REFERENCE_OUTPUT_TYPES = {"epsilon": "eps", "x_start": "x0"}
# the reference training script's defaults, used only where a metadata.json lacks a key
REFERENCE_DEFAULTS: dict[str, Any] = {
    "num_heads": 4, "num_heads_upsample": -1, "attention_resolutions": "16,8", "dropout": 0.0,
    "learn_sigma": False, "sigma_small": False, "class_cond": False, "num_class": None,
    "diffusion_steps": 1000, "noise_schedule": "linear", "timestep_respacing": "",
    "output_type": "epsilon", "rescale_timesteps": True, "use_scale_shift_norm": True,
}
REFERENCE_REQUIRED = ("image_size", "num_input_channels", "num_model_channels", "num_res_blocks")
# "sar" as a word of a path or run name ("SAR_lowres…", "sar_tengeop/train"), not inside "insar"
SAR_HINT = re.compile(r"tengeop|(?<![a-z])sar(?![a-z])", re.IGNORECASE)


@dataclass
class LoadedPdm:
    model: UNetModel                      # in eval mode, on the requested device
    config: UNetConfig
    diffusion_settings: dict[str, Any]    # steps, noise_schedule, learn_sigma, predict, rescale_timesteps, …
    classes: list[str] | None
    card: dict[str, Any]
    source: str                           # "qgis_insar_ml" or "improved-diffusion"
    path: Path | None = None              # the weights file that was read

    @property
    def learn_sigma(self) -> bool:
        return bool(self.diffusion_settings.get("learn_sigma"))

    @property
    def is_super_resolution(self) -> bool:
        return self.config.low_res_channels > 0

    def diffusion(self) -> GaussianDiffusion:
        """The diffusion the model was trained with, as its card or metadata.json says."""
        s = self.diffusion_settings
        variance = ("learned_range" if s["learn_sigma"] else
                    "fixed_small" if s.get("sigma_small", True) else "fixed_large")
        return GaussianDiffusion(s["steps"], s["noise_schedule"], s.get("predict", "eps"), variance)


def _diffusion_settings(d: dict[str, Any], config: UNetConfig, where: str) -> dict[str, Any]:
    """Validated diffusion settings; ``learn_sigma`` must agree with the U-Net's output channels."""
    if not isinstance(d, dict):
        raise InsarMlError(f"{where}: the diffusion settings must be a JSON object.")
    out = dict(d)
    learn_sigma = out.get("learn_sigma")
    if learn_sigma is None:
        learn_sigma = config.out_channels == 2 * config.in_channels
    out["learn_sigma"] = bool(learn_sigma)
    expected_out = config.in_channels * (2 if out["learn_sigma"] else 1)
    if config.out_channels != expected_out:
        raise InsarMlError(f"{where}: learn_sigma={out['learn_sigma']} needs {expected_out} output channels "
                           f"for {config.in_channels} input channel(s), but the U-Net has {config.out_channels}.")
    try:
        out["steps"] = int(out["steps"])
    except (KeyError, TypeError, ValueError):
        raise InsarMlError(f"{where}: the diffusion settings need the number of diffusion steps ('steps').") from None
    if out["steps"] < 1:
        raise InsarMlError(f"{where}: the number of diffusion steps must be at least 1.")
    out["noise_schedule"] = str(out.get("noise_schedule", "linear"))
    if out["noise_schedule"] not in NOISE_SCHEDULES:
        raise InsarMlError(f"{where}: unknown noise schedule '{out['noise_schedule']}' "
                           f"(known: {', '.join(NOISE_SCHEDULES)}).")
    out["predict"] = str(out.get("predict", "eps"))
    if out["predict"] not in PREDICTIONS:
        raise InsarMlError(f"{where}: unknown prediction target '{out['predict']}' (known: {', '.join(PREDICTIONS)}).")
    out["rescale_timesteps"] = bool(out.get("rescale_timesteps", True))
    return out


def _classes(value: Any, config: UNetConfig, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise InsarMlError(f"{where}: 'classes' must be a list of class names.")
    names = [str(v) for v in value]
    if config.num_classes is None:
        raise InsarMlError(f"{where}: class names are given but the U-Net is unconditional.")
    if len(names) != config.num_classes:
        raise InsarMlError(f"{where}: {len(names)} class names for a U-Net with {config.num_classes} classes.")
    return names


# --------------------------------------------------------------------------- our format


def save_pdm(model: UNetModel, path: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Write ``<path>.safetensors`` and its card ``<path>.json``; both appear only when complete.

    ``card`` must hold ``"diffusion"`` (at least ``steps`` and ``noise_schedule``) and may hold
    ``"classes"`` (one name per label) and any other JSON-serialisable entries (training
    settings, data normalisation, …).  Returns the weights path.
    """
    config = model.config
    where = Path(path).name
    card = dict(card or {})
    for reserved in ("format", "kind", "unet"):
        card.pop(reserved, None)
    diffusion = _diffusion_settings(card.pop("diffusion", {}), config, where)
    classes = _classes(card.pop("classes", None), config, where)
    full_card = {"format": CARD_FORMAT, "kind": KIND, "unet": config.to_dict(), "diffusion": diffusion,
                 "classes": classes, **card}
    return save_with_card(model.state_dict(), full_card, path)


def _load_ours(given: Path, device: str | torch.device) -> LoadedPdm:
    weights, card = read_card(given, CARD_FORMAT, "PDM")
    card_file = card_path(weights)
    if card.get("kind") != KIND:
        raise InsarMlError(f"{weights.name} is not a PDM (its card says kind '{card.get('kind', 'unknown')}'). "
                           "Choose a PDM model file (.safetensors with a 'pdm' card).")
    try:
        config = UNetConfig.from_dict(card["unet"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"The card {card_file.name} has an invalid U-Net description ({exc}).") from None
    diffusion = _diffusion_settings(card.get("diffusion", {}), config, card_file.name)
    classes = _classes(card.get("classes"), config, card_file.name)
    model = _build_and_fill(config, load_weights(weights), weights)
    return LoadedPdm(model.to(device).eval(), config, diffusion, classes, card, SOURCE_OURS, weights)


def _as_bool(value: Any, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "t", "f", "y", "n"):
        return value.strip().lower() in ("true", "1", "yes", "t", "y")
    raise InsarMlError(f"{where}: '{key}' should be true or false, not {value!r}.")


def config_from_reference_metadata(meta: dict[str, Any], where: str = REFERENCE_METADATA
                                   ) -> tuple[UNetConfig, dict[str, Any]]:
    """(U-Net config, diffusion settings) that the reference training code built from ``metadata.json``."""
    if not isinstance(meta, dict):
        raise InsarMlError(f"{where} must be a JSON object of training settings.")
    missing = [k for k in REFERENCE_REQUIRED if meta.get(k) is None]
    if missing:
        raise InsarMlError(f"{where} lacks {', '.join(missing)}, so the network cannot be rebuilt. "
                           "Use the metadata.json written by the training script for this checkpoint.")
    m = {**REFERENCE_DEFAULTS, **{k: v for k, v in meta.items() if v is not None}}
    try:
        image_size = int(m["image_size"])
        in_ch = int(m["num_input_channels"])
        learn_sigma = _as_bool(m["learn_sigma"], "learn_sigma", where)
        class_cond = _as_bool(m["class_cond"], "class_cond", where)
        channel_mult = m.get("channel_mult")
        if isinstance(channel_mult, str):
            channel_mult = [int(v) for v in channel_mult.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not channel_mult:
            channel_mult = reference_channel_mult(image_size)
        num_classes = None
        if class_cond:
            if m.get("num_class") in (None, ""):
                raise InsarMlError(f"{where}: class_cond is true but num_class is missing.")
            num_classes = int(m["num_class"])
        config = UNetConfig(
            image_size=image_size,
            in_channels=in_ch,
            model_channels=int(m["num_model_channels"]),
            out_channels=2 * in_ch if learn_sigma else in_ch,
            num_res_blocks=int(m["num_res_blocks"]),
            attention_resolutions=attention_downsample_rates(image_size, m["attention_resolutions"]),
            dropout=float(m["dropout"]),
            channel_mult=tuple(int(v) for v in channel_mult),
            num_classes=num_classes,
            use_scale_shift_norm=_as_bool(m["use_scale_shift_norm"], "use_scale_shift_norm", where),
            num_heads=int(m["num_heads"]),
            num_heads_upsample=int(m["num_heads_upsample"]),
            low_res_channels=in_ch if m.get("image_size_lr") else 0,
        )
    except InsarMlError:
        raise
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise InsarMlError(f"{where} describes a network that cannot be built ({exc}).") from None

    output_type = str(m["output_type"])
    if output_type not in REFERENCE_OUTPUT_TYPES:
        raise InsarMlError(f"{where}: output_type '{output_type}' is not supported; only models predicting "
                           f"{' or '.join(REFERENCE_OUTPUT_TYPES)} can be used.")
    settings = {
        "steps": m["diffusion_steps"],
        "noise_schedule": m["noise_schedule"],
        "learn_sigma": learn_sigma,
        "predict": REFERENCE_OUTPUT_TYPES[output_type],
        "rescale_timesteps": _as_bool(m["rescale_timesteps"], "rescale_timesteps", where),
        "sigma_small": _as_bool(m["sigma_small"], "sigma_small", where),
        "timestep_respacing": m.get("timestep_respacing") or "",
    }
    if m.get("image_size_lr"):
        settings["low_res_size"] = int(m["image_size_lr"])
    return config, _diffusion_settings(settings, config, where)


def _unpickler_reason(exc: BaseException) -> str:
    """The useful line of torch's weights-only refusal (not its advice to turn the safety off)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    refusal = next((ln for ln in lines if "GLOBAL" in ln.upper() and ("unsupported" in ln.lower()
                                                                       or "not an allowed" in ln)), None)
    if refusal:     # "GLOBAL io.open was not an allowed global…" / "unsupported GLOBAL posix.system whose…"
        name = refusal.split("GLOBAL", 1)[1].split()[0] if "GLOBAL" in refusal else refusal
        return f"Unsupported global {name}"
    return (lines[0] if lines else type(exc).__name__)[:200]


def _torch_load_weights_only(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; never runs code from the file."""
    corrupt = (f"{path.name} is corrupt or not a plain PyTorch checkpoint ({{}}); nothing in it was run. "
               "Copy it again from where the model was trained, and choose a model*.pt or ema_*.pt file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if "Unsupported global" in reason:
            raise InsarMlError(
                f"{path.name} refers to Python code or objects other than tensors ({reason}), so it was refused "
                "without being executed. Only plain state_dict checkpoints (model*.pt / ema_*.pt) are "
                "accepted; do not trust a file like this one.") from None
        raise InsarMlError(corrupt.format(reason)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError,
            ImportError, TypeError, KeyError, IndexError, UnicodeDecodeError, MemoryError) as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise InsarMlError(corrupt.format(first[:200])) from None


def reference_class_names(meta: dict[str, Any], config: UNetConfig, run_folder: str = "") -> list[str] | None:
    """Class names for a reference checkpoint, whose metadata numbers classes but does not name them."""
    if config.num_classes is None:
        return None
    hints = " ".join(str(meta.get(key) or "") for key in ("data_train_dir", "data_val_dir")) + " " + run_folder
    if config.num_classes == len(SAR_CLASS_NAMES) and SAR_HINT.search(hints):
        return list(SAR_CLASS_NAMES)
    return [f"class {label}" for label in range(config.num_classes)]


def _reference_metadata_file(weights: Path) -> Path:
    """``metadata.json`` beside the checkpoint, or else the folder's only JSON file."""
    meta_file = weights.parent / REFERENCE_METADATA
    if meta_file.is_file():
        return meta_file
    others = sorted(weights.parent.glob("*.json"))
    if len(others) == 1:
        return others[0]
    found = f" ({len(others)} JSON files there: {', '.join(p.name for p in others[:4])})" if others else ""
    raise InsarMlError(f"{weights.name} has no {REFERENCE_METADATA} beside it{found}, so its architecture is "
                       f"unknown. Copy the {REFERENCE_METADATA} written by the training run into {weights.parent}.")


def _load_reference(weights: Path, device: str | torch.device) -> LoadedPdm:
    name = weights.name
    if name.startswith("opt"):
        raise InsarMlError(f"{name} holds optimizer state, not model weights. Choose the model*.pt or "
                           "ema_*.pt checkpoint (the EMA one usually samples best).")
    if not weights.is_file():
        raise InsarMlError(f"Checkpoint not found: {weights}.")
    meta_file = _reference_metadata_file(weights)
    meta = read_json(meta_file, "training metadata")
    config, diffusion = config_from_reference_metadata(meta, f"{meta_file.name} of {name}")
    state = _torch_load_weights_only(weights)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise InsarMlError(f"{name} is not a plain state_dict (a mapping of names to tensors). "
                           "Choose a model*.pt or ema_*.pt checkpoint of the training code.")
    model = _build_and_fill(config, state, weights)
    classes = reference_class_names(meta, config, weights.parent.name)
    card = {"format": CARD_FORMAT, "kind": KIND, "unet": config.to_dict(), "diffusion": diffusion,
            "classes": classes, "source": SOURCE_REFERENCE, "converted_from": f"{weights.parent.name}/{name}",
            "training": {"data": f"reference code, {meta.get('num_epochs', '?')} epochs of "
                                 f"{meta.get('data_train_dir') or 'unknown data'}"},
            "reference_metadata": meta}
    if config.low_res_channels:
        card["super_resolution"] = {"scale": config.image_size // diffusion["low_res_size"],
                                    "low_res_size": diffusion["low_res_size"]}
    return LoadedPdm(model.to(device).eval(), config, diffusion, classes, card, SOURCE_REFERENCE, weights)


# --------------------------------------------------------------------------- common


def _build_and_fill(config: UNetConfig, state: dict[str, torch.Tensor], weights: Path) -> UNetModel:
    model = UNetModel(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} ≠ {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {'; '.join(wrong[:3])})")
        raise InsarMlError(f"The weights in {weights.name} do not fit the network its settings describe: "
                           f"{'; '.join(parts)}. Check that the card / metadata.json belongs to this checkpoint.")
    try:
        with torch.no_grad():
            model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise InsarMlError(f"The weights in {weights.name} could not be loaded ({str(exc).splitlines()[0]}).") from None
    return model


def load_pdm(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedPdm:
    """Load a PDM: our ``.safetensors`` (or its ``.json`` card), or a reference ``model*.pt``/``ema_*.pt``."""
    given = Path(path)
    if given.is_dir():
        raise InsarMlError(f"{given} is a folder. Choose a PDM model file (.safetensors) or a reference "
                           "checkpoint (model*.pt / ema_*.pt with metadata.json beside it).")
    suffix = given.suffix.lower()
    if given.name == REFERENCE_METADATA:
        raise InsarMlError(f"{given} holds training settings, not weights. Choose the model*.pt or ema_*.pt "
                           "checkpoint in that folder.")
    if suffix in REFERENCE_SUFFIXES:
        return _load_reference(given, device)
    if suffix in (".safetensors", ".json"):
        return _load_ours(given, device)
    raise InsarMlError(f"{given.name} is not a PDM model file. Choose a .safetensors PDM (with its .json card) "
                       "or a reference checkpoint model*.pt / ema_*.pt with metadata.json beside it.")
