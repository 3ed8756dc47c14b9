"""Figures of ``medsr compare`` (matplotlib, Agg backend: no display needed).

``slices_figure``: the reference and every method's result side by side, on the reference grid,
with the outlines of each one's segmentation; one row through the plane perpendicular to the SR
axis and one through a plane containing it. ``dice_figure``: Dice per label and method.
"""
from __future__ import annotations

import math

import numpy as np

from MedSRExtension.core.volume import AXES, Volume

LABEL_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _centre(ref_labels: np.ndarray | None, shape) -> tuple[int, int, int]:
    """(k, j, i) at the centre of the labelled region (of the array when there is none)."""
    if ref_labels is not None and ref_labels.any():
        idx = np.nonzero(ref_labels)
        return tuple(int((a.min() + a.max()) // 2) for a in idx)
    return tuple(n // 2 for n in shape)


def _box(ref_labels: np.ndarray | None, shape, margin: int = 4) -> tuple[slice, slice, slice]:
    """[k, j, i] slices around the labelled region plus ``margin`` voxels (the whole array otherwise)."""
    if ref_labels is None or not ref_labels.any():
        return tuple(slice(0, n) for n in shape)
    idx = np.nonzero(ref_labels)
    return tuple(slice(max(0, int(a.min()) - margin), min(n, int(a.max()) + 1 + margin)) for a, n in zip(idx, shape))


def _plane(arr: np.ndarray, fixed: int, index: int, box) -> np.ndarray:
    """A 2D cut through the [k, j, i] array at ``index`` along array dimension ``fixed``, inside ``box``."""
    cut = np.take(arr, index, axis=fixed)
    rows, cols = [box[d] for d in range(3) if d != fixed]
    return cut[rows, cols]


def slices_figure(path, hr: Volume, ref_labels: np.ndarray | None, shown: dict, axis: str) -> None:
    """Write the side-by-side figure to ``path`` (PNG). ``shown``: method -> (image, labels or None) on
    the reference grid, NaN where the method's result does not reach."""
    plt = _pyplot()
    a = AXES.index(axis)  # 0 = i ... in (i, j, k); array dimension is 2 - a
    perpendicular = 2 - a
    containing = 1 if perpendicular != 1 else 0  # a plane that contains the SR axis
    centre = _centre(ref_labels, hr.array.shape)
    box = _box(ref_labels, hr.array.shape)
    spacing_kji = tuple(hr.spacing)[::-1]
    lo, hi = np.percentile(hr.array, [0.5, 99.5])
    columns = [("reference", hr.array, ref_labels)] + [(name, img, lab) for name, (img, lab) in shown.items()]
    planes = tuple(fixed for fixed in (perpendicular, containing)  # a 2D image (one slice) has one plane
                   if min(n for d, n in enumerate(hr.array.shape) if d != fixed) >= 2) or (perpendicular,)
    ratios = []
    for fixed in planes:  # physical height / width of each row's cut, so no panel is padded
        dims = [d for d in range(3) if d != fixed]
        h = (box[dims[0]].stop - box[dims[0]].start) * spacing_kji[dims[0]]
        w = (box[dims[1]].stop - box[dims[1]].start) * spacing_kji[dims[1]]
        ratios.append(min(3.0, max(0.2, h / w)))
    width = 2.2
    fig, axes = plt.subplots(len(planes), len(columns), figsize=(width * len(columns), width * sum(ratios) + 0.4),
                             squeeze=False, facecolor="black", gridspec_kw={"height_ratios": ratios})
    labels_present = sorted(int(v) for v in np.unique(ref_labels) if v) if ref_labels is not None else []
    for r, fixed in enumerate(planes):
        dims = [d for d in range(3) if d != fixed]
        rows_sp, cols_sp = spacing_kji[dims[0]], spacing_kji[dims[1]]
        for c, (name, img, lab) in enumerate(columns):
            ax = axes[r][c]
            cut = _plane(img, fixed, centre[fixed], box)
            extent = (0, cut.shape[1] * cols_sp, 0, cut.shape[0] * rows_sp)
            ax.imshow(np.ma.masked_invalid(cut), cmap="gray", vmin=lo, vmax=hi, origin="lower", extent=extent,
                      interpolation="nearest")
            if lab is not None:
                lcut = _plane(lab, fixed, centre[fixed], box)
                for n, value in enumerate(labels_present):
                    m = (lcut == value).astype(float)
                    if 0 < m.sum() < m.size and min(m.shape) >= 2:
                        ax.contour(m, levels=[0.5], colors=LABEL_COLOURS[n % len(LABEL_COLOURS)],
                                   linewidths=0.5, origin="lower", extent=extent)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, color="white", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{'kji'[fixed]} = {centre[fixed]}", color="white", fontsize=8)
    fig.tight_layout(pad=0.3, rect=(0, 0.04 if labels_present else 0, 1, 1))
    if labels_present:
        names = ("red", "green", "yellow", "blue", "orange", "purple", "cyan", "magenta")
        legend = ", ".join(f"label {v} {names[n % len(names)]}" for n, v in enumerate(labels_present))
        fig.text(0.01, 0.005, f"segmentation outlines: {legend}", color="white", fontsize=7, va="bottom")
    fig.savefig(path, format="png", dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)


def dice_figure(path, rows: list[dict], labels) -> None:
    """Write a grouped bar chart of Dice per label (bars) and the mean (black tick) for each method."""
    plt = _pyplot()
    labels = list(labels)
    methods = [r["method"] for r in rows]
    x = np.arange(len(methods))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.9 * len(methods)), 3.2))
    values = []
    for n, lab in enumerate(labels):
        v = np.array([r.get(f"dice_{lab}", math.nan) for r in rows], dtype=float)
        values.append(v)
        ax.bar(x - 0.4 + width * (n + 0.5), np.nan_to_num(v), width, label=f"label {lab}",
               color=LABEL_COLOURS[n % len(LABEL_COLOURS)])
    means = np.array([r.get("dice_mean", math.nan) for r in rows], dtype=float)
    ax.scatter(x, means, marker="_", s=600, color="black", zorder=3, label="mean")
    finite = np.concatenate([v[np.isfinite(v)] for v in values] + [means[np.isfinite(means)]])
    low = max(0.0, float(finite.min()) - 0.05) if finite.size else 0.0
    ax.set_ylim(low, 1.0)
    ax.set_xticks(x)
    ax.set_xticklabels(methods, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("Dice vs reference segmentation", fontsize=8)
    if low > 0:
        ax.set_title(f"y axis starts at {low:.2f}", fontsize=7, loc="right")
    ax.legend(fontsize=7, ncol=len(labels) + 1, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
