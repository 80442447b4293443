"""DeepInSAR model files: safetensors weights with a JSON model card beside them.

A model file is data, never code: weights are read with safetensors, and the card (plain
JSON) says how to rebuild the network. PyTorch pickles (.pt/.pth/.ckpt) are refused
outright, because unpickling a file can run any code in it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import InsarMlError
from .model import DeepInsarConfig, DeepInsarNet, receptive_field

CARD_FORMAT = "qgis_insar_ml.deepinsar"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".bin")
INPUT_KINDS = {4: "phase+amplitudes", 2: "phase"}


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_model(state: dict[str, torch.Tensor], config: DeepInsarConfig, card: dict, path: str | os.PathLike) -> Path:
    """Write ``path`` (.safetensors) and its card; both appear only when complete."""
    from safetensors.torch import save_file

    weights = Path(path)
    if weights.suffix != ".safetensors":
        weights = weights.with_suffix(".safetensors")
    full_card = {"format": CARD_FORMAT, "kind": "deepinsar", "input": INPUT_KINDS[config.in_channels],
                 "architecture": config.to_dict(), "receptive_field": receptive_field(config),
                 "normalization": "amplitudes: MAD / modified Z-score / tanh (DeepInSAR eqs. 6-8), whole-raster "
                                  "statistics; phase: [cos, sin]",
                 "convention": "interferogram = reference * conj(secondary)", **card}
    tmp_weights = weights.with_name(f".{weights.name}.partial")
    tmp_card = weights.with_name(f".{card_path(weights).name}.partial")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp_weights))
    tmp_card.write_text(json.dumps(full_card, indent=2), encoding="utf-8")
    os.replace(tmp_weights, weights)
    os.replace(tmp_card, card_path(weights))
    return weights


def read_card(path: str | os.PathLike) -> tuple[Path, dict]:
    """(weights path, card) of a model file given as its .safetensors or its .json."""
    given = Path(path)
    if given.suffix.lower() in PICKLE_SUFFIXES:
        raise InsarMlError(
            f"{given.name} is a PyTorch pickle. Model files must be .safetensors with a JSON model card; "
            "pickles are never loaded because opening one can run any code it contains.")
    weights = given.with_suffix(".safetensors")
    card_file = card_path(weights)
    if not weights.is_file():
        raise InsarMlError(f"Model weights not found: {weights}. Choose a .safetensors model file.")
    if not card_file.is_file():
        raise InsarMlError(f"{weights.name} has no model card ({card_file.name} beside it), so it cannot be "
                           "identified as a DeepInSAR model.")
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InsarMlError(f"The model card {card_file.name} is not valid JSON ({exc}).") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        kind = card.get("kind", "unknown") if isinstance(card, dict) else "unknown"
        raise InsarMlError(f"{weights.name} is not a DeepInSAR model (its card says kind '{kind}'). "
                           "Choose a DeepInSAR model file.")
    return weights, card


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DeepInsarNet, dict]:
    """Rebuild the network from its card and load its weights, safely."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, card = read_card(path)
    try:
        config = DeepInsarConfig.from_dict(card["architecture"])
        net = DeepInsarNet(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"The model card of {weights.name} has an invalid architecture ({exc}).") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InsarMlError(f"{weights.name} is corrupt or not a safetensors file ({exc}).") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InsarMlError(f"The weights in {weights.name} do not fit the architecture its card describes "
                           f"({first}).") from None
    return net.to(device).eval(), card
