"""``list_models()``: every registered model with its scales, presets, parameters and shipped weights."""
from __future__ import annotations

import functools

from typing import Sequence, Union

from MedSRExtension.models.registry import get_spec, names


def default_model(scale: Union[float, Sequence[float]] = 2.0) -> str:
    """The model a user gets without choosing (CLI and Slicer panel alike): the shipped network with
    the best validation PSNR for ``scale`` (one factor, or per-axis: the largest), else bicubic."""
    from MedSRExtension.zoo import weights as zoo  # lazy: it imports torch
    return zoo.best_model_for(max(scale) if isinstance(scale, (tuple, list)) else scale)


def _shipped_weights(name: str) -> list[dict]:
    from MedSRExtension.zoo import weights as zoo  # lazy: it imports torch
    return [{"preset": e.get("preset"), "scales": e.get("scales"), "degradation": e.get("degradation"),
             "file": e.get("file"), "val_psnr": e.get("val_psnr"), "val_ssim": e.get("val_ssim")}
            for e in zoo.list_weights(name)]


@functools.lru_cache(maxsize=None)  # building a model (base presets too) is slow; counts never change
def _param_count(name: str, preset: str) -> int:
    from MedSRExtension.models.registry import build
    spec = get_spec(name)
    scale = 2 if spec.scales is None or 2 in spec.scales else spec.scales[0]
    return sum(p.numel() for p in build(name, preset=preset, scale=scale).parameters())


def list_models() -> list[dict]:
    """One record per model: name, kind ('network' | 'classical'), title, paper, scales (a list of
    integers, or "any" for arbitrary real factors), per_axis, presets {name: {description, params}},
    tile_safe, half, summary, and weights (the shipped weight entries)."""
    records = []
    for name in names():
        spec = get_spec(name)
        records.append({
            "name": name,
            "kind": spec.kind,
            "title": spec.title,
            "paper": spec.paper,
            "scales": "any" if spec.scales is None else list(spec.scales),
            "per_axis": spec.per_axis,
            "presets": {p: {"description": d, "params": _param_count(name, p)} for p, d in spec.presets.items()},
            "tile_safe": spec.tile_safe,
            "half": list(spec.half),
            "summary": spec.summary,
            "weights": _shipped_weights(name),
        })
    return records
