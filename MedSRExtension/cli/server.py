"""``medsr server``: the HTTP inference service (``MedSRExtension.server``; the ``server`` extra)."""
from __future__ import annotations

import argparse
from pathlib import Path

from MedSRExtension.core.errors import MedSRError


def register(sub) -> None:
    p = sub.add_parser("server", help="serve super-resolution jobs over HTTP (a GPU machine for the hospital)",
                       description="An HTTP inference service: clients (medsr run --server, Slicer, scripts) send a "
                                   "volume and options, jobs run in MedSR worker processes, results come back as NRRD "
                                   "with provenance. Every route needs 'Authorization: Bearer TOKEN'. Put TLS "
                                   "(nginx, Caddy) in front of it for any address but loopback.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8600, help="port (default 8600; 0: any free port)")
    p.add_argument("--token", action="append", default=[], metavar="T",
                   help="an accepted token (repeat for several users; also $MEDSR_SERVER_TOKEN, --token-file); "
                        "none given: a random one is made, printed and written to DATA/token (0600)")
    p.add_argument("--token-file", default=None, metavar="FILE", help="accepted tokens, one a line")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="jobs at once (default: one per GPU, else 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--max-upload-mb", type=float, default=1024.0, metavar="M", help="largest upload (default 1024)")
    p.add_argument("--max-queue", type=int, default=32, metavar="N", help="most jobs waiting (default 32)")
    p.add_argument("--keep-hours", type=float, default=24.0, metavar="H", help="results kept this long (default 24)")
    p.add_argument("--data", default=None, metavar="DIR", help="jobs and results (default ~/.local/share/medsr/server)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MedSRError(f"medsr server needs the 'server' extra ({exc.name} is missing): pip install \"medsr[server]\" "
                         "(in a checkout: pip install -e \".[server]\")") from None
    from MedSRExtension.server.main import default_data, job_devices, resolve_tokens, serve
    if not 0 <= args.port <= 65535:
        raise MedSRError(f"--port {args.port} is not a port number (0-65535)")
    for name in ("max_upload_mb", "keep_hours", "max_queue"):
        if getattr(args, name) <= 0:
            raise MedSRError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    data = Path(args.data) if args.data else default_data()
    data.mkdir(parents=True, exist_ok=True)
    tokens, made = resolve_tokens(args.token, args.token_file, data)
    if made:
        print(f"medsr server: token {made} (also in {data / 'token'}, mode 0600); clients send "
              f"'Authorization: Bearer <token>'", flush=True)
    return serve(args.host, args.port, tokens, data, job_devices(args.device, args.jobs), args.max_upload_mb,
                 args.keep_hours, args.max_queue)
