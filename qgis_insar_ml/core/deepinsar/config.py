"""The architecture of a DeepInSAR network as plain data, without torch.

A model card holds this configuration; reading it (and running a cached OpenVINO
conversion of the network) must not import torch, which costs about a second and 190 MB.
The network itself is in :mod:`.model`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
    # (frequency window, averaging window) of each fringe-adaptive average the network reads
    # beside its input (see .fringes); empty in models of version 0.4 and older
    fringe_windows: tuple[tuple[int, int], ...] = ()

    @property
    def layers(self) -> int:
        return len(self.dilations)

    @property
    def network_inputs(self) -> int:
        """Channels the network reads: the observation and three per fringe-adaptive average."""
        return self.in_channels + 3 * len(self.fringe_windows)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        d["fringe_windows"] = [list(w) for w in self.fringe_windows]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "DeepInsarConfig":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "dilations" in values:
            values["dilations"] = tuple(int(d) for d in values["dilations"])
        if "fringe_windows" in values:
            values["fringe_windows"] = tuple((int(f), int(a)) for f, a in values["fringe_windows"])
        config = cls(**values)
        if config.upsample not in UPSAMPLING:
            raise ValueError(f"unknown upsampling {config.upsample!r}")
        if any(f < 1 or a < 1 or f % 2 == 0 or a % 2 == 0 for f, a in config.fringe_windows):
            raise ValueError(f"fringe windows must be odd sizes, got {config.fringe_windows}")
        return config


UPSAMPLING = ("smooth", "shuffle")


# The paper's extractor at full resolution (its exact widths are not published; these are
# DenseNet-BC defaults at the paper's scale). ~0.07 Mpx/s on 2 CPU cores.
PAPER_CONFIG = DeepInsarConfig(stem_channels=64, downsample=1, growth=32, bottleneck=4,
                               dilations=(1,) * 10, head_channels=64)
DEFAULT_CONFIG = DeepInsarConfig(stem_channels=8, downsample=4, growth=16, bottleneck=2,
                                 dilations=(1, 2, 4, 1, 2, 4) + (1,) * 8, head_channels=16, upsample="smooth",
                                 refine_layers=2, fringe_windows=((9, 3), (9, 5)))


def fringe_reach(windows: tuple[tuple[int, int], ...]) -> int:
    """How far (px) fringe-adaptive averages reach: lag 1, the frequency window and the
    averaging window, whose rows use the frequencies of their own centres."""
    return max((f // 2 + 1 + a // 2 for f, a in windows), default=0)


def receptive_field(config: DeepInsarConfig) -> int:
    """Width in full-resolution pixels of the input window one output pixel depends on."""
    s = config.downsample
    dense = sum(2 * d * s for d in config.dilations)
    if config.upsample == "smooth":
        # unshuffle cell (s-1); dense 3×3s at stride s; bilinear interpolation between two
        # coarse pixels (+s); refinement and the output conv at full resolution (+2 each).
        # Beside it the stem's path: the fringe-adaptive averages, the stem, the refinement.
        coarse = 1 + (s - 1) + dense + s + 2 * (config.refine_layers + 1)
        return max(coarse, 1 + 2 * (fringe_reach(config.fringe_windows) + config.refine_layers + 2))
    # stem 3×3 (+2); unshuffle/shuffle groups s pixels (+2(s-1) across both); dense 3×3s at
    # stride s; fuse; two 3×3 convs in each head (+4).
    return 1 + 2 + 2 * (s - 1) + dense + 4
