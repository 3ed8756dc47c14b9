"""The device status line of the panel: which device a run will use, without installing anything.

Importing this module never imports torch; ``device_status`` imports it only when it is installed."""
from __future__ import annotations

import importlib.util

NO_TORCH = "PyTorch is not installed yet: it will be installed (after you confirm) when you first click Super-resolve"


def torch_installed() -> bool:
    """True when ``import torch`` can succeed (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def device_status(device: str = "auto") -> str:
    """One line naming the device a run would use: the GPU's name and memory, or the CPU.

    An unavailable request (e.g. 'cuda' on a machine without a GPU) is described, not raised."""
    if not torch_installed():
        return NO_TORCH
    from MedSRExtension.inference.devices import describe, resolve_device
    from MedSRExtension.core.errors import MedSRError
    try:
        resolved = resolve_device(device)
    except MedSRError as exc:
        return f"Device unavailable: {exc}"
    text = describe(resolved)
    if resolved.type in ("cuda", "mps"):
        return f"GPU: {text}"
    if device == "auto":
        return f"CPU: {text}; no GPU found, so networks run slowly"
    return f"CPU: {text}"
