"""The ε-predicting U-Net of improved DDPM (Nichol & Dhariwal), as used by Tuel et al.

The module tree mirrors ``improved_diffusion/unet.py`` of openai/improved-diffusion (and
of the PDM paper's fork of it) so closely that their ``state_dict`` keys and tensor shapes
are identical: a checkpoint trained with the reference code loads here with
``strict=True`` and gives the same output.  The layout is

* ``time_embed``: Linear(C, 4C), SiLU, Linear(4C, 4C) on the sinusoidal embedding of the
  (float, never truncated) timestep;
* ``label_emb``: Embedding(num_classes [+1 null label], 4C) when class-conditional;
* ``input_blocks``: a 3×3 conv, then per level ``num_res_blocks`` × (ResBlock
  [+ AttentionBlock]) and a Downsample between levels;
* ``middle_block``: ResBlock, AttentionBlock, ResBlock;
* ``output_blocks``: per level ``num_res_blocks + 1`` × (ResBlock on the concatenated skip
  [+ AttentionBlock] [+ Upsample]);
* ``out``: GroupNorm, SiLU, zero-initialised 3×3 conv.

Two additions go beyond the reference and change nothing for reference configurations:

* ``null_class``: ``label_emb`` gets one extra row, index ``num_classes``, the "no label"
  token that classifier-free guidance needs;
* ``low_res_channels``: super-resolution conditioning like the reference ``SuperResModel``:
  the low-resolution image is bilinearly upsampled to the size of ``x`` and concatenated
  after it before the first convolution.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_IMAGE_SIZES = (32, 64, 128, 256)
NORM_GROUPS = 32


def reference_channel_mult(image_size: int) -> tuple[int, ...]:
    """The channel multipliers improved-diffusion's ``script_util.create_model`` picks for a size."""
    table = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4), 32: (1, 2, 2, 2)}
    if image_size not in table:
        raise ValueError(f"unsupported image size {image_size}: use one of {', '.join(map(str, sorted(table)))} "
                         "or give channel_mult explicitly")
    return table[image_size]


