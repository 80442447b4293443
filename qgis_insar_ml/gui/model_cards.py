"""Model cards on disk: listing and summarising them needs only JSON, so it works without torch."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InsarMlError
from ..paths import data_dir
from .settings import user_model_folder

REFERENCE_CHECKPOINTS = (".pt", ".pth")   # the PDM paper's code: model*.pt / ema_*.pt beside metadata.json


@dataclass
class ModelEntry:
    weights: Path
    card: dict
    shipped: bool

    @property
    def kind(self) -> str:
        return str(self.card.get("kind", "unknown"))

    @property
    def name(self) -> str:
        return self.weights.stem


def model_folders() -> list[tuple[Path, bool]]:
    """(folder, shipped) pairs: the plugin's models, then the user model folder."""
    return [(data_dir("models"), True), (user_model_folder(), False)]


def list_models(kind: str | None = None) -> list[ModelEntry]:
    """Every model with a readable card (of ``kind`` when given); unreadable cards are skipped."""
    entries = []
    for folder, shipped in model_folders():
        for card_file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            weights = card_file.with_suffix(".safetensors")
            try:
                card = json.loads(card_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(card, dict) and "kind" in card and weights.is_file() and kind in (None, card["kind"]):
                entries.append(ModelEntry(weights, card, shipped))
    return entries


def input_description(card: dict) -> str:
    if card.get("kind") == "pdm":
        size = card.get("unet", {}).get("image_size", "?")
        if card.get("super_resolution"):
            return f"{card['super_resolution'].get('low_res_size', '?')} px → {size} px raster"
        return f"{size}×{size} px, classes: {', '.join(card.get('classes') or ['none'])}"
    return str(card.get("input", "?"))


def metrics_description(card: dict) -> str:
    metrics = card.get("metrics") or {}
    if "mean_phase_rmse_ratio_to_best_classical" in metrics:
        return (f"phase RMSE ×{metrics['mean_phase_rmse_ratio_to_best_classical']:.2f}, coherence RMSE "
                f"×{metrics.get('mean_coherence_rmse_ratio_to_best_boxcar', float('nan')):.2f} of the best "
                "classical filter")
    loss = (card.get("training") or {}).get("final_validation_loss")
    return f"validation loss {loss:.4f}" if isinstance(loss, (int, float)) else "not benchmarked"


def training_description(card: dict) -> str:
    training = card.get("training") or {}
    data = training.get("data") or training.get("mode") or "?"
    return f"{data}, {training.get('steps', '?')} steps"


def summary(entry: ModelEntry) -> str:
    """One paragraph for a tooltip or a label: what the model takes and how good it is."""
    size_mb = entry.weights.stat().st_size / 1e6
    origin = "shipped" if entry.shipped else f"user model in {entry.weights.parent}"
    return (f"{entry.name} ({entry.kind}, {origin}, {size_mb:.1f} MB)\nInput: {input_description(entry.card)}\n"
            f"Quality: {metrics_description(entry.card)}\nTraining: {training_description(entry.card)}")


def validate_model(path: Path) -> str:
    """Load the file with the plugin's own safe loaders (never unpickling); return its kind."""
    from ..dependencies import require_torch

    require_torch()
    card_file = path.with_suffix(".json")
    if path.suffix.lower() != ".safetensors":
        raise InsarMlError(f"{path.name} is not a model file. Import a .safetensors file with its JSON card beside "
                           "it, or a PDM checkpoint of the paper's code (model*.pt / ema_*.pt with its metadata.json; "
                           "read as tensors only, pickled code is never run).")
    if not card_file.is_file():
        raise InsarMlError(f"{path.name} has no model card ({card_file.name} beside it). Copy the card next to it.")
    try:
        kind = json.loads(card_file.read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError) as exc:
        raise InsarMlError(f"The model card {card_file.name} is not valid JSON ({exc}).") from None
    if kind == "pdm":
        from ..core.diffusion.pdm_file import load_pdm

        load_pdm(path)
    elif kind == "deepinsar":
        from ..core.deepinsar.modelfile import load_model

        load_model(path)
    else:
        raise InsarMlError(f"{path.name}: its card says kind '{kind}'; only 'deepinsar' and 'pdm' models can be "
                           "imported.")
    return kind


def import_reference_pdm(checkpoint: Path, folder: Path) -> Path:
    """Convert a reference PDM checkpoint to ``<run folder>_<checkpoint>.safetensors`` + card in ``folder``.

    The checkpoint is read with weights-only unpickling (tensors, nothing else), so it
    is never run; the converted model is then listed, and sampled, like any other PDM.
    """
    from ..dependencies import require_torch

    require_torch()
    from ..core.diffusion.pdm_file import load_pdm, save_pdm

    loaded = load_pdm(checkpoint)
    # "ema_rate=0.99_33": no dots (they would read as a suffix) nor other odd characters in the name
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{checkpoint.parent.name}_{checkpoint.stem}").strip("_")
    return save_pdm(loaded.model, folder / f"{stem}.safetensors", loaded.card)


def import_model(path: Path, folder: Path | None = None) -> Path:
    """Validate ``path`` and copy it with its card into the user model folder (reference
    PDM checkpoints are converted on the way)."""
    folder = folder or user_model_folder()
    if path.suffix.lower() in REFERENCE_CHECKPOINTS:
        return import_reference_pdm(path, folder)
    validate_model(path)
    target = folder / path.name
    if target.resolve() == path.resolve():
        raise InsarMlError(f"{path.name} is already in the model folder {folder}.")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path.with_suffix(".json"), target.with_suffix(".json"))
    shutil.copyfile(path, target)
    return target
