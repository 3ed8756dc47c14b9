"""The weights families of in-plane passes, by how their training pairs were made. Dependency-free, so
the Slicer panel lists them without torch or scipy; ``InferenceOptions.trained_on`` picks one."""
from __future__ import annotations

#: bicubic: the default, as published results are measured; scanner: core/scanner_degradation.py.
FAMILIES = ("bicubic", "scanner")
#: What each family is, in a user's words (panel, web page, help).
LABELS = {"bicubic": "bicubic downsampling (default, as published results)",
          "scanner": "scanner-like data: k-space truncation, blur, noise, shading"}
