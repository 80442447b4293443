"""The Gaussian diffusion process of a PDM: schedules, posteriors, losses, time views.

One class, :class:`GaussianDiffusion`, owns every formula that depends on the β schedule
(as improved-diffusion's ``gaussian_diffusion.py`` does), so that training and all the
samplers agree on it. The network knows nothing of diffusion: it is called as
``model_fn(x, t_model, **model_kwargs)`` with the *model time* ``t_model = t·1000/T`` as
a float (improved-diffusion's ``rescale_timesteps``), and only
:meth:`GaussianDiffusion.model_output` calls it, so that scaling happens exactly once
and is never truncated to an integer.

Tables are computed in float64 on the CPU and cast to the sample's dtype and device
when used, so the same object serves CPU, CUDA and MPS (which lacks float64).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, NamedTuple, Sequence

import torch

from ..errors import InsarMlError

ModelFn = Callable[..., torch.Tensor]

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v", "x0")
VARIANCES = ("fixed_small", "fixed_large", "learned_range")
MIN_TIMESTEPS, MAX_TIMESTEPS = 10, 4000
MODEL_TIME_SCALE = 1000.0  # the network sees t * 1000 / T whatever T is
HYBRID_VB_WEIGHT = 1e-3    # λ of Nichol & Dhariwal's L_hybrid = L_simple + λ·L_vlb
MAX_BETA = 0.999           # keeps ᾱ_t > 0 at the end of the cosine (and short linear) schedules
COSINE_OFFSET = 0.008      # Nichol & Dhariwal's s: β_1 is not vanishingly small


def _choice(kind: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InsarMlError(f"Unknown {kind} '{value}': choose one of {', '.join(allowed)}.")
    return value


def beta_schedule(name: str, num_timesteps: int) -> torch.Tensor:
    """β_1..β_T in float64 for the ``linear`` or ``cosine`` schedule of any length.

    The linear schedule is scaled by 1000/T as improved-diffusion does, so that every T
    spans the same noise levels; short schedules would then exceed β = 1, hence the clip.
    """
    _choice("beta schedule", name, SCHEDULES)
    if not MIN_TIMESTEPS <= num_timesteps <= MAX_TIMESTEPS:
        raise InsarMlError(f"The number of diffusion steps T = {num_timesteps} is out of range: "
                           f"use a value between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}.")
    if name == "linear":
        scale = 1000.0 / num_timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)
    else:
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        alpha_bar = torch.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
        betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=MAX_BETA)


def x0_eps_from_output(prediction: str, output: torch.Tensor, x_t: torch.Tensor, alpha: torch.Tensor,
                       sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, ε) implied by a network output predicting ``eps``, ``v`` or ``x0``.

    ``x_t = α·x0 + σ·ε`` with α² + σ² = 1, and ``v = α·ε − σ·x0``.
    """
    if prediction == "eps":
        return (x_t - sigma * output) / alpha, output
    if prediction == "x0":
        return output, (x_t - alpha * output) / sigma
    return alpha * x_t - sigma * output, sigma * x_t + alpha * output


def target_from_x0_eps(prediction: str, x0: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor,
                       sigma: torch.Tensor) -> torch.Tensor:
    """What a network predicting ``prediction`` should output: the inverse of :func:`x0_eps_from_output`."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return alpha * eps - sigma * x0


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the batch."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def normal_kl(mean1: torch.Tensor, log_var1: torch.Tensor, mean2: torch.Tensor,
              log_var2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, var1) ‖ N(mean2, var2)) elementwise, in nats."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2)
                  + (mean1 - mean2) ** 2 * torch.exp(-log_var2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor,
                                        log_scale: torch.Tensor) -> torch.Tensor:
    """log p(x) of data in [−1, 1] quantised to 256 levels under N(mean, scale²), elementwise.

    The decoder term L_0 of the variational bound: the outermost bins extend to ±∞.
    """
    inv_scale = torch.exp(-log_scale)
    upper = inv_scale * (x - mean + 1.0 / 255.0)
    lower = inv_scale * (x - mean - 1.0 / 255.0)
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_survival_lower = torch.special.log_ndtr(-lower)
    log_delta = torch.log((torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_survival_lower, log_delta))


def _interp(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``table`` (indexed 0..n−1) at fractional ``t``."""
    i = t.floor().clamp(0, table.numel() - 2).long()
    w = t - i
    return table[i] * (1 - w) + table[i + 1] * w


