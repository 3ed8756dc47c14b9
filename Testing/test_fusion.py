"""Conv+activation fusion (inference.fusion): the fused copy computes what the network computes, in
float32 and under bf16 autocast, leaves the original network untouched, and the engine's results with
slice workers and fusion match its plain path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from MedSRExtension.inference import fusion
from MedSRExtension.zoo.weights import load_network

pytestmark = pytest.mark.skipif(not fusion.available(), reason="this torch build has no oneDNN")


@pytest.mark.parametrize("model", ["edsr", "iconet", "pfmdn"])
def test_fused_network_matches_the_plain_one(model):
    net = load_network(model, 2)
    keys = list(net.state_dict())
    fast = fusion.fused(net)
    assert any(isinstance(m, fusion.FusedConvAct) for m in fast.modules())
    assert list(net.state_dict()) == keys  # the caller's network is not modified
    assert not any(isinstance(m, fusion.FusedConvAct) for m in net.modules())
    from MedSRExtension.models.descriptor import ModelDescriptor
    net, fast = ModelDescriptor.of(model, net), ModelDescriptor.of(model, fast)
    x = torch.rand(1, 1, 48, 40)
    with torch.inference_mode():
        ref, out = net(x, (2.0, 2.0)), fast(x, (2.0, 2.0))
        assert float((out - ref).abs().max()) < 1e-4
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref16, out16 = net(x, (2.0, 2.0)).float(), fast(x, (2.0, 2.0)).float()
    assert float((out16 - ref16).abs().max()) < 2e-2  # both bf16: rounding differs, not the math


def test_every_fusable_activation_matches():
    for act in (nn.GELU(), nn.GELU(approximate="tanh"), nn.ReLU(), nn.LeakyReLU(0.05), nn.SiLU(), nn.Sigmoid()):
        seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act).eval()
        fast = fusion.fused(seq)
        assert isinstance(fast[0], fusion.FusedConvAct) and isinstance(fast[1], nn.Identity)
        x = torch.randn(2, 3, 17, 19)
        with torch.inference_mode():
            assert float((fast(x) - seq(x)).abs().max()) < 1e-5, act
            cl = x.contiguous(memory_format=torch.channels_last)
            assert float((fast(cl) - seq(cl)).abs().max()) < 1e-5, act


def test_gradients_fall_back_to_the_plain_modules():
    seq = fusion.fused(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()))
    x = torch.randn(1, 1, 8, 8)
    seq(x).sum().backward()
    assert seq[0].conv.weight.grad is not None


def test_engine_fast_path_matches_plain_path():
    from MedSRExtension import Volume, super_resolve
    from MedSRExtension.inference import fastpath
    rng = np.random.default_rng(0)
    vol = Volume(rng.random((5, 40, 36)).astype(np.float32), spacing=(1, 1, 2))
    plain = super_resolve(vol, "edsr", 2, fast=False)
    import MedSRExtension.inference.engine as engine
    original = fastpath.choose
    try:  # force fusion and two slice workers, whatever this machine measured
        engine.fastpath.choose = lambda name, *a, **k: fastpath.FastPath(fuse=True, slice_workers=2)
        fast = super_resolve(vol, "edsr", 2)
    finally:
        engine.fastpath.choose = original
    assert fast.array.shape == plain.array.shape
    np.testing.assert_allclose(fast.array, plain.array, atol=1e-4 * float(np.ptp(vol.array)) + 1e-5)
    assert np.allclose(fast.origin, plain.origin) and np.allclose(fast.spacing, plain.spacing)
