"""``medsr models``: the model registry with scales, presets, parameters and shipped weights."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list models, their scales, presets and weights")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    p.add_argument("--detail", action="store_true",
                   help="parameters and GMACs per preset for a 256x256 input at x2 and x4 (counted)")
    p.set_defaults(func=run)


def run(args) -> int:
    from MedSRExtension.zoo.catalog import list_models

    from MedSRExtension.zoo.weights import where_looked

    records = list_models()
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(where_looked())
        print(f"{'model':10} {'kind':9} {'scales':10} {'presets (params)':34} weights")
        for r in records:
            scales = "any" if r["scales"] == "any" else ",".join(map(str, r["scales"]))
            presets = ", ".join(f"{p} ({v['params'] / 1e3:.0f}k)" for p, v in r["presets"].items())
            weights = ", ".join(f"{w['preset']} x{'/'.join(f'{float(s):g}' for s in w['scales'] or [])}"
                                + ("" if (w["degradation"] or "bicubic") == "bicubic" else f" ({w['degradation']})")
                                for w in r["weights"])
            if r["kind"] == "classical":
                weights = "-"
            print(f"{r['name']:10} {r['kind']:9} {scales:10} {presets:34} {weights or 'none (untrained)'}")
        print("\nthrough-plane (--mode throughplane, factor f): which weight file serves which f")
        for r in records:
            if r["kind"] == "network":
                print(f"  {r['name']:8} {r['throughplane']}")
    if args.detail:
        from ..models.complexity import complexity_table

        networks = [r["name"] for r in records if r["kind"] == "network"]
        print()
        print(f"{'model':10} {'preset':7} {'params x2':>10} {'GMAC x2':>8} {'params x4':>10} {'GMAC x4':>8}"
              "   (256x256 input, counted with torch's FLOP counter)")
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        for row in complexity_table(networks):
            print(f"{row['model']:10} {row['preset']:7} "
                  + " ".join(f"{fmt(row[f'params_x{s}'], ','):>10} {fmt(row[f'gmacs_x{s}'], '.1f'):>8}" for s in (2, 4)))
    return 0
