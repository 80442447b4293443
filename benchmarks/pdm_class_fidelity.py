"""Class fidelity of a class-conditional PDM: does a sample show the class it was conditioned on?

A small CNN classifier (``core/diffusion/class_fidelity.py``) is trained on labelled real
scenes of the model's built-in dataset, drawn from indices the PDM never saw (its training
uses 0, 1, 2 ..., its validation ``VALIDATION_OFFSET`` onwards), each min-max normalised to
[−1, 1] as the PDM sees them. Its accuracy on other held-out real scenes is the ceiling.
Then ``--per-class`` samples of every class are generated with the documented sampler
(SDE-DPM-Solver++, 20 steps) at each ``--guidance`` scale, and the classifier labels them:
per-class accuracy (target: mean ≥ 80 %, none below 50 %) and the confusion matrix.

The classifier is cached under build/class_fidelity/ (keyed by dataset, size, seed and
training settings), and so are the samples (keyed by the model file and the settings).
Results are merged into ``--output`` under the model's name; ``--update-card`` also writes
them into the model's JSON card.

    .venv/bin/python benchmarks/pdm_class_fidelity.py --model models/pdm_interferograms_64.safetensors \\
        --dataset interferograms --guidance 1 2 4 --update-card
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qgis_insar_ml.core.diffusion.class_fidelity import (  # noqa: E402
    TARGET_MEAN_ACCURACY, TARGET_MIN_ACCURACY, SceneClassifier, fidelity_report, load_classifier, save_classifier,
    train_classifier)
from qgis_insar_ml.core.diffusion.data import VALIDATION_OFFSET, PdmBatch, SyntheticPdmData, pdm_data  # noqa: E402
from qgis_insar_ml.core.diffusion.generate import generate  # noqa: E402
from qgis_insar_ml.core.diffusion.pdm_file import LoadedPdm, load_pdm  # noqa: E402
from qgis_insar_ml.core.errors import InsarMlError  # noqa: E402

CLASSIFIER_OFFSET = 4 * VALIDATION_OFFSET     # the classifier's training scenes (pdm_samplers uses 2× and 3×)
CEILING_OFFSET = 5 * VALIDATION_OFFSET        # held-out real scenes for the classifier's own accuracy
CACHE = REPO / "build" / "class_fidelity"
CHUNK = 500                                   # real scenes generated per batch (bounds memory)


def real_batches(data: SyntheticPdmData, offset: int, count: int) -> list[PdmBatch]:
    """``count`` consecutive scenes from ``offset`` (class-balanced), in batches of at most CHUNK."""
    return [data.batch_from(offset + first, min(CHUNK, count - first)) for first in range(0, count, CHUNK)]


def real_scenes(data: SyntheticPdmData, offset: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(scenes (N, H, W) in [−1, 1], labels) of ``count`` consecutive indices from ``offset``: class-balanced."""
    parts = real_batches(data, offset, count)
    return (np.concatenate([p.x0.numpy()[:, 0] for p in parts]),
            np.concatenate([p.labels.numpy() for p in parts]))


def builtin_model(model: Path, dataset: str) -> tuple[LoadedPdm, SyntheticPdmData]:
    """A class-conditional PDM and the built-in dataset it was trained on, or one clear error."""
    pdm = load_pdm(model)
    if not pdm.classes or pdm.is_super_resolution:
        raise InsarMlError(f"{model.name} is not a class-conditional generative PDM; these benchmarks need one.")
    data = pdm_data(dataset, pdm.config.image_size, int(pdm.card.get("training", {}).get("seed", 0)))
    if not isinstance(data, SyntheticPdmData):
        raise InsarMlError("These benchmarks draw held-out scenes from a built-in dataset; for a folder, generate "
                           "scenes and compare them with insarml:pdm_evaluate, which reports the class fidelity.")
    if list(data.classes) != list(pdm.classes):
        raise InsarMlError(f"{model.name} has classes {pdm.classes} but the '{dataset}' dataset has "
                           f"{data.classes}: give the dataset the model was trained on.")
    CACHE.mkdir(parents=True, exist_ok=True)
    return pdm, data


def generator_version(data: SyntheticPdmData) -> str:
    """The first scenes' bytes stand for the generator's version: a changed generator retrains the caches."""
    return hashlib.sha256(real_scenes(data, CLASSIFIER_OFFSET, 10)[0].tobytes()).hexdigest()[:8]


def cached_classifier(data: SyntheticPdmData, size: int, args: argparse.Namespace) -> SceneClassifier:
    name = (f"{data.dataset}_{size}_{generator_version(data)}_seed{data.seed}_n{args.train_scenes}"
            f"_steps{args.classifier_steps}_s{args.seed}")
    path = CACHE / f"classifier_{name}.safetensors"
    if path.is_file():
        print(f"classifier: {path.relative_to(REPO)} (cached)", flush=True)
        return load_classifier(path)
    tic = time.perf_counter()
    scenes, labels = real_scenes(data, CLASSIFIER_OFFSET, args.train_scenes)
    classifier = train_classifier(scenes, labels, data.classes, steps=args.classifier_steps, seed=args.seed)
    classifier.training_info.update({"dataset": data.dataset, "first_index": CLASSIFIER_OFFSET,
                                     "seconds": round(time.perf_counter() - tic, 1)})
    save_classifier(classifier, path)
    print(f"classifier: trained in {classifier.training_info['seconds']:.0f} s, saved to {path.relative_to(REPO)}",
          flush=True)
    return classifier


