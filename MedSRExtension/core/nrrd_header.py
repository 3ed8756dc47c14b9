"""The one reader of NRRD/NHDR header fields (SimpleITK does not expose all of them: ``data file``,
``thicknesses``). Reads at most 64 KiB, up to the blank line that ends the header."""
from __future__ import annotations

import os
from typing import Union

MAX_HEADER = 1 << 16


def read_nrrd_header(path: Union[str, os.PathLike]) -> dict:
    """The header's ``field: value`` pairs (keys lower-cased; ``key:=value`` pairs too); raises OSError
    when the file cannot be read."""
    fields = {}
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER)
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1").rstrip("\r")
        if not line:
            break
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.lstrip("=").strip()
    return fields
