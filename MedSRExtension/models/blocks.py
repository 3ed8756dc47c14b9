"""Small composable building blocks shared by the SR architectures.

Every block maps (N, C, H, W) features to features; none mixes images of a batch, so a batch
of slices gives exactly the per-slice results. Blocks marked *local* have a bounded receptive
field (tiled inference is exact given enough overlap); ``ChannelAttention`` with ``window=None``
pools over the whole image and is therefore *global* (tiling is then only approximate).

Conventions: images are (N, 1, H, W) in roughly [0, 1]; ``out_size`` / ``bicubic`` follow the
voxel-edge-preserving grid of DESIGN.md (output pixel p has its centre at LR coordinate
(p + 0.5)/s − 0.5, which is ``align_corners=False``).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

ScalePair = tuple[float, float]


def out_size(h: int, w: int, scale: Union[float, Sequence[float]]) -> tuple[int, int]:
    """The SR output size (round(H·sh), round(W·sw)), at least 1 pixel."""
    sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
    return max(1, int(round(h * float(sh)))), max(1, int(round(w * float(sw))))


def bicubic(x: torch.Tensor, scale: Union[float, Sequence[float]]) -> torch.Tensor:
    """Bicubic upsampling of ``x`` to ``out_size`` (align_corners=False), used as global residual.

    Integer factors go through ``scale_factor`` (the same grid and values as ``size=(s·H, s·W)``) so that
    tracing and export see no Python arithmetic on tensor sizes."""
    sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
    if float(sh).is_integer() and float(sw).is_integer():
        return F.interpolate(x, scale_factor=(float(sh), float(sw)), mode="bicubic", align_corners=False)
    return F.interpolate(x, size=out_size(x.shape[-2], x.shape[-1], scale), mode="bicubic", align_corners=False)


def conv(cin: int, cout: int, kernel: int = 3, bias: bool = True, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """A 'same'-padded k×k convolution (zero padding, odd ``kernel``)."""
    return nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), bias=bias, groups=groups, dilation=dilation)


def conv3x3(cin: int, cout: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A 'same'-padded 3×3 convolution."""
    return conv(cin, cout, 3, bias=bias, groups=groups)


