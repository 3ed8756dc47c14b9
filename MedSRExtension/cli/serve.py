"""``medsr serve``: the MedSR page in a browser (MedSRWeb, on trame-slicer; the optional ``web`` extra).

This module only parses the arguments; MedSRWeb is imported when the command runs, so the engine
never imports it, and without the extra the command says in one line how to install it."""
from __future__ import annotations

import argparse

from MedSRExtension.core.errors import MedSRError

DEVICES = ("auto", "cpu", "cuda", "mps")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the MedSR panel and slice views to a web browser",
        description="Serve the MedSR page (panel + Slicer slice views) to a browser. Listens on 127.0.0.1 "
                    "unless --host says otherwise; any other address requires a token.")
    p.add_argument("input", nargs="?", help="a volume to open (NIfTI, NRRD, MHA)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    p.add_argument("--data", metavar="DIR", help="the one folder whose volumes the page may open")
    p.add_argument("--token", help="the access token (default: random when --host is not loopback)")
    p.add_argument("--device", default="auto", help="default device: auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--upload-limit-mb", type=float, default=512.0, help="largest accepted upload (default 512 MB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from MedSRWeb.server import serve
    except ImportError as exc:  # the optional extra is missing
        missing = getattr(exc, "name", None) or str(exc)
        raise MedSRError(f"the web UI needs the 'web' extra ({missing} is missing): "
                         "pip install \"medsr[web]\" (in a checkout: pip install -e \".[web]\")") from None
    if not 0 <= args.port <= 65535:
        raise MedSRError(f"--port {args.port} is not a port number (0-65535)")
    return serve(args.input, host=args.host, port=args.port, data=args.data, token=args.token,
                 device=args.device, upload_limit_mb=args.upload_limit_mb)
