"""The URL ``medsr serve`` prints: one a user can open as printed.

A wildcard listening address (0.0.0.0, ::) is no address to open: the printed URL names this
machine instead (its host name when it resolves to a non-loopback address, else its outgoing
address), or 127.0.0.1 with the SSH tunnel that reaches it from elsewhere.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Optional
from urllib.parse import quote

from . import access

WILDCARDS = ("", "0.0.0.0", "::", "[::]", "*")


def _routable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)


def machine_address() -> Optional[str]:
    """This machine's name (if it resolves to a routable address) or its outgoing IPv4 address."""
    name = socket.gethostname()
    try:
        if name and any(_routable(info[4][0]) for info in socket.getaddrinfo(name, None)):
            return name
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # a documentation address: nothing is sent by a UDP connect
            found = s.getsockname()[0]
        return found if _routable(found) else None
    except OSError:
        return None


def shown_host(host: str) -> str:
    """The host part of the printed URL for a listening address."""
    if access.is_loopback(host):
        return "127.0.0.1" if host.lower() == "localhost" else host
    if host in WILDCARDS:
        return machine_address() or "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def server_lines(host: str, port: int, token: Optional[str]) -> list[str]:
    """The start-up lines: the URL to open, then how to reach it safely from elsewhere."""
    shown = shown_host(host)
    query = f"?token={quote(token)}" if token is not None else ""
    lines = [f"MedSR is serving on http://{shown}:{port}/{query}"]
    if token is None:
        lines.append("Listening on loopback only: other machines cannot connect (use an SSH tunnel, or a reverse "
                     "proxy with TLS: see the README).")
    else:
        lines.append(f"Over an untrusted network use an SSH tunnel instead: ssh -L {port}:127.0.0.1:{port} "
                     f"USER@{shown if shown != '127.0.0.1' else 'THIS-MACHINE'}, then open "
                     f"http://127.0.0.1:{port}/{query}")
    return lines
