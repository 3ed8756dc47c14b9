"""The device status line of the panel: which device a run will use, without installing anything.

Importing this module never imports torch; ``device_status`` imports it only when it is installed."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from typing import Optional

#: The oldest PyTorch the engine supports (pyproject.toml asks for the same).
MINIMUM_TORCH = "2.3"

NO_TORCH = "PyTorch is not installed yet: it will be installed (after you confirm) when you first click Super-resolve"


def torch_installed() -> bool:
    """True when ``import torch`` can succeed (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def torch_version() -> Optional[str]:
    """The installed PyTorch version (from its metadata, without importing it), or None."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string such as '2.13.0+cpu'."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:3])


def torch_too_old(version: Optional[str] = None) -> bool:
    """True when an installed PyTorch is older than ``MINIMUM_TORCH`` (an upgrade is needed)."""
    version = version if version is not None else torch_version()
    return version is not None and version_tuple(version) < version_tuple(MINIMUM_TORCH)


def device_status(device: str = "auto") -> str:
    """One line naming the device a run would use: the GPU's name and memory, or the CPU.

    An unavailable request (e.g. 'cuda' on a machine without a GPU) is described, not raised."""
    if not torch_installed():
        return NO_TORCH
    if torch_too_old():
        return f"PyTorch {torch_version()} is older than {MINIMUM_TORCH}: it will be upgraded (after you confirm)"
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
