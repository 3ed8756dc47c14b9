"""``medsr run INPUT OUTPUT``: super-resolve one file or DICOM folder."""
from __future__ import annotations

import time

from MedSRExtension.core import validation
from MedSRExtension.core.geometry import MODES
from MedSRExtension.core.volume_io import WRITABLE, load_volume, save_volume
from MedSRExtension.inference.devices import resolve_device
from MedSRExtension.inference.options import InferenceOptions
from MedSRExtension.models.registry import get_spec
from MedSRExtension.zoo.catalog import default_model

from .common import parse_component, parse_floats, progress_bar


def register(sub) -> None:
    p = sub.add_parser("run", help="super-resolve a volume or 2D image",
                       description="Super-resolve INPUT (NIfTI, NRRD, MHA/MHD, DICOM folder or 2D image) "
                                   "and write OUTPUT by its extension.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", help="model name (see `medsr models`); default: the best shipped network "
                                   "for the scale, else bicubic")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", default=None, help="factor F, or per-axis FI,FJ,FK (default 2)")
    g.add_argument("--spacing", default=None, help="target spacing in mm: MM or MI,MJ,MK")
    p.add_argument("--mode", default="inplane", choices=MODES)
    p.add_argument("--axis", default="auto", choices=("auto", "i", "j", "k"),
                   help="slice axis (auto: the largest spacing; k when isotropic)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, default=None, help="tile size in input pixels (bounds memory)")
    p.add_argument("--batch", type=int, default=None, help="slices per batch")
    p.add_argument("--preset", default=None, help="network preset (default: the shipped one)")
    p.add_argument("--weights", default="auto", help="'auto' (shipped, verified) or a .safetensors file")
    p.add_argument("--component", default=None, help="channel of a colour/vector image: index or 'luminance'")
    p.add_argument("--dtype", default="float32", choices=("float32", "input"),
                   help="output voxel type: float32, or the input's type (clipped and rounded)")
    p.add_argument("--force", action="store_true", help="allow outputs above the size limit")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def options_from_args(args) -> InferenceOptions:
    """The inference options the arguments ask for, every value checked before any work (the
    default model resolved for the scale)."""
    validation.check_positive_int(args.tile, "--tile")
    validation.check_positive_int(args.batch, "--batch")
    scale = parse_floats(args.scale, "--scale")
    spacing = parse_floats(args.spacing, "--spacing")
    if scale is None and spacing is None:
        scale = 2.0
    if args.model:
        get_spec(args.model)
    if args.weights != "auto":
        validation.check_weights_file(args.weights)
    resolve_device(args.device)
    return InferenceOptions(model=args.model or default_model(scale if scale is not None else 2.0), scale=scale,
                            spacing=spacing, mode=args.mode, axis=args.axis, device=args.device, tile=args.tile,
                            batch=args.batch, preset=args.preset, weights=args.weights, out_dtype=args.dtype,
                            force=args.force)


def run(args) -> int:
    from MedSRExtension.inference.engine import run_inference

    # every option is checked before the input is read, and the output may never be an input
    out = validation.check_output_file(args.output, [args.input], WRITABLE)
    options = options_from_args(args)
    component = parse_component(args.component)
    volume = load_volume(args.input, component=component)
    model = options.model
    update, close = progress_bar(args.quiet, f"{model}")
    start = time.perf_counter()
    try:
        result = run_inference(volume, options, progress=update)
    finally:
        close()
    save_volume(result, out)
    if not args.quiet:
        size = "x".join(map(str, result.shape_ijk))
        spacing_txt = ", ".join(f"{s:.4g}" for s in result.spacing)
        print(f"wrote {out} ({size} voxels, spacing {spacing_txt} mm) with {model} "
              f"in {time.perf_counter() - start:.1f} s")
    return 0
