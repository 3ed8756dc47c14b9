"""``list_models()``: every registered model with its scales, presets, parameters and shipped weights."""
from __future__ import annotations

import functools

from MedSRExtension.models.registry import get_spec, names


def _shipped_weights(name: str) -> list[dict]:
    try:
        from MedSRExtension.zoo import weights as zoo
    except ImportError:  # the zoo arrives with the trained weights
        return []
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
