"""The run options of ``medsr run`` as a library: the argparse options (shared by ``medsr run`` and
``medsr batch``), their check into ``InferenceOptions`` before any work, and the same parse of a
batch task's text options (CSV cells or command-line values) so that a task accepts and refuses
exactly what ``medsr run`` does, one line each."""
from __future__ import annotations

import argparse
import contextlib
import io
from typing import Optional

from MedSRExtension.core import validation
from MedSRExtension.core.weight_families import FAMILIES
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import MODES
from MedSRExtension.inference.devices import resolve_device
from MedSRExtension.inference.options import InferenceOptions
from MedSRExtension.models.registry import get_spec
from MedSRExtension.zoo.catalog import default_model, fallback_reason


def parse_floats(text: Optional[str], what: str, allowed=(1, 3)):
    """'2' -> 2.0; '2,2,1' -> (2.0, 2.0, 1.0); None -> None; '' and anything else is a clear error."""
    return validation.parse_numbers(text, what, allowed)


def parse_component(text):
    """--component: None, 'luminance', or a channel index; anything else is a clear error."""
    return validation.parse_component(text)


#: The run options, as argparse names them (``medsr batch`` CSV columns use the same names).
OPTION_NAMES = ("model", "scale", "spacing", "mode", "axis", "device", "tile", "batch", "preset", "weights",
                "component", "dtype", "force", "clamp", "ensemble", "consistency", "trained_on")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The engine options of ``medsr run`` (shared with ``medsr batch``)."""
    p.add_argument("--model", help="model name (see `medsr models`); default: the best shipped network "
                                   "for the scale, else bicubic")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", default=None, help="factor F, or per-axis FI,FJ,FK (default 2)")
    g.add_argument("--spacing", default=None, help="target spacing in mm: MM or MI,MJ,MK")
    p.add_argument("--mode", default="auto", choices=("auto",) + MODES,
                   help="auto (default): throughplane along the thick axis when the slice spacing is at least "
                        "1.5x the in-plane spacing, else inplane; the choice is printed")
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
    p.add_argument("--ensemble", type=int, default=1, choices=(1, 2, 4, 8),
                   help="average the network over N flipped/transposed copies (best quality, N times the time)")
    p.add_argument("--consistency", default="on", choices=("on", "off"),
                   help="through-plane networks: make the result reproduce the input slices under the slice "
                        "profile (default on: measured never worse on average on the corpus; off: as the "
                        "network made it)")
    p.add_argument("--trained-on", dest="trained_on", default="bicubic", choices=FAMILIES,
                   help="weights family for in-plane passes: bicubic (default, as published results) or "
                        "scanner (trained on k-space truncation, PSFs, noise and shading: for scanner data)")
    p.add_argument("--clamp", default="input", choices=("input", "none"),
                   help="input: keep the result inside the input's value range (default; recorded in the "
                        "provenance); none: the raw network output")


def options_from_args(args) -> InferenceOptions:
    """The inference options the arguments ask for, every value checked before any work (the
    default model resolved for the scale); tile, batch, dtype, the weights file and adapt's mode,
    network and --save-adapted are ``InferenceOptions``' own checks."""
    scale = parse_floats(args.scale, "--scale")
    spacing = parse_floats(args.spacing, "--spacing")
    if scale is None and spacing is None:
        scale = 2.0
    if args.model:
        get_spec(args.model)
    resolve_device(args.device)
    adapt, save_adapted = getattr(args, "adapt", None), getattr(args, "save_adapted", None)  # medsr run only
    thickness = getattr(args, "slice_thickness", None)
    if thickness is not None:
        if args.mode not in ("throughplane", "auto"):
            raise MedSRError("--slice-thickness is for thick slices (--mode throughplane); add --mode throughplane")
        validation.check_thickness_mm(thickness, "--slice-thickness")
    default = "pfmdn" if adapt is not None else default_model(scale if scale is not None else 2.0)
    fallback = None if args.model or adapt is not None else fallback_reason(scale if scale is not None else 2.0)
    return InferenceOptions(model=args.model or default, scale=scale, adapt=adapt, save_adapted=save_adapted,
                            fallback=fallback,
                            spacing=spacing, mode=args.mode, axis=args.axis, device=args.device, tile=args.tile,
                            batch=args.batch, preset=args.preset, weights=args.weights, out_dtype=args.dtype,
                            force=args.force, clamp=args.clamp, ensemble=args.ensemble, thickness_mm=thickness,
                            consistency=args.consistency == "on", trained_on=args.trained_on)




class _OptionParser(argparse.ArgumentParser):
    """The run options alone, refusing as ``medsr run`` does (one line, no exit)."""

    def error(self, message: str):
        raise MedSRError(message)


def parse_run_options(options: dict) -> argparse.Namespace:
    """The ``medsr run`` arguments for a task's options ({name: text or value}; ``force`` as
    true/false), refused in one line as ``medsr run`` refuses them."""
    argv = []
    for name, value in options.items():
        if name == "force":
            if str(value).strip().lower() in ("1", "true", "yes", "y"):
                argv.append("--force")
            elif str(value).strip().lower() not in ("", "0", "false", "no", "n"):
                raise MedSRError(f"force must be true or false, got '{value}'")
        elif value is not None:
            argv.append(f"--{name.replace('_', '-')}={value}")
    parser = _OptionParser(prog="medsr run", add_help=False)
    add_run_options(parser)
    with contextlib.redirect_stderr(io.StringIO()):
        return parser.parse_args(argv)
