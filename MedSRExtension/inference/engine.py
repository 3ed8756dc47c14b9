"""The inference engine: ``super_resolve`` runs any registry model (network or classical) over a
volume slice-wise, in batches and tiles, and returns a Volume on the exact upsampled grid.

Passes (DESIGN.md "Modes"): ``inplane`` scales the two axes of each slice perpendicular to
``axis``; ``throughplane`` scales ``axis`` alone with 2D passes over the two families of planes
that contain it, averaged; ``volumetric`` is an in-plane pass followed by a through-plane pass.
"""
from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from MedSRExtension.core import geometry
from MedSRExtension.core import intensity
from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.core.geometry import MODES, mode_factors
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.inference import fastpath, fusion, memory
from MedSRExtension.inference.devices import amp_dtype, resolve_device
from MedSRExtension.inference.options import InferenceOptions
from MedSRExtension.inference.tiling import run_tiled
from MedSRExtension.models.descriptor import ModelDescriptor
from MedSRExtension.models.registry import ModelSpec, get_spec

__all__ = ["MODES", "InferenceOptions", "resolve_factors", "run_inference"]
MAX_OUTPUT_VOXELS = 2**30  # 4 GiB of float32; larger outputs need force=True (--force)
# LR pixels per batch for networks: on the CPU one 256² slice at a time keeps activations in cache
# (measured 1.65x faster than 4 slices per batch); GPUs want more work per launch.
NETWORK_BATCH_PIXELS = {"cpu": 2**16, "gpu": 2**20}
CLASSICAL_BATCH_PIXELS = 2**22
DEFAULT_NETWORK_TILE = 384

Progress = Optional[Callable[[int, int], None]]
Cancel = Optional[Callable[[], bool]]


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


def model_run_scale(spec: ModelSpec, scale: tuple[float, float]) -> tuple[tuple[float, float], bool]:
    """The scale to run the model at for a 2D pass at ``scale``, and whether a per-axis detour is
    needed (a fixed-scale model asked for (f, 1): run at (f, f) and average the extra axis back down)."""
    sh, sw = scale
    if sh != sw and not spec.per_axis and min(sh, sw) == 1:
        f = max(sh, sw)
        spec.check_scale((f, f))
        return (f, f), True
    spec.check_scale(scale)
    return scale, False


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


@dataclass
class _Pass:
    """One family of 2D slices: array axis ``slab`` indexes the slices; ``scale`` is (rows, cols)."""

    slab: int
    scale: tuple[float, float]


