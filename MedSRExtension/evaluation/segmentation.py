"""Segmentations that need no trained network, for checking whether SR changes what a segmentation finds.

Method strings (``--seg`` on the CLI, ``method=`` in Python):

``otsuN`` (``otsu2``, ``otsu3``, ``otsu4``, ...)
    Multi-level Otsu: N intensity classes from N-1 thresholds that maximise the between-class variance
    of a 256-bin histogram of the reference (exact, by dynamic programming). Label 0 is the darkest
    class (background: air, and in a T1 brain also CSF); labels 1..N-1 are the brighter tissue classes
    in increasing intensity, and these are the labels evaluated. ``otsu3`` on a T1 brain: 1 ≈ grey
    matter, 2 ≈ white matter.
``threshold:T``
    Voxels brighter than T (input units), reduced to their largest face-connected component: label 1.
``labels:FILE``
    A user-given label map (any format ``io.load_volume`` reads; integer labels 0..32767) is the
    reference segmentation. It is resampled nearest-neighbour onto the reference grid. Other images
    are segmented by refining that map with their intensities: each label gets the median intensity
    of the reference image under it; within ``LABEL_MARGIN`` voxels of a label, a voxel takes the
    nearby label whose median is closest to its intensity. Only boundaries move, so the score says
    whether an image supports the reference boundaries; labels must differ in intensity to be told
    apart.

Thresholds are fitted once on the reference (``fit``) and the same ``Segmenter`` is applied to every
method's output, so differences between methods reflect the images, not refitted thresholds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume
from MedSRExtension.evaluation.segmentation_methods import METHOD_HELP, METHODS  # noqa: F401  (re-exported)

HISTOGRAM_BINS = 256
LABEL_MARGIN = 2  # voxels around each reference label where labels:FILE lets boundaries move
MAX_LABEL = 32767



def multi_otsu_thresholds(values: np.ndarray, classes: int, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """The ``classes - 1`` thresholds (increasing) maximising the between-class variance of ``values``.

    Exhaustive over bin boundaries of a ``bins``-bin histogram, solved by dynamic programming in
    O(classes · bins²): the between-class variance is Σ_c S_c²/W_c (weight W, first moment S) up to a
    constant, which is additive over the classes. A threshold t puts x < t in the lower class.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if classes < 2:
        raise MedSRError(f"Otsu needs at least 2 classes, got {classes}")
    if values.size == 0:
        raise MedSRError("cannot fit Otsu thresholds on an image without finite values")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise MedSRError(f"cannot fit Otsu thresholds on a constant image (all values {lo:g})")
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    p = hist / hist.sum()
    w_cum = np.concatenate([[0.0], np.cumsum(p)])
    s_cum = np.concatenate([[0.0], np.cumsum(p * centres)])
    # gain[a, b]: contribution of a class made of bins a..b-1 (a < b); -inf when invalid.
    a_idx, b_idx = np.meshgrid(np.arange(bins + 1), np.arange(bins + 1), indexing="ij")
    w = w_cum[b_idx] - w_cum[a_idx]
    s = s_cum[b_idx] - s_cum[a_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(w > 0, s * s / np.where(w > 0, w, 1.0), 0.0)
    gain[b_idx <= a_idx] = -np.inf
    # best[b]: best score of splitting bins 0..b-1 into c classes; arg[c][b]: the last class's start.
    best = gain[0].copy()
    args = []
    for _ in range(1, classes):
        cand = best[:, None] + gain  # start a new class at bin a, ending before b
        arg = np.argmax(cand, axis=0)
        best = cand[arg, np.arange(bins + 1)]
        args.append(arg)
    cuts = []
    end = bins
    for arg in reversed(args):
        end = int(arg[end])
        cuts.append(end)
    cuts = sorted(cuts)
    if len(set(cuts)) < len(cuts) or cuts[0] <= 0 or cuts[-1] >= bins:
        raise MedSRError(
            f"the reference has too few distinct intensities for {classes} Otsu classes; use fewer classes"
        )
    return edges[np.asarray(cuts)]


@dataclass
class Segmenter:
    """A segmentation method fitted on a reference image; ``apply`` segments any image on its own grid.

    ``labels`` are the labels evaluated (background 0 excluded); ``reference`` is the reference
    segmentation on the reference grid (for ``labels:FILE`` the user's map, else ``apply(reference)``).
    """

    method: str
    labels: tuple[int, ...]
    reference: Volume | None = None

    def apply(self, volume: Volume) -> Volume:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def description(self) -> str:
        """One line saying what was fitted, for reports."""
        return self.method


@dataclass
class OtsuSegmenter(Segmenter):
    """Multi-level Otsu classes with thresholds fitted on the reference (label = number of thresholds below)."""

    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def apply(self, volume: Volume) -> Volume:
        arr = np.asarray(volume.array, dtype=np.float64)
        out = np.digitize(arr, self.thresholds).astype(np.uint8)
        return volume.with_array(out)

    @property
    def description(self) -> str:
        return f"{self.method} (thresholds fitted on the reference: {', '.join(f'{t:.4g}' for t in self.thresholds)})"


@dataclass
class ThresholdSegmenter(Segmenter):
    """Voxels above ``threshold`` reduced to the largest face-connected component (label 1)."""

    threshold: float = 0.0

    def apply(self, volume: Volume) -> Volume:
        return volume.with_array(largest_component(np.asarray(volume.array) > self.threshold).astype(np.uint8))


@dataclass
class LabelMapSegmenter(Segmenter):
    """Refines the reference label map by intensity within ``margin`` voxels of each label (see module doc)."""

    medians: dict = field(default_factory=dict)
    margin: int = LABEL_MARGIN

    def apply(self, volume: Volume) -> Volume:
        ref_map = resample_labels_nearest(self.reference, volume).array
        arr = np.asarray(volume.array, dtype=np.float64)
        best_cost = np.full(arr.shape, np.inf)
        out = np.zeros(arr.shape, dtype=ref_map.dtype)
        ball = ndimage.generate_binary_structure(3, 1)
        for label, median in self.medians.items():
            region = ref_map == label
            if self.margin > 0:
                region = ndimage.binary_dilation(region, ball, iterations=self.margin)
            cost = np.where(region, np.abs(arr - median), np.inf)
            better = cost < best_cost
            out[better] = label
            best_cost[better] = cost[better]
        return volume.with_array(out)

    @property
    def description(self) -> str:
        meds = ", ".join(f"{k}: {v:.4g}" for k, v in sorted(self.medians.items()))
        return f"{self.method} (label medians on the reference: {meds}; margin {self.margin} voxels)"


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of a boolean mask (all False if the mask is empty)."""
    mask = np.asarray(mask, dtype=bool)
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def parse_method(method: str) -> tuple[str, str]:
    """Split a method string into (kind, argument); MedSRError names the accepted forms otherwise."""
    text = (method or "").strip()
    m = re.fullmatch(r"otsu(\d+)", text, flags=re.IGNORECASE)
    if m:
        n = int(m.group(1))
        if not 2 <= n <= 8:
            raise MedSRError(f"segmentation '{text}': Otsu needs 2 to 8 classes; use e.g. otsu3")
        return "otsu", str(n)
    for kind in ("threshold", "labels"):
        if text.lower().startswith(kind + ":"):
            arg = text[len(kind) + 1:].strip()
            if not arg:
                raise MedSRError(f"segmentation '{text}' needs a value after '{kind}:'; accepted: {METHOD_HELP}")
            return kind, arg
    raise MedSRError(f"unknown segmentation method '{method}'; accepted: {METHOD_HELP}")


def fit(method: str, reference: Volume) -> Segmenter:
    """Fit ``method`` on the reference image; the returned Segmenter is applied unchanged to every output."""
    kind, arg = parse_method(method)
    if kind == "otsu":
        n = int(arg)
        thresholds = multi_otsu_thresholds(reference.array, n)
        seg = OtsuSegmenter(method=f"otsu{n}", labels=tuple(range(1, n)), thresholds=thresholds)
        seg.reference = seg.apply(reference)
        return seg
    if kind == "threshold":
        try:
            t = float(arg)
        except ValueError:
            raise MedSRError(f"segmentation 'threshold:{arg}': '{arg}' is not a number; "
                             "use e.g. threshold:300") from None
        seg = ThresholdSegmenter(method=f"threshold:{t:g}", labels=(1,), threshold=t)
        seg.reference = seg.apply(reference)
        if not seg.reference.array.any():
            lo, hi = float(np.min(reference.array)), float(np.max(reference.array))
            raise MedSRError(
                f"threshold {t:g} keeps no voxel of the reference (its range is {lo:g} to {hi:g}); "
                "choose a value inside it"
            )
        return seg
    return _fit_label_map(arg, reference)


def _fit_label_map(path: str, reference: Volume) -> LabelMapSegmenter:
    from MedSRExtension.core.volume_io import load_volume  # lazy: io is heavier and only needed here

    labels_vol = load_volume(path)
    arr = np.asarray(labels_vol.array)
    if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
        raise MedSRError(f"label map '{path}' has non-integer values; "
                         "give a label map (integer labels, 0 = background)")
    if arr.min() < 0 or arr.max() > MAX_LABEL:
        raise MedSRError(f"label map '{path}' has labels outside 0..{MAX_LABEL}; relabel it")
    dtype = np.uint8 if arr.max() < 256 else np.int16
    return label_map_segmenter(labels_vol.with_array(arr.astype(dtype)), reference, f"labels:{path}",
                               where=f"label map '{path}'")


def label_map_segmenter(labels: Volume, reference: Volume, method: str = "labels",
                        where: str = "the label map") -> LabelMapSegmenter:
    """A Segmenter whose reference segmentation is ``labels`` (integer map, any grid; resampled
    nearest onto the reference) and which segments other images by refining it (see module doc)."""
    ref_map = resample_labels_nearest(labels, reference)
    present = [int(v) for v in np.unique(ref_map.array) if v != 0]
    if not present:
        raise MedSRError(
            f"{where} has no label inside the reference image's extent; check that both are in the same space"
        )
    img = np.asarray(reference.array, dtype=np.float64)
    medians = {lab: float(np.median(img[ref_map.array == lab]))
               for lab in [0] + present if (ref_map.array == lab).any()}
    return LabelMapSegmenter(method=method, labels=tuple(present), reference=ref_map, medians=medians)


def to_sitk(volume: Volume, array: np.ndarray | None = None) -> sitk.Image:
    """A SimpleITK image with the volume's geometry (direction columns = axis directions, LPS)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(volume.array if array is None else array))
    img.SetSpacing(tuple(volume.spacing))
    img.SetOrigin(tuple(volume.origin))
    img.SetDirection(tuple(float(v) for v in np.asarray(volume.direction).ravel()))
    return img


def same_grid(a: Volume, b: Volume, tol: float = 1e-6) -> bool:
    """True when both volumes have the same shape, spacing, origin and direction."""
    return (
        a.array.shape == b.array.shape
        and np.allclose(a.spacing, b.spacing, atol=tol)
        and np.allclose(a.origin, b.origin, atol=tol)
        and np.allclose(a.direction, b.direction, atol=tol)
    )


def resample_labels_nearest(labels: Volume, target: Volume) -> Volume:
    """``labels`` on ``target``'s grid by physical-space nearest neighbour (0 outside), exact for oblique grids."""
    if same_grid(labels, target):
        return labels.with_array(np.asarray(labels.array).copy())
    arr = np.asarray(labels.array)
    work = arr.astype(np.int16) if arr.dtype not in (np.uint8, np.int16, np.int32, np.uint16) else arr
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize(tuple(int(n) for n in target.shape_ijk))
    resampler.SetOutputSpacing(tuple(target.spacing))
    resampler.SetOutputOrigin(tuple(target.origin))
    resampler.SetOutputDirection(tuple(float(v) for v in np.asarray(target.direction).ravel()))
    resampler.SetInterpolator(sitk.sitkNearestNeighbor)
    resampler.SetDefaultPixelValue(0)
    out = sitk.GetArrayFromImage(resampler.Execute(to_sitk(labels, work)))
    return Volume(out.astype(arr.dtype, copy=False), target.spacing, target.origin, np.asarray(target.direction).copy())
