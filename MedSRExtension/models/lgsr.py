"""LGSR: local-to-global feature learning for medical image super-resolution.

Huang W, Liao X, Chen H, Hu Y, Jia W, Wang Q. "Deep local-to-global feature learning for medical
image super-resolution". Comput Med Imaging Graph 2024; 115:102374. doi:10.1016/j.compmedimag.2024.102374.
No code is public; what we could read of the paper is its abstract. Component by component:

Dynamic-local learning
    Paper: deformable convolutions with adjustable kernel shapes capture organs, tissues and vessels
    of diverse sizes and shapes that fixed-grid convolutions restore poorly.
    Ours: ``DeformResBlock`` = x + conv3×3(ReLU(DCNv2 3×3(x))) using the modulated deformable
    convolution of ``deform.py`` (offsets and masks predicted per pixel from the features, one
    offset group; zero-initialised so training starts from a regular grid). DCNv2 rather than DCNv1
    because its modulation also adjusts each tap's weight, i.e. the effective kernel shape.

Pixel-pixel global learning
    Paper: a non-local mechanism relating every pixel to every other.
    Ours: the embedded-Gaussian non-local block of Wang et al. (CVPR 2018):
    y_i = Σ_j softmax_j(θ(x_i)·φ(x_j)/√d) g(x_j), z = x + W y, with θ, φ, g, W 1×1 convs and
    d = C/2. Keys/values (φ, g) are taken from the features average-pooled to at most
    ``nl_kv``×``nl_kv`` positions — Wang et al.'s own sub-sampling trick, pushed to a fixed size — so
    memory and time are O(H·W·nl_kv²), linear in the slice size, while every query still sees a
    summary of the whole image (global, not windowed: windows would cut the long-range relations
    the paper wants). Attention runs through ``scaled_dot_product_attention`` (flash kernel: the
    H·W×nl_kv² matrix is never stored). The 1/√d scaling (absent in the original embedded Gaussian)
    can be absorbed into θ and keeps fp16 stable.

Patch-patch global learning
    Paper: a vision transformer (ViT) relating patches to patches.
    Ours: ``PatchViT``: p×p patch embedding (strided conv, C -> D), a conditional positional
    encoding (depthwise 3×3 conv on the token grid, CPVT, Chu et al. 2021) instead of a learned
    table, so any input size works without interpolating position tables; ``depth`` pre-norm
    transformer layers (multi-head self-attention + GELU MLP); then a 1×1 conv + pixel shuffle back
    to C channels at pixel resolution, added to the input. Memory stays bounded on large slices
    because keys/values are the token grid average-pooled to at most ``vit_kv``×``vit_kv``
    (spatial-reduction attention, PVT, Wang et al. ICCV 2021): O(T·vit_kv²) for T tokens, while
    every patch still attends over the whole image. Inputs not divisible by p are padded
    (replicate) and cropped back.

CNN-ViT hybrid in residual groups
    Paper: a CNN-ViT network combining the three kinds of learning, local to global.
    Ours: ``LocalGlobalGroup`` = [DeformResBlock × ``local_blocks``] -> non-local block ->
    PatchViT -> conv3×3, with a skip over the group (RCAN-style residual group); ``groups`` of them,
    then a conv and a long skip from the shallow features (residual-in-residual).

Reconstruction
    Paper: ×2/×3/×4 SR (the abstract states SR of LR images; it does not detail the upsampler).
    Ours: sub-pixel convolution: ``base`` uses EDSR's upsampler (×4 as two ×2 steps), ``light`` a
    single conv to s² channels + pixel shuffle (IMDN/RFDN style) to stay within the CPU budget.
    The network adds its output to the bicubic upsampling of the input (global residual), so the
    untrained network starts at bicubic; the input is shifted by −0.5 first.

Sizes
    Not stated in what we could read. ``light`` (4 groups × 32 channels, one deformable block per
    group, 1-layer ViT of width 48: 0.44 M parameters, 14.2 GMAC at 256² ×2, counted) is our CPU
    budget; on CPU the deformable sampling makes it about twice as slow per MAC as a plain CNN.
    ``base`` (6 groups × 64 channels, 2 deformable blocks per group, 2-layer ViT of width 128:
    4.7 M parameters, 145 GMAC at 256² ×2) is in the range of the CNN/ViT SR models LGSR is compared with
    (EDSR-baseline 1.4 M …
    SwinIR 11.8 M) — our choice, documented as such.

Tiling: the two global stages see the whole slice, so tiled inference is NOT exact
(``tile_safe=False``); the engine should run whole slices (memory is linear in H·W) and treat
``receptive_field`` as the overlap of the local part only.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import (ConvMLP, LayerNorm2d, MeanShift, PixelShuffleHead, Upsampler, activation, bicubic,
                     conv1x1, conv3x3, integer_scale)
from .deform import DeformConv2d
from .registry import ModelSpec, register

PRESETS = {
    "light": dict(channels=32, groups=4, local_blocks=1, nl_kv=16, vit_dim=48, vit_patch=4, vit_depth=1,
                  vit_heads=2, vit_kv=16, mlp_ratio=2.0, upsampler="direct"),
    "base": dict(channels=64, groups=6, local_blocks=2, nl_kv=32, vit_dim=128, vit_patch=4, vit_depth=2,
                 vit_heads=4, vit_kv=24, mlp_ratio=2.0, upsampler="edsr"),
}


def _pool_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool the spatial grid to at most size×size (unchanged where already smaller)."""
    h, w = x.shape[-2:]
    if h <= size and w <= size:
        return x
    return F.adaptive_avg_pool2d(x, (min(h, size), min(w, size)))


