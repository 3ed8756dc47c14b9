"""PFMDN: pyramidal feature multi-distillation network with a gradient branch and an arbitrary-scale upsampler.

Ren, Guo, Ma, Zhu, Hu, Zhou, "Realistic medical image super-resolution with pyramidal feature
multi-distillation networks for intelligent healthcare systems", Neural Computing and Applications
(2021), doi:10.1007/s00521-021-06287-x. No code is public; this file builds each component from what
the paper states and says what we chose where it is silent.

Component by component:

- **Multi-distillation block (MDB)** — paper: combines pyramidal convolution with a shallow residual
  block, in the information-distillation family (IMDN/RFDN). Ours (``MultiDistillationBlock``): RFDN's
  progressive distillation — three steps, each splitting off C/2 "distilled" channels by a 1×1 conv and
  refining the rest with a shallow residual block act(conv3×3(x) + x) — then a pyramidal convolution
  (``PyConv2d``, PyConv of Duta et al. 2020: kernels 3/5/7/9 with growing groups 1/2/4/8, each level
  giving C/4 channels) on the most refined features, a 1×1 fusion of the three distilled parts and the
  pyramid, the attention below, and a block residual. Why: the shallow residual blocks keep the cheap
  RFDN refinement; the pyramid adds 5–9 px contexts at the cost of ~1.2 plain 3×3 convs.
- **Information-entropy contrast-aware channel attention** (``EntropyContrastAttention``) — paper:
  IMDN's contrast-aware attention (per-channel mean + standard deviation → squeeze-excitation gate)
  extended with an information-entropy term; the exact formula is not public. Ours: per channel, the
  Shannon entropy of the softmax of the channel's values over the pooling region (how evenly the
  activation is spread: low on isolated structures, high on flat texture), normalised to [0, 1] by
  log(region size), added to mean + std with a learned per-channel weight (initially 1), then 1×1 →
  ReLU → 1×1 → sigmoid. It needs only two extra box means (of e^x and x·e^x), so it is differentiable
  and linear in the image size; a soft-histogram entropy was ~4× slower for no clear benefit.
  *Deviation for tiling:* the statistics are taken
  over a local window (11×11 LR pixels, a box filter) instead of the whole image, so every output
  pixel has a bounded receptive field, tiled inference is exact, and a slice's result does not depend
  on how much background surrounds it. ``window=None`` gives the paper's global statistics.
- **Two branches, gradient-map branch fused into the SR branch** — paper: an SR branch and a gradient
  map branch whose information is fused into the SR branch (as in SPSR, Ma et al. 2020). Ours
  (``GradientBranch``): the gradient magnitude of the LR input (``losses.gradient_map``) is embedded by
  a 3×3 conv and refined by one step per MDB that also receives that MDB's output (SPSR feeds
  intermediate SR features into its gradient branch); the final gradient features are concatenated
  with the SR trunk and fused by a 3×3 conv at LR resolution (SPSR fuses at HR; fusing at LR keeps the
  arbitrary-scale head cheap). In training mode a second arbitrary-scale head turns the gradient
  features into the gradient map of the SR image (plus the gradient map of the bicubic image as a
  residual), supervised by the HR gradient map (``losses.PFMDNLoss``).
- **Arbitrary-scale upsampler** (``MetaUpsampler``) — paper: "an arbitrary scale upsampler" (in the
  spirit of Meta-SR, Hu et al. 2019). Ours: Meta-SR's position-to-weight idea on our voxel-edge grid:
  output pixel p along an axis of factor s sits at LR coordinate c = (p + 0.5)/s − 0.5; its nearest LR
  pixel is q = floor(c + 0.5) and its offset d = c − q ∈ [−0.5, 0.5). A small MLP maps
  (d_h, d_w, 1/s_h, 1/s_w) to a 3×3×C filter that is applied to the features around (q_h, q_w). Per-axis
  factors and any real s ≥ 1 work. Weights are computed once per *distinct* offset pair (4 pairs at ×2)
  and, in inference, kept per scale and slice size (with the index maps) until the MLP's weights change.
  For integer factors the filters run as one convolution + sub-pixel interleave; for factors with few
  distinct offsets (a rational p/q has at most p per axis) as one convolution per offset class, read at
  the class's nearest LR pixels (the same sums, 2-4x faster per slice at ×2.5 than per-pixel filters);
  otherwise per-pixel filters are applied in row chunks, so memory stays bounded on any slice.
  The module adds a bicubic image computed on the same grid as a global residual.
- **Losses** — paper: contextual loss + L1, with L1 on the gradient branch (``losses.PFMDNLoss``).

Presets (measured with ``models.complexity`` on a 256×256 input; the MACs hardly change with the scale
because the arbitrary-scale head is cheap): ``light`` 32 channels × 3 MDBs, 16 gradient channels —
202 k parameters, 11.4 GMAC at ×2 (11.6 at ×4), receptive field 41 LR px; ``base`` 64 × 6, 32 gradient
channels — 1.40 M parameters, 84 GMAC at ×2, receptive field 77 LR px. The paper's own parameter count
is not in the material we could consult, so ``base`` is sized like the distillation networks it builds
on (IMDN/RFDN full models, 0.5–0.7 M) doubled for the gradient branch and the pyramid convs.

Translation equivariance (what tiling relies on): everything is convolutional or windowed, and the
upsampler's weights depend only on fractional offsets, so a crop starting at LR offset a with a·s an
integer gives exactly the global output pixels a·s + p away from the crop border (tested).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from MedSRExtension.core.errors import MedSRError
from .blocks import MeanShift, ShallowResidualBlock, activation, conv, conv1x1, conv3x3, local_mean, out_size
from .losses import gradient_map
from .registry import ModelSpec, as_pair, register

ScaleArg = Union[None, float, Sequence[float]]

_OFFSET_QUANTUM = 2.0 ** 20  # offsets are snapped to this grid so equal offsets share one weight set
#: Offset classes per output pixel up to which the per-class convolution beats per-pixel filters.
_CLASS_CONV_LIMIT = 16


def _axis_map(n_out: int, n_in: int, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output index p: nearest LR index q (long) and snapped offset d = c − q (float64).

    c = (p + 0.5)/s − 0.5 is the LR coordinate of the output pixel centre (voxel-edge-preserving grid);
    q = floor(c + 0.5) clamped to the image; d in [−0.5, 0.5) except at a clamped last pixel.
    """
    p = torch.arange(n_out, dtype=torch.float64)
    t = (p + 0.5) / float(s)
    q = torch.floor(t).clamp_(0, n_in - 1)
    d = torch.round((t - 0.5 - q) * _OFFSET_QUANTUM) / _OFFSET_QUANTUM
    return q.long(), d


