"""What a slice view says about where it is: its orientation letters and its slice number and position.

Pure numpy: read from the slice node's SliceToRAS matrix and the slice logic's offset range, so the
letters follow any rotation onto an oblique volume grid.
"""
from __future__ import annotations

import numpy as np

_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))  # (negative, positive) along R, A, S


def direction_letter(vector) -> str:
    """The anatomical direction a RAS vector points to most: R/L, A/P or S/I."""
    v = np.asarray(vector, dtype=float)[:3]
    axis = int(np.argmax(np.abs(v)))
    return _LETTERS[axis][1 if v[axis] > 0 else 0]


def edge_letters(slice_to_ras) -> dict[str, str]:
    """The letters at the view's edges: screen x (right) and y (up) of the SliceToRAS matrix."""
    m = np.asarray(slice_to_ras, dtype=float).reshape(4, 4)
    right, up = m[:3, 0], m[:3, 1]
    return {"left": direction_letter(-right), "right": direction_letter(right),
            "top": direction_letter(up), "bottom": direction_letter(-up)}


def slice_position(offset: float, low: float, high: float, step: float) -> str:
    """'slice 34 / 64 · 12.5 mm': the slice number in the range the view can scroll, and its offset."""
    if step <= 0 or high < low:
        return f"{offset:.1f} mm"
    count = int(round((high - low) / step)) + 1
    index = min(count, max(1, int(round((offset - low) / step)) + 1))
    return f"slice {index} / {count} \u00b7 {offset:.1f} mm"
