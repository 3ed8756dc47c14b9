"""One ``medsr bench`` configuration, run in its own process (``python -m``) so that its peak resident
memory is its own: ``python -m MedSRExtension.evaluation.bench_child '{"model": ..., "naive": ...}'``.

Builds a stack of MNI slices of ``size``² (repeated to ``slices``), super-resolves it x2 in-plane with
random weights, either through the engine or in a naive one-slice-at-a-time loop, and prints one JSON
line: seconds, slices_per_s and peak_mb (ru_maxrss minus the footprint after imports).
"""
from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import SimpleITK as sitk
import torch

from MedSRExtension import Volume, super_resolve
from MedSRExtension.core.intensity import normalize
from MedSRExtension.data.corpus import mni_path
from MedSRExtension.models import ModelDescriptor, build


def stack(slices: int, size: int) -> Volume:
    """``slices`` MNI axial slices (from slice 20 on, repeated as needed) zero-padded to size x size."""
    mni = sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)
    vol = np.zeros((slices, size, size), np.float32)
    src = mni[20:20 + min(slices, 160)]
    src = np.concatenate([src] * -(-slices // src.shape[0]))[:slices]
    h, w = min(size, src.shape[1]), min(size, src.shape[2])
    vol[:, :h, :w] = src[:, :h, :w]
    return Volume(vol, spacing=(1, 1, 1))


def naive_loop(volume: Volume, model: str) -> np.ndarray:
    """The baseline the engine is measured against: one slice per call, no batching or tiling."""
    net = ModelDescriptor.of(model, build(model, preset="light", scale=2).eval())
    arr, _ = normalize(volume.array)
    n, h, w = arr.shape
    out = np.empty((n, 2 * h, 2 * w), np.float32)
    with torch.inference_mode():
        for k in range(n):
            out[k] = net(torch.from_numpy(np.ascontiguousarray(arr[k]))[None, None], (2.0, 2.0))[0, 0].numpy()
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(cfg: dict) -> dict:
    volume = stack(cfg["slices"], cfg["size"])
    base = peak_mb()
    start = time.perf_counter()
    if cfg["naive"]:
        naive_loop(volume, cfg["model"])
    else:
        super_resolve(volume, model=cfg["model"], scale=2, mode="inplane", axis="k", device=cfg["device"],
                      weights="random", tile=cfg.get("tile"))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "slices_per_s": cfg["slices"] / seconds, "peak_mb": peak_mb() - base}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
