"""Write MedSR's sample volumes (MedSRModule/Resources/SampleData) from the MNI152 template.

    python scripts/make_sample_data.py

See MedSRModule/MedSRLib/sample_data.py for what they are."""
from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

from MedSRExtension.core.degradations import degrade  # noqa: E402
from MedSRExtension.core.volume import Volume  # noqa: E402
from MedSRExtension.core.volume_io import load_volume, save_volume  # noqa: E402
from MedSRExtension.data.corpus import mni_path  # noqa: E402

OUT = os.path.join(ROOT, "MedSRModule", "Resources", "SampleData")
REGION = (slice(56, 120), slice(20, 212), slice(18, 178))  # k, j, i: 64 axial slices of 192 x 160


def main() -> None:
    mni = load_volume(mni_path())
    k, j, i = (s.start for s in REGION)
    origin = mni.index_to_physical(np.array([[i, j, k]], dtype=float))[0]
    region = Volume(np.round(mni.array[REGION]).astype(np.int16), mni.spacing, tuple(origin), mni.direction)
    os.makedirs(OUT, exist_ok=True)
    save_volume(region, os.path.join(OUT, "MedSRBrainT1.nrrd"))
    thick = degrade(Volume(region.array.astype(np.float32), region.spacing, region.origin, region.direction),
                    "thickslice", 4, axis="k")
    thick = Volume(np.round(thick.array).astype(np.int16), thick.spacing, thick.origin, thick.direction)
    save_volume(thick, os.path.join(OUT, "MedSRBrainT1Thick4mm.nrrd"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