class _Runner:
    """Holds the model(s), device and progress state of one super_resolve call."""

    def __init__(self, spec: ModelSpec, options: InferenceOptions, progress: Progress, cancel: Cancel,
                 network: Optional[torch.nn.Module] = None, thickness: Optional[float] = None):
        self.spec, self.preset, self.weights = spec, options.preset, options.weights
        self.thickness = thickness  # through-plane: slice thickness / spacing, picks the shipped weights
        self.network = network
        self.device = resolve_device(options.device)
        tile = options.tile
        self.tile = tile if tile is not None else (DEFAULT_NETWORK_TILE if spec.kind == "network" else None)
        self.batch = options.batch
        self.progress, self.cancel = progress, cancel
        self.fast = fastpath.choose(spec.name) if (options.fast and spec.kind == "network"
                                                   and self.device.type == "cpu") else fastpath.FastPath()
        self.models: dict[tuple, ModelDescriptor] = {}
        self.routes: dict[tuple[float, float], object] = {}
        self.done = 0
        self.total = 0

    # --- models -------------------------------------------------------------------------
    def _model(self, scale: tuple[float, float]) -> ModelDescriptor:
        """The model for ``scale`` (one per weight file's degradation when it is arbitrary-scale), loaded once."""
        key = (None if self.spec.arbitrary_scale else scale, self._route(scale).degradation)
        if key not in self.models:
            from MedSRExtension.zoo.weights import load_model
            if self.network is not None:  # an in-memory network (one adapted to this volume)
                model = ModelDescriptor.of(self.spec.name, self.network.eval())
            else:
                model = load_model(self.spec.name, scale=scale, preset=self.preset, weights=self.weights, device="cpu",
                                   thickness=self.thickness)
            model.module = model.module.to(self.device)
            if self.channels_last:
                model.module = model.module.to(memory_format=torch.channels_last)
            if self.fast.fuse and self.device.type == "cpu":
                model.module = fusion.fused(model.module)  # a copy: an adapted network stays as it is
            self.models[key] = model
        return self.models[key]

    def _route(self, scale: tuple[float, float]):
        """zoo.route for a pass at ``scale`` (which shipped weights, transposed or not), once per scale;
        an in-memory network or the user's weights file runs as given."""
        if scale not in self.routes:
            from MedSRExtension.zoo.weights import route
            weights = "own" if self.network is not None else self.weights
            self.routes[scale] = route(self.spec.name, scale, self.preset, weights)
        return self.routes[scale]

    @property
    def channels_last(self) -> bool:
        """NHWC on CUDA always; on the CPU where it measured faster for this model."""
        return self.device.type == "cuda" or self.fast.channels_last

    def _autocast(self):
        """The reduced precision to run in: CUDA's AMP dtype, or bf16 on a CPU where it is allowed."""
        if self.device.type == "cuda":
            dtype = amp_dtype(self.device, self.spec.half)
            return ("cuda", dtype) if dtype is not None else None
        return ("cpu", torch.bfloat16) if self.fast.bf16 else None

    def _model_scale(self, scale: tuple[float, float]) -> tuple[tuple[float, float], bool]:
        return model_run_scale(self.spec, scale)

    # --- batches ------------------------------------------------------------------------
    def batch_size(self, rows: int, cols: int) -> int:
        if self.batch:
            return max(1, int(self.batch))
        if self.spec.kind == "network":
            budget = NETWORK_BATCH_PIXELS["cpu" if self.device.type == "cpu" else "gpu"]
        else:
            budget = CLASSICAL_BATCH_PIXELS
        return max(1, min(64, budget // max(1, rows * cols)))

    def prepare(self, scale: tuple[float, float]) -> None:
        """Route and load the model a pass at ``scale`` runs, before threads share the runner."""
        run_scale = self._model_scale(scale)[0]
        if self._route(run_scale).transpose:
            self.prepare(scale[::-1])
        else:
            self._model(run_scale)

    def _forward(self, x: torch.Tensor, scale: tuple[float, float], out_hw: tuple[int, int]) -> torch.Tensor:
        run_scale, detour = self._model_scale(scale)
        if self._route(run_scale).transpose:  # thickslice weights learnt the thick axis as the rows
            return self._forward(x.transpose(-2, -1).contiguous(), scale[::-1], out_hw[::-1]).transpose(-2, -1)
        model = self._model(run_scale)
        eff = (out_hw[0] / x.shape[-2], out_hw[1] / x.shape[-1]) if not detour else run_scale

        def call(t: torch.Tensor) -> torch.Tensor:
            return model(t, eff)

        tile = self.tile if self.spec.tile_safe else None
        overlap = model.receptive_field  # the preset's own reach
        autocast = self._autocast()
        with torch.inference_mode():
            x = x.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if autocast is not None:
                with torch.autocast(autocast[0], dtype=autocast[1]):
                    y = run_tiled(model.module, x, eff, tile, overlap, call)
            else:
                y = run_tiled(model.module, x, eff, tile, overlap, call)
            y = y.float()
            if detour:
                y = F.interpolate(y, size=out_hw, mode="area")
        return y

    def forward_batch(self, x: torch.Tensor, scale: tuple[float, float], out_hw: tuple[int, int]) -> np.ndarray:
        """Run one batch; on CUDA out-of-memory halve the tile and retry, then fall back to CPU."""
        while True:
            try:
                return self._forward(x, scale, out_hw).cpu().numpy()
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                current = self.tile or max(x.shape[-2:])
                smaller = current // 2
                if smaller >= max(32, 2 * self.spec.receptive_field + 8) and self.spec.tile_safe:
                    self.tile = smaller
                    warnings.warn(f"CUDA out of memory: retrying with tile {smaller}", RuntimeWarning, stacklevel=2)
                    continue
                warnings.warn("CUDA out of memory even with small tiles: continuing on the CPU", RuntimeWarning,
                              stacklevel=2)
                self.device = torch.device("cpu")
                self.fast = fastpath.FastPath()  # the GPU fallback runs the plain fp32 CPU path
                for model in self.models.values():
                    model.module = model.module.to("cpu", memory_format=torch.contiguous_format)

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("super-resolution cancelled; no output was made")

    # --- passes -------------------------------------------------------------------------
    def count(self, shape: tuple[int, int, int], p: _Pass) -> int:
        """Batches of pass ``p`` over an array of ``shape``; refuses slices the model cannot take."""
        rows, cols = [shape[d] for d in range(3) if d != p.slab]
        self.spec.check_size(rows, cols)
        return math.ceil(shape[p.slab] / self.batch_size(rows, cols))

    def run_pass(self, array: np.ndarray, p: _Pass, window: Optional[tuple[float, float]] = None,
                 into: Optional[np.ndarray] = None) -> np.ndarray:
        """Apply the model to every slice of ``array`` across axis ``p.slab``: a new float32 array, or
        added into ``into`` (a pass averaged with others). ``window``: ``array`` is in file units and
        each batch is normalised as it is read, so no normalised copy of the volume is ever made."""
        slices = np.moveaxis(array, p.slab, 0)
        n, rows, cols = slices.shape
        out_hw = (geometry.scaled_count(rows, p.scale[0]), geometry.scaled_count(cols, p.scale[1]))
        out = np.empty((n,) + out_hw, dtype=np.float32) if into is None else np.moveaxis(into, p.slab, 0)
        if out.shape != (n,) + out_hw:
            raise MedSRError(f"internal error: pass output {out.shape} does not match {(n,) + out_hw}")
        step = self.batch_size(rows, cols)
        starts = range(0, n, step)

        def run_batch(start: int) -> None:
            batch = np.array(slices[start:start + step], dtype=np.float32)  # this batch only, C-ordered
            if window is not None:
                intensity.normalize_into(batch, window)
            y = self.forward_batch(torch.from_numpy(batch)[:, None], p.scale, out_hw)[:, 0]
            if into is None:
                out[start:start + step] = y
            else:
                out[start:start + step] += y

        workers = self.slice_workers(len(starts))
        if workers == 1:
            for start in starts:
                self.check_cancel()
                run_batch(start)
                self.tick()
        else:
            self.prepare(p.scale)  # loaded once, before the threads share the runner
            with fastpath.slice_pool(workers, self.fast.flush_denormals) as pool:
                pending: deque = deque()
                for start in starts:  # at most `workers` batches in flight; progress in batch order
                    self.check_cancel()
                    pending.append(pool.submit(run_batch, start))
                    if len(pending) == workers:
                        pending.popleft().result()
                        self.tick()
                while pending:
                    pending.popleft().result()
                    self.tick()
        return np.moveaxis(out, 0, p.slab) if into is None else into

    def slice_workers(self, batches: int) -> int:
        """Batches to run at once: the measured slice workers on a CPU with threads to split, else 1."""
        workers = self.fast.slice_workers if self.device.type == "cpu" else 1
        return workers if batches > 1 and torch.get_num_threads() >= workers > 1 else 1


def _passes(factors_ijk: Sequence[float], axis: str) -> list[list[_Pass]]:
    """Groups of passes: groups run in sequence, the passes inside a group are averaged."""
    f_kji = list(factors_ijk)[::-1]
    a = 2 - AXES.index(axis)  # array dimension of the axis
    others = [d for d in range(3) if d != a]
    groups = []
    inplane = tuple(f_kji[d] for d in others)
    if any(f != 1 for f in inplane):
        groups.append([_Pass(a, inplane)])
    if f_kji[a] != 1:
        group = []
        for d in others:  # the two families of planes that contain the axis
            rest = [e for e in range(3) if e != d]
            group.append(_Pass(d, tuple(f_kji[a] if e == a else 1.0 for e in rest)))
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
    runner = _Runner(spec, options, progress, cancel, network, thickness)
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


def _run_groups(runner: "_Runner", groups: list[list[_Pass]], array: np.ndarray, window: tuple[float, float],
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


def _group_shapes(groups: list[list[_Pass]], shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """The array shape each group of passes writes, in order (the last is the output's)."""
    out = []
    for group in groups:
        shape = tuple(geometry.scaled_count(n, f) for n, f in zip(shape, _group_factors(group, shape)))
        out.append(shape)
    return out


def _group_factors(group: list[_Pass], shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """The per-array-dimension factors a group of passes applies (each pass leaves its slab axis)."""
    f = [1.0, 1.0, 1.0]
    for p in group:
        dims = [d for d in range(3) if d != p.slab]
        for d, s in zip(dims, p.scale):
            f[d] = max(f[d], s)
    return tuple(f)
