"""MRML glue of the MedSR Slicer module: volume nodes <-> engine Volumes, background runs with
cancel, the side-by-side layout and the self-test checks. Imports slicer's MRML, vtk, numpy and
the engine (MedSRExtension), never Qt, so it runs and is tested with the slicer-core wheel.

Submodules are imported explicitly (``from MedSRLib import process``): importing this package does
not import torch, so the panel can open before PyTorch is installed."""