class DeformResBlock(nn.Module):
    """Dynamic-local learning: x + res_scale · conv3×3(act(DCNv2 3×3(x)))."""

    def __init__(self, channels: int, res_scale: float = 1.0, act: str = "relu"):
        super().__init__()
        self.dcn = DeformConv2d(channels, channels, 3)
        self.act = activation(act)
        self.conv = conv3x3(channels, channels)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv(self.act(self.dcn(x)))


class NonLocalBlock(nn.Module):
    """Pixel-pixel global learning: embedded-Gaussian non-local block with keys/values pooled to ≤ kv×kv.

    z = x + W·softmax(θ(x)ᵀφ(P(x))/√d)·g(P(x)) where P average-pools to at most kv×kv positions.
    """

    def __init__(self, channels: int, kv: int = 16, inner: int | None = None):
        super().__init__()
        inner = inner or max(1, channels // 2)
        self.kv = kv
        self.theta = conv1x1(channels, inner)
        self.phi = conv1x1(channels, inner)
        self.g = conv1x1(channels, inner)
        self.out = conv1x1(inner, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        pooled = _pool_to(x, self.kv)
        # contiguous (N, 1, L, d) operands let CPU use the flash kernel instead of materialising HW×P
        q = self.theta(x).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (N, 1, HW, d)
        k = self.phi(pooled).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (N, 1, P, d)
        v = self.g(pooled).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()
        y = F.scaled_dot_product_attention(q, k, v)  # (N, 1, HW, d)
        y = y.squeeze(1).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.out(y)


class PooledAttention(nn.Module):
    """Multi-head self-attention on a (N, D, h, w) token grid; keys/values pooled to ≤ kv×kv tokens."""

    def __init__(self, dim: int, heads: int, kv: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT width {dim} is not divisible by {heads} heads")
        self.heads, self.kv = heads, kv
        self.q = conv1x1(dim, dim)
        self.kv_proj = conv1x1(dim, 2 * dim)
        self.proj = conv1x1(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        n, d, h, w = t.shape
        hd = d // self.heads
        q = self.q(t).reshape(n, self.heads, hd, h * w).transpose(2, 3).contiguous()  # (N, heads, T, hd)
        kv = self.kv_proj(_pool_to(t, self.kv)).reshape(n, 2, self.heads, hd, -1).transpose(3, 4)
        y = F.scaled_dot_product_attention(q, kv[:, 0].contiguous(), kv[:, 1].contiguous())
        return self.proj(y.transpose(2, 3).reshape(n, d, h, w))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer on a token grid: t + MHSA(LN(t)), then t + MLP(LN(t))."""

    def __init__(self, dim: int, heads: int, kv: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = PooledAttention(dim, heads, kv)
        self.norm2 = LayerNorm2d(dim)
        self.mlp = ConvMLP(dim, mlp_ratio)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t + self.attn(self.norm1(t))
        return t + self.mlp(self.norm2(t))


class PatchViT(nn.Module):
    """Patch-patch global learning: patch embedding -> positional conv -> transformer layers -> unembed, + x."""

    def __init__(self, channels: int, dim: int, patch: int, depth: int, heads: int, kv: int, mlp_ratio: float):
        super().__init__()
        self.patch = patch
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)  # conditional positional encoding
        self.layers = nn.Sequential(*[TransformerLayer(dim, heads, kv, mlp_ratio) for _ in range(depth)])
        self.norm = LayerNorm2d(dim)
        self.unembed = nn.Sequential(conv1x1(dim, channels * patch * patch), nn.PixelShuffle(patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch
        ph, pw = (-h) % p, (-w) % p
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        t = self.embed(xp)
        t = t + self.pos(t)
        t = self.norm(self.layers(t))
        return x + self.unembed(t)[..., :h, :w]


class LocalGlobalGroup(nn.Module):
    """Residual group: deformable blocks (local) -> non-local (pixel-pixel) -> ViT (patch-patch) -> conv, + x."""

    def __init__(self, channels: int, local_blocks: int, nl_kv: int, vit_dim: int, vit_patch: int,
                 vit_depth: int, vit_heads: int, vit_kv: int, mlp_ratio: float):
        super().__init__()
        self.local = nn.Sequential(*[DeformResBlock(channels) for _ in range(local_blocks)])
        self.pixel_global = NonLocalBlock(channels, nl_kv)
        self.patch_global = PatchViT(channels, vit_dim, vit_patch, vit_depth, vit_heads, vit_kv, mlp_ratio)
        self.conv = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.patch_global(self.pixel_global(self.local(x))))


class LGSR(nn.Module):
    """LGSR: head conv -> local-to-global residual groups -> conv (long skip) -> upsampler, + bicubic(x)."""

    def __init__(self, scale: int = 2, channels: int = 32, groups: int = 4, local_blocks: int = 1,
                 nl_kv: int = 16, vit_dim: int = 48, vit_patch: int = 4, vit_depth: int = 1, vit_heads: int = 2,
                 vit_kv: int = 16, mlp_ratio: float = 2.0, upsampler: str = "direct"):
        super().__init__()
        self.scale = integer_scale(scale)
        self.shift = MeanShift(0.5, sign=-1)
        self.head = conv3x3(1, channels)
        self.body = nn.Sequential(*[
            LocalGlobalGroup(channels, local_blocks, nl_kv, vit_dim, vit_patch, vit_depth, vit_heads, vit_kv,
                             mlp_ratio) for _ in range(groups)])
        self.body_conv = conv3x3(channels, channels)
        if upsampler == "direct":
            self.up = PixelShuffleHead(channels, self.scale, 1)
        elif upsampler == "edsr":
            self.up = nn.Sequential(Upsampler(channels, self.scale), conv3x3(channels, 1))
        else:
            raise ValueError(f"unknown upsampler '{upsampler}'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the head runs without autocast, so the residual stream it starts stays float32 under bf16
        # autocast (every group adds onto it); measured: the bf16 cost on the validation regions fell
        # from -0.117 to -0.017 dB, the branches still compute in bf16
        with torch.autocast(device_type=x.device.type, enabled=False):
            f = self.head(self.shift(x))
        f = f + self.body_conv(self.body(f))
        return self.up(f) + bicubic(x, self.scale)


def build_lgsr(preset: str = "light", scale=(2.0, 2.0)) -> LGSR:
    """LGSR at ``preset`` for an integer ``scale`` (2, 3 or 4; same on both axes)."""
    return LGSR(scale=integer_scale(scale), **PRESETS[preset])


register(ModelSpec(
    name="lgsr",
    kind="network",
    title="LGSR (local-to-global CNN-ViT)",
    paper=("Huang W, Liao X, Chen H, Hu Y, Jia W, Wang Q. Deep local-to-global feature learning for medical "
           "image super-resolution. Comput Med Imaging Graph 2024; 115:102374. "
           "doi:10.1016/j.compmedimag.2024.102374"),
    builder=build_lgsr,
    scales=(2, 3, 4),
    per_axis=False,
    presets={"light": "4 groups × 32 channels, 1 deformable block each, 1-layer ViT width 48 (CPU)",
             "base": "6 groups × 64 channels, 2 deformable blocks each, 2-layer ViT width 128 (GPU)"},
    tile_safe=False,
    receptive_field=32,
    min_size=8,
    half=("fp16", "bf16"),
    summary=("CNN-ViT hybrid of Huang et al. (2024) built from its three kinds of feature learning, arranged "
             "in residual groups: dynamic-local learning with DCNv2 modulated deformable convolutions "
             "(learned per-pixel offsets and masks, pure torch), pixel-pixel global learning with an "
             "embedded-Gaussian non-local block, and patch-patch global learning with a vision-transformer "
             "stage (patch embedding, convolutional positional encoding, multi-head self-attention + MLP). "
             "Both global stages attend over the whole slice with keys/values pooled to a fixed grid, so "
             "memory grows linearly with the slice size; because they are global, tiled inference is only "
             "approximate. Sub-pixel upsampling for ×2/×3/×4 and a global bicubic residual."),
))
