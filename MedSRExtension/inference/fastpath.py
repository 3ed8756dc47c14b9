"""Which CPU fast paths pay for a model, decided from measurements, never by guess.

``Resources/Models/cpu_fastpaths.json`` holds, per network (light preset, shipped weights, 256×256 slice at
×2, 2 threads), the measured speed-up of channels_last and of bf16 autocast (+ channels_last) over fp32
eager, and the PSNR change of bf16 against fp32 on the held-out validation regions, with the CPU it was
measured on. ``choose`` turns that into a decision for this machine: channels_last where it measured
faster; bf16 only on a CPU with native bf16 (AVX-512 BF16 or AMX, from /proc/cpuinfo) and only where the
quality cost is at most ``BF16_PSNR_LIMIT_DB``; flushing denormals (subnormal floats, below 1.2e-38, set
to zero: x86 computes them up to 100x slower) where it measured faster within the same limit. Anything
unmeasured stays fp32 NCHW. ``scripts/measure_fastpaths.py`` writes the file.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Optional

FILE = "cpu_fastpaths.json"
#: Largest PSNR loss (dB, on the validation regions) for which bf16 is allowed.
BF16_PSNR_LIMIT_DB = 0.05
#: A fast path must measure at least this much faster to be used (below it, noise decides).
MIN_SPEEDUP = 1.05
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class FastPath:
    channels_last: bool = False
    bf16: bool = False
    flush_denormals: bool = False


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
        with open("/proc/cpuinfo") as f:
            return cpu_flags(f.read())
    except OSError:
        return frozenset()


def native_bf16(flags: Optional[frozenset[str]] = None) -> bool:
    """True on CPUs that compute bf16 natively (AVX-512 BF16 or AMX): there bf16 autocast is fast."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_FLAGS)


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    with open(path) as f:
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
    if not m:
        return FastPath()
    channels_last = float(m.get("channels_last_speedup", 0)) >= MIN_SPEEDUP
    delta = m.get("bf16_psnr_delta_db")
    bf16 = (native_bf16(flags) and delta is not None and float(delta) >= -BF16_PSNR_LIMIT_DB
            and float(m.get("bf16_speedup", 0)) >= MIN_SPEEDUP)
    flush_delta = m.get("flush_denormals_psnr_delta_db")
    flush = (float(m.get("flush_denormals_speedup", 0)) >= MIN_SPEEDUP and flush_delta is not None
             and float(flush_delta) >= -BF16_PSNR_LIMIT_DB)
    return FastPath(channels_last=channels_last, bf16=bf16, flush_denormals=flush)


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
