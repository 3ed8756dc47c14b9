"""DCNv2 deformable convolution checked against direct reference computations."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from MedSRExtension.models.deform import DeformConv2d, deform_conv2d


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("kernel,dilation,groups,offset_groups", [(3, 1, 1, 1), (3, 2, 2, 2), (5, 1, 1, 3)])
def test_zero_offsets_unit_mask_equal_plain_conv(kernel, dilation, groups, offset_groups):
    x = _rand(2, 6, 11, 9)
    w = _rand(4, 6 // groups, kernel, kernel, seed=1) - 0.5
    b = _rand(4, seed=2)
    kk = kernel * kernel
    off = torch.zeros(2, 2 * offset_groups * kk, 11, 9, dtype=torch.float64)
    mask = torch.ones(2, offset_groups * kk, 11, 9, dtype=torch.float64)
    ref = F.conv2d(x, w, b, padding=dilation * (kernel // 2), dilation=dilation, groups=groups)
    out = deform_conv2d(x, off, mask, w, b, dilation=dilation, groups=groups)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    # row chunking (tiny buffer budget) gives the same result
    chunked = deform_conv2d(x, off, mask, w, b, dilation=dilation, groups=groups, max_elements=1)
    torch.testing.assert_close(chunked, ref, rtol=1e-9, atol=1e-9)


def test_integer_offset_equals_conv_of_shifted_input():
    x = _rand(1, 3, 16, 16)
    w = _rand(5, 3, 3, 3, seed=1) - 0.5
    dy, dx = 2, -1
    off = torch.zeros(1, 18, 16, 16, dtype=torch.float64)
    off[:, 0::2] = dy
    off[:, 1::2] = dx
    mask = torch.ones(1, 9, 16, 16, dtype=torch.float64)
    out = deform_conv2d(x, off, mask, w)
    shifted = torch.roll(x, shifts=(-dy, -dx), dims=(2, 3))  # shifted[p] = x[p + (dy, dx)]
    ref = F.conv2d(shifted, w, padding=1)
    inner = (slice(None), slice(None), slice(4, 11), slice(4, 11))  # away from borders and wrap-around
    torch.testing.assert_close(out[inner], ref[inner], rtol=1e-9, atol=1e-9)


def test_mask_scales_taps_and_fractional_offset_interpolates():
    x = _rand(1, 2, 10, 10)
    w = _rand(3, 2, 3, 3, seed=1)
    off = torch.zeros(1, 18, 10, 10, dtype=torch.float64)
    mask = torch.full((1, 9, 10, 10), 0.25, dtype=torch.float64)
    torch.testing.assert_close(deform_conv2d(x, off, mask, w), 0.25 * F.conv2d(x, w, padding=1))
    # half a pixel to the right = average of the conv and the conv of the input shifted by one column
    off[:, 1::2] = 0.5
    ones = torch.ones_like(mask)
    half = deform_conv2d(x, off, ones, w)
    ref = 0.5 * (F.conv2d(x, w, padding=1) + F.conv2d(torch.roll(x, -1, dims=3), w, padding=1))
    torch.testing.assert_close(half[..., 2:8, 2:7], ref[..., 2:8, 2:7])


def test_layer_initialised_as_half_weighted_conv_and_gradients_reach_offsets():
    torch.manual_seed(0)
    layer = DeformConv2d(4, 4, 3)
    x = torch.rand(2, 4, 12, 12)
    ref = F.conv2d(x, 0.5 * layer.weight, layer.bias, padding=1)  # offsets 0, masks sigmoid(0) = 0.5
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-5)
    layer(x).square().mean().backward()
    assert layer.offset_mask.weight.grad is not None
    n_off = 2 * 9
    assert layer.offset_mask.weight.grad[:n_off].abs().sum() > 0  # offset rows of the predictor learn
    assert layer.offset_mask.weight.grad[n_off:].abs().sum() > 0  # mask rows too


def test_gradient_wrt_offset_matches_finite_difference():
    x = _rand(1, 2, 5, 6)
    w = _rand(2, 2, 3, 3, seed=1)
    off = (0.8 * _rand(1, 18, 5, 6, seed=3) - 0.4).requires_grad_(True)  # fractional, away from integer kinks
    mask = _rand(1, 9, 5, 6, seed=4)
    assert torch.autograd.gradcheck(lambda o: deform_conv2d(x, o, mask, w), (off,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_bad_shapes_are_rejected():
    x = torch.rand(1, 4, 8, 8)
    w = torch.rand(4, 4, 3, 3)
    with pytest.raises(ValueError):
        deform_conv2d(x, torch.zeros(1, 17, 8, 8), None, w)
    with pytest.raises(ValueError):
        deform_conv2d(x, torch.zeros(1, 18, 4, 4), None, w)


def test_taps_far_outside_the_image_read_zeros():
    x = _rand(1, 3, 7, 9)
    w = _rand(2, 3, 3, 3, seed=1)
    b = _rand(2, seed=2)
    mask = torch.ones(1, 9, 7, 9, dtype=torch.float64)
    for dy, dx in ((50.0, 0.0), (0.0, -50.0), (-9.0, 0.0), (0.0, 12.0)):
        off = torch.zeros(1, 18, 7, 9, dtype=torch.float64)
        off[:, 0::2], off[:, 1::2] = dy, dx
        out = deform_conv2d(x + 1, off, mask, w, b)
        torch.testing.assert_close(out, b.view(1, 2, 1, 1).expand_as(out), rtol=0, atol=1e-12)