def attention_downsample_rates(image_size: int, resolutions: str | int | Sequence[int]) -> tuple[int, ...]:
    """Convert the reference ``attention_resolutions`` (feature-map sizes, e.g. "16,8") to downsample rates."""
    if isinstance(resolutions, str):
        items = [r.strip() for r in resolutions.split(",") if r.strip()]
    elif isinstance(resolutions, int):
        items = [resolutions]
    else:
        items = list(resolutions)
    return tuple(image_size // int(r) for r in items)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos(t·f_0..f_{h-1}), sin(t·f_0..f_{h-1})], f_i = max_period^(−i/h), h = dim // 2.

    ``timesteps`` may be fractional; they are used as given (float32), never rounded.
    """
    half = dim // 2
    # same operation order as the reference, so the embedding is bit-identical
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    freqs = freqs.to(device=timesteps.device)
    args = timesteps.reshape(-1, 1).float() * freqs.reshape(1, -1)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


@dataclass
class UNetConfig:
    image_size: int = 64
    in_channels: int = 1
    model_channels: int = 128
    out_channels: int = 2
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 8)     # downsample rates (ds), not feature sizes
    dropout: float = 0.0
    channel_mult: tuple[int, ...] | None = None         # None: the reference table for image_size
    num_classes: int | None = None                      # None: unconditional
    use_scale_shift_norm: bool = True
    num_heads: int = 4
    num_heads_upsample: int = -1                        # -1: same as num_heads
    conv_resample: bool = True
    low_res_channels: int = 0                           # > 0: super-resolution model
    null_class: bool = False                            # extra label row num_classes = "no label"
    use_checkpoint: bool = False                        # gradient checkpointing while training

    def __post_init__(self) -> None:
        self.attention_resolutions = tuple(int(a) for a in self.attention_resolutions)
        if self.channel_mult is None:
            self.channel_mult = reference_channel_mult(int(self.image_size))
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if self.num_classes is not None:
            self.num_classes = int(self.num_classes)
        self.validate()

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.in_channels >= 1 and self.out_channels >= 1, "in_channels and out_channels must be ≥ 1")
        need(self.num_res_blocks >= 1, "num_res_blocks must be ≥ 1")
        need(len(self.channel_mult) >= 1 and all(m >= 1 for m in self.channel_mult),
             "channel_mult must be a non-empty list of positive integers")
        for mult in self.channel_mult:
            need((self.model_channels * mult) % NORM_GROUPS == 0,
                 f"model_channels × channel multiplier ({self.model_channels}×{mult}) must be a multiple of "
                 f"{NORM_GROUPS} (group normalisation)")
        need(self.channel_mult[0] == 1, "channel_mult must start with 1 (as in improved-diffusion)")
        levels = len(self.channel_mult) - 1
        need(self.image_size % (2 ** levels) == 0,
             f"image_size {self.image_size} is not divisible by 2^{levels} (one halving per extra level)")
        heads = self.num_heads_upsample if self.num_heads_upsample != -1 else self.num_heads
        need(self.num_heads >= 1 and heads >= 1, "num_heads must be ≥ 1")
        for mult in self.channel_mult:
            ch = self.model_channels * mult
            need(ch % self.num_heads == 0 and ch % heads == 0,
                 f"{ch} channels cannot be split into {self.num_heads}/{heads} attention heads")
        need(self.num_classes is None or self.num_classes >= 1, "num_classes must be ≥ 1 or None")
        need(not self.null_class or self.num_classes is not None, "null_class needs a class-conditional model")
        need(self.low_res_channels >= 0, "low_res_channels must be ≥ 0")
        need(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")

    @property
    def heads_upsample(self) -> int:
        return self.num_heads if self.num_heads_upsample == -1 else self.num_heads_upsample

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["attention_resolutions"] = list(self.attention_resolutions)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown U-Net settings: {', '.join(unknown)}")
        return cls(**d)


# --------------------------------------------------------------------------- layers


class GroupNorm32(nn.GroupNorm):
    """Group normalisation computed in float32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class SiLU(nn.Module):
    """x·σ(x), written out as the reference does so results match it bit for bit (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _norm(channels: int) -> GroupNorm32:
    return GroupNorm32(NORM_GROUPS, channels)


def _zeroed(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class EmbeddedBlock(nn.Module):
    """Marker: ``forward(x, emb)`` takes the time (and label) embedding."""


class EmbedSequential(nn.Sequential):
    """Sequential container that hands the embedding to the layers that take it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, EmbeddedBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour ×2 then (optionally) a 3×3 conv, key ``conv``."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """Stride-2 3×3 conv (key ``op``), or 2×2 average pooling."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _maybe_checkpoint(module: nn.Module, fn, *args):
    if module.use_checkpoint and module.training and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


class ResBlock(EmbeddedBlock):
    """Residual block conditioned on the embedding (additively or by scale/shift of the second norm)."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 use_scale_shift_norm: bool = False, use_checkpoint: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_checkpoint = use_checkpoint
        self.in_layers = nn.Sequential(_norm(channels), SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(
            SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            _norm(out_channels), SiLU(), nn.Dropout(p=dropout),
            _zeroed(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return _maybe_checkpoint(self, self._forward, x, emb)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            for layer in self.out_layers[1:]:
                h = layer(h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class QKVAttention(nn.Module):
    """Legacy improved-diffusion attention: rows are (q, k, v) within each head's slice.

    ``qkv`` is [N·heads, 3·d, T]; q, k, v are its three consecutive d-row chunks, and both
    q and k are scaled by d^(-1/4) before the product (the reference's fp16-friendly form).
    """

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        d = qkv.shape[1] // 3
        q, k, v = torch.split(qkv, d, dim=1)
        scale = d ** -0.25
        w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        return torch.einsum("bts,bcs->bct", w, v)


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions: keys ``norm``, ``qkv`` (1×1 conv1d), ``proj_out``."""

    def __init__(self, channels: int, num_heads: int = 1, use_checkpoint: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.use_checkpoint = use_checkpoint
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.attention = QKVAttention()
        self.proj_out = _zeroed(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _maybe_checkpoint(self, self._forward, x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))
        h = self.attention(qkv.reshape(b * self.num_heads, -1, qkv.shape[-1]))
        h = self.proj_out(h.reshape(b, -1, h.shape[-1]))
        return (flat + h).reshape(b, c, *spatial)


# --------------------------------------------------------------------------- model


class UNetModel(nn.Module):
    """improved-diffusion's U-Net; ``forward(x, timesteps, y=None, low_res=None)``."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        mc = c.model_channels
        emb_dim = 4 * mc
        self.in_channels = c.in_channels
        self.out_channels = c.out_channels
        self.model_channels = mc
        self.num_classes = c.num_classes

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), SiLU(), nn.Linear(emb_dim, emb_dim))
        if c.num_classes is not None:
            self.label_emb = nn.Embedding(c.num_classes + (1 if c.null_class else 0), emb_dim)

        def res(ch_in: int, ch_out: int | None = None) -> ResBlock:
            return ResBlock(ch_in, emb_dim, c.dropout, ch_out, c.use_scale_shift_norm, c.use_checkpoint)

        def attn(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads, c.use_checkpoint)

        first = nn.Conv2d(c.in_channels + c.low_res_channels, mc, 3, padding=1)
        self.input_blocks = nn.ModuleList([EmbedSequential(first)])
        skip_channels = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in c.attention_resolutions:
                    layers.append(attn(ch, c.num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(EmbedSequential(Downsample(ch, c.conv_resample)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(res(ch), attn(ch, c.num_heads), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), mult * mc)]
                ch = mult * mc
                if ds in c.attention_resolutions:
                    layers.append(attn(ch, c.heads_upsample))
                if level and i == c.num_res_blocks:
                    layers.append(Upsample(ch, c.conv_resample))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(_norm(ch), SiLU(), _zeroed(nn.Conv2d(ch, c.out_channels, 3, padding=1)))

    @property
    def null_label(self) -> int | None:
        """The label index meaning "no class" (classifier-free guidance), or None."""
        return self.config.num_classes if self.config.null_class else None

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | float, y: torch.Tensor | None = None,
                low_res: torch.Tensor | None = None) -> torch.Tensor:
        """ε (and variance values when ``out_channels = 2·in_channels``) for ``x`` at model time ``timesteps``.

        ``timesteps``: a scalar or one value per sample, already in the network's time scale
        (the sampler's ``t·1000/T``); fractional values are used as they are.
        ``y``: int labels [N] for class-conditional models; with ``null_class`` it may be
        omitted (all null) and may contain ``null_label``.
        ``low_res``: [N, low_res_channels, h, w] for super-resolution models.
        """
        c = self.config
        n = x.shape[0]
        if x.dim() != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"expected x of shape [N, {c.in_channels}, H, W], got {tuple(x.shape)}")
        t = torch.as_tensor(timesteps, device=x.device)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"expected {n} timesteps, got shape {tuple(t.shape)}")
        emb = self.time_embed(timestep_embedding(t, c.model_channels))

        if c.num_classes is None:
            if y is not None:
                raise ValueError("this model is unconditional: do not pass class labels")
        else:
            if y is None:
                if not c.null_class:
                    raise ValueError("this model is class-conditional: pass one class label per sample")
                y = torch.full((n,), c.num_classes, dtype=torch.long, device=x.device)
            y = torch.as_tensor(y, device=x.device).long()
            if y.dim() == 0:
                y = y.expand(n)
            if y.shape != (n,):
                raise ValueError(f"expected {n} class labels, got shape {tuple(y.shape)}")
            emb = emb + self.label_emb(y)

        if c.low_res_channels:
            if low_res is None:
                raise ValueError("this super-resolution model needs the low-resolution image (low_res=)")
            if low_res.dim() != 4 or low_res.shape[1] != c.low_res_channels or low_res.shape[0] != n:
                raise ValueError(f"expected low_res of shape [{n}, {c.low_res_channels}, h, w], "
                                 f"got {tuple(low_res.shape)}")
            up = F.interpolate(low_res.to(x.dtype), size=tuple(x.shape[-2:]), mode="bilinear")
            x = torch.cat([x, up], dim=1)
        elif low_res is not None:
            raise ValueError("this model is not a super-resolution model: do not pass low_res")

        h = x.float()
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))
