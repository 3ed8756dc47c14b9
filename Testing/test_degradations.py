"""Degradations make the LR inputs of training and of `medsr compare`: right size, right place in
space, the right spectrum, the right noise, and the HR image left untouched."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from MedSRExtension.core import degradations as D
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

MNI = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


@pytest.fixture(scope="module")
def mni() -> np.ndarray:
    """MNI152 T1 template [k, j, i] (uint8, background exactly 0)."""
    root = importlib.util.find_spec("nilearn").submodule_search_locations[0]
    return sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(root, MNI)))


@pytest.fixture(scope="module")
def mr() -> np.ndarray:
    """A 256² region of the pydicom shoulder MR, float64."""
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("MR2_UNCI.dcm")).pixel_array[256:512, 384:640].astype(np.float64)


@pytest.fixture(scope="module")
def oblique(mni) -> Volume:
    """A brain region on an oblique, anisotropic grid (as a clinical scan would be)."""
    rot = sitk.VersorTransform((0.3, -0.5, 0.8), 0.4).GetMatrix()
    return Volume(
        mni[70:94, 60:120, 50:110].astype(np.int16),
        spacing=(0.8, 0.95, 3.0),
        origin=(-12.5, 40.25, 7.0),
        direction=np.asarray(rot).reshape(3, 3),
    )


# ------------------------------------------------------------------------------ shape and grid
@pytest.mark.parametrize(
    "f, expected",
    [(2, (48, 40)), (3, (32, 27)), (2.5, (38, 32))],
)
def test_inplane_shapes_follow_round_n_over_f(mr, f, expected):
    hr = mr[:96, :80]
    assert D.bicubic(hr, f).shape == expected
    assert D.kspace(hr, f).shape == expected
    assert D.bicubic(hr, f).dtype == np.float32


def test_thickslice_resamples_only_its_axis(mni):
    hr = mni[60:90, 60:100, 50:70]
    assert D.thickslice(hr, 3, axis="k").shape == (10, 40, 20)
    assert D.thickslice(hr, 4, axis="j").shape == (30, 10, 20)
    assert D.thickslice(hr, 2.5, axis="i").shape == (30, 40, 8)


@pytest.mark.parametrize(
    "call",
    [
        lambda v: D.bicubic(v, 2),
        lambda v: D.bicubic(v, 3, axis="j"),
        lambda v: D.bicubic(v, (2.5, 3, 1.5)),
        lambda v: D.kspace(v, 2),
        lambda v: D.kspace(v, 3, axis="i"),
        lambda v: D.thickslice(v, 3, axis="k"),
        lambda v: D.thickslice(v, 2.5, axis="i", profile="box"),
        lambda v: D.degrade(v, "thickslice", 4, axis="j", gap=1.0),
    ],
    ids=["bicubic-k", "bicubic-j", "bicubic-3d", "kspace-k", "kspace-i", "thick-k", "thick-i", "thick-gap-j"],
)
def test_volume_keeps_its_physical_extent(oblique, call):
    lr = call(oblique)
    assert isinstance(lr, Volume)
    np.testing.assert_allclose(lr.edge_bounds(), oblique.edge_bounds(), atol=1e-9)
    np.testing.assert_array_equal(lr.direction, oblique.direction)
    n, n_lr = np.asarray(oblique.shape_ijk), np.asarray(lr.shape_ijk)
    np.testing.assert_allclose(lr.spacing, np.asarray(oblique.spacing) * n / n_lr, rtol=1e-12)
    assert np.any(n_lr < n)


def test_bicubic_is_torchs_antialiased_bicubic(mr):
    """The separable passes equal torch's own 2D call (antialias, align_corners=False)."""
    hr = mr[:90, :70].astype(np.float32)
    ref = F.interpolate(torch.from_numpy(hr)[None, None], size=(30, 23), mode="bicubic",
                        antialias=True, align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(D.bicubic(hr, 3), ref, rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------------------- spectral behaviour
def _band_power(x: np.ndarray) -> tuple[float, float]:
    """(power above half the Nyquist frequency, power at low frequencies), Hann-windowed."""
    x = x - x.mean()
    win = np.hanning(x.shape[0])[:, None] * np.hanning(x.shape[1])[None, :]
    power = np.abs(np.fft.fft2(x * win)) ** 2 / x.size
    r = np.maximum(np.abs(np.fft.fftfreq(x.shape[0]))[:, None], np.abs(np.fft.fftfreq(x.shape[1]))[None, :])
    return float(power[r > 0.25].sum()), float(power[(r > 0) & (r < 0.1)].sum())


@pytest.mark.parametrize("f", [2, 4])
def test_bicubic_antialias_removes_aliased_energy(mr, f):
    """Naive decimation folds the noise and detail above the LR Nyquist frequency back into the
    image; antialiased downsampling removes it and keeps the low frequencies."""
    hr = mr + np.random.default_rng(1).normal(0.0, 15.0, mr.shape)
    hf_aa, lf_aa = _band_power(D.bicubic(hr, f))
    hf_naive, lf_naive = _band_power(hr[::f, ::f])
    hf_ideal, lf_ideal = _band_power(D.kspace(hr, f))
    assert hf_aa < 0.4 * hf_naive
    assert hf_aa < hf_ideal  # bicubic rolls off before the ideal cut
    assert lf_aa == pytest.approx(lf_ideal, rel=0.02)
    assert lf_naive == pytest.approx(lf_ideal, rel=0.05)


@pytest.mark.parametrize("shape, f", [((64, 64), 2), ((63, 65), 2), ((64, 60), 3), ((45, 51), 3)],
                         ids=["even-even", "odd-even", "even-odd", "odd-odd"])
def test_kspace_lr_spectrum_is_the_centre_of_hr_spectrum(mr, shape, f):
    hr = mr[100:100 + shape[0], 90:90 + shape[1]]
    lr = D.kspace(hr, f).astype(np.float64)
    n, m = np.array(hr.shape), np.array(lr.shape)
    centre = np.fft.fftshift(np.fft.fft2(hr))
    start = n // 2 - m // 2
    expected = centre[start[0]:start[0] + m[0], start[1]:start[1] + m[1]] * (m.prod() / n.prod())
    got = np.fft.fftshift(np.fft.fft2(lr))
    # An even LR size has an unpaired Nyquist row/column (index 0 after fftshift); it is symmetrised.
    keep = np.ones(tuple(m), bool)
    if m[0] % 2 == 0:
        keep[0, :] = False
    if m[1] % 2 == 0:
        keep[:, 0] = False
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.abs(got)[keep], np.abs(expected)[keep], atol=1e-4 * scale)
    assert lr.mean() == pytest.approx(hr.mean(), rel=1e-5)


def _shift(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Least-squares sub-voxel shift (rows, cols) of ``moving`` relative to ``fixed``, interior only."""
    a, b = moving[4:-4, 4:-4].astype(np.float64), fixed[4:-4, 4:-4].astype(np.float64)
    gy, gx = np.gradient(b)
    return np.linalg.lstsq(np.stack([gy.ravel(), gx.ravel()], 1), (a - b).ravel(), rcond=None)[0]


@pytest.mark.parametrize("f", [2, 3, 2.5])
def test_kspace_lr_lies_on_the_same_grid_as_bicubic(mni, f):
    """No half-voxel shift between degradations: a model trained on one is not misplaced on the other
    (without the phase ramp the k-space LR sits about 0.3 LR voxels off)."""
    hr = mni[90, 40:200, 30:170].astype(np.float64)
    shift = _shift(D.kspace(hr, f), D.bicubic(hr, f))
    assert np.all(np.abs(shift) < 0.02), shift


def test_kspace_magnitude_output_is_non_negative(mr):
    lr = D.kspace(mr[:100, :100], 3, output="magnitude")
    real = D.kspace(mr[:100, :100], 3)
    assert lr.min() >= 0 and real.min() < 0  # Gibbs ringing dips below zero near the dark edges
    bright = real > 100
    np.testing.assert_allclose(lr[bright], real[bright], rtol=1e-3)


# ---------------------------------------------------------------------------------- thick slices
@pytest.mark.parametrize("axis, dim", [("k", 0), ("j", 1), ("i", 2)])
def test_thickslice_box_of_the_factor_is_block_averaging(mni, axis, dim):
    hr = mni[60:90, 60:96, 50:71].astype(np.float64)  # 30, 36, 21: all divisible by 3
    lr = D.thickslice(hr, 3, axis=axis, profile="box")
    moved = np.moveaxis(hr, dim, 0)
    blocks = moved.reshape(moved.shape[0] // 3, 3, *moved.shape[1:]).mean(axis=1)
    np.testing.assert_allclose(lr, np.moveaxis(blocks, 0, dim), rtol=1e-6, atol=1e-4)


def test_thickslice_gap_samples_thin_slices_with_gaps(mni):
    """1-slice-thick box slices with a gap of 2: every third HR slice, centred on the LR voxel."""
    hr = mni[60:90, 60:96, 50:71].astype(np.float64)
    lr = D.thickslice(hr, 3, axis="k", thickness=1, gap=2, profile="box")
    np.testing.assert_allclose(lr, hr[1::3], rtol=1e-6)
    same = D.thickslice(hr, 3, axis="k", gap=2, profile="box")  # thickness inferred
    np.testing.assert_array_equal(same, lr)


@pytest.mark.parametrize("thickness", [2.0, 4.0, 5.5])
def test_gaussian_slice_profile_has_the_requested_fwhm(thickness):
    w = D.slice_profile_weights(60, 15, thickness, "gaussian")
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    row = 7  # far from both ends of the volume
    centre = (row + 0.5) * 4 - 0.5
    h = np.arange(60)
    mean = (w[row] * h).sum()
    var = (w[row] * (h - mean) ** 2).sum()
    sigma = thickness / (2 * np.sqrt(2 * np.log(2)))
    assert mean == pytest.approx(centre, abs=1e-9)
    assert var == pytest.approx(sigma**2 + 1 / 12, rel=1e-3)  # profile ⊛ one HR slice


def test_thicker_slices_blur_more(mni):
    hr = mni[60:90, 60:96, 50:71].astype(np.float64)
    thin = D.thickslice(hr, 3, axis="k", thickness=1.0)
    thick = D.thickslice(hr, 3, axis="k", thickness=6.0)
    assert np.abs(np.diff(thick, axis=0)).mean() < 0.8 * np.abs(np.diff(thin, axis=0)).mean()


# ------------------------------------------------------------------------------------- noise
def test_gaussian_noise_has_the_requested_std_and_is_reproducible(mr):
    noisy = D.gaussian_noise(mr, 12.0, rng=7)
    resid = noisy.astype(np.float64) - mr
    assert resid.std() == pytest.approx(12.0, rel=0.02)
    assert abs(resid.mean()) < 0.2
    np.testing.assert_array_equal(noisy, D.gaussian_noise(mr, 12.0, rng=7))
    assert not np.array_equal(noisy, D.gaussian_noise(mr, 12.0, rng=8))
    g = np.random.default_rng(3)
    assert not np.array_equal(D.gaussian_noise(mr, 12.0, rng=g), D.gaussian_noise(mr, 12.0, rng=g))


def test_rician_noise_biases_the_background_by_sigma_sqrt_pi_over_2(mni):
    hr = mni[30:160, 20:210, :15]  # lateral region: background is exactly 0
    assert np.all(hr == 0)
    sigma = 8.0
    noisy = D.rician_noise(hr, sigma, rng=0).astype(np.float64)
    assert noisy.min() >= 0
    assert noisy.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.01)
    assert noisy.std() == pytest.approx(sigma * np.sqrt(2 - np.pi / 2), rel=0.01)


def test_rician_noise_in_bright_tissue_is_nearly_gaussian(mni):
    hr = mni[85:95, 100:140, 80:120].astype(np.float64)
    bright = hr > 150
    noisy = D.rician_noise(hr, 5.0, rng=1).astype(np.float64)
    resid = (noisy - hr)[bright]
    assert bright.sum() > 2000
    assert resid.std() == pytest.approx(5.0, rel=0.05)
    assert abs(resid.mean()) < 0.3  # the Rician bias sigma²/2A is negligible where A >> sigma


# ----------------------------------------------------------------------------- dispatcher, safety
def test_degrade_dispatches_and_adds_noise(oblique):
    lr = D.degrade(oblique, "bicubic", 2, noise="rician", noise_sigma=3.0, rng=5)
    clean = D.bicubic(oblique, 2)
    assert lr.array.shape == clean.array.shape
    np.testing.assert_allclose(lr.edge_bounds(), clean.edge_bounds())
    assert 1.0 < np.abs(lr.array - clean.array).mean() < 6.0
    arr = D.degrade(oblique.array[5], "kspace", 3, output="magnitude")
    assert isinstance(arr, np.ndarray) and arr.shape == (20, 20)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: D.degrade(x, "blur", 2), "unknown degradation"),
        (lambda x: D.degrade(x, "bicubic", 0.5), ">= 1"),
        (lambda x: D.degrade(x, "bicubic", 2, thickness=3), "does not take thickness"),
        (lambda x: D.degrade(x, "bicubic", 2, noise="poisson", noise_sigma=1), "unknown noise"),
        (lambda x: D.bicubic(x, 2, axis="z"), "axis must be"),
        (lambda x: D.thickslice(x, 3, thickness=2, gap=2), "must equal"),
        (lambda x: D.thickslice(x, 3, gap=3), "thickness must be positive"),
        (lambda x: D.thickslice(x, 3, profile="sinc"), "slice profile"),
        (lambda x: D.kspace(x, 2, output="phase"), "output must be"),
        (lambda x: D.gaussian_noise(x, -1), "sigma"),
        (lambda x: D.bicubic(np.where(x > 100, np.nan, x), 2), "NaN"),
        (lambda x: D.bicubic(x[0, 0], 2), "2D"),
    ],
)
def test_bad_requests_raise_a_clear_error(oblique, call, message):
    with pytest.raises(MedSRError, match=message):
        call(oblique.array.astype(np.float64))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: D.bicubic(x, 2),
        lambda x: D.kspace(x, 2),
        lambda x: D.thickslice(x, 2, axis="k"),
        lambda x: D.gaussian_noise(x, 3.0, rng=0),
        lambda x: D.rician_noise(x, 3.0, rng=0),
        lambda x: D.degrade(x, "kspace", 2, noise="gaussian", noise_sigma=2.0),
    ],
    ids=["bicubic", "kspace", "thickslice", "gaussian", "rician", "degrade"],
)
@pytest.mark.parametrize("as_volume", [False, True], ids=["array", "volume"])
def test_inputs_are_never_modified(oblique, call, as_volume):
    for dtype in (np.float32, np.int16):
        arr = oblique.array.astype(dtype)
        before = arr.copy()
        if as_volume:
            vol = Volume(arr, oblique.spacing, oblique.origin, oblique.direction)
            geometry = (vol.spacing, vol.origin, vol.direction.copy())
            out = call(vol)
            assert out.array is not vol.array and not np.shares_memory(out.array, arr)
            assert (vol.spacing, vol.origin) == geometry[:2]
            np.testing.assert_array_equal(vol.direction, geometry[2])
        else:
            out = call(arr)
            assert not np.shares_memory(out, arr)
        np.testing.assert_array_equal(arr, before)
