"""The diffusion maths and samplers, checked against a network whose answer is known exactly.

For Gaussian data x0 ~ N(μ, Σ) the optimal ε-predictor has a closed form, so a sampler
that is correct (schedule, time scaling, solver) must return N(μ, Σ) up to its own
discretisation error. Data are shaped (B, d, 1, 1): d channels of a 1×1 image, so the
channel logic of learned variance and guidance is exercised as on real scenes.
"""
from __future__ import annotations

import pytest
import torch

from conftest import CancelAfter
from qgis_insar_ml.core.diffusion.gaussian_diffusion import (GaussianDiffusion, LossSecondMomentResampler,
                                                             UniformSampler, beta_schedule, target_from_x0_eps,
                                                             x0_eps_from_output)
from qgis_insar_ml.core.diffusion.sampling import (SAMPLERS, dpm_time_grid, guided_model, karras_time_grid,
                                                   timestep_respacing)
from qgis_insar_ml.core.errors import Cancelled, InsarMlError

BATCH = 4000
MEAN_TOL, COV_TOL = 0.05, 0.08


class GaussianData:
    """N(μ, Σ) in d dimensions with correlations, μ ≠ 0, eigenvalues of Σ in [0.02, 0.3]."""

    def __init__(self, d: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        self.eigenvalues = torch.linspace(0.03, 0.28, d, dtype=torch.float64)
        self.mean = torch.linspace(0.3, -0.4, d, dtype=torch.float64)
        self.cov = self.rotation @ torch.diag(self.eigenvalues) @ self.rotation.T


class Oracle:
    """The exact ε-network E[ε | x_t] = √(1−ᾱ)·C_t⁻¹(x_t − √ᾱ·μ), C_t = ᾱΣ + (1−ᾱ)I.

    It takes the model time like a real network and converts it back, t = t_model·T/1000,
    reading ᾱ from the continuous-time view so fractional times are exact. It records
    every model time it is given.
    """

    def __init__(self, diffusion: GaussianDiffusion, data: GaussianData):
        self.diffusion, self.data = diffusion, data
        self.times: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t_model: torch.Tensor) -> torch.Tensor:
        self.times.append(t_model.clone())
        t = t_model.double() * self.diffusion.num_timesteps / 1000.0
        alpha, sigma = self.diffusion.alpha_sigma(t)
        alpha_bar = (alpha ** 2)[:, None]
        centred = (x[:, :, 0, 0].double() - alpha[:, None] * self.data.mean) @ self.data.rotation
        eps = sigma[:, None] * (centred / (alpha_bar * self.data.eigenvalues + 1 - alpha_bar)) @ self.data.rotation.T
        return eps.to(x.dtype)[:, :, None, None]


def sample_errors(diffusion: GaussianDiffusion, oracle_diffusion: GaussianDiffusion, sampler: str, steps: int,
                  **options) -> tuple[float, float]:
    """(max |mean error|, max |covariance error|) of BATCH samples."""
    data = GaussianData()
    shape = (BATCH, data.mean.numel(), 1, 1)
    x = SAMPLERS[sampler](diffusion, Oracle(oracle_diffusion, data), shape, steps, torch.Generator().manual_seed(1),
                          clip_denoised=False, **options)
    x = x[:, :, 0, 0].double()
    return (x.mean(0) - data.mean).abs().max().item(), (torch.cov(x.T) - data.cov).abs().max().item()


SAMPLER_CASES = [
    ("ancestral", 1000, {}),
    ("ancestral", 100, {}),
    ("ddim", 50, {}),
    *[("dpm_solver++", 20, {"order": order, "skip": skip})
      for order in (2, 3) for skip in ("time_uniform", "logSNR", "time_quadratic")],
    ("dpm_solver++", 20, {"order": 2, "skip": "logSNR", "eta": 1.0}),
    ("dpm_solver++", 20, {"order": 1, "skip": "time_uniform", "eta": 1.0}),
    ("heun", 30, {}),
]
ANALYTIC_CASES = [(schedule, 1000, *case) for schedule in ("linear", "cosine") for case in SAMPLER_CASES] + [
    ("cosine", 4000, "dpm_solver++", 20, {"order": 3, "skip": "logSNR"}),
    ("linear", 4000, "ancestral", 100, {}),
    ("linear", 4000, "heun", 30, {}),
]


