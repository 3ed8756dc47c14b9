"""One ``medsr bench`` configuration, run in its own process (``python -m``) so that its peak resident
memory is its own: ``python -m MedSRExtension.evaluation.bench_child '{"model": ..., "kind": ...}'``.

Builds a stack of MNI slices of ``size``² (repeated to ``slices``) and super-resolves it x2 in-plane in
one of four ways (``kind``): ``engine`` (``super_resolve`` with its measured CPU fast paths),
``engine-fp32`` (the engine with ``fast=False``), ``naive`` (the loop a user writes by hand around the
same shipped network: one slice per call, fp32, no batching or tiling) or ``sitk-bspline`` (SimpleITK's
cubic B-spline resampler over the whole volume). Prints one JSON line: seconds, slices_per_s, peak_mb
(ru_maxrss minus the footprint after imports and loading the input), output_mb (the result array) and
above_io_mb (peak_mb minus output_mb: the working memory beyond input and output).
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
from MedSRExtension.core.intensity import denormalize, normalize
from MedSRExtension.data.corpus import mni_path


def stack(slices: int, size: int) -> Volume:
    """``slices`` MNI axial slices (from slice 20 on, repeated as needed) zero-padded to size x size."""
    mni = sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)
    vol = np.zeros((slices, size, size), np.float32)
    src = mni[20:20 + min(slices, 160)]
    src = np.concatenate([src] * -(-slices // src.shape[0]))[:slices]
    h, w = min(size, src.shape[1]), min(size, src.shape[2])
    vol[:, :h, :w] = src[:, :h, :w]
    return Volume(vol, spacing=(1, 1, 1))


def naive_loop(volume: Volume, model: str, weights: str = "auto") -> np.ndarray:
    """The baseline the engine is measured against: the shipped network, one slice per call, fp32."""
    from MedSRExtension.zoo.weights import load_model
    net = load_model(model, scale=(2.0, 2.0), weights=weights, device="cpu")
    arr, window = normalize(volume.array)
    n, h, w = arr.shape
    out = np.empty((n, 2 * h, 2 * w), np.float32)
    with torch.inference_mode():
        for k in range(n):
            out[k] = net(torch.from_numpy(np.ascontiguousarray(arr[k]))[None, None], (2.0, 2.0))[0, 0].numpy()
    return denormalize(out, window)


def sitk_bspline(volume: Volume) -> np.ndarray:
    """SimpleITK's cubic B-spline resampling onto the x2 in-plane grid (what a user would try first)."""
    image = sitk.GetImageFromArray(volume.array)
    size = [2 * n for n in image.GetSize()[:2]] + [image.GetSize()[2]]
    spacing = [s / 2 for s in image.GetSpacing()[:2]] + [image.GetSpacing()[2]]
    origin = [o - s / 4 for o, s in zip(image.GetOrigin()[:2], image.GetSpacing()[:2])] + [image.GetOrigin()[2]]
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkBSpline, origin, spacing, image.GetDirection())
    return sitk.GetArrayFromImage(out)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(cfg: dict) -> dict:
    volume = stack(cfg["slices"], cfg["size"])
    base = peak_mb()
    kind, model = cfg["kind"], cfg["model"]
    start = time.perf_counter()
    if kind == "naive":
        out = naive_loop(volume, model, cfg.get("weights", "auto"))
    elif kind == "sitk-bspline":
        out = sitk_bspline(volume)
    else:
        out = super_resolve(volume, model=model, scale=2, mode="inplane", axis="k", device=cfg["device"],
                            weights=cfg.get("weights", "auto"), tile=cfg.get("tile"), fast=kind == "engine").array
    seconds = time.perf_counter() - start
    peak, output_mb = peak_mb() - base, out.nbytes / 2**20
    # above_io_mb: the working memory beyond the input (in the footprint already) and the output array
    return {"seconds": seconds, "slices_per_s": cfg["slices"] / seconds, "peak_mb": peak,
            "output_mb": output_mb, "above_io_mb": peak - output_mb}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
