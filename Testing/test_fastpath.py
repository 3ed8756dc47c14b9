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
    }}))
    amx, avx2 = fastpath.cpu_flags(AMX), fastpath.cpu_flags(AVX2)
    assert fastpath.choose("cheap", amx, str(path)) == fastpath.FastPath(channels_last=True, bf16=True)
    assert fastpath.choose("cheap", avx2, str(path)) == fastpath.FastPath(channels_last=True, bf16=False)
    assert fastpath.choose("lossy", amx, str(path)) == fastpath.FastPath(channels_last=False, bf16=False)
    assert fastpath.choose("unmeasured", amx, str(path)) == fastpath.FastPath()
