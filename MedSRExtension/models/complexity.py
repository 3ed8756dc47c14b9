"""Parameter and multiply-accumulate (MAC) counts, measured with torch's FLOP counter, not estimated.

``count_gmacs`` runs one eval-mode forward pass of a 1-channel H×W input under
``torch.utils.flop_counter.FlopCounterMode`` and reports GMACs = FLOPs / 2 / 1e9. The counter knows
convolutions, matrix products and CUDA attention kernels. It does not know a few ops our models use,
so we add analytic counts for them (``_EXTRA``), keeping the number honest:

* CPU ``scaled_dot_product_attention`` (flash kernel for CPU): Sq·Sk·(Dqk + Dv) MACs per batch·head
  (Q·Kᵀ plus attention·V), the same formula torch uses for the CUDA kernels;
* ``grid_sample`` (deformable convolution): 4 MACs per output element for bilinear, 16 for bicubic;
  the CPU's weighted ``embedding_bag`` form of the same sampling: one MAC per gathered row element
  (4 corners × C per sample), the same count;
* bilinear / bicubic ``interpolate`` (global residuals, upsamplers): 4 / 16 MACs per output element.

Element-wise work (activations, normalisation, softmax, masks) is not counted, as is customary for
SR complexity tables. The pass runs on the ``meta`` device when possible (shapes only: instant, no
memory); otherwise on CPU with a random input.
"""
from __future__ import annotations

import copy
from typing import Iterable, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    b, h, sq, d = query
    sk, dv = key[-2], value[-1]
    return 2 * b * h * sq * sk * (d + dv)


def _grid_sample_flops(inp, grid, interpolation_mode=0, *args, out_shape=None, **kwargs) -> int:
    taps = {0: 4, 1: 0, 2: 16}.get(int(interpolation_mode), 4)
    return 2 * taps * _numel(out_shape)


def _embedding_bag_flops(weight, indices, *args, out_shape=None, **kwargs) -> int:
    return 2 * _numel(indices) * int(weight[-1])


def _bilinear_flops(*args, out_shape=None, **kwargs) -> int:
    return 2 * 4 * _numel(out_shape)


def _bicubic_flops(*args, out_shape=None, **kwargs) -> int:
    return 2 * 16 * _numel(out_shape)


_EXTRA = {
    aten.grid_sampler_2d: _grid_sample_flops,
    aten._embedding_bag: _embedding_bag_flops,
    aten._embedding_bag_forward_only: _embedding_bag_flops,
    aten.upsample_bilinear2d: _bilinear_flops,
    aten.upsample_bicubic2d: _bicubic_flops,
}
if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flops


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _count_flops(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False, custom_mapping=_EXTRA) as counter:
        module(x)
    return counter.get_total_flops()


def count_gmacs(module: nn.Module, h: int = 256, w: int = 256, channels: int = 1) -> float:
    """GMACs of one eval-mode forward pass on a (1, channels, h, w) input (the module is not modified)."""
    work = copy.deepcopy(module).eval()
    with torch.no_grad():
        try:
            flops = _count_flops(work.to("meta"), torch.empty(1, channels, h, w, device="meta"))
        except (NotImplementedError, RuntimeError):  # an op without a meta kernel: run it for real
            work = copy.deepcopy(module).eval().to("cpu", torch.float32)
            x = torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(0))
            flops = _count_flops(work, x)
    return flops / 2 / 1e9


def complexity_table(names: Iterable[str], presets: Optional[Sequence[str]] = None,
                     scales: Sequence[int] = (2, 4), h: int = 256, w: int = 256) -> list[dict]:
    """One row per (model, preset): params and GMACs for an h×w input at each scale.

    Keys: ``model``, ``preset``, ``kind``, and for each scale s ``params_x{s}`` and ``gmacs_x{s}``
    (None where the model does not support s; GMACs None for classical interpolation, which runs
    outside torch and has no parameters). ``presets=None`` means every preset of each model.
    """
    from .registry import build, get_spec

    rows = []
    for name in names:
        spec = get_spec(name)
        for preset in (presets if presets is not None else list(spec.presets)):
            if preset not in spec.presets:
                continue
            row: dict = {"model": name, "preset": preset, "kind": spec.kind}
            for s in scales:
                ok = spec.scales is None or s in spec.scales
                module = build(name, preset=preset, scale=s) if ok else None
                row[f"params_x{s}"] = count_params(module) if module is not None else None
                row[f"gmacs_x{s}"] = (count_gmacs(module, h, w)
                                      if module is not None and spec.kind == "network" else None)
            rows.append(row)
    return rows
