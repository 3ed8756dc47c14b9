"""The prepared GPU run works end to end before a GPU is ever lent: `scripts/gpu_run.py --tiny` runs
every step on the CPU (training from the shipped weights, verification against them, throughput, and
the GPU-only steps saying they were skipped) and writes its summary where it was told."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_run_tiny_on_the_cpu(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_run.py"), "--tiny", "--models", "edsr,pfmdn",
                           "--out", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    for model in ("edsr", "pfmdn"):
        run = summary["train"][model]
        assert run["shipped_psnr"] > 20 and run["trained_psnr"] > 20 and run["iterations"] == 2
        assert (tmp_path / f"{model}-x2.safetensors").is_file() == run["kept"]
        assert summary["throughput"][model]["slices_per_s"] > 0
    assert "skipped" in summary["oom_fallback"] and "skipped" in summary["cpu_gpu_agreement"]
