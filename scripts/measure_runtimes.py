"""Measure ONNX Runtime and OpenVINO against torch for every shipped network; record it in cpu_fastpaths.json.

Per network (light preset, shipped x2 weights, exported with ``medsr export`` at a fixed slice size, 2
threads everywhere): the fastest of interleaved rounds on one 256x256 MNI slice for torch fp32 eager
(the naive loop's network), the engine's CPU fast path (``fastpath.choose``), ONNX Runtime's CPU
provider, and OpenVINO's CPU plugin with the f32 and the bf16 inference precision; and the PSNR change
of OpenVINO bf16 against torch fp32 over the held-out validation regions (192-pixel crops, one export
per LR size). OpenVINO is not a MedSR dependency: install it beside this script to measure it
(``pip install openvino``); without it its figures are skipped. Writes ``onnxruntime_speedup``,
``openvino_speedup``, ``openvino_bf16_speedup`` (each against torch fp32), ``engine_vs_onnxruntime`` /
``engine_vs_openvino_bf16`` (engine fast path seconds over theirs: above 1 means they are faster) and
``openvino_bf16_psnr_delta_db`` per model. These figures decide nothing in the engine; the README quotes them.

    python scripts/measure_runtimes.py [--rounds 5] [--models edsr,iconet,pfmdn,lgsr]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

from MedSRExtension.core import atomic  # noqa: E402
from MedSRExtension.core.intensity import denormalize, normalize  # noqa: E402
from MedSRExtension.evaluation.bench_child import stack  # noqa: E402
from MedSRExtension.evaluation.heldout import psnr_ssim_in_window, validation_set  # noqa: E402
from MedSRExtension.inference import fastpath, fusion  # noqa: E402
from MedSRExtension.zoo.export import export_onnx, exportable  # noqa: E402
from MedSRExtension.zoo.weights import models_dir  # noqa: E402

THREADS = 2


def openvino():
    """The openvino module, or None where it is not installed."""
    try:
        import openvino as ov
        return ov
    except ImportError:
        return None


class Runtimes:
    """One network's runners: torch fp32, the engine's fast path, and the exported graph per slice size."""

    def __init__(self, name: str, folder: str):
        self.name, self.folder = name, folder
        self.net, _ = exportable(name, 2)
        self.net.eval()
        path = fastpath.choose(name)
        fast = self.net
        if path.fuse:
            fast = fusion.fused(fast)
        self.fast = fast.to(memory_format=torch.channels_last) if path.channels_last else fast
        self.path = path
        self.graphs: dict[tuple[int, int], str] = {}
        self.sessions: dict[tuple, object] = {}

    def torch_fp32(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.net(torch.from_numpy(x)[None, None])[0, 0].numpy()

    def engine(self, x: np.ndarray) -> np.ndarray:
        layout = torch.channels_last if self.path.channels_last else torch.contiguous_format
        with torch.inference_mode(), (torch.autocast("cpu", dtype=torch.bfloat16) if self.path.bf16
                                      else contextlib.nullcontext()):
            t = torch.from_numpy(x)[None, None].contiguous(memory_format=layout)
            return self.fast(t).float()[0, 0].numpy()

    def graph(self, shape: tuple[int, int]) -> str:
        if shape not in self.graphs:
            out = os.path.join(self.folder, f"{self.name}-{shape[0]}x{shape[1]}.onnx")
            export_onnx(self.name, 2, out=out, size=shape)
            self.graphs[shape] = out
        return self.graphs[shape]

    def session(self, kind: str, shape: tuple[int, int]):
        key = (kind, shape)
        if key not in self.sessions:
            path = self.graph(shape)
            if kind == "onnxruntime":
                import onnxruntime as ort
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
                sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                self.sessions[key] = lambda a: sess.run(None, {"x": a})[0]
            else:
                ov = openvino()
                compiled = ov.Core().compile_model(path, "CPU", {
                    "INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_PRECISION_HINT": "bf16" if kind == "openvino_bf16" else "f32"})
                request = compiled.create_infer_request()
                self.sessions[key] = lambda a: request.infer({0: a})[0]
        return self.sessions[key]

    def runner(self, kind: str):
        if kind == "torch_fp32":
            return self.torch_fp32
        if kind == "engine":
            return self.engine

        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(self.session(kind, x.shape)(x[None, None]))[0, 0]
        return run


def measure(name: str, rounds: int, folder: str) -> dict:
    r = Runtimes(name, folder)
    kinds = ["torch_fp32", "engine", "onnxruntime"] + (["openvino", "openvino_bf16"] if openvino() else [])
    x = np.ascontiguousarray(normalize(stack(1, 256).array)[0][0], dtype=np.float32)
    for kind in kinds:  # export, compile and warm up
        r.runner(kind)(x)
        r.runner(kind)(x)
    best = {k: float("inf") for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            start = time.perf_counter()
            r.runner(kind)(x)
            best[kind] = min(best[kind], time.perf_counter() - start)
    record = {"runtimes_seconds": {k: round(v, 4) for k, v in best.items()},
              "onnxruntime_speedup": round(best["torch_fp32"] / best["onnxruntime"], 3),
              "engine_vs_onnxruntime": round(best["engine"] / best["onnxruntime"], 3)}
    if openvino():
        record["openvino_speedup"] = round(best["torch_fp32"] / best["openvino"], 3)
        record["openvino_bf16_speedup"] = round(best["torch_fp32"] / best["openvino_bf16"], 3)
        record["engine_vs_openvino_bf16"] = round(best["engine"] / best["openvino_bf16"], 3)
        deltas = []
        for item in validation_set((2.0, 2.0), crop=192):
            lr, window = normalize(item.lr)
            lr = np.ascontiguousarray(lr, dtype=np.float32)
            ref = psnr_ssim_in_window(denormalize(r.torch_fp32(lr), window), item.hr)[0]
            got = psnr_ssim_in_window(denormalize(r.runner("openvino_bf16")(lr), window), item.hr)[0]
            deltas.append(got - ref)
        record["openvino_bf16_psnr_delta_db"] = round(float(np.mean(deltas)), 4)
        record["openvino_bf16_psnr_delta_worst_db"] = round(float(np.min(deltas)), 4)
    return record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="edsr,iconet,pfmdn,lgsr")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    path = os.path.join(models_dir(), fastpath.FILE)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if openvino():
        data.setdefault("measured_on", {})["openvino"] = openvino().__version__
    with tempfile.TemporaryDirectory(prefix="medsr-runtimes-") as folder, fastpath.large_blocks_reused():
        for name in args.models.split(","):
            record = measure(name, args.rounds, folder)
            data["models"].setdefault(name, {}).update(record)
            print(name, json.dumps(record))
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
