"""PSNR/SSIM give the numbers published work reports (scikit-image is the reference), in 2D and 3D,
and the mask and border shave do what a reader of a results table assumes."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_dilation, gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.evaluation.metrics import compare_volumes, psnr, ssim, ssim_map
from MedSRExtension.core.volume import Volume

MNI = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
RADIUS = 5  # Gaussian window radius: int(3.5 * 1.5 + 0.5)


def sk_ssim(pred, ref, data_range, sample=False, **kw):
    return structural_similarity(ref, pred, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=sample, **kw)


@pytest.fixture(scope="module")
def mr() -> np.ndarray:
    """A 96 x 80 region of the pydicom shoulder MR (uint16)."""
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("MR2_UNCI.dcm")).pixel_array[300:396, 400:480].copy()


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    """A 100² region of scikit-image's fundus photograph, green channel (uint8)."""
    from skimage.data import retina

    return retina()[650:750, 500:600, 1].copy()


@pytest.fixture(scope="module")
def brain() -> np.ndarray:
    """A 24 x 28 x 26 region of the MNI152 T1 template [k, j, i], float64."""
    root = importlib.util.find_spec("nilearn").submodule_search_locations[0]
    arr = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(root, MNI)))
    return arr[80:104, 100:128, 85:111].astype(np.float64)


def noisy(a: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return a + np.random.default_rng(seed).normal(0.0, sigma, a.shape)


# ----------------------------------------------------------------------- agreement with skimage
def test_psnr_matches_skimage(mr, brain):
    ref = mr.astype(np.float64)
    pred = noisy(ref, 20.0)
    rng = float(ref.max() - ref.min())
    assert psnr(pred, ref, rng) == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=rng), abs=1e-10)
    blurred = gaussian_filter(brain, 1.0)
    assert psnr(blurred, brain, 255) == pytest.approx(
        peak_signal_noise_ratio(brain, blurred, data_range=255), abs=1e-10)
    # integer input: same value, no overflow of uint16 differences
    assert psnr(mr, np.clip(pred, 0, None).astype(np.uint16), 600) == pytest.approx(
        peak_signal_noise_ratio(mr.astype(float), np.clip(pred, 0, None).astype(np.uint16).astype(float),
                                data_range=600), abs=1e-10)


@pytest.mark.parametrize("sample", [False, True], ids=["population", "sample"])
def test_ssim_2d_matches_skimage(mr, retina, sample):
    ref = mr.astype(np.float64)
    pred = noisy(ref, 25.0)
    rng = float(ref.max() - ref.min())
    expected = sk_ssim(pred, ref, rng, sample)
    assert ssim(pred, ref, rng, use_sample_covariance=sample) == pytest.approx(expected, abs=1e-10)
    assert 0.3 < expected < 0.95  # a realistic, non-trivial score
    g = retina.astype(np.float64)
    blurred = gaussian_filter(g, 1.5)
    assert ssim(blurred, g, 255.0, use_sample_covariance=sample) == pytest.approx(
        sk_ssim(blurred, g, 255.0, sample), abs=1e-10)


@pytest.mark.parametrize("sample", [False, True], ids=["population", "sample"])
def test_ssim_3d_uses_a_3d_window_like_skimage(brain, sample):
    pred = noisy(gaussian_filter(brain, 0.8), 6.0)
    value = ssim(pred, brain, 255.0, use_sample_covariance=sample)
    assert value == pytest.approx(sk_ssim(pred, brain, 255.0, sample), abs=1e-10)
    slicewise = np.mean([sk_ssim(p, r, 255.0, sample) for p, r in zip(pred, brain)])
    assert abs(value - slicewise) > 1e-3  # it is not the mean of 2D scores


def test_per_slice_ssim_averages_2d_maps_for_thick_stacks(brain):
    """A 5-slice stack is too thin for a 3D window: per_slice uses 2D windows on each slice."""
    ref = brain[:5]
    pred = noisy(ref, 6.0, seed=2)
    with pytest.raises(MedSRError, match="per_slice"):
        ssim(pred, ref, 255.0)
    expected = np.mean([sk_ssim(p, r, 255.0) for p, r in zip(pred, ref)])
    assert ssim(pred, ref, 255.0, per_slice=True) == pytest.approx(expected, abs=1e-10)


