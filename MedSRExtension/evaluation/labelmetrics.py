"""Label-map agreement: Dice per label, HD95 in mm (anisotropic spacing respected), volume difference.

Definitions (per label L, P = predicted voxels with label L, R = reference voxels with label L):

- Dice = 2|P∩R| / (|P|+|R|); 1 when both are empty, 0 when exactly one is.
- Surface voxels of a mask: voxels of the mask with a face neighbour outside it (mask minus its
  erosion by the 6-neighbour cross; outside the image counts as outside the mask, except along
  axes of size 1, so a one-slice image gets the 2D outline).
- HD95 (symmetric, pooled): the 95th percentile (numpy's linear interpolation) of the union of both
  directed sets of surface distances — every surface voxel of P to the nearest surface voxel of R,
  and every surface voxel of R to the nearest of P — measured between voxel centres in mm with
  ``distance_transform_edt(sampling=spacing in k, j, i order)``. nan when both are empty, inf when
  exactly one is.
- Volume difference: (|P| − |R|)·voxel volume in mm³, and in percent of |R| (nan when R is empty).

Both label maps must be on one grid; ``compare_labels`` resamples the prediction onto the reference
grid by nearest neighbour first.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

_CROSS = ndimage.generate_binary_structure(3, 1)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (1 when both are empty)."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of a 3D mask with at least one face neighbour outside it (the image border is outside).

    Axes of size 1 have no neighbours: a one-slice volume gets the 2D outline of each region."""
    mask = np.asarray(mask, dtype=bool)
    cross = _CROSS.copy()
    for axis, n in enumerate(mask.shape):
        if n == 1:
            for end in (0, 2):
                index = [1, 1, 1]
                index[axis] = end
                cross[tuple(index)] = False
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=0)


def bounding_box(*masks: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every True voxel of the masks."""
    any_mask = np.logical_or.reduce([m for m in masks])
    idx = [np.nonzero(any_mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing_kji: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(pred surface → ref surface, ref surface → pred surface) distances in mm; both masks non-empty.

    The distance transforms run on the bounding box of both surfaces: exact, because every nearest
    surface voxel lies inside that box.
    """
    sp = surface(pred)
    sr = surface(ref)
    box = bounding_box(sp, sr)
    sp, sr = sp[box], sr[box]
    dist_to_ref = ndimage.distance_transform_edt(~sr, sampling=tuple(float(s) for s in spacing_kji))
    dist_to_pred = ndimage.distance_transform_edt(~sp, sampling=tuple(float(s) for s in spacing_kji))
    return dist_to_ref[sp], dist_to_pred[sr]


def hd95(pred: np.ndarray, ref: np.ndarray, spacing_kji: Sequence[float]) -> float:
    """Symmetric pooled 95th-percentile Hausdorff distance in mm (nan both empty, inf one empty)."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise MedSRError(f"HD95 needs two 3D masks of one shape, got {pred.shape} and {ref.shape}")
    has_p, has_r = bool(pred.any()), bool(ref.any())
    if not has_p and not has_r:
        return math.nan
    if has_p != has_r:
        return math.inf
    d_pr, d_rp = surface_distances(pred, ref, spacing_kji)
    return float(np.percentile(np.concatenate([d_pr, d_rp]), 95))


def label_metrics(pred: np.ndarray, ref: np.ndarray, spacing_ijk: Sequence[float],
                  labels: Iterable[int] | None = None) -> dict:
    """Per-label Dice, HD95 (mm) and volume difference of two label arrays on one grid.

    ``labels`` defaults to every non-zero label of either map. Returns
    ``{"labels": [...], "dice": {L: ...}, "hd95": {L: ...}, "volume_ref_mm3": {L: ...},
    "volume_diff_mm3": {L: ...}, "volume_diff_pct": {L: ...}, "dice_mean": ..., "hd95_mean": ...}``;
    the means are over ``labels`` (hd95_mean ignores nan — both empty — and is inf if any label is inf).
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise MedSRError(f"label maps differ in shape {pred.shape} vs {ref.shape}; resample them onto one grid first")
    if labels is None:
        labels = sorted(int(v) for v in set(np.unique(pred)) | set(np.unique(ref)) if v != 0)
    labels = [int(v) for v in labels]
    spacing_kji = tuple(float(s) for s in spacing_ijk)[::-1]
    voxel_mm3 = float(np.prod(spacing_ijk))
    out = {"labels": labels, "dice": {}, "hd95": {}, "volume_ref_mm3": {}, "volume_diff_mm3": {}, "volume_diff_pct": {}}
    for lab in labels:
        p, r = pred == lab, ref == lab
        n_p, n_r = int(p.sum()), int(r.sum())
        out["dice"][lab] = dice(p, r)
        out["hd95"][lab] = hd95(p, r, spacing_kji)
        out["volume_ref_mm3"][lab] = n_r * voxel_mm3
        out["volume_diff_mm3"][lab] = (n_p - n_r) * voxel_mm3
        out["volume_diff_pct"][lab] = 100.0 * (n_p - n_r) / n_r if n_r else math.nan
    out["dice_mean"] = float(np.mean(list(out["dice"].values()))) if labels else math.nan
    out["hd95_mean"] = _mean_hd(list(out["hd95"].values()))
    return out


def _mean_hd(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan
    return math.inf if any(math.isinf(v) for v in vals) else float(np.mean(vals))


def compare_labels(pred: Volume, ref: Volume, labels: Iterable[int] | None = None) -> dict:
    """``label_metrics`` of two label volumes, resampling ``pred`` onto ``ref``'s grid (nearest) if needed."""
    from MedSRExtension.evaluation.segmentation import resample_labels_nearest

    pred_on_ref = resample_labels_nearest(pred, ref)
    return label_metrics(pred_on_ref.array, ref.array, ref.spacing, labels)
