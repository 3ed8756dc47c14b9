#!/usr/bin/env python3
"""How well ``estimate_thickness`` recovers the slice thickness of thick slices made from the MNI152
brain (the corpus of DESIGN.md), per axis, with and without a gap: the numbers of the README.

    python scripts/measure_profile_estimate.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = [(2, 0.0), (3, 0.0), (4, 0.0), (5, 0.0), (6, 0.0), (4, 1.0), (4, -1.0)]  # factor (mm), gap (mm)


def main() -> int:
    import numpy as np
    import SimpleITK as sitk

    from MedSRExtension import Volume
    from MedSRExtension.core.degradations import thickslice
    from MedSRExtension.data.corpus import mni_path
    from MedSRExtension.adapt.profile_estimate import estimate_thickness

    brain = Volume(sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32), spacing=(1, 1, 1))
    print("| spacing (mm) | thickness (mm) | estimate k | estimate j | estimate i |")
    print("|---:|---:|---:|---:|---:|")
    for factor, gap in CASES:
        got = []
        for axis in "kji":
            e = estimate_thickness(thickslice(brain, factor, axis=axis, gap=gap), axis)
            got.append("—" if e is None else f"{e:.2f}")
        print(f"| {factor} | {factor - gap:g} | " + " | ".join(got) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
