"""Modulated deformable convolution (DCNv2, Zhu et al., CVPR 2019) in pure torch.

A k×k deformable convolution samples its k² taps at learned, fractional positions instead of the
fixed grid, and weights each tap by a learned modulation scalar:

    y(p) = Σ_k w_k · m_k(p) · x(p + p_k + Δp_k(p)) + b

where p_k is the regular tap offset (dilated), Δp_k = (Δy, Δx) the learned offset and m_k ∈ (0, 1)
the modulation mask. x at fractional positions is bilinearly interpolated, zero outside the image
(as a zero-padded convolution). Offsets and masks may differ per *offset group* (channels are split
into ``offset_groups`` contiguous groups sharing one set of offsets/masks).

Implementation on the CPU (``_gather_taps``): the bilinear samples are an *embedding bag*: each
(pixel, tap) sample is a weighted sum of four rows of a channels-last table of the image with a zero
border, the weights being the bilinear factors times the modulation mask; positions are clamped into
the border, so corners outside the image read zeros without a validity test per corner.
``F.embedding_bag(..., per_sample_weights, mode="sum")`` gathers and sums all taps of a chunk of rows
in one call, straight into the (pixels, k²·C) layout one GEMM contracts with the weights, in chunks
that stay in cache. Measured on a 2-core CPU for an LGSR 32-channel 3×3 layer on a 256² slice:
41 → 20 ms in float32, same result to float rounding; gradients flow to the offsets and masks through
the weights. Elsewhere (CUDA, and while exporting, where ONNX has GridSample but no
weighted embedding bag): all k² taps of a row chunk are gathered by ONE ``grid_sample`` call (grid of shape
(N·G, k²·rows, W, 2)) from a channels-last copy of the image (all channels of a position in one place:
~2x faster than NCHW on CPU), multiplied by the masks, and contracted with the weights by one GEMM over
the (C·k²) sampled channels (~4x faster than the equivalent 1×1 convolution on CPU). The grid is the
regular tap positions, pre-normalised, plus the offsets added in place (no stacking copies). The
(N, C·k², rows, W) buffer is bounded by processing output rows
in chunks (``max_elements``), so a 512² slice with 64 channels does not need a 600 MB buffer.
Stride is 1 (SR keeps resolution); dilation is supported.

Layout (as torchvision.ops.deform_conv2d): ``offset`` is (N, 2·G·k², H, W) ordered
[group][tap][dy, dx]; ``mask`` is (N, G·k², H, W) ordered [group][tap]; taps in row-major order.

``DeformConv2d`` predicts offsets and masks from its input with a k×k conv initialised to zero, so
at initialisation all offsets are 0 and all masks are sigmoid(0) = 0.5 (DCNv2's initialisation):
the layer then equals a regular convolution with half its weights, and learning moves the taps.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def _tap_offsets(kernel: int, dilation: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Regular-grid tap displacements (dy, dx), each of shape (k²,), row-major."""
    r = torch.arange(kernel, device=device, dtype=dtype) - (kernel // 2)
    ky, kx = torch.meshgrid(r * dilation, r * dilation, indexing="ij")
    return ky.reshape(-1), kx.reshape(-1)


def _exporting() -> bool:
    """True while torch.jit.trace or torch.export records the graph: then all rows go in one chunk, so the
    graph has no Python loop over the (possibly symbolic) height."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def _gather_path(x: torch.Tensor) -> bool:
    """The embedding-bag path: on the CPU, except while exporting (ONNX has GridSample, not weighted bags)."""
    return x.device.type == "cpu" and not _exporting()


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor], weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None, dilation: int = 1, groups: int = 1,
                  max_elements: int = 1 << 25) -> torch.Tensor:
    """Modulated deformable convolution, stride 1, 'same' zero padding (see module docstring).

    x: (N, C, H, W); weight: (Cout, C/groups, k, k); offset: (N, 2·G·k², H, W); mask: (N, G·k², H, W)
    or None (all ones, i.e. DCNv1). Returns (N, Cout, H, W).
    """
    n, c, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"deform_conv2d needs an odd square kernel, got {kh}x{kw}")
    kk = kh * kw
    if cin_g * groups != c:
        raise ValueError(f"weight expects {cin_g * groups} input channels, got {c}")
    if offset.shape[1] % (2 * kk) != 0:
        raise ValueError(f"offset must have 2·G·{kk} channels, got {offset.shape[1]}")
    g = offset.shape[1] // (2 * kk)
    if c % g != 0:
        raise ValueError(f"{c} channels cannot be split into {g} offset groups")
    if offset.shape[-2:] != x.shape[-2:] or (mask is not None and mask.shape[-2:] != x.shape[-2:]):
        raise ValueError("offset and mask must have the input's spatial size (stride 1)")

    if _gather_path(x):
        return _deform_conv2d_gather(x, offset, mask, weight, bias, dilation, groups, g, max_elements)
    dy0, dx0 = _tap_offsets(kh, dilation, x.device, x.dtype)
    off = offset.reshape(n, g, kk, 2, h, w)
    # channels-last input: grid_sample reads all channels of a position from one place (2x faster on CPU)
    xg = x.reshape(n * g, c // g, h, w).contiguous(memory_format=torch.channels_last)
    wmat = weight.reshape(groups, cout // groups, cin_g * kk)
    # regular tap positions (x, y) normalised for align_corners=False (pixel i -> (2i + 1)/size - 1);
    # an offset of d pixels moves the normalised coordinate by d·2/size
    bx = (2 * (torch.arange(w, device=x.device, dtype=x.dtype)[None, :] + dx0[:, None]) + 1) / w - 1  # (k², W)
    by = (2 * (torch.arange(h, device=x.device, dtype=x.dtype)[None, :] + dy0[:, None]) + 1) / h - 1  # (k², H)
    rows = h if _exporting() else max(1, min(h, max_elements // max(1, n * c * kk * w)))
    outs = []
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        rh = r1 - r0
        # grid (N, G, k², rh, W, 2): the regular positions, then the offsets added in place (no stacking copy)
        grid = x.new_empty(n, g, kk, rh, w, 2)
        grid[..., 0] = bx[:, None, :]
        grid[..., 1] = by[:, r0:r1, None]
        grid[..., 0].add_(off[:, :, :, 1, r0:r1], alpha=2.0 / w)
        grid[..., 1].add_(off[:, :, :, 0, r0:r1], alpha=2.0 / h)
        sampled = F.grid_sample(xg, grid.view(n * g, kk * rh, w, 2), mode="bilinear", padding_mode="zeros",
                                align_corners=False)
        sampled = sampled.view(n, g, c // g, kk, rh, w)
        if mask is not None:
            sampled = sampled.mul_(mask[:, :, r0:r1].reshape(n, g, 1, kk, rh, w))  # in place: grid_sample's
            # backward needs its inputs, not its output
        # channel-major, then tap (matches weight.reshape): one GEMM per group instead of a 1x1 convolution
        y = torch.matmul(wmat, sampled.view(n, groups, cin_g * kk, rh * w)).view(n, cout, rh, w)
        if bias is not None:
            y = y + bias.view(1, cout, 1, 1)
        outs.append(y)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


#: Sampled elements per chunk on the gather path: a chunk's samples stay in cache for the GEMM after them
#: (measured on a 256² 32-channel layer: 1<<21 fastest; 1<<25, one chunk, 1.3x slower).
GATHER_CHUNK = 1 << 21


def _gather_weights(weight: torch.Tensor, groups: int, g: int) -> torch.Tensor:
    """The conv weights as one (Cout, G·k²·C/G) matrix in the gather path's sample order (offset group,
    tap, channel); grouped convolutions become one block-diagonal matrix (zeros across groups)."""
    cout, cin_g, kh, kw = weight.shape
    c, kk = cin_g * groups, kh * kw
    if groups > 1:
        full = weight.new_zeros(cout, c, kh, kw)
        per = cout // groups
        for i in range(groups):
            full[i * per:(i + 1) * per, i * cin_g:(i + 1) * cin_g] = weight[i * per:(i + 1) * per]
        weight = full
    return weight.reshape(cout, g, c // g, kk).permute(0, 1, 3, 2).reshape(cout, g * kk * (c // g))


def _gather_taps(table: torch.Tensor, py: torch.Tensor, px: torch.Tensor, m: Optional[torch.Tensor],
                 base: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear samples at (py, px) (pixel units, any shape S), times the masks ``m`` (shape S or None):
    (prod(S), C). ``table`` holds each image with a zero border (1 pixel before, 2 after; image pixel
    (y, x) at row ``base + (y + 1)·(w + 3) + x + 1``): positions clamped to [-1, h] × [-1, w] then read
    zeros wherever the image has none, with no per-corner validity tests."""
    wp = w + 3
    py, px = py.clamp(-1, h), px.clamp(-1, w)
    y0, x0 = py.floor(), px.floor()
    fy, fx = py - y0, px - x0
    wy = torch.stack((1 - fy, fy), dim=-1)
    if m is not None:
        wy = wy * m[..., None]
    wts = (wy[..., :, None] * torch.stack((1 - fx, fx), dim=-1)[..., None, :]).reshape(-1, 4)
    first = (y0.int() + 1) * wp + (x0.int() + 1) + base  # corner (y0, x0)
    corners = torch.tensor([0, 1, wp, wp + 1], dtype=torch.int32, device=first.device)
    return F.embedding_bag((first[..., None] + corners).reshape(-1, 4), table,
                           per_sample_weights=wts.to(table.dtype), mode="sum")


