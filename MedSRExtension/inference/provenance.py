"""``describe_run``: the provenance record of one super-resolution run (core.provenance stores it).

Built from the request and the input, resolved the way the engine resolves them (the default axis,
per-axis factors, the shipped preset, the weight files the model scales read, the device "auto"
picks), so the record says what actually ran, not only what was asked.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Optional

from MedSRExtension.core.provenance import DERIVED
from MedSRExtension.core.volume import Volume


def _numbers(values) -> str:
    return ",".join(f"{float(v):.6g}" for v in values)


def describe_run(volume: Volume, result: Volume, options: dict, source: Optional[str] = None) -> dict[str, str]:
    """What made ``result`` from ``volume`` with the engine ``options`` (the keywords of
    ``super_resolve``: model, scale, spacing, mode, axis, device, preset, weights, ...)."""
    from MedSRExtension import __version__
    from MedSRExtension.inference.devices import resolve_device
    from MedSRExtension.inference.engine import model_scales, resolve_factors
    from MedSRExtension.models.registry import get_spec
    from MedSRExtension.zoo import weights as zoo

    requested = options.get("model", "bicubic")
    model = result.meta.get("model_used", requested)  # the do-no-harm gate may have chosen B-spline
    weights_option = options.get("weights", "auto") if model == requested else "auto"
    spacing = options.get("spacing")
    factors, axis = resolve_factors(volume, options.get("mode", "inplane"), options.get("axis", "auto"),
                                    scale=None if spacing is not None else options.get("scale", 2.0), spacing=spacing)
    spec = get_spec(model)
    weights = os.fspath(weights_option)
    used = zoo.weights_used(model, model_scales(model, factors, axis), options.get("preset"), weights,
                            thickness=result.meta.get("slice_thickness"),
                            family=options.get("trained_on", "bicubic")) \
        if spec.kind == "network" else []
    if spec.kind != "network":
        weights_text, preset = "none (classical)", "-"
    elif weights == "random":
        weights_text, preset = "random (untrained)", options.get("preset") or "light"
    else:
        weights_text = ", ".join(os.path.basename(path) for path, _, _ in used)
        preset = options.get("preset") or (used[0][2] if used else "light")
    record = {
        "medsr_version": __version__,
        "derived": DERIVED,
        "model": model,
        "kind": spec.kind,
        "preset": preset,
        "weights": weights_text,
        "weights_sha256": ", ".join(sha for _, sha, _ in used) or "-",
        "scale": _numbers(factors),
        "spacing": _numbers(result.spacing),
        "input_spacing": _numbers(volume.spacing),
        "mode": options.get("mode", "inplane"),
        "axis": axis,
        "adapt": str(options.get("adapt") or "off"),
        "ensemble": str(options.get("ensemble") or 1),
        "values": result.meta.get("values", "raw network output"),
        "gate": result.meta.get("gate", "-"),
        "consistency": result.meta.get("consistency", "-"),
        "slice_profile": result.meta.get("profile") or (result.meta.get("adapt") or {}).get("profile") or "-",
        "device": str(resolve_device(options.get("device", "auto"))),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if model != requested:
        record["requested_model"] = requested
    if options.get("fallback"):
        record["fallback"] = options["fallback"]
    if source:
        record["source"] = os.path.basename(os.path.normpath(source))
    return record
