"""``medsr bench`` (and ``make bench``): speed and memory of the engine against a naive loop; see
``MedSRExtension.evaluation.benchmark``."""
from __future__ import annotations


def register(sub) -> None:
    """The `medsr bench` subcommand."""
    ap = sub.add_parser("bench", help="speed and memory of the engine vs a naive loop (prints figures)")
    ap.add_argument("--slices", type=int, default=150)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--networks", default="edsr,lgsr,iconet,pfmdn")
    ap.add_argument("--weights", default="auto", help="auto (shipped) or random (same cost, no weights needed)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.set_defaults(func=run)


def run(args) -> int:
    from MedSRExtension.evaluation.benchmark import main
    return main(slices=args.slices, size=args.size, device=args.device, networks=args.networks,
                as_json=args.json, weights=args.weights)
