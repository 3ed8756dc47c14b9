"""Which Python runs MedSR's worker processes: the one thing about them that depends on Slicer."""
from __future__ import annotations

import shutil
import sys


def worker_python() -> str:
    """``PythonSlicer`` inside the Slicer application (Slicer's own Python with its packages, as
    TotalSegmentator uses), else the current interpreter."""
    try:
        import slicer
        in_app = getattr(slicer, "app", None) is not None
    except ImportError:
        in_app = False
    if in_app:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable
