"""Model files as data: safetensors weights with a JSON card beside them.

Every kind of model the plugin ships or trains (DeepInSAR, PDMs, evaluation encoders)
is stored the same way, so one module owns the card check, the safe weight loading and
the all-or-nothing write. Nothing here ever unpickles.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InsarMlError

if TYPE_CHECKING:  # reading a card needs no torch (a cached OpenVINO model runs without it)
    import torch


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InsarMlError(f"The {what} {path} is not valid JSON ({exc}). Restore or re-export it.") from None


def read_card(path: str | os.PathLike, card_format: str, model_name: str) -> tuple[Path, dict]:
    """(weights path, card) of a model given as its .safetensors or its .json, checked to be
    a ``card_format`` card; ``model_name`` ("DeepInSAR model", "PDM", ...) is for messages."""
    weights = Path(path).with_suffix(".safetensors")
    card_file = card_path(weights)
    if not weights.is_file():
        raise InsarMlError(f"{model_name} weights not found: {weights}. Choose a .safetensors {model_name} file.")
    if not card_file.is_file():
        raise InsarMlError(f"{weights.name} has no model card ({card_file.name} beside it), so it cannot be "
                           f"identified as a {model_name}. Copy the card next to the weights.")
    card = read_json(card_file, "model card")
    if not isinstance(card, dict) or card.get("format") != card_format:
        kind = card.get("kind", card.get("format", "unknown")) if isinstance(card, dict) else "unknown"
        raise InsarMlError(f"{weights.name} is not a {model_name} (its card says kind '{kind}'). "
                           f"Choose a {model_name} file.")
    return weights, card


def load_weights(weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, with a clear error for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InsarMlError(f"{weights.name} is corrupt or not a safetensors file ({exc}). "
                           "Re-export or re-download it.") from None


def save_with_card(state: dict[str, torch.Tensor], card: dict, path: str | os.PathLike) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; both appear only when complete."""
    from safetensors.torch import save_file

    weights = Path(path)
    if weights.suffix.lower() != ".safetensors":
        weights = weights.with_suffix(".safetensors") if weights.suffix.lower() == ".json" else \
            weights.with_name(weights.name + ".safetensors")
    text = json.dumps(card, indent=2)  # fails before anything is written if not serialisable
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp_weights = weights.with_name(f".{weights.name}.partial")
    tmp_card = weights.with_name(f".{card_path(weights).name}.partial")
    try:
        save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}, str(tmp_weights),
                  metadata={"format": "pt", "card_format": str(card.get("format", ""))})
        tmp_card.write_text(text, encoding="utf-8")
        os.replace(tmp_weights, weights)
        os.replace(tmp_card, card_path(weights))
    finally:
        for tmp in (tmp_weights, tmp_card):
            tmp.unlink(missing_ok=True)
    return weights


def recommended_guidance(card: dict[str, Any]) -> float:
    """The classifier-free guidance scale a model's card recommends (``sampling.guidance_scale``), else 1:
    plain conditional sampling, which every model supports."""
    value = (card.get("sampling") or {}).get("guidance_scale", 1.0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 1.0

