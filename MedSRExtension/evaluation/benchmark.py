"""`medsr bench` (and `make bench`): per model, the engine against the loop a user writes by hand around
the same shipped network, against the engine's plain fp32 path, and against SimpleITK's B-spline, with
peak memory and the quality cost of the fast path the engine chose.

Each configuration runs in its own subprocess so its peak resident memory (ru_maxrss, minus the
process's footprint after imports) is its own. Prints figures and ratios (or JSON); asserts nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Optional

KINDS = ("naive", "engine-fp32", "engine")


def run(cfg: dict) -> dict:
    """One configuration in its own process (``evaluation.bench_child``): its figures, or its error."""
    r = subprocess.run([sys.executable, "-m", "MedSRExtension.evaluation.bench_child", json.dumps(cfg)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def fast_path_summary(model: str) -> dict:
    """What the engine runs for ``model`` on this CPU, and its measured PSNR cost on the validation regions."""
    from MedSRExtension.inference import fastpath
    chosen = fastpath.choose(model)
    m = fastpath.measurements().get(model, {})
    key = "bf16_fusion" if chosen.bf16 and chosen.fuse else "bf16" if chosen.bf16 else None
    cost = m.get(f"{key}_psnr_delta_db", 0.0) if key else 0.0
    names = [n for n, on in (("channels_last", chosen.channels_last), ("bf16", chosen.bf16),
                             ("flush_denormals", chosen.flush_denormals), ("fusion", chosen.fuse),
                             (f"{chosen.slice_workers} slice workers", chosen.slice_workers > 1)) if on]
    return {"fast_path": "+".join(names) or "fp32", "psnr_delta_db": cost}


def memory_growth(common: dict, model: str, counts: list[int]) -> dict:
    """The engine's working memory beyond input and output (MB) at each slice count: the claim that it
    does not grow with the volume, measured."""
    return {str(n): run({**common, "slices": n, "model": model, "kind": "engine"}).get("above_io_mb")
            for n in counts}


def main(slices: int = 150, size: int = 256, device: str = "cpu", networks: str = "edsr,lgsr,iconet,pfmdn",
         as_json: bool = False, weights: str = "auto", memory_slices: Optional[list[int]] = None) -> int:
    """Run every configuration and print a table with the engine/naive ratios (or one JSON document)."""
    import torch
    common = {"slices": slices, "size": size, "device": device, "weights": weights}
    results: dict = {"slices": slices, "size": size, "device": device, "threads": torch.get_num_threads(),
                     "models": {}}
    if not as_json:
        print(f"MedSR benchmark: {slices} slices of {size}x{size} -> x2 in-plane, device {device}, "
              f"{torch.get_num_threads()} torch threads, shipped weights")
        print(f"{'configuration':34} {'seconds':>8} {'slices/s':>9} {'peak MB':>8} {'above in+out MB':>16}")
    bspline = run({**common, "model": "bspline", "kind": "sitk-bspline"})
    results["sitk_bspline"] = bspline
    _print_row("SimpleITK B-spline", bspline, as_json)
    for model in [m for m in networks.split(",") if m]:
        rows = {kind: run({**common, "model": model, "kind": kind}) for kind in KINDS}
        summary = fast_path_summary(model)
        record = {**rows, **summary}
        naive, engine = rows["naive"], rows["engine"]
        if "seconds" in naive and "seconds" in engine:
            record["engine_vs_naive"] = naive["seconds"] / engine["seconds"]
            record["engine_vs_sitk_bspline"] = bspline.get("seconds", float("nan")) / engine["seconds"]
        if memory_slices:
            record["above_io_mb_by_slices"] = {**memory_growth(common, model, memory_slices),
                                               str(slices): engine.get("above_io_mb")}
        results["models"][model] = record
        if not as_json:
            for kind in KINDS:
                _print_row(f"{model}: {kind}", rows[kind], as_json)
            if "engine_vs_naive" in record:
                print(f"{model}: engine is {record['engine_vs_naive']:.2f}x the naive loop "
                      f"(fast path {summary['fast_path']}, PSNR cost {summary['psnr_delta_db']:+.3f} dB on the "
                      f"validation regions); peak memory {engine['peak_mb']:.0f} MB vs {naive['peak_mb']:.0f} MB")
            if "above_io_mb_by_slices" in record:
                growth = ", ".join(f"{n} slices {mb:.0f} MB" if mb is not None else f"{n} slices: error"
                                   for n, mb in sorted(record["above_io_mb_by_slices"].items(),
                                                       key=lambda kv: int(kv[0])))
                print(f"{model}: engine memory beyond input and output: {growth}")
    if as_json:
        print(json.dumps(results, indent=2))
    return 0


def _print_row(label: str, res: Optional[dict], as_json: bool) -> None:
    if as_json or res is None:
        return
    if "error" in res:
        print(f"{label:34} error: {res['error']}")
    else:
        print(f"{label:34} {res['seconds']:8.2f} {res['slices_per_s']:9.2f} {res['peak_mb']:8.0f} "
              f"{res['above_io_mb']:16.0f}")
