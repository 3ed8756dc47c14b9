#!/usr/bin/env python3
"""Time a self-supervised through-plane run as a clinician would start it: a 256×256×40 thick-slice
volume (MNI152 axial slices zero padded to 256², 4 mm slices made with the thickslice degradation)
super-resolved ×4 through-plane to 160 slices with ``adapt=True`` (the default budget) on the CPU.

    python scripts/bench_adapt.py [--minutes M] [--threads 2]

Prints the total wall time, the fine-tune's share and steps, and PSNR against the reference slices
(the MNI volume is in the training corpus, so the PSNR is a sanity check, not a quality claim).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None, help="adaptation budget (default: the engine's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import SimpleITK as sitk
    import torch

    from MedSRExtension import Volume, super_resolve
    from MedSRExtension.core.degradations import thickslice
    from MedSRExtension.data.corpus import mni_path
    from MedSRExtension.evaluation.metrics import psnr

    torch.set_num_threads(args.threads)
    mni = sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)  # [k, j, i]
    hr = np.zeros((160, 256, 256), np.float32)
    hr[:, :mni.shape[1], :mni.shape[2]] = mni[15:175]
    lr = thickslice(Volume(hr, spacing=(1, 1, 1)), 4, axis="k")
    start = time.perf_counter()
    out = super_resolve(lr, model="pfmdn", mode="throughplane", axis="k", scale=4,
                        adapt=True if args.minutes is None else args.minutes)
    total = time.perf_counter() - start
    info = out.meta["adapt"]
    rng = float(hr.max() - hr.min())
    print(f"256x256x40 -> {out.array.shape[0]} slices x4 through-plane, adapt: {total:.1f} s total "
          f"({info['seconds']:.1f} s fine-tune, {info['steps']} steps, from {info['start_weights']}); "
          f"PSNR vs reference {psnr(out.array, hr, data_range=rng):.2f} dB; {info['profile']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