@pytest.mark.parametrize("schedule,T,sampler,steps,options", ANALYTIC_CASES,
                         ids=["-".join(map(str, [*c[:4], *c[4].values()])) for c in ANALYTIC_CASES])
def test_samplers_reproduce_gaussian_data_with_the_exact_network(schedule, T, sampler, steps, options):
    diffusion = GaussianDiffusion(T, schedule)
    mean_error, cov_error = sample_errors(diffusion, diffusion, sampler, steps, **options)
    assert mean_error < MEAN_TOL and cov_error < COV_TOL, (mean_error, cov_error)


def test_the_analytic_test_catches_a_wrong_schedule():
    """The reference code's defect (cosine, T = 1000 whatever the model) fails the same tolerance."""
    trained = GaussianDiffusion(2000, "linear")
    mean_error, cov_error = sample_errors(GaussianDiffusion(1000, "cosine"), trained, "dpm_solver++", 20)
    assert mean_error > MEAN_TOL or cov_error > COV_TOL


# --- schedules and the continuous-time view -------------------------------------------

def test_beta_schedules():
    linear = beta_schedule("linear", 4000)
    assert linear[0].item() == pytest.approx(1e-4 / 4) and linear[-1].item() == pytest.approx(0.02 / 4)
    assert beta_schedule("linear", 10).max() <= 0.999  # 1000/T scaling would exceed 1
    cosine = beta_schedule("cosine", 1000)
    assert cosine.max().item() == pytest.approx(0.999) and (torch.diff(cosine) >= 0).all()
    assert linear.dtype == torch.float64


@pytest.mark.parametrize("T", [9, 4001, 0])
def test_timesteps_out_of_range_are_refused(T):
    with pytest.raises(InsarMlError, match="between 10 and 4000"):
        GaussianDiffusion(T)


@pytest.mark.parametrize("kwargs", [{"schedule": "sigmoid"}, {"prediction": "score"}, {"variance": "learned"}])
def test_unknown_settings_are_refused(kwargs):
    with pytest.raises(InsarMlError, match="choose one of"):
        GaussianDiffusion(100, **kwargs)


def test_continuous_view_matches_the_tables_and_inverts():
    diffusion = GaussianDiffusion(1000, "cosine")
    steps = torch.arange(1000)
    alpha, sigma = diffusion.alpha_sigma(steps)
    assert torch.allclose(alpha ** 2, diffusion.alphas_cumprod, rtol=1e-12)
    assert torch.allclose(sigma ** 2 + alpha ** 2, torch.ones(1000, dtype=torch.float64))
    fractional = torch.tensor([0.0, 0.37, 12.5, 500.25, 998.9, 999.0], dtype=torch.float64)
    assert torch.allclose(diffusion.t_of_lambda(diffusion.log_snr(fractional)), fractional, atol=1e-7)
    assert (torch.diff(diffusion.log_snr(torch.linspace(0, 999, 5000))) < 0).all()


def test_model_time_is_scaled_once_and_never_truncated():
    diffusion = GaussianDiffusion(4000)
    assert torch.equal(diffusion.model_time(torch.tensor([0, 1, 3999])), torch.tensor([0.0, 0.25, 999.75]))
    assert diffusion.model_time(2.5).item() == pytest.approx(0.625)
    spaced = diffusion.respaced([0, 1999, 3999])
    assert torch.equal(spaced.model_time(torch.tensor([0, 1, 2])), torch.tensor([0.0, 499.75, 999.75]))
    assert torch.allclose(spaced.alphas_cumprod, diffusion.alphas_cumprod[[0, 1999, 3999]], rtol=1e-12)


