"""Start ``medsr serve``: the token gate, the download route, the start-up line.

The gate is an aiohttp middleware in front of everything the server answers (the page, its scripts,
the websocket, the download): with a token set, a request is served only if it carries the token,
as ``?token=...`` (then it is kept in an HttpOnly, SameSite=Strict cookie and the browser is
redirected to the clean URL) or as that cookie. Anything else gets 403 and no byte of the app.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from MedSRExtension.core.errors import MedSRError

from . import access


def _gate(token: Optional[str]):
    from aiohttp import web

    @web.middleware
    async def gate(request, handler):
        if token is None:
            return await handler(request)
        offered = request.query.get("token")
        if offered is not None and access.token_matches(token, offered):
            query = {k: v for k, v in request.query.items() if k != "token"}
            clean = request.rel_url.with_query(query) if query else request.rel_url.with_query(None)
            response = web.HTTPFound(str(clean))
            response.set_cookie(access.TOKEN_COOKIE, token, httponly=True, samesite="Strict",
                                secure=request.secure)
            return response
        if access.token_matches(token, request.cookies.get(access.TOKEN_COOKIE)):
            return await handler(request)
        return web.Response(status=403, text="MedSR: this server needs its token. Open the URL that "
                                             "'medsr serve' printed (it ends in ?token=...).\n")
    return gate


def _download_route(webapp):
    from aiohttp import web

    async def download(request):
        try:
            path = webapp.write_result(request.query.get("format", "nii.gz"))
        except MedSRError as exc:
            return web.Response(status=404, text=f"MedSR: {exc}\n")
        return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'})
    return web.get("/medsr/download", download)


def serve(input_path: Optional[str] = None, host: str = "127.0.0.1", port: int = 8080, data: Optional[str] = None,
          token: Optional[str] = None, device: str = "auto", upload_limit_mb: float = access.DEFAULT_UPLOAD_LIMIT_MB,
          open_browser: bool = False) -> int:
    """Serve the MedSR page until interrupted. Checks its arguments before anything starts."""
    if input_path is not None:
        if not Path(input_path).is_file():
            raise MedSRError(f"INPUT {input_path}: no such file; give a volume file (NIfTI, NRRD, MHA)")
        if not access.is_volume_name(input_path):
            raise MedSRError(f"INPUT {input_path}: not a volume file; give NIfTI, NRRD, MHA or DICOM")
    access.DataFolder(data)  # refuses a missing folder now, not on the first click
    required = access.choose_token(host, token)
    # The largest websocket message carries an upload: a bit more than the limit.
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
        wslink_server.app.middlewares.append(_gate(required))
        wslink_server.app.add_routes([_download_route(webapp)])

    def ready(**_):
        webapp.start_polling()
        if input_path is not None:
            with server.state:
                server.state.input_value = "input:"
        shown = "localhost" if access.is_loopback(host) else host
        url = f"http://{shown}:{server.port}/"
        if required is not None:
            url += f"?token={quote(required)}"
        print(f"MedSR is serving on {url}", flush=True)
        if required is None:
            print("Listening on loopback only: other machines cannot connect (use an SSH tunnel, or a reverse "
                  "proxy with TLS: see the README).", flush=True)

    server.controller.on_server_bind.add(bind)
    server.controller.on_server_ready.add(ready)
    try:
        server.start(host=host, port=port, open_browser=open_browser, show_connection_info=False,
                     disable_logging=True, timeout=0)
    finally:
        webapp.shutdown()
        workdir.cleanup()
    return 0


if __name__ == "__main__":  # pragma: no cover - `medsr serve` is the entry point
    sys.exit(serve(*sys.argv[1:2]))
