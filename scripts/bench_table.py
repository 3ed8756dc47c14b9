"""The README's benchmark table, in markdown, from one ``medsr bench --json`` run.

    medsr bench --memory-slices 50,300 --json > bench.json
    python scripts/bench_table.py bench.json
"""
from __future__ import annotations

import json
import sys

ROWS = (("naive", "naive loop"), ("engine-fp32", "engine fp32"), ("engine", "engine"))


def cells(res: dict) -> str:
    if "error" in res:
        return f"error: {res['error']} | | |"
    return f"{res['seconds']:.1f} | {res['slices_per_s']:.2f} | {res['peak_mb']:.0f} | {res['above_io_mb']:.0f}"


def table(report: dict) -> str:
    """Markdown rows: SimpleITK, then per network its naive loop, plain engine and engine as it runs."""
    lines = ["| configuration | seconds | slices/s | peak MB | above input + output MB | engine vs naive "
             "| fast path (PSNR cost) | above in+out MB at " + "/".join(_counts(report)) + " slices |",
             "|---|---:|---:|---:|---:|---:|---|---|",
             f"| SimpleITK B-spline | {cells(report['sitk_bspline'])} | | | |"]
    for model, rec in report["models"].items():
        for kind, label in ROWS:
            extra = " | | | |"
            if kind == "engine":
                ratio = f"{rec['engine_vs_naive']:.2f}×" if "engine_vs_naive" in rec else ""
                growth = rec.get("above_io_mb_by_slices", {})
                mem = " / ".join(f"{growth[n]:.0f}" if growth.get(n) is not None else "–" for n in _counts(report))
                extra = f" | {ratio} | {rec['fast_path']} ({rec['psnr_delta_db']:+.3f} dB) | {mem} |"
            lines.append(f"| {model} light: {label} | {cells(rec[kind])}{extra}")
    return "\n".join(lines)


def _counts(report: dict) -> list[str]:
    counts = {n for rec in report["models"].values() for n in rec.get("above_io_mb_by_slices", {})}
    return sorted(counts, key=int)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        report = json.load(f)
    print(f"({report['slices']} slices of {report['size']}², {report['device']}, {report['threads']} threads)")
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
