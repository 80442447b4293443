"""Sampler and time-grid names, importable without torch (the Processing layer lists them)."""

SAMPLER_NAMES = ("ancestral", "ddim", "dpm_solver++", "heun")
SKIP_TYPES = ("time_uniform", "logSNR", "time_quadratic")
