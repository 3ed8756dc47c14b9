"""ICONet: iterative collaboration network guided by a reconstruction prior.

Kui X, Ji Z, Zou B, Li Y, Dai Y, Chen L, Vera P, Ruan S, "Iterative Collaboration Network Guided by
Reconstruction Prior for Medical Image Super-Resolution", IEEE Transactions on Computational Imaging
11:827-838 (2025), arXiv:2504.16958. No code is public; this file builds each component from what the
paper states and says what we chose where it is silent.

Component by component:

- **Reconstruction branch** — paper: generates the artifact-free image as a prior. Ours: at each stage
  a branch of RSCFL modules working at the stage's *input* resolution that outputs a restored image of
  that size (input + predicted correction). It is supervised with the clean image at that resolution
  (``losses.ICONetLoss``), and its output is the prior the SR image is built on: the stage's SR output
  is the bicubic ×2 of the reconstruction plus a learned residual, so artifacts removed by the
  reconstruction are not magnified.
- **SR branch guided by the prior** — paper: a super-resolution branch for prior-guided SR. Ours: a
  parallel chain of RSCFL modules, an EDSR sub-pixel ×2 upsampler and a 3×3 output conv.
- **SR-Rec fusion** — paper: fuses reconstruction prior and SR features *with each other* in an
  adaptive manner. Ours (``SRRecFusion``), after every group of modules: gates
  a_sr, a_rec = sigmoid(1×1 conv of [F_sr, F_rec]) computed from both branches;
  F_sr += a_sr ⊙ W_1(F_rec) (prior → SR) and F_rec += a_rec ⊙ W_2(F_sr) (SR → reconstruction), so each
  branch decides per pixel and channel how much of the other to take in.
- **RSCFL module** — paper: residual spatial-channel feature learning with two branches that model
  spatial and channel relationships efficiently, explicitly not quadratic like Transformers. Ours
  (``RSCFL``): on a channel-layer-normalised input, a *spatial branch* (1×1 → GELU → 7×7 depthwise:
  large-kernel spatial mixing) and a *channel branch* (transposed multi-head self-attention as in
  Restormer: queries/keys/values from 1×1 + 3×3 depthwise convs, attention between channels, a d×d map
  per head, L2-normalised with a learned temperature) are concatenated and fused by one 1×1 conv (the
  output projection of both branches) into a residual, followed by a residual pixel-wise feed-forward
  (1×1 → GELU → 1×1). Cost is linear in H·W:
  the channel attention costs O(C·d·H·W) for head width d.
- **Multi-stage ×2 steps with iterative collaboration** — paper: multi-stage models upscaling by ×2
  per step, with supervision at every stage. Ours: ×2 = one stage, ×4 = two stages with their own
  weights; stage t takes stage t−1's SR image as input and also its upsampled SR features (through a 1×1
  conv), so the collaboration continues across stages. Training mode returns every stage's SR and
  reconstruction outputs for the multi-stage loss; eval mode returns the final SR image.

Presets (measured with ``models.complexity`` on a 256×256 input): ``light`` 32 channels, per stage 2
groups of 2 SR + 1 reconstruction modules — 139 k parameters and 11.0 GMAC at ×2, 279 k and 55 GMAC at
×4 (the second stage runs at ×2 resolution); ``base`` 64 channels, 4 groups — 0.85 M / 71 GMAC at ×2,
1.70 M / 356 GMAC at ×4. The paper's parameter count is not in the material we could consult (the
abstract and front matter only); ``base`` is in the range of the efficient Transformer-style SR
networks it compares against.

Tiling: the channel attention summarises each channel over the whole image (that is what makes it
global yet linear), so tiled inference is an approximation (``tile_safe=False``); ``receptive_field``
is the reach of the convolutional path, the overlap that makes tiles agree closely.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from MedSRExtension.core.errors import MedSRError
from .blocks import (ConvMLP, LayerNorm2d, MeanShift, Upsampler, bicubic, conv, conv1x1, conv3x3,
                     integer_scale)
from .registry import ModelSpec, register


class SpatialBranch(nn.Module):
    """Large-kernel spatial mixing: 1×1 → GELU → k×k depthwise (local, receptive field k//2).

    Its output projection is the RSCFL fusion conv (two 1×1 convs in a row would be one linear map).
    """

    def __init__(self, channels: int, kernel: int = 7):
        super().__init__()
        self.net = nn.Sequential(conv1x1(channels, channels), nn.GELU(),
                                 conv(channels, channels, kernel, groups=channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ChannelAttention(nn.Module):
    """Transposed (channel-wise) multi-head self-attention: softmax(τ·q̂k̂ᵀ) v over channels, per head.

    q, k, v come from a 1×1 conv and a 3×3 depthwise conv; q̂, k̂ are L2-normalised over pixels so the
    (d×d per head) attention is scale-free; τ is learned per head. Linear in H·W; global over the image.
    Its output projection is the RSCFL fusion conv. Works on the pixels-last view of the features (free
    for channels-last tensors). Normalisation and softmax run in float32 (fp16/bf16 safety).
    """

    def __init__(self, channels: int, heads: int = 2):
        super().__init__()
        if channels % heads:
            raise ValueError(f"ChannelAttention: {channels} channels not divisible by {heads} heads")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Sequential(conv1x1(channels, 3 * channels),
                                 conv(3 * channels, 3 * channels, 3, groups=3 * channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        d = c // self.heads
        t = self.qkv(x).permute(0, 2, 3, 1).reshape(n, h * w, 3 * c)  # pixels-last: a free view
        with torch.autocast(device_type=x.device.type, enabled=False):  # sums over all pixels: float32
            q, k = t[:, :, :c].float(), t[:, :, c:2 * c].float()
            qk = q.transpose(1, 2) @ k  # (n, C, C) q·k products: a quarter of the full (2C, 2C) Gram matrix
            nq = q.square().sum(dim=1).clamp_min(1e-24).sqrt()  # ||q_i|| over pixels, (n, C)
            nk = k.square().sum(dim=1).clamp_min(1e-24).sqrt()
            cos = qk / (nq[:, :, None] * nk[:, None, :])  # (n, C, C) normalised q̂·k̂
            heads = cos.reshape(n, self.heads, d, self.heads, d).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)
            attn = torch.softmax(heads * self.temperature.float(), dim=-1)  # (n, heads, d, d)
        # block-diagonal (C, C): heads do not mix; built by broadcasting (no boolean scatter, so it exports)
        eye = torch.eye(self.heads, device=x.device, dtype=attn.dtype)
        mix = (attn[:, :, :, None, :] * eye[None, :, None, :, None]).reshape(n, c, c)
        out = t[:, :, 2 * c:] @ mix.transpose(1, 2).to(t.dtype)  # (n, P, C): out_i = Σ_j attn_ij v_j
        return out.reshape(n, h, w, c).permute(0, 3, 1, 2)


class RSCFL(nn.Module):
    """Residual spatial-channel feature learning: x + fuse([spatial(LN x), channel(LN x)]), then x + FFN(LN x)."""

    def __init__(self, channels: int, kernel: int = 7, heads: int = 2, ffn_ratio: float = 2.0):
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.spatial = SpatialBranch(channels, kernel)
        self.channel = ChannelAttention(channels, heads)
        self.fuse = conv1x1(2 * channels, channels)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = ConvMLP(channels, ffn_ratio)
        self.radius = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.fuse(torch.cat([self.spatial(y), self.channel(y)], dim=1))
        # the feed-forward is where reduced precision costs quality (measured: bf16 here is most of the
        # 0.1 dB bf16 loss on the validation regions), so it runs in float32 under autocast
        with torch.autocast(device_type=x.device.type, enabled=False):
            return x + self.ffn(self.norm2(x.to(self.norm2.weight.dtype)))  # float32 unless the model is cast


class SRRecFusion(nn.Module):
    """Adaptive two-way fusion: gates from both branches; prior -> SR and SR -> reconstruction transfers."""

    def __init__(self, channels: int):
        super().__init__()
        self.gates = nn.Sequential(conv1x1(2 * channels, 2 * channels), nn.Sigmoid())
        self.rec_to_sr = conv1x1(channels, channels)
        self.sr_to_rec = conv1x1(channels, channels)

    def forward(self, f_sr: torch.Tensor, f_rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_sr, a_rec = self.gates(torch.cat([f_sr, f_rec], dim=1)).chunk(2, dim=1)
        return f_sr + a_sr * self.rec_to_sr(f_rec), f_rec + a_rec * self.sr_to_rec(f_sr)


class ICONetStage(nn.Module):
    """One ×2 step: reconstruction branch + prior-guided SR branch, fused after each group of modules.

    ``forward(img, carry)`` -> (SR image ×2, reconstruction at the input size, SR features ×2).
    """

    def __init__(self, channels: int, groups: int, sr_per_group: int, rec_per_group: int,
                 kernel: int, heads: int, ffn_ratio: float, carry: bool):
        super().__init__()
        self.shift = MeanShift(0.5, sign=-1)
        self.sr_head = conv3x3(1, channels)
        self.rec_head = conv3x3(1, channels)
        self.carry = conv1x1(channels, channels) if carry else None

        def chain(n: int) -> nn.Sequential:
            return nn.Sequential(*(RSCFL(channels, kernel, heads, ffn_ratio) for _ in range(n)))

        self.sr_groups = nn.ModuleList(chain(sr_per_group) for _ in range(groups))
        self.rec_groups = nn.ModuleList(chain(rec_per_group) for _ in range(groups))
        self.fusions = nn.ModuleList(SRRecFusion(channels) for _ in range(groups))
        self.sr_body_tail = conv3x3(channels, channels)
        self.rec_tail = conv3x3(channels, 1)
        self.upsample = Upsampler(channels, 2)
        self.sr_tail = conv3x3(channels, 1)

    def forward(self, img: torch.Tensor, carry: Optional[torch.Tensor] = None):
        x = self.shift(img)
        # channels_last: faster depthwise convs and channel layer norms on CPU (oneDNN); same results.
        # The residual streams start and stay float32 under autocast (measured: rounding them to bf16
        # is a third of the bf16 quality loss); only the branches compute in reduced precision.
        with torch.autocast(device_type=x.device.type, enabled=False):
            f_sr0 = self.sr_head(x).contiguous(memory_format=torch.channels_last)
            if self.carry is not None and carry is not None:
                f_sr0 = f_sr0 + self.carry(carry.to(self.carry.weight.dtype))
            f_sr, f_rec = f_sr0, self.rec_head(x).contiguous(memory_format=torch.channels_last)
        for sr_blocks, rec_blocks, fusion in zip(self.sr_groups, self.rec_groups, self.fusions):
            f_sr, f_rec = fusion(sr_blocks(f_sr), rec_blocks(f_rec))
        rec = (self.rec_tail(f_rec) + img).contiguous()
        features = self.upsample(self.sr_body_tail(f_sr) + f_sr0)
        sr = (self.sr_tail(features) + bicubic(rec, 2)).contiguous()
        return sr, rec, features


class ICONet(nn.Module):
    """ICONet for ×2 (one stage) or ×4 (two stages). Input (N, 1, H, W) in about [0, 1].

    Eval mode: the SR image (N, 1, sH, sW). Training mode: {"sr": final SR, "stages_sr": [SR of each
    stage, ×2 then ×4], "stages_rec": [reconstruction of each stage, at its input size]}.
    """

    def __init__(self, scale: int = 2, channels: int = 32, groups: int = 2, sr_per_group: int = 2,
                 rec_per_group: int = 1, kernel: int = 7, heads: int = 2, ffn_ratio: float = 2.0):
        super().__init__()
        if scale not in (2, 4):
            raise MedSRError(f"ICONet upscales in ×2 steps and supports scales 2 and 4, got {scale}")
        self.scale = scale
        n_stages = 2 if scale == 4 else 1
        self.stages = nn.ModuleList(
            ICONetStage(channels, groups, sr_per_group, rec_per_group, kernel, heads, ffn_ratio, carry=t > 0)
            for t in range(n_stages))
        self.receptive_field = receptive_field(n_stages, groups, sr_per_group, rec_per_group, kernel)

    def forward(self, x: torch.Tensor):
        if x.dim() != 4 or x.shape[1] != 1:
            raise MedSRError(f"ICONet expects (N, 1, H, W) images, got shape {tuple(x.shape)}")
        stages_sr, stages_rec = [], []
        img, carry = x, None
        for stage in self.stages:
            img, rec, carry = stage(img, carry)
            stages_sr.append(img)
            stages_rec.append(rec)
        if not self.training:
            return img
        return {"sr": img, "stages_sr": stages_sr, "stages_rec": stages_rec}


def receptive_field(stages: int, groups: int, sr_per_group: int, rec_per_group: int, kernel: int) -> int:
    """Reach (LR pixels) of the convolutional path, i.e. ignoring the global channel attention.

    Per stage at its input resolution: heads 1 + per group max(sr, rec) chain of (k//2 + 1 for the
    depthwise q/k/v conv) per module + body tail 1 + upsampler conv 1 + output conv and bicubic of the
    reconstruction (about 2). A second stage runs at ×2, so its reach counts half in LR pixels.
    """
    per_module = max(kernel // 2, 1)
    per_stage = 1 + groups * max(sr_per_group, rec_per_group) * per_module + 1 + 1 + 2
    total, step = 0.0, 1.0
    for _ in range(stages):
        total += per_stage * step
        step /= 2
    return int(-(-total // 1))


_PRESETS = {
    "light": dict(channels=32, groups=2, sr_per_group=2, rec_per_group=1, kernel=7, heads=2, ffn_ratio=2.0),
    "base": dict(channels=64, groups=4, sr_per_group=2, rec_per_group=1, kernel=7, heads=4, ffn_ratio=2.0),
}


def build_iconet(preset: str = "light", scale: Sequence[float] = (2.0, 2.0)) -> ICONet:
    """ICONet at ``preset`` ("light": 32 ch, 6 modules per stage; "base": 64 ch, 12 modules per stage)."""
    if preset not in _PRESETS:
        raise MedSRError(f"ICONet has presets {list(_PRESETS)}, not '{preset}'")
    try:
        s = integer_scale(scale)
    except ValueError as exc:
        raise MedSRError(f"ICONet supports scales 2 and 4 on both axes, got {scale}") from exc
    return ICONet(scale=s, **_PRESETS[preset])


register(ModelSpec(
    name="iconet",
    kind="network",
    title="ICONet (iterative collaboration network, reconstruction prior)",
    paper=("Kui X, Ji Z, Zou B, Li Y, Dai Y, Chen L, Vera P, Ruan S. Iterative Collaboration Network Guided by "
           "Reconstruction Prior for Medical Image Super-Resolution. IEEE Transactions on Computational "
           "Imaging 11:827-838 (2025). arXiv:2504.16958"),
    builder=build_iconet,
    scales=(2, 4),
    per_axis=False,
    presets={"light": "32 channels, 6 RSCFL modules per ×2 stage (CPU)",
             "base": "64 channels, 12 RSCFL modules per ×2 stage (GPU)"},
    tile_safe=False,
    receptive_field=receptive_field(2, **{k: _PRESETS["base"][k]
                                          for k in ("groups", "sr_per_group", "rec_per_group", "kernel")}),
    min_size=4,
    half=("fp16", "bf16"),
    summary=(
        "ICONet upscales in ×2 stages (×4 = two stages). Each stage runs a reconstruction branch that restores "
        "an artifact-free image at the stage's input size — the prior — next to a super-resolution branch; "
        "after every group of modules an SR-Rec fusion exchanges features both ways through learned gates. "
        "Both branches are built from RSCFL modules: a large-kernel depthwise spatial branch and a transposed "
        "(channel-wise) self-attention branch, linear in image size. The SR image of a stage is the bicubic ×2 "
        "of its reconstruction plus a learned residual; the next stage continues from it and its features. "
        "Training supervises every stage's SR output and reconstruction."
    ),
))