def _as_time(t: torch.Tensor | float) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64, device="cpu")


class ReverseStep(NamedTuple):
    """p(x_{t−1} | x_t) and the x0 it was built from."""
    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_x0: torch.Tensor


class GaussianDiffusion:
    """A discrete Gaussian diffusion of T steps and the maths every sampler needs.

    Times ``t`` index the steps 0..T−1 (step t has noise β_{t+1} in the paper's 1-based
    notation). Integer-time methods (posteriors, ``p_mean_variance``) take long tensors;
    the continuous-time view (:meth:`alpha_sigma`, :meth:`log_snr`,
    :meth:`t_of_lambda`, :meth:`model_output`, :meth:`predict_x0_eps`) accepts any
    float t in [0, T−1] by interpolating log ᾱ linearly between steps, as DPM-Solver's
    discrete-time wrapper does, and agrees exactly with the discrete tables at integers.
    """

    def __init__(self, num_timesteps: int = 1000, schedule: str = "linear", prediction: str = "eps",
                 variance: str = "fixed_small"):
        self.schedule = schedule
        self.prediction = _choice("prediction target", prediction, PREDICTIONS)
        self.variance = _choice("variance type", variance, VARIANCES)
        self._set_betas(beta_schedule(schedule, num_timesteps))
        self.timestep_map: torch.Tensor | None = None  # original t of each step, once respaced
        self.time_scale = MODEL_TIME_SCALE / num_timesteps

    def _set_betas(self, betas: torch.Tensor) -> None:
        self.betas = betas
        self.num_timesteps = betas.numel()
        alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.log_alphas_cumprod = torch.log(self.alphas_cumprod)
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # β̃_0 = 0: borrow β̃_1 so that the log stays finite (the value is never sampled with).
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * torch.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * torch.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = torch.log(betas)
        if self.variance == "fixed_large":  # β_t, with β̃_1 at t = 0 for a better decoder (improved-diffusion)
            self.fixed_log_variance = torch.cat([self.posterior_log_variance_clipped[:1], self.log_betas[1:]])
        else:
            self.fixed_log_variance = self.posterior_log_variance_clipped

    def respaced(self, timesteps: Sequence[int]) -> GaussianDiffusion:
        """The diffusion restricted to an increasing subsequence of steps (SpacedDiffusion).

        βs are recomputed so that ᾱ is unchanged on the kept steps; the model still sees
        each kept step's original time, so a network trained on T steps needs no change.
        """
        kept = torch.as_tensor(list(timesteps), dtype=torch.long)
        spaced = copy.copy(self)
        spaced.timestep_map = kept.to(torch.float64) if self.timestep_map is None else self.timestep_map[kept]
        alphas_cumprod = self.alphas_cumprod[kept]
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        spaced._set_betas(1.0 - alphas_cumprod / previous)
        return spaced

    # --- the network -------------------------------------------------------------------

    def model_time(self, t: torch.Tensor | float) -> torch.Tensor:
        """The time the network was trained on: original t · 1000 / T, as float32, never rounded."""
        t = _as_time(t)
        if self.timestep_map is not None:
            t = _interp(self.timestep_map, t)
        return (t * self.time_scale).float()

    def model_output(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor | float,
                     model_kwargs: dict | None = None) -> torch.Tensor:
        """Call the network on ``x`` at (possibly fractional) step ``t``: the one place it is called."""
        t_model = self.model_time(t).expand(x.shape[0]).to(x.device)
        return model_fn(x, t_model, **(model_kwargs or {}))

    def split_output(self, output: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prediction, variance values in [−1, 1] or None) from the raw network output."""
        channels = x_t.shape[1]
        if self.variance != "learned_range":
            return output, None
        if output.shape[1] != 2 * channels:
            raise InsarMlError(f"A learned-variance model must output {2 * channels} channels for {channels}-channel "
                               f"data, this one outputs {output.shape[1]}: check the model's variance setting.")
        return output[:, :channels], output[:, channels:]

    # --- continuous-time view ----------------------------------------------------------

    def alpha_sigma(self, t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """(α_t, σ_t) = (√ᾱ_t, √(1−ᾱ_t)) at fractional t, float64 on the CPU."""
        log_alpha_bar = _interp(self.log_alphas_cumprod, _as_time(t))
        return torch.exp(0.5 * log_alpha_bar), torch.sqrt(-torch.expm1(log_alpha_bar))

    def log_snr(self, t: torch.Tensor | float) -> torch.Tensor:
        """λ_t = log(α_t/σ_t), decreasing in t: DPM-Solver's time variable."""
        log_alpha_bar = _interp(self.log_alphas_cumprod, _as_time(t))
        return 0.5 * log_alpha_bar - 0.5 * torch.log(-torch.expm1(log_alpha_bar))

    def t_of_lambda(self, lam: torch.Tensor | float) -> torch.Tensor:
        """The fractional t whose λ_t is ``lam``: the inverse of :meth:`log_snr`, clamped to [0, T−1]."""
        log_alpha_bar = -torch.nn.functional.softplus(-2.0 * _as_time(lam))  # ᾱ = sigmoid(2λ)
        table = self.log_alphas_cumprod  # strictly decreasing
        i = (torch.searchsorted(-table, -log_alpha_bar) - 1).clamp(0, self.num_timesteps - 2)
        t = i + (table[i] - log_alpha_bar) / (table[i] - table[i + 1])
        return t.clamp(0, self.num_timesteps - 1)

    def _coef(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample float64 coefficients cast and shaped to broadcast against ``x``."""
        return values.to(x.dtype).to(x.device).reshape(-1, *([1] * (x.ndim - 1)))

    def _alpha_sigma_like(self, t: torch.Tensor | float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, sigma = self.alpha_sigma(t)
        return self._coef(alpha, x), self._coef(sigma, x)

    def predict_x0_eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float,
                       clip_denoised: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, ε) from a network output at fractional t; with clipping, ε is made consistent with the clipped x0."""
        prediction, _ = self.split_output(output, x_t)
        alpha, sigma = self._alpha_sigma_like(t, x_t)
        x0, eps = x0_eps_from_output(self.prediction, prediction, x_t, alpha, sigma)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x_t - alpha * x0) / sigma
        return x0, eps

    # --- forward process and posteriors (integer t) ------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε."""
        alpha, sigma = self._alpha_sigma_like(t, x0)
        return alpha * x0 + sigma * noise

    def _extract(self, table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._coef(table[torch.as_tensor(t, device="cpu").long()], x)

    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor,
                                  t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance β̃_t and clipped log variance of q(x_{t−1} | x_t, x0)."""
        mean = (self._extract(self.posterior_mean_coef1, t, x_t) * x0
                + self._extract(self.posterior_mean_coef2, t, x_t) * x_t)
        return (mean, self._extract(self.posterior_variance, t, x_t),
                self._extract(self.posterior_log_variance_clipped, t, x_t))

    def p_mean_variance(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                        clip_denoised: bool) -> ReverseStep:
        """The reverse step p(x_{t−1} | x_t) given the network output at integer t.

        A learned variance interpolates in log space between β̃_t and β_t (Nichol & Dhariwal).
        """
        _, var_values = self.split_output(output, x_t)
        if var_values is None:
            log_variance = self._extract(self.fixed_log_variance, t, x_t).expand_as(x_t)
        else:
            frac = (var_values + 1.0) / 2.0
            log_variance = (frac * self._extract(self.log_betas, t, x_t)
                            + (1.0 - frac) * self._extract(self.posterior_log_variance_clipped, t, x_t))
        pred_x0, _ = self.predict_x0_eps(output, x_t, t, clip_denoised)
        mean, _, _ = self.q_posterior_mean_variance(pred_x0, x_t, t)
        return ReverseStep(mean, torch.exp(log_variance), log_variance, pred_x0)

    # --- training ----------------------------------------------------------------------

    def _vb_bits_per_dim(self, output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                         t: torch.Tensor) -> torch.Tensor:
        """The variational-bound term L_t per sample: decoder NLL at t = 0, posterior KL elsewhere."""
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        step = self.p_mean_variance(output, x_t, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, step.mean, step.log_variance)) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_log_likelihood(x0, step.mean, 0.5 * step.log_variance)) / math.log(2.0)
        return torch.where(torch.as_tensor(t).to(x0.device) == 0, nll, kl)

    def training_losses(self, model_fn: ModelFn, x0: torch.Tensor, t: torch.Tensor,
                        noise: torch.Tensor | None = None,
                        model_kwargs: dict | None = None) -> dict[str, torch.Tensor]:
        """Per-sample losses at steps ``t``: ``loss``, ``mse`` (L_simple) and ``vb`` (L_t, bits/dim).

        With a learned variance, ``loss = mse + λ·T·vb`` (T·L_t estimates L_vlb = Σ_t L_t)
        and the vb term sees the predicted mean through a stop-gradient, so it trains the
        variance only. With a fixed variance ``loss = mse`` and ``vb`` is reported only.
        """
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        output = self.model_output(model_fn, x_t, t, model_kwargs)
        prediction, var_values = self.split_output(output, x_t)
        target = target_from_x0_eps(self.prediction, x0, noise, *self._alpha_sigma_like(t, x0))
        mse = mean_flat((target - prediction) ** 2)
        if var_values is None:
            with torch.no_grad():
                vb = self._vb_bits_per_dim(output, x0, x_t, t)
            return {"loss": mse, "mse": mse, "vb": vb}
        vb = self._vb_bits_per_dim(torch.cat([prediction.detach(), var_values], dim=1), x0, x_t, t)
        return {"loss": mse + HYBRID_VB_WEIGHT * self.num_timesteps * vb, "mse": mse, "vb": vb}


class UniformSampler:
    """Draws training steps uniformly; the base of loss-aware sampling."""

    def __init__(self, num_timesteps: int):
        self.num_timesteps = num_timesteps

    def probabilities(self) -> torch.Tensor:
        return torch.full((self.num_timesteps,), 1.0 / self.num_timesteps, dtype=torch.float64)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, weights): weights 1/(T·p_t) make the weighted mean loss an unbiased estimate of the uniform one."""
        p = self.probabilities()
        t = torch.multinomial(p, batch, replacement=True, generator=generator)
        return t, (1.0 / (self.num_timesteps * p[t])).float()

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Uniform sampling learns nothing from the losses."""


class LossSecondMomentResampler(UniformSampler):
    """Loss-aware importance sampling of steps (Nichol & Dhariwal): p_t ∝ √E[L_t²].

    The L_vlb terms differ by orders of magnitude across t; sampling the noisy ones more
    often cuts the variance of the hybrid loss. Uniform until every step has a full
    history; a little uniform mass keeps every p_t > 0 so the weights stay bounded.
    """

    def __init__(self, num_timesteps: int, history: int = 10, uniform_prob: float = 0.001):
        super().__init__(num_timesteps)
        self.uniform_prob = uniform_prob
        self.history = torch.zeros(num_timesteps, history, dtype=torch.float64)
        self.counts = torch.zeros(num_timesteps, dtype=torch.long)

    def warmed_up(self) -> bool:
        return bool((self.counts == self.history.shape[1]).all())

    def probabilities(self) -> torch.Tensor:
        if not self.warmed_up():
            return super().probabilities()
        p = torch.sqrt((self.history ** 2).mean(dim=1))
        p = p / p.sum()
        return p * (1.0 - self.uniform_prob) + self.uniform_prob / self.num_timesteps

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record the per-sample losses (e.g. ``vb``) observed at steps ``t``, keeping the last few per step."""
        size = self.history.shape[1]
        for step, loss in zip(t.tolist(), losses.detach().double().cpu().tolist()):
            if self.counts[step] == size:
                self.history[step] = torch.roll(self.history[step], -1)
                self.history[step, -1] = loss
            else:
                self.history[step, self.counts[step]] = loss
                self.counts[step] += 1
