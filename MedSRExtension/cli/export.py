"""``medsr export``: a network with its weights as an ONNX file (+ metadata with sha256s, + model card)."""
from __future__ import annotations

from MedSRExtension.core.errors import MedSRError


def register(sub) -> None:
    p = sub.add_parser("export", help="export a network with its shipped weights to ONNX",
                       description="Write MODEL at --scale as an ONNX graph (input: a (N,1,H,W) float32 image "
                                   "normalised to about [0,1]), checked against torch with ONNX Runtime on a "
                                   "real slice, with OUT.json (weights' sha256, shapes) and the model card OUT.md.")
    p.add_argument("model", help="network name (edsr, lgsr, iconet, pfmdn)")
    p.add_argument("--scale", required=True, type=float, help="integer factor (arbitrary-scale networks are "
                                                               "exported at this one factor)")
    p.add_argument("--format", default="onnx", choices=("onnx",))
    p.add_argument("--dynamic", action="store_true", help="symbolic height and width (not for lgsr)")
    p.add_argument("--size", default="256,256", help="H,W of the example input; the graph's fixed input size "
                                                     "without --dynamic (default 256,256)")
    p.add_argument("--preset", default=None, help="preset of the shipped weights (default: the best shipped)")
    p.add_argument("--weights", default="auto", help="'auto' (shipped, sha256-verified) or a .safetensors file")
    p.add_argument("--out", default=None, help="output .onnx file (default MODEL-PRESET-xS.onnx)")
    p.set_defaults(func=run)


def run(args) -> int:
    from MedSRExtension.zoo.export import export_onnx
    try:
        size = [int(v) for v in args.size.split(",")]
    except ValueError:
        raise MedSRError(f"--size takes H,W like 256,256, got '{args.size}'") from None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2:
        raise MedSRError(f"--size takes H,W like 256,256, got '{args.size}'")
    res = export_onnx(args.model, args.scale, out=args.out, preset=args.preset, dynamic=args.dynamic,
                      size=size, weights=args.weights)
    print(f"wrote {res.onnx} (max |onnx - torch| {res.max_abs_diff:.2g} on a real slice), {res.metadata}"
          + (f", {res.card}" if res.card else ""))
    return 0
