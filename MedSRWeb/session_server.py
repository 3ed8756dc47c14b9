"""One browser session's app process: ``python -m MedSRWeb.session_server --port P --parent PID ...``.

Started by the front server (``sessions.SessionPool``), never by a user. It listens on 127.0.0.1
only and serves nothing without the session's secret (``$MEDSR_SESSION_SECRET``, the cookie the front
adds to each request it forwards), so another local user cannot reach a session directly. It owns
one scene, one panel and one results list; it stops when the front asks (SIGTERM) or when the front
process is gone.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Optional

from . import access
from .gate import token_gate
from .sessions import READY_PREFIX

PARENT_CHECK_S = 2.0


def _download_route(webapp):
    from aiohttp import web

    from MedSRExtension.core.errors import MedSRError

    async def download(request):
        try:
            path = webapp.write_result(request.query.get("format", "nii.gz"), request.query.get("result"))
        except MedSRError as exc:
            return web.Response(status=404, text=f"MedSR: {exc}\n")
        return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'})
    return web.get("/medsr/download", download)


async def _watch_parent(parent: int) -> None:
    """End this process when the front server is gone (it was killed before it could stop us)."""
    while True:
        await asyncio.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(0)


def run_session(port: int, secret: str, parent: Optional[int], input_path: Optional[str] = None,
                data: Optional[str] = None, device: str = "auto",
                upload_limit_mb: float = access.DEFAULT_UPLOAD_LIMIT_MB) -> int:
    """Serve one session's page on 127.0.0.1:port until stopped."""
    os.environ.setdefault("WSLINK_MAX_MSG_SIZE", str(int((upload_limit_mb + 16) * 1024 * 1024)))
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from trame.app import get_server

    from .app import MedSRWebApp, ServeConfig, make_workdir
    from .page import build_page, sync

    workdir = make_workdir()
    server = get_server("medsr", client_type="vue3")
    config = ServeConfig(input=input_path, data=data, device=device, upload_limit_mb=upload_limit_mb)
    webapp = MedSRWebApp(server, config, Path(workdir.name))
    build_page(webapp)
    with server.state:
        sync(webapp)

    def bind(wslink_server):
        wslink_server.app.middlewares.append(token_gate(secret))
        wslink_server.app.add_routes([_download_route(webapp)])

    def ready(**_):
        webapp.start_polling()
        if parent:
            asyncio.ensure_future(_watch_parent(parent))
        if input_path is not None:
            with server.state:
                server.state.input_value = "input:"
        print(f"{READY_PREFIX}{port}", flush=True)

    server.controller.on_server_bind.add(bind)
    server.controller.on_server_ready.add(ready)
    try:
        server.start(host="127.0.0.1", port=port, open_browser=False, show_connection_info=False,
                     disable_logging=True, timeout=0)
    finally:
        webapp.shutdown()
        workdir.cleanup()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m MedSRWeb.session_server")
    p.add_argument("input", nargs="?")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--parent", type=int, default=None)
    p.add_argument("--data")
    p.add_argument("--device", default="auto")
    p.add_argument("--upload-limit-mb", type=float, default=access.DEFAULT_UPLOAD_LIMIT_MB)
    args = p.parse_args(argv)
    secret = os.environ.pop("MEDSR_SESSION_SECRET", "")
    if len(secret) < 16:
        print("MedSRWeb.session_server is started by 'medsr serve' (it needs the session's secret)", file=sys.stderr)
        return 2
    return run_session(args.port, secret, args.parent, args.input, args.data, args.device, args.upload_limit_mb)


if __name__ == "__main__":
    sys.exit(main())
