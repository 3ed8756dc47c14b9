"""The front server of ``medsr serve``: the token gate, one session per browser, and a proxy.

Every request passes the token gate (``gate``), then gets its browser session from the
``medsr_session`` cookie (a new random one, HttpOnly and SameSite=Strict, when it has none), and is
forwarded, HTTP or websocket, to that session's own app process (``sessions.SessionPool``). The
front imports neither trame nor slicer: its memory is small and does not grow with the runs.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Optional

from MedSRExtension.core.errors import MedSRError

from . import access
from .gate import token_gate
from .sessions import SessionPool

SESSION_COOKIE = "medsr_session"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "cookie", "set-cookie"}
WS_HEADERS = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
CHUNK = 1 << 16


def _session_cookie(response, sid: str, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Strict", secure=secure)


def _session_middleware(pool: SessionPool):
    from aiohttp import web

    @web.middleware
    async def session(request, handler):
        sid = request.cookies.get(SESSION_COOKIE) or ""
        fresh = len(sid) < 16
        request["medsr_sid"] = pool.new_id() if fresh else sid
        response = await handler(request)
        if fresh and not getattr(response, "prepared", False):
            _session_cookie(response, request["medsr_sid"], request.secure)
        return response
    return session


def _forward_headers(headers, drop=()) -> dict:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in drop}


async def _bridge(request, client, url: str, session):
    """Join the browser's websocket to the session's; either side closing closes both."""
    from aiohttp import WSMsgType, web
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    outer = web.WebSocketResponse(max_msg_size=0, protocols=protocols)
    await outer.prepare(request)
    session.sockets += 1
    try:
        async with client.ws_connect(url, headers={"Cookie": f"{access.TOKEN_COOKIE}={session.secret}"},
                                     protocols=protocols, max_msg_size=0) as inner:
            async def pump(source, target):
                async for message in source:
                    session.touch()
                    if message.type == WSMsgType.TEXT:
                        await target.send_str(message.data)
                    elif message.type == WSMsgType.BINARY:
                        await target.send_bytes(message.data)
                    else:
                        break
            tasks = [asyncio.ensure_future(pump(outer, inner)), asyncio.ensure_future(pump(inner, outer))]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
    finally:
        session.sockets -= 1
        session.touch()
        await outer.close()
    return outer


def _proxy(pool: SessionPool, client_holder: dict):
    from aiohttp import web

    async def proxy(request):
        try:
            session = await pool.get(request["medsr_sid"])
        except MedSRError as exc:
            return web.Response(status=503, text=f"MedSR: {exc}\n")
        client = client_holder["client"]
        url = f"http://127.0.0.1:{session.port}{request.rel_url}"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _bridge(request, client, "ws" + url[4:], session)
        headers = _forward_headers(request.headers, WS_HEADERS)
        headers["Cookie"] = f"{access.TOKEN_COOKIE}={session.secret}"
        body = await request.read() if request.can_read_body else None
        async with client.request(request.method, url, headers=headers, data=body, allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers=_forward_headers(upstream.headers))
            if request.cookies.get(SESSION_COOKIE) != request["medsr_sid"]:
                _session_cookie(response, request["medsr_sid"], request.secure)
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    return proxy


def make_front_app(pool: SessionPool, token: Optional[str], on_ready: Optional[Callable[[], None]] = None):
    """The aiohttp application of the front server."""
    import aiohttp
    from aiohttp import web

    def new_session_on_redirect(request, response):
        if request.cookies.get(SESSION_COOKIE) is None:
            _session_cookie(response, request.get("medsr_sid") or pool.new_id(), request.secure)

    holder: dict = {}
    app = web.Application(middlewares=[token_gate(token, new_session_on_redirect), _session_middleware(pool)])
    app.router.add_route("*", "/{tail:.*}", _proxy(pool, holder))

    async def startup(_app):
        holder["client"] = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        pool.start_reaping()
        if on_ready is not None:
            on_ready()

    async def cleanup(_app):
        await pool.close()
        await holder["client"].close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
