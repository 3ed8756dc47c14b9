"""The MedSR version, from its one place: ``version`` in the ``[project]`` table of pyproject.toml.

A source checkout (and an installed Slicer extension, whose build copies pyproject.toml beside the
engine) reads that file beside the ``MedSRExtension`` folder; an installed wheel reads its own
metadata, which the build wrote from the same line. Imports nothing heavy (the Slicer panel needs it
before PyTorch is installed).
"""
from __future__ import annotations

import os
import re
from importlib import metadata
from typing import Optional

DISTRIBUTION = "medsr"
PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")


def from_pyproject(path: str = PYPROJECT) -> Optional[str]:
    """``version`` of the ``[project]`` table of ``path`` when that project is medsr; None otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    table = re.search(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if table is None or not re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', table.group(1), re.M):
        return None
    found = re.search(r'^version\s*=\s*"([^"]+)"', table.group(1), re.M)
    return found.group(1) if found else None


def version() -> str:
    """The version of this copy of MedSR: pyproject.toml beside the engine, else the installed metadata."""
    found = from_pyproject()
    if found:
        return found
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
