"""Class fidelity of a class-conditional generator: does a sample show the class it was asked for?

A small CNN classifier is trained on labelled real scenes, normalised exactly as the PDM
sees them (each scene min-max scaled to [−1, 1] on its own), and then labels the generated
samples; the score is the accuracy per intended class and the confusion matrix.  Its
accuracy on held-out real scenes is the ceiling: a class the classifier cannot recognise in
real data cannot be asked of the generator either.

The classifier's backbone is the evaluation's :class:`FeatureEncoder` with a linear head.
Training draws random rotations by multiples of 90° and flips: the classes are defined by
the kind of pattern, not its orientation.  Nothing here imports ``qgis``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InsarMlError
from ..model_files import card_path, load_weights, read_card, save_with_card
from ..progress import Progress, SilentProgress
from .evaluation import DEFAULT_WIDTHS, FeatureEncoder, fit_minibatches

CLASSIFIER_FORMAT = "qgis_insar_ml.scene_classifier"
CLASSIFIER_KIND = "scene_classifier"
TARGET_MEAN_ACCURACY = 0.8      # issue #13: the average over classes must reach this ...
TARGET_MIN_ACCURACY = 0.5       # ... and no class may fall below this


def normalise_scenes(images: Any) -> torch.Tensor:
    """(N, 1, H, W) float32 scenes, each min-max scaled to [−1, 1] on its own, as the PDM sees them.

    Takes (N, H, W) or (N, C, H, W) arrays or tensors; NaN pixels become 0 (mid-range) after
    scaling, a constant scene becomes all 0.  Generated samples rarely span [−1, 1] exactly,
    so scoring them unstretched would show the classifier a contrast the real scenes never have.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).double()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[1] != 1 or min(x.shape[2:]) < 4:
        raise InsarMlError(f"Scenes must be single-band stacks shaped (N, H, W) or (N, 1, H, W) with H, W ≥ 4, "
                           f"not {tuple(x.shape)}.")
    valid = torch.isfinite(x)
    lo = torch.where(valid, x, math.inf).amin(dim=(1, 2, 3), keepdim=True)
    hi = torch.where(valid, x, -math.inf).amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    scaled = torch.where(span > 0, -1.0 + 2.0 * (x - lo) / torch.where(span > 0, span, 1.0), 0.0)
    return torch.where(valid, scaled, 0.0).float()


