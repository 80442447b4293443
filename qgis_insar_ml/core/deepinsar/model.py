"""The DeepInSAR network (Sun et al.): a shared dense feature extractor and two heads.

Input ``o = [cos φ, sin φ, Â1, Â2]`` (or ``[cos φ, sin φ]`` for the phase-only variant).
The feature extractor is the paper's: pre-activation (BN → ReLU → conv), bottlenecks
(1×1 before every 3×3) and dense connectivity. Three design choices make it fast enough
for a CPU and clean on real data:

- ``downsample``: the dense block runs on a pixel-unshuffled grid (no information is
  lost: s×s pixels become s² channels); ``downsample = 1`` is the paper's
  full-resolution extractor.
- ``dilations``: 3×3 convolutions with growing dilation widen the receptive field
  without adding layers, which low-coherence, low-fringe scenes need.
- ``fringe_windows``: fringe-adaptive averages of the input phasor (:mod:`.fringes`), made
  with the observation, that the full-resolution stem reads beside it, for dense fringes at
  high coherence (the dense block reads the observation alone: on its 4× grid they cost a
  third of the network's time and add little).
- ``upsample``: how the coarse features come back to full resolution.
  ``smooth`` (the shipped models): the dense block reads the unshuffled *input*, its
  features are upsampled bilinearly (anti-aliased, the same operator at every pixel) and
  a full-resolution refinement (plain conv → ReLU, foldable for fast inference) turns
  them and a full-resolution stem into the outputs, so a smooth input comes out smooth.
  ``shuffle`` (models of version 0.x): the block reads the unshuffled stem and its
  features come back through ``pixel_shuffle``; each of the s×s sub-pixels then has its
  own weights, which leaves an s-pixel grid on real, smooth fringes.

The phase head predicts the residual ``y − x`` of the real and imaginary parts (eq. 9);
the clean phase is ``atan2`` of ``y − residual`` (eq. 3). The coherence head returns
logits for a sigmoid / cross-entropy (eq. 11).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .config import (  # noqa: F401 (re-exported: the architecture belongs with the network)
    DEFAULT_CONFIG, PAPER_CONFIG, UPSAMPLING, DeepInsarConfig, receptive_field)


def _preact(channels_in: int, channels_out: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels_in), nn.ReLU(inplace=True),
                         nn.Conv2d(channels_in, channels_out, kernel, padding=dilation * (kernel // 2),
                                   dilation=dilation, bias=False))


class _DenseLayer(nn.Module):
    def __init__(self, channels_in: int, growth: int, bottleneck: int, dilation: int):
        super().__init__()
        self.reduce = _preact(channels_in, bottleneck * growth, 1)
        self.conv = _preact(bottleneck * growth, growth, 3, dilation)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(self.reduce(features))


class DeepInsarNet(nn.Module):
    """Returns ``(residual, coherence_logits)``; see :func:`restore` for the clean phase.

    Its input is :func:`.fringes.network_input` of the observation (``config.network_inputs``
    channels).
    """

    def __init__(self, config: DeepInsarConfig = DEFAULT_CONFIG):
        super().__init__()
        self.config = config
        s, stem = config.downsample, config.stem_channels
        smooth = config.upsample == "smooth"
        self.stem = nn.Conv2d(config.network_inputs, stem, 3, padding=1, bias=smooth)
        channels = (config.in_channels if smooth else stem) * s * s
        entry = channels
        self.layers = nn.ModuleList()
        for dilation in config.dilations:
            self.layers.append(_DenseLayer(channels, config.growth, config.bottleneck, dilation))
            channels += config.growth
        if smooth:
            self.transition = _preact(channels, config.head_channels, 1)
            width = stem + config.head_channels
            refine: list[nn.Module] = []
            for _ in range(config.refine_layers):
                refine += [nn.Conv2d(width, config.head_channels, 3, padding=1), nn.ReLU(inplace=True)]
                width = config.head_channels
            self.refine = nn.Sequential(*refine)
            self.output = nn.Conv2d(width, 3, 3, padding=1)  # residual real, imaginary; coherence logit
            return
        self.transition = _preact(channels, entry, 1)
        fused = 2 * stem
        self.phase_head = nn.Sequential(_preact(fused, config.head_channels, 3),
                                        _preact(config.head_channels, 2, 3))
        self.coherence_head = nn.Sequential(_preact(fused, config.head_channels, 3),
                                            _preact(config.head_channels, 1, 3))

    def _dense(self, features: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            features = torch.cat([features, layer(features)], dim=1)
        return self.transition(features)

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.config.downsample
        height, width = observation.shape[-2:]
        pad_h, pad_w = (-height) % s, (-width) % s
        if pad_h or pad_w:
            observation = F.pad(observation, (0, pad_w, 0, pad_h), mode="replicate")
        if self.config.upsample == "smooth":
            full = F.relu(self.stem(observation))
            observed = observation[:, :self.config.in_channels]  # the fringe-adaptive averages feed the stem only
            coarse = self._dense(F.pixel_unshuffle(observed, s) if s > 1 else observed)
            if s > 1:
                coarse = F.interpolate(coarse, scale_factor=s, mode="bilinear", align_corners=False)
            out = self.output(self.refine(torch.cat([full, coarse], dim=1)))[..., :height, :width]
            return out[:, :2], out[:, 2:]
        full = self.stem(observation)
        low = self._dense(F.pixel_unshuffle(full, s) if s > 1 else full)
        fused = torch.cat([full, F.pixel_shuffle(low, s) if s > 1 else low], dim=1)
        residual = self.phase_head(fused)[..., :height, :width]
        logits = self.coherence_head(fused)[..., :height, :width]
        return residual, logits


def restore(observation: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean phase, restored [real, imag]) from the noisy observation and the residual."""
    restored = observation[:, :2] - residual
    return torch.atan2(restored[:, 1], restored[:, 0]), restored
