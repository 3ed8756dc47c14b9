"""The inference engine: ``super_resolve`` runs any registry model (network or classical) over a
volume slice-wise, in batches and tiles, and returns a Volume on the exact upsampled grid.

Passes (DESIGN.md "Modes"): ``inplane`` scales the two axes of each slice perpendicular to
``axis``; ``throughplane`` scales ``axis`` alone with 2D passes over the two families of planes
that contain it, averaged; ``volumetric`` is an in-plane pass followed by a through-plane pass.

This module plans the passes and combines them into the output; ``model_cache`` decides which network
runs each pass and ``slice_pass`` sweeps a pass's slices in batches and tiles.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from MedSRExtension.core import geometry
from MedSRExtension.core import intensity
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import MODES, mode_factors
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.inference import fastpath, memory
from MedSRExtension.inference.devices import resolve_device
from MedSRExtension.inference.model_cache import ModelCache, model_run_scale
from MedSRExtension.inference.options import InferenceOptions
from MedSRExtension.inference.slice_pass import Cancel, Progress, SlicePass, SlicePassExecutor
from MedSRExtension.models.registry import ModelSpec, get_spec

__all__ = ["MODES", "InferenceOptions", "resolve_factors", "run_inference"]
MAX_OUTPUT_VOXELS = 2**30  # 4 GiB of float32; larger outputs need force=True (--force)
DEFAULT_NETWORK_TILE = 384


def resolve_factors(volume: Volume, mode: str, axis: str, scale=None,
                    spacing=None) -> tuple[tuple[float, float, float], str]:
    """Per-axis factors (i, j, k) and the resolved axis for a request, validated against the mode."""
    if mode not in MODES:
        raise MedSRError(f"mode must be one of {', '.join(MODES)}, got '{mode}'; pick one of those")
    axis = geometry.parse_axis(volume, axis)
    a = AXES.index(axis)
    single_slice = volume.array.shape[0] == 1
    if single_slice and (mode != "inplane" or axis != "k"):
        raise MedSRError("a 2D image (one slice) can only be super-resolved in-plane with axis k; "
                         "use --mode inplane --axis k (the defaults)")
    if spacing is not None and scale is not None:
        raise MedSRError("a scale and a target spacing were both given; give only one of them")
    if spacing is not None:
        full = geometry.factors_for_spacing(volume, spacing)
        if np.ndim(spacing) == 0:  # a scalar spacing applies to the axes the mode scales
            full = mode_factors(full, mode, axis)
        factors = full
    else:
        scale = 2.0 if scale is None else scale
        if np.ndim(scale) == 0:
            factors = mode_factors(float(scale), mode, axis)
        else:
            factors = tuple(float(v) for v in scale)
            if len(factors) != 3:
                raise MedSRError(f"per-axis scale needs three factors (i, j, k), got {scale}; give one factor or three")
    if single_slice:
        factors = (factors[0], factors[1], 1.0)
    if any(not math.isfinite(f) or f < 1 for f in factors):
        raise MedSRError("scale factors must be >= 1 (super-resolution only), "
                         f"got {tuple(round(f, 4) for f in factors)}; "
                         "give factors of 1 or more (or a coarser --spacing)")
    if mode == "inplane" and factors[a] != 1:
        raise MedSRError(f"inplane mode does not scale axis {axis}; use volumetric mode to scale all axes")
    if mode == "throughplane" and any(factors[b] != 1 for b in range(3) if b != a):
        raise MedSRError(f"throughplane mode scales axis {axis} only; use volumetric mode to scale all axes")
    return factors, axis


def model_scales(model: str, factors_ijk: Sequence[float], axis: str) -> list[tuple[float, float]]:
    """The distinct scales the model runs at for these per-axis factors (which weights a run reads)."""
    spec = get_spec(model)
    out: list = []
    for group in _passes(factors_ijk, axis):
        for p in group:
            run_scale = model_run_scale(spec, p.scale)[0]
            if run_scale not in out:
                out.append(run_scale)
    return out


def _executor(spec: ModelSpec, options: InferenceOptions, progress: Progress, cancel: Cancel,
              network: Optional[torch.nn.Module], thickness: Optional[float]) -> SlicePassExecutor:
    """The slice-pass executor of one run and its model cache: the device, the CPU fast path (networks
    only), the tile (the networks' default unless given)."""
    device = resolve_device(options.device)
    fast = fastpath.choose(spec.name) if (options.fast and spec.kind == "network"
                                           and device.type == "cpu") else fastpath.FastPath()
    cache = ModelCache(spec, options.preset, options.weights, device, fast, network, thickness, options.trained_on)
    tile = options.tile if options.tile is not None else (DEFAULT_NETWORK_TILE if spec.kind == "network" else None)
    return SlicePassExecutor(cache, tile, options.batch, progress, cancel)


def _passes(factors_ijk: Sequence[float], axis: str) -> list[list[SlicePass]]:
    """Groups of passes: groups run in sequence, the passes inside a group are averaged."""
    f_kji = list(factors_ijk)[::-1]
    a = 2 - AXES.index(axis)  # array dimension of the axis
    others = [d for d in range(3) if d != a]
    groups = []
    inplane = tuple(f_kji[d] for d in others)
    if any(f != 1 for f in inplane):
        groups.append([SlicePass(a, inplane)])
    if f_kji[a] != 1:
        group = []
        for d in others:  # the two families of planes that contain the axis
            rest = [e for e in range(3) if e != d]
            group.append(SlicePass(d, tuple(f_kji[a] if e == a else 1.0 for e in rest)))
        groups.append(group)
    return groups


def _thickness_fraction(volume: Volume, options: InferenceOptions, factors) -> Optional[float]:
    """The slice thickness as a fraction of the slice spacing when exactly one axis is scaled (a
    through-plane run, or the self-check's one-axis passes) and ``thickness_mm`` is given; else None."""
    scaled = [a for a, f in enumerate(factors) if f > 1]
    if options.thickness_mm is None or len(scaled) != 1:
        return None
    return float(options.thickness_mm) / float(volume.spacing[scaled[0]])


def run_inference(volume: Volume, options: InferenceOptions, progress: Progress = None,
                  cancel: Cancel = None, network: Optional[torch.nn.Module] = None) -> Volume:
    """Run the engine as ``options`` say (see ``super_resolve``); the callbacks stay beside the options
    because they cannot cross a process boundary. ``network``: an in-memory module of ``options.model``
    to run instead of loading ``options.weights`` (the adaptation passes the network it tuned)."""
    from MedSRExtension.core.validation import check_volume
    check_volume(volume, "input volume")  # before any geometry is derived from it (the options checked themselves)
    options = options.for_volume(volume)[0]
    if options.adapt not in (None, False) and network is None:
        raise MedSRError("adaptation runs in the pipeline: call MedSRExtension.pipeline.run_pipeline "
                         "(or super_resolve) instead of run_inference")
    spec = get_spec(options.model)
    factors, axis = resolve_factors(volume, options.mode, options.axis,
                                    scale=None if options.spacing is not None else options.scale,
                                    spacing=options.spacing)
    shape, out_spacing, origin, direction = geometry.upsampled_geometry(volume, factors)
    if int(np.prod(shape, dtype=np.int64)) > MAX_OUTPUT_VOXELS and not options.force:
        raise MedSRError(f"output would have {np.prod(shape, dtype=np.int64):,} voxels {shape[::-1]}, over the "
                         f"limit of {MAX_OUTPUT_VOXELS:,}; lower the scale, crop the input, or force it (--force)")
    groups = _passes(factors, axis)
    shapes = _group_shapes(groups, volume.array.shape)
    memory.check_run_fits(volume.array.shape, shapes + (shapes[-1:] if options.confidence else []))
    thickness = _thickness_fraction(volume, options, factors)
    runner = _executor(spec, options, progress, cancel, network, thickness)
    window = intensity.robust_range(volume.array)
    shape_now = volume.array.shape
    for group in groups:  # count batches before running, for an honest progress total
        runner.total += sum(runner.count(shape_now, p) for p in group)
        shape_now = tuple(geometry.scaled_count(n, f) for n, f in
                          zip(shape_now, _group_factors(group, shape_now)))
    array, spread = _run_groups(runner, groups, volume.array, window, options.confidence)
    runner.check_cancel()
    if not groups:  # no pass (every factor 1): the result is a float32 copy of the input
        array = intensity.normalize(volume.array, window)[0]
    if array.shape != tuple(shape):
        raise MedSRError(f"internal error: model produced {array.shape}, expected {tuple(shape)}")
    out = intensity.denormalize(array, window, inplace=True)  # the engine's own buffer
    values = intensity.clamp_to_input(out, volume.array) if options.clamp == "input" else "raw network output"
    if options.out_dtype == "input":
        out = intensity.cast_like(out, volume.array.dtype, inplace=True)
    elif options.out_dtype != "float32":
        out = intensity.cast_like(out, np.dtype(options.out_dtype), inplace=True)
    meta = {"values": values}
    if thickness is not None:
        meta["slice_thickness"] = thickness
    if spread is not None:
        meta["confidence"] = Volume(spread, out_spacing, origin, direction)
    return Volume(out, out_spacing, origin, direction, meta=meta)


def _run_groups(runner: SlicePassExecutor, groups: list[list[SlicePass]], array: np.ndarray, window: tuple[float, float],
                confidence: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Every group of passes in turn, in normalised units; returns the last array and, with
    ``confidence``, how far the last group's two orientations disagree (input units). Memory: the input
    is read batch by batch (normalised per batch), each group writes one new array (averaged passes
    add into it)."""
    spread = None
    with fastpath.large_blocks_reused(), fastpath.denormals_flushed(runner.fast.flush_denormals):
        for i, group in enumerate(groups):
            source_window = window if i == 0 else None  # later groups read the normalised result
            result = runner.run_pass(array, group[0], source_window)
            first = result.copy() if confidence and len(group) == 2 and i == len(groups) - 1 else None
            for p in group[1:]:
                runner.run_pass(array, p, source_window, into=result)
            if len(group) > 1:
                result /= np.float32(len(group))
            if first is not None:  # |a - b| of the two orientations = 2 |a - mean|
                first -= result
                spread = np.abs(first, out=first)
                spread *= np.float32(2 * (window[1] - window[0]))
            array = result
    return array, spread


def _group_shapes(groups: list[list[SlicePass]], shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """The array shape each group of passes writes, in order (the last is the output's)."""
    out = []
    for group in groups:
        shape = tuple(geometry.scaled_count(n, f) for n, f in zip(shape, _group_factors(group, shape)))
        out.append(shape)
    return out


def _group_factors(group: list[SlicePass], shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """The per-array-dimension factors a group of passes applies (each pass leaves its slab axis)."""
    f = [1.0, 1.0, 1.0]
    for p in group:
        dims = [d for d in range(3) if d != p.slab]
        for d, s in zip(dims, p.scale):
            f[d] = max(f[d], s)
    return tuple(f)