def conv1x1(cin: int, cout: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A 1×1 (pointwise) convolution."""
    return nn.Conv2d(cin, cout, 1, bias=bias, groups=groups)


def activation(name: str = "relu") -> nn.Module:
    """An activation by name: ``relu``, ``lrelu`` (slope 0.05, as in IMDN/RFDN), ``gelu`` or ``silu``."""
    table: dict[str, Callable[[], nn.Module]] = {
        "relu": lambda: nn.ReLU(inplace=True),
        "lrelu": lambda: nn.LeakyReLU(0.05, inplace=True),
        "gelu": nn.GELU,
        "silu": lambda: nn.SiLU(inplace=True),
    }
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; use one of {sorted(table)}")
    return table[name]()


def integer_scale(scale: Union[float, Sequence[float]]) -> int:
    """The single integer factor of a scale pair for integer-scale models (2, 3 or 4)."""
    sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
    if sh != sw or not float(sh).is_integer() or int(sh) not in (2, 3, 4):
        raise ValueError(f"this architecture supports integer scales 2, 3, 4 on both axes, got {scale}")
    return int(sh)


class Upsampler(nn.Sequential):
    """EDSR-style sub-pixel upsampler on features: C -> C channels at s× resolution.

    ×2 and ×3 are one conv(C -> s²·C) + PixelShuffle(s); ×4 is two ×2 steps (so the second step
    works at 2× resolution: more MACs, better than one ×4 shuffle). Local: receptive field 1 LR pixel
    per step.
    """

    def __init__(self, channels: int, scale: int, act: Optional[str] = None):
        layers: list[nn.Module] = []
        steps = {2: [2], 3: [3], 4: [2, 2]}.get(int(scale))
        if steps is None:
            raise ValueError(f"Upsampler supports scales 2, 3, 4, got {scale}")
        for s in steps:
            layers += [conv3x3(channels, s * s * channels), nn.PixelShuffle(s)]
            if act:
                layers.append(activation(act))
        super().__init__(*layers)


class PixelShuffleHead(nn.Sequential):
    """Direct sub-pixel output head (ESPCN/IMDN style): one conv(C -> s²·out) + PixelShuffle(s).

    The cheapest upsampler: no features are computed at high resolution. Works for any integer s.
    """

    def __init__(self, channels: int, scale: int, out_channels: int = 1, kernel: int = 3):
        super().__init__(conv(channels, out_channels * scale * scale, kernel), nn.PixelShuffle(scale))


class ResidualBlock(nn.Module):
    """EDSR residual block without batch norm: x + res_scale · conv(act(conv(x)))."""

    def __init__(self, channels: int, res_scale: float = 1.0, act: str = "relu", kernel: int = 3):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, kernel), activation(act), conv(channels, channels, kernel))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


def local_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Per-channel mean over a ``window``×``window`` box around each pixel (only pixels inside the image count).

    Separable box filter: two 1D average pools, exact because the valid region is a rectangle.
    """
    r = window // 2
    x = F.avg_pool2d(x, (window, 1), stride=1, padding=(r, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, window), stride=1, padding=(0, r), count_include_pad=False)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention: x · sigmoid(W2 · act(W1 · pool(x))).

    ``window=None`` pools each channel over the whole image (RCAN's global descriptor; global, so
    tiled inference is approximate). ``window=k`` (odd) pools over a k×k neighbourhood instead,
    giving a per-pixel gate that is local (receptive field k//2) and therefore exact under tiling.
    """

    def __init__(self, channels: int, reduction: int = 8, window: Optional[int] = None):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.window = window
        self.fc = nn.Sequential(conv1x1(channels, hidden), nn.ReLU(inplace=True), conv1x1(hidden, channels),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            s = x.mean(dim=(2, 3), keepdim=True)
        else:
            s = local_mean(x, self.window)
        return x * self.fc(s)


class ResidualChannelAttentionBlock(nn.Module):
    """RCAN's RCAB: x + res_scale · CA(conv(act(conv(x)))) (see ``ChannelAttention`` for ``window``)."""

    def __init__(self, channels: int, reduction: int = 8, window: Optional[int] = None,
                 res_scale: float = 1.0, act: str = "relu"):
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), activation(act), conv3x3(channels, channels),
                                  ChannelAttention(channels, reduction, window))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of (N, C, H, W) features, per pixel (as ConvNeXt/Restormer use).

    One fused ``F.layer_norm`` on the channels-last view: ~3x faster on CPU than the explicit
    mean/variance formula, same result."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ConvMLP(nn.Module):
    """Transformer feed-forward on feature maps: 1×1 conv (C -> r·C), GELU, 1×1 conv (r·C -> C). Pixel-wise."""

    def __init__(self, channels: int, ratio: float = 2.0):
        super().__init__()
        hidden = max(1, int(round(channels * ratio)))
        self.net = nn.Sequential(conv1x1(channels, hidden), nn.GELU(), conv1x1(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, act, second = self.net
        if (x.device.type == "cpu" and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
                and isinstance(first, nn.Conv2d) and isinstance(second, nn.Conv2d)):
            # on channels-last maps a 1x1 conv is one matrix product over the pixels; torch's CPU float32
            # conv takes a generic path for it (measured 4x slower per ICONet feed-forward), so call it as one
            y = F.linear(x.permute(0, 2, 3, 1), first.weight.flatten(1), first.bias)
            y = F.linear(act(y), second.weight.flatten(1), second.bias)
            return y.permute(0, 3, 1, 2)
        return self.net(x)


class ShallowResidualBlock(nn.Module):
    """RFDN's shallow residual block: act(conv3x3(x) + x). Cheap local feature refinement."""

    def __init__(self, channels: int, act: str = "lrelu"):
        super().__init__()
        self.conv = conv3x3(channels, channels)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x) + x)


class MeanShift(nn.Module):
    """Subtract (``sign=-1``) or add back (``sign=+1``) a fixed intensity offset, e.g. 0.5 for [0, 1] inputs.

    Centres inputs near zero so that zero-padded convolutions see no artificial edge at the border
    of a mid-grey image. Has no parameters.
    """

    def __init__(self, mean: float = 0.5, sign: int = -1):
        super().__init__()
        self.offset = float(sign) * float(mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset
