"""The token gate: an aiohttp middleware in front of everything a server answers.

With a token set, a request is served only if it carries the token, as ``?token=...`` (then it is
kept in an HttpOnly, SameSite=Strict cookie and the browser is redirected to the clean URL) or as
that cookie. Anything else gets 403 and no byte of the app. The front server gates users with the
printed token; each session process gates the front with its own secret.
"""
from __future__ import annotations

from typing import Callable, Optional

from . import access

REFUSED = ("MedSR: this server needs its token. Open the URL that 'medsr serve' printed "
           "(it ends in ?token=...).\n")


def token_gate(token: Optional[str], on_redirect: Optional[Callable] = None):
    """The middleware; ``on_redirect(request, response)`` may add cookies to the clean-URL redirect."""
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
            if on_redirect is not None:
                on_redirect(request, response)
            return response
        if access.token_matches(token, request.cookies.get(access.TOKEN_COOKIE)):
            return await handler(request)
        return web.Response(status=403, text=REFUSED)
    return gate
