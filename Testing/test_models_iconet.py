"""ICONet-specific behaviour: multi-stage outputs for supervision, the two-way SR-Rec fusion, the
reconstruction prior under the SR image, and cost linear in the number of pixels."""
from __future__ import annotations

import pytest
import torch

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models import build, get_spec
import torch.nn.functional as F

from MedSRExtension.models.iconet import ChannelAttention, ICONet, RSCFL, SRRecFusion
from MedSRExtension.models.complexity import count_gmacs


def _image(h: int, w: int, n: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (0.5 + 0.3 * torch.cos(5 * xx - 4 * yy) + 0.2 * torch.rand(n, 1, h, w, generator=g)).clamp(0, 1)


def _net(scale: int, seed: int = 0) -> ICONet:
    torch.manual_seed(seed)
    return build("iconet", preset="light", scale=scale)


def test_registry_entry():
    spec = get_spec("iconet")
    assert spec.scales == (2, 4) and not spec.per_axis
    assert not spec.tile_safe  # the channel attention is global: tiling is only approximate
    with pytest.raises(MedSRError, match="2, 4"):
        build("iconet", scale=3)


def test_x2_training_output_has_one_stage():
    out = _net(2).train()(_image(10, 14, n=2))
    assert set(out) == {"sr", "stages_sr", "stages_rec"}
    assert [t.shape for t in out["stages_sr"]] == [(2, 1, 20, 28)]
    assert [t.shape for t in out["stages_rec"]] == [(2, 1, 10, 14)]
    assert out["sr"] is out["stages_sr"][-1]


def test_x4_training_output_has_two_stages_with_intermediate_x2():
    out = _net(4).train()(_image(9, 12))
    assert [t.shape for t in out["stages_sr"]] == [(1, 1, 18, 24), (1, 1, 36, 48)]
    assert [t.shape for t in out["stages_rec"]] == [(1, 1, 9, 12), (1, 1, 18, 24)]
    assert out["sr"] is out["stages_sr"][-1]


@pytest.mark.parametrize("scale", [2, 4])
def test_eval_returns_the_final_sr_tensor(scale):
    model = _net(scale)
    x = _image(8, 10)
    with torch.no_grad():
        train_sr = model.train()(x)["sr"]
        eval_sr = model.eval()(x)
    assert isinstance(eval_sr, torch.Tensor)
    torch.testing.assert_close(eval_sr, train_sr, rtol=0, atol=1e-6)


def test_fusion_goes_both_ways():
    """The SR output depends on reconstruction-branch weights, and the reconstruction on SR-branch weights."""
    model = _net(2).train()
    stage = model.stages[0]
    out = model(_image(8, 8))
    rec_params = list(stage.rec_groups[0].parameters())
    sr_params = list(stage.sr_groups[0].parameters())
    g_sr_from_rec = torch.autograd.grad(out["sr"].sum(), rec_params, retain_graph=True, allow_unused=True)
    g_rec_from_sr = torch.autograd.grad(out["stages_rec"][0].sum(), sr_params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in g_sr_from_rec)
    assert any(g is not None and g.abs().sum() > 0 for g in g_rec_from_sr)


def test_fusion_gates_are_adaptive():
    torch.manual_seed(0)
    fusion = SRRecFusion(8)
    f_sr, f_rec = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    a_sr, _ = fusion.gates(torch.cat([f_sr, f_rec], 1)).chunk(2, 1)
    new_sr, new_rec = fusion(f_sr, f_rec)
    torch.testing.assert_close(new_sr, f_sr + a_sr * fusion.rec_to_sr(f_rec))
    assert a_sr.std() > 0  # gates vary per pixel and channel, with the content of both branches
    assert not torch.equal(new_rec, f_rec)


def test_sr_image_is_built_on_the_reconstruction_prior():
    """With the SR residual silenced the stage output is exactly the bicubic ×2 of its reconstruction."""
    model = _net(2).eval()
    stage = model.stages[0]
    with torch.no_grad():
        stage.sr_tail.weight.zero_()
        stage.sr_tail.bias.zero_()
        x = _image(10, 10)
        sr, rec, _ = stage(x)
    expected = torch.nn.functional.interpolate(rec, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(sr, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(rec, x)  # the reconstruction branch does change the image


def test_channel_attention_is_per_head_attention_between_channels():
    """The fused implementation equals the textbook formula softmax(τ·q̂k̂ᵀ)v per head, q̂, k̂ normalised over pixels."""
    torch.manual_seed(0)
    ca = ChannelAttention(8, heads=2)
    with torch.no_grad():
        ca.temperature.copy_(torch.tensor([1.5, 0.7]).view(2, 1, 1))
    x = torch.randn(2, 8, 5, 7)
    q, k, v = ca.qkv(x).reshape(2, 3, 2, 4, 35).unbind(1)
    attn = torch.softmax(F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * ca.temperature, -1)
    torch.testing.assert_close(ca(x), (attn @ v).reshape(2, 8, 5, 7), rtol=0, atol=1e-5)
    # global: a change anywhere in the image changes the attention everywhere
    x2 = x.clone()
    x2[..., 0, 0] += 5.0
    assert (ca(x2) - ca(x))[..., 4, 6].abs().max() > 0


def test_cost_is_linear_in_pixels():
    """No quadratic attention: 4× the pixels costs 4× the MACs (quadratic spatial attention would be ~16×)."""
    torch.manual_seed(0)
    block = RSCFL(16, heads=2)
    small, large = count_gmacs(_Wrap(block), 32, 32), count_gmacs(_Wrap(block), 64, 64)
    assert large == pytest.approx(4 * small, rel=0.01)
    model = _net(2)
    assert count_gmacs(model, 64, 64) == pytest.approx(4 * count_gmacs(model, 32, 32), rel=0.01)


class _Wrap(torch.nn.Module):
    """A 1-channel image -> 16-channel features front so count_gmacs can drive a bare RSCFL module."""

    def __init__(self, block: RSCFL):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x.expand(-1, 16, -1, -1))
