"""``list_models()``: every registered model with its scales, presets, parameters and shipped weights."""
from __future__ import annotations

import functools

from typing import Optional, Sequence, Union

from MedSRExtension.models.registry import get_spec, names


def default_model(scale: Union[float, Sequence[float]] = 2.0) -> str:
    """The model a user gets without choosing (CLI and Slicer panel alike): the shipped network with
    the best validation PSNR for ``scale`` (one factor, or per-axis: the largest), else bicubic."""
    from MedSRExtension.zoo import weights as zoo  # lazy: it imports torch
    return zoo.best_model_for(max(scale) if isinstance(scale, (tuple, list)) else scale)


def fallback_reason(scale: Union[float, Sequence[float]] = 2.0) -> Optional[str]:
    """Why ``default_model(scale)`` is a classical baseline, in one line for the user and the provenance;
    None when it is a network."""
    from MedSRExtension.zoo import weights as zoo  # lazy: it imports torch
    model = default_model(scale)
    if get_spec(model).kind == "network":
        return None
    factor = max(scale) if isinstance(scale, (tuple, list)) else scale
    why = zoo.where_looked() if zoo.models_dir() is None else \
        f"no shipped network serves x{float(factor):g} ({zoo.where_looked()})"
    return f"no --model given and {why}: running {model} interpolation instead; give --model to choose"


def _shipped_weights(name: str) -> list[dict]:
    from MedSRExtension.zoo import weights as zoo  # lazy: it imports torch
    return [{"preset": e.get("preset"), "scales": e.get("scales"), "degradation": e.get("degradation"),
             "file": e.get("file"), "val_psnr": e.get("val_psnr"), "val_ssim": e.get("val_ssim"),
             "scale_range": e.get("scale_range")}
            for e in zoo.list_weights(name)]


@functools.lru_cache(maxsize=None)  # building a model (base presets too) is slow; counts never change
def _param_count(name: str, preset: str) -> int:
    from MedSRExtension.models.registry import build
    spec = get_spec(name)
    scale = 2 if spec.scales is None or 2 in spec.scales else spec.scales[0]
    return sum(p.numel() for p in build(name, preset=preset, scale=scale).parameters())


def _through_factors(w: dict) -> str:
    """The through-plane factors f one weight entry serves as a (f, 1) pass (zoo.weights._serves)."""
    if w.get("scale_range"):
        return f"f in [{w['scale_range'][0]:g}, {w['scale_range'][1]:g}]"
    if (w.get("degradation") or "bicubic") == "thickslice":
        return "f = " + "/".join(f"{float(s):g}" for s in w.get("scales") or [])
    return ""


def throughplane_route(name: str, weights: list[dict]) -> str:
    """Which weight file serves which factor f of ``medsr run --mode throughplane`` (zoo.weights.route)."""
    spec = get_spec(name)
    if spec.kind == "classical":
        return "any factor (interpolation along the axis)" if spec.per_axis else "integer factors of its scales"
    if spec.per_axis and spec.arbitrary_scale:
        thick = [w for w in weights if w.get("degradation") == "thickslice" and _through_factors(w)]
        rest = [w for w in weights if w not in thick and _through_factors(w)]
        served = [f"{w['file']} (thickslice) serves {_through_factors(w)}" for w in thick] + [
            f"{w['file']} ({w.get('degradation') or 'bicubic'}) serves {_through_factors(w)}"
            + (" where no thickslice file does" if thick else "") for w in rest]
        return (f"direct (f, 1) passes: {'; '.join(served) or 'no weights'}; "
                "any f > 1 with --adapt (tuned on the volume first)")
    have = sorted({int(s) for w in weights if (w.get("degradation") or "bicubic") == "bicubic"
                   for s in w.get("scales") or []})
    at = "{" + ", ".join(map(str, have)) + "}" if have else "no factor (no weights)"
    return f"detour only: (f, f) passes averaged back along the unscaled axis, at f in {at}"


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
        records[-1]["throughplane"] = throughplane_route(name, records[-1]["weights"])
    return records