# --- what the network receives from each sampler ---------------------------------------

def recorded_times(diffusion: GaussianDiffusion, sampler: str, steps: int, **options) -> torch.Tensor:
    oracle = Oracle(diffusion, GaussianData())
    SAMPLERS[sampler](diffusion, oracle, (2, 3, 1, 1), steps, torch.Generator().manual_seed(0),
                      clip_denoised=False, **options)
    assert all(t.dtype == torch.float32 and t.shape == (2,) and t[0] == t[1] for t in oracle.times)
    return torch.stack([t[0] for t in oracle.times]).double()


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_respaced_samplers_feed_original_times_scaled_once(sampler):
    diffusion = GaussianDiffusion(4000, "linear")
    times = recorded_times(diffusion, sampler, 10)
    expected = torch.tensor(timestep_respacing(4000, 10)[::-1], dtype=torch.float64) * 1000 / 4000
    assert torch.equal(times, expected)


@pytest.mark.parametrize("sampler,grid", [
    ("dpm_solver++", lambda d: dpm_time_grid(d, 7, "logSNR")[:-1]),
    ("heun", lambda d: karras_time_grid(d, 7)[torch.tensor([[i, i + 1] for i in range(7)]).flatten()]),
])
def test_ode_samplers_feed_fractional_times_scaled_once(sampler, grid):
    diffusion = GaussianDiffusion(4000, "cosine")
    options = {"skip": "logSNR"} if sampler == "dpm_solver++" else {}
    times = recorded_times(diffusion, sampler, 7, **options)
    assert torch.allclose(times, grid(diffusion) * 1000 / 4000, rtol=1e-6)
    assert times.max() < 1000 and ((times - times.round()).abs() > 1e-3).any()


def test_skip_types_give_different_grids_and_samples():
    diffusion = GaussianDiffusion(1000, "linear")
    grids = {skip: dpm_time_grid(diffusion, 10, skip) for skip in ("time_uniform", "logSNR", "time_quadratic")}
    for grid in grids.values():
        assert grid[0] == pytest.approx(999) and grid[-1] == pytest.approx(0, abs=1e-6)
        assert (torch.diff(grid) < 0).all()
    names = list(grids)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (grids[a] - grids[b]).abs().max() > 10, (a, b)
    lambdas = diffusion.log_snr(grids["logSNR"])
    assert torch.allclose(torch.diff(lambdas), torch.diff(lambdas)[:1].expand(10), rtol=1e-6)
    roots = torch.sqrt((grids["time_quadratic"] + 1) / 1000)
    assert torch.allclose(torch.diff(roots), torch.diff(roots)[:1].expand(10), rtol=1e-6)
    samples = [SAMPLERS["dpm_solver++"](diffusion, Oracle(diffusion, GaussianData()), (8, 3, 1, 1), 10,
                                        torch.Generator().manual_seed(0), skip=skip) for skip in names]
    assert not torch.equal(samples[0], samples[1]) and not torch.equal(samples[1], samples[2])


def test_timestep_respacing_keeps_both_ends_evenly():
    assert timestep_respacing(1000, 1000) == list(range(1000))
    spaced = timestep_respacing(4000, 7)
    assert spaced[0] == 0 and spaced[-1] == 3999 and len(set(spaced)) == 7
    assert max(torch.diff(torch.tensor(spaced))) - min(torch.diff(torch.tensor(spaced))) <= 1
    for steps in (1, 4001):
        with pytest.raises(InsarMlError, match="sampling steps"):
            timestep_respacing(4000, steps)


def test_unknown_skip_type_is_refused():
    with pytest.raises(InsarMlError, match="skip type"):
        dpm_time_grid(GaussianDiffusion(100), 10, "time_cubic")


# --- seeds and cancel ------------------------------------------------------------------

SEED_CASES = [("ancestral", 20, {}), ("ddim", 10, {"eta": 1.0}), ("dpm_solver++", 10, {"order": 3}), ("heun", 5, {})]