class SceneClassifier(nn.Module):
    """Feature encoder + linear head over ``class_names``; input: per-sample [−1, 1] scenes."""

    def __init__(self, class_names: Sequence[str], image_size: int, widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        if len(class_names) < 2 or len(set(class_names)) != len(class_names):
            raise InsarMlError(f"A classifier needs at least two distinct class names, not {list(class_names)}.")
        self.class_names, self.image_size = [str(c) for c in class_names], int(image_size)
        self.encoder = FeatureEncoder(1, widths)
        self.head = nn.Linear(self.encoder.feature_dim, len(self.class_names))
        self.training_info: dict[str, Any] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def probabilities(self, images: Any, batch_size: int = 256) -> np.ndarray:
        """(N, classes) class probabilities of raw scenes (normalised here)."""
        x = normalise_scenes(images)
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise InsarMlError(f"This classifier was trained on {self.image_size}×{self.image_size} scenes, not "
                               f"{x.shape[3]}×{x.shape[2]}. Train one on scenes of the generated size.")
        device = self.head.weight.device
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = [F.softmax(self(x[i:i + batch_size].to(device)), dim=1).cpu()
                       for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy().astype(np.float64)

    def predict(self, images: Any, batch_size: int = 256) -> np.ndarray:
        """The most probable class index of each scene."""
        return self.probabilities(images, batch_size).argmax(axis=1)


def _random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each scene rotated by a random multiple of 90° and randomly mirrored."""
    turns = torch.randint(4, (len(x),), generator=generator)
    mirror = torch.randint(2, (len(x),), generator=generator).bool()
    out = torch.empty_like(x)
    for k in range(4):
        pick = turns == k
        out[pick] = torch.rot90(x[pick], k, dims=(2, 3))
    out[mirror] = out[mirror].flip(3)
    return out


def _label_codes(labels: Any, class_names: Sequence[str], what: str) -> np.ndarray:
    """Labels given as class indices or names, as indices into ``class_names``."""
    raw = np.asarray(labels).ravel()
    if raw.dtype.kind in "iu":
        codes = raw.astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= len(class_names)):
            raise InsarMlError(f"{what} holds class index {codes.min() if codes.min() < 0 else codes.max()}, "
                               f"outside 0..{len(class_names) - 1} ({', '.join(class_names)}).")
        return codes
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(v) for v in raw} - set(index))
    if unknown:
        raise InsarMlError(f"{what} names class(es) {', '.join(unknown)} that the classifier does not know "
                           f"(it knows {', '.join(class_names)}). Use the class names of the real scenes.")
    return np.array([index[str(v)] for v in raw], dtype=np.int64)


def train_classifier(images: Any, labels: Any, class_names: Sequence[str], steps: int = 600, seed: int = 0,
                     progress: Progress | None = None, *, batch_size: int = 64, lr: float = 2e-3,
                     augment: bool = True, widths: tuple[int, ...] = DEFAULT_WIDTHS,
                     device: str | torch.device = "cpu") -> SceneClassifier:
    """A :class:`SceneClassifier` trained with cross-entropy on labelled real scenes.

    Adam with a cosine-decayed learning rate; ``seed`` fixes the weights, batches and
    augmentations.  ``labels`` are class indices or names.
    """
    progress = progress or SilentProgress()
    x = normalise_scenes(images)
    codes = torch.as_tensor(_label_codes(labels, class_names, "The training labels"))
    if len(codes) != len(x):
        raise InsarMlError(f"{len(codes)} labels for {len(x)} scenes; give one label per scene.")
    present = np.unique(codes.numpy())
    if len(present) < 2:
        raise InsarMlError(f"The training scenes hold only class {class_names[int(present[0])]}; a classifier "
                           "needs scenes of at least two classes.")
    if steps < 1 or batch_size < 1:
        raise InsarMlError(f"Classifier training needs at least one step and a batch of at least one scene "
                           f"(got {steps} steps, batch {batch_size}).")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = SceneClassifier(class_names, x.shape[-1], widths)
    classifier.to(device).train()
    progress.info(f"Training the scene classifier on {len(x)} scenes of {len(present)} classes for {steps} steps.")

    def loss_of(pick: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch = _random_dihedral(x[pick], generator) if augment else x[pick]
        return F.cross_entropy(classifier(batch.to(device)), codes[pick].to(device))

    final_loss = fit_minibatches(list(classifier.parameters()), loss_of, len(x), steps, seed, progress,
                                 batch_size=batch_size, lr=lr, cosine=True)
    classifier.training_info = {"steps": int(steps), "seed": int(seed), "scenes": int(len(x)),
                                "batch_size": int(batch_size), "lr": float(lr), "augment": bool(augment),
                                "final_loss": final_loss}
    return classifier.eval()


def confusion_matrix(true: Any, predicted: Any, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts: row = intended class, column = class recognised."""
    t, p = np.asarray(true, dtype=np.int64).ravel(), np.asarray(predicted, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise InsarMlError(f"{t.size} intended labels but {p.size} predictions; give one of each per scene.")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise InsarMlError(f"Labels must be class indices 0..{n_classes - 1}.")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Share of each intended class recognised as itself (the diagonal over the row sums); NaN without samples."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)


def fidelity_report(classifier: SceneClassifier, images: Any, labels: Any) -> dict[str, Any]:
    """JSON-ready per-class accuracy, its mean and minimum over the classes present, and the confusion matrix.

    ``labels`` are the intended classes (indices or names).  ``passes`` applies the targets:
    mean ≥ :data:`TARGET_MEAN_ACCURACY` and no class below :data:`TARGET_MIN_ACCURACY`.
    """
    names = classifier.class_names
    codes = _label_codes(labels, names, "The intended labels")
    if len(codes) != len(images):
        raise InsarMlError(f"{len(codes)} labels for {len(images)} scenes; give one label per scene.")
    confusion = confusion_matrix(codes, classifier.predict(images), len(names))
    accuracy = per_class_accuracy(confusion)
    present = np.isfinite(accuracy)
    mean, low = float(np.mean(accuracy[present])), float(np.min(accuracy[present]))
    return {"classes": names, "scenes": int(len(codes)),
            "per_class_accuracy": {n: (float(a) if math.isfinite(a) else None) for n, a in zip(names, accuracy)},
            "mean_accuracy": mean, "min_accuracy": low, "overall_accuracy": float(np.trace(confusion) / len(codes)),
            "confusion": confusion.tolist(),
            "passes": bool(mean >= TARGET_MEAN_ACCURACY and low >= TARGET_MIN_ACCURACY)}


def save_classifier(classifier: SceneClassifier, path: str | os.PathLike) -> Path:
    """Write ``<path>.safetensors`` and its card ``<path>.json``; both appear only when complete."""
    card = {"format": CLASSIFIER_FORMAT, "kind": CLASSIFIER_KIND, "classes": classifier.class_names,
            "image_size": classifier.image_size, "widths": list(classifier.encoder.widths),
            "training": classifier.training_info}
    return save_with_card(classifier.state_dict(), card, Path(path).with_suffix(".safetensors"))


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> SceneClassifier:
    """Load a classifier written by :func:`save_classifier`, in eval mode."""
    weights, card = read_card(path, CLASSIFIER_FORMAT, "scene classifier")
    try:
        classifier = SceneClassifier(card["classes"], int(card["image_size"]), tuple(card["widths"]))
        classifier.load_state_dict(load_weights(weights), strict=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"The card {card_path(weights).name} does not describe a valid scene classifier "
                           f"({exc}).") from None
    except RuntimeError as exc:
        raise InsarMlError(f"{weights.name} does not fit its card ({str(exc).splitlines()[0]}).") from None
    classifier.training_info = card.get("training")
    return classifier.to(device).eval()
