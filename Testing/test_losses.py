"""Training losses: zero on a perfect prediction, positive otherwise, gradients flow, the contextual
loss's memory cap, the multi-stage and combined losses, and ``loss_for`` for every registered network."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models import build, get_spec, names
from MedSRExtension.models.losses import (ICONetLoss, PFMDNLoss, _sample_vectors, contextual_loss, gradient_loss,
                                          gradient_map, l1_loss, loss_for, resize_target)


def _img(h: int = 24, w: int = 24, n: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(seed))


def _cx_patches(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # on 1-channel images the feature vectors are 5×5 patches (a single value has no direction)
    return contextual_loss(a, b, patch=5)


@pytest.mark.parametrize("fn", [l1_loss, gradient_loss, _cx_patches])
def test_zero_for_identical_positive_otherwise_and_differentiable(fn):
    a, b = _img(seed=0), _img(seed=1)
    assert float(fn(a, a.clone())) == pytest.approx(0.0, abs=1e-4)
    p = a.clone().requires_grad_(True)
    loss = fn(p, b)
    assert float(loss.detach()) > 1e-3
    loss.backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_gradient_map_is_zero_on_flat_images_and_measures_slopes():
    assert torch.equal(gradient_map(torch.full((1, 1, 9, 9), 0.3)), torch.zeros(1, 1, 9, 9))
    ramp = torch.arange(10.0).repeat(10, 1)[None, None] * 0.1  # slope 0.1 per pixel along x
    g = gradient_map(ramp)
    torch.testing.assert_close(g[..., 1:-1, 1:-1], torch.full((1, 1, 8, 8), 0.1), rtol=0, atol=1e-4)


def test_contextual_loss_tolerates_misalignment_but_not_different_content():
    img = F.avg_pool2d(_img(40, 40, seed=3), 3, 1, 1)  # some spatial structure
    shifted = torch.roll(img, shifts=(1, 1), dims=(-2, -1))
    other = F.avg_pool2d(_img(40, 40, seed=4), 3, 1, 1).flip(-1) ** 3
    g = torch.Generator().manual_seed(0)
    near = contextual_loss(img, shifted, patch=3, max_samples=512, generator=g)
    far = contextual_loss(img, other, patch=3, max_samples=512, generator=torch.Generator().manual_seed(0))
    assert float(near) < 0.5 * float(far)


def test_contextual_loss_samples_at_most_k_vectors():
    x = torch.rand(2, 3, 200, 300)
    xs, ys = _sample_vectors(x, x, max_samples=128, patch=1, generator=None)
    assert xs.shape == ys.shape == (2, 3, 128)
    xs, _ = _sample_vectors(x, x, max_samples=64, patch=5, generator=None)
    assert xs.shape == (2, 3 * 25, 64)
    small = torch.rand(1, 2, 5, 6)
    assert _sample_vectors(small, small, max_samples=1000, patch=1, generator=None)[0].shape == (1, 2, 30)
    # 60 000 positions: without the cap the similarity matrix alone would need 14 GB; with it, 1 MB
    big = torch.rand(1, 4, 200, 300, requires_grad=True)
    loss = contextual_loss(big, torch.rand(1, 4, 200, 300), max_samples=512)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


def test_patch_vectors_are_the_image_neighbourhoods():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    vec, _ = _sample_vectors(x, x, max_samples=36, patch=3, generator=None)
    # position (2, 3) is flat index 15: its 3×3 neighbourhood rows 1..3, columns 2..4
    torch.testing.assert_close(vec[0, :, 15], x[0, 0, 1:4, 2:5].reshape(-1))


def _iconet_outputs(hr: torch.Tensor, stages: int):
    """Perfect multi-stage outputs for an HR target: each stage's SR / reconstruction equals its target."""
    h, w = hr.shape[-2:]
    sizes = [(h >> (stages - t), w >> (stages - t)) for t in range(stages + 1)]  # LR, ..., HR
    return {"sr": hr, "stages_sr": [resize_target(hr, s) for s in sizes[1:]],
            "stages_rec": [resize_target(hr, s) for s in sizes[:-1]]}


@pytest.mark.parametrize("stages", [1, 2])
def test_iconet_loss_supervises_every_stage_and_reconstruction(stages):
    hr = _img(32, 32, seed=5)
    lr = resize_target(hr, (32 >> stages, 32 >> stages))
    perfect = _iconet_outputs(hr, stages)
    total, parts = ICONetLoss()(perfect, hr, lr)
    assert float(total) == pytest.approx(0.0, abs=1e-7)
    expected_keys = {f"sr{t}" for t in range(1, stages + 1)} | {f"rec{t}" for t in range(1, stages + 1)} | {"total"}
    assert set(parts) == expected_keys
    # a wrong first-stage reconstruction is penalised by itself (the clean LR is its target)
    wrong = dict(perfect, stages_rec=[perfect["stages_rec"][0] + 0.1] + perfect["stages_rec"][1:])
    total, parts = ICONetLoss()(wrong, hr, lr)
    assert parts["rec1"] == pytest.approx(0.1, abs=1e-6) and float(total) == pytest.approx(0.1, abs=1e-6)
    # an eval-mode tensor output falls back to L1 on the final image
    assert float(ICONetLoss()(hr + 0.2, hr, lr)[0]) == pytest.approx(0.2, abs=1e-6)


def test_pfmdn_loss_combines_l1_contextual_and_gradient_branch():
    hr = _img(32, 32, seed=6)
    perfect = {"sr": hr.clone(), "grad": gradient_map(hr)}
    total, parts = PFMDNLoss()(perfect, hr, None)
    assert set(parts) == {"l1", "contextual", "gradient", "total"}
    assert float(total) == pytest.approx(0.0, abs=1e-4)
    off = {"sr": hr.clone(), "grad": gradient_map(hr) + 0.05}
    total, parts = PFMDNLoss(grad_weight=0.5)(off, hr, None)
    assert parts["gradient"] == pytest.approx(0.05, abs=1e-6)
    assert float(total) == pytest.approx(0.025, abs=1e-4)
    assert PFMDNLoss()(_img(32, 32, seed=7), hr, None)[1]["contextual"] > 0.01


NETWORKS = [n for n in names() if get_spec(n).kind == "network"]


@pytest.mark.parametrize("name", NETWORKS)
def test_loss_for_every_registered_network_trains(name):
    scale = 4 if name == "iconet" else 2  # the multi-stage case for ICONet
    torch.manual_seed(0)
    model = build(name, preset="light", scale=scale).train()
    lr = _img(12, 12, n=2, seed=8)
    hr = _img(12 * scale, 12 * scale, n=2, seed=9)
    total, parts = loss_for(name)(model(lr), hr, lr)
    assert total.dim() == 0 and torch.isfinite(total) and float(total.detach()) > 0
    assert parts and all(isinstance(v, float) for v in parts.values())
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_loss_for_refuses_classical_and_unknown_models():
    with pytest.raises(MedSRError, match="nothing to train"):
        loss_for("bicubic")
    with pytest.raises(MedSRError, match="unknown model"):
        loss_for("no-such-model")


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(MedSRError, match="differ in shape"):
        l1_loss(_img(8, 8), _img(8, 9))
