"""``medsr bench`` (and ``make bench``): speed and memory of the engine against a naive loop; see
``MedSRExtension.evaluation.benchmark``."""
from __future__ import annotations


def register(sub) -> None:
    """The `medsr bench` subcommand."""
    ap = sub.add_parser("bench", help="speed and memory of the engine vs a naive loop (prints figures)")
    ap.add_argument("--slices", type=int, default=150, help="slices in the benchmark volume (default 150)")
    ap.add_argument("--size", type=int, default=256, help="slice size in pixels, square (default 256)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ap.add_argument("--networks", default="edsr,lgsr,iconet,pfmdn", help="comma-separated networks to run")
    ap.add_argument("--memory-slices", default="",
                    help="also run the engine at these slice counts (e.g. 50,300) and print its memory beyond "
                         "input and output at each: whether it grows with the volume")
    ap.add_argument("--weights", default="auto", help="auto (shipped) or random (same cost, no weights needed)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.set_defaults(func=run)


def run(args) -> int:
    from MedSRExtension.evaluation.benchmark import main
    from MedSRExtension.core.validation import parse_counts
    counts = parse_counts(args.memory_slices, "--memory-slices") if args.memory_slices else None
    return main(slices=args.slices, size=args.size, device=args.device, networks=args.networks,
                as_json=args.json, weights=args.weights, memory_slices=counts)