@pytest.mark.parametrize("sampler,steps,options", SEED_CASES, ids=[c[0] for c in SEED_CASES])
def test_same_seed_gives_identical_samples(sampler, steps, options):
    diffusion = GaussianDiffusion(200, "cosine")

    def draw(seed: int) -> torch.Tensor:
        return SAMPLERS[sampler](diffusion, Oracle(diffusion, GaussianData()), (16, 3, 1, 1), steps,
                                 torch.Generator().manual_seed(seed), **options)

    assert torch.equal(draw(5), draw(5))
    assert not torch.allclose(draw(5), draw(6))


@pytest.mark.parametrize("sampler,calls_per_step", [("ancestral", 1), ("ddim", 1), ("dpm_solver++", 1), ("heun", 2)])
def test_cancel_is_checked_every_step(sampler, calls_per_step):
    diffusion = GaussianDiffusion(100)
    oracle = Oracle(diffusion, GaussianData())
    with pytest.raises(Cancelled):
        SAMPLERS[sampler](diffusion, oracle, (4, 3, 1, 1), 50, torch.Generator().manual_seed(0),
                          progress=CancelAfter(3))
    assert len(oracle.times) == 3 * calls_per_step


# --- variance, losses and timestep sampling ---------------------------------------------

def test_learned_variance_interpolates_log_beta_and_log_posterior_variance():
    diffusion = GaussianDiffusion(100, "cosine", variance="learned_range")
    betas = beta_schedule("cosine", 100)
    alpha_bar = torch.cumprod(1 - betas, 0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    posterior = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
    posterior_clipped = torch.cat([posterior[1:2], posterior[1:]])
    t = torch.tensor([0, 1, 50, 99])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)
    v = torch.rand(4, 3, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    v[:, 0], v[:, 1] = -1.0, 1.0
    step = diffusion.p_mean_variance(torch.cat([torch.zeros_like(x), v], 1), x, t, clip_denoised=False)
    frac = (v + 1) / 2
    per_step = (-1, 1, 1, 1)
    expected = frac * torch.log(betas[t]).view(per_step) + (1 - frac) * torch.log(posterior_clipped[t]).view(per_step)
    assert torch.allclose(step.log_variance, expected, rtol=1e-12)
    assert torch.allclose(step.variance[1:, 0], posterior[t[1:]].view(-1, 1, 1).expand(3, 2, 2), rtol=1e-10)
    assert torch.allclose(step.variance[:, 1], betas[t].view(-1, 1, 1).expand(4, 2, 2), rtol=1e-10)
    with pytest.raises(InsarMlError, match="6 channels"):
        diffusion.p_mean_variance(x, x, t, clip_denoised=False)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_conversions_round_trip_and_exact_targets_give_zero_mse(prediction):
    diffusion = GaussianDiffusion(1000, "linear", prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 2, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    alpha = diffusion.sqrt_alphas_cumprod[t].view(-1, 1, 1, 1)
    sigma = diffusion.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = alpha * x0 + sigma * noise
    target = {"eps": noise, "x0": x0, "v": alpha * noise - sigma * x0}[prediction]
    assert torch.allclose(target_from_x0_eps(prediction, x0, noise, alpha, sigma), target)
    back_x0, back_eps = x0_eps_from_output(prediction, target, x_t, alpha, sigma)
    assert torch.allclose(back_x0, x0, atol=1e-8) and torch.allclose(back_eps, noise, atol=1e-8)
    losses = diffusion.training_losses(lambda x, t_model: target, x0, t, noise=noise)
    assert losses["mse"].abs().max() < 1e-20


def test_training_losses_fixed_variance_is_plain_mse():
    diffusion = GaussianDiffusion(1000, "cosine", variance="fixed_large")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 2, 4, 4, generator=g) * 2 - 1
    t = torch.tensor([0, 1, 100, 500, 999])
    losses = diffusion.training_losses(lambda x, t_model: 0.5 * x, x0, t, noise=torch.randn(x0.shape, generator=g))
    assert all(torch.isfinite(v).all() and v.shape == (5,) for v in losses.values())
    assert torch.equal(losses["loss"], losses["mse"]) and (losses["vb"] >= 0).all()


def test_training_losses_learned_variance_is_hybrid_with_stop_gradient():
    T = 1000
    diffusion = GaussianDiffusion(T, "linear", variance="learned_range")
    scale = torch.tensor(0.5, requires_grad=True)
    var_value = torch.tensor(0.2, requires_grad=True)

    def model(x: torch.Tensor, t_model: torch.Tensor) -> torch.Tensor:
        return torch.cat([scale * x, var_value * torch.ones_like(x)], dim=1)

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 2, 4, 4, generator=g) * 2 - 1
    losses = diffusion.training_losses(model, x0, torch.tensor([0, 1, 100, 500, 999]),
                                       noise=torch.randn(x0.shape, generator=g))
    assert all(torch.isfinite(v).all() for v in losses.values()) and (losses["vb"] > 0).all()
    assert torch.allclose(losses["loss"], losses["mse"] + 1e-3 * T * losses["vb"])
    losses["vb"].sum().backward(retain_graph=True)
    assert (scale.grad is None or scale.grad == 0) and var_value.grad is not None and var_value.grad != 0
    scale.grad = None
    losses["mse"].sum().backward()
    assert scale.grad is not None and scale.grad != 0


