"""PFMDN-specific behaviour: arbitrary and per-axis scales, the output grid, translation equivariance
(what tiling relies on), the Meta upsampler's fast and chunked paths, entropy attention, gradient branch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.inference import tiling
from MedSRExtension.models import build, get_spec
from MedSRExtension.models.losses import gradient_map
from MedSRExtension.models.pfmdn import PFMDN, EntropyContrastAttention, MetaUpsampler, receptive_field, resize_bicubic


def _image(h: int, w: int, seed: int = 0, n: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (0.5 + 0.3 * torch.sin(7 * xx + 3 * yy) + 0.2 * torch.rand(n, 1, h, w, generator=g)).clamp(0, 1)


def _small(seed: int = 0) -> PFMDN:
    """Every PFMDN component at a small receptive field, so equivariance is visible on 40×40 inputs."""
    torch.manual_seed(seed)
    return PFMDN(channels=32, blocks=1, grad_channels=8, window=5, meta_hidden=16).eval()


@pytest.fixture(scope="module")
def light() -> PFMDN:
    torch.manual_seed(0)
    return build("pfmdn", preset="light", scale=2).eval()


def test_registry_declares_arbitrary_per_axis_scales():
    spec = get_spec("pfmdn")
    assert spec.scales is None and spec.per_axis and spec.tile_safe
    assert spec.receptive_field >= receptive_field(6, 11)


@pytest.mark.parametrize("scale", [1.5, 2.5, 3.7, (1, 4), (4, 1), (1.3, 2.2), 1.0])
def test_any_real_and_per_axis_scale_gives_rounded_size(light, scale):
    x = _image(9, 11)
    sh, sw = (scale, scale) if isinstance(scale, float) else scale
    with torch.no_grad():
        y = light(x, scale=scale)
        built = build("pfmdn", preset="light", scale=scale).eval()(x)
    expected = (1, 1, int(round(9 * sh)), int(round(11 * sw)))
    assert y.shape == expected and built.shape == expected
    assert torch.isfinite(y).all()


def test_bad_scale_and_input_are_refused(light):
    with pytest.raises(MedSRError, match=">= 1"):
        light(_image(8, 8), scale=0.5)
    with pytest.raises(MedSRError, match="scale"):
        build("pfmdn", scale=(0.8, 2))
    with pytest.raises(MedSRError, match=r"\(N, 1, H, W\)"):
        light(torch.rand(1, 3, 8, 8))


def test_training_mode_returns_sr_and_gradient_map(light):
    light.train()
    try:
        out = light(_image(10, 12, n=2), scale=(1.5, 3.0))
    finally:
        light.eval()
    assert set(out) == {"sr", "grad"}
    assert out["sr"].shape == out["grad"].shape == (2, 1, 15, 36)
    with torch.no_grad():
        assert torch.allclose(light(_image(10, 12, n=2), scale=(1.5, 3.0)), out["sr"].detach(), atol=1e-6)


@pytest.mark.parametrize("scale,offset", [((2.5, 2.5), (2, 2)), ((1.5, 3.7), (4, 10)), ((2.0, 2.0), (3, 5)),
                                          ((1.0, 4.0), (7, 1))])
def test_crop_at_whole_output_offset_reproduces_global_pixels(scale, offset):
    """A crop starting at LR offset a (a·s integer) gives exactly the global output pixels a·s + p
    once its own border is farther than the receptive field (the crop runs to the image end)."""
    model = _small()
    rf = model.receptive_field
    x = _image(40, 40, seed=2)
    (sh, sw), (ah, aw) = scale, offset
    with torch.no_grad():
        full = model(x, scale=scale)
        crop = model(x[..., ah:, aw:], scale=scale)
    oy, ox = int(round(ah * sh)), int(round(aw * sw))
    assert abs(oy - ah * sh) < 1e-9 and abs(ox - aw * sw) < 1e-9
    assert crop.shape[-2:] == (full.shape[-2] - oy, full.shape[-1] - ox)
    ph = ((torch.arange(crop.shape[-2]) + 0.5) / sh - 0.5 >= rf).nonzero()[0, 0]
    pw = ((torch.arange(crop.shape[-1]) + 0.5) / sw - 0.5 >= rf).nonzero()[0, 0]
    torch.testing.assert_close(crop[..., ph:, pw:], full[..., oy + ph:, ox + pw:], rtol=0, atol=2e-6)
    # and the crop border really differs (otherwise the comparison above would prove nothing)
    assert (crop[..., :2, :2] - full[..., oy:oy + 2, ox:ox + 2]).abs().max() > 1e-4


def test_tiled_inference_at_non_integer_scale_equals_untiled():
    model = _small(1)
    x = _image(64, 60, seed=4)
    calls = []

    def call(t):
        calls.append(t.shape[-2:])
        return model(t, scale=2.5)

    with torch.no_grad():
        full = model(x, scale=2.5)
        tiled = tiling.run_tiled(model, x, scale=(2.5, 2.5), tile=56, overlap=model.receptive_field, call=call)
    assert len(calls) > 1
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [(2, 2), (3, 3), (1, 4), (4, 1), (2, 3)])
def test_integer_fast_path_equals_general_meta_upsampler(scale):
    torch.manual_seed(0)
    up = MetaUpsampler(8, 1, hidden=16)
    feat = torch.randn(2, 8, 7, 9)
    fast = up(feat, scale)
    general = up(feat, scale, force_general=True)
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-5)


def test_meta_upsampler_chunking_does_not_change_the_result():
    torch.manual_seed(0)
    up = MetaUpsampler(8, 1, hidden=16)
    feat = torch.randn(1, 8, 13, 11)
    whole = up(feat, (2.3, 1.7), force_general=True)
    up.chunk_bytes = 1  # one output row per chunk: the bounded-memory path
    torch.testing.assert_close(up(feat, (2.3, 1.7), force_general=True), whole, rtol=0, atol=1e-6)


def test_meta_upsampler_predicts_filters_once_per_distinct_offset(monkeypatch):
    up = MetaUpsampler(4, 1, hidden=8)
    seen = []
    original = up.filters

    def counting(dh, dw, scale, like):
        seen.append(len(dh) * len(dw))
        return original(dh, dw, scale, like)

    monkeypatch.setattr(up, "filters", counting)
    up(torch.randn(1, 4, 50, 60), (2.5, 2.5), force_general=True)
    assert seen == [5 * 5]  # s = 5/2: 5 distinct offsets per axis, all 125×150 pixels share 25 filters
    seen.clear()
    up(torch.randn(1, 4, 50, 60), (2.0, 2.0))
    assert seen == [4]


def test_bicubic_residual_matches_torch_for_integer_scales_and_identity_at_one():
    x = torch.rand(2, 1, 13, 17)
    for s in (2, 3, 4):
        ref = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
        torch.testing.assert_close(resize_bicubic(x, (s, s)), ref, rtol=0, atol=2e-6)
    torch.testing.assert_close(resize_bicubic(x, (1.0, 1.0)), x, rtol=0, atol=1e-7)
    assert resize_bicubic(x, (1.5, 2.5)).shape == (2, 1, 20, 42)


def test_entropy_attention_statistics():
    att = EntropyContrastAttention(4, window=5)
    flat = torch.zeros(1, 4, 12, 12)
    spike = flat.clone()
    spike[..., 6, 6] = 15.0
    h_flat, h_spike = att.entropy(flat), att.entropy(spike)
    assert h_flat.shape == (1, 4, 12, 12)
    torch.testing.assert_close(h_flat, torch.ones_like(h_flat), rtol=0, atol=1e-5)  # uniform softmax
    assert h_spike[..., 6, 6].max() < 0.2  # activation concentrated on one pixel
    assert (h_spike >= -1e-6).all() and (h_spike <= 1 + 1e-6).all()
    x = torch.randn(2, 4, 12, 12)
    y = att(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # the gate is a per-pixel, per-channel factor in (0, 1)
    ratio = y / x
    assert (ratio > 0).all() and (ratio < 1).all()
    glob = EntropyContrastAttention(4, window=None)
    assert glob.entropy(x).shape == (2, 4, 1, 1) and glob(x).shape == x.shape


def test_entropy_attention_is_local_with_a_window():
    att = EntropyContrastAttention(4, window=5)
    x = torch.randn(1, 4, 20, 20)
    x2 = x.clone()
    x2[..., 2, 2] += 3.0
    diff = (att(x2) - att(x)).abs().amax(dim=1)[0]
    assert diff[:5, :5].max() > 0 and diff[5:, :].max() == 0 and diff[:, 5:].max() == 0


def test_gradient_branch_output_tracks_the_gradient_map_of_the_sr_image():
    model = _small().train()
    out = model(_image(12, 12, n=1), scale=2)
    assert out["grad"].shape == out["sr"].shape
    # on a flat input the LR gradient map is zero and the residual base has no edges either
    flat = model(torch.full((1, 1, 12, 12), 0.4), scale=2)
    assert torch.equal(gradient_map(torch.full((1, 1, 24, 24), 0.4)), torch.zeros(1, 1, 24, 24))
    assert torch.isfinite(flat["grad"]).all()


@pytest.mark.parametrize("scale", [(2.0, 2.0), (2.5, 1.0), (1.0, 3.0)])
def test_bf16_autocast_keeps_the_float32_stream_and_stays_close(light, scale):
    """The engine's bf16 fast path: the head starts a float32 stream the bf16 branches add onto, at
    integer, fractional (offset classes) and one-axis factors alike; the image stays within a few
    grey levels of float32."""
    x = torch.rand(1, 1, 12, 16)
    with torch.no_grad():
        ref = light(x, scale)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = light(x, scale)
    assert low.shape == ref.shape and torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() <= 0.05