def test_one_slice_volume_is_a_2d_image(mr):
    ref = mr.astype(np.float64)
    pred = noisy(ref, 10.0)
    two_d = ssim(pred, ref, 600.0)
    assert ssim(pred[None], ref[None], 600.0) == pytest.approx(two_d, abs=1e-14)
    assert ssim(pred[:, None, :], ref[:, None, :], 600.0) == pytest.approx(two_d, abs=1e-14)
    assert psnr(pred[None], ref[None], 600.0, shave=3) == pytest.approx(psnr(pred, ref, 600.0, shave=3))


def test_identical_images_score_perfectly(mr, brain):
    assert psnr(mr, mr, 600) == float("inf")
    assert ssim(mr, mr, 600) == pytest.approx(1.0, abs=1e-12)
    assert ssim(brain, brain, 255, shave=2) == pytest.approx(1.0, abs=1e-12)
    assert psnr(brain, brain.copy(), 255, mask=brain > 0) == float("inf")


def test_data_range_sets_the_scale(mr):
    ref = mr.astype(np.float64)
    pred = noisy(ref, 10.0)
    assert psnr(pred, ref, 1200.0) - psnr(pred, ref, 600.0) == pytest.approx(20 * np.log10(2))
    assert ssim(pred, ref, 6000.0) > ssim(pred, ref, 600.0)  # larger constants forgive more


# ------------------------------------------------------------------------------ shave and mask
def test_shave_equals_scoring_the_inner_region(mr, brain):
    ref = mr.astype(np.float64)
    pred = noisy(ref, 15.0)
    inner = (slice(4, -4), slice(4, -4))
    assert ssim(pred, ref, 600.0, shave=4) == pytest.approx(sk_ssim(pred[inner], ref[inner], 600.0), abs=1e-10)
    assert psnr(pred, ref, 600.0, shave=4) == pytest.approx(
        peak_signal_noise_ratio(ref[inner], pred[inner], data_range=600.0), abs=1e-10)
    pred3 = noisy(brain, 5.0)
    per_axis = (slice(1, -1), slice(2, -2), slice(3, -3))
    assert ssim(pred3, brain, 255.0, shave=(1, 2, 3)) == pytest.approx(
        sk_ssim(pred3[per_axis], brain[per_axis], 255.0), abs=1e-10)


def test_shave_removes_a_corrupted_border(mr):
    """An upsampler's bad border (here: garbage in the outer 4 pixels) does not count once shaved."""
    ref = mr.astype(np.float64)
    clean = gaussian_filter(ref, 1.0)
    bad = clean.copy()
    border = np.ones(ref.shape, bool)
    border[4:-4, 4:-4] = False
    bad[border] = np.random.default_rng(3).uniform(0, 600, border.sum())
    assert psnr(bad, ref, 600.0) < psnr(clean, ref, 600.0) - 5
    assert ssim(bad, ref, 600.0) < ssim(clean, ref, 600.0) - 0.05
    assert psnr(bad, ref, 600.0, shave=4) == psnr(clean, ref, 600.0, shave=4)
    assert ssim(bad, ref, 600.0, shave=4) == ssim(clean, ref, 600.0, shave=4)


def test_mask_excluding_a_corrupted_region_restores_the_clean_score(retina, brain):
    ref = retina.astype(np.float64)
    clean = noisy(ref, 4.0)
    bad = clean.copy()
    region = np.zeros(ref.shape, bool)
    region[30:55, 40:70] = True
    bad[region] = 255.0 - bad[region]
    # SSIM at a pixel sees its whole window: keep pixels farther than the window radius away.
    mask = ~binary_dilation(region, iterations=RADIUS, structure=np.ones((3, 3)))
    assert ssim(bad, ref, 255.0) < ssim(clean, ref, 255.0) - 0.05
    assert ssim(bad, ref, 255.0, mask=mask) == pytest.approx(ssim(clean, ref, 255.0, mask=mask), abs=1e-12)
    assert psnr(bad, ref, 255.0, mask=~region) == pytest.approx(psnr(clean, ref, 255.0, mask=~region), abs=1e-12)
    # the masked SSIM is the mean of the SSIM map over the mask (inside the border strip)
    _, smap = sk_ssim(bad, ref, 255.0, full=True)
    inner = (slice(RADIUS, -RADIUS),) * 2
    assert ssim(bad, ref, 255.0, mask=mask) == pytest.approx(smap[inner][mask[inner]].mean(), abs=1e-10)
    # 3D: a brain mask scores the head only
    pred3 = noisy(brain, 5.0)
    head = brain > 0
    _, smap3 = sk_ssim(pred3, brain, 255.0, full=True)
    inner3 = (slice(RADIUS, -RADIUS),) * 3
    assert ssim(pred3, brain, 255.0, mask=head) == pytest.approx(smap3[inner3][head[inner3]].mean(), abs=1e-10)
    assert psnr(pred3, brain, 255.0, mask=head) == pytest.approx(
        10 * np.log10(255.0**2 / np.mean((pred3 - brain)[head] ** 2)), abs=1e-10)


