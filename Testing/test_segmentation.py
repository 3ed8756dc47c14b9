"""Network-free segmentations on a real brain region: Otsu classes, threshold + largest component,
a user label map resampled nearest-neighbour across oblique grids, and thresholds fitted once."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from MedSRExtension.data.corpus import mni_path
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume_io import load_volume
from MedSRExtension.evaluation.segmentation import fit, multi_otsu_thresholds, resample_labels_nearest
from MedSRExtension.core.volume import Volume


def crop(vol: Volume, k, j, i) -> Volume:
    """A sub-volume [k0:k1, j0:j1, i0:i1] keeping its physical position."""
    start = np.array([i[0], j[0], k[0]], float)
    origin = np.asarray(vol.origin) + vol.direction @ (start * np.asarray(vol.spacing))
    return Volume(vol.array[k[0]:k[1], j[0]:j[1], i[0]:i[1]].astype(np.float32), vol.spacing, origin, vol.direction)


@pytest.fixture(scope="module")
def brain() -> Volume:
    """A 24 x 48 x 48 region of the MNI T1 template through grey and white matter and ventricles."""
    return crop(load_volume(mni_path()), (60, 84), (95, 143), (75, 123))


def test_otsu3_gives_ordered_tissue_classes(brain):
    seg = fit("otsu3", brain)
    labels = seg.reference.array
    assert seg.labels == (1, 2) and labels.dtype == np.uint8 and labels.shape == brain.array.shape
    means = [brain.array[labels == c].mean() for c in range(3)]
    assert means[0] < means[1] < means[2]  # background/CSF < grey < white matter
    assert all((labels == c).mean() > 0.05 for c in range(3))
    # the same thresholds as scikit-image's multi-Otsu, up to one histogram bin
    bin_width = (brain.array.max() - brain.array.min()) / 256
    np.testing.assert_allclose(seg.thresholds, threshold_multiotsu(brain.array, 3), atol=1.01 * bin_width)
    assert fit("otsu3", brain).reference.array.tolist() == labels.tolist()
    assert fit("otsu4", brain).labels == (1, 2, 3)


def test_thresholds_are_fitted_on_the_reference_and_reused(brain):
    seg = fit("otsu3", brain)
    dimmer = brain.with_array(brain.array * 0.85)
    applied = seg.apply(dimmer).array
    refitted = fit("otsu3", dimmer).reference.array
    # Otsu is scale invariant, so refitting would hide the darkening; the fitted segmenter shows it
    assert (refitted == seg.reference.array).mean() > 0.98
    assert (applied == 2).sum() < 0.8 * (seg.reference.array == 2).sum()
    assert np.array_equal(seg.apply(brain).array, seg.reference.array)
    assert brain.array.max() <= 255  # the input was not modified in place
    assert np.array_equal(brain.array, crop(load_volume(mni_path()), (60, 84), (95, 143), (75, 123)).array)


def test_threshold_keeps_the_largest_connected_component(brain):
    arr = brain.array.copy()
    arr[:5, :5, :5] = 0.0
    arr[1:3, 1:3, 1:3] = 1000.0  # a bright island, cut off from the rest by a dark moat
    img = brain.with_array(arr)
    t = float(multi_otsu_thresholds(brain.array, 2)[0])
    out = fit(f"threshold:{t}", img).reference.array
    assert out.max() == 1 and out[:5, :5, :5].sum() == 0
    _, n = ndimage.label(out)
    assert n == 1
    lab, _ = ndimage.label(arr > t)
    sizes = np.bincount(lab.ravel())[1:]
    assert out.sum() == sizes.max()
    with pytest.raises(MedSRError, match="keeps no voxel"):
        fit("threshold:5000", brain)
    with pytest.raises(MedSRError, match="not a number"):
        fit("threshold:high", brain)


@pytest.mark.parametrize("bad", ["otsu1", "otsu12", "kmeans", "labels:", ""])
def test_unknown_methods_are_refused_with_one_line(bad):
    with pytest.raises(MedSRError) as info:
        fit(bad, Volume(np.arange(64, dtype=np.float32).reshape(4, 4, 4)))
    assert "\n" not in str(info.value)


def oblique(vol: Volume) -> Volume:
    """The same voxels on an oblique grid (rotated 30 degrees about k, then 20 about i), anisotropic spacing."""
    a, b = np.radians(30), np.radians(20)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return Volume(vol.array, (0.9, 1.1, 2.5), (12.0, -40.0, 7.0), rx @ rz)


def test_label_file_is_resampled_nearest_onto_an_oblique_grid(brain, tmp_path):
    ref = oblique(brain)
    truth = fit("otsu3", ref).reference
    # the label file holds the same labels on a grid flipped along i and 2x finer along k
    flipped = truth.array[:, :, ::-1].repeat(2, axis=0)
    d = ref.direction.copy()
    d[:, 0] *= -1
    far_i = ref.index_to_physical(np.array([truth.array.shape[2] - 1, 0, 0]))
    origin = far_i + ref.direction @ np.array([0.0, 0.0, (1.25 - 2.5) / 2])
    img = sitk.GetImageFromArray(flipped)
    img.SetSpacing((0.9, 1.1, 1.25))
    img.SetOrigin(tuple(origin))
    img.SetDirection(tuple(d.ravel()))
    path = tmp_path / "labels.nrrd"
    sitk.WriteImage(img, str(path))

    seg = fit(f"labels:{path}", ref)
    assert np.array_equal(seg.reference.array, truth.array)
    assert seg.labels == (1, 2)
    # segmenting the reference image itself by the label medians keeps the boundaries almost everywhere
    again = seg.apply(ref).array
    assert (again == truth.array).mean() > 0.95
    # and the direct resampler agrees both ways
    back = resample_labels_nearest(truth, Volume(flipped, (0.9, 1.1, 1.25), origin, d))
    assert np.array_equal(back.array, flipped)


def test_label_file_errors_are_one_line(brain, tmp_path):
    img = sitk.GetImageFromArray(np.full((4, 4, 4), 0.5, np.float32))
    path = tmp_path / "float.nii.gz"
    sitk.WriteImage(img, str(path))
    with pytest.raises(MedSRError, match="non-integer"):
        fit(f"labels:{path}", brain)
    far = sitk.GetImageFromArray(np.ones((4, 4, 4), np.uint8))
    far.SetOrigin((5000.0, 5000.0, 5000.0))
    sitk.WriteImage(far, str(tmp_path / "far.nrrd"))
    with pytest.raises(MedSRError, match="no label inside"):
        fit(f"labels:{tmp_path / 'far.nrrd'}", brain)
    with pytest.raises(MedSRError, match="not found"):
        fit(f"labels:{tmp_path / 'missing.nrrd'}", brain)
