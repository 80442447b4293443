"""Comparing generated radar scenes with real ones, as Tuel et al. do, but fully offline.

Two families of scores:

* spatial statistics that need no model: the isotropic empirical semivariogram (the paper's
  main tool for unlabelled InSAR data), the radially averaged power spectrum and the value
  histograms, each compared as a real-set band against the generated mean;
* FID and improved precision/recall (Kynkäänniemi et al. 2019).  These live in the feature
  space of a network; Inception/VGG weights cannot be downloaded here and were made for
  natural images anyway, so :func:`train_encoder` trains a small CNN on the real data itself
  (a classifier when labels exist, an autoencoder otherwise, as the paper's discussion
  suggests).  Scores are therefore comparable between models evaluated with the *same*
  encoder file, not with published Inception FIDs.

Nothing here imports ``qgis``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.fft
import scipy.linalg
import scipy.sparse
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist
from torch import nn

from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, check_cancel
from ..model_files import card_path, load_weights, read_card, save_with_card

ENCODER_FORMAT = "qgis_insar_ml.encoder"
ENCODER_KIND = "encoder"
DEFAULT_WIDTHS = (16, 32, 64, 64)     # the last width is the feature dimension
_FFT_CHUNK_ELEMENTS = 1 << 22         # padded pixels per FFT batch: bounds memory for large sets
_DISTANCE_CHUNK = 1024                # rows per k-NN distance block


# --------------------------------------------------------------------------- spatial statistics


def _as_stack(images: Any, name: str = "images") -> np.ndarray:
    z = np.asarray(images, dtype=np.float64)
    if z.ndim != 3 or min(z.shape) < 1:
        raise InsarMlError(f"{name} must be a stack of 2-D images shaped (N, H, W), not {z.shape}.")
    return z


def semivariogram(images: np.ndarray, max_lag: int | None = None, bins: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic empirical semivariogram of each image: ``(lag centres, γ (N, bins))``.

    γ(bin) = Σ (z(x+h) − z(x))² / (2·#pairs) over every valid pixel pair whose lag vector
    h has |h| in the bin (Matheron's estimator, the paper's eq. for γ̂).  All lag vectors
    are done at once from FFT correlations of the zero-padded image, its square and its
    validity mask, so NaN pixels simply drop out of the pairs and the result equals the
    brute-force sum.  Bins are ``bins`` equal intervals of [0.5, max_lag + 0.5) pixels
    (default: one per integer lag, ``max_lag`` = half the shorter side); a bin without
    pairs is NaN.
    """
    z = _as_stack(images)
    n, h, w = z.shape
    max_lag = max(1, min(h, w) // 2) if max_lag is None else int(max_lag)
    if not 1 <= max_lag <= max(h, w) - 1:
        raise InsarMlError(f"The semivariogram's maximum lag must be between 1 and {max(h, w) - 1} pixels "
                           f"for {h}×{w} images, not {max_lag}.")
    bins = max_lag if bins is None else int(bins)
    if bins < 1:
        raise InsarMlError(f"The semivariogram needs at least one lag bin, not {bins}.")
    edges = np.linspace(0.5, max_lag + 0.5, bins + 1)

    ly, lx = min(max_lag, h - 1), min(max_lag, w - 1)
    # circular correlation of size P is exact for lags ≤ L when P ≥ size + L (no wrap-around)
    ph, pw = scipy.fft.next_fast_len(h + ly, real=True), scipy.fft.next_fast_len(w + lx, real=True)
    dy, dx = np.arange(-ly, ly + 1), np.arange(-lx, lx + 1)
    dist = np.hypot(dy[:, None], dx[None, :]).ravel()
    which = np.searchsorted(edges, dist, side="right") - 1
    used = np.flatnonzero((which >= 0) & (which < bins))
    to_bins = scipy.sparse.csr_matrix((np.ones(used.size), (used, which[used])), shape=(dist.size, bins))

    gamma = np.empty((n, bins))
    chunk = max(1, _FFT_CHUNK_ELEMENTS // (ph * pw))
    for start in range(0, n, chunk):
        block = z[start:start + chunk]
        valid = np.isfinite(block)
        counts = valid.sum(axis=(1, 2), keepdims=True)
        # γ ignores the mean; removing it keeps the z² and z·z terms from cancelling catastrophically
        centred = np.where(valid, block - np.where(valid, block, 0.0).sum(axis=(1, 2), keepdims=True)
                           / np.maximum(counts, 1), 0.0)
        zf = scipy.fft.rfft2(centred, s=(ph, pw))
        z2f = scipy.fft.rfft2(centred ** 2, s=(ph, pw))
        mf = scipy.fft.rfft2(valid.astype(np.float64), s=(ph, pw))
        # Σ_x m(x)m(x+h)(z(x+h) − z(x))² = corr(m, z²) + corr(z², m) − 2·corr(z, z), corr(f,g) = F̄·G
        sq_sum = scipy.fft.irfft2(2.0 * (np.conj(mf) * z2f).real - 2.0 * np.abs(zf) ** 2, s=(ph, pw))
        pairs = np.rint(scipy.fft.irfft2(np.abs(mf) ** 2, s=(ph, pw)))
        rows, cols = np.ix_(dy % ph, dx % pw)
        num = sq_sum[:, rows, cols].reshape(len(block), -1) @ to_bins
        den = pairs[:, rows, cols].reshape(len(block), -1) @ to_bins
        with np.errstate(invalid="ignore", divide="ignore"):
            gamma[start:start + chunk] = np.where(den > 0, num / (2.0 * den), np.nan)
    return 0.5 * (edges[:-1] + edges[1:]), gamma


def semivariogram_band(gammas: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` range of γ across samples at each lag (the paper's shaded 95 % band)."""
    if not 0.0 < level < 1.0:
        raise InsarMlError(f"The band level must be between 0 and 1, not {level}.")
    tail = 50.0 * (1.0 - level)
    low, high = np.nanpercentile(np.asarray(gammas, dtype=np.float64), [tail, 100.0 - tail], axis=0)
    return low, high


def _rms_log_ratio(reference: np.ndarray, candidate: np.ndarray) -> float:
    """RMS of ln(candidate / reference) over the entries where both are positive (NaN if none)."""
    keep = np.isfinite(reference) & np.isfinite(candidate) & (reference > 0) & (candidate > 0)
    if not keep.any():
        return math.nan
    return float(np.sqrt(np.mean(np.log(candidate[keep] / reference[keep]) ** 2)))


def semivariogram_distance(real_gammas: np.ndarray, generated_gammas: np.ndarray) -> float:
    """RMS over lags of ln(mean γ_generated / mean γ_real).

    A log-ratio weighs every lag alike although γ grows by orders of magnitude from the
    nugget to the sill, and it sees a variance mismatch (the paper's unscaled samples,
    a constant offset in log γ) as well as a wrong correlation length (a change of shape).
    0 for identical sets; 0.1 ≈ a typical 10 % mismatch.
    """
    return _rms_log_ratio(np.nanmean(real_gammas, axis=0), np.nanmean(generated_gammas, axis=0))


def fraction_inside_band(real_gammas: np.ndarray, generated_gammas: np.ndarray, level: float = 0.95) -> float:
    """Share of the generated (sample, lag) values of γ inside the real set's ``level`` band.

    It is ≈ ``level`` when the generated spread matches the real one, lower when the
    generated set is biased, too diverse or too uniform at some lags.
    """
    low, high = semivariogram_band(real_gammas, level)
    gen = np.asarray(generated_gammas, dtype=np.float64)
    known = np.isfinite(gen) & np.isfinite(low) & np.isfinite(high)
    if not known.any():
        return math.nan
    return float(np.mean(((gen >= low) & (gen <= high))[known]))


def radial_power_spectrum(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of each image: ``(k in cycles/pixel, psd (N, n_k))``.

    Each image is mean-removed (NaNs set to that mean) and Hann-windowed so that the jump
    between opposite edges does not leak a k⁻² artefact into the slope; bins are one
    fundamental frequency wide, from the fundamental to Nyquist, DC excluded.
    """
    z = _as_stack(images)
    n, h, w = z.shape
    valid = np.isfinite(z)
    mean = np.where(valid, z, 0.0).sum(axis=(1, 2), keepdims=True) / np.maximum(valid.sum(axis=(1, 2),
                                                                                             keepdims=True), 1)
    window = np.outer(np.hanning(h), np.hanning(w)) if min(h, w) > 2 else np.ones((h, w))
    power = np.abs(scipy.fft.fft2(np.where(valid, z - mean, 0.0) * window)) ** 2 / np.sum(window ** 2)
    dk = 1.0 / min(h, w)
    n_k = max(1, min(h, w) // 2)
    radius = np.hypot(*np.meshgrid(scipy.fft.fftfreq(h), scipy.fft.fftfreq(w), indexing="ij")).ravel()
    which = np.rint(radius / dk).astype(int) - 1          # bin i holds |k| ≈ (i + 1)·dk
    used = np.flatnonzero((which >= 0) & (which < n_k))
    to_bins = scipy.sparse.csr_matrix((np.ones(used.size), (used, which[used])), shape=(radius.size, n_k))
    counts = np.asarray(to_bins.sum(axis=0)).ravel()
    psd = (power.reshape(n, -1) @ to_bins) / np.maximum(counts, 1)
    return dk * np.arange(1, n_k + 1), psd


def value_histograms(real: np.ndarray, generated: np.ndarray, bins: int = 50
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(edges, real density, generated density)`` on common edges spanning both sets' finite values."""
    a = np.asarray(real, dtype=np.float64).ravel()
    b = np.asarray(generated, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        raise InsarMlError("The real and generated images must both hold finite values to compare histograms.")
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=int(bins))
    return edges, np.histogram(a, edges, density=True)[0], np.histogram(b, edges, density=True)[0]


# --------------------------------------------------------------------------- feature-space scores


def _as_features(feats: Any, name: str) -> np.ndarray:
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InsarMlError(f"{name} must be a (N, D) array of at least two feature vectors, not {x.shape}.")
    if not np.isfinite(x).all():
        raise InsarMlError(f"{name} contains NaN or infinite values; the images or the encoder are broken.")
    return x


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """FID: ‖μa − μb‖² + tr(Σa + Σb − 2(ΣaΣb)^½) between Gaussians fitted to the two feature sets.

    With fewer samples than dimensions Σ is singular and sqrtm may fail; then, as the
    reference FID code does, a small multiple of I is added to both covariances.  The
    matrix square root of a product of covariances is real in exact arithmetic, so tiny
    imaginary parts are rounding and dropped; large ones mean broken inputs.
    """
    a, b = _as_features(feat_a, "feat_a"), _as_features(feat_b, "feat_b")
    if a.shape[1] != b.shape[1]:
        raise InsarMlError(f"The feature sets have different dimensions ({a.shape[1]} and {b.shape[1]}).")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root, _ = scipy.linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():
        offset = 1e-6 * np.eye(len(cov_a))
        root, _ = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset), disp=False)
    if np.iscomplexobj(root):
        scale = max(np.abs(root).max(), 1.0)
        if np.abs(root.imag).max() > 1e-3 * scale:
            raise InsarMlError("The FID matrix square root has a large imaginary part; the features are degenerate.")
        root = root.real
    value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root)
    return float(max(value, 0.0))


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    radii = np.empty(len(x))
    for start in range(0, len(x), _DISTANCE_CHUNK):
        d = cdist(x[start:start + _DISTANCE_CHUNK], x)
        radii[start:start + _DISTANCE_CHUNK] = np.partition(d, k, axis=1)[:, k]   # index 0 is the point itself
    return radii


def _inside_manifold(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
    """Share of ``queries`` inside at least one ball (manifold point, its k-NN radius)."""
    inside = np.empty(len(queries), dtype=bool)
    for start in range(0, len(queries), _DISTANCE_CHUNK):
        d = cdist(queries[start:start + _DISTANCE_CHUNK], manifold)
        inside[start:start + _DISTANCE_CHUNK] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real_feats: np.ndarray, gen_feats: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN radius manifolds.

    Precision: share of generated samples inside the real manifold (realism).
    Recall: share of real samples inside the generated manifold (coverage).
    """
    real, gen = _as_features(real_feats, "real_feats"), _as_features(gen_feats, "gen_feats")
    if real.shape[1] != gen.shape[1]:
        raise InsarMlError(f"The feature sets have different dimensions ({real.shape[1]} and {gen.shape[1]}).")
    if not 1 <= k < min(len(real), len(gen)):
        raise InsarMlError(f"Precision/recall with k={k} needs more than k samples in each set "
                           f"(got {len(real)} real and {len(gen)} generated).")
    precision = _inside_manifold(real, _kth_neighbour_radii(real, k), gen)
    recall = _inside_manifold(gen, _kth_neighbour_radii(gen, k), real)
    return precision, recall


# --------------------------------------------------------------------------- feature encoder


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class FeatureEncoder(nn.Module):
    """Conv blocks (the first at full resolution, then ×½ each) + global average pooling.

    The per-channel mean/std of the training images are buffers, so generated images are
    normalised exactly as the real ones were, and travel with the weights.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        if in_channels < 1 or not widths or any(w < 8 or w % 8 for w in widths):
            raise InsarMlError(f"Invalid encoder shape: {in_channels} input channels, widths {widths} "
                               "(each width must be a positive multiple of 8).")
        self.in_channels, self.widths = int(in_channels), tuple(int(w) for w in widths)
        self.blocks = nn.Sequential(*(_block(c_in, c_out, 1 if i == 0 else 2) for i, (c_in, c_out)
                                      in enumerate(zip((self.in_channels, *self.widths[:-1]), self.widths))))
        self.register_buffer("mean", torch.zeros(self.in_channels))
        self.register_buffer("std", torch.ones(self.in_channels))
        self.training_info: dict[str, Any] | None = None     # written to the card: how the features were learnt

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    def config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "widths": list(self.widths)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        return self.blocks(torch.nan_to_num(x)).mean(dim=(2, 3))      # NaN pixels count as the mean

    def features(self, images: Any, batch_size: int = 256) -> np.ndarray:
        """(N, feature_dim) features of (N, C, H, W) — or (N, H, W) single-channel — images."""
        x = _as_image_tensor(images, "images")
        if x.shape[1] != self.in_channels:
            raise InsarMlError(f"The encoder takes {self.in_channels}-channel images, not {x.shape[1]}-channel ones.")
        device = self.mean.device
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = [self(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy().astype(np.float64)


def _as_image_tensor(images: Any, name: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] < 1 or min(x.shape[2:]) < 4:
        raise InsarMlError(f"{name} must be shaped (N, C, H, W) or (N, H, W) with H, W ≥ 4, "
                           f"not {tuple(x.shape)}.")
    return x


class _Decoder(nn.Module):
    """Rebuilds the image from the pooled features, so they must summarise it (autoencoder mode)."""

    def __init__(self, dim: int, out_channels: int):
        super().__init__()
        self.dim = dim
        self.expand = nn.Linear(dim, dim * 16)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), _block(dim, dim, 1),
                                nn.Upsample(scale_factor=2), _block(dim, dim, 1),
                                nn.Conv2d(dim, out_channels, 3, padding=1))

    def forward(self, f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.up(self.expand(f).view(-1, self.dim, 4, 4))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def train_encoder(images: Any, labels: Any | None = None, steps: int = 500, seed: int = 0,
                  progress: Progress | None = None, *, batch_size: int = 64, lr: float = 2e-3,
                  widths: tuple[int, ...] = DEFAULT_WIDTHS, device: str | torch.device = "cpu"
                  ) -> FeatureEncoder:
    """Train a :class:`FeatureEncoder` on the real images.

    With two or more classes it is a classifier (cross-entropy on a linear head), so its
    features separate what the labels separate, like a fine-tuned Inception; otherwise an
    autoencoder, whose bottleneck must keep what tells scenes apart.  The heads are
    dropped afterwards: only the features are used.  ``seed`` fixes weights and batches.
    """
    progress = progress or SilentProgress()
    x = _as_image_tensor(images, "images")
    if steps < 1 or batch_size < 1:
        raise InsarMlError(f"Encoder training needs at least one step and a batch of at least one image "
                           f"(got {steps} steps, batch {batch_size}).")
    classes = None
    if labels is not None:
        label_array = np.asarray(labels).ravel()
        if len(label_array) != len(x):
            raise InsarMlError(f"{len(label_array)} labels for {len(x)} images; give one label per image.")
        names, codes = np.unique(label_array, return_inverse=True)
        if len(names) >= 2:
            classes = torch.as_tensor(codes, dtype=torch.long)
        else:
            progress.info("All images have the same label; training the encoder as an autoencoder instead.")

    valid = torch.isfinite(x)
    counts = valid.sum(dim=(0, 2, 3)).clamp(min=1)
    mean = torch.where(valid, x, 0).sum(dim=(0, 2, 3)) / counts
    var = torch.where(valid, (x - mean[None, :, None, None]) ** 2, 0).sum(dim=(0, 2, 3)) / counts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = FeatureEncoder(x.shape[1], widths)
        head: nn.Module = (nn.Linear(encoder.feature_dim, int(classes.max()) + 1) if classes is not None
                           else _Decoder(encoder.feature_dim, x.shape[1]))
    encoder.mean.copy_(mean)
    encoder.std.copy_(var.sqrt().clamp(min=1e-6))
    encoder.to(device).train()
    head.to(device).train()
    objective = "classifier" if classes is not None else "autoencoder"
    progress.info(f"Training the feature encoder as a{'' if classes is not None else 'n'} {objective} "
                  f"on {len(x)} images for {steps} steps.")

    def loss_of(pick: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch = x[pick].to(device)
        feats = encoder(batch)
        if classes is not None:
            return F.cross_entropy(head(feats), classes[pick].to(device))
        target = torch.nan_to_num((batch - encoder.mean[None, :, None, None]) / encoder.std[None, :, None, None])
        return F.mse_loss(head(feats, tuple(batch.shape[2:])), target)

    final_loss = fit_minibatches([*encoder.parameters(), *head.parameters()], loss_of, len(x), steps, seed,
                                 progress, batch_size=batch_size, lr=lr)
    encoder.training_info = {"objective": objective, "steps": int(steps), "seed": int(seed),
                             "classes": None if classes is None else int(classes.max()) + 1,
                             "images": int(len(x)), "image_size": list(x.shape[2:]),
                             "final_loss": final_loss}
    return encoder.eval()


def fit_minibatches(parameters: list[torch.Tensor], loss_of: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                    samples: int, steps: int, seed: int, progress: Progress, *, batch_size: int, lr: float,
                    cosine: bool = False) -> float:
    """Adam on ``loss_of(indices of a random batch, generator)`` for ``steps`` steps; the final loss.

    The small training loop of the evaluation networks (feature encoder, scene classifier):
    ``seed`` fixes the batches (and whatever else ``loss_of`` draws from the generator),
    ``cosine`` decays the learning rate to 0, and cancel is checked at every step.
    """
    optimiser = torch.optim.Adam(parameters, lr=lr)
    schedule = (torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / steps)))
                if cosine else None)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        check_cancel(progress)
        loss = loss_of(torch.randint(samples, (min(batch_size, samples),), generator=generator), generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if schedule is not None:
            schedule.step()
        progress.set_progress(100.0 * (step + 1) / steps)
    return float(loss.detach())


def save_encoder(encoder: FeatureEncoder, path: str | os.PathLike) -> Path:
    """Write ``<path>.safetensors`` and its card ``<path>.json``; both appear only when complete."""
    card = {"format": ENCODER_FORMAT, "kind": ENCODER_KIND, "encoder": encoder.config(),
            "feature_dim": encoder.feature_dim, "training": encoder.training_info}
    return save_with_card(encoder.state_dict(), card, Path(path).with_suffix(".safetensors"))


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> FeatureEncoder:
    """Load an encoder written by :func:`save_encoder` (its ``.safetensors`` or ``.json``), in eval mode."""
    weights, card = read_card(path, ENCODER_FORMAT, "feature encoder")
    card_file = card_path(weights)
    try:
        encoder = FeatureEncoder(int(card["encoder"]["in_channels"]), tuple(card["encoder"]["widths"]))
        encoder.load_state_dict(load_weights(weights), strict=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise InsarMlError(f"The card {card_file.name} does not describe a valid encoder ({exc}).") from None
    except RuntimeError as exc:
        raise InsarMlError(f"{weights.name} does not fit its card "
                           f"({str(exc).splitlines()[0]}).") from None
    encoder.training_info = card.get("training")
    return encoder.to(device).eval()


# --------------------------------------------------------------------------- the whole comparison


def _json_values(values: Any) -> list:
    """A float list for JSON, NaN/inf as null (strict JSON has no NaN)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).ravel()]


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _channel_statistics(real: np.ndarray, generated: np.ndarray, max_lag: int | None, bins: int | None,
                        histogram_bins: int) -> dict[str, Any]:
    lags, g_real = semivariogram(real, max_lag, bins)
    _, g_gen = semivariogram(generated, max_lag, bins)
    low, high = semivariogram_band(g_real)
    gen_low, gen_high = semivariogram_band(g_gen)
    k, p_real = radial_power_spectrum(real)
    _, p_gen = radial_power_spectrum(generated)
    edges, h_real, h_gen = value_histograms(real, generated, histogram_bins)
    return {
        "semivariogram": {"lags": _json_values(lags),
                          "real_mean": _json_values(np.nanmean(g_real, axis=0)),
                          "real_low": _json_values(low), "real_high": _json_values(high),
                          "generated_mean": _json_values(np.nanmean(g_gen, axis=0)),
                          "generated_low": _json_values(gen_low), "generated_high": _json_values(gen_high),
                          "distance": _json_float(semivariogram_distance(g_real, g_gen)),
                          "fraction_inside_band": _json_float(fraction_inside_band(g_real, g_gen))},
        "spectrum": {"k": _json_values(k), "real_mean": _json_values(p_real.mean(axis=0)),
                     "generated_mean": _json_values(p_gen.mean(axis=0)),
                     "distance": _json_float(_rms_log_ratio(p_real.mean(axis=0), p_gen.mean(axis=0)))},
        "histogram": {"edges": _json_values(edges), "real": _json_values(h_real),
                      "generated": _json_values(h_gen)},
    }


def evaluate_sets(real: Any, generated: Any, encoder: FeatureEncoder | None = None,
                  progress: Progress | None = None, *, max_lag: int | None = None, bins: int | None = None,
                  histogram_bins: int = 50, k: int = 3) -> dict[str, Any]:
    """Every score for two image sets shaped (N, C, H, W) or (N, H, W), as JSON-ready values.

    Spatial statistics are per channel (``"channels"``); ``"features"`` holds FID and
    precision/recall when an encoder is given, else None.  Semivariogram and spectrum
    distances are the RMS log-ratio of the mean curves (see :func:`semivariogram_distance`).
    """
    progress = progress or SilentProgress()
    a = _as_image_tensor(real, "The real images").numpy()
    b = _as_image_tensor(generated, "The generated images").numpy()
    if a.shape[1:] != b.shape[1:]:
        raise InsarMlError(f"Real and generated images must have the same channels and size "
                           f"({tuple(a.shape[1:])} vs {tuple(b.shape[1:])}).")
    if min(len(a), len(b)) < 2:
        raise InsarMlError("Each set needs at least two images to estimate spreads and covariances.")
    result: dict[str, Any] = {"n_real": len(a), "n_generated": len(b), "image_shape": list(a.shape[1:]),
                              "semivariogram_band_level": 0.95, "channels": [], "features": None}
    stages = a.shape[1] + (encoder is not None)
    for c in range(a.shape[1]):
        check_cancel(progress)
        result["channels"].append(_channel_statistics(a[:, c], b[:, c], max_lag, bins, histogram_bins))
        progress.set_progress(100.0 * (c + 1) / stages)
    if encoder is not None:
        check_cancel(progress)
        progress.info("Computing encoder features of both sets.")
        f_real, f_gen = encoder.features(a), encoder.features(b)
        check_cancel(progress)
        if k < min(len(a), len(b)):
            precision, recall = precision_recall(f_real, f_gen, k)
        else:
            progress.info(f"Precision/recall skipped: each set needs more than k={k} images.")
            precision = recall = math.nan
        result["features"] = {"fid": frechet_distance(f_real, f_gen), "precision": _json_float(precision),
                              "recall": _json_float(recall), "k": int(k), "dim": int(f_real.shape[1]),
                              "encoder": encoder.training_info}
        progress.set_progress(100.0)
    return result


def plot_evaluation(result: dict[str, Any], path_png: str | os.PathLike, row_titles: list[str] | None = None,
                    value_label: str = "value") -> Path:
    """One row per channel: semivariograms (real 95 % band + means), radial spectra, histograms.

    ``row_titles`` name the rows when they are not channels (one class per row, say).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def arr(values: list) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    channels = result["channels"]
    fig = Figure(figsize=(13, 3.6 * len(channels)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(channels), 3, squeeze=False)
    for index, (row, stats) in enumerate(zip(axes, channels)):
        sv, sp, hist = stats["semivariogram"], stats["spectrum"], stats["histogram"]
        prefix = f"{row_titles[index]}: " if row_titles else ""
        lags = arr(sv["lags"])
        level = round(100 * result.get("semivariogram_band_level", 0.95))
        row[0].fill_between(lags, arr(sv["real_low"]), arr(sv["real_high"]), color="tab:blue", alpha=0.25,
                            label=f"real {level} % band")
        row[0].plot(lags, arr(sv["real_mean"]), color="tab:blue", label="real mean")
        row[0].plot(lags, arr(sv["generated_mean"]), color="tab:red", label="generated mean")
        row[0].set(xlabel="lag (pixels)", ylabel="γ(h)")
        row[0].set_title(f"{prefix}Semivariogram (log-ratio RMS {_fmt(sv['distance'])}, "
                         f"{_fmt(sv['fraction_inside_band'], 100)} % in band)", fontsize=9)
        row[0].legend(fontsize=8)
        row[1].loglog(arr(sp["k"]), arr(sp["real_mean"]), color="tab:blue", label="real")
        row[1].loglog(arr(sp["k"]), arr(sp["generated_mean"]), color="tab:red", label="generated")
        row[1].set(xlabel="k (cycles/pixel)", ylabel="power")
        row[1].set_title(f"Radial power spectrum (log-ratio RMS {_fmt(sp['distance'])})", fontsize=9)
        row[1].legend(fontsize=8)
        edges = arr(hist["edges"])
        row[2].stairs(arr(hist["real"]), edges, color="tab:blue", label="real")
        row[2].stairs(arr(hist["generated"]), edges, color="tab:red", label="generated")
        row[2].set(xlabel=value_label, ylabel="density")
        row[2].set_title("Value histogram", fontsize=9)
        row[2].legend(fontsize=8)
    feats = result.get("features")
    if feats:
        fig.suptitle(f"FID {_fmt(feats['fid'])}   precision {_fmt(feats['precision'])}   "
                     f"recall {_fmt(feats['recall'])}   ({result['n_real']} real, "
                     f"{result['n_generated']} generated)")
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{scale * value:.3g}"
