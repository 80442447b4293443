"""Sampling a loaded PDM: class-balanced batches, guidance, rescaling, super-resolution.

The Processing algorithms, the dialogs and the benchmark all sample through
:func:`generate`, so a seed gives the same scenes everywhere. Samples come out in the
model's normalised range [−1, 1]; :func:`rescale_samples` maps them to physical units
with (min, max) pairs drawn from the training set's coefficients kept in the card.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch

from ..datasets.folder import RangeRescaler
from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, SubProgress
from .data import NORMALISED_RANGE, SR_SCALE, downsample, normalise_with
from .pdm_file import LoadedPdm
from .sampling import SAMPLERS, SKIP_TYPES, guided_model

DEFAULT_BATCH = 16
MAX_SUPERRESOLVE_PIXELS = 512 * 512      # low-resolution pixels sampled in one go
BACK_PROJECTION_ITERATIONS = 20
SAMPLER_NAMES = tuple(SAMPLERS)


def balanced_labels(count: int, pdm: LoadedPdm, class_label: int | None) -> list[int] | None:
    """One label per sample: the chosen class, or all classes in turn (equal proportions)."""
    n_classes = pdm.config.num_classes
    if n_classes is None:
        if class_label is not None:
            raise InsarMlError("This model is unconditional: leave the class empty.")
        return None
    if class_label is None:
        return [i % n_classes for i in range(count)]
    if not 0 <= class_label < n_classes:
        names = ", ".join(f"{i} = {name}" for i, name in enumerate(pdm.classes or range(n_classes)))
        raise InsarMlError(f"Class {class_label} is out of range: this model has {n_classes} classes ({names}).")
    return [class_label] * count


DEFAULT_ETA = {"ddim": 0.0, "dpm_solver++": 1.0}


def sampler_options(sampler: str, order: int = 2, skip: str = "logSNR", eta: float | None = None) -> dict:
    """The keyword options a sampler takes, checked.

    ``eta`` is DDIM's and DPM-Solver++'s stochasticity; by default DDIM is deterministic and
    DPM-Solver++ is SDE-DPM-Solver++(2M): on the shipped CPU-trained models the deterministic
    ODE solvers leave fine noise that re-injected noise removes (see the README's benchmark).
    """
    eta = DEFAULT_ETA.get(sampler, 0.0) if eta is None else eta
    if sampler not in SAMPLERS:
        raise InsarMlError(f"Unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}.")
    if sampler == "dpm_solver++":
        if skip not in SKIP_TYPES:
            raise InsarMlError(f"Unknown DPM-Solver++ skip type '{skip}'; choose one of {', '.join(SKIP_TYPES)}.")
        return {"order": order, "skip": skip, "eta": eta if order < 3 else 0.0}
    if sampler == "ddim":
        return {"eta": eta}
    return {}


def network_evaluations(sampler: str, steps: int) -> int:
    """Network calls per sample: Heun's method calls the network twice per step."""
    return 2 * steps if sampler == "heun" else steps


def generate(pdm: LoadedPdm, count: int, *, class_label: int | None = None, sampler: str = "dpm_solver++",
             steps: int = 20, guidance_scale: float = 1.0, seed: int = 0, batch_size: int = DEFAULT_BATCH,
             low_res: np.ndarray | None = None, options: dict | None = None,
             progress: Progress | None = None) -> tuple[np.ndarray, list[int] | None]:
    """``count`` samples (N, C, H, W) in [−1, 1] and their labels.

    Batch ``b`` draws all its noise from a generator seeded with (seed, b), so the same
    arguments give the same samples. ``guidance_scale`` 1 is plain conditional sampling,
    0 unconditional, above 1 classifier-free guidance (models trained with a null class).
    ``low_res`` (N, C, h, w) in [−1, 1] conditions a super-resolution model.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InsarMlError(f"COUNT must be at least 1, not {count!r}.")
    if pdm.is_super_resolution != (low_res is not None):
        raise InsarMlError("This is a super-resolution model: use the super-resolution tool with a low-resolution "
                           "raster." if pdm.is_super_resolution else
                           "This model is not a super-resolution model; choose one whose card says super_resolution.")
    progress = progress or SilentProgress()
    if sampler not in SAMPLERS:
        raise InsarMlError(f"Unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}.")
    options = sampler_options(sampler) if options is None else options
    labels = balanced_labels(count, pdm, class_label)
    model_fn = pdm.model
    if labels is not None and guidance_scale != 1.0:
        if pdm.model.null_label is None:
            raise InsarMlError("This model was trained without a null class, so classifier-free guidance is not "
                               "available: set GUIDANCE_SCALE to 1.")
        model_fn = guided_model(pdm.model, guidance_scale, pdm.model.null_label)
    diffusion = pdm.diffusion()
    c = pdm.config
    rows, cols = ((c.image_size, c.image_size) if low_res is None
                  else (low_res.shape[-2] * SR_SCALE, low_res.shape[-1] * SR_SCALE))
    device = next(pdm.model.parameters()).device
    out = []
    batches = range(0, count, batch_size)
    for b, first in enumerate(batches):
        n = min(batch_size, count - first)
        kwargs = {}
        if labels is not None:
            kwargs["y"] = torch.tensor(labels[first:first + n], device=device)
        if low_res is not None:
            kwargs["low_res"] = torch.as_tensor(low_res[first:first + n], dtype=torch.float32, device=device)
        generator = torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + b)
        with torch.no_grad():
            x = SAMPLERS[sampler](diffusion, model_fn, (n, c.in_channels, rows, cols), steps, generator, kwargs,
                                  SubProgress(progress, 100.0 * b / len(batches), 100.0 / len(batches)),
                                  True, **options)
        out.append(x.clamp(*NORMALISED_RANGE).cpu().numpy())
    return np.concatenate(out).astype(np.float32), labels


def coefficient_ranges(card: dict, class_name: str | None = None) -> np.ndarray:
    """The (min, max) normalising coefficients a card keeps, for one class or all of them."""
    kept = (card.get("normalisation") or {}).get("coefficients") or {}
    if class_name is not None and class_name in kept:
        pairs = kept[class_name]
    else:
        pairs = [pair for values in kept.values() for pair in values]
    return np.asarray(pairs, dtype=np.float64).reshape(-1, 2)


def rescale_samples(pdm: LoadedPdm, samples: np.ndarray, labels: list[int] | None, seed: int = 0) -> np.ndarray:
    """Samples in physical units: each gets a (min, max) drawn from its class's training coefficients."""
    out = np.empty_like(samples, dtype=np.float32)
    groups = {None: list(range(len(samples)))} if labels is None else {}
    for i, label in enumerate(labels or []):
        groups.setdefault(label, []).append(i)
    for label, members in groups.items():
        name = None if label is None or not pdm.classes else pdm.classes[label]
        ranges = coefficient_ranges(pdm.card, name)
        if not len(ranges):
            raise InsarMlError("This model's card keeps no normalising coefficients, so samples cannot be rescaled "
                               "to physical units: untick RESCALE.")
        rescaler = RangeRescaler(ranges, seed=seed * 7919 + (label or 0))
        out[members] = rescaler.rescale(samples[members], "[-1,1]")
    return out


def back_project(high: np.ndarray, low: np.ndarray, iterations: int = BACK_PROJECTION_ITERATIONS) -> np.ndarray:
    """``high`` corrected so that its 2×2 means equal ``low`` exactly (iterative back-projection).

    The model adds the detail; the low-resolution raster is the measurement, so the result
    must average back to it. Smooth (bilinear) corrections remove the large-scale drift, a
    last 2×2 step removes the rest exactly.
    """
    for _ in range(iterations):
        high = high + scipy.ndimage.zoom(low - downsample(high), SR_SCALE, order=1, mode="nearest", grid_mode=True)
    remainder = low - downsample(high)
    return high + np.repeat(np.repeat(remainder, SR_SCALE, axis=0), SR_SCALE, axis=1)


def superresolve(pdm: LoadedPdm, image: np.ndarray, *, sampler: str = "dpm_solver++", steps: int = 20,
                 seed: int = 0, options: dict | None = None, class_label: int | None = None,
                 progress: Progress | None = None) -> np.ndarray:
    """A 2× version of ``image`` (H, W) in its own units; no-data (NaN) stays no-data.

    The image is normalised with its own range, as the model was trained, and the result
    mapped back with the same coefficients. A class-conditional model (the paper's released
    SAR super-resolution model is one) takes the scene's class: ``class_label``.
    """
    if not pdm.is_super_resolution:
        raise InsarMlError("This model is not a super-resolution model; choose one whose card says "
                           "super_resolution (e.g. the shipped pdm_superres_2x).")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise InsarMlError(f"Super-resolution takes one band, not an array of shape {image.shape}.")
    if image.size > MAX_SUPERRESOLVE_PIXELS:
        raise InsarMlError(f"The raster has {image.shape[1]}×{image.shape[0]} pixels; super-resolution samples at "
                           f"most {MAX_SUPERRESOLVE_PIXELS} low-resolution pixels at once. Clip it to a smaller "
                           "extent first (e.g. Raster ▸ Extraction ▸ Clip Raster by Extent).")
    multiple = max(1, 2 ** (len(pdm.config.channel_mult) - 1) // SR_SCALE)   # the U-Net halves the sides
    if image.shape[0] % multiple or image.shape[1] % multiple:
        raise InsarMlError(f"The super-resolution network needs sides that are multiples of {multiple} pixels; "
                           f"this raster is {image.shape[1]}×{image.shape[0]}. Clip or pad it.")
    valid = np.isfinite(image)
    if not valid.any():
        raise InsarMlError("The raster holds no valid pixel (all no-data).")
    filled = np.where(valid, image, image[valid].mean())
    lo, hi = float(filled.min()), float(filled.max())
    low = normalise_with(filled, lo, hi)[None, None]
    if pdm.config.num_classes is not None and class_label is None:
        raise InsarMlError(f"{_file_name(pdm)} is class-conditional: super-resolve generated scenes with it "
                           "(their class is known), or choose an unconditional super-resolution model.")
    high, _ = generate(pdm, 1, sampler=sampler, steps=steps, seed=seed, low_res=low, options=options,
                       batch_size=1, class_label=class_label if pdm.config.num_classes is not None else None,
                       progress=progress)
    a, b = NORMALISED_RANGE
    result = back_project(lo + (high[0, 0].astype(np.float64) - a) * (hi - lo) / (b - a), filled)
    mask = np.repeat(np.repeat(valid, SR_SCALE, axis=0), SR_SCALE, axis=1)
    return np.where(mask, result, np.nan).astype(np.float32)


def _file_name(pdm: LoadedPdm) -> str:
    return pdm.path.name if pdm.path is not None else "the model"


def check_cascade(base: LoadedPdm, sr: LoadedPdm) -> None:
    """One clear error unless ``sr`` super-resolves exactly the scenes that ``base`` generates."""
    if not sr.is_super_resolution:
        raise InsarMlError(f"{_file_name(sr)} is not a super-resolution model (its card has no super_resolution "
                           "section): choose one for SUPERRESOLUTION_MODEL, e.g. the shipped pdm_superres_2x.")
    if base.config.in_channels != 1 or sr.config.low_res_channels != 1:
        raise InsarMlError(f"The cascade super-resolves one-band scenes, but {_file_name(base)} makes "
                           f"{base.config.in_channels} band(s) and {_file_name(sr)} takes "
                           f"{sr.config.low_res_channels}. Choose one-band models.")
    if sr.config.num_classes is not None and list(sr.classes or []) != list(base.classes or []):
        raise InsarMlError(f"{_file_name(sr)} is class-conditional, with classes {sr.classes}, but "
                           f"{_file_name(base)} generates {base.classes or 'no classes'}: each sample's class must "
                           "mean the same to both. Choose a super-resolution model trained on the same classes, or "
                           "an unconditional one.")
    section = sr.card.get("super_resolution") or {}
    scale = int(section.get("scale", SR_SCALE))
    low_res = int(section.get("low_res_size") or sr.diffusion_settings.get("low_res_size")
                  or sr.config.image_size // SR_SCALE)
    size = base.config.image_size
    if scale != SR_SCALE or low_res != size:
        raise InsarMlError(f"{_file_name(sr)} super-resolves {low_res}×{low_res} scenes {scale}×, but "
                           f"{_file_name(base)} generates {size}×{size} scenes. Choose a {SR_SCALE}× "
                           f"super-resolution model trained on {size}-pixel low-resolution scenes (train-pdm "
                           f"--super-resolution --image-size {SR_SCALE * size}), or generate without one.")


def cascade_seed(seed: int, index: int) -> int:
    """The super-resolution seed of sample ``index``: fixed by (SEED, index), independent of COUNT."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def superresolve_samples(pdm: LoadedPdm, samples: np.ndarray, labels: list[int] | None = None, *,
                         sampler: str = "dpm_solver++", steps: int = 20, seed: int = 0, options: dict | None = None,
                         progress: Progress | None = None) -> np.ndarray:
    """Generated samples (N, 1, h, w) at twice the resolution, in their own units, one by one.

    Each goes through :func:`superresolve`, as a raster does in ``pdm_superresolve``, so its
    2×2 means equal the sample exactly; sample ``index`` is seeded with :func:`cascade_seed` and, for a
    class-conditional super-resolution model, conditioned on ``labels[index]``.
    """
    progress = progress or SilentProgress()
    count = len(samples)
    high = [superresolve(pdm, sample[0], sampler=sampler, steps=steps, seed=cascade_seed(seed, index),
                         options=options, class_label=None if labels is None else labels[index],
                         progress=SubProgress(progress, 100.0 * index / count, 100.0 / count))
            for index, sample in enumerate(samples)]
    return np.stack(high)[:, None]
