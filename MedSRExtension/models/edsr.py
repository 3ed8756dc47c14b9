"""EDSR-style residual CNN: the plain-CNN reference for the published architectures.

Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017.
What EDSR states and we keep: residual blocks conv-ReLU-conv with no batch normalisation, residual
scaling of the block output, a long skip from the shallow features over the body, a sub-pixel
(pixel-shuffle) upsampler (×4 as two ×2 steps) and a final conv to the image.

Our choices: 1 input/output channel (grey medical slices) instead of RGB; the input is shifted by
−0.5 (our inputs are robustly normalised to about [0, 1]) where EDSR subtracts the dataset RGB mean;
the network predicts a residual added to the bicubic upsampling of the input (a global residual, as
in VDSR), so an untrained or weak model degrades to bicubic rather than to noise and training
converges faster. Presets: ``base`` is EDSR's own baseline size (16 blocks × 64 channels, ~1.4 M
parameters at ×2; residual scaling 0.1 as EDSR uses for its wide model); ``light`` (8 × 32, ~0.2 M
parameters, ~13 GMAC at 256² ×2) matches the CPU budget of the other ``light`` presets. Everything
is local, so tiled inference is exact given ``receptive_field`` LR pixels of overlap.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import MeanShift, ResidualBlock, Upsampler, bicubic, conv3x3, integer_scale
from .registry import ModelSpec, register

PRESETS = {
    "light": dict(channels=32, blocks=8, res_scale=1.0),
    "base": dict(channels=64, blocks=16, res_scale=0.1),
}


class EDSR(nn.Module):
    """head conv -> B residual blocks + conv (long skip) -> pixel-shuffle upsampler -> conv, + bicubic(x)."""

    def __init__(self, scale: int = 2, channels: int = 32, blocks: int = 8, res_scale: float = 1.0):
        super().__init__()
        self.scale = integer_scale(scale)
        self.shift = MeanShift(0.5, sign=-1)
        self.head = conv3x3(1, channels)
        self.body = nn.Sequential(*[ResidualBlock(channels, res_scale) for _ in range(blocks)],
                                  conv3x3(channels, channels))
        self.up = Upsampler(channels, self.scale)
        self.tail = conv3x3(channels, 1)
        self.receptive_field = receptive_field(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(self.shift(x))
        f = f + self.body(f)
        return self.tail(self.up(f)) + bicubic(x, self.scale)


def build_edsr(preset: str = "light", scale=(2.0, 2.0)) -> EDSR:
    """EDSR at ``preset`` for an integer ``scale`` (2, 3 or 4; same on both axes)."""
    return EDSR(scale=integer_scale(scale), **PRESETS[preset])


def receptive_field(blocks: int) -> int:
    """LR pixels on each side that one output pixel depends on (the overlap exact tiling needs).

    head conv 1 + 2 per block + body conv 1 + upsampler conv 1 (+ ½ for the second ×2 step at ×4)
    + tail conv at HR (≤ ½) + ½ for the sub-pixel position of an HR pixel in its LR pixel, rounded up;
    the bicubic residual (2½) is always smaller.
    """
    return 2 * blocks + 5


register(ModelSpec(
    name="edsr",
    kind="network",
    title="EDSR (residual CNN reference)",
    paper=("Lim B, Son S, Kim H, Nah S, Lee KM. Enhanced Deep Residual Networks for Single Image "
           "Super-Resolution. CVPR Workshops 2017, 136-144."),
    builder=build_edsr,
    scales=(2, 3, 4),
    per_axis=False,
    presets={"light": "8 residual blocks × 32 channels (CPU)",
             "base": "16 residual blocks × 64 channels, EDSR-baseline size (GPU)"},
    tile_safe=True,
    receptive_field=receptive_field(PRESETS["base"]["blocks"]),
    min_size=4,
    half=("fp16", "bf16"),
    summary=("EDSR-style plain residual CNN used as the reference at the same budget as the published "
             "architectures: residual blocks without batch normalisation, residual scaling, a long skip, "
             "pixel-shuffle upsampling (×4 as two ×2 steps) and a global bicubic residual; one grey "
             "channel in and out."),
))
