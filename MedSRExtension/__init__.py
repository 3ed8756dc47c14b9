"""MedSR engine: volumes with exact geometry, super-resolution models and the inference pipeline.

Never imports slicer, vtk or qt: the Slicer module (MedSRModule) builds on this package."""
from .catalog import list_models
from .errors import Cancelled, MedSRError
from .inference import super_resolve
from .io import load_volume, save_volume
from .volume import Volume

__all__ = ["Volume", "load_volume", "save_volume", "super_resolve", "list_models", "Cancelled", "MedSRError"]
__version__ = "0.1.0"
