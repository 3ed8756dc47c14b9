"""Will a run fit in memory? Estimated before any work, so that an output far beyond the machine is
refused in one line instead of ending in an out-of-memory error after minutes (``--force`` lifts only
the voxel-count limit, never this check).

The engine holds the input, one float32 array per group of passes (a volumetric run keeps the in-plane
result while the through-plane pass writes the output) and a working set per batch; the caller then
hands the output on once (a file writer's or Slicer's copy). The estimate is compared with the memory
the operating system says is available (Linux ``MemAvailable``; elsewhere the physical memory).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from MedSRExtension.core.errors import MedSRError

WORKING_SET = 512 << 20  # batches, model activations and the interpreter's own
_GB = 1 << 30


def available_bytes() -> Optional[int]:
    """Memory the system can give this process now, or None when it cannot say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def run_bytes(input_shape: Sequence[int], group_shapes: Sequence[Sequence[int]]) -> int:
    """Bytes a run needs beyond its input: every group's float32 array, one copy of the output handed
    on, and the working set."""
    arrays = [int(np.prod(s, dtype=np.int64)) * 4 for s in group_shapes]
    handed_on = arrays[-1] if arrays else int(np.prod(input_shape, dtype=np.int64)) * 4
    return sum(arrays) + handed_on + WORKING_SET


def check_run_fits(input_shape: Sequence[int], group_shapes: Sequence[Sequence[int]]) -> None:
    """Refuse a run that needs more memory than is available."""
    need, have = run_bytes(input_shape, group_shapes), available_bytes()
    if have is not None and need > have:
        out = tuple(group_shapes[-1])[::-1] if group_shapes else tuple(input_shape)[::-1]
        raise MedSRError(f"this run needs ~{need / _GB:.1f} GB of memory (output {out}), {have / _GB:.1f} GB "
                         "are available; lower the scale, crop the input or use a machine with more memory")
