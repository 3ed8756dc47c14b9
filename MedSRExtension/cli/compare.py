"""``medsr compare``: degrade a reference (or take an LR), super-resolve with several methods, and
report PSNR/SSIM and how each result changes a segmentation (Dice, HD95) against the reference's."""
from __future__ import annotations

import math
import sys

from MedSRExtension.core import validation
from MedSRExtension.core.degradations import KINDS
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import MODES
from MedSRExtension.inference.devices import resolve_device
from MedSRExtension.core.volume_io import load_volume
from MedSRExtension.evaluation.compare import DEFAULT_DEGRADATION
from MedSRExtension.evaluation.segmentation import METHOD_HELP


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare SR methods by image metrics and downstream segmentation",
        description="Degrade a reference image (or take a given low-resolution one), super-resolve it with "
                    "every method, and write DIR/metrics.csv, DIR/metrics.md, DIR/slices.png and DIR/dice.png: "
                    "PSNR/SSIM against the reference, and Dice/HD95 of each result's segmentation against the "
                    "reference's (thresholds fitted once on the reference).")
    p.add_argument("--hr", required=True, help="reference (high-resolution) image: file or DICOM folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--lr", default=None, help="a real low-resolution image of the same subject (no degradation)")
    g.add_argument("--degradation", default=DEFAULT_DEGRADATION, choices=KINDS,
                   help=f"how to make the LR from the reference (default {DEFAULT_DEGRADATION})")
    p.add_argument("--scale", type=float, default=None,
                   help="degradation and SR factor (default 2; with --lr: from the spacings)")
    p.add_argument("--slice-thickness", type=float, default=None, metavar="MM",
                   help="thickslice: the simulated slices' thickness in mm (default: their spacing; "
                        "less is a gap, more an overlap)")
    p.add_argument("--mode", default=None, choices=MODES,
                   help="default: throughplane for thickslice, inplane otherwise (with --lr: from the spacings)")
    p.add_argument("--axis", default="auto", choices=("auto", "i", "j", "k"),
                   help="slice axis (auto: the largest spacing; k when isotropic)")
    p.add_argument("--models", required=True,
                   help="comma-separated methods, e.g. nearest,bicubic,bspline,pfmdn; pfmdn+adapt (or "
                        "pfmdn+adaptMINUTES) fine-tunes pfmdn on the LR volume first (throughplane)")
    p.add_argument("--seg", default="otsu3", help=f"segmentation: {METHOD_HELP}, or none (default otsu3)")
    p.add_argument("--mask", default=None, choices=("foreground",),
                   help="PSNR/SSIM over the foreground only (reference > its 2-class Otsu threshold)")
    p.add_argument("--crop", default=None, metavar="I0,J0,K0,NI,NJ,NK",
                   help="compare on a sub-volume of the reference: start voxel and size (i, j, k)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--save-volumes", action="store_true", help="also write the LR, every result and segmentation")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=run)


def _parse_crop(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise MedSRError(f"--crop takes six integers I0,J0,K0,NI,NJ,NK (start voxel and size), got '{text}'; "
                         "e.g. --crop 0,0,0,64,64,16")
    return tuple(values[:3]), tuple(values[3:])


def run(args) -> int:
    from MedSRExtension.evaluation.compare import REPORT_FILES, check_models, crop, run_comparison

    from MedSRExtension.evaluation.segmentation import parse_method

    # every option is checked before any image is read; no report may replace an input
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 1):
        raise MedSRError(f"--scale must be a number > 1, got {args.scale:g}; e.g. --scale 2")
    scale = args.scale if (args.scale is not None or args.lr) else 2.0
    models = check_models([m for m in args.models.split(",") if m.strip()], scale=scale, mode=args.mode)
    seg = None if (args.seg or "").lower() in ("", "none") else args.seg
    kind, arg = parse_method(seg) if seg else (None, None)
    inputs = [args.hr] + ([args.lr] if args.lr else []) + ([arg] if kind == "labels" else [])
    products = REPORT_FILES + tuple(f"volumes/{n}.nii.gz" for n in ("lr", "reference_seg", *models,
                                                                   *(f"{m}_seg" for m in models)))
    out = validation.check_output_folder(args.out, inputs, products)
    resolve_device(args.device)
    start, size = _parse_crop(args.crop) if args.crop else (None, None)
    hr = load_volume(args.hr)
    lr = load_volume(args.lr) if args.lr else None
    if args.crop:
        hr = crop(hr, start, size)

    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=len(models), unit="method", file=sys.stderr, leave=False,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total} methods [{elapsed}]")

    def progress(done: float, total: int, method: str) -> None:
        bar.total = total  # the methods left once duplicates are dropped
        bar.set_description_str(method, refresh=False)
        bar.n = done
        bar.refresh()

    try:
        rows = run_comparison(hr, lr=lr, models=models, out_dir=out, progress=progress if bar is not None else None,
                              degradation=args.degradation, thickness_mm=args.slice_thickness, scale=args.scale,
                              mode=args.mode, axis=args.axis,
                              seg=seg, mask=args.mask, device=args.device, save_volumes=args.save_volumes)
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        print((out / "metrics.md").read_text(encoding="utf-8"), end="")
        print(f"wrote {out / 'metrics.csv'}, {out / 'metrics.md'}, {out / 'slices.png'}"
              + (f", {out / 'dice.png'}" if seg else "") + f" ({len(rows)} methods)")
    return 0
