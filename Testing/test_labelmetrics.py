"""Dice, HD95 (mm, anisotropic spacing) and volume difference on cases whose answer is known by hand."""
import math

import numpy as np
import pytest

from MedSRExtension.evaluation.labelmetrics import compare_labels, dice, hd95, label_metrics
from MedSRExtension.core.volume import Volume


def box(shape, lo, hi):
    """A boolean [k, j, i] array, True on the half-open box lo..hi (k, j, i)."""
    m = np.zeros(shape, bool)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return m


def sphere(shape, centre, radius):
    k, j, i = np.indices(shape)
    return (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius ** 2


def test_dice_of_boxes_shifted_along_their_length():
    a = box((12, 12, 20), (2, 2, 2), (8, 8, 12))  # 10 voxels long along i
    b = box((12, 12, 20), (2, 2, 4), (8, 8, 14))  # shifted by 2 along i: 8 of 10 overlap
    assert dice(a, b) == pytest.approx(0.8)
    assert dice(a, a) == 1.0
    assert dice(a, box((12, 12, 20), (2, 2, 12), (8, 8, 18))) == 0.0


def test_hd95_uses_the_spacing_of_the_shifted_axis():
    """Thin boxes shifted by 2 voxels: every surface distance is 0 or at most the shift, and more than 5% of
    them (the faces) equal it, so HD95 is exactly 2 voxels in mm along the shifted axis."""
    shape = (12, 12, 12)
    a = box(shape, (2, 2, 2), (6, 10, 10))
    b_k = box(shape, (4, 2, 2), (8, 10, 10))  # shifted along k
    b_i = np.roll(box(shape, (2, 2, 0), (10, 10, 4)), 2, axis=2)  # 4 voxels thick along i ...
    a_i = box(shape, (2, 2, 0), (10, 10, 4))  # ... shifted along i
    spacing_kji = (3.0, 10.0, 1.0)  # k spacing 3 mm, i spacing 1 mm
    assert hd95(a, b_k, spacing_kji) == pytest.approx(6.0)
    assert hd95(a_i, b_i, spacing_kji) == pytest.approx(2.0)
    assert hd95(a, b_k, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hd95(a, a, spacing_kji) == 0.0


def test_hd95_is_symmetric_and_pooled():
    shape = (30, 30, 30)
    small = sphere(shape, (15, 15, 15), 6)
    large = sphere(shape, (15, 15, 15), 9)
    # concentric spheres: every surface distance is about the radius difference (3 voxels = 6 mm at 2 mm)
    d = hd95(small, large, (2.0, 2.0, 2.0))
    assert d == hd95(large, small, (2.0, 2.0, 2.0))
    assert 4.0 <= d <= 8.0


def test_shifted_spheres_dice_matches_the_analytic_overlap():
    r, d = 10, 4
    shape = (32, 32, 40)
    a = sphere(shape, (16, 16, 16), r)
    b = sphere(shape, (16, 16, 16 + d), r)
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12  # volume of two spheres' intersection
    expected = lens / (4 / 3 * math.pi * r ** 3)
    assert dice(a, b) == pytest.approx(expected, abs=0.02)
    # the largest surface distance is the shift; HD95 is positive and no larger
    assert 0 < hd95(a, b, (1.0, 1.0, 1.0)) <= d + 1e-9


def test_empty_labels_are_reported_not_crashed():
    shape = (8, 8, 8)
    empty = np.zeros(shape, bool)
    full = box(shape, (2, 2, 2), (5, 5, 5))
    assert dice(empty, empty) == 1.0 and math.isnan(hd95(empty, empty, (1, 1, 1)))
    assert dice(full, empty) == 0.0 and math.isinf(hd95(full, empty, (1, 1, 1)))
    m = label_metrics(np.zeros(shape, np.uint8), full.astype(np.uint8), (1, 1, 1), labels=[1, 2])
    assert m["dice"] == {1: 0.0, 2: 1.0}
    assert math.isinf(m["hd95"][1]) and math.isnan(m["hd95"][2])
    assert m["dice_mean"] == 0.5 and math.isinf(m["hd95_mean"])
    assert math.isnan(m["volume_diff_pct"][2])


def test_volume_difference_in_mm3_and_percent():
    shape = (16, 14, 14)
    ref = box(shape, (1, 2, 2), (11, 12, 12)).astype(np.uint8)  # 10x10x10 voxels
    pred = box(shape, (1, 2, 2), (13, 12, 12)).astype(np.uint8)  # 12 slices: 200 voxels more
    m = label_metrics(pred, ref, spacing_ijk=(1.0, 1.0, 3.0))
    assert m["labels"] == [1]
    assert m["volume_ref_mm3"][1] == pytest.approx(3000.0)
    assert m["volume_diff_mm3"][1] == pytest.approx(600.0)
    assert m["volume_diff_pct"][1] == pytest.approx(20.0)
    assert m["dice"][1] == pytest.approx(2 * 1000 / 2200)


def test_labels_on_different_grids_are_compared_after_nearest_resampling():
    """The same labels on a 2x finer grid covering the same physical box agree perfectly."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 3, size=(6, 7, 8)).astype(np.uint8)
    direction = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    ref = Volume(coarse, spacing=(2.0, 2.0, 4.0), origin=(10.0, -5.0, 3.0), direction=direction)
    fine_arr = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    # edge-preserving 2x grid: origin moves by half the new spacing minus half the old, along each axis
    shift = direction @ (np.array([1.0, 1.0, 2.0]) / 2 - np.array([2.0, 2.0, 4.0]) / 2)
    fine = Volume(fine_arr, spacing=(1.0, 1.0, 2.0), origin=np.array(ref.origin) + shift, direction=direction)
    m = compare_labels(fine, ref)
    assert m["dice"] == {1: 1.0, 2: 1.0}
    assert m["hd95"] == {1: 0.0, 2: 0.0}


def test_hd95_of_a_one_slice_image_uses_the_2d_outline():
    """Squares shifted by one pixel of 0.5 mm: every outline distance is 0 or 0.5 mm and over 5 % are 0.5."""
    a = box((1, 30, 30), (0, 5, 5), (1, 25, 25))
    b = box((1, 30, 30), (0, 5, 6), (1, 25, 26))
    assert hd95(a, b, (1.0, 0.5, 0.5)) == pytest.approx(0.5)
