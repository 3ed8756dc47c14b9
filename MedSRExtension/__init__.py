"""MedSR engine: volumes with exact geometry, super-resolution models and the inference pipeline.

Never imports slicer, vtk or qt: the Slicer module (MedSRModule) builds on this package. The public
names below load on first use, so ``import MedSRExtension.core...`` stays free of torch (the Slicer
panel opens before PyTorch is installed)."""
from __future__ import annotations

import importlib

from MedSRExtension.version import version as _version

_PUBLIC = {
    "Volume": "MedSRExtension.core.volume",
    "load_volume": "MedSRExtension.core.volume_io",
    "save_volume": "MedSRExtension.core.volume_io",
    "super_resolve": "MedSRExtension.pipeline",
    "list_models": "MedSRExtension.zoo.catalog",
    "Cancelled": "MedSRExtension.core.errors",
    "MedSRError": "MedSRExtension.core.errors",
}

__all__ = list(_PUBLIC)
__version__ = _version()  # pyproject.toml is the one place (MedSRExtension.version)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'MedSRExtension' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
