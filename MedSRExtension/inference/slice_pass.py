"""Runs a family of 2D slices of a volume through a network: the slice-pass executor.

A ``SlicePass`` names the array axis that indexes the slices and the (rows, cols) scale of each.
``SlicePassExecutor.run_pass`` reads the slices batch by batch (normalising each batch as it is read,
so no normalised copy of the volume is made), runs each batch in tiles under the device's reduced
precision, retries a CUDA out-of-memory with smaller tiles and then on the CPU, runs batches on a
few threads where that measured faster, and reports progress and honours cancel between batches.
Which model runs is the ``ModelCache``'s business; how passes combine into a result is the engine's
(MONAI's SliceInferer idea: one object that knows how to sweep slices, whatever the network).
"""
from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from MedSRExtension.core import geometry, intensity
from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.inference import fastpath
from MedSRExtension.inference.devices import amp_dtype
from MedSRExtension.inference.model_cache import ModelCache
from MedSRExtension.inference.tiling import run_tiled

# LR pixels per batch for networks: on the CPU one 256² slice at a time keeps activations in cache
# (measured 1.65x faster than 4 slices per batch); GPUs want more work per launch.
NETWORK_BATCH_PIXELS = {"cpu": 2**16, "gpu": 2**20}
CLASSICAL_BATCH_PIXELS = 2**22

Progress = Optional[Callable[[int, int], None]]
Cancel = Optional[Callable[[], bool]]


@dataclass
class SlicePass:
    """One family of 2D slices: array axis ``slab`` indexes the slices; ``scale`` is (rows, cols)."""

    slab: int
    scale: tuple[float, float]


class SlicePassExecutor:
    """Batches, tiles, precision, progress and cancel of one run's slice passes.

    Args:
        cache: the run's models (and its device).
        tile: tile side in LR pixels, or None for whole slices.
        batch: slices per batch, or None to size batches from the slice size and device.
        progress: ``progress(done, total)`` after each batch; ``total`` is set by the caller.
        cancel: ``cancel()`` returning True stops the run (``Cancelled``) before the next batch.
    """

    def __init__(self, cache: ModelCache, tile: Optional[int], batch: Optional[int], progress: Progress = None,
                 cancel: Cancel = None):
        self.cache, self.spec = cache, cache.spec
        self.tile, self.batch = tile, batch
        self.progress, self.cancel = progress, cancel
        self.done = 0
        self.total = 0

    @property
    def fast(self) -> fastpath.FastPath:
        return self.cache.fast

    @property
    def device(self) -> torch.device:
        return self.cache.device

    # --- batches ------------------------------------------------------------------------
    def batch_size(self, rows: int, cols: int) -> int:
        """Slices per batch for slices of ``rows`` x ``cols``."""
        if self.batch:
            return max(1, int(self.batch))
        if self.spec.kind == "network":
            budget = NETWORK_BATCH_PIXELS["cpu" if self.device.type == "cpu" else "gpu"]
        else:
            budget = CLASSICAL_BATCH_PIXELS
        return max(1, min(64, budget // max(1, rows * cols)))

    def _autocast(self):
        """The reduced precision to run in: CUDA's AMP dtype, or bf16 on a CPU where it is allowed."""
        if self.device.type == "cuda":
            dtype = amp_dtype(self.device, self.spec.half)
            return ("cuda", dtype) if dtype is not None else None
        return ("cpu", torch.bfloat16) if self.fast.bf16 else None

    def _forward(self, x: torch.Tensor, scale: tuple[float, float], out_hw: tuple[int, int]) -> torch.Tensor:
        run_scale, detour = self.cache.run_scale(scale)
        if self.cache.route(run_scale).transpose:  # thickslice weights learnt the thick axis as the rows
            return self._forward(x.transpose(-2, -1).contiguous(), scale[::-1], out_hw[::-1]).transpose(-2, -1)
        model = self.cache.model(run_scale)
        eff = (out_hw[0] / x.shape[-2], out_hw[1] / x.shape[-1]) if not detour else run_scale

        def call(t: torch.Tensor) -> torch.Tensor:
            return model(t, eff)

        tile = self.tile if self.spec.tile_safe else None
        overlap = model.receptive_field  # the preset's own reach
        autocast = self._autocast()
        with torch.inference_mode():
            x = x.to(self.device)
            if self.cache.channels_last:
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
                self._after_out_of_memory(x)

    def _after_out_of_memory(self, x: torch.Tensor) -> None:
        """Halve the tile while it stays above the model's reach; else continue on the CPU."""
        smaller = (self.tile or max(x.shape[-2:])) // 2
        if smaller >= max(32, 2 * self.spec.receptive_field + 8) and self.spec.tile_safe:
            self.tile = smaller
            warnings.warn(f"CUDA out of memory: retrying with tile {smaller}", RuntimeWarning, stacklevel=3)
            return
        warnings.warn("CUDA out of memory even with small tiles: continuing on the CPU", RuntimeWarning,
                      stacklevel=3)
        self.cache.to_cpu()  # the GPU fallback runs the plain fp32 CPU path

    def tick(self) -> None:
        """One batch done: report progress."""
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def check_cancel(self) -> None:
        """Raise ``Cancelled`` when the caller asked to stop."""
        if self.cancel is not None and self.cancel():
            raise Cancelled("super-resolution cancelled; no output was made")

    # --- passes -------------------------------------------------------------------------
    def count(self, shape: tuple[int, int, int], p: SlicePass) -> int:
        """Batches of pass ``p`` over an array of ``shape``; refuses slices the model cannot take."""
        rows, cols = [shape[d] for d in range(3) if d != p.slab]
        self.spec.check_size(rows, cols)
        return math.ceil(shape[p.slab] / self.batch_size(rows, cols))

    def run_pass(self, array: np.ndarray, p: SlicePass, window: Optional[tuple[float, float]] = None,
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

        def run_batch(start: int) -> None:
            batch = np.array(slices[start:start + step], dtype=np.float32)  # this batch only, C-ordered
            if window is not None:
                intensity.normalize_into(batch, window)
            y = self.forward_batch(torch.from_numpy(batch)[:, None], p.scale, out_hw)[:, 0]
            if into is None:
                out[start:start + step] = y
            else:
                out[start:start + step] += y

        self._run_batches(run_batch, range(0, n, step), p.scale)
        return np.moveaxis(out, 0, p.slab) if into is None else into

    def _run_batches(self, run_batch: Callable[[int], None], starts: range, scale: tuple[float, float]) -> None:
        """``run_batch(start)`` for every start, in turn or on the slice pool; progress in batch order."""
        workers = self.slice_workers(len(starts))
        if workers == 1:
            for start in starts:
                self.check_cancel()
                run_batch(start)
                self.tick()
            return
        self.cache.prepare(scale)  # loaded once, before the threads share the cache
        with fastpath.slice_pool(workers, self.fast.flush_denormals) as pool:
            pending: deque = deque()
            for start in starts:  # at most `workers` batches in flight
                self.check_cancel()
                pending.append(pool.submit(run_batch, start))
                if len(pending) == workers:
                    pending.popleft().result()
                    self.tick()
            while pending:
                pending.popleft().result()
                self.tick()

    def slice_workers(self, batches: int) -> int:
        """Batches to run at once: the measured slice workers on a CPU with threads to split, else 1."""
        workers = self.fast.slice_workers if self.device.type == "cpu" else 1
        return workers if batches > 1 and torch.get_num_threads() >= workers > 1 else 1
