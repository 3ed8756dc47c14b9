"""Which CPU fast paths pay for a model, decided from measurements, never by guess.

``Resources/Models/cpu_fastpaths.json`` holds, per network (light preset, shipped weights, 256×256 slice at
×2, 2 threads), the measured speed-up of channels_last and of bf16 autocast (+ channels_last) over fp32
eager, and the PSNR change of bf16 against fp32 on the held-out validation regions, with the CPU it was
measured on. ``choose`` turns that into a decision for this machine: channels_last where it measured
faster; bf16 only on a CPU with native bf16 (AVX-512 BF16 or AMX, from /proc/cpuinfo) and only where the
quality cost is at most ``BF16_PSNR_LIMIT_DB``; flushing denormals (subnormal floats, below 1.2e-38, set
to zero: x86 computes them up to 100x slower) where it measured faster within the same limit; and
*slice workers* — two slices in flight at once, each on half the torch threads — where that measured
faster than one slice on all threads (small-channel networks leave cores idle inside one slice; the
results are the same up to float rounding); and fusing each convolution with the activation after it
(``inference.fusion``) where that measured faster. Anything unmeasured stays fp32 NCHW, one slice at a time.
``scripts/measure_fastpaths.py`` writes the file.

Whatever the model, CPU runs keep large freed blocks for reuse (``large_blocks_reused``): glibc's
malloc otherwise returns each freed feature map (several MB) to the system and page-faults a fresh one
in on the next call, which measured up to 1.6x the time of a float32 slice (ICONet light, 256²).
"""
from __future__ import annotations

import ctypes
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Iterator, Optional

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

FILE = "cpu_fastpaths.json"
#: Largest PSNR loss (dB, on the validation regions) for which bf16 is allowed.
BF16_PSNR_LIMIT_DB = 0.05
#: A fast path must measure at least this much faster to be used (below it, noise decides).
MIN_SPEEDUP = 1.05
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Slices in flight at once when slice workers pay (the configuration that was measured).
SLICE_WORKERS = 2


@dataclass(frozen=True)
class FastPath:
    channels_last: bool = False
    bf16: bool = False
    flush_denormals: bool = False
    slice_workers: int = 1  # slices run at once on the CPU, each on threads // slice_workers threads
    fuse: bool = False  # convolutions fused with their activations (oneDNN post-ops)


def cpu_flags(cpuinfo: Optional[str] = None) -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (or of the given text); empty where there is none."""
    if cpuinfo is None:
        return _machine_flags()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=1)
def _machine_flags() -> frozenset[str]:
    """This machine's flags, read once per process (every run asks)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return cpu_flags(f.read())
    except OSError:
        return frozenset()


def native_bf16(flags: Optional[frozenset[str]] = None) -> bool:
    """True on CPUs that compute bf16 natively (AVX-512 BF16 or AMX): there bf16 autocast is fast."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_FLAGS)


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def measurements(path: Optional[str] = None) -> dict:
    """The per-model measurements (``models`` of cpu_fastpaths.json); {} when the file is absent."""
    if path is None:
        from MedSRExtension.zoo.weights import models_dir
        d = models_dir()
        path = os.path.join(d, FILE) if d else ""
    if not path or not os.path.isfile(path):
        return {}
    return _read(os.path.abspath(path)).get("models", {})


def choose(model: str, flags: Optional[frozenset[str]] = None, path: Optional[str] = None) -> FastPath:
    """The CPU fast path for ``model`` on this machine (see the module docstring)."""
    m = measurements(path).get(model)
    return decide(m, flags) if m else FastPath()


def _pays(m: dict, key: str) -> bool:
    """``key``_speedup measured faster and its ``key``_psnr_delta_db (when it has one) within the limit."""
    delta = m.get(f"{key}_psnr_delta_db", 0.0)
    return (float(m.get(f"{key}_speedup", 0)) >= MIN_SPEEDUP and delta is not None
            and float(delta) >= -BF16_PSNR_LIMIT_DB)


def decide(m: dict, flags: Optional[frozenset[str]] = None, workers: bool = True) -> FastPath:
    """The fast path one model's measurements ``m`` (a cpu_fastpaths.json record) call for: bf16 (on a
    native-bf16 CPU, within the PSNR limit), fused there when that measured faster; else the fastest
    measured fp32 configuration (channels_last, flushing denormals or fusion, each against fp32); then
    slice workers where they measured faster in exactly that configuration (``slice_workers_config``)."""
    if native_bf16(flags) and m.get("bf16_psnr_delta_db") is not None and _pays(m, "bf16"):
        path = FastPath(channels_last=True, bf16=True, fuse=_pays(m, "bf16_fusion"))
    else:
        options = [(float(m[f"{k}_speedup"]), k) for k in ("channels_last", "flush_denormals", "fusion")
                   if _pays(m, k) and (k == "channels_last" or m.get(f"{k}_psnr_delta_db") is not None)]
        best = max(options)[1] if options else "fp32"
        path = FastPath(channels_last=best == "channels_last", flush_denormals=best == "flush_denormals",
                        fuse=best == "fusion")
    if workers and m.get("slice_workers_config") == config_name(path) and _pays(m, "slice_workers"):
        path = FastPath(path.channels_last, path.bf16, path.flush_denormals, SLICE_WORKERS, path.fuse)
    return path


def config_name(path: FastPath) -> str:
    """The measured configuration (a key of cpu_fastpaths.json) a fast path runs, workers aside."""
    if path.bf16:
        return "bf16_fusion" if path.fuse else "bf16"
    if path.fuse:
        return "fusion"
    return "flush_denormals" if path.flush_denormals else "channels_last" if path.channels_last else "fp32"


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_KEEP_BYTES = 1 << 30


@lru_cache(maxsize=1)
def _glibc():
    """This process's glibc (for mallopt/malloc_trim), or None elsewhere (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def large_blocks_reused() -> Iterator[None]:
    """Inside the block, blocks below 1 GiB come from malloc's heap and freed ones stay there for the
    next allocation instead of being unmapped and faulted in again; after it, free memory goes back to
    the system (malloc_trim). Same results, less time; a no-op without glibc."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
    try:
        yield
    finally:
        if libc is not None:
            libc.malloc_trim(0)


@contextmanager
def slice_pool(workers: int, flush_denormals: bool = False) -> Iterator["ThreadPoolExecutor"]:
    """A pool of ``workers`` threads for slices in flight at once, torch's intra-op threads split
    between them for the duration (restored after); each thread flushes denormals when asked (the
    flag is per thread)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch
    total = torch.get_num_threads()
    torch.set_num_threads(max(1, total // workers))  # threads made by the pool start with this count
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="medsr-slice",
                                initializer=torch.set_flush_denormal if flush_denormals else None,
                                initargs=(True,) if flush_denormals else ()) as pool:
            yield pool
    finally:
        torch.set_num_threads(total)


@contextmanager
def denormals_flushed(enabled: bool) -> Iterator[None]:
    """Flush subnormal floats to zero inside the block (when ``enabled`` and the CPU supports it),
    and restore torch's default (no flushing) after it."""
    import torch
    if not enabled or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
