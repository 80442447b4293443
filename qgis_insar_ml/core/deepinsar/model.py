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

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DeepInsarConfig:
    """Architecture of one DeepInSAR network: everything needed to rebuild it."""

    in_channels: int = 4                 # 4: [cos, sin, Â1, Â2]; 2: phase only
    stem_channels: int = 16              # full-resolution stem width
    downsample: int = 4                  # pixel-unshuffle factor of the dense block (1 = paper)
    growth: int = 24                     # channels each dense layer adds
    bottleneck: int = 2                  # 1×1 bottleneck width = bottleneck × growth
    dilations: tuple[int, ...] = (1, 2, 4, 1, 2, 4, 1, 2)  # one per dense layer
    head_channels: int = 16
    upsample: str = "shuffle"            # "smooth" (bilinear + full-resolution refinement) or "shuffle"
    refine_layers: int = 0               # smooth: full-resolution 3×3 conv → ReLU layers before the heads

    @property
    def layers(self) -> int:
        return len(self.dilations)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "DeepInsarConfig":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "dilations" in values:
            values["dilations"] = tuple(int(d) for d in values["dilations"])
        config = cls(**values)
        if config.upsample not in UPSAMPLING:
            raise ValueError(f"unknown upsampling {config.upsample!r}")
        return config


UPSAMPLING = ("smooth", "shuffle")


# The paper's extractor at full resolution (its exact widths are not published; these are
# DenseNet-BC defaults at the paper's scale). ~0.07 Mpx/s on 2 CPU cores.
PAPER_CONFIG = DeepInsarConfig(stem_channels=64, downsample=1, growth=32, bottleneck=4,
                               dilations=(1,) * 10, head_channels=64)
DEFAULT_CONFIG = DeepInsarConfig(stem_channels=8, downsample=4, growth=16, bottleneck=2,
                                 dilations=(1, 2, 4, 1, 2, 4), head_channels=16, upsample="smooth",
                                 refine_layers=2)


def receptive_field(config: DeepInsarConfig) -> int:
    """Width in full-resolution pixels of the input window one output pixel depends on."""
    s = config.downsample
    dense = sum(2 * d * s for d in config.dilations)
    if config.upsample == "smooth":
        # unshuffle cell (s-1); dense 3×3s at stride s; bilinear interpolation between two
        # coarse pixels (+s); refinement and the output conv at full resolution (+2 each).
        return 1 + (s - 1) + dense + s + 2 * (config.refine_layers + 1)
    # stem 3×3 (+2); unshuffle/shuffle groups s pixels (+2(s-1) across both); dense 3×3s at
    # stride s; fuse; two 3×3 convs in each head (+4).
    return 1 + 2 + 2 * (s - 1) + dense + 4


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
    """Returns ``(residual, coherence_logits)``; see :func:`restore` for the clean phase."""

    def __init__(self, config: DeepInsarConfig = DEFAULT_CONFIG):
        super().__init__()
        self.config = config
        s, stem = config.downsample, config.stem_channels
        smooth = config.upsample == "smooth"
        self.stem = nn.Conv2d(config.in_channels, stem, 3, padding=1, bias=smooth)
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
            coarse = self._dense(F.pixel_unshuffle(observation, s) if s > 1 else observation)
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
