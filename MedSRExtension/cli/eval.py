"""``medsr eval``: PSNR/SSIM of networks and classical baselines on the corpus validation regions."""
from __future__ import annotations

import os
import sys

from MedSRExtension.core import validation
from MedSRExtension.core.degradations import FAMILIES, IN_PLANE_KINDS
from MedSRExtension.core.scanner_degradation import NAME as SCANNER
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.inference.devices import resolve_device
from MedSRExtension.models.registry import get_spec

DEGRADATIONS = IN_PLANE_KINDS + (SCANNER,)


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score networks against nearest/bicubic/bspline on the validation regions",
                              description="Score networks (shipped weights) and baselines on the held-out "
                                          "validation regions of the corpus; writes eval.csv, eval.md, eval.png.")
    p.add_argument("--models", default="edsr,lgsr,iconet,pfmdn", help="comma-separated network names")
    p.add_argument("--scales", default="2,4", help="comma-separated integer scales")
    p.add_argument("--degradation", default="bicubic",
                   help=f"how the LR images are made, one or several of {','.join(DEGRADATIONS)} (scanner: "
                        "k-space truncation, PSFs, noise, shading; core/scanner_degradation.py); several "
                        "write one report each under --out/DEGRADATION")
    p.add_argument("--families", default="bicubic",
                   help="weights families to score, e.g. bicubic,scanner (shown as edsr and edsr:scanner)")
    p.add_argument("--out", default="out/eval", help="output folder")
    p.add_argument("--crop", type=int, default=192,
                   help="score the most structured CROPxCROP window of each region (0: whole regions)")
    p.add_argument("--images", default=None, help="comma-separated validation image names (default all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def _names(text: str, allowed: tuple, option: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in allowed]
    if not names or bad:
        raise MedSRError(f"{option} takes one or several of {','.join(allowed)}, got '{text}'")
    return names


def run(args) -> int:
    from MedSRExtension.evaluation.heldout import evaluate, missing_families, summary_rows, write_eval_report
    try:
        scales = [int(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        raise MedSRError(f"--scales takes integers like 2,4, got '{args.scales}'; e.g. --scales 2,4") from None
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    images = [i.strip() for i in args.images.split(",")] if args.images else None
    # every option is checked before the corpus is read
    if not scales or any(s < 2 for s in scales):
        raise MedSRError(f"--scales takes integers of at least 2 like 2,4, got '{args.scales}'; e.g. --scales 2,4")
    if not models:
        raise MedSRError("--models is empty; give e.g. --models edsr,pfmdn")
    for name in models:
        get_spec(name)
    degradations = _names(args.degradation, DEGRADATIONS, "--degradation")
    families = _names(args.families, FAMILIES, "--families")
    if args.crop < 0:
        raise MedSRError(f"--crop must be 0 (whole regions) or a positive size, got {args.crop}; e.g. --crop 192")
    validation.check_output_folder(args.out, [], ())
    resolve_device(args.device)
    for missing in missing_families(models, scales, families):
        print(f"no shipped weights for {missing}: left out", file=sys.stderr)
    report = None if args.quiet else (lambda m, s, i: print(f"  x{s} {m:<8} {i}", file=sys.stderr, flush=True))
    for deg in degradations:
        result = evaluate(models, scales, deg, crop=args.crop or None, images=images, device=args.device,
                          progress=report, families=families)
        paths = write_eval_report(result, os.path.join(args.out, deg) if len(degradations) > 1 else args.out,
                                  args.crop or None)
        for m in summary_rows(result.rows):
            print(f"{deg:<8} x{m['scale']} {m['method']:<14} PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  "
                  f"({m['gain_vs_bicubic']:+.2f} dB vs bicubic)")
        print("wrote " + ", ".join(paths.values()))
    return 0
