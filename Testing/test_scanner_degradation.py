"""The scanner degradation family: k-space truncation with and without a window, Gaussian PSFs, noise at
realistic SNR and shading, on real corpus images; fixed validation pairs; training batches."""
from dataclasses import replace

import numpy as np
import pytest

from MedSRExtension.core.degradations import bicubic
from MedSRExtension.core.scanner_degradation import LOSSES, ScannerDraw, apply, draw, image_rng
from MedSRExtension.data import corpus
from MedSRExtension.data.patches import PatchSampler, load_sources
from MedSRExtension.evaluation.heldout import validation_set

PLAIN = ScannerDraw(bias_peak=0.0, loss="kspace", output="real", taper=0.5, psf_fwhm=1.0, noise=None,
                    noise_fraction=0.0)


@pytest.fixture(scope="module")
def mr():
    return corpus.read("mr2")[200:392, 200:392].copy()


def _ringing(lr_row: np.ndarray) -> float:
    """Overshoot of a step's LR profile above its upper plateau."""
    return float(lr_row.max() - 1.0)


def test_draws_cover_every_loss_noise_and_shading_in_their_ranges():
    draws = [draw(np.random.default_rng(i)) for i in range(300)]
    assert {d.loss for d in draws} == set(LOSSES)
    assert {d.noise for d in draws} == {None, "gaussian", "rician"}
    shaded = [d.bias_peak for d in draws if d.bias_peak > 0]
    assert 0.35 < len(shaded) / len(draws) < 0.65 and min(shaded) >= 0.05 and max(shaded) <= 0.2
    assert all(0.005 <= d.noise_fraction <= 0.04 and 0.8 <= d.psf_fwhm <= 1.5 for d in draws)


def test_every_loss_keeps_the_lr_grid_and_the_mean_and_leaves_the_input_alone(mr):
    before = mr.copy()
    for loss in LOSSES:
        hr, lr = apply(mr, (2.0, 2.0), replace(PLAIN, loss=loss), np.random.default_rng(0))
        assert lr.shape == (96, 96) and np.array_equal(hr, mr)
        assert abs(float(lr.mean()) - float(mr.mean())) < 0.01 * float(np.ptp(mr)), loss
        # the same LR grid as bicubic: close to it, not shifted by half a pixel
        ref = np.asarray(bicubic(mr, (2, 2, 1)))
        assert np.abs(lr - ref).mean() < 0.05 * float(np.ptp(mr)), loss
    np.testing.assert_array_equal(mr, before)


def test_the_tukey_window_damps_the_gibbs_ringing_of_plain_truncation():
    """Overshoot at a step edge: at x2 the LR samples next to an edge at an odd HR column fall on the
    ringing's first peak (9 % for plain truncation); the window must take at least a third away."""
    plain, windowed = [], []
    for edge in range(25, 33, 2):
        step = np.zeros((64, 64))
        step[:, edge:] = 1.0
        plain.append(_ringing(apply(step, (2.0, 2.0), PLAIN, np.random.default_rng(0))[1][8]))
        d = replace(PLAIN, loss="kspace-window", taper=0.8)
        windowed.append(_ringing(apply(step, (2.0, 2.0), d, np.random.default_rng(0))[1][8]))
    assert np.mean(plain) > 0.05  # truncation rings at the edge (Gibbs)
    assert np.mean(windowed) < 0.67 * np.mean(plain)


def test_a_wider_psf_blurs_more(mr):
    narrow = apply(mr, (2.0, 2.0), replace(PLAIN, loss="psf", psf_fwhm=0.8), np.random.default_rng(0))[1]
    wide = apply(mr, (2.0, 2.0), replace(PLAIN, loss="psf", psf_fwhm=1.5), np.random.default_rng(0))[1]
    assert np.abs(np.diff(wide, axis=1)).mean() < 0.85 * np.abs(np.diff(narrow, axis=1)).mean()


@pytest.mark.parametrize("noise", ["gaussian", "rician"])
def test_noise_has_the_drawn_level_of_the_intensity_range(mr, noise):
    d = replace(PLAIN, noise=noise, noise_fraction=0.03)
    clean = apply(mr, (2.0, 2.0), PLAIN, np.random.default_rng(1))[1]
    noisy = apply(mr, (2.0, 2.0), d, np.random.default_rng(1))[1]
    lo, hi = np.percentile(mr, [0.5, 99.5])
    bright = clean > lo + 0.3 * (hi - lo)  # where Rician noise is close to Gaussian
    level = float(np.std((noisy - clean)[bright])) / float(hi - lo)
    assert 0.025 < level < 0.035


def test_shading_is_smooth_within_its_peak_and_is_in_the_hr_target_too(mr):
    hr, _ = apply(mr, (2.0, 2.0), replace(PLAIN, bias_peak=0.15), np.random.default_rng(2))
    field = hr[mr > 0] / mr[mr > 0]
    assert 0.05 < float(np.abs(field - 1).max()) <= 0.15 + 1e-6
    assert np.abs(np.diff(hr / np.where(mr > 0, mr, 1), axis=0))[:-1][mr[1:-1] > 0].max() < 0.01


def test_validation_pairs_are_fixed_per_image_and_differ_between_images():
    a = validation_set((2.0, 2.0), "scanner", crop=96, names=["ctneck", "mr2"])
    b = validation_set((2.0, 2.0), "scanner", crop=96, names=["ctneck", "mr2"])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.lr, y.lr)
        np.testing.assert_array_equal(x.hr, y.hr)
    assert draw(image_rng("ctneck")) != draw(image_rng("mr2"))
    clean = validation_set((2.0, 2.0), "bicubic", crop=96, names=["ctneck"])[0]
    assert not np.allclose(a[0].lr, clean.lr, atol=1.0)


def test_training_batches_of_the_scanner_family_are_reproducible_and_unlike_bicubic():
    sources = load_sources()
    scanner = PatchSampler(16, [(2.0, 2.0)], "scanner", seed=4, sources=sources)
    plain = PatchSampler(16, [(2.0, 2.0)], "bicubic", seed=4, sources=sources)
    lr, hr, _ = scanner.sample(8, iteration=3)
    lr2, hr2, _ = scanner.sample(8, iteration=3)
    assert lr.shape == (8, 1, 16, 16) and hr.shape == (8, 1, 32, 32)
    assert np.array_equal(lr.numpy(), lr2.numpy()) and np.array_equal(hr.numpy(), hr2.numpy())
    lrb, _, _ = plain.sample(8, iteration=3)
    assert not np.allclose(lr.numpy(), lrb.numpy(), atol=1e-3)
