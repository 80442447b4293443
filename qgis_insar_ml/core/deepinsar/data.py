"""Training and validation patches: simulated or teacher rasters.

Simulated patches mix the paper's simulator (its 18 configurations) with the realistic
simulator (circular Gaussian speckle on a textured reflectivity, coherence maps with
water and layover, multilooking, real-world phase signals): the paper's alone taught the
network that bright pixels are coherent, which real speckle contradicts.

Seeds: a scene seed drawn for training lies in [0, 10^9); the fixed validation set uses
10^9 + k and the benchmark's test set 2·10^9 + k, so the three never share a scene.
Every batch is a pure function of (seed, step, rank): a resumed or distributed run draws
exactly the batches it would have drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InsarMlError
from ..realistic_simulator import random_training_scene
from ..simulator import CONFIGURATIONS, simulate_pair
from .observation import make_observation

TRAIN_SEED_RANGE = 10**9
VALIDATION_SEED_BASE = 10**9
TEST_SEED_BASE = 2 * 10**9


@dataclass
class Batch:
    observation: np.ndarray  # (B, C, H, W) float32
    clean: np.ndarray        # (B, 2, H, W) float32: [cos, sin] of the reference phase
    coherence: np.ndarray    # (B, 1, H, W) float32 target in [0, 1]
    weight: np.ndarray       # (B, 1, H, W) float32: 0 where the pixel must not count


REALISTIC = len(CONFIGURATIONS)  # the seed-stream index of realistic scenes, after the 18 configurations


def _clean_phasor(phase: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(phase), np.sin(phase)]).astype(np.float32)


def simulated_sample(config_index: int, seed: int, size: int, in_channels: int) -> tuple[np.ndarray, ...]:
    """One patch of the paper's simulator: (observation, clean [cos, sin], true coherence, weight)."""
    noise, fringe, strips = CONFIGURATIONS[config_index]
    pair = simulate_pair(size, size, noise, fringe, strips, seed)
    amplitudes = (np.abs(pair.reference), np.abs(pair.secondary)) if in_channels == 4 else None
    obs = make_observation(np.angle(pair.interferogram), amplitudes)
    return obs, _clean_phasor(pair.clean_phase), pair.coherence[None], np.ones_like(pair.coherence[None])


def realistic_sample(seed: int, size: int, in_channels: int) -> tuple[np.ndarray, ...]:
    """One patch of the realistic simulator; its no-data holes are zero and weigh nothing,
    as at inference."""
    scene = random_training_scene(size, seed)
    amplitudes = ((np.sqrt(scene.power_reference), np.sqrt(scene.power_secondary))
                  if in_channels == 4 else None)
    obs = make_observation(np.angle(scene.interferogram), amplitudes)
    obs[:, ~scene.valid] = 0.0
    return obs, _clean_phasor(scene.clean_phase), scene.coherence[None], scene.valid[None].astype(np.float32)


def _stack(samples: list[tuple[np.ndarray, ...]]) -> Batch:
    return Batch(*(np.stack(parts) for parts in zip(*samples)))


def configuration_index(name: str) -> int:
    """Index in CONFIGURATIONS of a name like ``S1-F2-S`` (stripes) or ``S3-F1-NS``."""
    names = [f"{n}-{f}-{'S' if s else 'NS'}" for n, f, s in CONFIGURATIONS]
    if name not in names:
        raise InsarMlError(f"Unknown simulator configuration {name!r}: use names like {names[0]} or {names[-1]}.")
    return names.index(name)


class SimulatedPatches:
    """Patches from the simulators: a share ``realistic`` of realistic scenes, the rest
    cycling through a mix of the paper's 18 configurations.

    ``mix`` lists configuration indices to cycle through (default: all 18 once); listing
    one several times over-represents it, e.g. to fine-tune on the scenes a model finds
    hardest without forgetting the others.
    """

    def __init__(self, seed: int, patch_size: int = 128, in_channels: int = 4, mix: list[int] | None = None,
                 realistic: float = 0.0):
        if not 0.0 <= realistic <= 1.0:
            raise InsarMlError(f"The share of realistic scenes must lie in [0, 1], got {realistic}.")
        self.seed, self.patch_size, self.in_channels, self.realistic = seed, patch_size, in_channels, realistic
        self.mix = list(mix) if mix else list(range(len(CONFIGURATIONS)))

    def _scene_seed(self, stream: int, step: int, rank: int, i: int) -> int:
        """Each configuration, and the realistic simulator, has its own seed stream."""
        return int(np.random.default_rng([self.seed, stream, step, rank, i]).integers(TRAIN_SEED_RANGE))

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Batch:
        rng = np.random.default_rng([self.seed, step, rank])
        first = int(rng.integers(len(self.mix)))
        realistic = rng.random(batch_size) < self.realistic
        samples = []
        for i in range(batch_size):
            if realistic[i]:
                samples.append(realistic_sample(self._scene_seed(REALISTIC, step, rank, i), self.patch_size,
                                                self.in_channels))
                continue
            config = self.mix[(first + i) % len(self.mix)]
            samples.append(simulated_sample(config, self._scene_seed(config, step, rank, i), self.patch_size,
                                            self.in_channels))
        return _stack(samples)

    def validation(self, per_config: int = 2) -> Batch:
        """The fixed validation set: ``per_config`` patches of every configuration, and as
        many realistic scenes as that makes paper patches when realistic ones are trained on."""
        samples = [simulated_sample(c, VALIDATION_SEED_BASE + 1000 * c + k, self.patch_size, self.in_channels)
                   for c in range(len(CONFIGURATIONS)) for k in range(per_config)]
        if self.realistic > 0:
            samples += [realistic_sample(VALIDATION_SEED_BASE + 1000 * REALISTIC + k, self.patch_size,
                                         self.in_channels) for k in range(len(samples))]
        return _stack(samples)
