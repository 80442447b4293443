"""Samplers for a trained PDM: one small function per method, sharing one signature.

Every sampler is ``sampler(diffusion, model_fn, shape, steps, generator, model_kwargs,
progress, clip_denoised, **options)`` and returns the x0 samples. They draw all noise
from ``generator`` (on its device), so a seed reproduces a batch; they check cancel and
report progress once per step; ``model_kwargs`` (class labels, low-resolution inputs)
are fixed by the caller for the whole trajectory. The network is only ever called
through :meth:`GaussianDiffusion.model_output`, which feeds it the float time
``t·1000/T`` of the model's own schedule, including at the fractional times the ODE
solvers visit.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from ..errors import InsarMlError
from ..progress import Progress, SilentProgress, check_cancel
from .gaussian_diffusion import GaussianDiffusion, ModelFn
from .names import SAMPLER_NAMES, SKIP_TYPES

KARRAS_RHO = 7.0  # Karras et al.'s σ-grid exponent: dense steps at low noise
KARRAS_SIGMA_MAX = 80.0  # Karras et al.'s top noise level for data in [−1, 1]: pure noise already


def _check_steps(steps: int, most: int, least: int = 1) -> None:
    if not least <= steps <= most:
        raise InsarMlError(f"The number of sampling steps ({steps}) must be between {least} and {most}.")


def _steps(count: int, progress: Progress | None) -> Iterator[int]:
    """0..count−1, checking cancel before and reporting progress after each step."""
    progress = progress or SilentProgress()
    for i in range(count):
        check_cancel(progress)
        yield i
        progress.set_progress(100.0 * (i + 1) / count)


def _noise(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device)


def _full(t: int | float, x: torch.Tensor) -> torch.Tensor:
    """The same step for the whole batch: long for integer steps, float64 for fractional times."""
    return torch.full((x.shape[0],), t, dtype=torch.long if isinstance(t, int) else torch.float64)


def timestep_respacing(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` evenly spaced steps of 0..T−1, always keeping the first and the last."""
    _check_steps(steps, num_timesteps, least=2)
    stride = (num_timesteps - 1) / (steps - 1)
    return [round(i * stride) for i in range(steps)]


def sample_ancestral(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: tuple[int, ...], steps: int,
                     generator: torch.Generator | None = None, model_kwargs: dict | None = None,
                     progress: Progress | None = None, clip_denoised: bool = True) -> torch.Tensor:
    """DDPM ancestral sampling on ``steps`` respaced steps (all T for the original DDPM)."""
    spaced = diffusion.respaced(timestep_respacing(diffusion.num_timesteps, steps))
    x = _noise(shape, generator)
    for i in _steps(steps, progress):
        t = _full(steps - 1 - i, x)
        step = spaced.p_mean_variance(spaced.model_output(model_fn, x, t, model_kwargs), x, t, clip_denoised)
        x = step.mean
        if i < steps - 1:
            x = x + torch.exp(0.5 * step.log_variance) * _noise(shape, generator)
    return x


