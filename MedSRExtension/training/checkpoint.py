"""Atomic checkpoints that load with ``torch.load(weights_only=True)``, and RNG state capture.

RNG states are stored as tensors and plain ints/lists so that no pickle of arbitrary objects is
ever needed to resume.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError


def rng_state() -> dict:
    """Python, numpy (global) and torch CPU/CUDA generator states as tensors and plain types."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": float(py_gauss) if py_gauss is not None else None,
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict, path: str) -> None:
    """torch.save to a temporary name in the same folder, then rename (never a half-written file)."""
    atomic.write_with(path, lambda tmp: torch.save(obj, tmp))


def load(path: str) -> dict:
    """Load a checkpoint without executing code (weights_only=True)."""
    if not os.path.exists(path):
        raise MedSRError(f"checkpoint '{path}' not found; start without --resume or point --out at a training folder")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise MedSRError(f"cannot read checkpoint '{path}' ({exc.__class__.__name__}); "
                         "delete it and start again") from exc
