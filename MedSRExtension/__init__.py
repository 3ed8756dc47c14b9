"""MedSR engine: volumes with exact geometry, super-resolution models and the inference pipeline.

Never imports slicer, vtk or qt: the Slicer module (MedSRModule) builds on this package."""
from MedSRExtension.zoo.catalog import list_models
from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.inference.engine import super_resolve
from MedSRExtension.core.volume_io import load_volume, save_volume
from MedSRExtension.core.volume import Volume

__all__ = ["Volume", "load_volume", "save_volume", "super_resolve", "list_models", "Cancelled", "MedSRError"]
__version__ = "0.1.0"
