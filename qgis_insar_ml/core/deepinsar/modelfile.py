"""DeepInSAR model files: safetensors weights with a JSON model card beside them.

A model file is data, never code: weights are read with safetensors, and the card (plain
JSON) says how to rebuild the network. PyTorch pickles (.pt/.pth/.ckpt) are refused
outright, because unpickling a file can run any code in it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InsarMlError
from ..model_files import load_weights, read_card, save_with_card
from .config import DeepInsarConfig, receptive_field

if TYPE_CHECKING:  # read_model needs no torch: a cached OpenVINO model runs without importing it
    import torch

    from .model import DeepInsarNet

CARD_FORMAT = "qgis_insar_ml.deepinsar"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".bin")
INPUT_KINDS = {4: "phase+amplitudes", 2: "phase"}


def save_model(state: dict[str, torch.Tensor], config: DeepInsarConfig, card: dict, path: str | os.PathLike) -> Path:
    """Write ``path`` (.safetensors) and its card; both appear only when complete."""
    full_card = {"format": CARD_FORMAT, "kind": "deepinsar", "input": INPUT_KINDS[config.in_channels],
                 "architecture": config.to_dict(), "receptive_field": receptive_field(config),
                 "normalization": "amplitudes: MAD / modified Z-score / tanh (DeepInSAR eqs. 6-8), whole-raster "
                                  "statistics; phase: [cos, sin]",
                 "convention": "interferogram = reference * conj(secondary)", **card}
    return save_with_card(state, full_card, Path(path).with_suffix(".safetensors"))


def read_model(path: str | os.PathLike) -> tuple[Path, dict, DeepInsarConfig]:
    """(weights path, card, architecture) of a model file, checked, without torch."""
    given = Path(path)
    if given.suffix.lower() in PICKLE_SUFFIXES:
        raise InsarMlError(
            f"{given.name} is a PyTorch pickle. Model files must be .safetensors with a JSON model card; "
            "pickles are never loaded because opening one can run any code it contains.")
    weights, card = read_card(given, CARD_FORMAT, "DeepInSAR model")
    try:
        return weights, card, DeepInsarConfig.from_dict(card["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"The model card of {weights.name} has an invalid architecture ({exc}).") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DeepInsarNet, dict]:
    """Rebuild the network from its card and load its weights, safely."""
    from .model import DeepInsarNet  # torch: only here, so that read_model stays free of it

    weights, card, config = read_model(path)
    try:
        net = DeepInsarNet(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"The model card of {weights.name} has an invalid architecture ({exc}).") from None
    try:
        net.load_state_dict(load_weights(weights), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InsarMlError(f"The weights in {weights.name} do not fit the architecture its card describes "
                           f"({first}).") from None
    return net.to(device).eval(), card
