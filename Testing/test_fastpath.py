"""CPU fast-path choice: native bf16 detected from the CPU flags; the shipped measurements cover every
network; bf16 only where its measured PSNR cost is within 0.05 dB and the CPU has native bf16."""
from __future__ import annotations

import json

from MedSRExtension.inference import fastpath
from MedSRExtension.models.registry import get_spec, names

AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def test_native_bf16_is_read_from_cpu_flags():
    assert fastpath.native_bf16(fastpath.cpu_flags(AMX))
    assert not fastpath.native_bf16(fastpath.cpu_flags(AVX2))
    assert fastpath.cpu_flags("no flags here") == frozenset()


def test_shipped_measurements_cover_every_network():
    m = fastpath.measurements()
    networks = [n for n in names() if get_spec(n).kind == "network"]
    assert sorted(m) == sorted(networks)
    for rec in m.values():
        assert rec["channels_last_speedup"] > 0 and rec["bf16_speedup"] > 0
        assert isinstance(rec["bf16_psnr_delta_db"], float)


def test_bf16_only_within_the_quality_limit_and_on_native_hardware(tmp_path):
    path = tmp_path / "cpu_fastpaths.json"
    path.write_text(json.dumps({"models": {
        "cheap": {"channels_last_speedup": 1.4, "bf16_speedup": 2.0, "bf16_psnr_delta_db": -0.01},
        "lossy": {"channels_last_speedup": 0.97, "bf16_speedup": 2.0, "bf16_psnr_delta_db": -0.2},
    }}), encoding="utf-8")
    amx, avx2 = fastpath.cpu_flags(AMX), fastpath.cpu_flags(AVX2)
    assert fastpath.choose("cheap", amx, str(path)) == fastpath.FastPath(channels_last=True, bf16=True)
    assert fastpath.choose("cheap", avx2, str(path)) == fastpath.FastPath(channels_last=True, bf16=False)
    assert fastpath.choose("lossy", amx, str(path)) == fastpath.FastPath(channels_last=False, bf16=False)
    assert fastpath.choose("unmeasured", amx, str(path)) == fastpath.FastPath()


def test_fusion_and_slice_workers_follow_their_measurements(tmp_path):
    path = tmp_path / "cpu_fastpaths.json"
    path.write_text(json.dumps({"models": {
        # bf16 allowed; fused bf16 measured faster; workers measured in exactly that configuration
        "fused": {"channels_last_speedup": 0.9, "bf16_speedup": 1.5, "bf16_psnr_delta_db": -0.01,
                  "bf16_fusion_speedup": 1.2, "bf16_fusion_psnr_delta_db": -0.01,
                  "slice_workers_config": "bf16_fusion", "slice_workers_speedup": 1.2},
        # workers measured in another configuration than the one chosen: not used
        "stale": {"channels_last_speedup": 1.3, "bf16_speedup": 1.5, "bf16_psnr_delta_db": -0.3,
                  "slice_workers_config": "bf16", "slice_workers_speedup": 1.5},
        # fp32: the fastest measured configuration wins (fusion over channels_last here)
        "fp32": {"channels_last_speedup": 1.1, "bf16_speedup": 1.5, "bf16_psnr_delta_db": -0.3,
                 "fusion_speedup": 1.3, "fusion_psnr_delta_db": 0.0,
                 "slice_workers_config": "fusion", "slice_workers_speedup": 1.01},
    }}), encoding="utf-8")
    amx = fastpath.cpu_flags(AMX)
    assert fastpath.choose("fused", amx, str(path)) == fastpath.FastPath(
        channels_last=True, bf16=True, fuse=True, slice_workers=2)
    assert fastpath.choose("stale", amx, str(path)) == fastpath.FastPath(channels_last=True)
    assert fastpath.choose("fp32", amx, str(path)) == fastpath.FastPath(fuse=True)
    assert fastpath.config_name(fastpath.FastPath(channels_last=True, bf16=True, fuse=True)) == "bf16_fusion"


def test_slice_pool_splits_the_threads_and_restores_them():
    import torch
    before = torch.get_num_threads()
    seen = []
    with fastpath.slice_pool(2) as pool:
        seen = list(pool.map(lambda _: torch.get_num_threads(), range(4)))
    assert seen == [max(1, before // 2)] * 4
    assert torch.get_num_threads() == before


def test_large_blocks_reused_keeps_results():
    import numpy as np
    import torch
    x = torch.rand(1, 16, 300, 300)
    ref = torch.nn.functional.gelu(x)
    with fastpath.large_blocks_reused():
        out = [torch.nn.functional.gelu(x) for _ in range(3)]
    assert all(np.array_equal(o.numpy(), ref.numpy()) for o in out)