def sample_ddim(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: tuple[int, ...], steps: int,
                generator: torch.Generator | None = None, model_kwargs: dict | None = None,
                progress: Progress | None = None, clip_denoised: bool = True, eta: float = 0.0) -> torch.Tensor:
    """DDIM on ``steps`` respaced steps: deterministic at η = 0, DDPM-like noise at η = 1."""
    if eta < 0:
        raise InsarMlError(f"DDIM's eta must be 0 (deterministic) or positive, got {eta}.")
    spaced = diffusion.respaced(timestep_respacing(diffusion.num_timesteps, steps))
    x = _noise(shape, generator)
    for i in _steps(steps, progress):
        k = steps - 1 - i
        t = _full(k, x)
        x0, eps = spaced.predict_x0_eps(spaced.model_output(model_fn, x, t, model_kwargs), x, t, clip_denoised)
        alpha_bar, alpha_bar_prev = float(spaced.alphas_cumprod[k]), float(spaced.alphas_cumprod_prev[k])
        sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev))
        x = math.sqrt(alpha_bar_prev) * x0 + math.sqrt(max(1 - alpha_bar_prev - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _noise(shape, generator)
    return x


def dpm_time_grid(diffusion: GaussianDiffusion, steps: int, skip: str) -> torch.Tensor:
    """``steps + 1`` decreasing times from T−1 to 0, spaced as DPM-Solver's skip types.

    ``time_quadratic`` is quadratic in DPM-Solver's continuous time s = (t+1)/T, so the
    grids match its discrete-time wrapper; ``logSNR`` is uniform in λ.
    """
    _check_steps(steps, diffusion.num_timesteps - 1)
    last = diffusion.num_timesteps - 1
    if skip == "time_uniform":
        return torch.linspace(last, 0, steps + 1, dtype=torch.float64)
    if skip == "logSNR":
        lambdas = torch.linspace(float(diffusion.log_snr(last)), float(diffusion.log_snr(0)), steps + 1,
                                 dtype=torch.float64)
        return diffusion.t_of_lambda(lambdas)
    if skip == "time_quadratic":
        total = diffusion.num_timesteps
        roots = torch.linspace(1.0, math.sqrt(1.0 / total), steps + 1, dtype=torch.float64)
        return (roots ** 2 * total - 1).clamp(0, last)
    raise InsarMlError(f"Unknown DPM-Solver skip type '{skip}': choose one of {', '.join(SKIP_TYPES)}.")


def _dpm_solver_pp_update(x: torch.Tensor, x0s: list[torch.Tensor], lambdas: list[float], alpha_next: float,
                          sigma_next: float, sigma_ratio: float, eta: float = 0.0,
                          noise: torch.Tensor | None = None) -> torch.Tensor:
    """One multistep DPM-Solver++ step of order len(x0s) (1–3).

    ``x0s`` are the data predictions at the last len(x0s) grid points (most recent last),
    ``lambdas`` their λ followed by the target's. With ``eta`` > 0 (orders 1–2) it is the
    SDE-DPM-Solver++ step: the state shrinks by e^(−ηh) more, the data prediction gets the
    extra weight, and fresh noise of variance σ²(1 − e^(−2ηh)) comes in, as in ancestral sampling.
    """
    h = lambdas[-1] - lambdas[-2]
    phi_1 = math.expm1(-h * (1.0 + eta))
    x_next = sigma_ratio * math.exp(-eta * h) * x - alpha_next * phi_1 * x0s[-1]
    if eta > 0:
        x_next = x_next + sigma_next * math.sqrt(-math.expm1(-2.0 * eta * h)) * noise
    if len(x0s) == 1:
        return x_next
    r0 = (lambdas[-2] - lambdas[-3]) / h
    d1_0 = (x0s[-1] - x0s[-2]) / r0
    if len(x0s) == 2:
        return x_next - 0.5 * alpha_next * phi_1 * d1_0
    r1 = (lambdas[-3] - lambdas[-4]) / h
    d1_1 = (x0s[-2] - x0s[-3]) / r1
    d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    phi_2 = phi_1 / h + 1.0
    phi_3 = phi_2 / h - 0.5
    return x_next + alpha_next * phi_2 * d1 - alpha_next * phi_3 * d2


def sample_dpm_solver(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: tuple[int, ...], steps: int,
                      generator: torch.Generator | None = None, model_kwargs: dict | None = None,
                      progress: Progress | None = None, clip_denoised: bool = True, order: int = 2,
                      skip: str = "time_uniform", eta: float = 0.0) -> torch.Tensor:
    """Multistep DPM-Solver++ (data prediction) on the continuous-time view, one network call per step.

    The first steps warm up with lower orders, and the last ``order − 1`` steps lower the
    order again: the final steps span the widest λ intervals, where extrapolating old
    predictions is least stable. ``eta`` 0 solves the probability-flow ODE; ``eta`` 1 is
    SDE-DPM-Solver++(2M) (Lu et al.), which, like ancestral sampling, re-injects noise and
    so forgives a network whose ε is slightly off at low noise.
    """
    if order not in (1, 2, 3):
        raise InsarMlError(f"DPM-Solver++ order must be 1, 2 or 3, got {order}.")
    if eta < 0 or (eta > 0 and order == 3):
        raise InsarMlError(f"DPM-Solver++ eta must be 0 (ODE) or, with order 1 or 2, positive; got eta {eta} "
                           f"with order {order}.")
    times = dpm_time_grid(diffusion, steps, skip)
    alphas, sigmas = diffusion.alpha_sigma(times)
    lambdas = torch.log(alphas / sigmas).tolist()
    x = _noise(shape, generator)
    x0s: list[torch.Tensor] = []
    for i in _steps(steps, progress):
        t = _full(float(times[i]), x)
        x0, _ = diffusion.predict_x0_eps(diffusion.model_output(model_fn, x, t, model_kwargs), x, t, clip_denoised)
        x0s = (x0s + [x0])[-order:]
        step_order = min(len(x0s), steps - i)
        x = _dpm_solver_pp_update(x, x0s[-step_order:], lambdas[i + 1 - step_order:i + 2], float(alphas[i + 1]),
                                  float(sigmas[i + 1]), float(sigmas[i + 1] / sigmas[i]), eta,
                                  _noise(shape, generator) if eta > 0 else None)
    return x


def karras_time_grid(diffusion: GaussianDiffusion, steps: int, rho: float = KARRAS_RHO) -> torch.Tensor:
    """``steps + 1`` decreasing times, evenly spaced in σ̃^(1/ρ) with σ̃ = σ/α (Karras et al.).

    The grid tops at σ̃ = 80 where the schedule goes beyond (the cosine schedule reaches
    σ̃ ~ 10⁴–10⁵): spending steps there would starve the low noise levels that shape
    the data, while x_t at σ̃ = 80 is indistinguishable from the N(0, I) start.
    """
    _check_steps(steps, diffusion.num_timesteps - 1)
    sigma_min = torch.exp(-diffusion.log_snr(0))
    sigma_max = torch.exp(-diffusion.log_snr(diffusion.num_timesteps - 1)).clamp(max=KARRAS_SIGMA_MAX)
    ramp = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return diffusion.t_of_lambda(-torch.log(sigmas))


def sample_heun(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: tuple[int, ...], steps: int,
                generator: torch.Generator | None = None, model_kwargs: dict | None = None,
                progress: Progress | None = None, clip_denoised: bool = True) -> torch.Tensor:
    """The probability-flow ODE solved by Heun's method on the Karras σ grid (2·steps network calls).

    In the scaled variable x̃ = x/α the ODE is dx̃/dσ̃ = ε̂(x, t), nearly linear in σ̃,
    which is what makes a second-order solver accurate with few steps.
    """
    times = karras_time_grid(diffusion, steps)
    alphas, sigmas = diffusion.alpha_sigma(times)
    scaled_sigmas = (sigmas / alphas).tolist()

    def slope(x_scaled: torch.Tensor, i: int) -> torch.Tensor:
        x = float(alphas[i]) * x_scaled
        t = _full(float(times[i]), x)
        return diffusion.predict_x0_eps(diffusion.model_output(model_fn, x, t, model_kwargs), x, t, clip_denoised)[1]

    x_scaled = _noise(shape, generator) / float(alphas[0])
    for i in _steps(steps, progress):
        dsigma = scaled_sigmas[i + 1] - scaled_sigmas[i]
        d = slope(x_scaled, i)
        d_next = slope(x_scaled + dsigma * d, i + 1)
        x_scaled = x_scaled + dsigma * 0.5 * (d + d_next)
    return float(alphas[-1]) * x_scaled


def guided_model(model_fn: ModelFn, scale: float, null_label: int) -> ModelFn:
    """Classifier-free guidance: ε_uncond + scale·(ε_cond − ε_uncond), in one doubled batch.

    The unconditional branch replaces the labels ``y`` by ``null_label``; other tensor
    kwargs are duplicated. The combination is affine, so it is exact for v and x0
    targets too. For learned-variance outputs only the first C channels are guided and
    the conditional variance channels are kept.
    """
    def guided(x: torch.Tensor, t_model: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
        doubled = {key: torch.cat([value, value]) if isinstance(value, torch.Tensor) else value
                   for key, value in kwargs.items()}
        labels = torch.cat([y, torch.full_like(y, null_label)])
        cond, uncond = model_fn(torch.cat([x, x]), torch.cat([t_model, t_model]), y=labels, **doubled).chunk(2)
        channels = x.shape[1]
        mixed = uncond[:, :channels] + scale * (cond[:, :channels] - uncond[:, :channels])
        return torch.cat([mixed, cond[:, channels:]], dim=1)

    return guided


SAMPLERS = dict(zip(SAMPLER_NAMES, (sample_ancestral, sample_ddim, sample_dpm_solver, sample_heun)))
