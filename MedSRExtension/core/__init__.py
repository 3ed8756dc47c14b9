"""Volumes with exact geometry: the Volume type, grids, intensities, file I/O, degradations and errors."""
