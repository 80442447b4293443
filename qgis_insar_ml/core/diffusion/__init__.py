"""Probabilistic diffusion models (PDMs) for radar and InSAR scenes.

Tuel et al.'s PDMs follow Nichol & Dhariwal's improved DDPM: a β schedule of 1000–4000
steps, an ε-predicting network that may also learn its variance, trained on the hybrid
loss with loss-aware timestep sampling. :mod:`.gaussian_diffusion` owns that maths;
:mod:`.sampling` holds the samplers (ancestral, DDIM, DPM-Solver++, Heun), written so
that none repeats the reference code's defects: every sampler honours the model's own
schedule and length, DPM-Solver++ honours its skip type, the network always sees the
continuous time ``t·1000/T``, and class labels are drawn once per batch by the caller.
Nothing here imports ``qgis``.
"""