def _deform_conv2d_gather(x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor],
                          weight: torch.Tensor, bias: Optional[torch.Tensor], dilation: int, groups: int,
                          g: int, max_elements: int) -> torch.Tensor:
    """``deform_conv2d`` on the CPU by weighted embedding bags (module docstring); channels-last output."""
    n, c, h, w = x.shape
    cout, _, kh, _ = weight.shape
    kk, cg = kh * kh, c // g
    pos = torch.float64 if x.dtype == torch.float64 else torch.float32  # positions never in bf16/fp16
    with torch.autocast(device_type="cpu", enabled=False):
        # table rows (batch, offset group, y, x) of C/G channels, with the zero border of _gather_taps
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, g, cg).permute(0, 3, 1, 2, 4)
        table = F.pad(nhwc, (0, 0, 1, 2, 1, 2)).reshape(-1, cg)
        off = offset.to(pos).permute(0, 2, 3, 1).reshape(n, h, w, g, kk, 2)
        msk = None if mask is None else mask.to(pos).permute(0, 2, 3, 1).reshape(n, h, w, g, kk)
        dy0, dx0 = _tap_offsets(kh, dilation, x.device, pos)
        cols = torch.arange(w, device=x.device, dtype=pos)[:, None, None] + dx0  # (W, 1, k²)
        images = torch.arange(n * g, device=x.device, dtype=torch.int32) * ((h + 3) * (w + 3))
        base = images.view(n, 1, 1, g, 1)  # first table row of each (batch, group)
    wmat = _gather_weights(weight, groups, g)
    out = None
    step = max(1, min(h, max_elements // max(1, n * c * kk * w), GATHER_CHUNK // max(1, n * c * kk * w)))
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        with torch.autocast(device_type="cpu", enabled=False):
            rows = torch.arange(r0, r1, device=x.device, dtype=pos)[:, None, None, None] + dy0  # (rh, 1, 1, k²)
            py = off[:, r0:r1, :, :, :, 0] + rows
            px = off[:, r0:r1, :, :, :, 1] + cols
            sampled = _gather_taps(table, py, px, None if msk is None else msk[:, r0:r1], base, h, w)
        y = F.linear(sampled.view(n, r1 - r0, w, g * kk * cg), wmat, bias)  # one GEMM (autocast applies)
        if out is None:
            out = y.new_empty(n, h, w, cout)
        out[:, r0:r1] = y
    return out.permute(0, 3, 1, 2)


class DeformConv2d(nn.Module):
    """DCNv2 layer: a k×k conv whose taps move by offsets and are weighted by masks predicted from x.

    ``offset_groups`` sets how many channel groups get their own offsets/masks (1 = shared);
    ``groups`` is the usual grouped-convolution factor of the main weights. ``max_offset`` (optional)
    bounds each offset to ±max_offset pixels via max_offset·tanh(Δ/max_offset) (identity near 0),
    which bounds the receptive field; None leaves offsets unbounded as in DCNv2.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1,
                 offset_groups: int = 1, bias: bool = True, max_offset: Optional[float] = None,
                 max_elements: int = 1 << 25):
        super().__init__()
        if cin % offset_groups or cin % groups or cout % groups:
            raise ValueError("channels must be divisible by groups and offset_groups")
        self.kernel, self.dilation, self.groups = kernel, dilation, groups
        self.offset_groups, self.max_offset, self.max_elements = offset_groups, max_offset, max_elements
        kk = kernel * kernel
        self.weight = nn.Parameter(torch.empty(cout, cin // groups, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        if self.bias is not None:
            bound = 1 / math.sqrt((cin // groups) * kk)
            nn.init.uniform_(self.bias, -bound, bound)
        # predicts [offsets (2·G·k²) | masks (G·k²)] from the input, zero-initialised
        self.offset_mask = nn.Conv2d(cin, 3 * offset_groups * kk, kernel, padding=dilation * (kernel // 2),
                                     dilation=dilation)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def offsets_and_masks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The predicted offsets (N, 2·G·k², H, W) in pixels and masks (N, G·k², H, W) in (0, 1)."""
        om = self.offset_mask(x)
        n_off = 2 * self.offset_groups * self.kernel * self.kernel
        offset, mask = om[:, :n_off], torch.sigmoid(om[:, n_off:])
        if self.max_offset is not None:
            offset = self.max_offset * torch.tanh(offset / self.max_offset)
        return offset, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last once: the offset conv runs ~2x faster on it (oneDNN) and the sampling needs it anyway
        x = x.contiguous(memory_format=torch.channels_last)
        offset, mask = self.offsets_and_masks(x)
        return deform_conv2d(x, offset, mask, self.weight, self.bias, self.dilation, self.groups,
                             self.max_elements)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1] * self.groups}, {self.weight.shape[0]}, kernel={self.kernel}, "
                f"dilation={self.dilation}, groups={self.groups}, offset_groups={self.offset_groups}, "
                f"max_offset={self.max_offset}")
