"""Measure the CPU fast paths of every shipped network and write Resources/Models/cpu_fastpaths.json.

Per network (light preset, shipped x2 weights, one 256x256 MNI slice, 2 torch threads): the time of
fp32 eager NCHW (the reference), channels_last, bf16 autocast + channels_last, and fp32 with denormals
flushed to zero, as the fastest of interleaved rounds; the same for fp32 and for bf16 with two slices
in flight at once, one torch thread each (``fastpath.slice_pool``), against one slice at a time on both
threads; and the PSNR change of each precision against fp32 over the held-out validation regions
(mean and worst region). ``MedSRExtension.inference.fastpath`` turns
these into the engine's choice. Keys this script does not measure (e.g. onnxruntime_speedup) are kept.

    python scripts/measure_fastpaths.py [--rounds 5] [--models edsr,iconet,pfmdn,lgsr]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

from MedSRExtension.core import atomic  # noqa: E402
from MedSRExtension.core.intensity import denormalize, normalize  # noqa: E402
from MedSRExtension.evaluation.bench_child import stack  # noqa: E402
from MedSRExtension.evaluation.heldout import psnr_ssim_in_window, validation_set  # noqa: E402
from MedSRExtension.inference import fastpath  # noqa: E402
from MedSRExtension.inference import fusion  # noqa: E402
from MedSRExtension.models.descriptor import ModelDescriptor  # noqa: E402
from MedSRExtension.zoo.weights import load_model, models_dir  # noqa: E402

#: configuration -> (the unfused configuration its speed-up is against, or None for fp32 itself)
CONFIGS = {"fp32": None, "channels_last": "fp32", "bf16": "fp32", "flush_denormals": "fp32",
           "fusion": "fp32", "bf16_fusion": "bf16"}


@contextlib.contextmanager
def configured(models: dict, name: str):
    """The model for configuration ``name`` (fused or not, in its memory layout) and the layout of
    its input, with autocast or denormal flushing set inside the block."""
    layout = torch.channels_last if name in ("channels_last", "bf16", "bf16_fusion") else torch.contiguous_format
    model = models["fused" if name.endswith("fusion") else "plain"]
    model.module.to(memory_format=layout)
    with contextlib.ExitStack() as stack_:
        if name.startswith("bf16"):
            stack_.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        if name == "flush_denormals":
            stack_.enter_context(fastpath.denormals_flushed(True))
        yield model, layout


def run(models: dict, x: np.ndarray, name: str) -> np.ndarray:
    with torch.inference_mode(), configured(models, name) as (model, layout):
        t = torch.from_numpy(np.ascontiguousarray(x))[None, None].contiguous(memory_format=layout)
        return model(t, (2.0, 2.0)).float()[0, 0].numpy()


def per_slice(models: dict, xs: list[np.ndarray], config: str, workers: int) -> float:
    """Seconds per slice over ``xs`` in ``config``, one slice at a time or ``workers`` in flight."""
    run(models, xs[0], config)  # layout set and kernels made before the threads share the model
    start = time.perf_counter()
    if workers == 1:
        for x in xs:
            run(models, x, config)
    else:
        with fastpath.slice_pool(workers) as pool:
            list(pool.map(lambda x: run(models, x, config), xs))
    return (time.perf_counter() - start) / len(xs)


def measure(name: str, rounds: int) -> dict:
    plain = load_model(name, scale=(2.0, 2.0), device="cpu")
    models = {"plain": plain, "fused": ModelDescriptor.of(name, fusion.fused(plain.module))}
    xs = [normalize(a)[0] for a in stack(4, 256).array]
    for config in CONFIGS:  # warm up every kernel once
        run(models, xs[0], config)
    best = {c: float("inf") for c in CONFIGS}
    for _ in range(rounds):
        for config in CONFIGS:
            start = time.perf_counter()
            run(models, xs[0], config)
            best[config] = min(best[config], time.perf_counter() - start)
    psnr = {c: [] for c in CONFIGS}
    for item in validation_set((2.0, 2.0), crop=192):
        lr, window = normalize(item.lr)
        for config in CONFIGS:
            psnr[config].append(psnr_ssim_in_window(denormalize(run(models, lr, config), window), item.hr)[0])
    ref = np.array(psnr["fp32"])
    record = {"preset": "light", "fp32_seconds": round(best["fp32"], 4)}
    for config, against in CONFIGS.items():
        if against is None:
            continue
        record[f"{config}_speedup"] = round(best[against] / best[config], 3)
        if config != "channels_last":
            delta = np.array(psnr[config]) - ref
            record[f"{config}_psnr_delta_db"] = round(float(delta.mean()), 4)
            record[f"{config}_psnr_delta_worst_db"] = round(float(delta.min()), 4)
    # slice workers, measured in the configuration the engine picks from the figures above
    chosen = fastpath.decide(record, workers=False)
    config = fastpath.config_name(chosen)
    seconds = {1: float("inf"), fastpath.SLICE_WORKERS: float("inf")}
    for _ in range(max(2, rounds // 2)):
        for workers in seconds:
            seconds[workers] = min(seconds[workers], per_slice(models, xs, config, workers))
    record["slice_workers_config"] = config
    record["slice_workers_speedup"] = round(seconds[1] / seconds[fastpath.SLICE_WORKERS], 3)
    return record


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="edsr,iconet,pfmdn,lgsr")
    args = ap.parse_args()
    torch.set_num_threads(2)
    path = os.path.join(models_dir(), fastpath.FILE)
    data = json.load(open(path, encoding="utf-8")) if os.path.isfile(path) else {"models": {}}
    data["about"] = ("Measured by scripts/measure_fastpaths.py per 256x256 MNI slice at x2 with 2 torch threads on "
                     "the shipped light weights (fastest of interleaved rounds): speed-ups over fp32 eager NCHW; "
                     "bf16 = torch.autocast(cpu, bfloat16) + channels_last; flush_denormals = fp32 with subnormals "
                     "flushed to zero; *slice_workers_speedup = 2 slices in flight with 1 thread each vs 1 slice on 2 "
                     "threads (over 4 slices), in fp32 and in bf16; *_psnr_delta_db = mean PSNR change against fp32 "
                     "over the held-out "
                     "validation regions (192-pixel structured crops), *_worst_db = the worst region. "
                     "onnxruntime_speedup: measured separately (ONNX Runtime CPU vs torch fp32).")
    data["measured_on"] = {"cpu": cpu_name(), "native_bf16": fastpath.native_bf16(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "slice": [256, 256], "scale": 2}
    data["bf16_psnr_limit_db"] = fastpath.BF16_PSNR_LIMIT_DB
    for name in args.models.split(","):
        with fastpath.large_blocks_reused():  # measured as the engine runs
            record = measure(name, args.rounds)
        data["models"][name] = {**data["models"].get(name, {}), **record}
        print(name, json.dumps(record))
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")
    for name in args.models.split(","):
        print(f"{name}: engine fast path {fastpath.choose(name, path=path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
