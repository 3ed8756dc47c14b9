"""Access tokens and the ASGI guard in front of every route.

A token is never stored: jobs record its owner key (a sha256 prefix), the server keeps the hashes.
The guard is plain ASGI around the FastAPI app, so it runs before any route: a request without a
valid ``Authorization: Bearer TOKEN`` is answered 401 before its body is read, and a request whose
declared (or streamed) body exceeds the upload limit is answered 413.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Iterable, Optional

TOKEN_ENV = "MEDSR_SERVER_TOKEN"


def owner_key(token: str) -> str:
    """What a job records of the token that made it (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


def new_token() -> str:
    """A random token (32 url-safe characters)."""
    return secrets.token_urlsafe(24)


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` readable by its owner only (0600 from the start, no window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)


def read_token_file(path: Path) -> list[str]:
    """The tokens of a file, one a line (blank lines and '#' comments skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in lines if t.strip() and not t.strip().startswith("#")]


class Guard:
    """ASGI middleware: token first, then the body-size limit, then the app.

    ``tokens``: the accepted tokens. ``max_body``: the largest request body in bytes. The matched
    owner key is put into ``scope["state"]["owner"]`` for the routes."""

    def __init__(self, app, tokens: Iterable[str], max_body: int):
        self.app = app
        self._hashes = {hashlib.sha256(t.encode("utf-8")).digest(): owner_key(t) for t in tokens}
        self.max_body = int(max_body)

    def owner_of(self, header: Optional[bytes]) -> Optional[str]:
        """The owner key of an Authorization header value, None when it names no accepted token."""
        if not header or not header[:7].lower() == b"bearer ":
            return None
        given = hashlib.sha256(header[7:].strip()).digest()
        found = None
        for digest, owner in self._hashes.items():  # compare every one, in constant time each
            if hmac.compare_digest(digest, given):
                found = owner
        return found

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        owner = self.owner_of(headers.get(b"authorization"))
        if owner is None:
            why = "missing" if b"authorization" not in headers else "wrong"
            return await _refuse(send, 401, f"{why} token: send the header 'Authorization: Bearer TOKEN' "
                                            "with the token the server printed or was given",
                                 [(b"www-authenticate", b'Bearer realm="medsr"')])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _refuse(send, 413, too_large(int(length), self.max_body))
        scope.setdefault("state", {})["owner"] = owner
        return await self.app(scope, _counting(receive, self.max_body), send)


class BodyTooLarge(Exception):
    """A streamed body went past the limit (no Content-Length, or a false one)."""


def too_large(size: int, limit: int) -> str:
    return (f"upload of {size / 2**20:.1f} MB is over this server's limit of {limit / 2**20:.1f} MB; "
            "send a smaller volume or ask the administrator to raise --max-upload-mb")


def _counting(receive, limit: int):
    seen = {"n": 0}

    async def wrapped():
        message = await receive()
        if message.get("type") == "http.request":
            seen["n"] += len(message.get("body", b""))
            if seen["n"] > limit:
                raise BodyTooLarge(too_large(seen["n"], limit))
        return message
    return wrapped


async def _refuse(send, status: int, line: str, extra_headers=()) -> None:
    body = json.dumps({"error": line}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra_headers]})
    await send({"type": "http.response.body", "body": body})
