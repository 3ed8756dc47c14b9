"""LGSR-specific behaviour: the embedded-Gaussian formulas, bounded attention memory, deformable
offsets that really move the taps, and global stages that really are global (hence not tile-safe)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from MedSRExtension.models import build, get_spec
from MedSRExtension.models.lgsr import NonLocalBlock, PatchViT


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _reference_non_local(block: NonLocalBlock, x: torch.Tensor, keys_from: torch.Tensor) -> torch.Tensor:
    """z = x + W·softmax(θ(x)ᵀφ(k)/√d)·g(k), written out with an explicit attention matrix."""
    n, _, h, w = x.shape
    q = block.theta(x).flatten(2)  # (N, d, HW)
    k = block.phi(keys_from).flatten(2)  # (N, d, P)
    v = block.g(keys_from).flatten(2)
    attn = torch.softmax(q.transpose(1, 2) @ k / q.shape[1] ** 0.5, dim=-1)  # (N, HW, P)
    y = (attn @ v.transpose(1, 2)).transpose(1, 2).reshape(n, -1, h, w)
    return x + block.out(y)


def test_non_local_is_the_embedded_gaussian_over_all_pixels_when_small():
    torch.manual_seed(0)
    block = NonLocalBlock(8, kv=16).eval()
    x = _rand(2, 8, 12, 14)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference_non_local(block, x, x), rtol=1e-5, atol=1e-5)


def test_non_local_keys_are_pooled_to_a_fixed_grid_on_large_slices():
    torch.manual_seed(0)
    block = NonLocalBlock(4, kv=16).eval()
    x = _rand(1, 4, 300, 260)
    seen = []
    block.phi.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        out = block(x)
        ref = _reference_non_local(block, x, F.adaptive_avg_pool2d(x, (16, 16)))
    assert seen[0][-2:] == (16, 16)  # 256 keys for 78,000 queries: memory linear in the slice size
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_vit_tokens_attend_to_a_bounded_pooled_grid_and_any_size_works():
    torch.manual_seed(0)
    vit = PatchViT(8, dim=16, patch=4, depth=1, heads=2, kv=6, mlp_ratio=2.0).eval()
    seen = []
    vit.layers[0].attn.kv_proj.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = _rand(1, 8, 101, 77)  # not a multiple of the patch size
    with torch.no_grad():
        y = vit(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert seen[0][-2:] == (6, 6)  # 26×20 tokens attend to 6×6 pooled tokens


def test_deformable_offsets_change_the_output():
    torch.manual_seed(0)
    model = build("lgsr", "light", 2).eval()
    x = _rand(1, 1, 24, 24, seed=1)
    with torch.no_grad():
        before = model(x)
        dcn = model.body[0].local[0].dcn
        offsets, masks = dcn.offsets_and_masks(torch.zeros(1, dcn.weight.shape[1], 4, 4))
        assert offsets.abs().max() == 0 and torch.allclose(masks, torch.full_like(masks, 0.5))  # DCNv2 init
        dcn.offset_mask.bias[: 2 * 9] = 0.7  # move every tap by a fractional offset
        after = model(x)
    assert (after - before).abs().max() > 1e-4


def test_global_stages_see_the_whole_slice_so_lgsr_is_not_tile_safe():
    torch.manual_seed(0)
    model = build("lgsr", "light", 2).eval()
    x = _rand(1, 1, 64, 64, seed=2)
    x2 = x.clone()
    x2[..., :4, :4] += 0.5  # change one corner
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs()
    assert diff[..., -8:, -8:].max() > 0  # the opposite corner, 60 LR pixels away, responds
    assert get_spec("lgsr").tile_safe is False