def test_loss_aware_sampler_is_unbiased_and_reduces_variance():
    T = 20
    sampler = LossSecondMomentResampler(T)
    g = torch.Generator().manual_seed(0)
    table = torch.exp(torch.linspace(0, 5, T, dtype=torch.float64))  # losses spanning two orders of magnitude
    for round_ in range(10):
        assert torch.allclose(sampler.probabilities(), torch.full((T,), 1 / T, dtype=torch.float64))
        sampler.update(torch.arange(T), table)
    p = sampler.probabilities()
    assert torch.allclose(p, table / table.sum() * 0.999 + 0.001 / T)
    t, weights = sampler.sample(200_000, g)
    weighted = weights.double() * table[t]
    assert weighted.mean().item() == pytest.approx(table.mean().item(), rel=0.01)
    t_uniform, uniform_weights = UniformSampler(T).sample(200_000, g)
    assert torch.equal(uniform_weights, torch.ones(200_000))
    assert weighted.var() < 0.1 * table[t_uniform].var()


def test_loss_aware_sampler_keeps_the_last_ten_losses():
    sampler = LossSecondMomentResampler(10)
    for value in range(12):
        sampler.update(torch.tensor([3]), torch.tensor([float(value)]))
    assert sampler.history[3].tolist() == [float(v) for v in range(2, 12)] and not sampler.warmed_up()


# --- guidance ---------------------------------------------------------------------------

def test_guidance_mixes_prediction_channels_and_keeps_conditional_variance():
    def model(x: torch.Tensor, t_model: torch.Tensor, y: torch.Tensor, low_res: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == t_model.shape[0] == y.shape[0] == low_res.shape[0] == 8
        label = y.double().view(-1, 1, 1, 1) * torch.ones_like(x)
        return torch.cat([label + low_res, 10 * label], dim=1)

    guided = guided_model(model, scale=3.0, null_label=0)
    x = torch.zeros(4, 2, 3, 3, dtype=torch.float64)
    out = guided(x, torch.full((4,), 500.0), y=torch.full((4,), 2), low_res=torch.ones(4, 2, 3, 3, dtype=torch.float64))
    assert out.shape == (4, 4, 3, 3)
    assert torch.allclose(out[:, :2], torch.full_like(x, 1 + 3.0 * 2))  # uncond 1, cond 3: 1 + 3·(3 − 1)
    assert torch.allclose(out[:, 2:], torch.full_like(x, 20.0))