def _out_size_traceable(x: torch.Tensor, scale: tuple[float, float]) -> tuple[int, int]:
    """``out_size`` of x's (H, W); for integer factors a plain product, so tracing and export keep the
    size symbolic (Python's round() of a traced size breaks tracing)."""
    sh, sw = scale
    if float(sh).is_integer() and float(sw).is_integer():
        return x.shape[-2] * int(sh), x.shape[-1] * int(sw)
    return out_size(x.shape[-2], x.shape[-1], scale)


def _cubic_weights(t: torch.Tensor, a: float = -0.75) -> list[torch.Tensor]:
    """Keys' cubic-convolution weights for taps −1, 0, 1, 2 at fractional position t (torch's bicubic)."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def resize_bicubic(x: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    """Bicubic resize of (N, C, H, W) to (round(H·sh), round(W·sw)) on the grid c = (p + 0.5)/s − 0.5 of
    the given s (not of the rounded size ratio, as ``F.interpolate(size=...)`` would use).

    Same kernel (a = −0.75) and border clamping as torch's bicubic; for an integer factor it equals
    ``F.interpolate(..., scale_factor=s, mode="bicubic", align_corners=False)``. Using the passed s
    exactly keeps crops consistent with the whole image (translation equivariance for tiling).
    """
    out_h, out_w = _out_size_traceable(x, scale)
    for axis, n_out, s in ((-2, out_h, scale[0]), (-1, out_w, scale[1])):
        n_in = x.shape[axis]
        p = torch.arange(n_out, dtype=torch.float64)
        c = (p + 0.5) / float(s) - 0.5
        base = torch.floor(c)
        weights = _cubic_weights(c - base)
        acc = None
        for tap, w in zip((-1, 0, 1, 2), weights):
            idx = (base.long() + tap).clamp_(0, n_in - 1).to(x.device)
            shape = [1] * x.dim()
            shape[axis] = n_out
            term = x.index_select(axis, idx) * w.to(device=x.device, dtype=x.dtype).view(shape)
            acc = term if acc is None else acc + term
        x = acc
    return x


class PyConv2d(nn.Module):
    """Pyramidal convolution (Duta et al. 2020): parallel k×k convs, k = 3/5/7/9, with groups 1/2/4/8.

    Each level maps all ``cin`` channels to ``cout/levels`` channels; larger kernels use more groups
    so every level costs about the same. Local: receptive field max(k)//2.
    """

    def __init__(self, cin: int, cout: int, kernels: Sequence[int] = (3, 5, 7, 9),
                 groups: Sequence[int] = (1, 2, 4, 8)):
        super().__init__()
        levels = len(kernels)
        if cout % levels or any(cin % g or (cout // levels) % g for g in groups):
            raise ValueError(f"PyConv2d({cin}, {cout}) needs channels divisible by the groups {tuple(groups)}")
        self.levels = nn.ModuleList(conv(cin, cout // levels, k, groups=g) for k, g in zip(kernels, groups))
        self.radius = max(kernels) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([level(x) for level in self.levels], dim=1)


class EntropyContrastAttention(nn.Module):
    """Information-entropy contrast-aware channel attention: x · σ(MLP(mean + std + α·entropy)).

    Per channel and (with ``window``) per pixel over the window×window neighbourhood W(i) (pixels
    inside the image only): mean, standard deviation, and the normalised Shannon entropy of the
    softmax of the channel's values over W(i): p_j = e^{x_j} / Σ_{k∈W(i)} e^{x_k},
    H_i = −Σ_j p_j log p_j / log|W(i)| ∈ [0, 1], computed from two box means as
    log|W| + log mean(e^x) − mean(x·e^x)/mean(e^x). High entropy = activation spread evenly over the
    window; low = concentrated on a few pixels (edges, small structures). x is clamped to ±20 inside
    the entropy only (overflow safety); statistics run in float32 for fp16/bf16 safety.
    ``window=None`` pools over the whole image (the paper's global form; not tile-exact).
    """

    def __init__(self, channels: int, reduction: int = 4, window: Optional[int] = 11):
        super().__init__()
        if window is not None and window % 2 == 0:
            raise ValueError("EntropyContrastAttention window must be odd")
        hidden = max(1, channels // reduction)
        self.window = window
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.fc = nn.Sequential(conv1x1(channels, hidden), nn.ReLU(inplace=True), conv1x1(hidden, channels),
                                nn.Sigmoid())

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True) if self.window is None else local_mean(x, self.window)

    def _log_count(self, x: torch.Tensor) -> torch.Tensor:
        """log |W(i)|: the number of in-image pixels of each pixel's window (or of the whole image)."""
        h, w = x.shape[-2:]
        if self.window is None:
            return torch.tensor(math.log(h * w), device=x.device)
        r = self.window // 2

        def count(n: int) -> torch.Tensor:
            i = torch.arange(n, device=x.device)
            return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).float()

        return torch.log(count(h)[:, None] * count(w)[None, :])

    def entropy(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised spatial-softmax entropy in [0, 1] of each channel (per window, or per image)."""
        u = x.float().clamp(-20.0, 20.0)
        e = torch.exp(u)
        m0 = self._pool(e)
        m1 = self._pool(u * e)
        log_n = self._log_count(x)
        return (log_n + torch.log(m0) - m1 / m0) / log_n.clamp_min(1e-6)

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """The descriptor mean + std + α·entropy (float32) that drives the gate."""
        xf = x.float()
        mean = self._pool(xf)
        var = (self._pool(xf * xf) - mean * mean).clamp_min(0.0)
        return mean + torch.sqrt(var + 1e-6) + self.alpha.float() * self.entropy(xf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(self.statistics(x).to(x.dtype))
        return x * gate


class MultiDistillationBlock(nn.Module):
    """RFDN-style progressive distillation with shallow residual blocks, a pyramid conv and entropy attention."""

    def __init__(self, channels: int, window: Optional[int] = 11, act: str = "lrelu"):
        super().__init__()
        half = channels // 2
        self.distill = nn.ModuleList(conv1x1(channels, half) for _ in range(3))
        self.refine = nn.ModuleList(ShallowResidualBlock(channels, act) for _ in range(3))
        self.pyramid = PyConv2d(channels, channels)
        self.fuse = conv1x1(3 * half + channels, channels)
        self.attention = EntropyContrastAttention(channels, window=window)
        self.act = activation(act)
        self.radius = 3 + self.pyramid.radius + (window // 2 if window else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        r = x
        for distill, refine in zip(self.distill, self.refine):
            parts.append(self.act(distill(r)))
            r = refine(r)
        parts.append(self.act(self.pyramid(r)))
        return self.attention(self.fuse(torch.cat(parts, dim=1))) + x


class GradientBranch(nn.Module):
    """SPSR-style gradient branch: embeds the LR gradient map and refines it with the SR branch's features.

    ``steps`` refinement steps, step i: g <- g + act(conv3x3(cat(g, conv1x1(sr_i)))).
    """

    def __init__(self, channels: int, sr_channels: int, steps: int, act: str = "lrelu"):
        super().__init__()
        self.embed = nn.Sequential(conv3x3(1, channels), activation(act))
        self.take = nn.ModuleList(conv1x1(sr_channels, channels) for _ in range(steps))
        self.mix = nn.ModuleList(conv3x3(2 * channels, channels) for _ in range(steps))
        self.act = activation(act)

    def forward(self, grad_lr: torch.Tensor, sr_features: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device_type=grad_lr.device.type, enabled=False):  # a float32 stream (see PFMDN)
            g = self.embed(grad_lr)
        for take, mix, f in zip(self.take, self.mix, sr_features):
            g = g + self.act(mix(torch.cat([g, take(f)], dim=1)))
        return g


class MetaUpsampler(nn.Module):
    """Meta-SR-style arbitrary-scale head: features (N, C, H, W) -> image (N, out, round(H·sh), round(W·sw)).

    A 2-layer MLP maps the position vector (d_h, d_w, 1/s_h, 1/s_w) of an output pixel to a k×k×C
    filter (per output channel) applied at its nearest LR pixel (see the module docstring). Filters are
    predicted once per distinct offset pair; integer factors run as one convolution + interleave,
    other factors gather k×k neighbourhoods for ``chunk_bytes``-bounded blocks of output rows.
    """

    def __init__(self, channels: int, out_channels: int = 1, kernel: int = 3, hidden: int = 64,
                 chunk_bytes: int = 32 * 2 ** 20):
        super().__init__()
        self.channels, self.out_channels, self.kernel = channels, out_channels, kernel
        self.chunk_bytes = chunk_bytes
        self.mlp = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_channels * channels * kernel * kernel))

    def filters(self, dh: torch.Tensor, dw: torch.Tensor, scale: tuple[float, float],
                like: torch.Tensor) -> torch.Tensor:
        """Filters (len(dh), len(dw), out, C, k, k) for every pair of row offset dh and column offset dw."""
        a, b = len(dh), len(dw)
        pos = torch.stack([dh[:, None].expand(a, b), dw[None, :].expand(a, b),
                           torch.full((a, b), 1.0 / scale[0], dtype=torch.float64),
                           torch.full((a, b), 1.0 / scale[1], dtype=torch.float64)], dim=-1)
        lin = self.mlp[0]
        w = self.mlp(pos.to(device=like.device, dtype=lin.weight.dtype).reshape(a * b, 4))
        return w.to(like.dtype).view(a, b, self.out_channels, self.channels, self.kernel, self.kernel)

    def _cached(self, key: tuple, make):
        """``make()`` once per ``key`` and state of the MLP weights, in inference only (training and tracing
        recompute: their filters must stay in the autograd graph / in the exported graph)."""
        if self.training or torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_exporting():
            return make()
        state = tuple((p.data_ptr(), p._version) for p in self.mlp.parameters())
        cache = self.__dict__.setdefault("_filter_cache", {})
        full = (key, state)
        if full not in cache:
            if len(cache) >= 8:  # a few scales x slice sizes; bounded
                cache.clear()
            cache[full] = make()
        return cache[full]

    def forward(self, feat: torch.Tensor, scale: tuple[float, float], force_general: bool = False) -> torch.Tensor:
        n, c, h, w = feat.shape
        sh, sw = scale
        if not force_general and float(sh).is_integer() and float(sw).is_integer():
            return self._integer(feat, int(sh), int(sw), scale)
        oh, ow = out_size(h, w, scale)
        key = (float(sh), float(sw), h, w, feat.device, feat.dtype)

        def maps():
            qh, dh = _axis_map(oh, h, sh)
            qw, dw = _axis_map(ow, w, sw)
            uh, ih = torch.unique(dh, return_inverse=True)
            uw, iw = torch.unique(dw, return_inverse=True)
            return qh, qw, uh, uw, ih, iw

        qh, qw, uh, uw, ih, iw = self._cached(("maps",) + key, maps)
        if not force_general and len(uh) * len(uw) <= _CLASS_CONV_LIMIT * sh * sw:
            return self._by_offset_class(feat, scale, key, qh, qw, uh, uw, ih, iw)
        k, r = self.kernel, self.kernel // 2
        taps = torch.arange(k)
        fp = F.pad(feat, (r, r, r, r))
        cols = (qw[:, None] + taps[None, :]).to(feat.device)  # padded column index of each tap
        iw = iw.to(feat.device)
        per_row = max(1, (n + self.out_channels) * c * k * k * ow * feat.element_size())
        step = max(1, self.chunk_bytes // per_row)
        outs = []
        for r0 in range(0, oh, step):
            r1 = min(oh, r0 + step)
            rows = (qh[r0:r1, None] + taps[None, :]).to(feat.device)  # (R, k)
            patches = fp[:, :, rows, :][..., cols]  # (n, c, R, k, ow, k)
            used, local = torch.unique(ih[r0:r1], return_inverse=True)
            wt = self.filters(uh[used], uw, scale, feat)  # (U, Dw, o, c, k, k)
            wpix = wt[local.to(feat.device)][:, iw]  # (R, ow, o, c, k, k)
            outs.append(torch.einsum("ncrupv,rpocuv->norp", patches, wpix))
        return torch.cat(outs, dim=2)

    def _by_offset_class(self, feat: torch.Tensor, scale: tuple[float, float], key: tuple, qh, qw, uh, uw,
                         ih, iw) -> torch.Tensor:
        # Few distinct offsets (a rational factor p/q has at most p per axis): every output pixel of one
        # (row offset, column offset) class uses the same filter, so each class is ONE convolution of the
        # LR features evaluated at the classes' nearest LR pixels - the same sums as the per-pixel path,
        # without materialising a filter per output pixel. Runs per row class to bound memory.
        n, c, h, w = feat.shape
        o, a, b = self.out_channels, len(uh), len(uw)
        wt = self._cached(("filters",) + key, lambda: self.filters(uh, uw, scale, feat))  # (a, b, o, c, k, k)
        dev = feat.device
        out = None  # made on the first class, in the dtype the conv computes (bf16 under autocast)
        col_cls, col_q = iw.to(dev), qw.to(dev)
        for cls in range(a):
            rows = torch.nonzero(ih == cls).flatten()
            y = F.conv2d(feat, wt[cls].reshape(b * o, c, self.kernel, self.kernel), padding=self.kernel // 2)
            y = y.view(n, b, o, h, w)[:, :, :, qh[rows].to(dev)]  # (n, b, o, R, w)
            if out is None:
                out = y.new_empty(n, o, len(qh), len(qw))
            out[:, :, rows.to(dev)] = y.permute(0, 2, 3, 1, 4)[:, :, :, col_cls, col_q]  # (n, o, R, ow)
        return out

    def _integer(self, feat: torch.Tensor, sh: int, sw: int, scale: tuple[float, float]) -> torch.Tensor:
        # For integer s the nearest LR pixel of output p is p // s and the offsets repeat with period s,
        # so the per-pixel filters are s_h·s_w fixed filters: one conv, then interleave the phases.
        n, c, h, w = feat.shape
        o = self.out_channels

        def phase_filters() -> torch.Tensor:
            _, dh = _axis_map(sh, 1, sh)
            _, dw = _axis_map(sw, 1, sw)
            wt = self.filters(dh, dw, scale, feat)  # (sh, sw, o, c, k, k)
            return wt.permute(2, 0, 1, 3, 4, 5).reshape(o * sh * sw, c, self.kernel, self.kernel)

        weight = self._cached(("phases", sh, sw, feat.device, feat.dtype), phase_filters)
        y = F.conv2d(feat, weight, padding=self.kernel // 2)
        y = y.view(n, o, sh, sw, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(n, o, h * sh, w * sw)


class PFMDN(nn.Module):
    """Pyramidal feature multi-distillation network (see the module docstring).

    ``forward(x, scale=None)``: x (N, 1, H, W) in about [0, 1]; scale None uses the build-time scale,
    else a float or (sh, sw), each >= 1. Eval mode returns the SR image (N, 1, round(H·sh), round(W·sw));
    training mode returns {"sr": SR image, "grad": predicted gradient map of the SR image}.
    """

    def __init__(self, scale: tuple[float, float] = (2.0, 2.0), channels: int = 32, blocks: int = 3,
                 grad_channels: int = 16, window: Optional[int] = 11, meta_hidden: int = 64):
        super().__init__()
        self.scale = _check_scale(scale)
        self.shift = MeanShift(0.5, sign=-1)
        self.head = conv3x3(1, channels)
        self.blocks = nn.ModuleList(MultiDistillationBlock(channels, window) for _ in range(blocks))
        self.collect = nn.Sequential(conv1x1(blocks * channels, channels), activation("lrelu"),
                                     conv3x3(channels, channels))
        self.gradient = GradientBranch(grad_channels, channels, blocks)
        self.fuse = conv3x3(channels + grad_channels, channels)
        self.upsample = MetaUpsampler(channels, 1, hidden=meta_hidden)
        self.grad_upsample = MetaUpsampler(grad_channels, 1, hidden=meta_hidden)
        self.receptive_field = receptive_field(blocks, window)

    def forward(self, x: torch.Tensor, scale: ScaleArg = None):
        if x.dim() != 4 or x.shape[1] != 1:
            raise MedSRError(f"PFMDN expects (N, 1, H, W) images, got shape {tuple(x.shape)}")
        s = self.scale if scale is None else _check_scale(as_pair(scale))
        # channels_last: 2-6x faster grouped/large-kernel convs and box filters on CPU (oneDNN), same results.
        # The head runs without autocast, so the residual stream it starts (every block adds onto it)
        # stays float32 under bf16 autocast while the blocks compute in bf16; the same for the gradient
        # branch's stream.
        with torch.autocast(device_type=x.device.type, enabled=False):
            f0 = self.head(self.shift(x)).contiguous(memory_format=torch.channels_last)
        outs = []
        f = f0
        for blk in self.blocks:
            f = blk(f)
            outs.append(f)
        trunk = self.collect(torch.cat(outs, dim=1)) + f0
        gfeat = self.gradient(gradient_map(x).contiguous(memory_format=torch.channels_last), outs)
        fused = trunk + self.fuse(torch.cat([trunk, gfeat], dim=1))
        base = resize_bicubic(x, s)
        sr = (self.upsample(fused, s) + base).contiguous()
        if not self.training:
            return sr
        grad = (self.grad_upsample(gfeat, s) + gradient_map(base)).contiguous()
        return {"sr": sr, "grad": grad}


def receptive_field(blocks: int, window: Optional[int]) -> int:
    """LR pixels on each side that one output pixel depends on (the overlap exact tiling needs).

    head conv 1; per block 3 shallow residual convs + pyramid radius 4 + attention window//2; the
    collect conv 1; the gradient branch (gradient map 1, embed 1, one 3×3 per step on top of the
    block it reads); fuse conv 1; then the upsampler: an output pixel at LR coordinate c reads the
    3×3 features around its nearest pixel q, |q − c| <= 0.5, i.e. up to 1.5 from c (counted as 2), and
    its bicubic residual reads up to 2 from c.
    """
    per_block = 3 + 4 + (window // 2 if window else 0)
    sr, grad = 1, 2
    for _ in range(blocks):
        sr += per_block
        grad = max(grad, sr) + 1
    fused = max(sr + 1, grad) + 1
    return max(fused + 2, 2)


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    sh, sw = float(scale[0]), float(scale[1])
    if not (math.isfinite(sh) and math.isfinite(sw)) or min(sh, sw) < 1.0:
        raise MedSRError(f"PFMDN needs scale factors >= 1 on both axes, got {scale}")
    return sh, sw


_PRESETS = {
    "light": dict(channels=32, blocks=3, grad_channels=16, window=11, meta_hidden=64),
    "base": dict(channels=64, blocks=6, grad_channels=32, window=11, meta_hidden=128),
}


def build_pfmdn(preset: str = "light", scale: tuple[float, float] = (2.0, 2.0)) -> PFMDN:
    """PFMDN at ``preset`` ("light": 32 ch × 3 MDBs for CPU; "base": 64 ch × 6 MDBs)."""
    if preset not in _PRESETS:
        raise MedSRError(f"PFMDN has presets {list(_PRESETS)}, not '{preset}'")
    return PFMDN(scale=as_pair(scale), **_PRESETS[preset])


register(ModelSpec(
    name="pfmdn",
    kind="network",
    title="PFMDN (pyramidal feature multi-distillation network)",
    paper=("Ren S, Guo K, Ma J, Zhu F, Hu B, Zhou H. Realistic medical image super-resolution with pyramidal "
           "feature multi-distillation networks for intelligent healthcare systems. Neural Computing and "
           "Applications (2021). doi:10.1007/s00521-021-06287-x"),
    builder=build_pfmdn,
    scales=None,
    per_axis=True,
    presets={"light": "32 channels, 3 multi-distillation blocks (CPU)",
             "base": "64 channels, 6 multi-distillation blocks (GPU)"},
    tile_safe=True,
    receptive_field=receptive_field(_PRESETS["base"]["blocks"], _PRESETS["base"]["window"]),
    min_size=4,
    half=("fp16", "bf16"),
    summary=(
        "PFMDN stacks multi-distillation blocks that progressively split off distilled channels, refine the "
        "rest with shallow residual blocks and add a pyramidal convolution (3/5/7/9 kernels, grouped); each "
        "block ends in an information-entropy contrast-aware channel attention (mean + std + the Shannon "
        "entropy of each channel's spatial softmax, computed over a local window so tiling stays exact). "
        "A second branch processes the gradient "
        "map of the input with the SR branch's features and is fused into it; in training it also predicts "
        "the gradient map of the SR image, supervised with L1, alongside L1 and a contextual loss on the SR "
        "image. A Meta-SR-style position-to-weight upsampler makes any real factor >= 1 possible, with a "
        "different factor per axis (e.g. through-plane ×(1, 4))."
    ),
))
