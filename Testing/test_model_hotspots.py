"""The fast paths of the two CPU hot spots give the reference results on the shipped weights and real slices:
LGSR's deformable sampling (CPU: weighted embedding bags + one GEMM; CUDA and export: channels-last
grid_sample + one GEMM) against the plain algorithm
(grid_sample on NCHW + 1x1 convolution over the sampled taps), and PFMDN's per-offset-class Meta-SR head
(filters cached per scale and slice size) against the per-pixel filter path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from MedSRExtension.core.intensity import normalize
from MedSRExtension.data.corpus import validation_regions
from MedSRExtension.models import deform, pfmdn
from MedSRExtension.zoo.weights import load_network


def reference_deform_conv2d(x, offset, mask, weight, bias=None, dilation=1, groups=1, max_elements=0):
    """DCNv2 written the plain way: absolute pixel positions, normalised, one grid_sample, mask, 1x1 conv."""
    n, c, h, w = x.shape
    cout, cin_g, k, _ = weight.shape
    kk = k * k
    g = offset.shape[1] // (2 * kk)
    r = (torch.arange(k, dtype=x.dtype) - k // 2) * dilation
    dy0, dx0 = [t.reshape(-1) for t in torch.meshgrid(r, r, indexing="ij")]
    off = offset.reshape(n, g, kk, 2, h, w)
    py = torch.arange(h, dtype=x.dtype).view(1, 1, 1, h, 1) + dy0.view(1, 1, kk, 1, 1) + off[:, :, :, 0]
    px = torch.arange(w, dtype=x.dtype).view(1, 1, 1, 1, w) + dx0.view(1, 1, kk, 1, 1) + off[:, :, :, 1]
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1).reshape(n * g, kk * h, w, 2)
    s = F.grid_sample(x.reshape(n * g, c // g, h, w), grid, mode="bilinear", padding_mode="zeros",
                      align_corners=False).view(n, g, c // g, kk, h, w)
    if mask is not None:
        s = s * mask.reshape(n, g, 1, kk, h, w)
    return F.conv2d(s.reshape(n, c * kk, h, w), weight.reshape(cout, cin_g * kk, 1, 1), bias, groups=groups)


def _slice(h: int, w: int) -> torch.Tensor:
    mni = next(r.array for r in validation_regions() if r.name == "mni_k86")
    return torch.from_numpy(np.ascontiguousarray(normalize(mni[40:40 + h, 30:30 + w])[0], dtype=np.float32))[None, None]


@pytest.mark.parametrize("gather", [True, False], ids=["embedding-bag", "grid-sample"])
@pytest.mark.parametrize("groups,offset_groups,dilation", [(1, 1, 1), (2, 2, 1), (1, 3, 2)])
def test_deform_matches_reference_with_random_offsets(monkeypatch, groups, offset_groups, dilation, gather):
    # the CPU's embedding-bag path, and the grid_sample path CUDA and the ONNX export take
    monkeypatch.setattr(deform, "_gather_path", lambda x: gather)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 6, 13, 11, generator=g, dtype=torch.float64)
    w = torch.rand(4, 6 // groups, 3, 3, generator=g, dtype=torch.float64) - 0.5
    off = (torch.rand(2, 2 * offset_groups * 9, 13, 11, generator=g, dtype=torch.float64) - 0.5) * 6
    mask = torch.rand(2, offset_groups * 9, 13, 11, generator=g, dtype=torch.float64)
    b = torch.rand(4, generator=g, dtype=torch.float64)
    ref = reference_deform_conv2d(x, off, mask, w, b, dilation, groups)
    for budget in (1 << 25, 1):  # whole image and one row per chunk
        out = deform.deform_conv2d(x, off, mask, w, b, dilation, groups, max_elements=budget)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_lgsr_shipped_weights_give_the_reference_result(monkeypatch):
    net = load_network("lgsr", 2)
    x = _slice(72, 88)
    with torch.no_grad():
        fast = net(x)
        monkeypatch.setattr(deform, "deform_conv2d", reference_deform_conv2d)
        ref = net(x)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2.5, (1.0, 3.7), (1.5, 2.0)])
def test_pfmdn_offset_class_head_equals_per_pixel_filters_on_shipped_weights(monkeypatch, scale):
    net = load_network("pfmdn", 2)
    x = _slice(60, 52)
    with torch.no_grad():
        fast = net(x, scale=scale)
        again = net(x, scale=scale)  # from the filter cache
        monkeypatch.setattr(pfmdn, "_CLASS_CONV_LIMIT", 0)  # every factor through the per-pixel path
        ref = net(x, scale=scale)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    assert torch.equal(fast, again)


def test_cached_meta_filters_follow_new_weights():
    torch.manual_seed(0)
    up = pfmdn.MetaUpsampler(8, 1, hidden=16).eval()
    feat = torch.randn(1, 8, 9, 10)
    with torch.no_grad():
        before = up(feat, (2.5, 2.5))
        up.mlp[2].bias.add_(1.0)  # in-place change, as an optimiser step or load_state_dict makes
        after = up(feat, (2.5, 2.5))
        ref = up(feat, (2.5, 2.5), force_general=True)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref, rtol=0, atol=1e-5)