def model_key(path: Path) -> str:
    """Changes whenever the weights do, so cached samples never outlive a retrained model."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.stem}_{digest.hexdigest()[:12]}"


def cached_samples(pdm: LoadedPdm, model: Path, guidance: float, args: argparse.Namespace
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """(samples (N, H, W), intended labels, seconds per sample), class-balanced, cached per setting."""
    count = args.per_class * len(pdm.classes)
    path = CACHE / f"samples_{model_key(model)}_{args.sampler}_{args.steps}_g{guidance:g}_n{count}_s{args.seed}.npz"
    if not path.is_file():
        tic = time.perf_counter()
        samples, labels = generate(pdm, count, sampler=args.sampler, steps=args.steps, guidance_scale=guidance,
                                   seed=args.seed, batch_size=args.batch_size)
        tmp = path.with_name(f".{path.stem}.partial.npz")
        np.savez(tmp, samples=samples[:, 0], labels=np.asarray(labels), seconds=(time.perf_counter() - tic) / count)
        os.replace(tmp, path)
    saved = np.load(path)
    return saved["samples"], saved["labels"], float(saved["seconds"])


def update_card(model: Path, key: str, value: dict) -> None:
    """Record ``value`` under ``key`` in the model's JSON card, keeping the card's own layout (a small diff)."""
    card_file = model.with_suffix(".json")
    text = card_file.read_text()
    card = json.loads(text)
    card[key] = value
    second = text.splitlines()[1] if text.count("\n") else ""
    card_file.write_text(json.dumps(card, indent=len(second) - len(second.lstrip()) or 1))


def table(result: dict) -> str:
    classes = result["classes"]
    head = "| | " + " | ".join(classes) + " | mean | passes |\n|---|" + "---|" * (len(classes) + 2) + "\n"

    def row(label: str, report: dict) -> str:
        cells = ["n/a" if report["per_class_accuracy"][c] is None else f"{100 * report['per_class_accuracy'][c]:.0f} %"
                 for c in classes]
        return (f"| {label} | " + " | ".join(cells) + f" | {100 * report['mean_accuracy']:.0f} % | "
                f"{'yes' if report['passes'] else 'no'} |\n")

    body = row(f"real scenes ({result['ceiling']['scenes']}, ceiling)", result["ceiling"])
    for r in result["rows"]:
        body += row(f"generated, guidance {r['guidance_scale']:g} ({r['scenes']})", r)
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a class-conditional PDM (.safetensors)")
    parser.add_argument("--dataset", required=True, help="the built-in dataset it was trained on "
                                                         "(interferograms, deformation, sar)")
    parser.add_argument("--per-class", type=int, default=64, help="generated samples per class")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0],
                        help="classifier-free guidance scales (1 = plain conditional sampling)")
    parser.add_argument("--sampler", default="dpm_solver++")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-scenes", type=int, default=6000, help="real scenes the classifier learns from")
    parser.add_argument("--classifier-steps", type=int, default=1500)
    parser.add_argument("--test-scenes", type=int, default=1000, help="held-out real scenes for the ceiling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "pdm_class_fidelity.json")
    parser.add_argument("--update-card", action="store_true", help="record the results in the model's card")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pdm, data = builtin_model(args.model, args.dataset)
    classifier = cached_classifier(data, pdm.config.image_size, args)
    test, test_labels = real_scenes(data, CEILING_OFFSET, args.test_scenes)
    result = {"command": "benchmarks/pdm_class_fidelity.py " + " ".join(sys.argv[1:]),
              "model": args.model.name, "dataset": args.dataset, "classes": list(pdm.classes),
              "targets": {"mean_accuracy": TARGET_MEAN_ACCURACY, "min_accuracy": TARGET_MIN_ACCURACY},
              "sampler": args.sampler, "steps": args.steps, "classifier": classifier.training_info,
              "ceiling": fidelity_report(classifier, test, test_labels), "rows": []}
    for guidance in args.guidance:
        samples, labels, seconds = cached_samples(pdm, args.model, guidance, args)
        report = fidelity_report(classifier, samples, labels)
        result["rows"].append({"guidance_scale": guidance, "seconds_per_sample": seconds, **report})
        print(f"guidance {guidance:g}: mean {report['mean_accuracy']:.3f}, min {report['min_accuracy']:.3f}",
              flush=True)
    print(table(result))
    for r in result["rows"]:
        print(f"confusion at guidance {r['guidance_scale']:g} (rows: intended, columns: recognised)\n"
              f"{np.array(r['confusion'])}")

    merged = json.loads(args.output.read_text()) if args.output.is_file() else {}
    merged[args.model.stem] = result
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(merged, indent=1))
    if args.update_card:
        update_card(args.model, "class_fidelity",
                    {key: result[key] for key in ("command", "sampler", "steps", "ceiling", "rows")})


if __name__ == "__main__":
    main()