def test_inputs_are_not_modified(mr):
    ref = mr.astype(np.float64)
    pred = noisy(ref, 5.0)
    mask = ref > 100
    copies = (ref.copy(), pred.copy(), mask.copy())
    ssim(pred, ref, 600.0, mask=mask, shave=2)
    psnr(pred, ref, 600.0, mask=mask, shave=2)
    for a, b in zip((ref, pred, mask), copies):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------- volumes
def test_compare_volumes_reports_psnr_and_ssim(brain):
    ref = Volume(brain, spacing=(1.0, 1.0, 1.0))
    pred = ref.with_array(noisy(brain, 5.0))
    rng = float(brain.max() - brain.min())
    out = compare_volumes(pred, ref)
    assert out["ssim_mode"] == "3d" and out["data_range"] == rng
    assert out["psnr"] == pytest.approx(peak_signal_noise_ratio(brain, pred.array, data_range=rng))
    assert out["ssim"] == pytest.approx(sk_ssim(pred.array, brain, rng), abs=1e-10)
    masked = compare_volumes(pred, ref, data_range=255.0, mask=ref.with_array((brain > 0).astype(np.uint8)))
    assert masked["psnr"] == pytest.approx(psnr(pred.array, brain, 255.0, mask=brain > 0))
    thin = compare_volumes(Volume(pred.array[:4]), Volume(brain[:4]), data_range=255.0)
    assert thin["ssim_mode"] == "slicewise"
    one = compare_volumes(Volume(pred.array[3]), Volume(brain[3]), data_range=255.0)
    assert one["ssim_mode"] == "2d"
    assert one["ssim"] == pytest.approx(sk_ssim(pred.array[3], brain[3], 255.0), abs=1e-10)


def test_compare_volumes_refuses_different_grids(brain):
    with pytest.raises(MedSRError, match="same grid|resample"):
        compare_volumes(Volume(brain), Volume(brain[:, :-1]))
    with pytest.raises(MedSRError, match="constant"):
        compare_volumes(Volume(brain), Volume(np.zeros_like(brain)))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a: psnr(a, a[:-1], 1.0), "shape"),
        (lambda a: ssim(a, a, 0.0), "data_range"),
        (lambda a: psnr(a, a, None), "data_range"),
        (lambda a: psnr(np.where(a > 0.5, np.nan, a), a, 1.0), "NaN"),
        (lambda a: ssim(a, a, 1.0, mask=np.ones((3, 3), bool)), "mask has shape"),
        (lambda a: psnr(a, a, 1.0, mask=np.zeros(a.shape, bool)), "selects no voxel"),
        (lambda a: ssim(a[:8, :8], a[:8, :8], 1.0), "at least 11"),
        (lambda a: ssim(a, a, 1.0, shave=30), "shave"),
        (lambda a: psnr(a, a, 1.0, shave=-1), "shave"),
        (lambda a: psnr(a[0], a[0], 1.0), "2D"),
    ],
)
def test_bad_input_raises_a_clear_error(mr, call, message):
    with pytest.raises(MedSRError, match=message):
        call(mr[:40, :40] / 600.0)


def test_ssim_map_locates_the_damage(retina):
    """The map a viewer shows next to the images: low where the prediction is wrong, and it averages
    (inside the border strip) to the reported SSIM."""
    ref = retina.astype(np.float64)
    bad = ref.copy()
    bad[30:55, 40:70] = 255.0 - bad[30:55, 40:70]
    smap = ssim_map(bad, ref, 255.0)
    assert smap.shape == ref.shape
    assert smap[35:50, 45:65].mean() < 0.8
    np.testing.assert_allclose(smap[75:95, 75:95], 1.0)  # untouched and far from the damage
    inner = (slice(RADIUS, -RADIUS),) * 2
    assert smap[inner].mean() == pytest.approx(ssim(bad, ref, 255.0), abs=1e-12)
